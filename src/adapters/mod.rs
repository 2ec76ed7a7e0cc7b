//! Transports into the one [`crate::service::Service`] dispatch. Each adapter maps protocol
//! errors to its own wire once (HTTP status, Kafka reply) and never returns a cause.

pub mod http;
pub mod kafka;
pub mod ma1sd;
pub mod trustgraph;
