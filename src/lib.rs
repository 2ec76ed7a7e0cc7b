//! iamd: an event-sourced identity and access management service.
//!
//! # Layout
//! From the leaves up (`scripts/layers.py`, run by `make lint`, fails on any cycle between
//! these modules):
//! - [`db`]: the connection pool, and the one way a database error is told (never a row's
//!   values).
//! - [`protocol`]: the wire types (`IamRequest` / `IamResponse`) and the error taxonomy.
//! - [`authz`]: the pure capability model: which roles grant what, in which workspaces.
//! - [`crypto`]: argon2id, API keys, Ed25519/JWT, the KEK seal and the keyed digest.
//! - [`config`]: typed settings from YAML + `IAMD_*` environment variables.
//! - [`metrics`]: the Prometheus registry (`GET /metrics`): requests, latency, keys, gauges.
//! - [`events`]: the log's vocabulary, no I/O: event types, stream names, upcasting, the hash
//!   chain.
//! - [`domain`]: the aggregates (workspace, system): pure `decide` and `apply`, input rules,
//!   how usernames compare.
//! - [`authn_audit`]: the authentication audit: its vocabulary, the batching recorder, the query.
//! - [`projections`]: reducers returning typed writes (insert, update, delete) that keep the
//!   read tables, run inside the append transaction; the resolve-api-key cache.
//! - [`store`]: everything that touches the log's tables: the schema migrations, the append,
//!   the gapless tail, the rebuild of the read tables, the workspace snapshots.
//! - [`actors`]: one `WorkspaceActor` per workspace and the `SystemActor`, behind a registry.
//! - [`audit`]: checks of the log itself (verify, replay, log) and of the snapshots against it.
//! - [`service`]: one authorisation of the adapter's `Caller` (gateway, user by API key or
//!   JWT, anonymous; [`service::access`]) and one dispatch from `IamRequest` to `IamResponse`
//!   for every adapter. Adapters only authenticate.
//! - [`adapters`]: transports: HTTP and Kafka, with the Kafka request/response client
//!   ([`adapters::kafka::client`]: `iamd call --kafka`, tests, bench), and TrustGraph's
//!   workspace registration.
//! - [`startup`]: builds and runs the server (`Application`: what `iamd serve` runs and what
//!   the HTTP tests run in process).
//! - [`tools`]: `iamd bench` and the synthetic-log generator.

pub mod actors;
pub mod adapters;
pub mod audit;
pub mod authn_audit;
pub mod authz;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod events;
pub mod mail;
pub mod metrics;
pub mod projections;
pub mod protocol;
pub mod service;
pub mod startup;
pub mod store;
pub mod tools;
