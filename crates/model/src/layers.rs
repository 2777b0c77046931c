//! Convolution and linear constructors with PyTorch's default initialisation.
//!
//! tch's defaults draw Kaiming-uniform weights with the ReLU gain, √6 times wider than
//! PyTorch's `kaiming_uniform_(a=√5)`; Restormer and PromptIR were tuned with PyTorch's, and
//! the deep residual stacks train less stably with the wider draw.

use tch::Tensor;
#[cfg(test)]
use tch::nn::Module;
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

/// `a.matmul(b)` for N×n×k and N×k×m (or broadcastable) batches, computed as one 2-D `mm`
/// per image when that is faster: libtorch's batched bfloat16 product of a transposed pixel
/// view with itself (the MDTA Gram matrix, k = H·W) took 130 ms where the same `mm` took 11 ms
/// at 512² (AVX-512 BF16 CPU; fp32 is the same either way). Exact: each image's product is
/// the same `mm` call the batched kernel makes.
pub(crate) fn batched_mm(a: &Tensor, b: &Tensor) -> Tensor {
    let (sa, sb) = (a.size(), b.size());
    if sa.len() != 3 || sb.len() != 3 || sa[0] != sb[0] {
        return a.matmul(b);
    }
    match sa[0] {
        1 => a.select(0, 0).mm(&b.select(0, 0)).unsqueeze(0),
        n if a.kind() == tch::Kind::BFloat16 => Tensor::stack(
            &(0..n)
                .map(|i| a.select(0, i).mm(&b.select(0, i)))
                .collect::<Vec<_>>(),
            0,
        ),
        _ => a.matmul(b),
    }
}

/// Multi-head attention of every pixel to a few tokens: `query` N×P×C pixel tokens, `key`
/// and `value` N×T×C, `heads` heads of C / heads channels, scaled by 1/√(C / heads); where
/// `valid` (N×T booleans) is given, invalid tokens get no weight (a pixel whose tokens are all
/// invalid gets zero). Returns N×P×C.
///
/// The logits are computed token-major (T×P per image and head) and normalised over the
/// tokens there: libtorch's softmax over a last dimension of 4–16 tokens was 7–27× slower at
/// 512² than the same softmax over the first dimension. Same arithmetic as
/// `softmax(q·kᵀ/√d)·v` in pixel-major order.
pub(crate) fn pixel_token_attention(
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    heads: i64,
    valid: Option<&Tensor>,
) -> Tensor {
    // Finite (unlike −∞): an image whose tokens are all invalid gets a uniform softmax that
    // the validity product then zeroes, with finite gradients.
    const INVALID_LOGIT: f64 = -1e9;
    let (batch, _, channels) = query.size3().expect("queries must be N×P×C");
    let head_dim = channels / heads;
    let scale = 1.0 / (head_dim as f64).sqrt();
    let images: Vec<Tensor> = (0..batch)
        .map(|n| {
            let (q, k, v) = (query.select(0, n), key.select(0, n), value.select(0, n));
            // T×1: which tokens are invalid, and the 0/1 weight that zeroes them.
            let masks = valid.map(|valid| {
                let valid = valid.select(0, n).unsqueeze(1);
                (valid.logical_not(), valid.to_kind(query.kind()))
            });
            let per_head: Vec<Tensor> = (0..heads)
                .map(|h| {
                    let part = |t: &Tensor| t.narrow(1, h * head_dim, head_dim);
                    let logits = part(&k).mm(&part(&q).tr()) * scale;
                    let weights = match &masks {
                        Some((invalid, keep)) => {
                            logits.masked_fill(invalid, INVALID_LOGIT).softmax(0, None) * keep
                        }
                        None => logits.softmax(0, None),
                    };
                    weights.tr().mm(&part(&v))
                })
                .collect();
            if heads == 1 {
                per_head.into_iter().next().expect("one head")
            } else {
                Tensor::cat(&per_head, 1)
            }
        })
        .collect();
    if batch == 1 {
        images.into_iter().next().expect("one image").unsqueeze(0)
    } else {
        Tensor::stack(&images, 0)
    }
}

/// `conv` (stride 1, "same" padding) computing only its output channels
/// `start..start + len`: a slice of its weights, so the result is a dense feature map of its
/// own rather than a channel view of a wider one. A depthwise convolution's input holds just
/// those channels. The GDFN splits its expansion this way so GELU reads dense memory:
/// libtorch's bfloat16 GELU on a channel view of a channels-last map was 13× slower than on a
/// dense one.
pub(crate) fn conv_channels(
    conv: &nn::Conv2D,
    x: &Tensor,
    start: i64,
    len: i64,
    depthwise: bool,
) -> Tensor {
    let weight = conv.ws.narrow(0, start, len);
    let bias = conv.bs.as_ref().map(|b| b.narrow(0, start, len));
    let padding = weight.size()[2] / 2;
    x.conv2d(
        &weight,
        bias.as_ref(),
        [1, 1],
        [padding, padding],
        [1, 1],
        if depthwise { len } else { 1 },
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// `softmax(q·kᵀ/√d)·v` per head in the textbook pixel-major order, invalid tokens masked.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, heads: i64, valid: &Tensor) -> Tensor {
        let (batch, pixels, channels) = q.size3().unwrap();
        let tokens = k.size()[1];
        let d = channels / heads;
        let split = |t: &Tensor, n: i64| t.reshape([batch, n, heads, d]).transpose(1, 2);
        let logits = split(q, pixels).matmul(&split(k, tokens).transpose(2, 3)) / (d as f64).sqrt();
        let valid = valid.view([batch, 1, 1, tokens]);
        let weights = logits
            .masked_fill(&valid.logical_not(), -1e9)
            .softmax(-1, None)
            * valid.to_kind(Kind::Float);
        weights
            .matmul(&split(v, tokens))
            .transpose(1, 2)
            .reshape([batch, pixels, channels])
    }

    #[test]
    fn pixel_token_attention_matches_the_pixel_major_formula() {
        tch::manual_seed(3);
        for (batch, heads) in [(1, 1), (2, 2), (3, 4)] {
            let opts = (Kind::Float, Device::Cpu);
            let q = Tensor::randn([batch, 30, 8], opts);
            let k = Tensor::randn([batch, 5, 8], opts);
            let v = Tensor::randn([batch, 5, 8], opts);
            let valid = Tensor::rand([batch, 5], opts).gt(0.3);
            // The first image has no valid token at all: zero output, not NaN.
            let _ = valid.get(0).fill_(0);
            let ours = pixel_token_attention(&q, &k, &v, heads, Some(&valid));
            let expected = reference(&q, &k, &v, heads, &valid);
            assert_eq!(ours.size(), [batch, 30, 8]);
            assert!(
                ours.allclose(&expected, 1e-5, 1e-6, false),
                "{batch} × {heads}"
            );
            assert_eq!(ours.get(0).abs().max().double_value(&[]), 0.0);
            let all = Tensor::ones([batch, 5], (Kind::Bool, Device::Cpu));
            let unmasked = pixel_token_attention(&q, &k, &v, heads, None);
            assert!(unmasked.allclose(&reference(&q, &k, &v, heads, &all), 1e-5, 1e-6, false));
        }
    }

    #[test]
    fn batched_mm_and_channel_slices_match_the_plain_forms() {
        tch::manual_seed(5);
        let opts = (Kind::Float, Device::Cpu);
        for batch in [1, 3] {
            let a = Tensor::randn([batch, 7, 40], opts);
            let b = Tensor::randn([batch, 40, 6], opts);
            assert!(batched_mm(&a, &b).allclose(&a.matmul(&b), 1e-5, 1e-6, false));
            let (a, b) = (a.to_kind(Kind::BFloat16), b.to_kind(Kind::BFloat16));
            let ours = batched_mm(&a.transpose(1, 2), &a).to_kind(Kind::Float);
            let plain = a.transpose(1, 2).matmul(&a).to_kind(Kind::Float);
            assert!(ours.allclose(&plain, 1e-2, 1e-2, false));
            assert_eq!(batched_mm(&a, &b).size(), [batch, 7, 6]);
        }
        let store = nn::VarStore::new(Device::Cpu);
        let wide = conv2d(store.root() / "wide", 4, 6, 1, 1, true);
        let depthwise = depthwise3x3(store.root() / "dw", 6, true);
        let x = Tensor::randn([2, 4, 5, 7], opts);
        let full = depthwise.forward(&wide.forward(&x));
        let upper = conv_channels(
            &depthwise,
            &conv_channels(&wide, &x, 3, 3, false),
            3,
            3,
            true,
        );
        assert!(upper.allclose(&full.narrow(1, 3, 3), 1e-5, 1e-6, false));
    }
}
