//! Resolution changes: the overlapped patch embedding, Restormer's pixel-(un)shuffle down- and
//! upsampling, and padding the input to a multiple of the total downsampling factor.

use tch::{Tensor, nn, nn::Module};

use crate::layers::conv2d;

/// Total downsampling factor of the three levels below full resolution.
pub const SIZE_MULTIPLE: i64 = 8;

/// 3×3 convolution from RGB to the level-1 channels.
#[derive(Debug)]
pub struct OverlapPatchEmbed {
    proj: nn::Conv2D,
}

impl OverlapPatchEmbed {
    /// Creates the 3×3 `in_channels`→`channels` projection.
    pub fn new(path: nn::Path<'_>, in_channels: i64, channels: i64, bias: bool) -> Self {
        Self {
            proj: conv2d(&path / "proj", in_channels, channels, 3, 1, bias),
        }
    }

    /// Embeds N×3×H×W into N×C×H×W.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.proj.forward(x)
    }
}

/// Halves the resolution: 3×3 conv to `to/4` channels, then pixel-unshuffle by 2.
#[derive(Debug)]
pub struct Downsample {
    conv: nn::Conv2D,
}

impl Downsample {
    /// Creates the convolution; `to` must be a multiple of 4 (Restormer: `to = 2·from`).
    pub fn new(path: nn::Path<'_>, from: i64, to: i64) -> Self {
        Self {
            conv: conv2d(&path / "conv", from, to / 4, 3, 1, false),
        }
    }

    /// Maps N×from×H×W (H, W even) to N×to×H/2×W/2.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.conv.forward(x).pixel_unshuffle(2)
    }
}

/// Doubles the resolution: 3×3 conv to `4·to` channels, then pixel-shuffle by 2.
#[derive(Debug)]
pub struct Upsample {
    conv: nn::Conv2D,
}

impl Upsample {
    /// Creates the convolution (Restormer: `to = from/2`, so the conv maps C→2C).
    pub fn new(path: nn::Path<'_>, from: i64, to: i64) -> Self {
        Self {
            conv: conv2d(&path / "conv", from, 4 * to, 3, 1, false),
        }
    }

    /// Maps N×from×H×W to N×to×2H×2W.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.conv.forward(x).pixel_shuffle(2)
    }
}

/// Pads the last two axes of `x` at the bottom and right up to a multiple of `multiple`.
///
/// Reflection is used as in Restormer's test scripts; an axis shorter than its padding
/// (an image only a few pixels tall) cannot be reflected, so that axis repeats its edge.
pub fn pad_to_multiple(x: &Tensor, multiple: i64) -> Tensor {
    let size = x.size();
    let (height, width) = (size[size.len() - 2], size[size.len() - 1]);
    let pad_height = (multiple - height % multiple) % multiple;
    let pad_width = (multiple - width % multiple) % multiple;
    if pad_height == 0 && pad_width == 0 {
        return x.shallow_clone();
    }
    if x.numel() == 0 {
        // libtorch's padding kernels reject empty tensors (e.g. zero masks); nothing to copy.
        let mut padded_size = size.clone();
        padded_size[size.len() - 2] += pad_height;
        padded_size[size.len() - 1] += pad_width;
        return Tensor::zeros(padded_size, (x.kind(), x.device()));
    }
    let pad_axis = |t: Tensor, amount: i64, extent: i64, padding: [i64; 4]| {
        if amount == 0 {
            t
        } else if amount < extent {
            t.reflection_pad2d(padding)
        } else {
            t.replication_pad2d(padding)
        }
    };
    let padded = pad_axis(x.shallow_clone(), pad_height, height, [0, 0, 0, pad_height]);
    pad_axis(padded, pad_width, width, [0, pad_width, 0, 0])
}

/// Crops the last two axes back to `height`×`width` (undoes [`pad_to_multiple`]).
pub fn crop_to(x: &Tensor, height: i64, width: i64) -> Tensor {
    let rank = x.dim() as i64;
    x.narrow(rank - 2, 0, height).narrow(rank - 1, 0, width)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn down_and_up_sampling_change_resolution_and_channels() {
        let store = nn::VarStore::new(Device::Cpu);
        let down = Downsample::new(store.root() / "down", 16, 32);
        let up = Upsample::new(store.root() / "up", 32, 16);
        let x = Tensor::randn([2, 16, 8, 6], (Kind::Float, Device::Cpu));
        let lower = down.forward(&x);
        assert_eq!(lower.size(), [2, 32, 4, 3]);
        assert_eq!(up.forward(&lower).size(), [2, 16, 8, 6]);
        assert_eq!(store.variables()["down.conv.weight"].size(), [8, 16, 3, 3]);
        assert_eq!(store.variables()["up.conv.weight"].size(), [64, 32, 3, 3]);
    }

    #[test]
    fn pads_by_reflection_and_crops_back() {
        let x = Tensor::arange(5 * 3, (Kind::Float, Device::Cpu)).view([1, 1, 5, 3]);
        let padded = pad_to_multiple(&x, 4);
        assert_eq!(padded.size(), [1, 1, 8, 4]);
        // Row 5 mirrors row 3, row 6 mirrors row 2; column 3 mirrors column 1.
        assert!(
            padded
                .narrow(2, 5, 1)
                .narrow(3, 0, 3)
                .equal(&x.narrow(2, 3, 1))
        );
        assert!(
            padded
                .narrow(2, 6, 1)
                .narrow(3, 0, 3)
                .equal(&x.narrow(2, 2, 1))
        );
        assert!(
            padded
                .narrow(2, 0, 5)
                .narrow(3, 3, 1)
                .equal(&x.narrow(3, 1, 1))
        );
        assert!(crop_to(&padded, 5, 3).equal(&x));
    }

    #[test]
    fn replicates_when_an_axis_is_too_short_to_reflect() {
        let x = Tensor::from_slice(&[1.0f32, 2.0]).view([1, 1, 1, 2]);
        let padded = pad_to_multiple(&x, 8);
        assert_eq!(padded.size(), [1, 1, 8, 8]);
        let first_row = Vec::<f32>::try_from(padded.get(0).get(0).get(0)).unwrap();
        assert_eq!(first_row, [1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]);
        let column = Vec::<f32>::try_from(padded.get(0).get(0).select(1, 0)).unwrap();
        assert_eq!(column, [1.0; 8]);
    }

    #[test]
    fn pads_empty_tensors() {
        let none = Tensor::zeros([2, 0, 5, 3], (Kind::Float, Device::Cpu));
        assert_eq!(pad_to_multiple(&none, 8).size(), [2, 0, 8, 8]);
    }

    #[test]
    fn leaves_aligned_inputs_alone() {
        let x = Tensor::randn([1, 3, 16, 8], (Kind::Float, Device::Cpu));
        assert!(pad_to_multiple(&x, SIZE_MULTIPLE).equal(&x));
    }
}
