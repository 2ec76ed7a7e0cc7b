//! What a TrustGraph deployment needs of iamd beyond the IAM protocol: its gateway serves
//! only the workspaces listed in its config service (`__workspaces__`), which TrustGraph's
//! own IAM service keeps. iamd does the same from its event log ([`registration`]), and
//! `iamd trustgraph sync` re-registers every enabled workspace ([`sync`]).
//!
//! The config service speaks TrustGraph's request/response convention over Kafka: a JSON
//! `ConfigRequest` on `trustgraph.config_request_topic` with an `id` header, answered on
//! `trustgraph.config_response_topic` with the same `id`.

pub mod registration;

use crate::adapters::kafka::client::{ClientOptions, KafkaClient};
use crate::config::Settings;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The config service's workspace holding the registry of workspaces.
pub const WORKSPACES_REGISTRY: &str = "__workspaces__";
/// The value TrustGraph's IAM service registers a workspace with.
pub const REGISTERED_VALUE: &str = r#"{"enabled": true}"#;

/// What to tell the config service about one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// The workspace exists and is enabled: list it.
    Put(String),
    /// The workspace is disabled: unlist it (TrustGraph's gateway then answers 404 for it).
    Delete(String),
}

impl Registration {
    pub fn workspace(&self) -> &str {
        match self {
            Registration::Put(w) | Registration::Delete(w) => w,
        }
    }

    pub fn operation(&self) -> &'static str {
        match self {
            Registration::Put(_) => "put",
            Registration::Delete(_) => "delete",
        }
    }

    /// The `ConfigRequest` as TrustGraph's codec writes it: every field present.
    pub fn request(&self) -> ConfigRequest {
        let key = self.workspace().to_owned();
        let mut request = ConfigRequest {
            operation: self.operation().into(),
            workspace: WORKSPACES_REGISTRY.into(),
            ..ConfigRequest::default()
        };
        match self {
            Registration::Put(_) => request.values.push(ConfigValue {
                r#type: "workspace".into(),
                key,
                value: REGISTERED_VALUE.into(),
                workspace: String::new(),
            }),
            Registration::Delete(_) => request.keys.push(ConfigKey { r#type: "workspace".into(), key }),
        }
        request
    }
}

/// TrustGraph's `ConfigRequest` (trustgraph/schema/config.py), the fields iamd sends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigRequest {
    pub operation: String,
    pub workspace: String,
    pub keys: Vec<ConfigKey>,
    pub r#type: String,
    pub values: Vec<ConfigValue>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigKey {
    pub r#type: String,
    pub key: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigValue {
    pub r#type: String,
    pub key: String,
    pub value: String,
    pub workspace: String,
}

/// The part of TrustGraph's `ConfigResponse` iamd reads: whether it failed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ConfigResponse {
    pub error: Option<ConfigError>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ConfigError {
    pub r#type: String,
    pub message: String,
}

/// A connection to the config service.
pub struct ConfigService {
    client: KafkaClient,
    timeout: Duration,
}

impl ConfigService {
    /// Connects with `kafka.brokers` and `kafka.properties`; fails when the brokers or the
    /// response topic cannot be reached within the timeout.
    pub async fn connect(settings: &Settings) -> anyhow::Result<ConfigService> {
        let tg = &settings.trustgraph;
        // A request the broker did not take within the timeout is dropped, not delivered
        // late beside its retry.
        let mut properties = settings.kafka.extra_properties()?;
        properties.push(("message.timeout.ms".into(), tg.timeout.as_millis().to_string()));
        let options = ClientOptions {
            brokers: settings.kafka.brokers.clone(),
            request_topic: tg.config_request_topic.clone(),
            response_topic: tg.config_response_topic.clone(),
            send_reply_to: false,
            partitioner: settings.kafka.partitioner.clone(),
            properties,
        };
        let client = KafkaClient::connect(options, tg.timeout).await?;
        Ok(ConfigService { client, timeout: tg.timeout })
    }

    /// Sends one registration and waits for the config service to accept it.
    pub async fn send(&self, registration: &Registration) -> anyhow::Result<()> {
        let payload = serde_json::to_vec(&registration.request())?;
        let id = uuid::Uuid::new_v4().to_string();
        let reply =
            self.client.exchange(Some(id.as_bytes()), &[], &payload, self.timeout).await.map_err(|e| {
                anyhow::anyhow!("{} of workspace {}: {e}", registration.operation(), registration.workspace())
            })?;
        let response: ConfigResponse = serde_json::from_slice(&reply)
            .map_err(|_| anyhow::anyhow!("the config service's answer is not a ConfigResponse"))?;
        match response.error {
            Some(e) => anyhow::bail!(
                "the config service refused the {} of workspace {}: {}: {}",
                registration.operation(),
                registration.workspace(),
                e.r#type,
                e.message
            ),
            None => Ok(()),
        }
    }
}

/// `iamd trustgraph sync`: registers every enabled workspace of `workspaces`, in order;
/// returns how many. Stops at the first the config service does not accept.
pub async fn sync(settings: &Settings, workspaces: &[String]) -> anyhow::Result<usize> {
    let service = ConfigService::connect(settings).await?;
    for id in workspaces {
        service.send(&Registration::Put(id.clone())).await?;
    }
    Ok(workspaces.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_are_trustgraphs_put_and_delete() {
        let put = serde_json::to_value(Registration::Put("acme".into()).request()).unwrap();
        assert_eq!(
            put,
            json!({"operation": "put", "workspace": "__workspaces__", "keys": [], "type": "",
                   "values": [{"type": "workspace", "key": "acme", "value": "{\"enabled\": true}", "workspace": ""}]})
        );
        let delete = serde_json::to_value(Registration::Delete("acme".into()).request()).unwrap();
        assert_eq!(
            delete,
            json!({"operation": "delete", "workspace": "__workspaces__", "keys": [{"type": "workspace", "key": "acme"}],
                   "type": "", "values": []})
        );
    }

    #[test]
    fn a_response_is_read_for_its_error_only() {
        let ok: ConfigResponse = serde_json::from_str(r#"{"version":3,"values":[],"error":null}"#).unwrap();
        assert!(ok.error.is_none());
        let bad: ConfigResponse =
            serde_json::from_str(r#"{"error":{"type":"invalid","message":"no"},"config":{}}"#).unwrap();
        assert_eq!(bad.error.unwrap().r#type, "invalid");
    }
}
