//! The one pipeline both actors run for a command: decide (applying what is decided to the
//! state), one append of the events with the processed-request record, one reload-and-retry on
//! a version conflict (another process, or a stale actor, wrote first), and the stored answer
//! when the same request was already applied.

use super::{dedupe, replayed};
use crate::crypto::SigningKey;
use crate::events::Metadata;
use crate::protocol::{IamError, IamResponse};
use crate::store::{Append, AppendError, EventStore, RequestKey, StreamAppend, StreamHead};

/// What deciding a command came to.
pub(super) enum Decision {
    /// Nothing to record: answer this.
    Unchanged(IamResponse),
    /// Record these streams — their events already applied to the state — and a new signing
    /// key's private half when one is announced, then answer `response`.
    Record { streams: Vec<StreamAppend>, signing_key: Option<SigningKey>, response: IamResponse },
}

/// What an actor keeps between commands: a state and where its streams stand.
pub(super) trait Aggregate: Sized {
    type Command;
    type Reply;
    /// The state as the log has it now.
    async fn load(store: &EventStore, id: &str) -> Result<Self, IamError>;
    /// Decides `command` and applies the events it records to the state.
    async fn decide(&mut self, store: &EventStore, command: &Self::Command) -> Result<Decision, IamError>;
    /// The append committed, leaving its streams at `heads`.
    fn committed(&mut self, store: &EventStore, id: &str, heads: Vec<StreamHead>);
    /// The reply to a command, `applied` when it recorded events.
    fn reply(&self, response: IamResponse, applied: bool) -> Self::Reply;
    /// The reply to a request already applied, from its stored answer.
    async fn replay(store: &EventStore, id: &str, response: IamResponse) -> Result<Self::Reply, IamError>;
}

/// A command carried through the pipeline.
pub(super) struct Run<'a, C> {
    pub store: &'a EventStore,
    /// The aggregate's id (the workspace id) and its stream, for loading and for logs.
    pub id: &'a str,
    pub stream: &'a str,
    pub command: &'a C,
    pub metadata: &'a Metadata,
    pub idempotency: &'a Option<RequestKey>,
}

/// Runs `run.command` against `kept` (loaded first when absent). Returns the state to keep —
/// `None` when it may no longer match the log — and the reply.
pub(super) async fn execute<A: Aggregate>(
    kept: Option<A>,
    run: Run<'_, A::Command>,
) -> (Option<A>, Result<A::Reply, IamError>) {
    let Run { store, id, stream, command, metadata, idempotency } = run;
    let mut state = match kept {
        Some(state) => state,
        None => match A::load(store, id).await {
            Ok(state) => state,
            Err(e) => return (None, Err(e)),
        },
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (streams, signing_key, response) = match state.decide(store, command).await {
            Ok(Decision::Unchanged(response)) => {
                let reply = state.reply(response, false);
                return (Some(state), Ok(reply));
            }
            Ok(Decision::Record { streams, signing_key, response }) => (streams, signing_key, response),
            Err(e) => return (Some(state), Err(e)),
        };
        let append = Append {
            streams,
            metadata: metadata.clone(),
            signing_key,
            dedupe: dedupe(idempotency, &metadata.operation, &response),
        };
        match store.append(append).await {
            Ok(heads) => {
                state.committed(store, id, heads);
                let reply = state.reply(response, true);
                return (Some(state), Ok(reply));
            }
            Err(AppendError::Conflict(_)) if attempts < 2 => {
                tracing::debug!(%stream, "version conflict, reloading");
                state = match A::load(store, id).await {
                    Ok(state) => state,
                    Err(e) => return (None, Err(e)),
                };
            }
            Err(AppendError::AlreadyProcessed) => {
                let Some(key) = idempotency else { return (None, Err(IamError::internal())) };
                let result = match replayed(store, key, &metadata.operation).await {
                    Ok(Some(response)) => A::replay(store, id, response).await,
                    Ok(None) => Err(IamError::internal()),
                    Err(e) => Err(e),
                };
                return (None, result);
            }
            Err(e) => return (None, Err(e.into_iam_error(stream))),
        }
    }
}
