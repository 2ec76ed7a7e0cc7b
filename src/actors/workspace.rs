//! The actor owning one workspace stream.

use super::{dedupe, replayed, snapshot, store_error, Deregister, Head};
use crate::domain::workspace::{self, WorkspaceCommand, WorkspaceState};
use crate::events::{workspace_stream, Metadata};
use crate::protocol::{IamError, IamResponse};
use crate::store::{Append, AppendError, EventStore, RequestKey, StreamAppend};
use actix::prelude::*;
use chrono::Utc;
use std::time::{Duration, Instant};

/// A command for the workspace, with who sent it and its idempotency key.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<IamResponse, IamError>")]
pub struct Execute {
    pub command: WorkspaceCommand,
    pub metadata: Metadata,
    /// When set, the append also records the (secret-free) reply under this key.
    pub idempotency: Option<RequestKey>,
}

/// The workspace's state as of `head`.
struct Loaded {
    state: WorkspaceState,
    head: Head,
    /// The version of the last snapshot taken (or being taken) of this stream; 0 for none.
    snapshot: i64,
}

impl Loaded {
    /// From the stream's snapshot when one is usable, else from the start of the stream.
    async fn load(store: &EventStore, id: &str) -> Result<Loaded, IamError> {
        let l = snapshot::load(store, id).await?;
        let mut loaded = Loaded {
            state: l.state,
            head: Head { version: l.version, last_hash: l.last_hash },
            snapshot: l.snapshot.unwrap_or(0),
        };
        loaded.snapshot_if_due(store, id);
        Ok(loaded)
    }

    /// Once the stream is far enough past its last snapshot ([`snapshot::due`]), stores the
    /// state as the new one in the background (a clone here; serialising and writing off the
    /// actor). Never fails the command: a failed write is logged and retried at the next due.
    fn snapshot_if_due(&mut self, store: &EventStore, id: &str) {
        if snapshot::due(self.head.version, self.snapshot) {
            self.snapshot = self.head.version;
            snapshot::spawn_write(
                store.pool().clone(),
                id.to_owned(),
                self.head.version,
                self.head.last_hash.clone(),
                self.state.clone(),
            );
        }
    }
}

pub struct WorkspaceActor {
    id: String,
    store: EventStore,
    /// `None` until the first command, and after a failed append (reloaded on next use).
    loaded: Option<Loaded>,
    idle_timeout: Duration,
    last_used: Instant,
    deregister: Deregister,
}

impl WorkspaceActor {
    pub fn new(id: String, store: EventStore, idle_timeout: Duration, deregister: Deregister) -> Self {
        WorkspaceActor { id, store, loaded: None, idle_timeout, last_used: Instant::now(), deregister }
    }
}

impl Actor for WorkspaceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let every = (self.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        ctx.run_interval(every, |act, ctx| {
            if act.last_used.elapsed() >= act.idle_timeout {
                tracing::debug!(workspace = %act.id, "workspace actor idle, stopping");
                // Leave the registry first: no new sender finds this address afterwards.
                act.deregister.run();
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.deregister.run();
    }
}

impl Handler<Execute> for WorkspaceActor {
    type Result = AtomicResponse<Self, Result<IamResponse, IamError>>;

    fn handle(&mut self, msg: Execute, _ctx: &mut Self::Context) -> Self::Result {
        self.last_used = Instant::now();
        let store = self.store.clone();
        let id = self.id.clone();
        let loaded = self.loaded.take();
        AtomicResponse::new(Box::pin(
            async move { execute(&store, &id, loaded, msg).await }.into_actor(self).map(
                |(loaded, result), act, _| {
                    act.loaded = loaded;
                    act.last_used = Instant::now();
                    result
                },
            ),
        ))
    }
}

/// decide → apply → append, with one reload-and-retry on a version conflict. Returns the
/// state to keep (`None` when it may no longer match the log) and the reply.
async fn execute(
    store: &EventStore,
    id: &str,
    loaded: Option<Loaded>,
    msg: Execute,
) -> (Option<Loaded>, Result<IamResponse, IamError>) {
    let stream = workspace_stream(id);
    let mut loaded = match loaded {
        Some(l) => l,
        None => match Loaded::load(store, id).await {
            Ok(l) => l,
            Err(e) => return (None, Err(e)),
        },
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let events = match workspace::decide(&loaded.state, &msg.command, Utc::now()) {
            Ok(events) => events,
            Err(e) => return (Some(loaded), Err(e)),
        };
        if events.is_empty() {
            let reply = workspace::reply(&loaded.state, &msg.command);
            return (Some(loaded), Ok(reply));
        }
        let expected = loaded.head.clone();
        for event in &events {
            workspace::apply(&mut loaded.state, event);
        }
        let reply = workspace::reply(&loaded.state, &msg.command);
        let append = Append {
            streams: vec![StreamAppend {
                stream: stream.clone(),
                expected_version: expected.version,
                last_hash: expected.last_hash,
                events,
            }],
            metadata: msg.metadata.clone(),
            signing_key: None,
            dedupe: dedupe(&msg.idempotency, &msg.metadata.operation, &reply),
        };
        match store.append(append).await {
            Ok(heads) => {
                if let Some(h) = heads.into_iter().next() {
                    loaded.head = Head { version: h.version, last_hash: h.last_hash };
                    loaded.snapshot_if_due(store, id);
                }
                return (Some(loaded), Ok(reply));
            }
            Err(AppendError::Conflict(_)) if attempts < 2 => {
                tracing::debug!(%stream, "version conflict, reloading");
                loaded = match Loaded::load(store, id).await {
                    Ok(l) => l,
                    Err(e) => return (None, Err(e)),
                };
            }
            Err(AppendError::AlreadyProcessed) => {
                let Some(key) = &msg.idempotency else { return (None, Err(IamError::internal())) };
                return match replayed(store, key, &msg.metadata.operation).await {
                    Ok(Some(r)) => (None, Ok(r)),
                    Ok(None) => (None, Err(IamError::internal())),
                    Err(e) => (None, Err(e)),
                };
            }
            Err(e) => return (None, Err(store_error(&stream, e))),
        }
    }
}
