//! `IamRequest`: what a caller asks, and how it is decoded, validated field by field and
//! digested for idempotency.

use super::*;

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct IamRequest {
    #[serde(deserialize_with = "nullable")]
    pub operation: String,
    #[serde(deserialize_with = "nullable")]
    pub workspace: String,
    #[serde(deserialize_with = "nullable")]
    pub actor: String,
    #[serde(deserialize_with = "nullable")]
    pub user_id: String,
    #[serde(deserialize_with = "nullable")]
    pub username: String,
    #[serde(deserialize_with = "nullable")]
    pub key_id: String,
    #[serde(deserialize_with = "nullable")]
    pub api_key: String,
    /// validate-token: the JWT to check (an iamd extension).
    #[serde(deserialize_with = "nullable")]
    pub token: String,
    /// issue-token: how long the token lives, in Go's syntax (`24h`, `1h30m`, `876000h`).
    #[serde(deserialize_with = "nullable")]
    pub duration: String,
    #[serde(deserialize_with = "nullable")]
    pub password: String,
    #[serde(deserialize_with = "nullable")]
    pub new_password: String,
    /// create-user, update-user, request-verification, request-password-reset: the mail
    /// carries a link (`mail.verify_url` / `mail.reset_url`) rather than the raw token (REST:
    /// set by `Accept: text/html`).
    #[serde(deserialize_with = "nullable_bool", skip_serializing_if = "is_false")]
    pub email_link: bool,
    /// Set by the `/v1` adapter, never read from the wire: the mail carries a `/v1` email
    /// token (ES256, `sub` the integer id) rather than an iamd one.
    #[serde(skip)]
    pub netsoc_mail: bool,
    pub user: Option<UserInput>,
    pub workspace_record: Option<WorkspaceInput>,
    pub key: Option<ApiKeyInput>,
    /// Idempotency key: a second request with the same id is answered without applying again.
    /// Also the correlation id recorded in the audit (TrustGraph's gateway puts its HTTP
    /// request's id here).
    #[serde(deserialize_with = "nullable")]
    pub request_id: String,
    /// The end client's address as the gateway saw it, recorded in the authentication audit.
    /// Believed only from a trusted transport (Kafka, the gateway secret); iamd's own HTTP
    /// callers are recorded with their TCP peer.
    #[serde(deserialize_with = "nullable")]
    pub client_ip: String,
    /// mint-token: the JSON object put in the token's `user_context` claim.
    #[serde(deserialize_with = "nullable")]
    pub user_context_json: String,
    /// authorise: the capability asked for (e.g. `graph:read`).
    #[serde(deserialize_with = "nullable")]
    pub capability: String,
    /// authorise: a JSON object naming the resource, e.g. `{"workspace":"acme"}`.
    #[serde(deserialize_with = "nullable")]
    pub resource_json: String,
    /// authorise: a JSON object of parameters; its `workspace` is the target when the
    /// resource names none.
    #[serde(deserialize_with = "nullable")]
    pub parameters_json: String,
    /// authorise-many: a JSON list of `{"capability", "resource", "parameters"}` objects.
    #[serde(deserialize_with = "nullable")]
    pub authorise_checks: String,
    /// list-users, list-workspaces, list-api-keys: at most this many (1–500); 0 or absent
    /// lists everything.
    #[serde(deserialize_with = "nullable_number")]
    pub limit: u32,
    /// The `next_cursor` of the previous page.
    #[serde(deserialize_with = "nullable")]
    pub cursor: String,
}

impl IamRequest {
    /// The workspace a request concerns: `workspace`, else `workspace_record.id` (workspace
    /// operations); empty for operations of no workspace. Kafka keys and orders by it.
    pub fn target_workspace(&self) -> &str {
        match &self.workspace_record {
            Some(r) if self.workspace.is_empty() => &r.id,
            _ => &self.workspace,
        }
    }

    /// Every text field of the request, nested ones included, with its name: what input
    /// validation walks (no PostgreSQL text can hold a NUL character, so none may reach a
    /// query).
    pub fn text_fields(&self) -> Vec<(&'static str, &str)> {
        let mut fields = vec![
            ("operation", self.operation.as_str()),
            ("workspace", &self.workspace),
            ("actor", &self.actor),
            ("user_id", &self.user_id),
            ("username", &self.username),
            ("key_id", &self.key_id),
            ("api_key", &self.api_key),
            ("token", &self.token),
            ("duration", &self.duration),
            ("password", &self.password),
            ("new_password", &self.new_password),
            ("request_id", &self.request_id),
            ("client_ip", &self.client_ip),
            ("user_context_json", &self.user_context_json),
            ("capability", &self.capability),
            ("resource_json", &self.resource_json),
            ("parameters_json", &self.parameters_json),
            ("authorise_checks", &self.authorise_checks),
            ("cursor", &self.cursor),
        ];
        if let Some(u) = &self.user {
            fields.extend([
                ("user.username", u.username.as_str()),
                ("user.name", &u.name),
                ("user.email", &u.email),
                ("user.password", &u.password),
                ("user.workspace", &u.workspace),
            ]);
            fields.extend(u.roles.iter().flatten().map(|r| ("user.roles", r.as_str())));
        }
        if let Some(w) = &self.workspace_record {
            fields.extend([("workspace_record.id", w.id.as_str()), ("workspace_record.name", &w.name)]);
        }
        if let Some(k) = &self.key {
            fields.extend([
                ("key.user_id", k.user_id.as_str()),
                ("key.name", &k.name),
                ("key.expires", &k.expires),
            ]);
        }
        fields
    }

    /// What identifies this request for idempotency: the operation and every field (secrets
    /// included; the bytes are only ever keyed-hashed), as JSON with sorted keys and without
    /// nulls, so the same request always gives the same bytes. The request id itself and
    /// `client_ip` (where the relay saw the client, not what it asks) are left out.
    pub fn idempotency_input(&self) -> Vec<u8> {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let serde_json::Value::Object(map) = &mut value {
            map.remove("request_id");
            map.remove("client_ip");
        }
        serde_json::to_vec(&canonical(value)).unwrap_or_default()
    }

    /// Decodes a request body (see [`decode_json`]).
    pub fn from_json(bytes: &[u8]) -> Result<IamRequest, IamError> {
        decode_json(bytes)
    }
}

/// `value` with every object's keys in order and its nulls dropped.
fn canonical(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> =
                map.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, canonical(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// Decodes a JSON body. A failure says what is wrong and where, never the offending value
/// (it may be a password).
pub fn decode_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, IamError> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        let what = match e.classify() {
            Category::Io | Category::Syntax => "is not valid JSON",
            Category::Eof => "ends before the JSON does",
            Category::Data => "has a field of the wrong type",
        };
        IamError::invalid(format!("request body {what} (line {}, column {})", e.line(), e.column()))
    })
}
