//! PromptIR's prompt generation and the prompt transformer block it places in the decoder.

use tch::{Tensor, nn, nn::Module};

use crate::layers::{channels_last, conv2d, linear};
use crate::transformer::{BlockShape, TransformerBlock};

/// PromptGenBlock: blends `length` learnable prompts (D×S×S each) with weights predicted from
/// the globally pooled features, resizes the blend to the features and refines it with a 3×3
/// convolution.
#[derive(Debug)]
pub struct PromptGenBlock {
    /// `length`×D×S×S learnable prompt components.
    prompt_param: Tensor,
    linear_layer: nn::Linear,
    conv3x3: nn::Conv2D,
}

/// Widths of one prompt generator.
#[derive(Clone, Copy, Debug)]
pub struct PromptShape {
    /// Channels of the features the weights are predicted from.
    pub feature_channels: i64,
    /// Number of prompt components.
    pub length: i64,
    /// Channels of each prompt.
    pub dim: i64,
    /// Stored spatial size of each prompt.
    pub size: i64,
}

impl PromptGenBlock {
    /// Creates the prompt components (uniform in [0, 1) as in PromptIR), the linear layer and
    /// the 3×3 convolution.
    pub fn new(path: nn::Path<'_>, shape: PromptShape) -> Self {
        let PromptShape {
            feature_channels,
            length,
            dim,
            size,
        } = shape;
        Self {
            prompt_param: path.var(
                "prompt_param",
                &[length, dim, size, size],
                nn::Init::Uniform { lo: 0.0, up: 1.0 },
            ),
            linear_layer: linear(&path / "linear_layer", feature_channels, length),
            conv3x3: conv2d(&path / "conv3x3", dim, dim, 3, 1, false),
        }
    }

    /// Softmax weights (N×length) over the prompt components for features `x` (N×C×H×W).
    pub fn prompt_weights(&self, x: &Tensor) -> Tensor {
        let pooled = x.mean_dim(&[2, 3][..], false, None);
        self.linear_layer.forward(&pooled).softmax(1, None)
    }

    /// The prompt for `x`: N×D×H×W.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let (batch, _, height, width) = x.size4().expect("prompt generation expects N×C×H×W");
        let [length, dim, size, _] = self.prompt_param.size()[..] else {
            unreachable!("prompt_param is created 4-D")
        };
        let blended = self
            .prompt_weights(x)
            .matmul(&self.prompt_param.view([length, -1]))
            .view([batch, dim, size, size]);
        let resized = blended.upsample_bilinear2d([height, width], false, None, None);
        self.conv3x3.forward(&channels_last(&resized))
    }
}

/// The decoder's prompt block: concatenates the generated prompt to the features, mixes both
/// with a transformer block and maps back to the feature width with a 1×1 convolution.
#[derive(Debug)]
pub struct PromptTransformerBlock {
    generator: PromptGenBlock,
    block: TransformerBlock,
    reduce: nn::Conv2D,
}

impl PromptTransformerBlock {
    /// `mixer` describes the transformer block; its `channels` are replaced by features +
    /// prompt channels. The output has `shape.feature_channels` channels.
    pub fn new(path: nn::Path<'_>, shape: PromptShape, mixer: BlockShape) -> Self {
        let mixed = shape.feature_channels + shape.dim;
        Self {
            generator: PromptGenBlock::new(&path / "generator", shape),
            block: TransformerBlock::new(
                &path / "block",
                BlockShape {
                    channels: mixed,
                    ..mixer
                },
            ),
            reduce: conv2d(
                &path / "reduce",
                mixed,
                shape.feature_channels,
                1,
                1,
                mixer.bias,
            ),
        }
    }

    /// Applies the block to `x` (N×C×H×W), returning N×C×H×W.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let prompt = self.generator.forward(x);
        let mixed = self.block.forward(&Tensor::cat(&[x, &prompt], 1));
        self.reduce.forward(&mixed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LayerNormKind;
    use tch::{Device, Kind};

    fn shape() -> PromptShape {
        PromptShape {
            feature_channels: 6,
            length: 3,
            dim: 2,
            size: 4,
        }
    }

    #[test]
    fn weights_are_a_distribution_over_the_components() {
        let store = nn::VarStore::new(Device::Cpu);
        let generator = PromptGenBlock::new(store.root(), shape());
        let x = Tensor::randn([4, 6, 5, 7], (Kind::Float, Device::Cpu));
        let weights = generator.prompt_weights(&x);
        assert_eq!(weights.size(), [4, 3]);
        let sums = weights.sum_dim_intlist(1, false, None);
        assert!(sums.allclose(
            &Tensor::ones([4], (Kind::Float, Device::Cpu)),
            1e-6,
            1e-6,
            false
        ));
        assert_eq!(generator.forward(&x).size(), [4, 2, 5, 7]);
    }

    /// Forcing the weights onto one component must give that component, resized and convolved.
    #[test]
    fn a_one_hot_weighting_selects_that_component() {
        let store = nn::VarStore::new(Device::Cpu);
        let generator = PromptGenBlock::new(store.root(), shape());
        tch::no_grad(|| {
            let _ = generator.linear_layer.ws.shallow_clone().zero_();
            let bias = Tensor::from_slice(&[-50.0f32, 50.0, -50.0]);
            generator
                .linear_layer
                .bs
                .as_ref()
                .unwrap()
                .shallow_clone()
                .copy_(&bias);
        });
        let x = Tensor::randn([1, 6, 9, 9], (Kind::Float, Device::Cpu));
        let component = generator.prompt_param.get(1).unsqueeze(0);
        let expected =
            generator
                .conv3x3
                .forward(&component.upsample_bilinear2d([9, 9], false, None, None));
        assert!(generator.forward(&x).allclose(&expected, 1e-5, 1e-6, false));
    }

    #[test]
    fn prompt_block_keeps_the_feature_shape() {
        let store = nn::VarStore::new(Device::Cpu);
        let mixer = BlockShape {
            channels: 0,
            heads: 4,
            ffn_expansion: 2.66,
            bias: false,
            layer_norm: LayerNormKind::WithBias,
        };
        let block = PromptTransformerBlock::new(store.root(), shape(), mixer);
        let x = Tensor::randn([2, 6, 3, 5], (Kind::Float, Device::Cpu));
        assert_eq!(block.forward(&x).size(), [2, 6, 3, 5]);
        assert_eq!(
            store.variables()["block.attn.qkv.weight"].size(),
            [24, 8, 1, 1]
        );
    }
}
