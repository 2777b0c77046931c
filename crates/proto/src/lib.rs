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
