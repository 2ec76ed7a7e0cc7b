//! librdkafka's callbacks, made quiet and useful: a broker that cannot be reached is one
//! line when it goes away and one when it is back, not a stack of retries; everything else
//! librdkafka says goes to `debug` (or `warn` when serious, at most once a minute per
//! message); a partition revocation drops its offset bookkeeping at once.

use super::offsets::OffsetTracker;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REPEAT_AFTER: Duration = Duration::from_secs(60);

/// Broker reachability and warning rate limits, shared by the consumer and the producer.
#[derive(Default)]
pub struct Health {
    brokers: String,
    down: AtomicBool,
    said: Mutex<HashMap<String, Instant>>,
}

impl Health {
    pub fn new(brokers: &str) -> Arc<Health> {
        Arc::new(Health { brokers: brokers.to_owned(), ..Default::default() })
    }

    /// The brokers are unreachable: said once until they are back.
    pub fn unreachable(&self, why: &str) {
        if !self.down.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                brokers = %self.brokers,
                "Kafka brokers unreachable ({why}); start Kafka or fix kafka.brokers — iamd keeps serving HTTP and retries in the background"
            );
        }
    }

    /// Something arrived from a broker.
    pub fn reachable(&self) {
        if self.down.swap(false, Ordering::SeqCst) {
            tracing::info!(brokers = %self.brokers, "Kafka brokers reachable again");
        }
    }

    /// Logs a warning at most once per [`REPEAT_AFTER`] per distinct text.
    pub fn warn_once(&self, text: String) {
        let mut said = self.said.lock().unwrap_or_else(|p| p.into_inner());
        if said.get(&text).is_some_and(|at| at.elapsed() < REPEAT_AFTER) {
            return;
        }
        if said.len() > 256 {
            said.clear();
        }
        tracing::warn!("Kafka: {text}");
        said.insert(text, Instant::now());
    }
}

/// A failure to reach the brokers (as opposed to a problem with a request or a topic).
pub fn is_transport(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::OperationTimedOut
        )
    )
}

/// The client context of the adapter's consumer and producer and of `iamd::client`.
#[derive(Clone)]
pub struct QuietContext {
    pub health: Arc<Health>,
    /// Set on the adapter's consumer: revocations drop their partitions' bookkeeping.
    pub tracker: Option<Arc<Mutex<OffsetTracker>>>,
}

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
                self.health.warn_once(format!("librdkafka {fac}: {message}"))
            }
            _ => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if is_transport(&error) {
            self.health.unreachable(reason);
        } else {
            self.health.warn_once(format!("{error}: {reason}"));
        }
    }
}

impl ConsumerContext for QuietContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let partitions: Vec<_> =
                    list.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
                tracing::info!(partitions = partitions.len(), "Kafka: partitions revoked");
                if let Some(tracker) = &self.tracker {
                    tracker.lock().unwrap_or_else(|p| p.into_inner()).revoked(partitions);
                }
            }
            Rebalance::Assign(list) => {
                self.health.reachable();
                tracing::info!(partitions = list.count(), "Kafka: partitions assigned");
            }
            Rebalance::Error(e) => self.health.warn_once(format!("rebalance failed: {e}")),
        }
    }
}
