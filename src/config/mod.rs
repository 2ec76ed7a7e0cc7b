//! Typed settings. Sources, later wins: built-in defaults, the YAML file (`--config FILE`, else
//! `./iamd.yaml` when present), then environment variables: each key path maps to `IAMD_` +
//! the path upper-cased with `.` → `_` (`http.listen` → `IAMD_HTTP_LISTEN`). Unknown keys, in
//! the file or the environment, are an error naming the key. Secrets may come from `*_file`
//! keys and are wrapped in [`Secret`], which never prints.

mod secret;

pub use secret::Secret;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// tracing filter, e.g. `info` or `iamd=debug` (`IAMD_LOG_LEVEL`).
    pub log_level: String,
    /// `text` or `json` log lines.
    pub log_format: String,
    pub database: DatabaseSettings,
    pub http: HttpSettings,
    pub jwt: JwtSettings,
    pub signing: SigningSettings,
    pub password: PasswordSettings,
    pub argon2: Argon2Settings,
    pub bootstrap: BootstrapSettings,
    pub actors: ActorSettings,
    pub kafka: KafkaSettings,
    pub trustgraph: TrustGraphSettings,
    pub audit: AuditSettings,
    pub cache: CacheSettings,
}

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
    fn apply_preset(&mut self) -> anyhow::Result<()> {
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

impl Default for Settings {
    fn default() -> Self {
        Settings {
            log_level: "info".into(),
            log_format: "text".into(),
            database: DatabaseSettings::default(),
            http: HttpSettings::default(),
            jwt: JwtSettings::default(),
            signing: SigningSettings::default(),
            password: PasswordSettings::default(),
            argon2: Argon2Settings::default(),
            bootstrap: BootstrapSettings::default(),
            actors: ActorSettings::default(),
            kafka: KafkaSettings::default(),
            trustgraph: TrustGraphSettings::default(),
            audit: AuditSettings::default(),
            cache: CacheSettings::default(),
        }
    }
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
        JwtSettings { issuer: "iamd".into(), ttl: Duration::from_secs(3600) }
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

/// Environment variables that belong to tooling, not to a configuration key.
const NON_KEY_VARIABLES: [&str; 3] = ["IAMD_CONFIG", "IAMD_TEST_", "IAMD_PG_"];

impl Settings {
    /// Loads from `file` (or `./iamd.yaml` when present) and the process environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        let default_file = Path::new("iamd.yaml");
        let file = file.or_else(|| default_file.exists().then_some(default_file));
        let yaml = match file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?,
            None => String::new(),
        };
        Settings::from_sources(&yaml, std::env::vars())
    }

    /// Loads from YAML text and `(name, value)` environment pairs.
    pub fn from_sources(
        yaml: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Settings> {
        let defaults = serde_yaml::to_value(Settings::default())?;
        let mut tree = if yaml.trim().is_empty() {
            Value::Mapping(Mapping::new())
        } else {
            serde_yaml::from_str::<Value>(yaml).context("config file is not valid YAML")?
        };
        if tree.is_null() {
            tree = Value::Mapping(Mapping::new());
        }
        check_known_keys(&tree, &defaults, "")?;

        let mut leaves = Vec::new();
        collect_leaves(&defaults, "", &mut leaves);
        let mut env: Vec<(String, String)> =
            env.into_iter().filter(|(k, _)| k.starts_with("IAMD_")).collect();
        env.sort();
        for (name, raw) in env {
            if NON_KEY_VARIABLES.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            let Some((path, default)) = leaves.iter().find(|(path, _)| env_name(path) == name) else {
                bail!("unknown configuration variable {name}: no key maps to it");
            };
            let value = typed(&raw, default).with_context(|| format!("{name}: not a valid value"))?;
            set_path(&mut tree, path, value);
        }

        let mut settings: Settings = serde_yaml::from_value(tree).context("invalid configuration")?;
        settings.read_secret_files()?;
        settings.kafka.apply_preset()?;
        settings.validate()?;
        Ok(settings)
    }

    /// The key-encryption key, when one is configured.
    pub fn kek(&self) -> anyhow::Result<Option<crate::crypto::Kek>> {
        if !self.signing.kek.is_set() {
            return Ok(None);
        }
        crate::crypto::Kek::from_base64(self.signing.kek.expose()).context("signing.kek").map(Some)
    }

    fn read_secret_files(&mut self) -> anyhow::Result<()> {
        for (file, target) in [
            (&self.database.url_file, &mut self.database.url),
            (&self.http.gateway_secret_file, &mut self.http.gateway_secret),
            (&self.bootstrap.token_file, &mut self.bootstrap.token),
            (&self.kafka.properties_file, &mut self.kafka.properties),
            (&self.signing.kek_file, &mut self.signing.kek),
        ] {
            if let Some(path) = file {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading secret file {}", path.display()))?;
                *target = Secret::new(text.trim_end_matches(['\n', '\r']));
            }
        }
        Ok(())
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.database.url.expose().is_empty() {
            bail!("database.url is empty (set IAMD_DATABASE_URL)");
        }
        if self.database.pool_size == 0 {
            bail!("database.pool_size must be at least 1");
        }
        if self.signing.grace_period < Duration::from_secs(3600) {
            bail!("signing.grace_period must be at least 1h");
        }
        self.kek()?;
        if self.jwt.ttl < Duration::from_secs(60) {
            bail!("jwt.ttl must be at least 1m");
        }
        if self.password.min_length == 0 {
            bail!("password.min_length must be at least 1");
        }
        if self.http.max_body_bytes < 1024 {
            bail!("http.max_body_bytes must be at least 1024");
        }
        for origin in &self.http.cors.allowed_origins {
            check_origin(origin).context("http.cors.allowed_origins")?;
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            bail!("log_format must be text or json");
        }
        if self.kafka.enabled() {
            if self.kafka.max_in_flight == 0 {
                bail!("kafka.max_in_flight must be at least 1");
            }
            if self.kafka.request_topic.is_empty() || self.kafka.response_topic.is_empty() {
                bail!("kafka.request_topic and kafka.response_topic must be set");
            }
            if self.kafka.max_message_bytes < 1024 {
                bail!("kafka.max_message_bytes must be at least 1024");
            }
            self.kafka.extra_properties()?;
        }
        if self.trustgraph.registers() {
            if self.trustgraph.config_request_topic.is_empty()
                || self.trustgraph.config_response_topic.is_empty()
            {
                bail!("trustgraph.config_request_topic and trustgraph.config_response_topic go together");
            }
            if !self.kafka.enabled() {
                bail!("trustgraph.config_request_topic needs kafka.brokers (registration goes over Kafka)");
            }
            if self.trustgraph.timeout < Duration::from_millis(100) {
                bail!("trustgraph.timeout must be at least 100ms");
            }
        }
        let audit = &self.audit.authentications;
        if audit.queue == 0 || audit.queue > AuthenticationAuditSettings::MAX_QUEUE {
            bail!(
                "audit.authentications.queue must be between 1 and {}",
                AuthenticationAuditSettings::MAX_QUEUE
            );
        }
        if audit.batch == 0 || audit.batch > 50_000 {
            bail!("audit.authentications.batch must be between 1 and 50000");
        }
        if audit.flush_interval.is_zero() || audit.flush_interval > Duration::from_secs(60) {
            bail!("audit.authentications.flush_interval must be between 1ms and 60s");
        }
        if self.cache.api_keys > 10_000_000 {
            bail!("cache.api_keys must be at most 10000000 (0 turns the cache off)");
        }
        if self.cache.api_keys_ttl > Duration::from_secs(3600) {
            bail!("cache.api_keys_ttl must be at most 1h");
        }
        argon2::Params::new(self.argon2.memory_kib, self.argon2.iterations, self.argon2.parallelism, None)
            .map_err(|e| anyhow::anyhow!("argon2 parameters are invalid: {e}"))?;
        Ok(())
    }
}

/// `http.gateway_secret` → `IAMD_HTTP_GATEWAY_SECRET`.
pub fn env_name(path: &str) -> String {
    format!("IAMD_{}", path.replace('.', "_").to_uppercase())
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn check_known_keys(tree: &Value, defaults: &Value, prefix: &str) -> anyhow::Result<()> {
    let (Value::Mapping(given), Value::Mapping(known)) = (tree, defaults) else {
        return Ok(());
    };
    for (k, v) in given {
        let key = k.as_str().unwrap_or_default();
        let path = join(prefix, key);
        match known.get(k) {
            Some(d) => check_known_keys(v, d, &path)?,
            None => bail!("unknown configuration key '{path}'"),
        }
    }
    Ok(())
}

fn collect_leaves(value: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Mapping(m) => {
            for (k, v) in m {
                collect_leaves(v, &join(prefix, k.as_str().unwrap_or_default()), out);
            }
        }
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

/// Parses an environment string as the type of the key's default; a list is comma-separated
/// (blank entries skipped).
fn typed(raw: &str, default: &Value) -> anyhow::Result<Value> {
    Ok(match default {
        Value::Sequence(_) => Value::Sequence(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        Value::Bool(_) => Value::Bool(raw.trim().parse()?),
        Value::Number(_) => serde_yaml::from_str::<Value>(raw)
            .ok()
            .filter(Value::is_number)
            .ok_or_else(|| anyhow::anyhow!("expected a number"))?,
        _ => Value::String(raw.to_owned()),
    })
}

fn set_path(tree: &mut Value, path: &str, value: Value) {
    let mut cur = tree;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_mapping() {
            *cur = Value::Mapping(Mapping::new());
        }
        let map = cur.as_mapping_mut().expect("just made a mapping");
        let key = Value::String((*part).to_owned());
        if i + 1 == parts.len() {
            map.insert(key, value);
            return;
        }
        cur = map.entry(key).or_insert(Value::Mapping(Mapping::new()));
    }
}

#[cfg(test)]
mod tests;
