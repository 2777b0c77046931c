//! Convolution and linear constructors with PyTorch's default initialisation.
//!
//! tch's defaults draw Kaiming-uniform weights with the ReLU gain, √6 times wider than
//! PyTorch's `kaiming_uniform_(a=√5)`; Restormer and PromptIR were tuned with PyTorch's, and
//! the deep residual stacks train less stably with the wider draw.

use tch::nn::{self, Init};

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
