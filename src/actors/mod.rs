//! The writers. One [`WorkspaceActor`] per workspace serialises that workspace's commands;
//! the [`SystemActor`] owns signing keys and bootstrap. The [`Registry`] starts workspace
//! actors on demand, spread over a fixed set of arbiters (threads), and forgets them when
//! they stop after `actors.idle_timeout` without work.
//!
//! Both actors run one [`pipeline`] as an atomic response, so no other command of the same
//! stream interleaves: `decide` → `apply` → one append (with the processed-request record); a
//! version conflict (another process, or a stale actor, wrote first) reloads the stream and
//! decides once more; a request already applied is answered from its record. Nothing slow runs
//! here: passwords arrive already hashed (invariant 9). A workspace actor starts from its
//! stream's [`snapshot`] (a cache of the state, checked against the log) when one is usable.

mod pipeline;
pub mod replies;
mod system;
mod workspace;

pub use system::{SystemActor, SystemExecute, SystemOutcome};
pub use workspace::{Execute, WorkspaceActor};

use crate::events::RecordedEvent;
use crate::protocol::{IamError, IamResponse};
use crate::store::{Dedupe, EventStore, RequestKey};
use actix::prelude::*;
use actix::MailboxError;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where a stream stands: what the next append must expect.
#[derive(Debug, Clone)]
struct Head {
    version: i64,
    last_hash: String,
}

impl Head {
    fn of(events: &[RecordedEvent]) -> Head {
        match events.last() {
            Some(e) => Head { version: e.version, last_hash: e.hash.clone() },
            None => Head { version: 0, last_hash: crate::events::hash::GENESIS.to_owned() },
        }
    }
}

/// The record that makes a redelivery of a request an answer instead of a second effect.
fn dedupe(key: &Option<RequestKey>, operation: &str, response: &IamResponse) -> Option<Dedupe> {
    key.as_ref().map(|key| Dedupe {
        key: key.clone(),
        operation: operation.to_owned(),
        response: serde_json::to_value(response.without_secrets()).unwrap_or_default(),
    })
}

/// The stored answer to the request `key` names when that caller already applied it, marked
/// as replayed. The same caller's id reused for a different request (another operation, other
/// fields) is refused ([`IamError::request_id_reused`]) rather than answered with the first
/// request's reply; another caller's id is no concern of this caller's.
pub async fn replayed(
    store: &EventStore,
    key: &RequestKey,
    operation: &str,
) -> Result<Option<IamResponse>, IamError> {
    let stored = store
        .processed(&key.caller, &key.request_id)
        .await
        .map_err(|e| e.into_iam_error("processed_requests"))?;
    match stored {
        None => Ok(None),
        Some(p) if p.operation != operation || p.digest.as_ref().is_some_and(|d| *d != key.digest) => {
            Err(IamError::request_id_reused())
        }
        Some(p) => {
            let mut r: IamResponse = serde_json::from_value(p.response).unwrap_or_default();
            r.replayed = true;
            Ok(Some(r))
        }
    }
}

fn decode_all(stream: &str, events: &[RecordedEvent]) -> Result<Vec<crate::events::Event>, IamError> {
    events
        .iter()
        .map(|e| {
            e.decode().map_err(|err| {
                tracing::error!(stream, version = e.version, error = %err, "undecodable event");
                IamError::internal()
            })
        })
        .collect()
}

struct Entry {
    instance: u64,
    addr: Addr<WorkspaceActor>,
}

struct Inner {
    store: EventStore,
    idle_timeout: Duration,
    arbiters: Vec<ArbiterHandle>,
    actors: Mutex<HashMap<String, Entry>>,
    next_instance: AtomicU64,
    system: Addr<SystemActor>,
}

/// Finds or starts the actor of a workspace. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

/// A handle the actor uses to take itself out of the registry when it stops.
#[derive(Clone)]
pub struct Deregister {
    inner: std::sync::Weak<Inner>,
    id: String,
    instance: u64,
}

impl Deregister {
    fn run(&self) {
        if let Some(inner) = self.inner.upgrade() {
            let mut actors = inner.actors.lock().unwrap_or_else(|p| p.into_inner());
            if actors.get(&self.id).is_some_and(|e| e.instance == self.instance) {
                actors.remove(&self.id);
            }
        }
    }
}

impl Registry {
    /// Must be called inside a running actix `System`. `threads` arbiters host the actors.
    pub fn new(store: EventStore, idle_timeout: Duration, threads: usize) -> Registry {
        let arbiters: Vec<ArbiterHandle> = (0..threads.max(1))
            // An arbiter's thread runs while a handle to it (or the System) lives.
            .map(|_| Arbiter::new().handle())
            .collect();
        let system_store = store.clone();
        let system = SystemActor::start_in_arbiter(&arbiters[0], move |_| SystemActor::new(system_store));
        Registry {
            inner: Arc::new(Inner {
                store,
                idle_timeout,
                arbiters,
                actors: Mutex::new(HashMap::new()),
                next_instance: AtomicU64::new(1),
                system,
            }),
        }
    }

    pub fn system(&self) -> &Addr<SystemActor> {
        &self.inner.system
    }

    /// Workspace actors currently running.
    pub fn active(&self) -> usize {
        self.inner.actors.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn get_or_start(&self, id: &str) -> (u64, Addr<WorkspaceActor>) {
        let mut actors = self.inner.actors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = actors.get(id) {
            if e.addr.connected() {
                return (e.instance, e.addr.clone());
            }
        }
        let instance = self.inner.next_instance.fetch_add(1, Ordering::Relaxed);
        let arbiter = &self.inner.arbiters[shard(id, self.inner.arbiters.len())];
        let store = self.inner.store.clone();
        let idle = self.inner.idle_timeout;
        let deregister = Deregister { inner: Arc::downgrade(&self.inner), id: id.to_owned(), instance };
        let ws = id.to_owned();
        let addr = WorkspaceActor::start_in_arbiter(arbiter, move |_| {
            WorkspaceActor::new(ws, store, idle, deregister)
        });
        actors.insert(id.to_owned(), Entry { instance, addr: addr.clone() });
        (instance, addr)
    }

    fn forget(&self, id: &str, instance: u64) {
        let mut actors = self.inner.actors.lock().unwrap_or_else(|p| p.into_inner());
        if actors.get(id).is_some_and(|e| e.instance == instance) {
            actors.remove(id);
        }
    }

    /// Runs a command on the workspace's actor. An actor that stopped (idle) between lookup
    /// and delivery never saw the message, so it is delivered to a fresh one.
    pub async fn execute(&self, workspace: &str, msg: Execute) -> Result<IamResponse, IamError> {
        let mut last = MailboxError::Closed;
        for _ in 0..3 {
            let (instance, addr) = self.get_or_start(workspace);
            match addr.send(msg.clone()).await {
                Ok(result) => return result,
                Err(MailboxError::Closed) => self.forget(workspace, instance),
                Err(e @ MailboxError::Timeout) => {
                    last = e;
                    break;
                }
            }
        }
        tracing::error!(workspace, error = %last, "workspace actor unavailable");
        Err(IamError::internal())
    }

    pub async fn execute_system(&self, msg: SystemExecute) -> Result<SystemOutcome, IamError> {
        self.inner.system.send(msg).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "system actor unavailable");
            Err(IamError::internal())
        })
    }
}

fn shard(id: &str, n: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    (h.finish() % n as u64) as usize
}
