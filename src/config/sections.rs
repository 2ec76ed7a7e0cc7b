//! The settings' sections, one struct per YAML key, with their defaults and the checks that
//! belong to one section alone (origins, Kafka properties and presets).

use super::Secret;
use anyhow::bail;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Workspace registration with a TrustGraph deployment's config service (docs/trustgraph.md):
/// on with both topics set (it uses `kafka.brokers` and `kafka.properties`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrustGraphSettings {
    /// The config service's request topic, `tg.request.config` in TrustGraph's Kafka naming.
    pub config_request_topic: String,
    /// Where it answers, `tg.response.config`.
    pub config_response_topic: String,
    /// How long one registration waits for the config service's answer before trying again.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for TrustGraphSettings {
    fn default() -> Self {
        TrustGraphSettings {
            config_request_topic: String::new(),
            config_response_topic: String::new(),
            timeout: Duration::from_secs(10),
        }
    }
}

impl TrustGraphSettings {
    /// Whether workspaces are registered with TrustGraph's config service.
    pub fn registers(&self) -> bool {
        !self.config_request_topic.is_empty() || !self.config_response_topic.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: Secret,
    pub url_file: Option<PathBuf>,
    pub pool_size: usize,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    pub listen: String,
    /// A bearer accepted on `POST /api/v1/iam` (the gateway's shared secret). Empty: only
    /// admin API keys are accepted.
    pub gateway_secret: Secret,
    pub gateway_secret_file: Option<PathBuf>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    pub cors: CorsSettings,
}

/// Cross-origin requests from browsers (`actix-cors`). Off while `allowed_origins` is empty.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsSettings {
    /// Origins (`scheme://host[:port]`) whose pages may call iamd, with credentials; `*`
    /// allows every origin, without credentials. Empty: no CORS headers at all. As a
    /// variable: comma-separated.
    pub allowed_origins: Vec<String>,
}

impl CorsSettings {
    pub fn enabled(&self) -> bool {
        !self.allowed_origins.is_empty()
    }

    /// Whether `*` is among the origins: every origin is allowed.
    pub fn any_origin(&self) -> bool {
        self.allowed_origins.iter().any(|o| o == "*")
    }
}

/// Checks a CORS origin as browsers send it: `*`, or `http(s)://host[:port]` with nothing
/// after (no path, no trailing `/`).
pub fn check_origin(origin: &str) -> anyhow::Result<()> {
    if origin == "*" {
        return Ok(());
    }
    let uri: actix_web::http::Uri =
        origin.parse().map_err(|_| anyhow::anyhow!("'{origin}' is not an origin (scheme://host[:port])"))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    // No user info; after the host, nothing or a numeric port.
    let authority_ok = uri.authority().is_some_and(|a| {
        let after_host = a.as_str().strip_prefix(a.host()).unwrap_or("@");
        !a.host().is_empty() && (after_host.is_empty() || a.port_u16().is_some())
    });
    let bare = uri.query().is_none() && matches!(uri.path(), "" | "/") && !origin.ends_with('/');
    if !(scheme_ok && authority_ok && bare) {
        bail!("'{origin}' is not an origin: http(s)://host[:port], with no path, query or trailing /");
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSettings {
    pub issuer: String,
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// How long an email token (verification, password reset) stays good.
    #[serde(with = "humantime_serde")]
    pub email_validity: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigningSettings {
    /// How long a rotated-out key keeps validating tokens (at least 1h).
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
    /// The key-encryption key: 32 random bytes, base64. Seals the signing keys' private
    /// halves and the digest key at rest. Unset: they are stored unsealed (warned at start).
    pub kek: Secret,
    pub kek_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordSettings {
    pub min_length: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BootstrapSettings {
    /// `iamd serve` bootstraps at start when nothing exists yet and prints the first admin
    /// API key once on standard output (never into the log).
    pub on_start: bool,
    /// Operator-chosen first admin API key: start-up bootstraps with it, so no secret ever
    /// travels in a response.
    pub token: Secret,
    pub token_file: Option<PathBuf>,
}

/// The Kafka request/response adapter (see `docs/kafka.md`). Off while `brokers` is empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap brokers, `host:port[,host:port…]`. Empty: no Kafka adapter.
    pub brokers: String,
    /// Names for a deployment: `trustgraph` serves TrustGraph's topics (`tg.request.iam`,
    /// replies on `tg.response.iam`) where the topics are left at iamd's defaults. Empty:
    /// iamd's own names.
    pub preset: String,
    pub request_topic: String,
    pub response_topic: String,
    /// Consumer group shared by every iamd process serving the same requests.
    pub group: String,
    /// Static group membership (`group.instance.id`): a restart within the session timeout
    /// keeps this process's partitions without a rebalance. Empty: dynamic membership.
    pub instance_id: String,
    /// Requests being processed at once (across workspaces; one workspace stays in order).
    pub max_in_flight: usize,
    /// librdkafka partitioner for replies and for `iamd::client` requests. `murmur2_random`
    /// agrees with Java producers; librdkafka's own default is `consistent_random`.
    pub partitioner: String,
    /// Largest accepted request value; larger ones are answered `invalid-argument`.
    pub max_message_bytes: usize,
    /// How long SIGTERM waits for in-flight requests before exiting anyway.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Extra librdkafka properties, `key=value` pairs separated by commas or newlines (e.g.
    /// `security.protocol=sasl_ssl,sasl.mechanism=PLAIN,sasl.username=iamd,sasl.password=…`).
    /// A secret: it may hold credentials.
    pub properties: Secret,
    pub properties_file: Option<PathBuf>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: String::new(),
            preset: String::new(),
            request_topic: "iam.request".into(),
            response_topic: "iam.response".into(),
            group: "iamd".into(),
            instance_id: String::new(),
            max_in_flight: 256,
            partitioner: "murmur2_random".into(),
            max_message_bytes: 64 * 1024,
            drain_timeout: Duration::from_secs(10),
            properties: Secret::default(),
            properties_file: None,
        }
    }
}

/// TrustGraph's Kafka topics for its IAM service (`request:tg:iam`, `response:tg:iam` as its
/// Kafka backend names them).
pub const TRUSTGRAPH_REQUEST_TOPIC: &str = "tg.request.iam";
pub const TRUSTGRAPH_RESPONSE_TOPIC: &str = "tg.response.iam";

impl KafkaSettings {
    pub fn enabled(&self) -> bool {
        !self.brokers.trim().is_empty()
    }

    /// Applies `preset` to the topics still at iamd's defaults.
    pub(super) fn apply_preset(&mut self) -> anyhow::Result<()> {
        match self.preset.as_str() {
            "" => {}
            "trustgraph" => {
                let defaults = KafkaSettings::default();
                if self.request_topic == defaults.request_topic {
                    self.request_topic = TRUSTGRAPH_REQUEST_TOPIC.into();
                }
                if self.response_topic == defaults.response_topic {
                    self.response_topic = TRUSTGRAPH_RESPONSE_TOPIC.into();
                }
            }
            other => bail!("kafka.preset: unknown preset '{other}' (known: trustgraph)"),
        }
        Ok(())
    }

    /// The `properties` pairs, in order.
    pub fn extra_properties(&self) -> anyhow::Result<Vec<(String, String)>> {
        parse_properties(self.properties.expose())
    }
}

/// Parses `key=value` pairs separated by commas or newlines; blank entries are skipped. A
/// comma-separated piece without `=` continues the previous value, so list values work:
/// `debug=cgrp,fetch` is one property.
pub fn parse_properties(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        for piece in line.split(',') {
            match piece.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => out.push((k.trim().to_owned(), v.trim().to_owned())),
                _ if piece.trim().is_empty() => {}
                _ => match out.last_mut() {
                    Some((_, v)) => {
                        v.push(',');
                        v.push_str(piece.trim());
                    }
                    None => bail!("kafka.properties: '{}' is not key=value", piece.trim()),
                },
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActorSettings {
    /// A workspace actor with no command for this long stops (its state reloads on demand).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: Secret::new("postgres://postgres@127.0.0.1:5432/iamd"),
            url_file: None,
            pool_size: 16,
            migrate_on_start: true,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: "127.0.0.1:8080".into(),
            gateway_secret: Secret::default(),
            gateway_secret_file: None,
            max_body_bytes: 64 * 1024,
            cors: CorsSettings::default(),
        }
    }
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            issuer: "iamd".into(),
            ttl: Duration::from_secs(3600),
            email_validity: Duration::from_secs(24 * 3600),
        }
    }
}

impl Default for SigningSettings {
    fn default() -> Self {
        SigningSettings {
            grace_period: Duration::from_secs(24 * 3600),
            kek: Secret::default(),
            kek_file: None,
        }
    }
}

impl Default for PasswordSettings {
    fn default() -> Self {
        PasswordSettings { min_length: 12 }
    }
}

impl Default for Argon2Settings {
    /// OWASP's argon2id recommendation: m=19 MiB, t=2, p=1.
    fn default() -> Self {
        Argon2Settings { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 }
    }
}

impl Default for BootstrapSettings {
    fn default() -> Self {
        BootstrapSettings { on_start: true, token: Secret::default(), token_file: None }
    }
}

impl Default for ActorSettings {
    fn default() -> Self {
        ActorSettings { idle_timeout: Duration::from_secs(300) }
    }
}

/// The in-process resolve-api-key cache (`docs/performance.md`, "The API key cache").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Most resolved keys kept; 0 turns the cache off (every resolve reads the tables).
    pub api_keys: usize,
    /// The longest an entry is used, whatever the invalidations say.
    #[serde(with = "humantime_serde")]
    pub api_keys_ttl: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings { api_keys: 100_000, api_keys_ttl: Duration::from_secs(60) }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    pub authentications: AuthenticationAuditSettings,
}

/// The authentication audit's writer (docs/authentication-audit.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthenticationAuditSettings {
    /// Records waiting to be written; when full, a record is dropped and counted (at most
    /// [`AuthenticationAuditSettings::MAX_QUEUE`]).
    pub queue: usize,
    /// Most records per INSERT.
    pub batch: usize,
    /// How long the writer lets a batch fill after its first record.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Successful resolve-api-key attempts of one key from one client and source that fall in
    /// one batch become one record with a `count` (failures and logins are never coalesced).
    pub coalesce_resolves: bool,
}

impl AuthenticationAuditSettings {
    /// The largest queue accepted.
    pub const MAX_QUEUE: usize = 1 << 24;
}

impl Default for AuthenticationAuditSettings {
    fn default() -> Self {
        AuthenticationAuditSettings {
            queue: 65_536,
            batch: 2_000,
            flush_interval: Duration::from_millis(100),
            coalesce_resolves: true,
        }
    }
}
