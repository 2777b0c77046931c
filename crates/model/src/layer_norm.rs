//! Restormer's LayerNorm: normalises each pixel's channel vector (the `to_3d` → norm →
//! `to_4d` round trip, done here directly on N×C×H×W without the reshapes).

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

    /// Normalises `x` (N×C×H×W) per pixel over C.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let channels = self.weight.size()[0];
        let scale = self.weight.view([1, channels, 1, 1]);
        let variance = x.var_dim(1, false, true);
        let inverse_std = (variance + EPSILON).rsqrt();
        match &self.bias {
            Some(bias) => {
                let mean = x.mean_dim(1, true, None);
                (x - mean) * inverse_std * scale + bias.view([1, channels, 1, 1])
            }
            // BiasFree scales by the centred variance but does not centre the output.
            None => x * inverse_std * scale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn with_bias_matches_torch_layer_norm_on_channels_last() {
        let store = nn::VarStore::new(Device::Cpu);
        let norm = ChannelLayerNorm::new(store.root(), 5, LayerNormKind::WithBias);
        let x = Tensor::randn([2, 5, 3, 4], (Kind::Float, Device::Cpu)) * 3.0 + 1.0;
        let ours = norm.forward(&x);
        let channels_last = x.permute([0, 2, 3, 1]);
        let reference = channels_last
            .layer_norm([5], None::<Tensor>, None::<Tensor>, EPSILON, false)
            .permute([0, 3, 1, 2]);
        assert!(ours.allclose(&reference, 1e-5, 1e-5, false));
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
