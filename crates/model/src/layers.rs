//! Convolution and linear constructors with PyTorch's default initialisation.
//!
//! tch's defaults draw Kaiming-uniform weights with the ReLU gain, √6 times wider than
//! PyTorch's `kaiming_uniform_(a=√5)`; Restormer and PromptIR were tuned with PyTorch's, and
//! the deep residual stacks train less stably with the wider draw.

use tch::Tensor;
use tch::nn::{self, Init};

/// `x` (N×C×H×W) with channels-last strides: the same shape and values, laid out pixel by
/// pixel. Every feature map of the network lives in this layout on the CPU because oneDNN's
/// depthwise convolutions and libtorch's LayerNorm kernel are several times faster on it
/// than on NCHW (measured in `clearair train benchmark`), and the per-pixel channel views
/// below ([`pixel_tokens`]) then cost no copy.
pub(crate) fn channels_last(x: &Tensor) -> Tensor {
    if is_channels_last(x) {
        return x.shallow_clone();
    }
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Whether `x` (4-D) is laid out channels-last (dense, channel stride 1).
pub(crate) fn is_channels_last(x: &Tensor) -> bool {
    x.dim() == 4 && x.permute([0, 2, 3, 1]).is_contiguous()
}

/// N×C×H×W features as N×(H·W)×C pixel tokens (a view when `x` is channels-last).
pub(crate) fn pixel_tokens(x: &Tensor) -> Tensor {
    let (batch, channels, _, _) = x.size4().expect("features must be N×C×H×W");
    x.permute([0, 2, 3, 1]).reshape([batch, -1, channels])
}

/// The inverse of [`pixel_tokens`]: N×(H·W)×C tokens as channels-last N×C×H×W features.
pub(crate) fn from_pixel_tokens(tokens: &Tensor, height: i64, width: i64) -> Tensor {
    let (batch, _, channels) = tokens.size3().expect("tokens must be N×P×C");
    tokens
        .reshape([batch, height, width, channels])
        .permute([0, 3, 1, 2])
}

/// PyTorch's default weight init for `Conv2d` and `Linear`: U(−1/√fan_in, 1/√fan_in).
fn torch_weight_init() -> Init {
    Init::Kaiming {
        dist: nn::init::NormalOrUniform::Uniform,
        fan: nn::init::FanInOut::FanIn,
        non_linearity: nn::init::NonLinearity::ExplicitGain(1.0 / 3f64.sqrt()),
    }
}

/// PyTorch's default bias init, U(−1/√fan_in, 1/√fan_in).
fn torch_bias_init(fan_in: i64) -> Init {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// A 2-D convolution with "same" padding for odd kernels.
pub(crate) fn conv2d(
    path: nn::Path<'_>,
    in_channels: i64,
    out_channels: i64,
    kernel: i64,
    groups: i64,
    bias: bool,
) -> nn::Conv2D {
    strided_conv2d(path, in_channels, out_channels, kernel, 1, groups, bias)
}

/// A 2-D convolution with padding `kernel / 2` and the given stride.
pub(crate) fn strided_conv2d(
    path: nn::Path<'_>,
    in_channels: i64,
    out_channels: i64,
    kernel: i64,
    stride: i64,
    groups: i64,
    bias: bool,
) -> nn::Conv2D {
    let fan_in = in_channels / groups * kernel * kernel;
    nn::conv2d(
        path,
        in_channels,
        out_channels,
        kernel,
        nn::ConvConfig {
            stride,
            padding: kernel / 2,
            groups,
            bias,
            ws_init: torch_weight_init(),
            bs_init: torch_bias_init(fan_in),
            ..Default::default()
        },
    )
}

/// A depthwise 3×3 convolution (one filter per channel).
pub(crate) fn depthwise3x3(path: nn::Path<'_>, channels: i64, bias: bool) -> nn::Conv2D {
    conv2d(path, channels, channels, 3, channels, bias)
}

/// A fully-connected layer with a bias.
pub(crate) fn linear(path: nn::Path<'_>, in_dim: i64, out_dim: i64) -> nn::Linear {
    nn::linear(
        path,
        in_dim,
        out_dim,
        nn::LinearConfig {
            ws_init: torch_weight_init(),
            bs_init: Some(torch_bias_init(in_dim)),
            bias: true,
        },
    )
}

/// A fully-connected layer whose weight and bias start at constants, for modules that must be
/// the identity (or a no-op residual) at initialisation.
pub(crate) fn constant_linear(
    path: nn::Path<'_>,
    in_dim: i64,
    out_dim: i64,
    weight: f64,
    bias: f64,
) -> nn::Linear {
    nn::linear(
        path,
        in_dim,
        out_dim,
        nn::LinearConfig {
            ws_init: Init::Const(weight),
            bs_init: Some(Init::Const(bias)),
            bias: true,
        },
    )
}
