//! pinecone-gateway: a gRPC sidecar in front of Pinecone.
//!
//! A call travels `api/` (validate, route) → the tower stack over `upstream::Upstream` (REST) → Pinecone or the
//! built-in `emulator/`; errors come back through one map (`api::status::to_status`). See design.md in the repository
//! for the picture.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod config;
pub mod emulator;
pub mod filter;
pub mod server;
pub mod stack;
pub mod telemetry;
pub mod upstream;
pub mod wire;

/// Code generated from proto/.
pub mod pb {
    /// Pinecone's package-less data-plane API (`VectorService`).
    #[allow(clippy::all)]
    pub mod pinecone {
        tonic::include_proto!("_");
    }
    /// The gateway's own API (`pinecone_gateway.v1`).
    #[allow(clippy::all)]
    pub mod gateway {
        tonic::include_proto!("pinecone_gateway.v1");
    }
    /// Every proto file, for reflection and conformance checks.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("descriptor");
}
