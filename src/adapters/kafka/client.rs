//! A request/response client for iamd over Kafka: sends an `IamRequest` with a fresh `id`
//! header (keyed by the workspace it concerns) and awaits the reply carrying the same `id`. Used by
//! `iamd call --kafka`, the tests and the benchmark; [`KafkaClient::exchange`] serves any JSON
//! request/response service with the same conventions (TrustGraph's config service).
//!
//! Replies are read from the response topic by a consumer that is *assigned* (no group) every
//! partition from its end offset at connect time, so no reply sent after `connect` returns is
//! missed and no group rebalance delays the first call.

use super::{client_config, Health, QuietContext, ID_HEADER, REPLY_TO_HEADER};
use crate::protocol::{IamRequest, IamResponse};
use anyhow::Context as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub brokers: String,
    pub request_topic: String,
    pub response_topic: String,
    /// Ask iamd to answer on `response_topic` explicitly (the `reply-to` header).
    pub send_reply_to: bool,
    pub partitioner: String,
    pub properties: Vec<(String, String)>,
}

impl ClientOptions {
    pub fn new(brokers: &str) -> Self {
        ClientOptions {
            brokers: brokers.to_owned(),
            request_topic: "iam.request".into(),
            response_topic: "iam.response".into(),
            send_reply_to: false,
            partitioner: "murmur2_random".into(),
            properties: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("sending the request failed: {0}")]
    Send(String),
}

/// Callers waiting for a reply, by correlation id; each gets the reply's raw value.
type Pending = Arc<Mutex<HashMap<Vec<u8>, oneshot::Sender<Vec<u8>>>>>;

pub struct KafkaClient {
    producer: FutureProducer<QuietContext>,
    options: ClientOptions,
    pending: Pending,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for KafkaClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl KafkaClient {
    /// Connects and starts reading replies. Fails when the brokers or the response topic
    /// cannot be reached within `timeout`.
    pub async fn connect(options: ClientOptions, timeout: Duration) -> anyhow::Result<KafkaClient> {
        let health = Health::new(&options.brokers);
        let context = QuietContext { health, tracker: None };
        let mut producer_config = client_config(&options.brokers, &[], &options.properties);
        producer_config.set("partitioner", &options.partitioner).set("linger.ms", "1");
        let producer: FutureProducer<QuietContext> =
            producer_config.create_with_context(context.clone()).context("kafka producer settings")?;
        let mut consumer_config = client_config(&options.brokers, &[], &options.properties);
        consumer_config
            .set("group.id", format!("iamd-client-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", super::FETCH_WAIT_MS);
        let consumer: StreamConsumer<QuietContext> =
            consumer_config.create_with_context(context).context("kafka consumer settings")?;
        let consumer = Arc::new(consumer);
        let topic = options.response_topic.clone();
        let brokers = options.brokers.clone();
        let assigner = consumer.clone();
        tokio::task::spawn_blocking(move || assign_at_end(assigner.as_ref(), &topic, timeout))
            .await?
            .with_context(|| format!("reaching the response topic on {brokers}"))?;
        let pending: Pending = Arc::default();
        let reader = tokio::spawn(read_replies(consumer, pending.clone()));
        Ok(KafkaClient { producer, options, pending, reader })
    }

    /// Sends `request` and waits for its reply.
    pub async fn call(&self, request: &IamRequest, timeout: Duration) -> Result<IamResponse, CallError> {
        self.call_with_id(&uuid::Uuid::new_v4().to_string(), request, timeout).await
    }

    /// Sends `request` under a chosen correlation id (a redelivery reuses one).
    pub async fn call_with_id(
        &self,
        id: &str,
        request: &IamRequest,
        timeout: Duration,
    ) -> Result<IamResponse, CallError> {
        let payload = serde_json::to_vec(request).map_err(|e| CallError::Send(e.to_string()))?;
        self.call_raw(Some(id.as_bytes()), request.target_workspace().as_bytes(), &payload, timeout).await
    }

    /// Sends any bytes (tests send malformed ones) and waits for the reply to `id`.
    pub async fn call_raw(
        &self,
        id: Option<&[u8]>,
        key: &[u8],
        payload: &[u8],
        timeout: Duration,
    ) -> Result<IamResponse, CallError> {
        let reply = self.exchange(id, key, payload, timeout).await?;
        Ok(serde_json::from_slice(&reply)
            .unwrap_or_else(|_| IamResponse::error(crate::protocol::IamError::internal())))
    }

    /// Sends `payload` under `id` and waits for the value of the reply carrying that `id`;
    /// `timeout` bounds both (a broker that is down fails the call in time, not after
    /// librdkafka's delivery timeout).
    pub async fn exchange(
        &self,
        id: Option<&[u8]>,
        key: &[u8],
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let rx = match id {
            Some(id) => {
                let (tx, rx) = oneshot::channel();
                self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_vec(), tx);
                Some(rx)
            }
            None => None,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let sent = tokio::time::timeout_at(deadline, self.send(id, key, payload)).await;
        let forget = || {
            if let Some(id) = id {
                self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
            }
        };
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                forget();
                return Err(e);
            }
            Err(_) => {
                forget();
                return Err(CallError::Timeout(timeout));
            }
        }
        let Some(rx) = rx else { return Err(CallError::Timeout(Duration::ZERO)) };
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            _ => {
                forget();
                Err(CallError::Timeout(timeout))
            }
        }
    }

    /// Produces one request message without waiting for a reply.
    pub async fn send(&self, id: Option<&[u8]>, key: &[u8], payload: &[u8]) -> Result<(), CallError> {
        let mut headers = OwnedHeaders::new();
        if let Some(id) = id {
            headers = headers.insert(Header { key: ID_HEADER, value: Some(id) });
        }
        if self.options.send_reply_to {
            headers =
                headers.insert(Header { key: REPLY_TO_HEADER, value: Some(&self.options.response_topic) });
        }
        let record = FutureRecord::to(&self.options.request_topic).payload(payload).key(key).headers(headers);
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map(|_| ())
            .map_err(|(e, _)| CallError::Send(e.to_string()))
    }
}

/// Assigns every partition of `topic` at its current end.
fn assign_at_end<C: rdkafka::consumer::ConsumerContext>(
    consumer: &impl Consumer<C>,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        anyhow::bail!("topic {topic} does not exist");
    }
    let mut list = TopicPartitionList::new();
    for p in partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, timeout)?;
        list.add_partition_offset(topic, p, Offset::Offset(high))?;
    }
    consumer.assign(&list)?;
    Ok(())
}

/// The value of a message's header `name`, when it has one (a reply's `id`, say).
pub fn header_value<M: Message>(message: &M, name: &str) -> Option<Vec<u8>> {
    message.headers().and_then(|h| h.iter().find(|h| h.key == name).and_then(|h| h.value.map(<[u8]>::to_vec)))
}

async fn read_replies(consumer: Arc<StreamConsumer<QuietContext>>, pending: Pending) {
    loop {
        let Ok(message) = consumer.recv().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Some(id) = header_value(&message, ID_HEADER) else { continue };
        let waiting = pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        if let Some(tx) = waiting {
            let _ = tx.send(message.payload().unwrap_or_default().to_vec());
        }
    }
}

/// Latency and throughput of repeated calls (`iamd call --repeat`).
#[derive(Debug, serde::Serialize)]
pub struct Figures {
    pub requests: usize,
    pub in_flight: usize,
    pub errors: usize,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Sends `request` `count` times (each with its own id) keeping `in_flight` outstanding.
/// A reply that is a protocol error counts as an error, as does a timeout.
pub async fn measure(
    client: &KafkaClient,
    request: &IamRequest,
    count: usize,
    in_flight: usize,
    timeout: Duration,
) -> Figures {
    use futures_util::StreamExt;
    let started = std::time::Instant::now();
    let results: Vec<(Duration, bool)> = futures_util::stream::iter(0..count)
        .map(|_| async {
            let t = std::time::Instant::now();
            let ok = matches!(client.call(request, timeout).await, Ok(r) if r.error.is_none());
            (t.elapsed(), ok)
        })
        .buffer_unordered(in_flight.max(1))
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let mut ms: Vec<f64> = results.iter().map(|(d, _)| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        ms.get(((ms.len() as f64 * q) as usize).min(ms.len().saturating_sub(1))).copied().unwrap_or(0.0)
    };
    Figures {
        requests: count,
        in_flight,
        errors: results.iter().filter(|(_, ok)| !ok).count(),
        seconds,
        per_second: count as f64 / seconds.max(f64::EPSILON),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: ms.last().copied().unwrap_or(0.0),
    }
}
