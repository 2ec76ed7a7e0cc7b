//! The resolve-api-key cache: what the `api_keys`, `users` and `workspaces` read tables say
//! about a key hash, kept in process so that the gateway's per-request resolve needs no
//! database round trip.
//!
//! It can never answer for longer than the tables would:
//! - **At commit.** Every append derives the [`Change`]s its events make to a key's resolution
//!   (a key revoked; a user's roles, enablement or existence; a workspace's enablement) and
//!   sends them with `pg_notify` inside its own transaction, so PostgreSQL delivers them to
//!   every listening iamd exactly when the change commits (and never when it rolls back). The
//!   process that committed also drops them from its own cache before the command replies, so
//!   its next resolve already sees the change.
//! - **Races.** A reader notes the cache's epoch before it reads the tables and stores what it
//!   read only if no invalidation happened meanwhile: a row read just before a commit can never
//!   outlive that commit's invalidation.
//! - **Lost notifications.** The cache is only used while its listener connection is up and
//!   has run `LISTEN`; before that, and from the moment the connection fails until it is back
//!   (when it is flushed), every resolve reads the tables.
//! - **Bounded.** Entries expire after `cache.api_keys_ttl` whatever happens (a backstop, e.g.
//!   for read tables changed by hand), and at most `cache.api_keys` entries are kept. Only keys
//!   that exist are cached, so unknown keys cannot fill it.
//!
//! Expiry (`expires`) is checked by the caller on every use, cached or not.

use crate::events::Event;
use crate::metrics::KeyCacheCounters;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The notification channel.
pub const CHANNEL: &str = "iamd_key_cache";
/// Longest payload sent; anything longer becomes [`Change::All`] (PostgreSQL's limit is 8000
/// bytes).
const MAX_PAYLOAD: usize = 7_000;

/// The owner of a resolved API key, as the read tables have it.
#[derive(Debug, Clone)]
pub struct ResolvedKey {
    pub key_id: String,
    pub user_id: String,
    pub workspace: String,
    pub roles: Vec<String>,
    pub expires: Option<DateTime<Utc>>,
    pub usable: bool,
}

/// What a committed event changes about resolving keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Key(String),
    User(String),
    Workspace(String),
    /// Anything may have changed (a rebuild, a payload too long to send).
    All,
}

/// The changes `event`, appended to `stream`, makes to key resolution. Exhaustive: a new event
/// does not compile until it says what it changes.
pub fn changes(stream: &str, event: &Event) -> Option<Change> {
    let workspace = || crate::events::workspace_of(stream).unwrap_or_default().to_owned();
    match event {
        Event::ApiKeyRevoked { key_id, .. } => Some(Change::Key(key_id.clone())),
        Event::UserDisabled { user_id }
        | Event::UserEnabled { user_id }
        | Event::UserDeleted { user_id, .. } => Some(Change::User(user_id.clone())),
        Event::UserChanged { user_id, roles, .. } => roles.as_ref().map(|_| Change::User(user_id.clone())),
        Event::WorkspaceDisabled {} | Event::WorkspaceEnabled {} => Some(Change::Workspace(workspace())),
        // A new key, user or workspace has no cached entry; passwords, names and signing keys
        // play no part in resolving a key.
        Event::ApiKeyCreated { .. }
        | Event::UserCreated { .. }
        | Event::UserNumbered { .. }
        | Event::UserImported { .. }
        | Event::UserPasswordRehashed { .. }
        | Event::UserPasswordChanged { .. }
        | Event::UserPasswordReset { .. }
        | Event::UserSessionsEnded { .. }
        | Event::UserProfileChanged { .. }
        | Event::WorkspaceCreated { .. }
        | Event::WorkspaceRenamed { .. }
        | Event::SigningKeyCreated { .. }
        | Event::SigningKeyRetired { .. }
        | Event::SystemBootstrapped { .. }
        | Event::TokenMinted { .. }
        | Event::TokenIssued { .. }
        | Event::MailSent { .. } => None,
    }
}

/// The notification payload for `changes`: one change per line (`k:ID`, `u:ID`, `w:ID`,
/// `*`); `None` when there is nothing to say.
pub fn payload(changes: &[Change]) -> Option<String> {
    if changes.is_empty() {
        return None;
    }
    let mut out = String::new();
    for change in changes {
        let (tag, id) = match change {
            Change::Key(id) => ("k:", id),
            Change::User(id) => ("u:", id),
            Change::Workspace(id) => ("w:", id),
            Change::All => return Some("*".into()),
        };
        if id.contains('\n') || out.len() + id.len() + 3 > MAX_PAYLOAD {
            return Some("*".into());
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(tag);
        out.push_str(id);
    }
    Some(out)
}

/// Reads a payload; anything unrecognised means [`Change::All`].
pub fn parse(payload: &str) -> Vec<Change> {
    let mut out = Vec::new();
    for line in payload.split('\n') {
        out.push(match line.split_at_checked(2) {
            Some(("k:", id)) => Change::Key(id.to_owned()),
            Some(("u:", id)) => Change::User(id.to_owned()),
            Some(("w:", id)) => Change::Workspace(id.to_owned()),
            _ => return vec![Change::All],
        });
    }
    out
}

/// What a miss hands to [`KeyCache::put`]: the epoch the read started in, or nothing when the
/// cache is not in use.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(Option<u64>);

struct Entry {
    key: ResolvedKey,
    at: Instant,
}

struct State {
    /// True while the listener is up: only then are entries kept and used.
    online: bool,
    /// Bumped by every invalidation.
    epoch: u64,
    entries: HashMap<[u8; 32], Entry>,
}

/// See the module's documentation. Shared by every clone of the event store.
pub struct KeyCache {
    state: Mutex<State>,
    counters: KeyCacheCounters,
    max_entries: usize,
    ttl: Duration,
}

impl KeyCache {
    /// A cache of at most `max_entries` keys (0: never caches), each kept at most `ttl`.
    /// Offline until [`KeyCache::set_online`].
    pub fn new(max_entries: usize, ttl: Duration) -> Arc<Self> {
        Arc::new(KeyCache {
            state: Mutex::new(State { online: false, epoch: 0, entries: HashMap::new() }),
            counters: KeyCacheCounters::default(),
            max_entries,
            ttl,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hits and misses, for `GET /metrics`.
    pub fn counters(&self) -> &KeyCacheCounters {
        &self.counters
    }

    /// The cached resolution of `hash`, or the ticket to store what the tables say.
    pub fn get(&self, hash: &[u8; 32]) -> Result<ResolvedKey, Ticket> {
        let found = self.lookup(hash);
        match &found {
            Ok(_) => self.counters.hits.inc(),
            Err(_) => self.counters.misses.inc(),
        };
        found
    }

    fn lookup(&self, hash: &[u8; 32]) -> Result<ResolvedKey, Ticket> {
        let state = self.lock();
        if !state.online || self.max_entries == 0 {
            return Err(Ticket(None));
        }
        match state.entries.get(hash) {
            Some(e) if e.at.elapsed() < self.ttl => Ok(e.key.clone()),
            _ => Err(Ticket(Some(state.epoch))),
        }
    }

    /// Stores what the tables said, unless an invalidation happened since the ticket was taken.
    pub fn put(&self, ticket: Ticket, hash: &[u8; 32], key: &ResolvedKey) {
        let Ticket(Some(epoch)) = ticket else { return };
        let mut state = self.lock();
        if !state.online || state.epoch != epoch {
            return;
        }
        if state.entries.len() >= self.max_entries && !state.entries.contains_key(hash) {
            let ttl = self.ttl;
            state.entries.retain(|_, e| e.at.elapsed() < ttl);
            if state.entries.len() >= self.max_entries {
                // Still full of live entries: start over rather than track recency on the hot path.
                state.entries.clear();
            }
        }
        state.entries.insert(*hash, Entry { key: key.clone(), at: Instant::now() });
    }

    /// Drops every entry a change concerns.
    pub fn invalidate(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let mut state = self.lock();
        state.epoch += 1;
        for change in changes {
            match change {
                Change::All => state.entries.clear(),
                Change::Key(id) => state.entries.retain(|_, e| &e.key.key_id != id),
                Change::User(id) => state.entries.retain(|_, e| &e.key.user_id != id),
                Change::Workspace(id) => state.entries.retain(|_, e| &e.key.workspace != id),
            }
        }
    }

    /// Starts (the listener is up) or stops using the cache; either way it starts empty.
    pub fn set_online(&self, online: bool) {
        let mut state = self.lock();
        state.online = online;
        state.epoch += 1;
        state.entries.clear();
    }

    /// Entries held now (metrics, tests).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps `cache` in step with the notifications of the database at `url`, for as long as the
/// process runs: connects, `LISTEN`s, puts the cache online, and on any failure takes it
/// offline (every resolve reads the tables) and reconnects after a pause.
pub async fn listen(cache: Arc<KeyCache>, config: tokio_postgres::Config) {
    use futures_util::StreamExt;
    let mut pause = Duration::from_millis(250);
    let mut warned = false;
    loop {
        match config.connect(tokio_postgres::NoTls).await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                                if tx.send(n.payload().to_owned()).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => return e.to_string(),
                        }
                    }
                    "connection closed".to_owned()
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        cache.set_online(true);
                        if warned {
                            tracing::info!("api key cache: listening again");
                        }
                        pause = Duration::from_millis(250);
                        while let Some(payload) = rx.recv().await {
                            cache.invalidate(&parse(&payload));
                        }
                        cache.set_online(false);
                        let why = driver.await.unwrap_or_else(|e| e.to_string());
                        tracing::warn!(reason = %why, "api key cache: listener lost, resolving from the tables until it is back");
                        warned = true;
                    }
                    Err(e) => {
                        driver.abort();
                        if !warned {
                            tracing::warn!(error = %crate::db::error_line(&e), "api key cache: LISTEN failed, resolving from the tables");
                            warned = true;
                        }
                    }
                }
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %crate::db::error_line(&e), "api key cache: cannot connect its listener, resolving from the tables");
                    warned = true;
                }
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, user: &str, ws: &str) -> ResolvedKey {
        ResolvedKey {
            key_id: id.into(),
            user_id: user.into(),
            workspace: ws.into(),
            roles: vec![],
            expires: None,
            usable: true,
        }
    }

    fn online() -> Arc<KeyCache> {
        let cache = KeyCache::new(10, Duration::from_secs(60));
        cache.set_online(true);
        cache
    }

    #[test]
    fn offline_caches_nothing() {
        let cache = KeyCache::new(10, Duration::from_secs(60));
        let ticket = cache.get(&[1; 32]).unwrap_err();
        cache.put(ticket, &[1; 32], &key("k", "u", "w"));
        assert!(cache.get(&[1; 32]).is_err());
        assert!(cache.is_empty());
    }

    #[test]
    fn a_hit_after_a_put_and_each_change_drops_what_it_concerns() {
        let cache = online();
        for (h, k) in [(1u8, key("k1", "u1", "a")), (2, key("k2", "u1", "a")), (3, key("k3", "u2", "b"))] {
            let t = cache.get(&[h; 32]).unwrap_err();
            cache.put(t, &[h; 32], &k);
        }
        assert_eq!(cache.get(&[1; 32]).unwrap().key_id, "k1");
        cache.invalidate(&[Change::Key("k1".into())]);
        assert!(cache.get(&[1; 32]).is_err());
        assert!(cache.get(&[2; 32]).is_ok());
        cache.invalidate(&[Change::User("u1".into())]);
        assert!(cache.get(&[2; 32]).is_err());
        assert!(cache.get(&[3; 32]).is_ok());
        cache.invalidate(&[Change::Workspace("b".into())]);
        assert!(cache.is_empty());
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_stored() {
        let cache = online();
        let ticket = cache.get(&[1; 32]).unwrap_err();
        cache.invalidate(&[Change::Key("other".into())]);
        cache.put(ticket, &[1; 32], &key("k", "u", "w"));
        assert!(cache.get(&[1; 32]).is_err());
        // Going offline and back also voids older tickets.
        let ticket = cache.get(&[1; 32]).unwrap_err();
        cache.set_online(false);
        cache.set_online(true);
        cache.put(ticket, &[1; 32], &key("k", "u", "w"));
        assert!(cache.is_empty());
    }

    #[test]
    fn entries_expire_and_the_size_is_bounded() {
        let cache = KeyCache::new(3, Duration::from_millis(0));
        cache.set_online(true);
        let t = cache.get(&[1; 32]).unwrap_err();
        cache.put(t, &[1; 32], &key("k", "u", "w"));
        assert!(cache.get(&[1; 32]).is_err(), "a zero ttl never hits");
        let cache = online();
        for h in 0..25u8 {
            let t = cache.get(&[h; 32]).unwrap_err();
            cache.put(t, &[h; 32], &key(&format!("k{h}"), "u", "w"));
            assert!(cache.len() <= 10);
        }
    }

    #[test]
    fn payloads_round_trip_and_overflow_to_all() {
        let changes = vec![Change::Key("k".into()), Change::User("u".into()), Change::Workspace("w".into())];
        assert_eq!(parse(&payload(&changes).unwrap()), changes);
        assert_eq!(payload(&[]), None);
        let many: Vec<_> = (0..1000).map(|i| Change::Key(format!("key-{i:020}"))).collect();
        assert_eq!(payload(&many).as_deref(), Some("*"));
        assert_eq!(parse("*"), vec![Change::All]);
        assert_eq!(parse("garbage"), vec![Change::All]);
        assert_eq!(payload(&[Change::User("a\nb".into())]).as_deref(), Some("*"));
    }

    #[test]
    fn revocations_and_owner_changes_are_changes_and_creations_are_not() {
        let ws = "workspace:acme";
        let revoked =
            Event::ApiKeyRevoked { key_id: "k".into(), reason: crate::events::RevokeReason::Revoked };
        assert_eq!(changes(ws, &revoked), Some(Change::Key("k".into())));
        assert_eq!(changes(ws, &Event::WorkspaceDisabled {}), Some(Change::Workspace("acme".into())));
        assert_eq!(changes(ws, &Event::UserEnabled { user_id: "u".into() }), Some(Change::User("u".into())));
        let rename = Event::UserChanged {
            user_id: "u".into(),
            username: Some("x".into()),
            name: None,
            email: None,
            roles: None,
            must_change_password: None,
        };
        assert_eq!(changes(ws, &rename), None);
        assert_eq!(changes(ws, &Event::WorkspaceRenamed { name: "n".into() }), None);
    }
}
