//! The actor owning the `system` stream: signing keys and bootstrap. Bootstrap also writes
//! the `default` workspace's stream, in the same transaction.

use super::{decode_all, dedupe, replayed, store_error, Head};
use crate::crypto::SigningKey;
use crate::domain::system::{self, SystemCommand, SystemState, BOOTSTRAP_WORKSPACE};
use crate::domain::workspace::{self, WorkspaceState};
use crate::events::{workspace_stream, Event, Metadata, SYSTEM_STREAM};
use crate::protocol::{IamError, IamResponse};
use crate::store::{Append, AppendError, EventStore, RequestKey, StreamAppend};
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
    loaded: Option<(SystemState, Head)>,
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
    let recorded = store.load_stream(SYSTEM_STREAM).await.map_err(|e| store_error(SYSTEM_STREAM, e))?;
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
    let recorded = store.load_stream(&stream).await.map_err(|e| store_error(&stream, e))?;
    let mut state = WorkspaceState::new(BOOTSTRAP_WORKSPACE);
    for event in decode_all(&stream, &recorded)? {
        workspace::apply(&mut state, &event);
    }
    Ok((state, Head::of(&recorded)))
}

type Kept = Option<(SystemState, Head)>;

async fn execute(
    store: &EventStore,
    loaded: Kept,
    msg: SystemExecute,
) -> (Kept, Result<SystemOutcome, IamError>) {
    let (mut state, mut head) = match loaded {
        Some(l) => l,
        None => match load_system(store).await {
            Ok(l) => l,
            Err(e) => return (None, Err(e)),
        },
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (default_ws, default_head) = if matches!(msg.command, SystemCommand::Bootstrap { .. }) {
            match load_default(store).await {
                Ok(d) => d,
                Err(e) => return (Some((state, head)), Err(e)),
            }
        } else {
            (WorkspaceState::new(BOOTSTRAP_WORKSPACE), Head::of(&[]))
        };
        let decision = match system::decide(&state, &default_ws, &msg.command, Utc::now()) {
            Ok(d) => d,
            Err(e) => return (Some((state, head)), Err(e)),
        };
        if decision.is_empty() {
            let outcome =
                SystemOutcome { applied: false, response: IamResponse::default(), state: state.clone() };
            return (Some((state, head)), Ok(outcome));
        }
        let mut response = IamResponse::default();
        for event in &decision.system {
            system::apply(&mut state, event);
            if let Event::SystemBootstrapped { user_id, .. } = event {
                response.bootstrap_admin_user_id = user_id.clone();
            }
        }
        let creates_key = decision.system.iter().any(|e| matches!(e, Event::SigningKeyCreated { .. }));
        let mut streams = vec![StreamAppend {
            stream: SYSTEM_STREAM.to_owned(),
            expected_version: head.version,
            last_hash: head.last_hash.clone(),
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
        let append = Append {
            streams,
            metadata: msg.metadata.clone(),
            signing_key: if creates_key { msg.signing_key.clone() } else { None },
            dedupe: dedupe(&msg.idempotency, &msg.metadata.operation, &response),
        };
        match store.append(append).await {
            Ok(heads) => {
                if let Some(h) = heads.into_iter().find(|h| h.stream == SYSTEM_STREAM) {
                    head = Head { version: h.version, last_hash: h.last_hash };
                }
                let outcome = SystemOutcome { applied: true, response, state: state.clone() };
                return (Some((state, head)), Ok(outcome));
            }
            Err(AppendError::Conflict(_)) if attempts < 2 => {
                (state, head) = match load_system(store).await {
                    Ok(l) => l,
                    Err(e) => return (None, Err(e)),
                };
            }
            Err(AppendError::AlreadyProcessed) => {
                let Some(key) = &msg.idempotency else { return (None, Err(IamError::internal())) };
                let result = match replayed(store, key, &msg.metadata.operation).await {
                    Ok(Some(r)) => match load_system(store).await {
                        Ok((s, _)) => Ok(SystemOutcome { applied: false, response: r, state: s }),
                        Err(e) => Err(e),
                    },
                    Ok(None) => Err(IamError::internal()),
                    Err(e) => Err(e),
                };
                return (None, result);
            }
            Err(e) => return (None, Err(store_error(SYSTEM_STREAM, e))),
        }
    }
}
