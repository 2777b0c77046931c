//! The embedded degradation encoder, the CPU stand-in for DA-CLIP: a small strided conv net
//! whose pooled feature statistics feed two heads, F_c (what the image shows) and F_d (what
//! is wrong with it), plus multi-label logits over the degradation kinds.
//!
//! Mean *and* standard deviation are pooled at every scale: noise and rain live in the
//! spread of fine-scale responses, which a mean alone averages away. The pooled statistics
//! are batch-normalised before the heads: raw, they share a large image-independent
//! component, and at initialisation every image's embedding pointed the same way (cosine
//! similarity 0.9999), which stalls the contrastive terms for hundreds of steps.

use tch::{Kind, Reduction, Tensor, nn, nn::Module, nn::ModuleT};

use crate::config::EncoderConfig;
use crate::layers::{linear, strided_conv2d};
use crate::synthesis::DegradationKind;

/// Variance floor of the std pooling (keeps the gradient finite on flat images).
const STD_EPSILON: f64 = 1e-6;

/// What the encoder says about a batch of images.
#[derive(Debug)]
pub struct EncoderOutput {
    /// Content embedding F_c, N×content_dim, unit L2 norm.
    pub content: Tensor,
    /// Degradation embedding F_d, N×degradation_dim, unit L2 norm.
    pub degradation: Tensor,
    /// Multi-label logits over [`DegradationKind::ALL`], N×5.
    pub logits: Tensor,
}

impl EncoderOutput {
    /// Per-kind probabilities (sigmoid of the logits); several kinds may be likely at once.
    pub fn probabilities(&self) -> Tensor {
        self.logits.sigmoid()
    }
}

/// Two 3×3 convolutions, the first with the stage's stride, each followed by GELU.
#[derive(Debug)]
struct Stage {
    reduce: nn::Conv2D,
    refine: nn::Conv2D,
}

impl Stage {
    fn new(path: nn::Path<'_>, from: i64, to: i64, stride: i64) -> Self {
        Self {
            reduce: strided_conv2d(&path / "reduce", from, to, 3, stride, 1, true),
            refine: strided_conv2d(&path / "refine", to, to, 3, 1, 1, true),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.refine
            .forward(&self.reduce.forward(x).gelu("none"))
            .gelu("none")
    }
}

/// A two-layer MLP head.
#[derive(Debug)]
struct Head {
    hidden: nn::Linear,
    out: nn::Linear,
}

impl Head {
    fn new(path: nn::Path<'_>, from: i64, hidden: i64, to: i64) -> Self {
        Self {
            hidden: linear(&path / "hidden", from, hidden),
            out: linear(&path / "out", hidden, to),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.out.forward(&self.hidden.forward(x).gelu("none"))
    }
}

/// The degradation encoder.
#[derive(Debug)]
pub struct DegradationEncoder {
    config: EncoderConfig,
    /// A full-resolution stem followed by three stride-2 stages.
    stages: Vec<Stage>,
    pooled_norm: nn::BatchNorm,
    degradation_head: Head,
    content_head: Head,
    classifier: nn::Linear,
}

/// Per-channel mean and standard deviation over H×W: N×C×H×W → N×2C.
fn mean_std_pool(x: &Tensor) -> Tensor {
    let mean = x.mean_dim(&[2, 3][..], false, None);
    let std = (x.var_dim(&[2, 3][..], false, false) + STD_EPSILON).sqrt();
    Tensor::cat(&[mean, std], 1)
}

fn l2_normalize_rows(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2.0, [1], true).clamp_min(1e-12)
}

impl DegradationEncoder {
    /// Builds the encoder under `path`.
    ///
    /// # Panics
    /// If `config` fails [`EncoderConfig::validate`].
    pub fn new(path: &nn::Path<'_>, config: &EncoderConfig) -> Self {
        if let Err(error) = config.validate() {
            panic!("{error}");
        }
        let c = config.channels;
        let stages = (0..4)
            .map(|i| {
                let (from, stride) = if i == 0 { (3, 1) } else { (c[i - 1], 2) };
                Stage::new(path / format!("stage{i}"), from, c[i], stride)
            })
            .collect();
        let pooled_width = 2 * c.iter().sum::<i64>();
        Self {
            config: config.clone(),
            stages,
            pooled_norm: nn::batch_norm1d(path / "pooled_norm", pooled_width, Default::default()),
            degradation_head: Head::new(
                path / "degradation_head",
                pooled_width,
                config.hidden_dim,
                config.degradation_dim,
            ),
            content_head: Head::new(
                path / "content_head",
                2 * c[3],
                config.hidden_dim,
                config.content_dim,
            ),
            classifier: linear(
                path / "classifier",
                config.degradation_dim,
                DegradationKind::ALL.len() as i64,
            ),
        }
    }

    /// The configuration the encoder was built with.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Encodes `image` (N×3×H×W in [0, 1], any H, W ≥ 1; the service resizes the long side
    /// to at most 256 first) for inference: batch statistics are the running ones, so each
    /// image's embedding is independent of the rest of the batch. Callers wrap this in
    /// `tch::no_grad`.
    pub fn forward(&self, image: &Tensor) -> EncoderOutput {
        self.forward_t(image, false)
    }

    /// Encodes `image`; with `train`, the pooled statistics are normalised with the batch's
    /// own statistics (which needs at least two images) and the running ones are updated.
    pub fn forward_t(&self, image: &Tensor, train: bool) -> EncoderOutput {
        let mut x = (image - 0.5) * 4.0;
        let mut pooled = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            x = stage.forward(&x);
            pooled.push(mean_std_pool(&x));
        }
        let pooled = self.pooled_norm.forward_t(&Tensor::cat(&pooled, 1), train);
        let deepest = 2 * self.config.channels[3];
        let deepest = pooled.narrow(1, pooled.size()[1] - deepest, deepest);
        let content = l2_normalize_rows(&self.content_head.forward(&deepest));
        // Logits read the unnormalised embedding: its scale is free to grow with confidence.
        let degradation_features = self.degradation_head.forward(&pooled);
        let logits = self.classifier.forward(&degradation_features);
        let degradation = l2_normalize_rows(&degradation_features);
        EncoderOutput {
            content,
            degradation,
            logits,
        }
    }
}

/// Weights and temperature of [`encoder_loss`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EncoderLossWeights {
    /// Weight of the multi-label BCE on the degradation kinds.
    pub classification: f64,
    /// Weight of the supervised contrastive term on F_d (same kinds attract).
    pub degradation_contrast: f64,
    /// Weight of the supervised contrastive term on F_c (same clean source attracts).
    pub content_consistency: f64,
    /// Softmax temperature of both contrastive terms.
    pub temperature: f64,
}

impl Default for EncoderLossWeights {
    fn default() -> Self {
        Self {
            classification: 1.0,
            degradation_contrast: 0.5,
            content_consistency: 0.5,
            temperature: 0.1,
        }
    }
}

/// The encoder's training loss and its parts (scalars; `total` is the one to backpropagate).
#[derive(Debug)]
pub struct EncoderLoss {
    /// Weighted sum of the parts.
    pub total: Tensor,
    /// Mean binary cross-entropy over samples and kinds.
    pub classification: Tensor,
    /// Supervised contrastive loss of F_d over identical kind sets.
    pub degradation_contrast: Tensor,
    /// Supervised contrastive loss of F_c over identical clean sources.
    pub content_consistency: Tensor,
}

/// The encoder's loss for a batch.
///
/// `kinds` is N×5 multi-hot (float) over [`DegradationKind::ALL`]; `content_ids` (N, int64)
/// names each sample's clean source image. Samples sharing a kind set pull their F_d
/// together and push others away; samples sharing a source (the same photo under different
/// degradations) pull their F_c together. Both are contrastive rather than plain distances so
/// the embeddings cannot collapse to a constant; a batch should therefore hold each source
/// under at least two degradations.
pub fn encoder_loss(
    output: &EncoderOutput,
    kinds: &Tensor,
    content_ids: &Tensor,
    weights: &EncoderLossWeights,
) -> EncoderLoss {
    let classification = output.logits.binary_cross_entropy_with_logits::<Tensor>(
        kinds,
        None,
        None,
        Reduction::Mean,
    );
    let same_kinds = kinds
        .unsqueeze(1)
        .eq_tensor(&kinds.unsqueeze(0))
        .all_dim(-1, false);
    let same_source = content_ids
        .unsqueeze(1)
        .eq_tensor(&content_ids.unsqueeze(0));
    let degradation_contrast =
        supervised_contrastive(&output.degradation, &same_kinds, weights.temperature);
    let content_consistency =
        supervised_contrastive(&output.content, &same_source, weights.temperature);
    let total = &classification * weights.classification
        + &degradation_contrast * weights.degradation_contrast
        + &content_consistency * weights.content_consistency;
    EncoderLoss {
        total,
        classification,
        degradation_contrast,
        content_consistency,
    }
}

/// How far `output`'s embeddings have moved from `anchor`'s (a frozen encoder's outputs on the
/// same images): the mean of 1 − cos(F_c, F_c') over every sample plus the mean of
/// 1 − cos(F_d, F_d') over the degraded ones (`kinds`, N×5 multi-hot, not all zero). Clean
/// samples keep their F_d free, so a fine-tune can move clean photos out of a degradation's
/// region while a restorer trained on the anchor's embeddings still reads every degraded photo
/// as it learnt to. Both embeddings are unit-norm, so each term lies in [0, 2].
pub fn embedding_drift(output: &EncoderOutput, anchor: &EncoderOutput, kinds: &Tensor) -> Tensor {
    let cosine = |a: &Tensor, b: &Tensor| (a * b).sum_dim_intlist(-1, false, None);
    let content = (-cosine(&output.content, &anchor.content) + 1.0).mean(output.content.kind());
    let degraded = kinds
        .sum_dim_intlist(-1, false, None)
        .gt(0.0)
        .to_kind(output.degradation.kind());
    let degradation = -cosine(&output.degradation, &anchor.degradation) + 1.0;
    let degradation = (degradation * &degraded).sum(output.degradation.kind())
        / degraded.sum(output.degradation.kind()).clamp_min(1.0);
    content + degradation
}

/// Supervised contrastive loss (Khosla et al. 2020) of unit-norm `embeddings` (N×D) with
/// `positives` (N×N booleans; the diagonal is ignored): for each anchor with at least one
/// positive, the mean negative log-probability of its positives under a softmax over all
/// other samples. Zero when no anchor has a positive.
pub fn supervised_contrastive(embeddings: &Tensor, positives: &Tensor, temperature: f64) -> Tensor {
    let count = embeddings.size()[0];
    let not_self = Tensor::eye(count, (Kind::Bool, embeddings.device())).logical_not();
    let logits = (embeddings.matmul(&embeddings.tr()) / temperature)
        .masked_fill(&not_self.logical_not(), -1e9);
    let log_probability = &logits - logits.logsumexp([1], true);
    let positives = positives.logical_and(&not_self).to_kind(embeddings.kind());
    let per_anchor_count = positives.sum_dim_intlist(1, false, None);
    let per_anchor = -(log_probability * &positives).sum_dim_intlist(1, false, None)
        / per_anchor_count.clamp_min(1.0);
    let has_positive = per_anchor_count.gt(0.0).to_kind(embeddings.kind());
    (per_anchor * &has_positive).sum(embeddings.kind())
        / has_positive.sum(embeddings.kind()).clamp_min(1.0)
}

#[cfg(test)]
mod tests;
