//! Typed settings. Sources, later wins: built-in defaults, the YAML file (`--config FILE`, else
//! `./iamd.yaml` when present), then environment variables: each key path maps to `IAMD_` +
//! the path upper-cased with `.` → `_` (`http.listen` → `IAMD_HTTP_LISTEN`). Unknown keys, in
//! the file or the environment, are an error naming the key. Secrets may come from `*_file`
//! keys and are wrapped in [`Secret`], which never prints.

mod accounts;
mod secret;
mod sections;

pub use accounts::*;
pub use secret::Secret;
pub use sections::*;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};
use std::path::Path;
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
    pub accounts: AccountsSettings,
    pub smtp: SmtpSettings,
    pub mail: MailSettings,
    pub cleanup: CleanupSettings,
    pub compat: CompatSettings,
    pub ma1sd: Ma1sdSettings,
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

impl Default for Settings {
    fn default() -> Self {
        Settings {
            log_level: "info".into(),
            log_format: "text".into(),
            database: DatabaseSettings::default(),
            http: HttpSettings::default(),
            jwt: JwtSettings::default(),
            accounts: AccountsSettings::default(),
            smtp: SmtpSettings::default(),
            mail: MailSettings::default(),
            cleanup: CleanupSettings::default(),
            compat: CompatSettings::default(),
            ma1sd: Ma1sdSettings::default(),
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

    /// Netsoc's HS256 key, as Netsoc read its `jwt.key` (base64) or `jwt.key_file` (the file's
    /// bytes, as they are); at least 32 bytes. `None` when neither is set.
    pub fn legacy_jwt_key(&self) -> anyhow::Result<Option<Vec<u8>>> {
        use base64::Engine;
        let key = match (&self.compat.legacy_jwt_key_file, self.compat.legacy_jwt_key.is_set()) {
            (Some(path), _) => std::fs::read(path)
                .with_context(|| format!("reading compat.legacy_jwt_key_file {}", path.display()))?,
            (None, true) => base64::engine::general_purpose::STANDARD
                .decode(self.compat.legacy_jwt_key.expose().trim())
                .context("compat.legacy_jwt_key is not base64 (Netsoc's jwt.key is)")?,
            (None, false) => return Ok(None),
        };
        if key.len() < 32 {
            bail!(
                "compat.legacy_jwt_key is shorter than 32 bytes (Netsoc's iamd refuses such a jwt.key too)"
            );
        }
        Ok(Some(key))
    }

    fn read_secret_files(&mut self) -> anyhow::Result<()> {
        for (file, target) in [
            (&self.database.url_file, &mut self.database.url),
            (&self.http.gateway_secret_file, &mut self.http.gateway_secret),
            (&self.bootstrap.token_file, &mut self.bootstrap.token),
            (&self.kafka.properties_file, &mut self.kafka.properties),
            (&self.signing.kek_file, &mut self.signing.kek),
            (&self.smtp.password_file, &mut self.smtp.password),
            (&self.compat.root_password_file, &mut self.compat.root_password),
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
        if self.jwt.email_validity < Duration::from_secs(60) {
            bail!("jwt.email_validity must be at least 1m");
        }
        if self.accounts.renewal_validity.is_some_and(|v| v < Duration::from_secs(60)) {
            bail!("accounts.renewal_validity must be at least 1m (unset it to use jwt.ttl)");
        }
        if !self.accounts.email_pattern.is_empty() {
            regex::Regex::new(&self.accounts.email_pattern)
                .map_err(|e| anyhow::anyhow!("accounts.email_pattern is not a regular expression: {e}"))?;
        }
        if self.accounts.self_registration {
            crate::domain::rules::workspace_id(&self.accounts.registration_workspace).map_err(|e| {
                anyhow::anyhow!("accounts.registration_workspace is not a workspace id: {}", e.message)
            })?;
        }
        if !self.cleanup.interval.is_zero() && self.cleanup.interval < Duration::from_secs(1) {
            bail!("cleanup.interval must be at least 1s (0s turns the job off)");
        }
        if self.cleanup.max_age < Duration::from_secs(1) {
            bail!("cleanup.max_age must be at least 1s");
        }
        if !self.smtp.host.is_empty() {
            if self.smtp.connect_timeout.is_zero() {
                bail!("smtp.connect_timeout must be more than 0s");
            }
            for (key, value) in [("mail.from", &self.mail.from), ("mail.reply_to", &self.mail.reply_to)] {
                if !value.is_empty() {
                    value
                        .parse::<lettre::message::Mailbox>()
                        .map_err(|e| anyhow::anyhow!("{key} is not a mail address ({e})"))?;
                }
            }
        }
        self.legacy_jwt_key()?;
        crate::domain::rules::workspace_id(&self.compat.workspace)
            .map_err(|e| anyhow::anyhow!("compat.workspace is not a workspace id: {}", e.message))?;
        if !self.ma1sd.http_address.is_empty() {
            if self.ma1sd.domain.is_empty() {
                bail!("ma1sd.domain must be set with ma1sd.http_address (the Matrix server name)");
            }
            if !self.ma1sd.base_url.starts_with('/') || self.ma1sd.base_url.ends_with('/') {
                bail!("ma1sd.base_url must start with / and not end with one");
            }
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
