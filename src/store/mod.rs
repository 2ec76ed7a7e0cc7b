//! Everything that touches the log's tables: [`append`] (one command's events, their inline
//! projections, reservations, a new signing key and the processed-request record in one
//! transaction), [`tail`] (reading the log gaplessly in commit order) and [`rebuild`] (the
//! read tables replayed from the log), and the schema they live in ([`migrations`]).

pub mod append;
pub mod migrations;
pub mod rebuild;
pub mod snapshot;
pub mod tail;

pub use append::{
    recorded_from_row, Append, AppendError, Dedupe, EventStore, Processed, RequestKey, StreamAppend,
    StreamHead,
};
