//! The integration tests: one binary (one link, one process), one module per suite, the shared
//! harness in [`support`]. Each test makes its own PostgreSQL database (and, where it needs
//! one, its own broker), so tests run in parallel and leave nothing behind.

mod support;

mod accounts;
mod actors;
mod audit;
mod audit_log;
mod audit_replay;
mod authentications;
mod authn;
mod docs;
mod e2e;
mod feed;
mod import;
mod kafka;
mod key_cache;
mod ma1sd;
mod matrix;
mod netsoc;
mod ops;
mod protocol;
mod rebuild;
mod rest;
mod sealing;
mod snapshots;
mod store;
mod trustgraph;
mod upcast;
mod v1;
