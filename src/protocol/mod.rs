//! Wire types of the IAM service protocol (`IamRequest` → `IamResponse`), shared by every
//! adapter. Field names follow the seed spec (snake_case); every request field is optional on
//! input, `null` reads as empty, unknown fields are ignored, and the upstream aliases
//! (`default_workspace`) are accepted.
//!
//! Replies carry both spellings where the seed and TrustGraph's released code differ:
//! `resolved_workspace` beside `resolved_default_workspace`, and in user records `workspace`
//! beside `default_workspace`. TrustGraph's codec drops keys it does not know and defaults
//! missing ones, so a reply with only the seed's names reads there as an empty workspace.

mod error;

pub use error::{
    ErrorKind, IamError, AUTH_FAILED_MESSAGE, REQUEST_ID_REUSED_MESSAGE, REQUEST_IN_PROGRESS_MESSAGE,
};

use serde::{Deserialize, Deserializer, Serialize};

/// Reads a string that may be `null` or absent as the empty string.
fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// Reads a number that may be `null` as zero.
fn nullable_number<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    Ok(Option::<u32>::deserialize(d)?.unwrap_or_default())
}

/// Reads a list that may be `null` as empty.
fn nullable_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Every operation iamd understands. Parsing an unknown name is `invalid-argument`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Login,
    ResolveApiKey,
    ChangePassword,
    ResetPassword,
    CreateUser,
    ListUsers,
    GetUser,
    UpdateUser,
    DisableUser,
    CreateWorkspace,
    ListWorkspaces,
    GetWorkspace,
    UpdateWorkspace,
    DisableWorkspace,
    CreateApiKey,
    ListApiKeys,
    RevokeApiKey,
    GetSigningKeyPublic,
    RotateSigningKey,
    Bootstrap,
    // Upstream extensions beyond the seed spec.
    Whoami,
    ListMyWorkspaces,
    BootstrapStatus,
    Authorise,
    AuthoriseMany,
    EnableUser,
    DeleteUser,
    AuthenticateAnonymous,
    MintToken,
}

impl Operation {
    pub const ALL: [Operation; 29] = [
        Operation::Login,
        Operation::ResolveApiKey,
        Operation::ChangePassword,
        Operation::ResetPassword,
        Operation::CreateUser,
        Operation::ListUsers,
        Operation::GetUser,
        Operation::UpdateUser,
        Operation::DisableUser,
        Operation::CreateWorkspace,
        Operation::ListWorkspaces,
        Operation::GetWorkspace,
        Operation::UpdateWorkspace,
        Operation::DisableWorkspace,
        Operation::CreateApiKey,
        Operation::ListApiKeys,
        Operation::RevokeApiKey,
        Operation::GetSigningKeyPublic,
        Operation::RotateSigningKey,
        Operation::Bootstrap,
        Operation::Whoami,
        Operation::ListMyWorkspaces,
        Operation::BootstrapStatus,
        Operation::Authorise,
        Operation::AuthoriseMany,
        Operation::EnableUser,
        Operation::DeleteUser,
        Operation::AuthenticateAnonymous,
        Operation::MintToken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Login => "login",
            Operation::ResolveApiKey => "resolve-api-key",
            Operation::ChangePassword => "change-password",
            Operation::ResetPassword => "reset-password",
            Operation::CreateUser => "create-user",
            Operation::ListUsers => "list-users",
            Operation::GetUser => "get-user",
            Operation::UpdateUser => "update-user",
            Operation::DisableUser => "disable-user",
            Operation::CreateWorkspace => "create-workspace",
            Operation::ListWorkspaces => "list-workspaces",
            Operation::GetWorkspace => "get-workspace",
            Operation::UpdateWorkspace => "update-workspace",
            Operation::DisableWorkspace => "disable-workspace",
            Operation::CreateApiKey => "create-api-key",
            Operation::ListApiKeys => "list-api-keys",
            Operation::RevokeApiKey => "revoke-api-key",
            Operation::GetSigningKeyPublic => "get-signing-key-public",
            Operation::RotateSigningKey => "rotate-signing-key",
            Operation::Bootstrap => "bootstrap",
            Operation::Whoami => "whoami",
            Operation::ListMyWorkspaces => "list-my-workspaces",
            Operation::BootstrapStatus => "bootstrap-status",
            Operation::Authorise => "authorise",
            Operation::AuthoriseMany => "authorise-many",
            Operation::EnableUser => "enable-user",
            Operation::DeleteUser => "delete-user",
            Operation::AuthenticateAnonymous => "authenticate-anonymous",
            Operation::MintToken => "mint-token",
        }
    }

    pub fn parse(name: &str) -> Result<Operation, IamError> {
        Operation::ALL.iter().copied().find(|op| op.as_str() == name).ok_or_else(|| {
            if name.is_empty() {
                IamError::invalid("operation is required")
            } else {
                // Echo the name only when it is short and printable: it is caller input.
                let shown: String = name.chars().take(64).filter(|c| !c.is_control()).collect();
                IamError::invalid(format!("unknown operation '{shown}'"))
            }
        })
    }

    /// Operations that change state go through an actor and are deduplicated by `request_id`.
    pub fn is_command(self) -> bool {
        !matches!(
            self,
            Operation::Login
                | Operation::ResolveApiKey
                | Operation::ListUsers
                | Operation::GetUser
                | Operation::ListWorkspaces
                | Operation::GetWorkspace
                | Operation::ListApiKeys
                | Operation::GetSigningKeyPublic
                | Operation::Whoami
                | Operation::ListMyWorkspaces
                | Operation::BootstrapStatus
                | Operation::Authorise
                | Operation::AuthoriseMany
                | Operation::AuthenticateAnonymous
        )
    }
}

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
    #[serde(deserialize_with = "nullable")]
    pub password: String,
    #[serde(deserialize_with = "nullable")]
    pub new_password: String,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_and_unknown_fields_read_as_empty() {
        let req: IamRequest = serde_json::from_str(
            r#"{"operation":"get-user","workspace":null,"user":null,"bogus":1,"user_id":"u"}"#,
        )
        .unwrap();
        assert_eq!(req.operation, "get-user");
        assert_eq!(req.workspace, "");
        assert!(req.user.is_none());
    }

    #[test]
    fn the_idempotency_input_is_every_field_but_the_id_and_the_relay_in_one_order() {
        let parse = |json: &str| serde_json::from_str::<IamRequest>(json).unwrap().idempotency_input();
        let base =
            parse(r#"{"operation":"create-user","workspace":"w","user":{"username":"a","password":"p1"}}"#);
        let reordered = parse(
            r#"{"user":{"password":"p1","username":"a"},"request_id":"r-2","client_ip":"10.0.0.9","workspace":"w","operation":"create-user"}"#,
        );
        assert_eq!(base, reordered, "the id, the client's address and key order do not matter");
        let other_password =
            parse(r#"{"operation":"create-user","workspace":"w","user":{"username":"a","password":"p2"}}"#);
        assert_ne!(base, other_password, "a secret is part of the request");
        let other_op =
            parse(r#"{"operation":"update-user","workspace":"w","user":{"username":"a","password":"p1"}}"#);
        assert_ne!(base, other_op);
        let disable = parse(r#"{"operation":"update-user","user":{"enabled":false}}"#);
        assert_ne!(disable, parse(r#"{"operation":"update-user","user":{}}"#), "false is not absent");
    }

    #[test]
    fn wrong_types_are_rejected() {
        assert!(serde_json::from_str::<IamRequest>(r#"{"operation":5}"#).is_err());
        assert!(serde_json::from_str::<IamRequest>(r#"{"user":{"roles":"admin"}}"#).is_err());
    }

    #[test]
    fn json_errors_never_echo_values() {
        let e = IamRequest::from_json(br#"{"password": 1234567890123}"#).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(!e.message.contains("1234567890123"), "{}", e.message);
        assert!(e.message.contains("wrong type"));
        assert!(IamRequest::from_json(b"{not json").unwrap_err().message.contains("not valid JSON"));
        assert!(IamRequest::from_json(b"{").unwrap_err().message.contains("ends before"));
        assert!(IamRequest::from_json(b"\xff\xfe").is_err());
    }

    #[test]
    fn the_target_workspace_is_workspace_else_the_record_id() {
        let r = IamRequest::from_json(br#"{"operation":"update-workspace","workspace_record":{"id":"w"}}"#)
            .unwrap();
        assert_eq!(r.target_workspace(), "w");
        let r = IamRequest::from_json(br#"{"workspace":"a","workspace_record":{"id":"w"}}"#).unwrap();
        assert_eq!(r.target_workspace(), "a");
        assert_eq!(IamRequest::default().target_workspace(), "");
    }

    #[test]
    fn upstream_alias_default_workspace_is_accepted() {
        let u: UserInput = serde_json::from_str(r#"{"default_workspace":"acme"}"#).unwrap();
        assert_eq!(u.workspace, "acme");
        let r: UserRecord = serde_json::from_str(r#"{"id":"u","default_workspace":"acme"}"#).unwrap();
        assert_eq!(r.workspace, "acme");
        let r: UserRecord =
            serde_json::from_str(r#"{"id":"u","workspace":"acme","default_workspace":"acme","roles":null}"#)
                .unwrap();
        assert_eq!((r.workspace.as_str(), r.roles.len()), ("acme", 0));
    }

    #[test]
    fn replies_carry_both_spellings_of_the_workspace() {
        let user = UserRecord { id: "u".into(), workspace: "acme".into(), ..Default::default() };
        let v = serde_json::to_value(&user).unwrap();
        assert_eq!((&v["workspace"], &v["default_workspace"]), (&"acme".into(), &"acme".into()));
        assert_eq!(serde_json::from_value::<UserRecord>(v).unwrap(), user);
        let r = IamResponse::resolved("u".into(), "acme".into(), vec!["reader".into()]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["resolved_workspace"], "acme");
        assert_eq!(v["resolved_default_workspace"], "acme");
        assert_eq!(serde_json::from_value::<IamResponse>(v).unwrap(), r);
    }

    #[test]
    fn every_operation_round_trips_and_unknown_is_invalid() {
        for op in Operation::ALL {
            assert_eq!(Operation::parse(op.as_str()).unwrap(), op);
        }
        let err = Operation::parse("drop-tables").unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
        assert_eq!(Operation::parse("").unwrap_err().kind, ErrorKind::InvalidArgument);
    }

    #[test]
    fn empty_fields_are_not_serialised_and_errors_use_type() {
        let r = IamResponse::error(IamError::auth_failed());
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"error":{"type":"auth-failed","message":"authentication failed"}}"#
        );
    }

    #[test]
    fn without_secrets_strips_one_time_values() {
        let r = IamResponse {
            api_key_plaintext: "tg_x".into(),
            temporary_password: "p".into(),
            bootstrap_admin_api_key: "tg_y".into(),
            bootstrap_admin_user_id: "u".into(),
            ..Default::default()
        };
        let s = r.without_secrets();
        assert!(s.api_key_plaintext.is_empty() && s.temporary_password.is_empty());
        assert!(s.bootstrap_admin_api_key.is_empty());
        assert_eq!(s.bootstrap_admin_user_id, "u");
    }
}
