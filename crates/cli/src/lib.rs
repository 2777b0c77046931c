//! The `clearair` command's library: the in-process mesh, the client helpers and the
//! benchmark, shared with the end-to-end tests.
//!
//! # Layout
//! - [`mesh`]: all five services in one process on loopback ([`mesh::Mesh`]).
//! - [`client`]: restore/analyze calls and the before/after sheet.
//! - [`bench`]: `clearair bench`.

pub mod bench;
pub mod client;
pub mod mesh;
