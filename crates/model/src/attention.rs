//! MDTA, Restormer's multi-Dconv-head transposed attention: attention across channels (a
//! C/h × C/h map per head), so its cost grows linearly with the number of pixels.

use crate::profile::span;
use tch::{Tensor, nn, nn::Module};

use crate::layers::{batched_mm, conv2d, depthwise3x3, from_pixel_tokens, pixel_tokens};

/// Multi-Dconv head transposed attention.
#[derive(Debug)]
pub struct TransposedAttention {
    heads: i64,
    /// One learned softmax temperature per head (h×1×1).
    temperature: Tensor,
    qkv: nn::Conv2D,
    qkv_dwconv: nn::Conv2D,
    project_out: nn::Conv2D,
}

impl TransposedAttention {
    /// Creates the 1×1 C→3C projection, its depthwise 3×3 and the 1×1 output projection.
    pub fn new(path: nn::Path<'_>, channels: i64, heads: i64, bias: bool) -> Self {
        Self {
            heads,
            temperature: path.ones("temperature", &[heads, 1, 1]),
            qkv: conv2d(&path / "qkv", channels, 3 * channels, 1, 1, bias),
            qkv_dwconv: depthwise3x3(&path / "qkv_dwconv", 3 * channels, bias),
            project_out: conv2d(&path / "project_out", channels, channels, 1, 1, bias),
        }
    }

    /// Applies the attention to `x` (N×C×H×W) and returns N×C×H×W.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let (batch, channels, height, width) = x.size4().expect("MDTA expects N×C×H×W");
        let head_dim = channels / self.heads;
        let qkv = span("qkv_conv1x1", || self.qkv.forward(x));
        let qkv = span("qkv_dwconv3x3", || self.qkv_dwconv.forward(&qkv));
        let mixed = span("channel_attention", || {
            // N×P×3C: a view of channels-last features; q, k and v are strided views of it.
            let tokens = pixel_tokens(&qkv);
            let part = |index: i64| tokens.narrow(2, index * channels, channels);
            let value = part(2);
            // One product (q|k)ᵀ(q|k) over the pixels gives qᵀk and, on its diagonal, the
            // squared norms F.normalize divides q and k by: normalising scales the rows and
            // columns of qᵀk, so the 2C×2C product is divided instead of the P×C features
            // (strided norm reductions over the pixels cost more than the product itself).
            let query_key = tokens.narrow(2, 0, 2 * channels);
            let products = batched_mm(&query_key.transpose(1, 2), &query_key);
            // max(‖·‖, 1e-12) as F.normalize floors it, clamped before the root so that a
            // zero channel has a zero gradient rather than 0·∞.
            let norms = products.diagonal(0, 1, 2).clamp_min(1e-24).sqrt();
            let scale = norms
                .narrow(1, 0, channels)
                .view([batch, self.heads, head_dim, 1])
                * norms
                    .narrow(1, channels, channels)
                    .view([batch, self.heads, 1, head_dim]);
            let gram = products
                .narrow(1, 0, channels)
                .narrow(2, channels, channels);
            // Each head's diagonal block of qᵀk: N×h×d×d.
            let blocks = gram
                .view([batch, self.heads, head_dim, self.heads, head_dim])
                .diagonal(0, 1, 3)
                .permute([0, 3, 1, 2]);
            let attention = (blocks / scale * &self.temperature).softmax(-1, None);
            // Each head's values times Aᵀ, written straight into N×P×C (channels-last).
            let mixed = if self.heads == 1 {
                batched_mm(&value, &attention.select(1, 0).transpose(-2, -1))
            } else {
                let per_head: Vec<Tensor> = (0..self.heads)
                    .map(|h| {
                        batched_mm(
                            &value.narrow(2, h * head_dim, head_dim),
                            &attention.select(1, h).transpose(-2, -1),
                        )
                    })
                    .collect();
                Tensor::cat(&per_head, 2)
            };
            from_pixel_tokens(&mixed, height, width)
        });
        span("project_out_conv1x1", || self.project_out.forward(&mixed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// A scalar re-derivation of MDTA on a 4-channel, 2-head, 2×2 input, from the module's
    /// own weights: pins the head split (consecutive channels), the normalisation axis (HW)
    /// and the temperature.
    #[test]
    fn matches_a_scalar_reference() {
        tch::manual_seed(7);
        let store = nn::VarStore::new(Device::Cpu);
        let attention = TransposedAttention::new(store.root(), 4, 2, false);
        tch::no_grad(|| {
            attention
                .temperature
                .shallow_clone()
                .copy_(&Tensor::from_slice(&[0.5f32, 2.0]).view([2, 1, 1]));
        });
        let x = Tensor::randn([1, 4, 2, 2], (Kind::Float, Device::Cpu));
        let ours = Vec::<f32>::try_from(attention.forward(&x).flatten(0, -1)).unwrap();

        let qkv = attention.qkv_dwconv.forward(&attention.qkv.forward(&x));
        let qkv = Vec::<f32>::try_from(qkv.flatten(0, -1)).unwrap();
        let pixel = |channel: usize, p: usize| f64::from(qkv[channel * 4 + p]);
        let normalised = |channel: usize| -> Vec<f64> {
            let norm = (0..4)
                .map(|p| pixel(channel, p).powi(2))
                .sum::<f64>()
                .sqrt();
            (0..4).map(|p| pixel(channel, p) / norm).collect()
        };
        let temperatures = [0.5, 2.0];
        let mut mixed = vec![0.0f64; 16];
        for head in 0..2 {
            for row in 0..2 {
                let q = normalised(head * 2 + row);
                let logits: Vec<f64> = (0..2)
                    .map(|col| {
                        let k = normalised(4 + head * 2 + col);
                        temperatures[head] * q.iter().zip(&k).map(|(a, b)| a * b).sum::<f64>()
                    })
                    .collect();
                let total: f64 = logits.iter().map(|l| l.exp()).sum();
                for (col, logit) in logits.iter().enumerate() {
                    let weight = logit.exp() / total;
                    for p in 0..4 {
                        mixed[(head * 2 + row) * 4 + p] += weight * pixel(8 + head * 2 + col, p);
                    }
                }
            }
        }
        let mixed = Tensor::from_slice(&mixed)
            .to_kind(Kind::Float)
            .view([1, 4, 2, 2]);
        let reference =
            Vec::<f32>::try_from(attention.project_out.forward(&mixed).flatten(0, -1)).unwrap();
        for (a, b) in ours.iter().zip(&reference) {
            assert!((a - b).abs() < 1e-5, "{ours:?} vs {reference:?}");
        }
    }

    #[test]
    fn keeps_shape_for_odd_sizes() {
        let store = nn::VarStore::new(Device::Cpu);
        let attention = TransposedAttention::new(store.root(), 8, 4, true);
        let x = Tensor::randn([2, 8, 5, 7], (Kind::Float, Device::Cpu));
        assert_eq!(attention.forward(&x).size(), [2, 8, 5, 7]);
    }
}
