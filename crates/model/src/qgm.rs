//! Quality Guidance Module: the global quality representation F_q modulates each level's
//! features by a per-channel affine map, `X ← X ⊙ Linear_s(F_q) + Linear_b(F_q)`.

use tch::{Tensor, nn, nn::Module};

use crate::layers::{constant_linear, linear};

/// Normalises F_q and projects it once to a narrow embedding shared by every level's QGM.
///
/// Direct per-level maps from a 4096-wide DeQA state to the seven levels' 1104 channels would
/// cost 2·4096·1104 ≈ 9 M parameters, a third of the paper's budget; one shared projection
/// keeps that near 0.5 M. The LayerNorm tames the outlier dimensions LLM hidden states carry.
#[derive(Debug)]
pub struct QualityEmbedding {
    norm: nn::LayerNorm,
    proj: nn::Linear,
}

impl QualityEmbedding {
    /// Creates the LayerNorm over `quality_dim` and the projection to `embed_dim`.
    pub fn new(path: nn::Path<'_>, quality_dim: i64, embed_dim: i64) -> Self {
        Self {
            norm: nn::layer_norm(&path / "norm", vec![quality_dim], Default::default()),
            proj: linear(&path / "proj", quality_dim, embed_dim),
        }
    }

    /// Maps F_q (N×quality_dim) to the shared embedding (N×embed_dim).
    pub fn forward(&self, quality: &Tensor) -> Tensor {
        self.proj.forward(&self.norm.forward(quality)).gelu("none")
    }
}

/// One level's QGM.
#[derive(Debug)]
pub struct QualityGuidance {
    scale: nn::Linear,
    shift: nn::Linear,
}

impl QualityGuidance {
    /// Creates the scale map (weight 0, bias 1) and shift map (weight 0, bias 0), so the module
    /// is exactly the identity until training moves it.
    pub fn new(path: nn::Path<'_>, in_dim: i64, channels: i64) -> Self {
        Self {
            scale: constant_linear(&path / "scale", in_dim, channels, 0.0, 1.0),
            shift: constant_linear(&path / "shift", in_dim, channels, 0.0, 0.0),
        }
    }

    /// Modulates `x` (N×C×H×W) with the quality vector `quality` (N×in_dim).
    pub fn forward(&self, x: &Tensor, quality: &Tensor) -> Tensor {
        let per_channel = |t: Tensor| t.unsqueeze(-1).unsqueeze(-1);
        x * per_channel(self.scale.forward(quality)) + per_channel(self.shift.forward(quality))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn is_the_identity_at_initialisation() {
        let store = nn::VarStore::new(Device::Cpu);
        let qgm = QualityGuidance::new(store.root(), 36, 8);
        let x = Tensor::randn([3, 8, 5, 4], (Kind::Float, Device::Cpu));
        let quality = Tensor::randn([3, 36], (Kind::Float, Device::Cpu)) * 10.0;
        assert!(qgm.forward(&x, &quality).equal(&x));
    }

    #[test]
    fn applies_a_per_sample_per_channel_affine_map() {
        let store = nn::VarStore::new(Device::Cpu);
        let qgm = QualityGuidance::new(store.root(), 1, 2);
        tch::no_grad(|| {
            qgm.scale
                .ws
                .shallow_clone()
                .copy_(&Tensor::from_slice(&[2.0f32, -1.0]).view([2, 1]));
            qgm.shift
                .ws
                .shallow_clone()
                .copy_(&Tensor::from_slice(&[0.5f32, 3.0]).view([2, 1]));
        });
        let x = Tensor::ones([2, 2, 1, 1], (Kind::Float, Device::Cpu));
        let quality = Tensor::from_slice(&[1.0f32, 2.0]).view([2, 1]);
        let out = Vec::<f32>::try_from(qgm.forward(&x, &quality).flatten(0, -1)).unwrap();
        // sample q=1: scale (1+2, 1-1) = (3, 0), shift (0.5, 3); q=2: (5, -1), (1, 6)
        assert_eq!(out, [3.5, 3.0, 6.0, 5.0]);
    }

    #[test]
    fn embedding_is_invariant_to_the_scale_of_f_q() {
        let store = nn::VarStore::new(Device::Cpu);
        let embedding = QualityEmbedding::new(store.root(), 64, 16);
        let quality = Tensor::randn([2, 64], (Kind::Float, Device::Cpu));
        let a = embedding.forward(&quality);
        let b = embedding.forward(&(&quality * 1000.0));
        assert_eq!(a.size(), [2, 16]);
        assert!(a.allclose(&b, 1e-4, 1e-5, false));
    }
}
