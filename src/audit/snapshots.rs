//! `iamd snapshots verify`: each workspace snapshot (a cache, [`crate::store::snapshot`])
//! compared with the replay of its stream up to its version, in one read-only snapshot.

use crate::domain::workspace::WorkspaceState;
use crate::events::workspace_stream;
use crate::store::snapshot::{decode_state, replay_into, FORMAT};
use deadpool_postgres::Pool;
use std::collections::BTreeMap;

/// What [`verify`] found about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Equal to the replay of its stream up to its version.
    Equal,
    /// Written by a release with another [`FORMAT`]: ignored by loads, not compared.
    OtherFormat(i32),
    /// Its hash is not the log's at its version (or that event does not exist): ignored by
    /// loads, but only tampering (or a foreign copy) produces it.
    HashMismatch,
    /// Its state does not decode: ignored by loads.
    Undecodable(String),
    /// Usable by loads, and NOT what the log replays to: what differs (ids only).
    Differs(String),
}

impl Finding {
    /// True when the snapshot is a problem: anything but equal or of another format.
    pub fn is_problem(&self) -> bool {
        !matches!(self, Finding::Equal | Finding::OtherFormat(_))
    }
}

/// One snapshot checked.
#[derive(Debug, Clone)]
pub struct Checked {
    pub stream: String,
    pub version: i64,
    pub finding: Finding,
}

impl std::fmt::Display for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (stream, version) = (&self.stream, self.version);
        match &self.finding {
            Finding::Equal => write!(f, "{stream} at version {version}: equal to the replay"),
            Finding::OtherFormat(format) => write!(
                f,
                "{stream} at version {version}: format {format} (this release writes {FORMAT}), \
                 ignored by loads and rewritten"
            ),
            Finding::HashMismatch => write!(
                f,
                "{stream} at version {version}: its hash is not the log's at that version \
                 (edited or foreign snapshot, or see `iamd audit verify`); ignored by loads"
            ),
            Finding::Undecodable(why) => write!(f, "{stream} at version {version}: {why}; ignored by loads"),
            Finding::Differs(what) => {
                write!(f, "{stream} at version {version}: DIFFERS from the replay of the log ({what})")
            }
        }
    }
}

/// Every snapshot (or the one of `workspace`) compared with the replay of its stream up to
/// its version, in one read-only snapshot of the database, one state in memory at a time.
pub async fn verify(pool: &Pool, workspace: Option<&str>) -> anyhow::Result<Vec<Checked>> {
    use anyhow::Context as _;
    let mut client = pool.get().await.context("connecting to verify snapshots")?;
    let tx = crate::db::read_only_snapshot(&mut client).await.context("starting a read-only transaction")?;
    let only = workspace.map(workspace_stream);
    let streams: Vec<String> = tx
        .query("SELECT stream FROM snapshots WHERE $1::text IS NULL OR stream = $1 ORDER BY stream", &[&only])
        .await
        .context("listing snapshots")?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut checked = Vec::with_capacity(streams.len());
    for stream in streams {
        let row = tx
            .query_one(
                "SELECT s.version, s.format, s.hash IS NOT DISTINCT FROM e.hash, s.state::text \
                 FROM snapshots s LEFT JOIN events e ON e.stream = s.stream AND e.version = s.version \
                 WHERE s.stream = $1",
                &[&stream],
            )
            .await
            .with_context(|| format!("reading the snapshot of {stream}"))?;
        let (version, format, hash_ok, text): (i64, i32, bool, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let finding = if format != FORMAT {
            Finding::OtherFormat(format)
        } else if !hash_ok {
            Finding::HashMismatch
        } else {
            match decode_state(&text) {
                Err(why) => Finding::Undecodable(why),
                Ok(snapshot) => {
                    let id = crate::events::workspace_of(&stream).unwrap_or(&stream);
                    let mut replayed = WorkspaceState::new(id);
                    replay_into(&tx, &stream, &mut replayed, 0, version, |_, _| {})
                        .await
                        .map_err(|e| anyhow::anyhow!("replaying {stream}: {}", e.message))?;
                    match differences(&snapshot, &replayed) {
                        None => Finding::Equal,
                        Some(what) => Finding::Differs(what),
                    }
                }
            }
        };
        checked.push(Checked { stream, version, finding });
    }
    tx.rollback().await.ok();
    Ok(checked)
}

/// What differs between a snapshot and a replay, by ids only (a state holds password hashes).
fn differences(snapshot: &WorkspaceState, replayed: &WorkspaceState) -> Option<String> {
    if snapshot == replayed {
        return None;
    }
    fn differing<V: PartialEq>(a: &BTreeMap<String, V>, b: &BTreeMap<String, V>) -> Vec<String> {
        let ids: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        ids.into_iter().filter(|k| a.get(*k) != b.get(*k)).cloned().collect()
    }
    let mut parts = Vec::new();
    let (mut s, mut r) = (snapshot.clone(), replayed.clone());
    (s.users, s.keys, r.users, r.keys) = Default::default();
    if s != r {
        parts.push("workspace fields".to_owned());
    }
    for (what, ids) in [
        ("users", differing(&snapshot.users, &replayed.users)),
        ("API keys", differing(&snapshot.keys, &replayed.keys)),
    ] {
        if !ids.is_empty() {
            let shown: Vec<&str> = ids.iter().take(5).map(String::as_str).collect();
            let more = if ids.len() > 5 { format!(" and {} more", ids.len() - 5) } else { String::new() };
            parts.push(format!("{what} {}{more}", shown.join(", ")));
        }
    }
    Some(parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::snapshot::tests::sample;

    #[test]
    fn differences_name_ids_only() {
        let a = sample();
        assert_eq!(differences(&a, &a), None);
        let mut b = a.clone();
        b.users.get_mut("u1").unwrap().password_hash = Some("$argon2id$other".into());
        b.keys.get_mut("k1").unwrap().revoked = false;
        b.name = "Other".into();
        let what = differences(&b, &a).unwrap();
        assert_eq!(what, "workspace fields; users u1; API keys k1");
        let mut c = a.clone();
        c.users.clear();
        assert_eq!(differences(&c, &a).unwrap(), "users u1");
    }
}
