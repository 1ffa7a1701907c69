//! Pinecone's REST API as the gateway speaks it: request bodies and query strings out, answers and error bodies in.
//!
//! Nothing here is shared with the emulator, on purpose: the emulator encodes its answers itself, as Pinecone does,
//! so a mistake here fails the tests instead of agreeing with itself. The contract fixtures under
//! `tests/fixtures/pinecone/` are the referee.
//!
//! - [`data`]: the data plane is the protobuf JSON mapping of the very proto the gateway serves, so requests and
//!   answers are the generated messages themselves (pbjson), decoded by the mapping's rules: lowerCamelCase or proto
//!   names, 64-bit integers as strings or numbers, missing or `null` fields as defaults, unknown fields ignored.
//! - [`control`]: the control plane (indexes, backups, restore jobs) is plain JSON with optional and `null` fields
//!   wherever Pinecone may omit them; hand-written, because it has no proto.
//! - [`error`]: error bodies of either plane, and text or HTML from a proxy in front of Pinecone.
//! - [`query`]: query strings and path segments, percent-encoded as Pinecone reads them.

pub mod control;
pub mod data;
pub mod error;
pub mod number;
pub mod query;
pub mod upsert;
