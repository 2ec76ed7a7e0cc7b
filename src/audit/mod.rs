//! Auditing the log (`iamd audit …`): [`verify`] walks every stream's hash chain and version
//! sequence and names the first event that was edited, deleted, inserted or reordered.

pub mod verify;

pub use verify::{verify, verify_in_pages, Break, Problem, Report};
