//! The Kafka adapter: consumes `IamRequest` messages from `kafka.request_topic` in group
//! `kafka.group` and answers each on `kafka.response_topic` (or its `reply-to`), with the
//! same `id` header and key. See `docs/kafka.md` for the contract.
//!
//! - Order: requests of one workspace (the message key) take effect in partition order
//!   ([`order`]); different workspaces run concurrently, at most `kafka.max_in_flight` at once.
//! - Offsets: stored for commit only when a request's effect is committed in PostgreSQL and
//!   its reply delivered, and only as the contiguous prefix of finished messages ([`offsets`]).
//!   A crash or rebalance redelivers the rest.
//! - Exactly-once effect: the `id` header is the request id, so a redelivered request is
//!   answered from the record committed with its events and applies nothing again.
//! - Bad messages ([`message`]) are answered `invalid-argument` when they carry an `id`,
//!   logged (without their content) when not, and never stall their partition.
//!
//! It runs on its own thread and tokio runtime, beside the HTTP server.

pub mod client;
mod context;
mod message;
mod offsets;
mod order;

pub use context::{Health, QuietContext};
pub use message::{id_text, ID_HEADER, REPLY_TO_HEADER};

use crate::authn_audit::Origin;
use crate::config::KafkaSettings;
use crate::protocol::{IamError, IamResponse};
use crate::service::{Caller, Service};
use anyhow::Context as _;
use message::{Incoming, ReplyTo};
use offsets::{OffsetTracker, Partition};
use order::{KeyOrder, Turn};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// The consumers' default `fetch.wait.max.ms`: a request's worst wait at each hop on a broker
/// that holds fetches for their whole wait (docs/kafka.md has the figures behind 2 ms).
pub const FETCH_WAIT_MS: &str = "2";

/// A client's settings: the brokers, iamd's `defaults`, then the operator's `extra`
/// properties, which win over the defaults.
pub fn client_config(brokers: &str, defaults: &[(&str, &str)], extra: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers).set("log.connection.close", "false");
    for (k, v) in defaults {
        config.set(*k, *v);
    }
    for (k, v) in extra {
        config.set(k, v);
    }
    config
}

/// A running adapter; [`KafkaHandle::stop`] drains it.
pub struct KafkaHandle {
    stop: watch::Sender<bool>,
    thread: std::thread::JoinHandle<()>,
}

impl KafkaHandle {
    /// Stops consuming, waits for in-flight requests (up to `kafka.drain_timeout`), commits
    /// and returns.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.thread.join();
    }
}

/// Everything a request's task needs.
struct Shared {
    service: Service,
    consumer: Arc<StreamConsumer<QuietContext>>,
    producer: FutureProducer<QuietContext>,
    tracker: Arc<Mutex<OffsetTracker>>,
    health: Arc<Health>,
    response_topic: String,
    /// Set once the adapter stops consuming (by [`KafkaHandle::stop`] or a signal).
    stopping: AtomicBool,
}

/// Builds the clients (a bad setting fails here, at start) and runs the adapter on its own
/// thread until [`KafkaHandle::stop`].
pub fn spawn(settings: &KafkaSettings, service: Service) -> anyhow::Result<KafkaHandle> {
    let extra = settings.extra_properties()?;
    let health = Health::new(&settings.brokers);
    let tracker = Arc::new(Mutex::new(OffsetTracker::default()));
    // Incremental (cooperative) rebalancing: a joining or dying member moves only the
    // partitions that must move, instead of stopping the whole group. A short fetch wait:
    // iamd answers requests, so an idle partition is polled often rather than a request
    // waiting out librdkafka's 500 ms default on a broker that holds an empty fetch.
    let defaults = [
        ("partition.assignment.strategy", "cooperative-sticky"),
        ("auto.offset.reset", "earliest"),
        ("fetch.wait.max.ms", FETCH_WAIT_MS),
    ];
    let mut consumer_config = client_config(&settings.brokers, &defaults, &extra);
    // What the offset discipline depends on is not left to the properties.
    consumer_config
        .set("group.id", &settings.group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false");
    if !settings.instance_id.is_empty() {
        consumer_config.set("group.instance.id", &settings.instance_id);
    }
    let consumer: StreamConsumer<QuietContext> = consumer_config
        .create_with_context(QuietContext { health: health.clone(), tracker: Some(tracker.clone()) })
        .context("kafka: the consumer settings are invalid")?;
    consumer
        .subscribe(&[&settings.request_topic])
        .with_context(|| format!("kafka: cannot subscribe to {}", settings.request_topic))?;
    // Replies leave at once; under load they still batch, as the queue fills within 1 ms.
    let mut producer_config = client_config(&settings.brokers, &[("linger.ms", "1")], &extra);
    producer_config.set("partitioner", &settings.partitioner);
    let producer: FutureProducer<QuietContext> = producer_config
        .create_with_context(QuietContext { health: health.clone(), tracker: None })
        .context("kafka: the producer settings are invalid")?;

    let (stop, stopping) = watch::channel(false);
    let shared = Arc::new(Shared {
        service,
        consumer: Arc::new(consumer),
        producer,
        tracker,
        health,
        response_topic: settings.response_topic.clone(),
        stopping: AtomicBool::new(false),
    });
    let settings = settings.clone();
    let thread = std::thread::Builder::new().name("iamd-kafka".into()).spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("iamd-kafka-rt")
            .enable_all()
            .build()
            .expect("a tokio runtime for the Kafka adapter");
        runtime.block_on(run(shared, settings, stopping));
    })?;
    Ok(KafkaHandle { stop, thread })
}

async fn run(shared: Arc<Shared>, settings: KafkaSettings, mut stopping: watch::Receiver<bool>) {
    check_brokers(&shared, &settings).await;
    let permits = Arc::new(Semaphore::new(settings.max_in_flight));
    let mut order = KeyOrder::default();
    loop {
        let permit = tokio::select! {
            biased;
            _ = stopping.changed() => break,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let received = tokio::select! {
            biased;
            _ = stopping.changed() => break,
            m = shared.consumer.recv() => m,
        };
        let message = match received {
            Ok(m) => m,
            Err(e) if context::is_transport(&e) => {
                shared.health.unreachable(&e.to_string());
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(e) => {
                shared.health.warn_once(format!("consuming {}: {e}", settings.request_topic));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        shared.health.reachable();
        let partition: Partition = (message.topic().to_owned(), message.partition());
        let offset = message.offset();
        let headers = message.headers();
        let incoming = message::decode(
            headers.iter().flat_map(|h| h.iter()).map(|h| (h.key, h.value)),
            message.key(),
            message.payload(),
            settings.max_message_bytes,
        );
        drop(message);
        let epoch = shared.tracker.lock().unwrap_or_else(|p| p.into_inner()).received(&partition, offset);
        let is_command = incoming.request.as_ref().is_ok_and(|(_, op)| op.is_command());
        let turn = order.enter(incoming.order_key(), is_command);
        tokio::spawn(serve(shared.clone(), incoming, turn, partition, offset, epoch, permit));
    }
    shared.stopping.store(true, Ordering::SeqCst);
    drain(&shared, &permits, &settings).await;
}

/// Says once at start whether the brokers answer; the adapter runs either way.
async fn check_brokers(shared: &Arc<Shared>, settings: &KafkaSettings) {
    let consumer = shared.consumer.clone();
    let topic = settings.request_topic.clone();
    let checked = tokio::task::spawn_blocking(move || {
        consumer.fetch_metadata(Some(&topic), Duration::from_secs(5)).map(|m| {
            m.topics().first().map(|t| (t.partitions().len(), t.error().is_some())).unwrap_or((0, true))
        })
    })
    .await;
    match checked {
        Ok(Ok((partitions, missing))) if !missing && partitions > 0 => tracing::info!(
            brokers = %settings.brokers, topic = %settings.request_topic, group = %settings.group, partitions,
            "Kafka adapter consuming"
        ),
        Ok(Ok(_)) => shared.health.warn_once(format!(
            "the request topic {} does not exist yet; create it (iamd waits for it)",
            settings.request_topic
        )),
        Ok(Err(e)) => shared.health.unreachable(&e.to_string()),
        Err(_) => {}
    }
}

/// Waits for in-flight requests (bounded by `drain_timeout`), then commits what finished.
async fn drain(shared: &Arc<Shared>, permits: &Arc<Semaphore>, settings: &KafkaSettings) {
    let in_flight = settings.max_in_flight - permits.available_permits();
    tracing::info!(in_flight, "Kafka adapter draining");
    let all = u32::try_from(settings.max_in_flight).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(settings.drain_timeout, permits.acquire_many(all)).await;
    if drained.is_err() {
        tracing::warn!("Kafka adapter: drain timed out; unfinished requests will be redelivered");
    }
    let consumer = shared.consumer.clone();
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "final offset commit");
        }
        consumer.unsubscribe();
    })
    .await;
    let _ = shared.producer.flush(Duration::from_secs(5));
    tracing::info!("Kafka adapter stopped");
}

/// Serves one message: in its turn, through the service; then the reply; then its offset.
async fn serve(
    shared: Arc<Shared>,
    incoming: Incoming,
    mut turn: Turn,
    partition: Partition,
    offset: i64,
    epoch: u64,
    _permit: OwnedSemaphorePermit,
) {
    turn.ready().await;
    let response = match incoming.request {
        // The request topic's only writer is the API gateway, which authorised its caller.
        Ok((request, _)) => {
            match shared.service.handle_as(&Caller::Gateway, request, &Origin::of("kafka")).await {
                Ok(response) => response,
                // Never: the gateway is not refused. Were it, the reply would say so.
                Err(_) => IamResponse::error(IamError::not_permitted("refused")),
            }
        }
        Err(e) => IamResponse::error(e),
    };
    // The effect is committed: the next command of this workspace may start.
    drop(turn);
    match &incoming.reply {
        Some(reply) => {
            if !deliver(&shared, reply, &incoming.key, &response).await {
                return; // Stopping: not committed, so it is redelivered and answered then.
            }
        }
        None => tracing::warn!(
            topic = %partition.0, partition = partition.1, offset,
            "skipped a request without an `id` header (nobody to answer)"
        ),
    }
    let next = shared.tracker.lock().unwrap_or_else(|p| p.into_inner()).finished(&partition, offset, epoch);
    if let Some(next) = next {
        let mut list = TopicPartitionList::new();
        if list.add_partition_offset(&partition.0, partition.1, Offset::Offset(next)).is_ok() {
            // Fails only for a partition no longer assigned: its new owner redelivers.
            let _ = shared.consumer.store_offsets(&list);
        }
    }
}

/// Produces the reply until it is delivered; false when stopping first.
async fn deliver(shared: &Shared, reply: &ReplyTo, key: &[u8], response: &IamResponse) -> bool {
    let payload = serde_json::to_vec(response).unwrap_or_default();
    let topic = reply.topic.as_deref().unwrap_or(&shared.response_topic);
    let started = Instant::now();
    loop {
        let mut headers = OwnedHeaders::new().insert(Header { key: ID_HEADER, value: Some(&reply.id) });
        if reply.spring {
            headers = headers.insert(Header { key: "kafka_correlationId", value: Some(&reply.id) });
        }
        let mut record = FutureRecord::to(topic).payload(&payload).key(key).headers(headers);
        if let Some(p) = reply.partition {
            record = record.partition(p);
        }
        match shared.producer.send(record, Duration::from_secs(5)).await {
            Ok(_) => return true,
            Err((e, _)) => {
                shared.health.warn_once(format!("delivering a reply to {topic}: {e} (retrying)"));
                if shared.stopping.load(Ordering::SeqCst) && started.elapsed() > Duration::from_secs(1) {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
