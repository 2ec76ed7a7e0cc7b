//! The JSON bodies of the REST endpoints that are not protocol records: what login,
//! change-password and the lists take and give, and the error bodies. Each carries its
//! OpenAPI schema, so the document says exactly what the handlers send.

use crate::protocol::{ApiKeyRecord, IamError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
    /// Optional: the user's own workspace is used when absent; another one fails the login.
    pub workspace: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct ChangePasswordBody {
    /// The current password.
    pub password: String,
    pub new_password: String,
}

/// Whom to log out everywhere: the caller itself when empty or absent; another user only
/// for a caller holding `users:admin` in its workspace.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LogoutAllBody {
    pub user_id: String,
}

/// Whose mail to send: the account named by `username` or `user_id` (one of them).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MailRequestBody {
    pub username: String,
    pub user_id: String,
}

/// An email token (from a verification mail).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EmailTokenBody {
    pub token: String,
}

/// A reset token (from a password-reset mail) and the new password.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordResetBody {
    pub token: String,
    pub new_password: String,
}

/// RFC 7662: the token to introspect (form-encoded, or JSON).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct IntrospectBody {
    pub token: String,
    /// Accepted and ignored: iamd issues one kind of token.
    pub token_type_hint: String,
}

/// RFC 7662's answer: `{"active": false}` (the default) for any token that is not good now,
/// else its facts.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Introspection {
    pub active: bool,
    /// The user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The account's roles now, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Read from the account now, never from the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_admin: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginReply {
    /// An EdDSA JWT (`kid` header; claims iss, sub, workspace, roles, is_admin, version, iat, exp).
    pub jwt: String,
    /// When it expires, ISO-8601 UTC.
    pub jwt_expires: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BootstrapStatusReply {
    /// True until workspace `default` exists.
    pub bootstrap_available: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemporaryPasswordReply {
    /// Shown once; the user must change it at the next login.
    pub temporary_password: String,
}

/// issue-token: how long the token lives, in Go's syntax (`24h`, `1h30m`, `876000h`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct IssueTokenBody {
    pub duration: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedTokenReply {
    /// An EdDSA JWT for the user, bound to its account version. Shown once.
    pub token: String,
    /// When it expires, ISO-8601 UTC.
    pub expires: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyReply {
    /// The new active key, SubjectPublicKeyInfo PEM.
    pub signing_key_public: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    pub api_key: Option<ApiKeyRecord>,
    /// The key itself, shown this once; absent when the reply is a replay of an
    /// `Idempotency-Key` (one-time secrets are never stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_plaintext: Option<String>,
}

/// One page of a list, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> Page<T> {
    pub fn new(items: Vec<T>, next_cursor: String) -> Self {
        Page { items, next_cursor: (!next_cursor.is_empty()).then_some(next_cursor) }
    }
}

/// A protocol error: `type` is one of the taxonomy, `message` never carries a secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorReply {
    pub error: IamError,
}

/// 401 `{"error":"auth failure"}` or 403 `{"error":"access denied"}`: nothing more is said.
#[derive(Debug, Serialize, ToSchema)]
pub struct Refusal {
    #[schema(example = "auth failure")]
    pub error: String,
}

/// One key of the JWKS document (RFC 7517 / RFC 8037): an Ed25519 key (`OKP`) or a P-256
/// key (`EC`, with `y`) of the `/v1` tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct Jwk {
    #[schema(example = "OKP")]
    pub kty: String,
    #[schema(example = "Ed25519")]
    pub crv: String,
    /// The raw public key (OKP) or the point's x coordinate (EC), base64url.
    pub x: String,
    /// The point's y coordinate (EC only), base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    pub kid: String,
    #[schema(example = "EdDSA")]
    pub alg: String,
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    pub use_: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}
