//! Workspace registration driven by the event log: a subscriber reads the log gaplessly in
//! commit order ([`crate::store::tail`]) from its checkpoint, turns `workspace.created` and
//! `workspace.enabled` into a config-service put and `workspace.disabled` into a delete, sends
//! each and waits for the config service to accept it, retrying (with a growing pause) until
//! it does, and only then moves its checkpoint (`subscriber_checkpoints`) past the event.
//!
//! - A crash or a broker outage never loses a registration: the checkpoint stays before any
//!   event not yet accepted, and the next start (or the next attempt) sends it.
//! - A restart never repeats one needlessly: the checkpoint moves after each accepted event
//!   (and after each page of other events); only a crash between the config service's
//!   answer and the checkpoint's write sends that one again (a put and a delete are
//!   idempotent there).
//! - Several iamd processes: one holds a PostgreSQL advisory lock and registers; the others
//!   wait for the lock, so each change is sent by one process.
//!
//! Its progress is in the metrics: registrations accepted, failed attempts, and the lag (the
//! age of the oldest change not yet accepted).

use super::{ConfigService, Registration};
use crate::config::Settings;
use crate::metrics::RegistrationCounters;
use crate::store::tail::{self, Cursor, TailedEvent};
use deadpool_postgres::Client;
use std::time::Duration;
use tokio::sync::watch;

/// The subscriber's name in `subscriber_checkpoints`.
pub const SUBSCRIBER: &str = "trustgraph-registration";
/// The advisory lock held by the one process that registers.
const LOCK_KEY: i64 = 0x6961_6d64_7467_7267; // "iamdtgrg"
/// Events read per page.
const PAGE: i64 = 200;
/// How often the log is polled once caught up.
const POLL: Duration = Duration::from_millis(250);
/// The longest pause between two failed attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What `event` asks of TrustGraph's config service, if anything.
pub fn registration(event: &TailedEvent) -> Option<Registration> {
    let workspace = crate::events::workspace_of(&event.event.stream)?.to_owned();
    match event.event.event_type.as_str() {
        "workspace.created" | "workspace.enabled" => Some(Registration::Put(workspace)),
        "workspace.disabled" => Some(Registration::Delete(workspace)),
        _ => None,
    }
}

/// A running subscriber; [`RegistrationHandle::stop`] ends it.
pub struct RegistrationHandle {
    stop: watch::Sender<bool>,
    thread: std::thread::JoinHandle<()>,
}

impl RegistrationHandle {
    /// Stops at the next pause (an attempt under way is abandoned, and sent again next time).
    pub fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.thread.join();
    }
}

/// Starts the subscriber on its own thread and runtime.
pub fn spawn(settings: &Settings, counters: RegistrationCounters) -> anyhow::Result<RegistrationHandle> {
    let (stop, stopping) = watch::channel(false);
    let settings = settings.clone();
    let thread = std::thread::Builder::new().name("iamd-trustgraph".into()).spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for the TrustGraph registration");
        runtime.block_on(run(settings, counters, stopping));
    })?;
    Ok(RegistrationHandle { stop, thread })
}

/// Sleeps `pause`; true when asked to stop meanwhile.
async fn stopped_during(stopping: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    if *stopping.borrow() {
        return true;
    }
    tokio::select! {
        _ = stopping.changed() => true,
        _ = tokio::time::sleep(pause) => *stopping.borrow(),
    }
}

async fn run(settings: Settings, counters: RegistrationCounters, mut stopping: watch::Receiver<bool>) {
    let mut backoff = Backoff::default();
    loop {
        let result = session(&settings, &counters, &mut stopping, &mut backoff).await;
        if *stopping.borrow() {
            return;
        }
        if let Err(e) = result {
            counters.failures.inc();
            tracing::warn!(error = %format!("{e:#}"), "TrustGraph registration: retrying");
        }
        if stopped_during(&mut stopping, backoff.next()).await {
            return;
        }
    }
}

/// One connection's worth of work: take the lock, then register from the checkpoint until
/// stopped or until something fails (the caller pauses and starts a new session).
async fn session(
    settings: &Settings,
    counters: &RegistrationCounters,
    stopping: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> anyhow::Result<()> {
    // One connection of its own, held for the session: the advisory lock lives in it.
    let pool = crate::db::connect(settings.database.url.expose(), 1).await?;
    let db = pool.get().await?;
    while !db.query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY]).await?.get::<_, bool>(0) {
        // Another process registers.
        if stopped_during(stopping, Duration::from_secs(2)).await {
            return Ok(());
        }
    }
    let mut cursor = load_checkpoint(&db).await?;
    let service = ConfigService::connect(settings).await?;
    tracing::info!(subscriber = SUBSCRIBER, "TrustGraph registration running");
    loop {
        let page = tail::read_after(&db, cursor, PAGE).await?;
        if page.is_empty() {
            counters.lag_seconds.set(0);
            if stopped_during(stopping, POLL).await {
                return Ok(());
            }
            continue;
        }
        let mut saved = cursor;
        for event in &page {
            cursor = event.cursor;
            let Some(registration) = registration(event) else { continue };
            loop {
                let lag = (chrono::Utc::now() - event.event.recorded_at).num_seconds().max(0);
                counters.lag_seconds.set(lag);
                match service.send(&registration).await {
                    Ok(()) => break,
                    Err(e) => {
                        counters.failures.inc();
                        tracing::warn!(error = %format!("{e:#}"), "TrustGraph registration: retrying");
                        if stopped_during(stopping, backoff.next()).await {
                            return Ok(());
                        }
                    }
                }
            }
            backoff.reset();
            counters.registered.inc();
            tracing::info!(
                workspace = registration.workspace(),
                operation = registration.operation(),
                "registered with TrustGraph's config service"
            );
            save_checkpoint(&db, cursor).await?;
            saved = cursor;
        }
        // Past the page's other events too, unless the last one was just saved.
        if saved != cursor {
            save_checkpoint(&db, cursor).await?;
        }
    }
}

async fn load_checkpoint(db: &Client) -> Result<Cursor, tokio_postgres::Error> {
    let row = db
        .query_opt(
            "SELECT transaction_id::text, position FROM subscriber_checkpoints WHERE name = $1",
            &[&SUBSCRIBER],
        )
        .await?;
    Ok(row
        .map_or(Cursor::START, |r| Cursor { transaction_id: tail::parse_xid(r.get(0)), position: r.get(1) }))
}

async fn save_checkpoint(db: &Client, cursor: Cursor) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "INSERT INTO subscriber_checkpoints (name, transaction_id, position, updated_at) \
         VALUES ($1, $2::text::xid8, $3, now()) \
         ON CONFLICT (name) DO UPDATE SET transaction_id = EXCLUDED.transaction_id, \
             position = EXCLUDED.position, updated_at = EXCLUDED.updated_at",
        &[&SUBSCRIBER, &cursor.transaction_id.to_string(), &cursor.position],
    )
    .await?;
    Ok(())
}

/// Pauses between failed attempts: 200 ms, doubling up to [`MAX_BACKOFF`].
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let pause = Duration::from_millis(200).saturating_mul(1 << self.failures.min(6)).min(MAX_BACKOFF);
        self.failures = self.failures.saturating_add(1);
        pause
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::RecordedEvent;

    fn tailed(stream: &str, event_type: &str) -> TailedEvent {
        TailedEvent {
            cursor: Cursor::START,
            event: RecordedEvent {
                position: 1,
                stream: stream.into(),
                version: 1,
                event_type: event_type.into(),
                schema_version: 1,
                payload: serde_json::json!({}),
                metadata: serde_json::json!({}),
                recorded_at: chrono::Utc::now(),
                prev_hash: String::new(),
                hash: String::new(),
            },
        }
    }

    #[test]
    fn workspace_lifecycle_events_become_registrations() {
        let put = Some(Registration::Put("acme".into()));
        assert_eq!(registration(&tailed("workspace:acme", "workspace.created")), put);
        assert_eq!(registration(&tailed("workspace:acme", "workspace.enabled")), put);
        assert_eq!(
            registration(&tailed("workspace:acme", "workspace.disabled")),
            Some(Registration::Delete("acme".into()))
        );
        for (stream, event_type) in [
            ("workspace:acme", "workspace.renamed"),
            ("workspace:acme", "user.created"),
            ("system", "system.bootstrapped"),
        ] {
            assert_eq!(registration(&tailed(stream, event_type)), None, "{stream} {event_type}");
        }
    }

    #[test]
    fn backoff_grows_to_its_bound_and_resets() {
        let mut b = Backoff::default();
        assert_eq!(b.next(), Duration::from_millis(200));
        assert_eq!(b.next(), Duration::from_millis(400));
        for _ in 0..10 {
            b.next();
        }
        assert_eq!(b.next(), MAX_BACKOFF);
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(200));
    }
}
