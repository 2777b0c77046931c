//! Training and evaluation of the ClearAIR networks: the degradation encoder and the
//! restorer, trained on synthetic degradations of the training photos with the priors the
//! mesh's own backends compute; the PromptIR-protocol evaluation on the held-out photos with
//! FFDNet as a reference; and the `degrade` tool.
//!
//! The `clearair` binary wires in [`cli::train`], [`cli::eval`] and [`cli::degrade`].
//!
//! # Layout
//! - Data: [`photos`] (loading, pixel ↔ tensor), [`seeding`] (keyed ChaCha8 streams),
//!   [`mix`] (which degradations a sample gets), [`priors`] (the services' backends and their
//!   neutral fallbacks), [`windows`] (the priors cache: degraded windows and their priors,
//!   made once and reused), [`data`] (reproducible samples and batches), [`prefetch`] (worker
//!   threads).
//! - Training: [`step`] (forward and backward split across threads), [`optimizer`] (AdamW
//!   with savable state, schedule, range test), [`checkpoint`], [`average`] (the weights' moving average), [`history`] (learning
//!   curves across resumes), [`curves`] (runs' progress evaluations against the goals),
//!   [`progress`], [`encoder_training`], [`restorer_training`], [`networks`] (loading by
//!   manifest).
//! - Evaluation: [`protocol`] (rows, fixed seeds, metrics), [`mesh`] (restore as the mesh
//!   does), [`encoder_eval`], [`eval`] (the run, FFDNet, report, sheets).
//! - Tools: [`degrade`], [`benchmark`]; [`cli`] and `commands` (the entry points).
//! - [`error`] holds [`TrainError`].

pub mod average;
pub mod benchmark;
pub mod checkpoint;
pub mod cli;
mod commands;
pub mod curves;
pub mod data;
pub mod degrade;
pub mod encoder_eval;
pub mod encoder_training;
pub mod error;
pub mod eval;
pub mod history;
pub mod mesh;
pub mod mix;
pub mod networks;
pub mod optimizer;
pub mod photos;
pub mod prefetch;
pub mod priors;
pub mod profile;
pub mod progress;
pub mod protocol;
pub mod restorer_training;
pub mod seeding;
pub mod step;
#[cfg(test)]
mod test_support;
pub mod windows;

pub use cli::{DegradeArgs, EvalArgs, ProfileArgs, TrainArgs, degrade, eval, profile, train};
pub use error::{Result, TrainError};
