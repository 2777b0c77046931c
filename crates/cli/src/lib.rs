//! The `clearair` command's library: the in-process mesh, the client helpers and the
//! benchmark, shared with the end-to-end tests.
//!
//! # Layout
//! - [`mesh`]: all five services in one process on loopback ([`mesh::Mesh`]).
//! - [`client`]: restore/analyze calls and the before/after sheet.
//! - [`bench`]: `clearair bench`.
//! - [`priors_bench`]: `clearair priors-bench` (exported prior modules at several batch sizes).

pub mod bench;
pub mod client;
pub mod mesh;
pub mod priors_bench;
