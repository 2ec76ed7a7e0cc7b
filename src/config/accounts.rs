//! The sections of the account service Netsoc's iamd is (docs/accounts.md, docs/netsoc.md):
//! account rules, mail and its SMTP server, the cleanup job, Netsoc's compatibility
//! (`compat.*`) and ma1sd's identity store.

use super::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// People's accounts as Netsoc's iamd has them (docs/accounts.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountsSettings {
    /// Renewal-based expiry: a login token expires at `renewed + renewal_validity` (never
    /// clamped: a never-renewed account gets a token that has expired already, which still
    /// lets its user read, update and delete its own account and log out). Unset: `jwt.ttl`.
    #[serde(with = "humantime_serde")]
    pub renewal_validity: Option<Duration>,
    /// Anyone may create an account (`create-user` with no credential), in
    /// `registration_workspace`, unverified, with no role.
    pub self_registration: bool,
    /// Where self-registered accounts go.
    pub registration_workspace: String,
    /// A regular expression every non-admin's email must match (create and update), e.g.
    /// `@tcd\.ie$`. Empty: any address.
    pub email_pattern: String,
    /// Usernames only an admin may give (create or rename), compared like usernames are
    /// (case-insensitively, after the same normalisation). As a variable: comma-separated.
    pub reserved_usernames: Vec<String>,
}

/// Verification and password-reset mail over SMTP (`lettre`). Off while `host` is empty: no
/// mail is sent, and asking for one is an error saying so.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// STARTTLS, required (the server's certificate checked against the web PKI roots).
    pub tls: bool,
    pub username: String,
    pub password: Secret,
    pub password_file: Option<PathBuf>,
    /// How long connecting (and each SMTP exchange) may take.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            host: String::new(),
            port: 587,
            tls: true,
            username: String::new(),
            password: Secret::default(),
            password_file: None,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// What the mails say and where their links point.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    /// `From:`, an address or `Name <address>`.
    pub from: String,
    /// `Reply-To:`; empty: none.
    pub reply_to: String,
    /// The subjects are "<subject_prefix> account verification" and "… password reset".
    pub subject_prefix: String,
    /// The link a verification mail carries when the request asked for HTML (`Accept:
    /// text/html`): `{{.Token}}` (Netsoc's placeholder) or `{token}` becomes the token.
    pub verify_url: String,
    /// The same for password reset.
    pub reset_url: String,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            from: "iamd <iamd@localhost>".into(),
            reply_to: String::new(),
            subject_prefix: "iamd".into(),
            verify_url: "http://localhost:8080/verify?token={{.Token}}".into(),
            reset_url: "http://localhost:8080/reset?token={{.Token}}".into(),
        }
    }
}

/// Netsoc's surface over iamd: which workspace its users live in (docs/netsoc.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompatSettings {
    /// The workspace Netsoc's clients and ma1sd see (the others are invisible to them).
    pub workspace: String,
    /// Netsoc's root account: with it set and no user in `workspace`, `iamd serve` creates
    /// `root` (admin, verified, renewed now) with this password. Empty: no root.
    pub root_password: Secret,
    pub root_password_file: Option<PathBuf>,
    /// Netsoc's HS256 `jwt.key` (base64, as Netsoc reads it): its tokens issued before the
    /// switch stay valid on `/v1`.
    pub legacy_jwt_key: Secret,
    /// The key's bytes as they are (as Netsoc read its `jwt.key_file`).
    pub legacy_jwt_key_file: Option<PathBuf>,
}

impl Default for CompatSettings {
    fn default() -> Self {
        CompatSettings {
            workspace: "default".into(),
            root_password: Secret::default(),
            root_password_file: None,
            legacy_jwt_key: Secret::default(),
            legacy_jwt_key_file: None,
        }
    }
}

/// ma1sd's REST identity store (Matrix logins, directory and 3PID lookups) on a listener of its
/// own, unauthenticated: bind it where only ma1sd reaches it. Off while `http_address` is empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ma1sdSettings {
    pub http_address: String,
    /// Where the store's paths start (ma1sd's `rest.endpoints` base).
    pub base_url: String,
    /// The Matrix server name: `@localpart:<domain>`.
    pub domain: String,
}

impl Default for Ma1sdSettings {
    fn default() -> Self {
        Ma1sdSettings {
            http_address: String::new(),
            base_url: "/_ma1sd/backend/api/v1".into(),
            domain: String::new(),
        }
    }
}

/// The cleanup job: self-registered accounts never verified are deleted once older than
/// `max_age`, checked every `interval`, by one process at a time.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CleanupSettings {
    /// How often the job runs; `0s`: never.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
}

impl Default for CleanupSettings {
    fn default() -> Self {
        CleanupSettings { interval: Duration::from_secs(3600), max_age: Duration::from_secs(7 * 24 * 3600) }
    }
}

impl Default for AccountsSettings {
    fn default() -> Self {
        AccountsSettings {
            renewal_validity: None,
            self_registration: false,
            registration_workspace: "default".into(),
            email_pattern: String::new(),
            reserved_usernames: Vec::new(),
        }
    }
}
