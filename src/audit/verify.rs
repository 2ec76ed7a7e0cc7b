//! `iamd audit verify`: walks each stream in version order, in keyset pages, and checks that
//! versions run 1, 2, 3… in the order the rows were written, that each `prev_hash` is the hash of
//! the event before it (GENESIS first) and that each stored hash recomputes from its columns.
//! The walk is one read-only snapshot, so the count is exact even while iamd keeps writing.
//! Nothing here prints or returns a payload: payloads hold password hashes.

use super::walk::{walk_anchored, Heads, Scope, Step, PAGE};
use crate::events::hash::{self, HashInput, GENESIS};
use crate::events::RecordedEvent;
use anyhow::Context as _;
use deadpool_postgres::Pool;
use std::fmt;
use std::ops::ControlFlow;

/// What a walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Events checked (up to and including the broken one, when there is one).
    pub events: u64,
    /// Streams entered.
    pub streams: u64,
    /// The first problem in `(stream, version)` order; `None` when every chain is intact.
    pub first_break: Option<Break>,
}

/// The first bad event: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub stream: String,
    pub version: i64,
    pub position: i64,
    pub problem: Problem,
}

/// What is wrong with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The stored hash does not recompute from the stored columns: the row was changed.
    Edited,
    /// `prev_hash` is not the hash of the event before: one was deleted, inserted or moved.
    ChainBroken { previous_version: i64 },
    /// The stream's first event does not start from [`GENESIS`].
    NotGenesis,
    /// Versions skip: the expected one is missing (deleted, or renumbered).
    VersionGap { expected: i64 },
    /// This version was written before the previous version: versions were swapped.
    OutOfOrder { previous_version: i64, previous_position: i64 },
    /// The stream ends here but its recorded head is a later version: its last events were
    /// deleted.
    Truncated { head_version: i64 },
    /// The stream's last event is not the one its recorded head names (same version, other
    /// hash): it was replaced.
    NotTheHead,
    /// The stream goes on past its recorded head: events were added behind the database's back.
    BeyondHead { head_version: i64 },
    /// The stream has events but no recorded head: the anchor was deleted.
    NoHead,
    /// A head is recorded but the stream has no events at all: the whole stream was deleted.
    StreamDeleted,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Edited => write!(f, "edited — its hash does not match its content"),
            Problem::ChainBroken { previous_version } => write!(
                f,
                "chain broken — its prev_hash is not the hash of version {previous_version} \
                 (an event was deleted, inserted or reordered)"
            ),
            Problem::NotGenesis => {
                write!(f, "chain broken — the stream's first event does not start from the genesis hash")
            }
            Problem::VersionGap { expected } => {
                write!(f, "version gap — version {expected} is missing (an event was deleted or renumbered)")
            }
            Problem::OutOfOrder { previous_version, previous_position } => write!(
                f,
                "version out of order — written before version {previous_version} \
                 (position {previous_position}); versions were swapped"
            ),
            Problem::Truncated { head_version } => write!(
                f,
                "truncated — the stream ends here but its recorded head is version {head_version} \
                 (its last events were deleted)"
            ),
            Problem::NotTheHead => {
                write!(f, "replaced — the stream's last event is not the one its recorded head names")
            }
            Problem::BeyondHead { head_version } => write!(
                f,
                "beyond the head — the stream's recorded head is version {head_version} \
                 (events were added without the database recording them)"
            ),
            Problem::NoHead => write!(f, "no recorded head — the stream's anchor was deleted"),
            Problem::StreamDeleted => {
                write!(f, "stream deleted — a head is recorded but the stream has no events")
            }
        }
    }
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stream {} version {} (position {}): {}",
            self.stream, self.version, self.position, self.problem
        )
    }
}

/// The last good event of the stream being walked.
struct Head {
    stream: String,
    version: i64,
    position: i64,
    hash: String,
}

/// The pure part of the walk: fed events in `(stream, version)` order, it says which one is
/// the first bad one. When anchored, it also holds each stream's end against its recorded head.
#[derive(Default)]
pub struct ChainCheck {
    head: Option<Head>,
    events: u64,
    streams: u64,
    /// The recorded heads not yet matched, when the check is anchored.
    anchors: Option<Heads>,
}

impl ChainCheck {
    /// A check that also holds each stream's end against `heads` (read in the same snapshot).
    pub fn anchored(heads: Heads) -> ChainCheck {
        ChainCheck { anchors: Some(heads), ..ChainCheck::default() }
    }

    /// Checks the next event; `Some` names what is wrong with it (or with the end of the
    /// stream before it).
    pub fn check(&mut self, e: &RecordedEvent) -> Option<Break> {
        if self.head.as_ref().is_none_or(|h| h.stream != e.stream) {
            if let Some(b) = self.close_stream() {
                return Some(b);
            }
        }
        self.events += 1;
        let problem = match self.head.as_ref().filter(|h| h.stream == e.stream) {
            None => {
                self.streams += 1;
                if e.version != 1 {
                    Some(Problem::VersionGap { expected: 1 })
                } else if e.prev_hash != GENESIS {
                    Some(Problem::NotGenesis)
                } else {
                    None
                }
            }
            Some(h) => {
                if e.version != h.version + 1 {
                    Some(Problem::VersionGap { expected: h.version + 1 })
                } else if e.position < h.position {
                    Some(Problem::OutOfOrder { previous_version: h.version, previous_position: h.position })
                } else if e.prev_hash != h.hash {
                    Some(Problem::ChainBroken { previous_version: h.version })
                } else {
                    None
                }
            }
        };
        let problem = problem.or_else(|| (recompute(e) != e.hash).then_some(Problem::Edited));
        if let Some(problem) = problem {
            return Some(Break {
                stream: e.stream.clone(),
                version: e.version,
                position: e.position,
                problem,
            });
        }
        self.head = Some(Head {
            stream: e.stream.clone(),
            version: e.version,
            position: e.position,
            hash: e.hash.clone(),
        });
        None
    }

    /// Ends the walk: the last stream's end, then any recorded head whose stream never came.
    /// (Vanished streams are named at the end, not in stream order: the log is walked in the
    /// database's collation, which need not be the byte order the heads are kept in.)
    pub fn finish(&mut self) -> Option<Break> {
        self.close_stream().or_else(|| self.vanished())
    }

    /// Holds the stream just walked against its recorded head.
    fn close_stream(&mut self) -> Option<Break> {
        let anchors = self.anchors.as_mut()?;
        let last = self.head.as_ref()?;
        let at = |problem| Break {
            stream: last.stream.clone(),
            version: last.version,
            position: last.position,
            problem,
        };
        let Some((version, hash)) = anchors.remove(&last.stream) else {
            return Some(at(Problem::NoHead));
        };
        if version > last.version {
            Some(at(Problem::Truncated { head_version: version }))
        } else if version < last.version {
            Some(at(Problem::BeyondHead { head_version: version }))
        } else if hash != last.hash {
            Some(at(Problem::NotTheHead))
        } else {
            None
        }
    }

    /// The first recorded head whose stream has no events.
    fn vanished(&mut self) -> Option<Break> {
        let (stream, (version, _)) = self.anchors.as_mut()?.pop_first()?;
        Some(Break { stream, version, position: 0, problem: Problem::StreamDeleted })
    }

    /// The tally so far, with the break that stopped the walk, if any.
    pub fn report(&self, first_break: Option<Break>) -> Report {
        Report { events: self.events, streams: self.streams, first_break }
    }
}

fn recompute(e: &RecordedEvent) -> String {
    hash::event_hash(&HashInput {
        prev_hash: &e.prev_hash,
        stream: &e.stream,
        version: e.version,
        event_type: &e.event_type,
        schema_version: e.schema_version,
        payload: &e.payload,
        metadata: &e.metadata,
        recorded_at: e.recorded_at,
    })
}

/// Walks every stream (or only `workspace:W`) and stops at the first bad event. `progress` is
/// called with the number of events checked after each page.
pub async fn verify(
    pool: &Pool,
    workspace: Option<&str>,
    progress: impl FnMut(u64),
) -> Result<Report, anyhow::Error> {
    verify_in_pages(pool, workspace, PAGE, progress).await
}

/// [`verify`], reading `page` rows per round trip (tests use small pages to cross boundaries).
pub async fn verify_in_pages(
    pool: &Pool,
    workspace: Option<&str>,
    page: i64,
    mut progress: impl FnMut(u64),
) -> Result<Report, anyhow::Error> {
    let scope = Scope { stream: workspace.map(crate::events::workspace_stream), ..Default::default() };
    // The heads come first, in the walk's snapshot; the check holds each stream's end to them.
    let mut check = ChainCheck::default();
    let mut found = None;
    walk_anchored(pool, &scope, page, |step| {
        match step {
            Step::Heads(heads) => check.anchors = Some(heads),
            Step::Events(events) => {
                found = events.iter().find_map(|event| check.check(event));
                if found.is_some() {
                    return Ok(ControlFlow::Break(()));
                }
                progress(check.events);
            }
        }
        Ok(ControlFlow::Continue(()))
    })
    .await
    .context("audit verify")?;
    if found.is_none() {
        found = check.finish();
    }
    Ok(check.report(found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    /// A correctly chained event after `prev` (or GENESIS).
    fn event(stream: &str, version: i64, position: i64, prev: Option<&RecordedEvent>) -> RecordedEvent {
        let mut e = RecordedEvent {
            position,
            stream: stream.into(),
            version,
            event_type: "workspace.renamed".into(),
            schema_version: 1,
            payload: json!({"name": format!("n{version}")}),
            metadata: json!({"actor": "admin"}),
            recorded_at: hash::truncate(Utc::now()),
            prev_hash: prev.map_or(GENESIS.to_owned(), |p| p.hash.clone()),
            hash: String::new(),
        };
        e.hash = recompute(&e);
        e
    }

    /// A chain of `n` events in one stream at positions `first_position..`.
    fn chain(stream: &str, n: i64, first_position: i64) -> Vec<RecordedEvent> {
        let mut out: Vec<RecordedEvent> = Vec::new();
        for v in 1..=n {
            let e = event(stream, v, first_position + v - 1, out.last());
            out.push(e);
        }
        out
    }

    fn walk(events: &[RecordedEvent]) -> Report {
        let mut check = ChainCheck::default();
        for e in events {
            if let Some(b) = check.check(e) {
                return check.report(Some(b));
            }
        }
        check.report(None)
    }

    fn problem_at(events: &[RecordedEvent]) -> (String, i64, Problem) {
        let b = walk(events).first_break.expect("a break");
        (b.stream, b.version, b.problem)
    }

    #[test]
    fn intact_streams_are_counted() {
        let mut all = chain("system", 2, 1);
        all.extend(chain("workspace:a", 3, 3));
        assert_eq!(walk(&all), Report { events: 5, streams: 2, first_break: None });
        assert_eq!(walk(&[]), Report { events: 0, streams: 0, first_break: None });
    }

    #[test]
    fn an_edited_payload_is_named_at_its_version() {
        let mut s = chain("s", 4, 1);
        s[2].payload = json!({"name": "forged"});
        assert_eq!(problem_at(&s), ("s".into(), 3, Problem::Edited));
    }

    #[test]
    fn an_edited_hash_column_breaks_the_next_link_or_itself() {
        let mut s = chain("s", 3, 1);
        s[1].hash = "f".repeat(64);
        assert_eq!(problem_at(&s), ("s".into(), 2, Problem::Edited));
    }

    #[test]
    fn a_deleted_event_is_a_gap_at_the_next_version() {
        let mut s = chain("s", 4, 1);
        s.remove(1);
        assert_eq!(problem_at(&s), ("s".into(), 3, Problem::VersionGap { expected: 2 }));
        let mut s = chain("s", 2, 1);
        s.remove(0);
        assert_eq!(problem_at(&s), ("s".into(), 2, Problem::VersionGap { expected: 1 }));
    }

    #[test]
    fn a_deleted_and_renumbered_event_breaks_the_chain() {
        let mut s = chain("s", 4, 1);
        s.remove(1);
        // Renumber versions 3, 4 to 2, 3 and rehash them in place: only the link shows it.
        for (i, e) in s.iter_mut().enumerate().skip(1) {
            e.version = i as i64 + 1;
            e.hash = recompute(e);
        }
        assert_eq!(problem_at(&s), ("s".into(), 2, Problem::ChainBroken { previous_version: 1 }));
    }

    #[test]
    fn an_inserted_event_breaks_the_chain() {
        let s = chain("s", 2, 1);
        let forged = event("s", 3, 9, None); // starts from GENESIS, not from version 2
        assert_eq!(
            problem_at(&[s[0].clone(), s[1].clone(), forged]),
            ("s".into(), 3, Problem::ChainBroken { previous_version: 2 })
        );
    }

    #[test]
    fn a_first_event_not_from_genesis_is_named() {
        let mut s = chain("s", 1, 1);
        s[0].prev_hash = "a".repeat(64);
        s[0].hash = recompute(&s[0]);
        assert_eq!(problem_at(&s), ("s".into(), 1, Problem::NotGenesis));
    }

    #[test]
    fn versions_written_out_of_order_are_named() {
        // Rehashed consistently, but version 3 was written before version 2.
        let mut s = chain("s", 3, 1);
        s[1].position = 5;
        s[2].position = 4;
        assert_eq!(
            problem_at(&s),
            ("s".into(), 3, Problem::OutOfOrder { previous_version: 2, previous_position: 5 })
        );
    }

    #[test]
    fn swapped_versions_are_detected_at_the_lower_one() {
        let mut s = chain("s", 4, 1);
        s.swap(1, 2);
        s[1].version = 2;
        s[2].version = 3;
        let (_, version, problem) = problem_at(&s);
        assert_eq!(version, 2);
        assert_eq!(problem, Problem::ChainBroken { previous_version: 1 });
    }

    /// Walks `events` held against the heads of `recorded` (stream → its last event there).
    fn anchored_walk(events: &[RecordedEvent], recorded: &[&RecordedEvent]) -> Report {
        let heads = recorded.iter().map(|e| (e.stream.clone(), (e.version, e.hash.clone()))).collect();
        let mut check = ChainCheck::anchored(heads);
        for e in events {
            if let Some(b) = check.check(e) {
                return check.report(Some(b));
            }
        }
        let found = check.finish();
        check.report(found)
    }

    fn anchored_problem(events: &[RecordedEvent], recorded: &[&RecordedEvent]) -> (String, i64, Problem) {
        let b = anchored_walk(events, recorded).first_break.expect("a break");
        (b.stream, b.version, b.problem)
    }

    #[test]
    fn streams_ending_at_their_heads_are_intact() {
        let (a, b) = (chain("system", 2, 1), chain("workspace:a", 3, 3));
        let all: Vec<_> = a.iter().chain(&b).cloned().collect();
        assert_eq!(anchored_walk(&all, &[&a[1], &b[2]]), Report { events: 5, streams: 2, first_break: None });
        assert_eq!(anchored_walk(&[], &[]), Report { events: 0, streams: 0, first_break: None });
    }

    #[test]
    fn deleting_a_streams_last_events_is_seen_against_its_head() {
        let (a, b) = (chain("a", 4, 1), chain("b", 2, 5));
        // The chain a1..a2 is still valid on its own; only the head says a4 existed.
        let cut: Vec<_> = a[..2].iter().chain(&b).cloned().collect();
        assert_eq!(walk(&cut).first_break, None);
        assert_eq!(
            anchored_problem(&cut, &[&a[3], &b[1]]),
            ("a".into(), 2, Problem::Truncated { head_version: 4 })
        );
        // The same at the end of the walk.
        let cut: Vec<_> = a.iter().chain(&b[..1]).cloned().collect();
        assert_eq!(
            anchored_problem(&cut, &[&a[3], &b[1]]),
            ("b".into(), 1, Problem::Truncated { head_version: 2 })
        );
    }

    #[test]
    fn a_vanished_stream_a_missing_anchor_and_a_replaced_or_extra_end_are_named() {
        let (a, b, c) = (chain("a", 2, 1), chain("b", 2, 3), chain("c", 1, 5));
        let without_b: Vec<_> = a.iter().chain(&c).cloned().collect();
        assert_eq!(
            anchored_problem(&without_b, &[&a[1], &b[1], &c[0]]),
            ("b".into(), 2, Problem::StreamDeleted)
        );
        let without_c: Vec<_> = a.iter().chain(&b).cloned().collect();
        assert_eq!(
            anchored_problem(&without_c, &[&a[1], &b[1], &c[0]]),
            ("c".into(), 1, Problem::StreamDeleted)
        );
        assert_eq!(anchored_problem(&without_c, &[&a[1]]), ("b".into(), 2, Problem::NoHead));
        assert_eq!(anchored_problem(&a, &[&a[0]]), ("a".into(), 2, Problem::BeyondHead { head_version: 1 }));
        let mut other = a[1].clone();
        other.hash = "e".repeat(64);
        assert_eq!(anchored_problem(&a, &[&other]), ("a".into(), 2, Problem::NotTheHead));
    }

    #[test]
    fn the_break_line_names_stream_version_and_position_without_payload() {
        let b =
            Break { stream: "workspace:acme".into(), version: 7, position: 123, problem: Problem::Edited };
        assert_eq!(
            b.to_string(),
            "stream workspace:acme version 7 (position 123): edited — its hash does not match its content"
        );
    }
}
