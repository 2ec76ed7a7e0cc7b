//! `IamResponse`: the reply, with only its non-empty fields on the wire.

use super::*;

/// The reply. Only non-empty fields are serialised; decoders default missing ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct IamResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserRecord>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<WorkspaceRecord>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workspaces: Vec<WorkspaceRecord>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_key_plaintext: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyRecord>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<ApiKeyRecord>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub jwt: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub jwt_expires: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub signing_key_public: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resolved_user_id: String,
    /// resolve-api-key, authenticate-anonymous: the key owner's workspace (the seed's name).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resolved_workspace: String,
    /// Alias of `resolved_workspace`, always equal to it: the name TrustGraph's released
    /// gateway reads (it refuses a key whose reply lacks it).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resolved_default_workspace: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resolved_roles: Vec<String>,
    /// validate-token: whether the account holds the admin role now (read from the account,
    /// never from the token).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub resolved_is_admin: bool,
    /// validate-token, with `accounts.renewal_validity` set: the account's renewal has lapsed
    /// (`renewed + renewal_validity` is past; a token of another kind, issued or minted, is
    /// still good, and a service decides what a lapsed account may still do).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub resolved_renewal_lapsed: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub temporary_password: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub bootstrap_admin_user_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub bootstrap_admin_api_key: String,
    /// bootstrap-status: true while nothing has been bootstrapped yet.
    #[serde(skip_serializing_if = "is_false")]
    pub bootstrap_available: bool,
    /// authorise: the decision (absent means deny).
    #[serde(skip_serializing_if = "is_false")]
    pub decision_allow: bool,
    /// authorise: how long the caller may cache the decision.
    #[serde(skip_serializing_if = "is_zero")]
    pub decision_ttl_seconds: i64,
    /// authorise-many: a JSON list of `{"allow", "ttl"}`, in the order of the checks.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub decisions_json: String,
    /// A list that stopped at `limit`: pass this as `cursor` for the next page.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub next_cursor: String,
    /// Set when a reply to a redelivered request was served from the dedupe record.
    #[serde(skip_serializing_if = "is_false")]
    pub replayed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<IamError>,
}

impl IamResponse {
    pub fn error(err: IamError) -> Self {
        IamResponse { error: Some(err), ..Default::default() }
    }

    /// A resolved identity (resolve-api-key): the workspace under both its names.
    pub fn resolved(user_id: String, workspace: String, roles: Vec<String>) -> Self {
        IamResponse {
            resolved_user_id: user_id,
            resolved_default_workspace: workspace.clone(),
            resolved_workspace: workspace,
            resolved_roles: roles,
            ..Default::default()
        }
    }

    /// The reply with every one-time secret removed: what may be stored for a redelivery.
    pub fn without_secrets(&self) -> Self {
        IamResponse {
            api_key_plaintext: String::new(),
            temporary_password: String::new(),
            bootstrap_admin_api_key: String::new(),
            jwt: String::new(),
            jwt_expires: String::new(),
            ..self.clone()
        }
    }
}
