//! Pinecone's REST JSON shapes, written once and used by both the upstream client and the emulator, so the two
//! agree by construction.

pub mod control;
pub mod data;
