//! Building appends by hand for the tests that write the event log directly (the store and
//! the audit commands): single-stream appends chained from GENESIS or from a head.

use iamd::events::hash::GENESIS;
use iamd::events::{Event, Metadata};
use iamd::store::{Append, EventStore, StreamAppend, StreamHead};

pub fn meta(request_id: &str) -> Metadata {
    Metadata {
        actor: "admin@default".into(),
        request_id: request_id.into(),
        source: "http".into(),
        operation: "test".into(),
    }
}

/// A single-stream append.
pub fn append(stream: &str, expected_version: i64, last_hash: &str, events: Vec<Event>) -> Append {
    Append {
        streams: vec![StreamAppend {
            stream: stream.into(),
            expected_version,
            last_hash: last_hash.into(),
            events,
        }],
        metadata: meta(&uuid::Uuid::new_v4().to_string()),
        signing_key: None,
        dedupe: None,
    }
}

/// Appends to a fresh stream (version 0, GENESIS).
pub fn first(stream: &str, events: Vec<Event>) -> Append {
    append(stream, 0, GENESIS, events)
}

/// Appends after `head`.
pub fn after(head: &StreamHead, events: Vec<Event>) -> Append {
    append(&head.stream, head.version, &head.last_hash, events)
}

/// Appends, panicking on failure; the heads of the streams written.
pub async fn ok(store: &EventStore, a: Append) -> Vec<StreamHead> {
    store.append(a).await.unwrap_or_else(|e| panic!("append failed: {e:?}"))
}

/// Appends to one stream; its new head.
pub async fn ok1(store: &EventStore, a: Append) -> StreamHead {
    let mut heads = ok(store, a).await;
    assert_eq!(heads.len(), 1);
    heads.remove(0)
}
