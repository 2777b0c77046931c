//! Task Identifier and Degradation-Aware Module: the degradation embedding F_d selects a blend
//! of learnable degradation prompts (F_p), which marks *where* the degradation is (a spatial
//! mask that gates a feature update); the content embedding F_c is attended to for
//! content-aware enhancement.

use tch::{Tensor, nn, nn::Module};

use crate::layer_norm::ChannelLayerNorm;
use crate::layers::{conv2d, from_pixel_tokens, linear, pixel_token_attention, pixel_tokens};
use crate::transformer::BlockShape;

/// F_d → MLP → softmax over `task_prompts` learnable prompt vectors → F_p.
#[derive(Debug)]
pub struct TaskIdentifier {
    hidden: nn::Linear,
    logits: nn::Linear,
    /// `task_prompts`×`prompt_dim` learnable degradation prompts.
    prompts: Tensor,
}

/// What the Task Identifier infers from F_d.
#[derive(Debug)]
pub struct TaskPrompt {
    /// Softmax weights over the prompt set, N×task_prompts (each row sums to 1).
    pub weights: Tensor,
    /// The degradation prompt F_p, N×prompt_dim.
    pub prompt: Tensor,
}

impl TaskIdentifier {
    /// Creates the two-layer MLP and the prompt set.
    pub fn new(
        path: nn::Path<'_>,
        degradation_dim: i64,
        hidden_dim: i64,
        task_prompts: i64,
        prompt_dim: i64,
    ) -> Self {
        Self {
            hidden: linear(&path / "hidden", degradation_dim, hidden_dim),
            logits: linear(&path / "logits", hidden_dim, task_prompts),
            prompts: path.var(
                "prompts",
                &[task_prompts, prompt_dim],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                },
            ),
        }
    }

    /// Maps F_d (N×degradation_dim) to prompt weights and F_p.
    pub fn forward(&self, degradation: &Tensor) -> TaskPrompt {
        let hidden = self.hidden.forward(degradation).gelu("none");
        let weights = self.logits.forward(&hidden).softmax(-1, None);
        let prompt = weights.matmul(&self.prompts);
        TaskPrompt { weights, prompt }
    }
}

/// Expands F_c into a few normalised content tokens shared by every level's DAM.
#[derive(Debug)]
pub struct ContentTokens {
    tokens: i64,
    token_dim: i64,
    proj: nn::Linear,
    norm: nn::LayerNorm,
}

impl ContentTokens {
    /// Creates the projection F_c → `tokens`×`token_dim` and the per-token LayerNorm.
    pub fn new(path: nn::Path<'_>, content_dim: i64, tokens: i64, token_dim: i64) -> Self {
        Self {
            tokens,
            token_dim,
            proj: linear(&path / "proj", content_dim, tokens * token_dim),
            norm: nn::layer_norm(&path / "norm", vec![token_dim], Default::default()),
        }
    }

    /// Maps F_c (N×content_dim) to N×tokens×token_dim.
    pub fn forward(&self, content: &Tensor) -> Tensor {
        let batch = content.size()[0];
        let tokens = self
            .proj
            .forward(content)
            .view([batch, self.tokens, self.token_dim]);
        self.norm.forward(&tokens)
    }
}

/// One level's DAM.
#[derive(Debug)]
pub struct DegradationAwareModule {
    heads: i64,
    norm_degradation: ChannelLayerNorm,
    prompt_to_channels: nn::Linear,
    mask_conv: nn::Conv2D,
    modulation: nn::Conv2D,
    norm_content: ChannelLayerNorm,
    query: nn::Conv2D,
    key: nn::Linear,
    value: nn::Linear,
    project_out: nn::Conv2D,
}

impl DegradationAwareModule {
    /// Creates the module for features of `shape.channels` channels, F_p of `prompt_dim` and
    /// content tokens of `token_dim`.
    pub fn new(path: nn::Path<'_>, shape: BlockShape, prompt_dim: i64, token_dim: i64) -> Self {
        let channels = shape.channels;
        Self {
            heads: shape.heads,
            norm_degradation: ChannelLayerNorm::new(
                &path / "norm_degradation",
                channels,
                shape.layer_norm,
            ),
            prompt_to_channels: linear(&path / "prompt_to_channels", prompt_dim, channels),
            mask_conv: conv2d(&path / "mask_conv", channels, 1, 1, 1, true),
            modulation: conv2d(&path / "modulation", channels, channels, 1, 1, shape.bias),
            norm_content: ChannelLayerNorm::new(&path / "norm_content", channels, shape.layer_norm),
            query: conv2d(&path / "query", channels, channels, 1, 1, shape.bias),
            key: linear(&path / "key", token_dim, channels),
            value: linear(&path / "value", token_dim, channels),
            project_out: conv2d(&path / "project_out", channels, channels, 1, 1, shape.bias),
        }
    }

    /// Prompt-gated features (N×C×H×W) and the spatial degradation mask (N×1×H×W in (0, 1)).
    fn prompt_gate(&self, x: &Tensor, prompt: &Tensor) -> (Tensor, Tensor) {
        let direction = self
            .prompt_to_channels
            .forward(prompt)
            .unsqueeze(-1)
            .unsqueeze(-1);
        let gated = self.norm_degradation.forward(x) * direction;
        let mask = self.mask_conv.forward(&gated).sigmoid();
        (gated, mask)
    }

    /// Where F_p says the degradation is: N×1×H×W in (0, 1).
    pub fn degradation_mask(&self, x: &Tensor, prompt: &Tensor) -> Tensor {
        self.prompt_gate(x, prompt).1
    }

    /// Applies the masked prompt modulation, then the cross-attention to the content tokens
    /// (N×T×token_dim); both residual.
    pub fn forward(&self, x: &Tensor, prompt: &Tensor, content_tokens: &Tensor) -> Tensor {
        let (_, _, height, width) = x.size4().expect("DAM expects N×C×H×W");
        let (gated, mask) = self.prompt_gate(x, prompt);
        let x = x + self.modulation.forward(&gated) * mask;

        let query = pixel_tokens(&self.query.forward(&self.norm_content.forward(&x)));
        let attended = pixel_token_attention(
            &query,
            &self.key.forward(content_tokens),
            &self.value.forward(content_tokens),
            self.heads,
            None,
        );
        let attended = from_pixel_tokens(&attended, height, width);
        &x + self.project_out.forward(&attended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LayerNormKind;
    use tch::{Device, Kind};

    #[test]
    fn prompt_weights_are_a_softmax_and_blend_the_prompt_set() {
        let store = nn::VarStore::new(Device::Cpu);
        let identifier = TaskIdentifier::new(store.root(), 512, 32, 6, 10);
        let degradation = Tensor::randn([3, 512], (Kind::Float, Device::Cpu));
        let TaskPrompt { weights, prompt } = identifier.forward(&degradation);
        assert_eq!(weights.size(), [3, 6]);
        assert_eq!(prompt.size(), [3, 10]);
        let sums = weights.sum_dim_intlist(1, false, None);
        assert!(sums.allclose(
            &Tensor::ones([3], (Kind::Float, Device::Cpu)),
            1e-6,
            1e-6,
            false
        ));
        assert!(bool::try_from(weights.gt(0.0).all()).unwrap());
        let manual = (weights.unsqueeze(-1) * identifier.prompts.unsqueeze(0))
            .sum_dim_intlist(1, false, None);
        assert!(prompt.allclose(&manual, 1e-5, 1e-6, false));
    }

    fn module() -> (nn::VarStore, DegradationAwareModule, ContentTokens) {
        let store = nn::VarStore::new(Device::Cpu);
        let shape = BlockShape {
            channels: 8,
            heads: 2,
            ffn_expansion: 2.66,
            bias: false,
            layer_norm: LayerNormKind::WithBias,
        };
        let dam = DegradationAwareModule::new(store.root() / "dam", shape, 6, 5);
        let tokens = ContentTokens::new(store.root() / "tokens", 512, 3, 5);
        (store, dam, tokens)
    }

    #[test]
    fn the_degradation_mask_is_spatial_and_follows_the_prompt() {
        let (_store, dam, _) = module();
        let x = Tensor::randn([2, 8, 5, 7], (Kind::Float, Device::Cpu));
        let prompt_a = Tensor::randn([2, 6], (Kind::Float, Device::Cpu));
        let prompt_b = Tensor::randn([2, 6], (Kind::Float, Device::Cpu));
        let mask = dam.degradation_mask(&x, &prompt_a);
        assert_eq!(mask.size(), [2, 1, 5, 7]);
        assert!(bool::try_from(mask.gt(0.0).logical_and(&mask.lt(1.0)).all()).unwrap());
        assert!(
            mask.std(true).double_value(&[]) > 1e-4,
            "mask must vary over pixels"
        );
        assert!(!mask.allclose(&dam.degradation_mask(&x, &prompt_b), 1e-4, 1e-4, false));
    }

    #[test]
    fn output_keeps_shape_and_depends_on_the_content_embedding() {
        let (_store, dam, tokens) = module();
        let x = Tensor::randn([2, 8, 4, 3], (Kind::Float, Device::Cpu));
        let prompt = Tensor::randn([2, 6], (Kind::Float, Device::Cpu));
        let content_a = tokens.forward(&Tensor::randn([2, 512], (Kind::Float, Device::Cpu)));
        let content_b = tokens.forward(&Tensor::randn([2, 512], (Kind::Float, Device::Cpu)));
        assert_eq!(content_a.size(), [2, 3, 5]);
        let a = dam.forward(&x, &prompt, &content_a);
        assert_eq!(a.size(), [2, 8, 4, 3]);
        assert!(!a.allclose(&dam.forward(&x, &prompt, &content_b), 1e-4, 1e-4, false));
    }
}
