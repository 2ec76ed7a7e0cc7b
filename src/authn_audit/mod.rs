//! The authentication audit (`docs/authentication-audit.md`): every login and
//! resolve-api-key outcome, and every failed HTTP bearer authentication, becomes a row of
//! `authentications` that auditors read through `GET /api/v1/audit/authentications` and
//! `iamd audit authentications`. This file is the vocabulary (reason buckets, the request's
//! origin, one attempt); [`recorder`] writes attempts off the request's path, [`query`] reads
//! them back.
//!
//! A record names the attempt, never its secret: no password, API key or hash. `key_id` is
//! the key's public id (known only when the key was found); `username` is the name of the
//! user a login found. A name that finds no user may be a password typed into the wrong
//! field: it is kept only as `username_digest`, a keyed digest (HMAC-SHA256 under the
//! server's digest key) that shows repeated attempts on one name without holding it. The
//! reason bucket is for auditors: callers always get the one `auth-failed`.

pub mod query;
pub mod recorder;

pub use query::{digest_unknown_usernames, list, render_text, username_digest, Entry, Filter};
pub use recorder::{Recorder, Writer};

use chrono::{DateTime, Utc};

/// Longest text kept from caller input (usernames, workspaces, request ids); longer is cut.
pub const MAX_FIELD: usize = 256;

/// Why an attempt ended as it did: a bucket for auditors, never told to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Authenticated.
    Ok,
    /// Nothing that could be checked: an empty username or password, an oversized field, a
    /// key without the `tg_` prefix, a bearer that is neither an API key nor a JWT.
    Malformed,
    /// No user has that username (login), or the token's subject is gone (JWT).
    UnknownUser,
    /// The user exists; the password does not match.
    BadPassword,
    /// The user exists but has no password set.
    NoPassword,
    /// The user or its workspace is disabled (the credential itself was right).
    Disabled,
    /// The right password, but the login named another workspace than the user's.
    WrongWorkspace,
    /// No key has that digest: never issued, or revoked (a revoked key's row is gone, so the
    /// two cannot be told apart).
    RevokedOrUnknown,
    /// The key exists but its expiry has passed.
    Expired,
    /// A JWT whose signature, expiry, issuer or algorithm does not verify.
    InvalidToken,
    /// A JWT signed with a key (`kid`) iamd does not know.
    UnknownSigningKey,
    /// A JWT of an older account version: the user logged out everywhere or changed password.
    StaleToken,
    /// iamd could not decide (the database was unavailable, signing failed).
    Error,
    /// authenticate-anonymous: iamd grants no anonymous access.
    AnonymousRefused,
    /// A Matrix login of an account whose email is not verified.
    Unverified,
    /// A Matrix login of an account whose renewal has lapsed.
    RenewalLapsed,
}

impl Reason {
    pub const ALL: [Reason; 16] = [
        Reason::Ok,
        Reason::Malformed,
        Reason::UnknownUser,
        Reason::BadPassword,
        Reason::NoPassword,
        Reason::Disabled,
        Reason::WrongWorkspace,
        Reason::RevokedOrUnknown,
        Reason::Expired,
        Reason::InvalidToken,
        Reason::UnknownSigningKey,
        Reason::StaleToken,
        Reason::Error,
        Reason::AnonymousRefused,
        Reason::Unverified,
        Reason::RenewalLapsed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::Malformed => "malformed",
            Reason::UnknownUser => "unknown-user",
            Reason::BadPassword => "bad-password",
            Reason::NoPassword => "no-password",
            Reason::Disabled => "disabled",
            Reason::WrongWorkspace => "wrong-workspace",
            Reason::RevokedOrUnknown => "revoked-or-unknown",
            Reason::Expired => "expired",
            Reason::InvalidToken => "invalid-token",
            Reason::UnknownSigningKey => "unknown-signing-key",
            Reason::StaleToken => "stale-token",
            Reason::Error => "error",
            Reason::AnonymousRefused => "anonymous-refused",
            Reason::Unverified => "unverified",
            Reason::RenewalLapsed => "renewal-lapsed",
        }
    }
}

/// `success` or `failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            _ => None,
        }
    }
}

/// What the caller presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    Password,
    ApiKey,
    Jwt,
    /// No credential at all (authenticate-anonymous).
    Anonymous,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Password => "password",
            CredentialKind::ApiKey => "api-key",
            CredentialKind::Jwt => "jwt",
            CredentialKind::Anonymous => "anonymous",
        }
    }
}

/// Where the decision was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthOperation {
    Login,
    ResolveApiKey,
    /// The `Authorization: Bearer` of an HTTP call (failures only).
    HttpBearer,
    /// TrustGraph's gateway asking for anonymous access (always refused).
    AuthenticateAnonymous,
    /// validate-token: a service asking whether a JWT is good (failures only).
    ValidateToken,
    /// `POST /api/v1/auth/introspect` (RFC 7662; failures only).
    Introspect,
    /// verify-email: a verification token presented (every outcome).
    VerifyEmail,
    /// complete-password-reset: a reset token presented (every outcome).
    CompletePasswordReset,
    /// ma1sd's identity store checking a Matrix login's password (every outcome).
    MatrixLogin,
}

impl AuthOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthOperation::Login => "login",
            AuthOperation::ResolveApiKey => "resolve-api-key",
            AuthOperation::HttpBearer => "http-bearer",
            AuthOperation::AuthenticateAnonymous => "authenticate-anonymous",
            AuthOperation::ValidateToken => "validate-token",
            AuthOperation::Introspect => "introspect",
            AuthOperation::VerifyEmail => "verify-email",
            AuthOperation::CompletePasswordReset => "complete-password-reset",
            AuthOperation::MatrixLogin => "matrix-login",
        }
    }
}

/// Where a request came from, as its transport knows it. The HTTP adapter fills `client`
/// from the connection's peer address; nothing a caller writes in a request body can.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The transport: `http`, `kafka`, `cli`.
    pub source: String,
    /// The client's address (the HTTP peer's IP), when known.
    pub client: Option<String>,
    /// The transport's request id (HTTP: the `X-Request-Id` of the response), used when the
    /// request names none of its own.
    pub request_id: Option<String>,
}

impl Origin {
    /// A transport with nothing more known.
    pub fn of(source: &str) -> Origin {
        Origin { source: source.to_owned(), ..Default::default() }
    }

    /// This origin, with the end client's address as a trusted relay (the API gateway over
    /// Kafka or with its secret) reported it in `client_ip`; unchanged when it reported none.
    pub fn relayed(self, client_ip: &str) -> Origin {
        match clip(client_ip) {
            Some(client) => Origin { client: Some(client), ..self },
            None => self,
        }
    }
}

/// One authentication outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// When iamd began deciding.
    pub at: DateTime<Utc>,
    pub reason: Reason,
    pub credential: CredentialKind,
    pub operation: AuthOperation,
    pub workspace: Option<String>,
    pub user_id: Option<String>,
    /// The API key's id (never the key or its digest); `None` when no key was found.
    pub key_id: Option<String>,
    /// The username of the user a login found.
    pub username: Option<String>,
    /// A login naming no user: the keyed digest of the name it gave (never the name).
    pub username_digest: Option<String>,
    pub client: Option<String>,
    pub source: String,
    pub request_id: Option<String>,
}

impl Attempt {
    /// An attempt that has decided nothing yet: its reason is [`Reason::Error`] until the
    /// deciding code says otherwise, so an early `?` is recorded as an error. The request's
    /// own id wins over the transport's.
    pub fn new(
        operation: AuthOperation,
        credential: CredentialKind,
        origin: &Origin,
        request_id: &str,
    ) -> Attempt {
        Attempt {
            at: Utc::now(),
            reason: Reason::Error,
            credential,
            operation,
            workspace: None,
            user_id: None,
            key_id: None,
            username: None,
            username_digest: None,
            client: origin.client.as_deref().and_then(clip),
            source: origin.source.clone(),
            request_id: clip(request_id).or_else(|| origin.request_id.as_deref().and_then(clip)),
        }
    }

    pub fn outcome(&self) -> Outcome {
        if self.reason == Reason::Ok {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }
}

/// Caller text as a column may hold it: `None` when empty, NUL characters removed (no
/// PostgreSQL text holds one), at most [`MAX_FIELD`] bytes (cut at a character boundary).
pub fn clip(s: &str) -> Option<String> {
    let mut out: String = s.chars().filter(|c| *c != '\0').collect();
    if out.len() > MAX_FIELD {
        let mut end = MAX_FIELD;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_have_distinct_names_and_only_ok_is_a_success() {
        let names: std::collections::HashSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
        for reason in Reason::ALL {
            let mut a = Attempt::new(AuthOperation::Login, CredentialKind::Password, &Origin::of("http"), "");
            a.reason = reason;
            assert_eq!(a.outcome() == Outcome::Success, reason == Reason::Ok, "{reason:?}");
        }
        assert_eq!(Outcome::parse("failure"), Some(Outcome::Failure));
        assert_eq!(Outcome::parse("FAILURE"), None);
    }

    #[test]
    fn an_attempt_starts_as_an_error_and_prefers_the_request_id_of_the_request() {
        let origin = Origin {
            source: "http".into(),
            client: Some("10.0.0.1".into()),
            request_id: Some("transport-id".into()),
        };
        let a = Attempt::new(AuthOperation::ResolveApiKey, CredentialKind::ApiKey, &origin, "req-1");
        assert_eq!(a.reason, Reason::Error);
        assert_eq!(a.request_id.as_deref(), Some("req-1"));
        assert_eq!(a.client.as_deref(), Some("10.0.0.1"));
        let b = Attempt::new(AuthOperation::ResolveApiKey, CredentialKind::ApiKey, &origin, "");
        assert_eq!(b.request_id.as_deref(), Some("transport-id"));
        assert_eq!(
            Attempt::new(AuthOperation::Login, CredentialKind::Password, &Origin::of("kafka"), "").request_id,
            None
        );
    }

    #[test]
    fn clip_removes_nul_and_cuts_long_text_at_a_character_boundary() {
        assert_eq!(clip(""), None);
        assert_eq!(clip("\0"), None);
        assert_eq!(clip("a\0b").as_deref(), Some("ab"));
        let long = "é".repeat(MAX_FIELD);
        let cut = clip(&long).unwrap();
        assert!(cut.len() <= MAX_FIELD && cut.chars().all(|c| c == 'é'), "{}", cut.len());
    }
}
