//! The process's Prometheus metrics (`GET /metrics`, OpenMetrics text): requests by
//! operation, outcome and transport with their latency, API keys created and revoked (counted
//! when their append commits), and gauges read at scrape time — users, workspaces, active API
//! keys and running workspace actors.
//!
//! Every label value is a `&'static str` chosen here (an operation's name or `unknown`, an
//! error type, a known transport), never raw caller input: cardinality stays bounded and no
//! secret can reach the text.

use crate::protocol::{IamResponse, Operation};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::time::Duration;

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets, in seconds: from half a millisecond (a cached resolve-api-key) to 5 s.
const LATENCY_BUCKETS: [f64; 13] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The label of a request's operation: its protocol name, or `unknown` for anything else.
pub fn operation_label(raw: &str) -> &'static str {
    Operation::parse(raw).map(Operation::as_str).unwrap_or("unknown")
}

/// The label of a transport: `http`, `kafka`, `cli`, or `other`.
pub fn transport_label(source: &str) -> &'static str {
    match source {
        "http" => "http",
        "kafka" => "kafka",
        "cli" => "cli",
        _ => "other",
    }
}

/// The label of a reply: `ok`, or its error type (`auth-failed`, …).
pub fn outcome_label(response: &IamResponse) -> &'static str {
    response.error.as_ref().map_or("ok", |e| e.kind.as_str())
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    outcome: &'static str,
    transport: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    operation: &'static str,
    transport: &'static str,
}

/// API keys created and revoked, counted by the event store's append after its
/// transaction commits (a rolled-back append counts nothing). Shared by every clone of the
/// store; [`Metrics::new`] registers the same counters.
#[derive(Debug, Default)]
pub struct CommitCounters {
    api_keys_created: Counter,
    api_keys_revoked: Counter,
}

impl CommitCounters {
    /// Counts what one commit did to API keys.
    pub fn committed(&self, api_keys_created: u64, api_keys_revoked: u64) {
        self.api_keys_created.inc_by(api_keys_created);
        self.api_keys_revoked.inc_by(api_keys_revoked);
    }
}

/// The authentication audit's queue ([`crate::authn_audit`]): records written,
/// records dropped (queue full, or a batch the database still refused after retries) and
/// records waiting. Clones share the same values.
#[derive(Debug, Clone, Default)]
pub struct AuthenticationCounters {
    pub recorded: Counter,
    pub dropped: Counter,
    pub queued: Gauge,
}

/// The resolve-api-key cache's lookups ([`crate::projections::key_cache`]): answered from
/// the cache, or read from the tables (the cache offline or off included). Clones share values.
#[derive(Debug, Clone, Default)]
pub struct KeyCacheCounters {
    pub hits: Counter,
    pub misses: Counter,
}

/// Workspace registration with TrustGraph's config service
/// ([`crate::adapters::trustgraph::registration`]): registrations the config service accepted,
/// attempts that failed (timeout, refusal, broker down), and how far behind the log it is.
/// Clones share values.
#[derive(Debug, Clone, Default)]
pub struct RegistrationCounters {
    pub registered: Counter,
    pub failures: Counter,
    /// Seconds since the oldest event still to register was recorded; 0 when caught up.
    pub lag_seconds: Gauge,
}

/// What the gauges read at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Population {
    pub users: i64,
    pub workspaces: i64,
    /// API keys neither revoked nor expired.
    pub api_keys: i64,
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    users: Gauge,
    workspaces: Gauge,
    api_keys: Gauge,
    workspace_actors: Gauge,
    authentications: AuthenticationCounters,
    registrations: RegistrationCounters,
}

/// The registry and its metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Metrics {
    /// A registry with every metric, the commit counters being the store's own.
    pub fn new(commits: &CommitCounters, key_cache: &KeyCacheCounters) -> Metrics {
        let mut registry = Registry::with_prefix("iamd");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency =
            Family::<LatencyLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let (users, workspaces, api_keys, workspace_actors) =
            (Gauge::default(), Gauge::default(), Gauge::default(), Gauge::default());
        registry.register(
            "requests",
            "Requests answered, by operation, outcome and transport",
            requests.clone(),
        );
        registry.register_with_unit(
            "request_duration",
            "Time to answer a request, by operation and transport",
            Unit::Seconds,
            latency.clone(),
        );
        registry.register(
            "api_keys_created",
            "API keys created (api_key.created events committed by this process)",
            commits.api_keys_created.clone(),
        );
        registry.register(
            "api_keys_revoked",
            "API keys revoked (api_key.revoked events committed by this process)",
            commits.api_keys_revoked.clone(),
        );
        registry.register("users", "Users, disabled ones included", users.clone());
        registry.register("workspaces", "Workspaces, disabled ones included", workspaces.clone());
        registry.register("api_keys", "API keys neither revoked nor expired", api_keys.clone());
        registry.register(
            "workspace_actors",
            "Workspace actors running in this process",
            workspace_actors.clone(),
        );
        registry.register(
            "api_key_cache_hits",
            "API keys resolved from the in-process cache",
            key_cache.hits.clone(),
        );
        registry.register(
            "api_key_cache_misses",
            "API keys resolved from the read tables (not cached, or the cache offline or off)",
            key_cache.misses.clone(),
        );
        let authentications = AuthenticationCounters::default();
        registry.register(
            "authentications_recorded",
            "Authentication audit records written to the database",
            authentications.recorded.clone(),
        );
        registry.register(
            "authentications_dropped",
            "Authentication audit records dropped: queue full, or the database refused them after retries",
            authentications.dropped.clone(),
        );
        registry.register(
            "authentications_queued",
            "Authentication audit records waiting to be written",
            authentications.queued.clone(),
        );
        let registrations = RegistrationCounters::default();
        registry.register(
            "trustgraph_registrations",
            "Workspace registrations (put or delete) TrustGraph's config service accepted",
            registrations.registered.clone(),
        );
        registry.register(
            "trustgraph_registration_failures",
            "Workspace registration attempts that failed and will be retried",
            registrations.failures.clone(),
        );
        registry.register_with_unit(
            "trustgraph_registration_lag",
            "Age of the oldest workspace change not yet registered with TrustGraph (0: caught up)",
            Unit::Seconds,
            registrations.lag_seconds.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                latency,
                users,
                workspaces,
                api_keys,
                workspace_actors,
                authentications,
                registrations,
            }),
        }
    }

    /// The authentication audit's counters (shared with its recorder and writer).
    pub fn authentications(&self) -> &AuthenticationCounters {
        &self.inner.authentications
    }

    /// The TrustGraph registration's counters (shared with its subscriber).
    pub fn registrations(&self) -> &RegistrationCounters {
        &self.inner.registrations
    }

    /// Records one answered request.
    pub fn observe(
        &self,
        operation: &'static str,
        outcome: &'static str,
        transport: &'static str,
        took: Duration,
    ) {
        self.inner.requests.get_or_create(&RequestLabels { operation, outcome, transport }).inc();
        self.inner.latency.get_or_create(&LatencyLabels { operation, transport }).observe(took.as_secs_f64());
    }

    /// The OpenMetrics text, with the gauges set to what was just read.
    pub fn render(&self, population: Population, workspace_actors: usize) -> String {
        let i = &self.inner;
        i.users.set(population.users);
        i.workspaces.set(population.workspaces);
        i.api_keys.set(population.api_keys);
        i.workspace_actors.set(i64::try_from(workspace_actors).unwrap_or(i64::MAX));
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &i.registry);
        text
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::IamError;

    #[test]
    fn labels_are_bounded_names_never_caller_input() {
        assert_eq!(operation_label("login"), "login");
        assert_eq!(operation_label("revoke-api-key"), "revoke-api-key");
        assert_eq!(operation_label("tg_secret-looking-input"), "unknown");
        assert_eq!(operation_label(""), "unknown");
        assert_eq!(operation_label("LOGIN"), "unknown");
        assert_eq!(transport_label("kafka"), "kafka");
        assert_eq!(transport_label("smoke signals"), "other");
        assert_eq!(outcome_label(&IamResponse::default()), "ok");
        assert_eq!(outcome_label(&IamResponse::error(IamError::auth_failed())), "auth-failed");
    }

    #[test]
    fn render_shows_every_metric_with_its_labels() {
        let commits = CommitCounters::default();
        let metrics = Metrics::new(&commits, &KeyCacheCounters::default());
        metrics.observe("login", "auth-failed", "http", Duration::from_millis(3));
        metrics.observe("login", "auth-failed", "http", Duration::from_millis(30));
        commits.committed(0, 2);
        let text = metrics.render(Population { users: 4, workspaces: 2, api_keys: 1 }, 3);
        for line in [
            r#"iamd_requests_total{operation="login",outcome="auth-failed",transport="http"} 2"#,
            r#"iamd_request_duration_seconds_count{operation="login",transport="http"} 2"#,
            r#"iamd_request_duration_seconds_bucket{le="0.005",operation="login",transport="http"} 1"#,
            "iamd_api_keys_created_total 0",
            "iamd_api_keys_revoked_total 2",
            "iamd_users 4",
            "iamd_workspaces 2",
            "iamd_api_keys 1",
            "iamd_workspace_actors 3",
            "iamd_authentications_recorded_total 0",
            "iamd_authentications_dropped_total 0",
            "iamd_authentications_queued 0",
            "iamd_api_key_cache_hits_total 0",
            "iamd_api_key_cache_misses_total 0",
            "iamd_trustgraph_registrations_total 0",
            "iamd_trustgraph_registration_failures_total 0",
            "iamd_trustgraph_registration_lag_seconds 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
