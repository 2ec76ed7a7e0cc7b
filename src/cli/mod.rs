//! The command bodies of the `iamd` binary; `main.rs` holds only the clap types and the
//! dispatch.

pub mod admin;
pub mod audit;
pub mod projections;
pub mod serve;
