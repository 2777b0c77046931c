//! Semantic Guidance Unit: region masks from the segmenter turn into region tokens (the mean
//! feature inside each mask) that pixels attend to, so a pixel is restored in the light of
//! the object it belongs to. Attention is pixels × regions (HW×M), never pixels × pixels.

use tch::{Kind, Tensor, nn, nn::Module};

use crate::layer_norm::ChannelLayerNorm;
use crate::layers::{
    batched_mm, conv2d, from_pixel_tokens, linear, pixel_token_attention, pixel_tokens,
};
use crate::transformer::BlockShape;

/// Mean of `features` (N×C×H×W) inside each of `masks` (N×M×H×W, weights in [0, 1]), as
/// region tokens N×M×C. An empty mask gives a zero token.
pub fn mask_average_pool(features: &Tensor, masks: &Tensor) -> Tensor {
    let (batch, regions) = (masks.size()[0], masks.size()[1]);
    let flat_masks = masks.reshape([batch, regions, -1]);
    let sums = batched_mm(&flat_masks, &pixel_tokens(features));
    let areas = flat_masks.sum_dim_intlist(-1, true, None).clamp_min(1e-6);
    sums / areas
}

/// Which regions are non-empty: N×M booleans.
pub fn nonempty_regions(masks: &Tensor) -> Tensor {
    masks.sum_dim_intlist(&[2, 3][..], false, None).gt(0.0)
}

/// F_sem: every pixel receives the token of its region (N×M×C tokens, N×M×H×W masks →
/// N×C×H×W). A pixel covered by several masks gets the mean of their tokens; a pixel covered
/// by none gets zero.
pub fn broadcast_region_means(tokens: &Tensor, masks: &Tensor) -> Tensor {
    let (batch, regions, height, width) = masks.size4().expect("masks must be N×M×H×W");
    let flat_masks = masks.reshape([batch, regions, -1]);
    let painted = batched_mm(&flat_masks.transpose(1, 2), tokens);
    let coverage = flat_masks
        .sum_dim_intlist(1, true, None)
        .clamp_min(1.0)
        .transpose(1, 2);
    from_pixel_tokens(&(painted / coverage), height, width)
}

/// Nearest-neighbour resize of N×M×H×W masks to `height`×`width` (keeps them binary).
pub fn resize_masks(masks: &Tensor, height: i64, width: i64) -> Tensor {
    let size = masks.size();
    if size[1] == 0 {
        return Tensor::zeros([size[0], 0, height, width], (masks.kind(), masks.device()));
    }
    if size[2] == height && size[3] == width {
        return masks.shallow_clone();
    }
    masks.upsample_nearest2d([height, width], None, None)
}

/// Appends the background mask to `masks` (N×M×H×W): the pixels no mask covers plus, in
/// training, the masks dropped with probability `drop_probability` (which are zeroed in
/// place, so M stays fixed and they simply become empty regions). With no masks at all
/// (M = 0) nothing is appended and the SGU stays out of the way.
pub fn prepare_region_masks(masks: &Tensor, drop_probability: f64, train: bool) -> Tensor {
    let (batch, regions) = (masks.size()[0], masks.size()[1]);
    if regions == 0 {
        return masks.shallow_clone();
    }
    let dropped = if train && drop_probability > 0.0 {
        Tensor::rand([batch, regions], (Kind::Float, masks.device())).lt(drop_probability)
    } else {
        Tensor::zeros([batch, regions], (Kind::Bool, masks.device()))
    };
    merge_dropped_into_background(masks, &dropped)
}

/// The deterministic half of [`prepare_region_masks`]: zeroes the masks flagged in `dropped`
/// (N×M booleans) and appends background = uncovered pixels ∪ dropped masks.
pub fn merge_dropped_into_background(masks: &Tensor, dropped: &Tensor) -> Tensor {
    let dropped = dropped.to_kind(masks.kind()).unsqueeze(-1).unsqueeze(-1);
    let kept = masks * (1.0 - &dropped);
    let uncovered = masks.amax([1], true).le(0.0).to_kind(masks.kind());
    let dropped_union = (masks * &dropped).amax([1], true);
    let background = uncovered.maximum(&dropped_union);
    Tensor::cat(&[kept, background], 1)
}

/// One level's SGU: semantic cross-attention from pixels to region tokens, added residually.
#[derive(Debug)]
pub struct SemanticGuidance {
    heads: i64,
    norm: ChannelLayerNorm,
    query: nn::Conv2D,
    key: nn::Linear,
    value: nn::Linear,
    project_out: nn::Conv2D,
}

impl SemanticGuidance {
    /// Creates the unit for features of `shape.channels` channels and `shape.heads` heads.
    pub fn new(path: nn::Path<'_>, shape: BlockShape) -> Self {
        let channels = shape.channels;
        Self {
            heads: shape.heads,
            norm: ChannelLayerNorm::new(&path / "norm", channels, shape.layer_norm),
            query: conv2d(&path / "query", channels, channels, 1, 1, shape.bias),
            key: linear(&path / "key", channels, channels),
            value: linear(&path / "value", channels, channels),
            project_out: conv2d(&path / "project_out", channels, channels, 1, 1, shape.bias),
        }
    }

    /// Guides `x` (N×C×H×W) with `masks` already at its resolution (N×M×H×W). M = 0 returns
    /// `x` unchanged.
    pub fn forward(&self, x: &Tensor, masks: &Tensor) -> Tensor {
        let regions = masks.size()[1];
        if regions == 0 {
            return x.shallow_clone();
        }
        let (_, _, height, width) = x.size4().expect("SGU expects N×C×H×W");
        let normed = self.norm.forward(x);
        let tokens = mask_average_pool(&normed, masks);
        let semantic = broadcast_region_means(&tokens, masks);

        // Every pixel attends to the M region tokens (empty regions get no weight).
        let query = pixel_tokens(&self.query.forward(&(&normed + semantic)));
        let valid = nonempty_regions(masks);
        let attended = pixel_token_attention(
            &query,
            &self.key.forward(&tokens),
            &self.value.forward(&tokens),
            self.heads,
            Some(&valid),
        );
        x + self
            .project_out
            .forward(&from_pixel_tokens(&attended, height, width))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LayerNormKind;
    use tch::Device;

    fn floats(values: &[f32], shape: &[i64]) -> Tensor {
        Tensor::from_slice(values).view(shape)
    }

    /// Two channels over a 2×2 image; masks: top row, the single pixel (1, 1), nothing.
    fn hand_made() -> (Tensor, Tensor) {
        let features = floats(&[1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0], &[1, 2, 2, 2]);
        let masks = floats(
            &[1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
            &[1, 3, 2, 2],
        );
        (features, masks)
    }

    #[test]
    fn pooling_gives_the_mean_inside_each_mask() {
        let (features, masks) = hand_made();
        let tokens = mask_average_pool(&features, &masks);
        let tokens = Vec::<f32>::try_from(tokens.flatten(0, -1)).unwrap();
        assert_eq!(tokens, [1.5, 15.0, 4.0, 40.0, 0.0, 0.0]);
        let valid = Vec::<bool>::try_from(nonempty_regions(&masks).flatten(0, -1)).unwrap();
        assert_eq!(valid, [true, true, false]);
    }

    #[test]
    fn region_means_are_broadcast_back_to_their_pixels() {
        let (features, masks) = hand_made();
        let tokens = mask_average_pool(&features, &masks);
        let semantic = broadcast_region_means(&tokens, &masks);
        let semantic = Vec::<f32>::try_from(semantic.flatten(0, -1)).unwrap();
        // Top row gets the top-row mean, (1, 1) its own value, the uncovered (1, 0) zero.
        assert_eq!(semantic, [1.5, 1.5, 0.0, 4.0, 15.0, 15.0, 0.0, 40.0]);
    }

    #[test]
    fn overlapping_masks_average_their_tokens() {
        let features = floats(&[2.0, 6.0], &[1, 1, 1, 2]);
        let masks = floats(&[1.0, 1.0, 0.0, 1.0], &[1, 2, 1, 2]);
        let tokens = mask_average_pool(&features, &masks);
        let semantic =
            Vec::<f32>::try_from(broadcast_region_means(&tokens, &masks).flatten(0, -1)).unwrap();
        // Tokens are 4 (both pixels) and 6 (right pixel); the right pixel sees (4 + 6) / 2.
        assert_eq!(semantic, [4.0, 5.0]);
    }

    #[test]
    fn background_collects_uncovered_pixels_and_dropped_masks() {
        let (_, masks) = hand_made();
        let kept = merge_dropped_into_background(
            &masks,
            &Tensor::from_slice(&[false, false, false]).view([1, 3]),
        );
        let background = Vec::<f32>::try_from(kept.get(0).get(3).flatten(0, -1)).unwrap();
        assert_eq!(background, [0.0, 0.0, 1.0, 0.0]);
        assert!(kept.narrow(1, 0, 3).equal(&masks));

        let dropped = merge_dropped_into_background(
            &masks,
            &Tensor::from_slice(&[true, false, false]).view([1, 3]),
        );
        let background = Vec::<f32>::try_from(dropped.get(0).get(3).flatten(0, -1)).unwrap();
        assert_eq!(background, [1.0, 1.0, 1.0, 0.0]);
        assert_eq!(
            dropped.get(0).get(0).sum(Kind::Float).double_value(&[]),
            0.0
        );
        assert!(prepare_region_masks(&masks, 0.5, false).equal(&kept));
    }

    fn unit(channels: i64, heads: i64) -> (nn::VarStore, SemanticGuidance) {
        let store = nn::VarStore::new(Device::Cpu);
        let shape = BlockShape {
            channels,
            heads,
            ffn_expansion: 2.66,
            bias: false,
            layer_norm: LayerNormKind::WithBias,
        };
        let sgu = SemanticGuidance::new(store.root(), shape);
        (store, sgu)
    }

    #[test]
    fn without_masks_the_unit_is_the_identity() {
        let (_store, sgu) = unit(8, 2);
        let x = Tensor::randn([2, 8, 5, 6], (Kind::Float, Device::Cpu));
        let none = Tensor::zeros([2, 0, 5, 6], (Kind::Float, Device::Cpu));
        assert!(sgu.forward(&x, &none).equal(&x));
        assert_eq!(prepare_region_masks(&none, 0.3, true).size(), [2, 0, 5, 6]);
    }

    #[test]
    fn empty_regions_do_not_change_the_result() {
        let (_store, sgu) = unit(8, 2);
        let x = Tensor::randn([1, 8, 4, 4], (Kind::Float, Device::Cpu));
        let left = Tensor::zeros([1, 1, 4, 4], (Kind::Float, Device::Cpu));
        let _ = left.narrow(3, 0, 2).fill_(1.0);
        let right = 1.0 - &left;
        let masks = Tensor::cat(&[&left, &right], 1);
        let with_empty = Tensor::cat(&[&left, &left.zeros_like(), &right], 1);
        let a = sgu.forward(&x, &masks);
        let b = sgu.forward(&x, &with_empty);
        assert!(a.allclose(&b, 1e-5, 1e-6, false));
        assert!(
            !a.allclose(&x, 1e-3, 1e-3, false),
            "non-empty regions must guide the features"
        );

        let all_empty = left.zeros_like();
        assert!(sgu.forward(&x, &all_empty).equal(&x));
    }

    #[test]
    fn sixteen_masks_at_several_resolutions() {
        let (_store, sgu) = unit(16, 4);
        let labels = Tensor::randint(16, [1, 1, 32, 24], (Kind::Int64, Device::Cpu));
        let masks =
            labels.eq_tensor(&Tensor::arange(16, (Kind::Int64, Device::Cpu)).view([1, 16, 1, 1]));
        let masks = prepare_region_masks(&masks.to_kind(Kind::Float), 0.0, false);
        assert_eq!(masks.size(), [1, 17, 32, 24]);
        let small = resize_masks(&masks, 8, 6);
        assert_eq!(small.size(), [1, 17, 8, 6]);
        let x = Tensor::randn([1, 16, 8, 6], (Kind::Float, Device::Cpu));
        let out = sgu.forward(&x, &small);
        assert_eq!(out.size(), [1, 16, 8, 6]);
        assert!(bool::try_from(out.isfinite().all()).unwrap());
    }
}
