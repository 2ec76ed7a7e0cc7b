//! The aggregates: pure state, `apply` and `decide`. No I/O here; the actors load state,
//! call `decide`, persist the events and `apply` them. Tests drive them given/when/then.

pub mod rules;
pub mod system;
pub mod username;
pub mod workspace;

use chrono::{DateTime, SecondsFormat, Utc};

/// ISO-8601 UTC as the protocol writes timestamps.
pub fn iso(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Secs, true)
}
