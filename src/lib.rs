//! iamd: an event-sourced identity and access management service.
//!
//! # Layout
//! - [`protocol`]: the wire types (`IamRequest` / `IamResponse`) and the error taxonomy.
//! - [`domain`]: the aggregates (workspace, system): pure `decide` and `apply`.
//! - [`events`]: event types, the hash chain and the PostgreSQL [`events::EventStore`].
//! - [`projections`]: reducers keeping the read tables, run inside the append transaction.
//! - [`audit`]: checks of the log itself: `verify` walks every stream's hash chain.
//! - [`actors`]: one `WorkspaceActor` per workspace and the `SystemActor`, behind a registry.
//! - [`authz`]: the pure capability model: which roles grant what, in which workspaces.
//! - [`metrics`]: the Prometheus registry (`GET /metrics`): requests, latency, keys, gauges.
//! - [`service`]: one dispatch from `IamRequest` to `IamResponse` for every adapter.
//! - [`adapters`]: transports: HTTP and Kafka.
//! - [`bench`]: `iamd bench`, the load generator that measures every performance budget.
//! - [`client`]: a Kafka request/response client for iamd (`iamd call --kafka`, tests, bench).
//! - [`crypto`]: argon2id, API keys, Ed25519/JWT.
//! - [`config`]: typed settings from YAML + `IAMD_*` environment variables.
//! - [`db`]: the connection pool and migrations. [`startup`]: builds and runs the server.

pub mod actors;
pub mod adapters;
pub mod audit;
pub mod authz;
pub mod bench;
pub mod client;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod events;
pub mod metrics;
pub mod projections;
pub mod protocol;
pub mod service;
pub mod startup;
