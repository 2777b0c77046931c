//! Restormer's transformer block, `x += MDTA(LN x); x += GDFN(LN x)`, and a stack of them.

use crate::profile::span;
use tch::{Tensor, nn};

use crate::attention::TransposedAttention;
use crate::config::LayerNormKind;
use crate::feed_forward::GatedFeedForward;
use crate::layer_norm::ChannelLayerNorm;

/// Widths shared by every block of a level.
#[derive(Clone, Copy, Debug)]
pub struct BlockShape {
    /// Feature channels.
    pub channels: i64,
    /// Attention heads (must divide `channels`).
    pub heads: i64,
    /// GDFN expansion factor.
    pub ffn_expansion: f64,
    /// Whether the convolutions carry a bias.
    pub bias: bool,
    /// LayerNorm variant.
    pub layer_norm: LayerNormKind,
}

/// One Restormer transformer block.
#[derive(Debug)]
pub struct TransformerBlock {
    norm1: ChannelLayerNorm,
    attn: TransposedAttention,
    norm2: ChannelLayerNorm,
    ffn: GatedFeedForward,
}

impl TransformerBlock {
    /// Creates the block's two norms, MDTA and GDFN under `path`.
    pub fn new(path: nn::Path<'_>, shape: BlockShape) -> Self {
        let BlockShape {
            channels,
            heads,
            ffn_expansion,
            bias,
            layer_norm,
        } = shape;
        Self {
            norm1: ChannelLayerNorm::new(&path / "norm1", channels, layer_norm),
            attn: TransposedAttention::new(&path / "attn", channels, heads, bias),
            norm2: ChannelLayerNorm::new(&path / "norm2", channels, layer_norm),
            ffn: GatedFeedForward::new(&path / "ffn", channels, ffn_expansion, bias),
        }
    }

    /// Applies both pre-norm residual sub-layers.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let attended = span("attention", || {
            self.attn
                .forward(&span("layer_norm", || self.norm1.forward(x)))
        });
        let x = residual(attended, x);
        let fed = span("feed_forward", || {
            self.ffn
                .forward(&span("layer_norm", || self.norm2.forward(&x)))
        });
        residual(fed, &x)
    }
}

/// `branch + x`; in inference into the branch's own fresh buffer rather than a new one.
pub(crate) fn residual(mut branch: Tensor, x: &Tensor) -> Tensor {
    if branch.requires_grad() || x.requires_grad() {
        branch + x
    } else {
        branch += x;
        branch
    }
}

/// Blocks applied one after the other (`nn.Sequential` of transformer blocks).
#[derive(Debug)]
pub struct TransformerStack {
    blocks: Vec<TransformerBlock>,
}

impl TransformerStack {
    /// Creates `count` blocks named `path.0`, `path.1`, …
    pub fn new(path: nn::Path<'_>, count: usize, shape: BlockShape) -> Self {
        let blocks = (0..count)
            .map(|i| TransformerBlock::new(&path / i, shape))
            .collect();
        Self { blocks }
    }

    /// Runs every block in order; an empty stack is the identity.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.blocks
            .iter()
            .fold(x.shallow_clone(), |x, block| block.forward(&x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn shape() -> BlockShape {
        BlockShape {
            channels: 8,
            heads: 2,
            ffn_expansion: 2.66,
            bias: false,
            layer_norm: LayerNormKind::WithBias,
        }
    }

    #[test]
    fn zeroed_output_projections_make_the_block_the_identity() {
        let store = nn::VarStore::new(Device::Cpu);
        let stack = TransformerStack::new(store.root() / "stack", 2, shape());
        tch::no_grad(|| {
            for (name, mut tensor) in store.variables() {
                if name.ends_with("project_out.weight") {
                    let _ = tensor.zero_();
                }
            }
        });
        let x = Tensor::randn([1, 8, 6, 5], (Kind::Float, Device::Cpu));
        assert!(stack.forward(&x).equal(&x));
    }

    #[test]
    fn uses_restormer_variable_names() {
        let store = nn::VarStore::new(Device::Cpu);
        let _stack = TransformerStack::new(store.root() / "latent", 1, shape());
        let mut names: Vec<String> = store.variables().into_keys().collect();
        names.sort();
        let expected = [
            "latent.0.attn.project_out.weight",
            "latent.0.attn.qkv.weight",
            "latent.0.attn.qkv_dwconv.weight",
            "latent.0.attn.temperature",
            "latent.0.ffn.dwconv.weight",
            "latent.0.ffn.project_in.weight",
            "latent.0.ffn.project_out.weight",
            "latent.0.norm1.bias",
            "latent.0.norm1.weight",
            "latent.0.norm2.bias",
            "latent.0.norm2.weight",
        ];
        assert_eq!(names, expected);
    }
}
