//! What computes in the ClearAIR mesh, apart from transport: the prior backends, the
//! restorer's tiled inference and the dynamic batcher. The services wrap
//! these in gRPC (handler + config + `serve`); training calls the same code in-process, so
//! its priors and its evaluation match what the mesh serves. Nothing here knows of gRPC or
//! the server runtime.
//!
//! Each prior has a trait, an embedded default that runs on any CPU and a production
//! backend over TorchScript, picked by a backend config; `load` builds one and `warm_up`
//! runs it once on a synthetic image. Batching backends report each batch to an optional
//! [`batch::BatchObserver`] (a service passes its metrics, training none).
//!
//! # Layout
//! - [`quality`]: [`quality::QualityBackend`], BRISQUE, and [`quality::torchscript`]
//!   (DeQA-Score with mPLUG-Owl2's preprocessing in Rust).
//! - [`segmentation`]: [`segmentation::SegmentationBackend`], graph segmentation, and
//!   [`segmentation::sam2`] (SAM2 with the automatic mask generator in Rust).
//! - [`degradation`]: [`degradation::DegradationBackend`], the compact encoder (also over a
//!   network training holds), and [`degradation::torchscript`] (DA-CLIP).
//! - [`restoration`]: the restorer's tiled inference ([`restoration::restore_in_tiles`]),
//!   shared by the restoration service and training's evaluation.
//! - [`batch`]: the dynamic batcher (the `clearair-batch` crate).
//! - `model_config`: [`ModelConfig`], weights and device of a network.
//! - `error`: [`BackendError`], classified by [`Fault`] where it happens.

pub mod degradation;
mod error;
mod model_config;
pub mod quality;
pub mod restoration;
pub mod segmentation;

pub use clearair_batch as batch;
pub use error::{BackendError, Fault, Reason};
pub use model_config::{ModelConfig, Precision, cpu_has_native_bf16};
