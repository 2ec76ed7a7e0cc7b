//! The actor owning the `system` stream: signing keys and bootstrap. Bootstrap also writes
//! the `default` workspace's stream, in the same transaction.

use super::pipeline::{self, Aggregate, Decision, Run};
use super::{decode_all, Head};
use crate::crypto::SigningKey;
use crate::domain::system::{self, SystemCommand, SystemState, BOOTSTRAP_WORKSPACE};
use crate::domain::workspace::{self, WorkspaceState};
use crate::events::{workspace_stream, Event, Metadata, SYSTEM_STREAM};
use crate::protocol::{IamError, IamResponse};
use crate::store::{EventStore, RequestKey, StreamAppend, StreamHead};
use actix::prelude::*;
use chrono::Utc;

#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<SystemOutcome, IamError>")]
pub struct SystemExecute {
    pub command: SystemCommand,
    pub metadata: Metadata,
    /// When set, the append also records the (secret-free) reply under this key.
    pub idempotency: Option<RequestKey>,
    /// The key a `signing_key.created` event would announce; its private half is stored
    /// beside the event, never in it.
    pub signing_key: Option<SigningKey>,
}

#[derive(Debug, Clone)]
pub struct SystemOutcome {
    /// True when events were recorded (false: a no-op, or a replayed request).
    pub applied: bool,
    /// The reply without one-time secrets.
    pub response: IamResponse,
    pub state: SystemState,
}

pub struct SystemActor {
    store: EventStore,
    loaded: Option<Kept>,
}

impl SystemActor {
    pub fn new(store: EventStore) -> Self {
        SystemActor { store, loaded: None }
    }
}

impl Actor for SystemActor {
    type Context = Context<Self>;
}

impl Handler<SystemExecute> for SystemActor {
    type Result = AtomicResponse<Self, Result<SystemOutcome, IamError>>;

    fn handle(&mut self, msg: SystemExecute, _ctx: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let loaded = self.loaded.take();
        AtomicResponse::new(Box::pin(async move { execute(&store, loaded, msg).await }.into_actor(self).map(
            |(loaded, result), act, _| {
                act.loaded = loaded;
                result
            },
        )))
    }
}

async fn load_system(store: &EventStore) -> Result<(SystemState, Head), IamError> {
    let recorded = store.load_stream(SYSTEM_STREAM).await.map_err(|e| e.into_iam_error(SYSTEM_STREAM))?;
    let mut state = SystemState::default();
    for event in decode_all(SYSTEM_STREAM, &recorded)? {
        system::apply(&mut state, &event);
    }
    Ok((state, Head::of(&recorded)))
}

/// The default workspace, read fresh: its own actor may write it too (invariant 2 settles
/// any race through the version check).
async fn load_default(store: &EventStore) -> Result<(WorkspaceState, Head), IamError> {
    let stream = workspace_stream(BOOTSTRAP_WORKSPACE);
    let recorded = store.load_stream(&stream).await.map_err(|e| e.into_iam_error(&stream))?;
    let mut state = WorkspaceState::new(BOOTSTRAP_WORKSPACE);
    for event in decode_all(&stream, &recorded)? {
        workspace::apply(&mut state, &event);
    }
    Ok((state, Head::of(&recorded)))
}

/// The system stream's state and head.
pub(super) struct Kept {
    state: SystemState,
    head: Head,
}

impl Aggregate for Kept {
    type Command = SystemExecute;
    type Reply = SystemOutcome;

    async fn load(store: &EventStore, _id: &str) -> Result<Kept, IamError> {
        let (state, head) = load_system(store).await?;
        Ok(Kept { state, head })
    }

    async fn decide(&mut self, store: &EventStore, msg: &SystemExecute) -> Result<Decision, IamError> {
        let (default_ws, default_head) = if matches!(msg.command, SystemCommand::Bootstrap { .. }) {
            load_default(store).await?
        } else {
            (WorkspaceState::new(BOOTSTRAP_WORKSPACE), Head::of(&[]))
        };
        let decision = system::decide(&self.state, &default_ws, &msg.command, Utc::now())?;
        if decision.is_empty() {
            return Ok(Decision::Unchanged(IamResponse::default()));
        }
        let mut response = IamResponse::default();
        for event in &decision.system {
            system::apply(&mut self.state, event);
            if let Event::SystemBootstrapped { user_id, .. } = event {
                response.bootstrap_admin_user_id = user_id.clone();
            }
        }
        let creates_key = decision.system.iter().any(|e| matches!(e, Event::SigningKeyCreated { .. }));
        let mut streams = vec![StreamAppend {
            stream: SYSTEM_STREAM.to_owned(),
            expected_version: self.head.version,
            last_hash: self.head.last_hash.clone(),
            events: decision.system,
        }];
        if !decision.default_workspace.is_empty() {
            streams.push(StreamAppend {
                stream: workspace_stream(BOOTSTRAP_WORKSPACE),
                expected_version: default_head.version,
                last_hash: default_head.last_hash,
                events: decision.default_workspace,
            });
        }
        let signing_key = if creates_key { msg.signing_key.clone() } else { None };
        Ok(Decision::Record { streams, signing_key, response })
    }

    fn committed(&mut self, _store: &EventStore, _id: &str, heads: Vec<StreamHead>) {
        if let Some(h) = heads.into_iter().find(|h| h.stream == SYSTEM_STREAM) {
            self.head = Head { version: h.version, last_hash: h.last_hash };
        }
    }

    fn reply(&self, response: IamResponse, applied: bool) -> SystemOutcome {
        SystemOutcome { applied, response, state: self.state.clone() }
    }

    async fn replay(store: &EventStore, _id: &str, response: IamResponse) -> Result<SystemOutcome, IamError> {
        let (state, _) = load_system(store).await?;
        Ok(SystemOutcome { applied: false, response, state })
    }
}

/// The command through the actors' pipeline.
async fn execute(
    store: &EventStore,
    loaded: Option<Kept>,
    msg: SystemExecute,
) -> (Option<Kept>, Result<SystemOutcome, IamError>) {
    let run = Run {
        store,
        id: SYSTEM_STREAM,
        stream: SYSTEM_STREAM,
        command: &msg,
        metadata: &msg.metadata,
        idempotency: &msg.idempotency,
    };
    pipeline::execute(loaded, run).await
}
