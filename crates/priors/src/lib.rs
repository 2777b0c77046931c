//! Embedded prior backends for ClearAIR that run on any CPU without downloads at run time:
//!
//! * [`BrisqueModel`] — the global quality prior `F_q`: BRISQUE's 36 natural-scene-statistics
//!   features and its SVR score, reproducing the `brisque` PyPI package (0.2.0) numerically.
//! * [`GraphSegmenter`] — the region prior: Felzenszwalb–Huttenlocher graph-based segmentation
//!   merged into at most [`MAX_REGION_MASKS`] masks that cover every pixel exactly once.
//!
//! Both take 8-bit interleaved RGB, row-major, `width * height * 3` bytes, as the orchestrator
//! sends it inside the mesh.
//!
//! # Layout
//! - `error` — [`PriorError`], the crate's one error type.
//! - `rgb` — validation of the shared RGB8 input.
//! - `brisque/` — grayscale and half-scale pyramid, MSCN coefficients, AGGD fits, SVR
//!   parameters and scoring.
//! - `segmentation/` — resampling, Gaussian smoothing, the disjoint-set forest, the
//!   Felzenszwalb–Huttenlocher merge, sliver absorption and the final region masks.

mod brisque;
mod error;
mod rgb;
mod segmentation;

pub use brisque::{
    BRISQUE_FEATURES, BRISQUE_MIN_SIDE, BrisqueModel, QualityAssessment, QualityLevel,
    brisque_quality_score,
};
pub use error::PriorError;
pub use segmentation::{GraphSegmenter, GraphSegmenterConfig, MAX_REGION_MASKS, RegionMasks};
