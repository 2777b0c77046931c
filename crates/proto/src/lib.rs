//! The `clearair.v1` contracts: messages, clients and servers generated from `proto/`.
//!
//! Nothing else in the mesh defines wire types. [`FILE_DESCRIPTOR_SET`] feeds gRPC reflection.

/// Generated code for package `clearair.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("clearair.v1");
}

/// Encoded `FileDescriptorSet` of every `clearair.v1` file, for reflection services.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("clearair_descriptor");

pub use v1::*;

/// Limits and widths every party of the contract shares, defined once here: a change is a
/// change of the contract.
pub mod contract {
    /// Most region masks a `SemanticMasks` message carries (and the segmenter returns).
    pub const MAX_MASKS: u32 = 16;
    /// Width of F_c and F_d, the content and degradation embeddings of `DegradationPrior`.
    pub const EMBEDDING_WIDTH: usize = 512;
}
