//! The actor owning one workspace stream.

use super::pipeline::{self, Aggregate, Decision, Run};
use super::{replies, Deregister, Head};
use crate::domain::workspace::{self, WorkspaceCommand, WorkspaceState};
use crate::events::{workspace_stream, Metadata};
use crate::protocol::{IamError, IamResponse};
use crate::store::snapshot;
use crate::store::{EventStore, RequestKey, StreamAppend, StreamHead};
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
    /// The workspace's stream.
    stream: String,
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
            stream: workspace_stream(id),
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

impl Aggregate for Loaded {
    type Command = WorkspaceCommand;
    type Reply = IamResponse;

    async fn load(store: &EventStore, id: &str) -> Result<Loaded, IamError> {
        Loaded::load(store, id).await
    }

    async fn decide(
        &mut self,
        _store: &EventStore,
        command: &WorkspaceCommand,
    ) -> Result<Decision, IamError> {
        let events = workspace::decide(&self.state, command, Utc::now())?;
        if events.is_empty() {
            return Ok(Decision::Unchanged(replies::render(&self.state, &workspace::answer(command))));
        }
        for event in &events {
            workspace::apply(&mut self.state, event);
        }
        let stream = StreamAppend {
            stream: self.stream.clone(),
            expected_version: self.head.version,
            last_hash: self.head.last_hash.clone(),
            events,
        };
        Ok(Decision::Record {
            streams: vec![stream],
            signing_key: None,
            response: replies::render(&self.state, &workspace::answer(command)),
        })
    }

    fn committed(&mut self, store: &EventStore, id: &str, heads: Vec<StreamHead>) {
        if let Some(h) = heads.into_iter().next() {
            self.head = Head { version: h.version, last_hash: h.last_hash };
            self.snapshot_if_due(store, id);
        }
    }

    fn reply(&self, response: IamResponse, _applied: bool) -> IamResponse {
        response
    }

    async fn replay(_store: &EventStore, _id: &str, response: IamResponse) -> Result<IamResponse, IamError> {
        Ok(response)
    }
}

/// The command through the actors' pipeline.
async fn execute(
    store: &EventStore,
    id: &str,
    loaded: Option<Loaded>,
    msg: Execute,
) -> (Option<Loaded>, Result<IamResponse, IamError>) {
    let stream = workspace_stream(id);
    let run = Run {
        store,
        id,
        stream: &stream,
        command: &msg.command,
        metadata: &msg.metadata,
        idempotency: &msg.idempotency,
    };
    pipeline::execute(loaded, run).await
}
