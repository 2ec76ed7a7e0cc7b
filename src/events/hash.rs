//! The per-stream hash chain: each event's hash covers its predecessor's hash and every
//! stored column, so an edit, deletion, insertion or reordering breaks the chain.

use chrono::{DateTime, SubsecRound, Utc};
use sha2::{Digest, Sha256};

/// The `prev_hash` of a stream's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Timestamps are hashed (and stored) at PostgreSQL's microsecond precision.
pub fn truncate(ts: DateTime<Utc>) -> DateTime<Utc> {
    ts.trunc_subsecs(6)
}

/// Fields that go into an event's hash. JSON is hashed in its canonical form: serde_json
/// maps are sorted by key, which is also what reading `jsonb` back yields.
pub struct HashInput<'a> {
    pub prev_hash: &'a str,
    pub stream: &'a str,
    pub version: i64,
    pub event_type: &'a str,
    pub schema_version: i32,
    pub payload: &'a serde_json::Value,
    pub metadata: &'a serde_json::Value,
    pub recorded_at: DateTime<Utc>,
}

pub fn event_hash(input: &HashInput<'_>) -> String {
    let mut h = Sha256::new();
    // Length-prefixed fields so that no two different inputs concatenate alike.
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(input.prev_hash.as_bytes());
    field(input.stream.as_bytes());
    field(&input.version.to_be_bytes());
    field(input.event_type.as_bytes());
    field(&input.schema_version.to_be_bytes());
    field(input.payload.to_string().as_bytes());
    field(input.metadata.to_string().as_bytes());
    field(&input.recorded_at.timestamp_micros().to_be_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_depends_on_every_field_and_key_order_does_not_matter() {
        let t = truncate(Utc::now());
        let p = json!({"b": 1, "a": "x"});
        let m = json!({});
        let base = HashInput {
            prev_hash: GENESIS,
            stream: "s",
            version: 1,
            event_type: "t",
            schema_version: 1,
            payload: &p,
            metadata: &m,
            recorded_at: t,
        };
        let h = event_hash(&base);
        let reordered: serde_json::Value = serde_json::from_str(r#"{"a":"x","b":1}"#).unwrap();
        assert_eq!(h, event_hash(&HashInput { payload: &reordered, ..base }));
        assert_ne!(h, event_hash(&HashInput { version: 2, ..base }));
        assert_ne!(h, event_hash(&HashInput { prev_hash: "x", ..base }));
        assert_ne!(h, event_hash(&HashInput { stream: "s2", ..base }));
        let other = json!({"b": 2, "a": "x"});
        assert_ne!(h, event_hash(&HashInput { payload: &other, ..base }));
        assert_ne!(h, event_hash(&HashInput { recorded_at: t + chrono::Duration::microseconds(1), ..base }));
    }
}
