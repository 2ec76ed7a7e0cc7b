//! The aggregates: pure state, `apply` and `decide`. No I/O here; the actors load state,
//! call `decide`, persist the events and `apply` them. Tests drive them given/when/then.

pub mod rules;
pub mod system;
pub mod username;
pub mod workspace;

use chrono::{DateTime, SecondsFormat, Utc};

/// ISO-8601 UTC as the protocol writes timestamps.
/// Where renewal counts from for an account never renewed: Go's zero time, as Netsoc's iamd
/// (and its clients, which show "Never Renewed") have it.
pub fn never_renewed() -> DateTime<Utc> {
    DateTime::from_timestamp(GO_ZERO_TIME, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// 0001-01-01T00:00:00Z in Unix seconds.
const GO_ZERO_TIME: i64 = -62_135_596_800;

pub fn iso(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Secs, true)
}
