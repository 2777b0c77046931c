//! Restormer's LayerNorm: normalises each pixel's channel vector (the `to_3d` → norm →
//! `to_4d` round trip). On channels-last features the `to_3d` view is free, so this is one
//! call of libtorch's fused LayerNorm kernel, forward and backward.

use tch::{Tensor, nn};

use crate::config::LayerNormKind;

/// Variance floor, as in Restormer.
const EPSILON: f64 = 1e-5;

/// Per-pixel LayerNorm over the channel axis of an N×C×H×W tensor.
#[derive(Debug)]
pub struct ChannelLayerNorm {
    weight: Tensor,
    /// `None` for [`LayerNormKind::BiasFree`].
    bias: Option<Tensor>,
}

impl ChannelLayerNorm {
    /// Creates the norm's scale (ones) and, with bias, its shift (zeros) under `path`.
    pub fn new(path: nn::Path<'_>, channels: i64, kind: LayerNormKind) -> Self {
        let weight = path.ones("weight", &[channels]);
        let bias = match kind {
            LayerNormKind::WithBias => Some(path.zeros("bias", &[channels])),
            LayerNormKind::BiasFree => None,
        };
        Self { weight, bias }
    }

    /// Normalises `x` (N×C×H×W) per pixel over C; the result is channels-last.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let channels = self.weight.size()[0];
        let pixels = x.permute([0, 2, 3, 1]);
        let normed = match &self.bias {
            Some(bias) => {
                pixels.layer_norm([channels], Some(&self.weight), Some(bias), EPSILON, false)
            }
            // BiasFree scales by the centred variance but does not centre the output.
            None => {
                let variance = pixels.var_dim(-1, false, true);
                &pixels * (variance + EPSILON).rsqrt() * &self.weight
            }
        };
        normed.permute([0, 3, 1, 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn with_bias_normalises_each_pixel_over_its_channels() {
        let store = nn::VarStore::new(Device::Cpu);
        let norm = ChannelLayerNorm::new(store.root(), 5, LayerNormKind::WithBias);
        tch::no_grad(|| {
            norm.weight
                .shallow_clone()
                .copy_(&Tensor::from_slice(&[1.0f32, 2.0, 0.5, -1.0, 3.0]));
            let _ = norm.bias.as_ref().unwrap().shallow_clone().fill_(0.25);
        });
        let x = Tensor::randn([2, 5, 3, 4], (Kind::Float, Device::Cpu)) * 3.0 + 1.0;
        let ours = norm.forward(&x);
        // Restormer's formula on NCHW, written out.
        let mean = x.mean_dim(1, true, None);
        let variance = x.var_dim(1, false, true);
        let reference =
            (&x - mean) * (variance + EPSILON).rsqrt() * norm.weight.view([1, 5, 1, 1]) + 0.25;
        assert!(ours.allclose(&reference, 1e-5, 1e-5, false));
        for input in [x.shallow_clone(), crate::layers::channels_last(&x)] {
            let out = norm.forward(&input);
            assert!(
                crate::layers::is_channels_last(&out),
                "output is channels-last"
            );
            assert!(out.allclose(&reference, 1e-5, 1e-5, false));
        }
    }

    #[test]
    fn bias_free_scales_without_centring() {
        let store = nn::VarStore::new(Device::Cpu);
        let norm = ChannelLayerNorm::new(store.root(), 2, LayerNormKind::BiasFree);
        // One pixel with channels (1, 3): variance 1, so the output is x / sqrt(1 + eps).
        let x = Tensor::from_slice(&[1.0f32, 3.0]).view([1, 2, 1, 1]);
        let out = Vec::<f32>::try_from(norm.forward(&x).flatten(0, -1)).unwrap();
        let expected = 1.0 / (1.0 + EPSILON).sqrt();
        assert!((out[0] as f64 - expected).abs() < 1e-6);
        assert!((out[1] as f64 - 3.0 * expected).abs() < 1e-6);
        assert_eq!(store.variables().len(), 1, "bias-free norm has no shift");
    }
}
