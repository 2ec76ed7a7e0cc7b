//! A synthetic event log for measuring (`iamd projections generate --events N`, a hidden
//! benchmarking aid): realistic workspace histories written straight into `events` with
//! `COPY`, hash-chained exactly as the store chains them, so `iamd audit verify` passes on
//! them and `iamd projections rebuild` projects them.
//!
//! The histories come from the domain itself: a simulation picks commands (create users and
//! API keys, revoke keys, rename, change roles, disable, enable, delete users, change and reset
//! passwords, rename, disable and re-enable workspaces) and runs them through the workspace
//! aggregate's `decide` and `apply`, so every event is one iamd could have written. About 32
//! workspaces are busy at a time and their commands interleave; usernames freed by a delete or a
//! rename are reused in other workspaces, which only a replay in commit order gets right.
//!
//! Only the log is written: the read tables stay as they were until a rebuild. Every event's
//! metadata says `source: "generate"`. Every generated user's password is [`PASSWORD`]
//! (stored as [`PASSWORD_HASH`]); an API key's plaintext is [`api_key_plaintext`] of its id.
//! Both are public by design: never generate into a database that matters.

use crate::crypto::ApiKey;
use crate::domain::workspace::{apply, decide, WorkspaceCommand, WorkspaceState};
use crate::events::hash::{self, HashInput, GENESIS};
use crate::events::{Event, Metadata};
use anyhow::Context as _;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

/// The password of every generated user.
pub const PASSWORD: &str = "generated-password-0";
/// The argon2id encoding of [`PASSWORD`] (iamd's default parameters), computed once.
pub const PASSWORD_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$oidOl5by+x9R7KmUpJNKwg$VX9rS6myqhhgRcrP6EVTo8Wlo/ALRe6B2FefEiG6cCg";
/// The `source` in every generated event's metadata.
pub const SOURCE: &str = "generate";

/// Events written per `COPY` (one transaction each).
const BATCH: usize = 10_000;
/// Workspaces taking commands at the same time.
const ACTIVE_WORKSPACES: usize = 32;

const COPY: &str = "COPY events (stream, version, event_type, schema_version, payload, metadata, \
    recorded_at, prev_hash, hash) FROM STDIN (FORMAT binary)";
const COPY_TYPES: [Type; 9] = [
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::INT4,
    Type::JSONB,
    Type::JSONB,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
];

/// The plaintext of a generated API key: derived from its id, so a benchmark can present it.
pub fn api_key_plaintext(key_id: &str) -> String {
    let digest = Sha256::digest(format!("iamd-generate:{key_id}").as_bytes());
    format!(
        "{}{}",
        crate::crypto::api_key::API_KEY_PREFIX,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..24])
    )
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Generated {
    pub events: u64,
    pub workspaces: u64,
    pub users: u64,
    pub api_keys: u64,
    pub revocations: u64,
    pub user_deletions: u64,
    /// Users created with a username another user had given up (deleted or renamed).
    pub reused_usernames: u64,
}

/// True when every event in the log was written by [`generate`] (or the log is empty): the
/// only kind of database the CLI generates into unless forced.
pub async fn log_is_synthetic(client: &deadpool_postgres::Client) -> anyhow::Result<bool> {
    let row = client
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM events WHERE metadata->>'source' IS DISTINCT FROM $1)",
            &[&SOURCE],
        )
        .await
        .context("reading the log")?;
    Ok(row.get(0))
}

/// Appends `events` synthetic events (exactly) to the log, in transactions of 10,000;
/// `progress` gets the running count after each. New streams only (`workspace:gen-<tag>-<n>`,
/// with a random tag per run), so it can run on a log that already holds events.
pub async fn generate(
    client: &mut deadpool_postgres::Client,
    events: u64,
    progress: impl FnMut(u64),
) -> anyhow::Result<Generated> {
    generate_shaped(client, events, Shape::MANY, progress).await
}

/// How a generated log spreads over workspaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Workspaces taking commands at the same time.
    pub active_workspaces: usize,
    /// Each workspace goes quiet after a number of events drawn from this range.
    pub budget: (u64, u64),
}

impl Shape {
    /// Many workspaces of a few hundred to a few thousand events each.
    pub const MANY: Shape = Shape { active_workspaces: ACTIVE_WORKSPACES, budget: (200, 2_000) };

    /// All `events` in one workspace (a cold-start measurement).
    pub fn one_workspace(events: u64) -> Shape {
        Shape { active_workspaces: 1, budget: (events, events + 1) }
    }
}

/// [`generate`] with another spread over workspaces.
pub async fn generate_shaped(
    client: &mut deadpool_postgres::Client,
    events: u64,
    shape: Shape,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<Generated> {
    anyhow::ensure!(
        shape.active_workspaces > 0 && shape.budget.0 < shape.budget.1,
        "generate: a shape needs a workspace and a non-empty budget range"
    );
    let mut sim = Sim::new(events, rand::random(), shape);
    let mut rows = Vec::with_capacity(BATCH + 64);
    while sim.stats.events < events {
        rows.clear();
        while rows.len() < BATCH && sim.stats.events < events {
            sim.step(&mut rows);
        }
        write(client, &rows).await?;
        progress(sim.stats.events);
    }
    Ok(sim.stats)
}

/// One stored row.
struct Row {
    stream: String,
    version: i64,
    event_type: String,
    schema_version: i32,
    payload: serde_json::Value,
    metadata: serde_json::Value,
    recorded_at: DateTime<Utc>,
    prev_hash: String,
    hash: String,
}

async fn write(client: &mut deadpool_postgres::Client, rows: &[Row]) -> anyhow::Result<()> {
    let tx = client.transaction().await.context("generate: starting a transaction")?;
    // A crash loses at most the last batches; the generator would be gone with them anyway.
    tx.batch_execute("SET LOCAL synchronous_commit = off").await?;
    let sink = tx.copy_in(COPY).await.context("generate: COPY into events")?;
    let writer = BinaryCopyInWriter::new(sink, &COPY_TYPES);
    futures_util::pin_mut!(writer);
    for r in rows {
        let values: [&(dyn ToSql + Sync); 9] = [
            &r.stream,
            &r.version,
            &r.event_type,
            &r.schema_version,
            &r.payload,
            &r.metadata,
            &r.recorded_at,
            &r.prev_hash,
            &r.hash,
        ];
        writer.as_mut().write(&values).await.context("generate: COPY into events")?;
    }
    writer.finish().await.context("generate: COPY into events")?;
    tx.commit().await.context("generate: committing")?;
    Ok(())
}

/// A workspace taking commands.
struct Workspace {
    state: WorkspaceState,
    stream: String,
    version: i64,
    last_hash: String,
    /// Events this workspace writes before it goes quiet.
    budget: u64,
    written: u64,
    /// Ids of its users and of its unrevoked keys, for picking at random.
    users: Vec<String>,
    keys: Vec<String>,
}

struct Sim {
    shape: Shape,
    rng: StdRng,
    tag: String,
    target: u64,
    clock: DateTime<Utc>,
    active: Vec<Workspace>,
    next_workspace: u64,
    next_user: u64,
    next_key: u64,
    /// Usernames given up by a delete or a rename, free for anyone to take.
    freed: Vec<String>,
    /// The command being run takes a freed username.
    reusing: bool,
    stats: Generated,
}

impl Sim {
    fn new(target: u64, seed: u64, shape: Shape) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let tag = format!("{:06x}", rng.gen::<u32>() & 0xff_ffff);
        // About one command a second, ending now.
        let clock = hash::truncate(Utc::now() - Duration::seconds(target as i64));
        Sim {
            shape,
            rng,
            tag,
            target,
            clock,
            active: Vec::new(),
            next_workspace: 0,
            next_user: 0,
            next_key: 0,
            freed: Vec::new(),
            reusing: false,
            stats: Generated::default(),
        }
    }

    fn uuid(&mut self) -> String {
        uuid::Builder::from_random_bytes(self.rng.gen()).into_uuid().to_string()
    }

    /// One command on one workspace: its events (possibly none) go to `rows`.
    fn step(&mut self, rows: &mut Vec<Row>) {
        self.clock += Duration::milliseconds(self.rng.gen_range(1..2_000));
        if self.active.len() < self.shape.active_workspaces {
            self.next_workspace += 1;
            let id = format!("gen-{}-{}", self.tag, self.next_workspace);
            let mut ws = Workspace {
                state: WorkspaceState::new(&id),
                stream: crate::events::workspace_stream(&id),
                version: 0,
                last_hash: GENESIS.to_owned(),
                budget: self.rng.gen_range(self.shape.budget.0..self.shape.budget.1),
                written: 0,
                users: Vec::new(),
                keys: Vec::new(),
            };
            let name = format!("Generated workspace {}", self.next_workspace);
            self.run(&mut ws, WorkspaceCommand::CreateWorkspace { name }, "create-workspace", rows);
            self.stats.workspaces += 1;
            self.active.push(ws);
            return;
        }
        let i = self.rng.gen_range(0..self.active.len());
        let mut ws = self.active.swap_remove(i);
        let (command, operation) = self.pick(&mut ws);
        let retire = ws.written >= ws.budget;
        self.run(&mut ws, command, operation, rows);
        if !retire {
            self.active.push(ws);
        }
    }

    /// The next command for `ws`: a user first, then a weighted mix.
    fn pick(&mut self, ws: &mut Workspace) -> (WorkspaceCommand, &'static str) {
        use WorkspaceCommand as C;
        if !ws.state.enabled {
            return (C::UpdateWorkspace { name: None, enabled: Some(true) }, "enable-workspace");
        }
        if ws.written >= ws.budget {
            // Going quiet: one in twenty is disabled on its way out, revoking everything.
            if self.rng.gen_range(0..20) == 0 {
                return (C::DisableWorkspace, "disable-workspace");
            }
            let name = format!("Generated workspace {} (archived)", ws.state.id);
            return (C::UpdateWorkspace { name: Some(name), enabled: None }, "update-workspace");
        }
        if ws.users.len() < 3 {
            return self.create_user();
        }
        let user = ws.users[self.rng.gen_range(0..ws.users.len())].clone();
        match self.rng.gen_range(0..1_000) {
            0..=149 => self.create_user(),
            520..=619 if !ws.keys.is_empty() => {
                let key_id = ws.keys[self.rng.gen_range(0..ws.keys.len())].clone();
                (C::RevokeApiKey { key_id }, "revoke-api-key")
            }
            620..=719 => {
                let roles = self.roles();
                let n = self.rng.gen_range(0..1_000);
                let command = C::UpdateUser {
                    user_id: user,
                    username: None,
                    name: Some(format!("Person {n}")),
                    email: (n % 2 == 0).then(|| format!("person{n}@example.com")),
                    roles: Some(roles),
                    enabled: None,
                    must_change_password: None,
                    password_given: false,
                    profile: Default::default(),
                };
                (command, "update-user")
            }
            720..=749 => {
                self.next_user += 1;
                let username = format!("{}-u{}", self.tag, self.next_user);
                let command = C::UpdateUser {
                    user_id: user,
                    username: Some(username),
                    name: None,
                    email: None,
                    roles: None,
                    enabled: None,
                    must_change_password: None,
                    password_given: false,
                    profile: Default::default(),
                };
                (command, "update-user")
            }
            750..=779 => (C::DisableUser { user_id: user }, "disable-user"),
            780..=799 => (C::EnableUser { user_id: user }, "enable-user"),
            800..=839 => {
                let command = C::ChangePassword {
                    user_id: user,
                    verified_hash: PASSWORD_HASH.to_owned(),
                    new_hash: PASSWORD_HASH.to_owned(),
                };
                (command, "change-password")
            }
            840..=859 => {
                (C::ResetPassword { user_id: user, new_hash: PASSWORD_HASH.to_owned() }, "reset-password")
            }
            860..=889 => (C::DeleteUser { user_id: user }, "delete-user"),
            // Rare: it disables every user and revokes every key of the workspace.
            895 => (C::DisableWorkspace, "disable-workspace"),
            890..=894 => {
                let name = format!("Generated workspace {} renamed {}", ws.state.id, self.rng.gen::<u16>());
                (C::UpdateWorkspace { name: Some(name), enabled: None }, "update-workspace")
            }
            // 150..=519, and the rest: API keys are the commonest command.
            _ => self.create_api_key(user),
        }
    }

    fn create_api_key(&mut self, user_id: String) -> (WorkspaceCommand, &'static str) {
        self.next_key += 1;
        let key_id = self.uuid();
        let key = ApiKey::from_plaintext(api_key_plaintext(&key_id));
        let expires =
            (self.rng.gen_range(0..5) == 0).then(|| self.clock + Duration::days(self.rng.gen_range(30..400)));
        let command = WorkspaceCommand::CreateApiKey {
            key_id,
            user_id,
            name: format!("key {}", self.next_key),
            prefix: key.display_prefix(),
            key_hash: key.hash().to_tagged(),
            expires,
        };
        (command, "create-api-key")
    }

    fn create_user(&mut self) -> (WorkspaceCommand, &'static str) {
        let reuse = !self.freed.is_empty() && self.rng.gen_range(0..3) == 0;
        self.reusing = reuse;
        let username = if reuse {
            let i = self.rng.gen_range(0..self.freed.len());
            self.freed.swap_remove(i)
        } else {
            self.next_user += 1;
            format!("{}-u{}", self.tag, self.next_user)
        };
        let roles = self.roles();
        let command = WorkspaceCommand::CreateUser {
            user_id: self.uuid(),
            name: format!("User {username}"),
            email: format!("{username}@example.com"),
            username,
            roles,
            enabled: true,
            must_change_password: self.rng.gen_range(0..10) == 0,
            password_hash: PASSWORD_HASH.to_owned(),
            profile: Default::default(),
            self_registered: false,
            number: None,
        };
        (command, "create-user")
    }

    fn roles(&mut self) -> Vec<String> {
        match self.rng.gen_range(0..10) {
            0 => vec!["admin".into()],
            1..=3 => vec!["writer".into(), "reader".into()],
            _ => vec!["reader".into()],
        }
    }

    /// Decides `command` on `ws`; a refusal writes nothing (the simulation picks blindly).
    fn run(&mut self, ws: &mut Workspace, command: WorkspaceCommand, operation: &str, rows: &mut Vec<Row>) {
        let decided = decide(&ws.state, &command, self.clock);
        let reusing = std::mem::take(&mut self.reusing);
        let Ok(events) = decided else {
            if let (true, WorkspaceCommand::CreateUser { username, .. }) = (reusing, command) {
                // Not taken after all: the name stays free.
                self.freed.push(username);
            }
            return;
        };
        if reusing {
            self.stats.reused_usernames += 1;
        }
        let metadata = serde_json::to_value(Metadata {
            actor: format!("admin@{}", ws.state.id),
            request_id: self.uuid(),
            source: SOURCE.into(),
            operation: operation.into(),
        })
        .expect("metadata serialises");
        for event in events {
            if self.stats.events >= self.target {
                return;
            }
            self.track(ws, &event);
            apply(&mut ws.state, &event);
            ws.version += 1;
            ws.written += 1;
            let (event_type, payload) = event.to_columns();
            let schema_version = event.schema_version();
            let hash = hash::event_hash(&HashInput {
                prev_hash: &ws.last_hash,
                stream: &ws.stream,
                version: ws.version,
                event_type: &event_type,
                schema_version,
                payload: &payload,
                metadata: &metadata,
                recorded_at: self.clock,
            });
            let prev_hash = std::mem::replace(&mut ws.last_hash, hash.clone());
            rows.push(Row {
                stream: ws.stream.clone(),
                version: ws.version,
                event_type,
                schema_version,
                payload,
                metadata: metadata.clone(),
                recorded_at: self.clock,
                prev_hash,
                hash,
            });
            self.stats.events += 1;
        }
    }

    /// Keeps the pick lists and the freed usernames in step with `event` (before it applies).
    fn track(&mut self, ws: &mut Workspace, event: &Event) {
        match event {
            Event::UserCreated { user_id, .. } => {
                ws.users.push(user_id.clone());
                self.stats.users += 1;
            }
            Event::UserChanged { user_id, username: Some(_), .. } => {
                if let Some(u) = ws.state.users.get(user_id) {
                    self.freed.push(u.username.clone());
                }
            }
            Event::UserDeleted { user_id, username, .. } => {
                ws.users.retain(|u| u != user_id);
                self.freed.push(username.clone());
                self.stats.user_deletions += 1;
            }
            Event::ApiKeyCreated { key_id, .. } => {
                ws.keys.push(key_id.clone());
                self.stats.api_keys += 1;
            }
            Event::ApiKeyRevoked { key_id, .. } => {
                ws.keys.retain(|k| k != key_id);
                self.stats.revocations += 1;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simulate(target: u64, seed: u64) -> (Vec<Row>, Generated) {
        simulate_shaped(target, seed, Shape::MANY)
    }

    fn simulate_shaped(target: u64, seed: u64, shape: Shape) -> (Vec<Row>, Generated) {
        let mut sim = Sim::new(target, seed, shape);
        let mut rows = Vec::new();
        while sim.stats.events < target {
            sim.step(&mut rows);
        }
        (rows, sim.stats)
    }

    #[test]
    fn one_workspace_takes_every_event() {
        let (rows, stats) = simulate_shaped(5_000, 3, Shape::one_workspace(5_000));
        assert_eq!((rows.len(), stats.workspaces), (5_000, 1));
        assert!(rows.iter().all(|r| r.stream == rows[0].stream));
        assert_eq!(rows.last().unwrap().version, 5_000);
    }

    #[test]
    fn the_password_hash_verifies_the_password() {
        let hasher = crate::crypto::password::PasswordHasher::new(19 * 1024, 2, 1).unwrap();
        assert!(hasher.verify_now(PASSWORD_HASH, PASSWORD));
    }

    #[test]
    fn it_writes_exactly_the_count_with_chains_and_versions_intact() {
        let (rows, stats) = simulate(20_000, 7);
        assert_eq!(rows.len(), 20_000);
        assert_eq!(stats.events, 20_000);
        let mut heads: std::collections::HashMap<&str, (i64, &str)> = Default::default();
        for r in &rows {
            let (version, prev) = heads.get(r.stream.as_str()).copied().unwrap_or((0, GENESIS));
            assert_eq!(r.version, version + 1, "{}", r.stream);
            assert_eq!(r.prev_hash, prev);
            let recomputed = hash::event_hash(&HashInput {
                prev_hash: &r.prev_hash,
                stream: &r.stream,
                version: r.version,
                event_type: &r.event_type,
                schema_version: r.schema_version,
                payload: &r.payload,
                metadata: &r.metadata,
                recorded_at: r.recorded_at,
            });
            assert_eq!(r.hash, recomputed);
            heads.insert(&r.stream, (r.version, &r.hash));
        }
        assert!(stats.workspaces > 32, "{stats:?}");
        for (what, n) in [
            ("users", stats.users),
            ("keys", stats.api_keys),
            ("revocations", stats.revocations),
            ("deletions", stats.user_deletions),
            ("reused usernames", stats.reused_usernames),
        ] {
            assert!(n > 10, "too few {what}: {stats:?}");
        }
    }

    #[test]
    fn every_event_decodes_and_usernames_are_never_held_twice() {
        let (rows, _) = simulate(20_000, 11);
        // username (lower) -> holder, in commit order, across every workspace.
        let mut held: std::collections::HashMap<String, String> = Default::default();
        let mut names: std::collections::HashMap<String, String> = Default::default();
        for r in &rows {
            let event = Event::from_columns(&r.event_type, r.schema_version, r.payload.clone()).unwrap();
            match event {
                Event::UserCreated { user_id, username, .. } => {
                    assert!(held.insert(username.to_lowercase(), user_id.clone()).is_none(), "{username}");
                    names.insert(user_id, username.to_lowercase());
                }
                Event::UserChanged { user_id, username: Some(username), .. } => {
                    let old = names.insert(user_id.clone(), username.to_lowercase()).unwrap();
                    held.remove(&old);
                    assert!(held.insert(username.to_lowercase(), user_id).is_none(), "{username}");
                }
                Event::UserDeleted { user_id, .. } => {
                    let old = names.remove(&user_id).unwrap();
                    assert_eq!(held.remove(&old), Some(user_id));
                }
                _ => {}
            }
        }
    }

    #[test]
    fn a_generated_key_plaintext_hashes_to_its_stored_hash() {
        let (rows, _) = simulate(2_000, 3);
        let created = rows.iter().find(|r| r.event_type == "api_key.created").unwrap();
        let key_id = created.payload["key_id"].as_str().unwrap();
        let plaintext = api_key_plaintext(key_id);
        assert!(plaintext.starts_with("tg_"));
        let stored = created.payload["key_hash"].as_str().unwrap();
        assert_eq!(stored, ApiKey::from_plaintext(plaintext).hash().to_tagged());
    }
}
