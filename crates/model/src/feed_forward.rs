//! GDFN, Restormer's gated-Dconv feed-forward network: a GELU-gated depthwise-convolved
//! expansion to `int(C·γ)` hidden channels.

use crate::profile::span;
use tch::{Tensor, nn, nn::Module};

use crate::layers::{conv_channels, conv2d, depthwise3x3};

/// Gated-Dconv feed-forward network.
#[derive(Debug)]
pub struct GatedFeedForward {
    project_in: nn::Conv2D,
    dwconv: nn::Conv2D,
    project_out: nn::Conv2D,
}

/// Hidden width of the GDFN: Python's `int(channels * expansion)` (truncation).
pub fn ffn_hidden_channels(channels: i64, expansion: f64) -> i64 {
    (channels as f64 * expansion) as i64
}

impl GatedFeedForward {
    /// Creates the 1×1 C→2·hidden projection, the depthwise 3×3 and the 1×1 hidden→C output.
    pub fn new(path: nn::Path<'_>, channels: i64, expansion: f64, bias: bool) -> Self {
        let hidden = ffn_hidden_channels(channels, expansion);
        Self {
            project_in: conv2d(&path / "project_in", channels, 2 * hidden, 1, 1, bias),
            dwconv: depthwise3x3(&path / "dwconv", 2 * hidden, bias),
            project_out: conv2d(&path / "project_out", hidden, channels, 1, 1, bias),
        }
    }

    /// Applies `project_out(GELU(x1) · x2)` where `x1, x2` are the halves of the expansion.
    ///
    /// Each half is computed on its own (the 1×1 and depthwise weights sliced; the same
    /// arithmetic as one wide convolution and a split), so GELU and the product read dense
    /// feature maps instead of channel views of the expansion.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let hidden = self.dwconv.ws.size()[0] / 2;
        let half = |index: i64| {
            let expanded = span("project_in_conv1x1", || {
                conv_channels(&self.project_in, x, index * hidden, hidden, false)
            });
            span("dwconv3x3", || {
                conv_channels(&self.dwconv, &expanded, index * hidden, hidden, true)
            })
        };
        let (gate, value) = (half(0), half(1));
        let gated = span("gelu_gate", || {
            let mut gate = gate.gelu("none");
            if gate.requires_grad() {
                gate * &value
            } else {
                // Inference: multiply into the fresh GELU output instead of a third buffer.
                gate *= &value;
                gate
            }
        });
        span("project_out_conv1x1", || self.project_out.forward(&gated))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn hidden_width_truncates_like_python_int() {
        assert_eq!(ffn_hidden_channels(48, 2.66), 127);
        assert_eq!(ffn_hidden_channels(96, 2.66), 255);
        assert_eq!(ffn_hidden_channels(384, 2.66), 1021);
    }

    /// With the depthwise filter reduced to its centre tap and 1×1 projections, each pixel is
    /// an independent MLP, so the gating order (GELU on the first half) can be checked
    /// against explicit matrix products.
    #[test]
    fn gates_the_second_half_with_gelu_of_the_first() {
        let store = nn::VarStore::new(Device::Cpu);
        let ffn = GatedFeedForward::new(store.root(), 2, 0.5, false);
        tch::no_grad(|| {
            let kernel = ffn.dwconv.ws.zeros_like();
            let _ = kernel.narrow(2, 1, 1).narrow(3, 1, 1).fill_(1.0);
            ffn.dwconv.ws.shallow_clone().copy_(&kernel);
        });
        let x = Tensor::randn([1, 2, 3, 3], (Kind::Float, Device::Cpu));
        let pixels = x.permute([0, 2, 3, 1]).reshape([-1, 2]);
        let expanded = pixels.matmul(&ffn.project_in.ws.view([2, 2]).tr());
        let gated = expanded.narrow(1, 0, 1).gelu("none") * expanded.narrow(1, 1, 1);
        let reference = gated.matmul(&ffn.project_out.ws.view([2, 1]).tr());
        let ours = ffn.forward(&x).permute([0, 2, 3, 1]).reshape([-1, 2]);
        assert!(ours.allclose(&reference, 1e-5, 1e-6, false));
    }
}
