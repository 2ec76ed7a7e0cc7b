//! The records requests carry (user, workspace and key inputs) and replies return.

use super::*;

/// `enabled` and `must_change_password` are `Option` so that an omitted field never changes
/// state (the upstream bug where an omitted `enabled` re-enabled a disabled user).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UserInput {
    #[serde(deserialize_with = "nullable")]
    pub username: String,
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    #[serde(deserialize_with = "nullable")]
    pub email: String,
    #[serde(deserialize_with = "nullable")]
    pub password: String,
    pub roles: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub must_change_password: Option<bool>,
    #[serde(deserialize_with = "nullable", alias = "default_workspace")]
    pub workspace: String,
    /// Netsoc's account fields (an iamd extension); absent or empty leaves them as they are.
    #[serde(deserialize_with = "nullable")]
    pub first_name: String,
    #[serde(deserialize_with = "nullable")]
    pub last_name: String,
    /// An OpenSSH public key line (`ssh-ed25519 AAAA… comment`).
    #[serde(deserialize_with = "nullable")]
    pub ssh_key: String,
    /// Admins only.
    pub verified: Option<bool>,
    /// When the account was renewed, RFC 3339; admins only.
    #[serde(deserialize_with = "nullable")]
    pub renewed: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct WorkspaceInput {
    #[serde(deserialize_with = "nullable")]
    pub id: String,
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ApiKeyInput {
    #[serde(deserialize_with = "nullable")]
    pub user_id: String,
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    #[serde(deserialize_with = "nullable")]
    pub expires: String,
}

/// A user as replies show it. On the wire it carries `workspace` and its alias
/// `default_workspace` (TrustGraph's name), equal; on input either is read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(into = "UserRecordWire", from = "UserRecordWire")]
pub struct UserRecord {
    pub id: String,
    pub workspace: String,
    pub username: String,
    pub name: String,
    pub email: String,
    pub roles: Vec<String>,
    pub enabled: bool,
    pub must_change_password: bool,
    pub created: String,
    pub first_name: String,
    pub last_name: String,
    pub ssh_key: String,
    pub verified: bool,
    /// RFC 3339; empty: never renewed.
    pub renewed: String,
}

/// [`UserRecord`] as JSON: both spellings of the workspace.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = UserRecord)]
struct UserRecordWire {
    id: String,
    /// The user's own workspace (the seed's name).
    #[serde(deserialize_with = "nullable")]
    workspace: String,
    /// Alias of `workspace`, always equal to it: the name TrustGraph's released code reads.
    #[serde(deserialize_with = "nullable")]
    default_workspace: String,
    username: String,
    name: String,
    email: String,
    #[serde(deserialize_with = "nullable_list")]
    roles: Vec<String>,
    enabled: bool,
    must_change_password: bool,
    created: String,
    /// Netsoc's account fields (iamd extensions; the empty ones are left out).
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    first_name: String,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    last_name: String,
    /// An OpenSSH public key line.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    ssh_key: String,
    /// The email address was proven (or an admin said so).
    verified: bool,
    /// When the account was last renewed, RFC 3339; absent: never.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    renewed: String,
}

impl From<UserRecord> for UserRecordWire {
    fn from(u: UserRecord) -> Self {
        UserRecordWire {
            id: u.id,
            default_workspace: u.workspace.clone(),
            workspace: u.workspace,
            username: u.username,
            name: u.name,
            email: u.email,
            roles: u.roles,
            enabled: u.enabled,
            must_change_password: u.must_change_password,
            created: u.created,
            first_name: u.first_name,
            last_name: u.last_name,
            ssh_key: u.ssh_key,
            verified: u.verified,
            renewed: u.renewed,
        }
    }
}

impl From<UserRecordWire> for UserRecord {
    fn from(w: UserRecordWire) -> Self {
        UserRecord {
            id: w.id,
            workspace: if w.workspace.is_empty() { w.default_workspace } else { w.workspace },
            username: w.username,
            name: w.name,
            email: w.email,
            roles: w.roles,
            enabled: w.enabled,
            must_change_password: w.must_change_password,
            created: w.created,
            first_name: w.first_name,
            last_name: w.last_name,
            ssh_key: w.ssh_key,
            verified: w.verified,
            renewed: w.renewed,
        }
    }
}

impl utoipa::PartialSchema for UserRecord {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <UserRecordWire as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for UserRecord {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("UserRecord")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct WorkspaceRecord {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub created: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ApiKeyRecord {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub prefix: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub expires: String,
    pub created: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_used: String,
}
