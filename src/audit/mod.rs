//! Auditing the log (`iamd audit …`): [`verify`] walks every stream's hash chain and version
//! sequence and names the first event that was edited, deleted, inserted or reordered;
//! [`replay`] rebuilds the workspaces, users and API keys as they stood at an instant. Both
//! read the log through [`walk`]: one snapshot, keyset pages, `(stream, version)` order.

pub mod log;
pub mod redact;
pub mod replay;
pub mod snapshots;
pub mod verify;
pub mod walk;

pub use replay::{render_json, render_text, replay, replay_in_pages, Fold, KeyStanding};
pub use verify::{verify, verify_in_pages, Break, Problem, Report};
