//! What Netsoc's `/v1` surface asks of the accounts of one workspace (`compat.workspace`), in
//! Netsoc's terms: users by integer id and username, its ES256 tokens (`sub` the id, `aud`
//! `["auth"]`, `version`, `is_admin`), its login with its exact refusals, and its email
//! tokens. Writes go through the same commands, rules and audit as every other surface;
//! the adapter (`adapters::netsoc`) speaks the HTTP.
//!
//! Errors are [`IamError`]s whose messages are Netsoc's own texts where its clients match
//! them; the adapter maps their kinds to Netsoc's statuses.

use super::accounts::AccountWriter;
use super::{Ctx, Service};
use crate::authn_audit::{clip, Attempt, AuthOperation, CredentialKind, Origin, Reason};
use crate::crypto::password::MAX_PASSWORD_BYTES;
use crate::crypto::signing::NETSOC_AUTH_AUDIENCE;
use crate::crypto::NetsocClaims;
use crate::domain::workspace::WorkspaceCommand;
use crate::events::{MailPurpose, Metadata};
use crate::protocol::{ErrorKind, IamError};
use chrono::{DateTime, Utc};

/// Netsoc's texts, where a client matches them or a person reads them.
pub mod text {
    pub const NOT_FOUND: &str = "user does not exist";
    pub const INCORRECT_PASSWORD: &str = "incorrect password";
    pub const UNVERIFIED: &str = "email address is not verified";
    pub const VERIFIED: &str = "email address is already verified";
    pub const LOGIN_DISABLED: &str = "login is disabled for this user";
    pub const TOKEN_REQUIRED: &str = "a valid token is required for this endpoint";
    pub const ADMIN_REQUIRED: &str = "only admin users can make use of this endpoint";
    pub const TOKEN_EXPIRED: &str = "your token has expired";
    pub const OTHER_VERIFICATION: &str = "can only verify own account";
    pub const OTHER_RESET: &str = "can only reset password for own account";
    pub const PASSWORD_REQUIRED: &str = "password is required";
    pub const INTERNAL_FIELD: &str = "attempt to modify internal field";
    pub const RESERVED: &str =
        "username is reserved, contact support if this username previously belonged to you";
    pub const USERNAME_EXISTS: &str = "user with that username already exists";
    pub const EMAIL_EXISTS: &str = "user with that email already exists";
}

/// Netsoc's password rule: 8 to 128 characters.
pub const PASSWORD_LENGTH: std::ops::RangeInclusive<usize> = 8..=128;

/// A `/v1` login token lives until the account's renewal plus this when
/// `accounts.renewal_validity` is not set (Netsoc's `jwt.login_validity` default, 8760h).
pub const DEFAULT_LOGIN_VALIDITY: chrono::Duration = chrono::Duration::hours(8760);

/// An account as Netsoc's `/v1` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NetsocUser {
    /// iamd's id of the user.
    pub user_id: String,
    /// The integer id (`id`, the token's `sub`).
    pub number: i32,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// `None` when unset (omitted from the JSON).
    pub ssh_key: Option<String>,
    pub verified: bool,
    pub is_admin: bool,
    /// 0001-01-01T00:00:00Z when never renewed.
    pub renewed: DateTime<Utc>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    /// The user and its workspace are both enabled.
    pub enabled: bool,
    pub roles: Vec<String>,
    pub account_version: i64,
    /// iamd's own rule (an admin's reset): until the password changes, the account may only
    /// read itself and set it.
    pub must_change_password: bool,
}

/// The columns of a [`NetsocUser`] (`enabled`: the user and its workspace), and where they
/// come from; completed by a condition.
macro_rules! netsoc_user_select {
    ($($extra:literal)?) => {
        concat!(
            "SELECT id, number, username, email, first_name, last_name, ssh_key, verified, roles, renewed, \
             created, updated, \
             enabled AND coalesce((SELECT w.enabled FROM workspaces w WHERE w.id = users.workspace), false), \
             account_version, must_change_password",
            $(", ", $extra,)?
            " FROM users WHERE workspace = $1 AND number IS NOT NULL"
        )
    };
}
const USER_COLUMNS: &str = netsoc_user_select!();
/// A login's read: the user and its password hash (column 15), by name, in one query.
const LOGIN_USER: &str = concat!(netsoc_user_select!("password_hash"), " AND lower(username) = lower($2)");

fn netsoc_user(r: &tokio_postgres::Row) -> NetsocUser {
    let roles: Vec<String> = r.get(8);
    let ssh_key: String = r.get(6);
    NetsocUser {
        user_id: r.get(0),
        number: r.get(1),
        username: r.get(2),
        email: r.get(3),
        first_name: r.get(4),
        last_name: r.get(5),
        ssh_key: (!ssh_key.is_empty()).then_some(ssh_key),
        verified: r.get(7),
        is_admin: roles.iter().any(|r| r == crate::authz::ADMIN_ROLE),
        roles,
        renewed: r.get::<_, Option<DateTime<Utc>>>(9).unwrap_or_else(crate::domain::never_renewed),
        created: r.get(10),
        updated: r.get(11),
        enabled: r.get(12),
        account_version: r.get(13),
        must_change_password: r.get(14),
    }
}

/// Who a `/v1` bearer proved to be: the user, the token's expiry, and whether it has passed.
#[derive(Debug, Clone)]
pub struct NetsocCaller {
    pub user: NetsocUser,
    pub principal: super::Principal,
    /// The token expired: its user may read, edit and delete its own account and log out.
    pub expired: bool,
}

impl NetsocCaller {
    /// An admin whose token has not expired (Netsoc's `ValidAdmin`).
    pub fn valid_admin(&self) -> bool {
        self.user.is_admin && !self.expired
    }
}

/// An email token's holder: the user and the account version the token was issued at.
pub struct EmailTokenHolder {
    pub user: NetsocUser,
    pub version: i64,
}

fn status(kind: ErrorKind, message: &str) -> IamError {
    IamError::new(kind, message.to_owned())
}

pub fn unauthorized(message: &str) -> IamError {
    status(ErrorKind::AuthFailed, message)
}

pub fn not_found() -> IamError {
    status(ErrorKind::NotFound, text::NOT_FOUND)
}

/// Netsoc's password length rule, as its validator words it.
pub fn password_length(password: &str) -> Result<(), IamError> {
    if PASSWORD_LENGTH.contains(&password.chars().count()) {
        return Ok(());
    }
    Err(IamError::invalid("password: the length must be between 8 and 128."))
}

impl Service {
    /// The accounts of `workspace` that have an integer id, by id.
    pub async fn netsoc_users(&self, workspace: &str) -> Result<Vec<NetsocUser>, IamError> {
        let sql = format!("{USER_COLUMNS} ORDER BY number");
        let rows = self.inner.queries.rows("netsoc_users", &sql, &[&workspace]).await?;
        Ok(rows.iter().map(netsoc_user).collect())
    }

    /// The account of `workspace` named `username` (case-insensitively, as usernames are
    /// unique).
    pub async fn netsoc_user_by_name(
        &self,
        workspace: &str,
        username: &str,
    ) -> Result<Option<NetsocUser>, IamError> {
        if username.is_empty() || username.len() > super::MAX_ID_FIELD {
            return Ok(None);
        }
        let sql = format!("{USER_COLUMNS} AND lower(username) = lower($2)");
        let rows = self.inner.queries.rows("netsoc_user_by_name", &sql, &[&workspace, &username]).await?;
        Ok(rows.first().map(netsoc_user))
    }

    /// The account of `workspace` with integer id `number`.
    pub async fn netsoc_user_by_number(
        &self,
        workspace: &str,
        number: i32,
    ) -> Result<Option<NetsocUser>, IamError> {
        let sql = format!("{USER_COLUMNS} AND number = $2");
        let rows = self.inner.queries.rows("netsoc_user_by_number", &sql, &[&workspace, &number]).await?;
        Ok(rows.first().map(netsoc_user))
    }

    /// The account `user_id` of `workspace` as `/v1` shows it.
    pub async fn netsoc_user(&self, workspace: &str, user_id: &str) -> Result<NetsocUser, IamError> {
        let sql = format!("{USER_COLUMNS} AND id = $2");
        let rows = self.inner.queries.rows("netsoc_user_by_id", &sql, &[&workspace, &user_id]).await?;
        rows.first().map(netsoc_user).ok_or_else(not_found)
    }

    /// The caller behind a `/v1` bearer `token` of `workspace`: an ES256 token iamd signed
    /// with audience `auth`, whose user exists (else 404, as Netsoc answers a deleted user's
    /// token) at the token's version. `valid`: an expired token is refused too. Failures
    /// are recorded in the authentication audit as `http-bearer`.
    pub async fn netsoc_caller(
        &self,
        workspace: &str,
        token: &str,
        valid: bool,
        origin: &Origin,
    ) -> Result<NetsocCaller, IamError> {
        let attempt = Attempt::new(AuthOperation::HttpBearer, CredentialKind::Jwt, origin, "");
        self.failures_checked(attempt, async |attempt| {
            let now = Utc::now();
            let claims = match token.len() {
                1..=super::MAX_TOKEN => self.verified_netsoc_claims(token, NETSOC_AUTH_AUDIENCE, now).await?,
                _ => None,
            };
            let Some(claims) = claims else {
                attempt.reason = Reason::InvalidToken;
                return Err(unauthorized("token is invalid"));
            };
            let (user, expired) = self.netsoc_holder(workspace, &claims, now, attempt).await?;
            if expired && valid {
                attempt.reason = Reason::Expired;
                return Err(unauthorized("token is expired"));
            }
            attempt.reason = Reason::Ok;
            let principal = super::Principal {
                user_id: user.user_id.clone(),
                workspace: workspace.to_owned(),
                roles: user.roles.clone(),
                credential: super::Credential::Jwt {
                    kid: jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid).unwrap_or_default(),
                    issued: claims.iat,
                    expires: claims.exp,
                    issuer: claims.iss.clone(),
                },
                password_change_required: user.must_change_password,
                lapsed: expired,
            };
            Ok(NetsocCaller { user, principal, expired })
        })
        .await
    }

    /// Like [`Service::checked`], but records only a failure (a success is every
    /// authenticated call).
    async fn failures_checked<T>(
        &self,
        mut attempt: Attempt,
        check: impl AsyncFnOnce(&mut Attempt) -> Result<T, IamError>,
    ) -> Result<T, IamError> {
        let result = check(&mut attempt).await;
        if result.is_err() {
            self.inner.authentications.record(attempt);
        }
        result
    }

    /// The claims of an ES256 token iamd signed for `audience`, expired or not; or of an
    /// HS256 one Netsoc's iamd signed before the switch, when `compat.legacy_jwt_key` is set.
    async fn verified_netsoc_claims(
        &self,
        token: &str,
        audience: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<NetsocClaims>, IamError> {
        let issuer = &self.inner.settings.jwt_issuer;
        if let Some(key) = &self.inner.settings.legacy_jwt_key {
            if let Some(claims) = crate::crypto::signing::verify_legacy_hs256(token, key, issuer, audience) {
                return Ok(Some(claims));
            }
        }
        let mut signer = self.inner.signer.get(&self.inner.queries).await?;
        // A key another process rotated in: reload (at most so often), as for iamd's tokens.
        let kid = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid);
        if kid.is_some_and(|kid| !signer.knows(&kid)) && self.may_reload_for_unknown_kid() {
            signer = self.inner.signer.reload(&self.inner.queries).await?;
        }
        Ok(signer.verify_netsoc(token, issuer, now, audience))
    }

    /// The account a verified token names and whether the token expired: 404 for a user
    /// that no longer exists, 401 for a moved version, a disabled account or implausible
    /// times.
    async fn netsoc_holder(
        &self,
        workspace: &str,
        claims: &NetsocClaims,
        now: DateTime<Utc>,
        attempt: &mut Attempt,
    ) -> Result<(NetsocUser, bool), IamError> {
        let Ok(number) = claims.sub.parse::<i32>() else {
            attempt.reason = Reason::InvalidToken;
            return Err(unauthorized("token is invalid"));
        };
        if claims.iat > now.timestamp() + crate::crypto::signing::CLOCK_LEEWAY_SECONDS
            || claims.nbf > now.timestamp() + crate::crypto::signing::CLOCK_LEEWAY_SECONDS
        {
            attempt.reason = Reason::InvalidToken;
            return Err(unauthorized("token is not valid yet"));
        }
        let Some(user) = self.netsoc_user_by_number(workspace, number).await? else {
            attempt.reason = Reason::UnknownUser;
            return Err(not_found());
        };
        attempt.user_id = Some(user.user_id.clone());
        attempt.username = clip(&user.username);
        attempt.workspace = clip(workspace);
        if user.account_version != claims.version {
            attempt.reason = Reason::StaleToken;
            return Err(unauthorized(text::TOKEN_EXPIRED));
        }
        if !user.enabled {
            attempt.reason = Reason::Disabled;
            return Err(unauthorized("account is disabled"));
        }
        Ok((user, claims.exp <= now.timestamp()))
    }

    /// The holder of an email token for `purpose`: ES256, iamd's issuer, the purpose's
    /// audience, unexpired, at the account's current version (a used token's version has
    /// moved on); else 401 (404 for an account that is gone). Recorded in the audit.
    pub async fn netsoc_email_token(
        &self,
        workspace: &str,
        token: &str,
        purpose: MailPurpose,
        origin: &Origin,
    ) -> Result<EmailTokenHolder, IamError> {
        let operation = match purpose {
            MailPurpose::Verification => AuthOperation::VerifyEmail,
            MailPurpose::PasswordReset => AuthOperation::CompletePasswordReset,
        };
        let attempt = Attempt::new(operation, CredentialKind::Jwt, origin, "");
        self.checked(attempt, async |attempt| {
            let now = Utc::now();
            let claims = match token.len() {
                1..=super::MAX_TOKEN => self.verified_netsoc_claims(token, purpose.audience(), now).await?,
                _ => None,
            };
            let Some(claims) = claims.filter(|c| c.exp > now.timestamp()) else {
                attempt.reason = Reason::InvalidToken;
                return Err(unauthorized("token is invalid or expired"));
            };
            let (user, _) = self.netsoc_holder(workspace, &claims, now, attempt).await?;
            attempt.reason = Reason::Ok;
            Ok(EmailTokenHolder { user, version: claims.version })
        })
        .await
    }

    /// Netsoc's login of `username` in `workspace`: 404 for an unknown user, 401
    /// `email address is not verified` (before the body is looked at: `password` is the body's
    /// password, or why it could not be read), 400 `login is disabled for this user` without a
    /// password, 401 `incorrect password`. The token lives until the account's renewal plus
    /// `accounts.renewal_validity` (never clamped: a never-renewed account's expires in year 2).
    /// Recorded in the authentication audit as `login`.
    pub async fn netsoc_login(
        &self,
        workspace: &str,
        username: &str,
        password: Result<String, IamError>,
        origin: &Origin,
    ) -> Result<String, IamError> {
        let mut attempt = Attempt::new(AuthOperation::Login, CredentialKind::Password, origin, "");
        attempt.workspace = clip(workspace);
        self.checked(attempt, async |attempt| {
            let found = match username.len() {
                1..=super::MAX_ID_FIELD => {
                    self.inner.queries.rows("netsoc_login_user", LOGIN_USER, &[&workspace, &username]).await?
                }
                _ => Vec::new(),
            };
            let Some((user, hash)) = found.first().map(|r| (netsoc_user(r), r.get::<_, Option<String>>(15)))
            else {
                attempt.reason = Reason::UnknownUser;
                attempt.username_digest = self.username_digest(username);
                return Err(not_found());
            };
            attempt.user_id = Some(user.user_id.clone());
            attempt.username = clip(&user.username);
            if !user.verified {
                attempt.reason = Reason::Unverified;
                return Err(unauthorized(text::UNVERIFIED));
            }
            let password = password.inspect_err(|_| attempt.reason = Reason::Malformed)?;
            if hash.is_none() {
                attempt.reason = Reason::NoPassword;
                return Err(IamError::invalid(text::LOGIN_DISABLED));
            }
            let long = password.len() > MAX_PASSWORD_BYTES;
            let legacy = super::credentials::legacy_password(hash.as_deref(), &password);
            let old_hash = hash.clone();
            let matches = !long && !password.is_empty() && self.inner.hasher.verify(hash, password).await;
            if !matches {
                attempt.reason = Reason::BadPassword;
                return Err(unauthorized(text::INCORRECT_PASSWORD));
            }
            if !user.enabled {
                attempt.reason = Reason::Disabled;
                return Err(unauthorized("account is disabled"));
            }
            let validity = self.inner.settings.renewal_validity.unwrap_or(DEFAULT_LOGIN_VALIDITY);
            let expires = user.renewed.checked_add_signed(validity).unwrap_or(DateTime::<Utc>::MAX_UTC);
            self.upgrade_hash(&user.user_id, workspace, old_hash, legacy).await;
            let signer = self.inner.signer.get(&self.inner.queries).await?;
            let token = self.sign_netsoc_auth(&signer, &user, expires)?;
            attempt.reason = Reason::Ok;
            Ok(token)
        })
        .await
    }

    /// A `/v1` token (audience `auth`) for `user`, expiring at `expires`.
    fn sign_netsoc_auth(
        &self,
        signer: &crate::crypto::TokenSigner,
        user: &NetsocUser,
        expires: DateTime<Utc>,
    ) -> Result<String, IamError> {
        let now = Utc::now().timestamp();
        let claims = NetsocClaims {
            sub: user.number.to_string(),
            iat: now,
            nbf: now,
            exp: expires.timestamp(),
            iss: self.inner.settings.jwt_issuer.clone(),
            aud: vec![NETSOC_AUTH_AUDIENCE.to_owned()],
            is_admin: Some(user.is_admin),
            version: user.account_version,
            jti: None,
        };
        signer.sign_netsoc(&claims).map_err(|e| {
            tracing::error!(error = %e, "signing a /v1 token failed");
            IamError::internal()
        })
    }

    /// Netsoc's `POST /v1/users/{u}/token` by a valid admin: a token for `username` living
    /// `lifetime`, recorded as a `token.issued` event (never the token).
    pub async fn netsoc_issue_token(
        &self,
        caller: &NetsocCaller,
        workspace: &str,
        username: &str,
        lifetime: chrono::Duration,
        metadata: Metadata,
    ) -> Result<String, IamError> {
        let user = self.netsoc_user_by_name(workspace, username).await?.ok_or_else(not_found)?;
        let signer = self.inner.signer.get(&self.inner.queries).await?;
        let expires = Utc::now()
            .checked_add_signed(lifetime)
            .ok_or_else(|| IamError::invalid("duration is too long"))?;
        let token = self.sign_netsoc_auth(&signer, &user, expires)?;
        let command = WorkspaceCommand::RecordIssuedToken {
            user_id: user.user_id,
            token_id: uuid::Uuid::new_v4().to_string(),
            expires,
        };
        let metadata = Metadata { actor: caller.user.user_id.clone(), ..metadata };
        self.command(workspace, command, admin_ctx(metadata)).await?;
        Ok(token)
    }

    /// A verification (`PATCH /v1/users/{u}/login` without a token) or reset (`PUT`) mail
    /// for `user`, carrying a `/v1` email token (a link with `link`).
    pub async fn netsoc_mail(
        &self,
        user: &NetsocUser,
        purpose: MailPurpose,
        link: bool,
        metadata: Metadata,
    ) -> Result<(), IamError> {
        self.mail_ready()?;
        let record = self.inner.queries.user(&user.user_id).await?.ok_or_else(not_found)?;
        self.mail_token(&record, user.account_version, purpose, link, Some(user.number), metadata).await
    }

    /// Verifies the email of an email token's holder (the token works once).
    pub async fn netsoc_verify(
        &self,
        workspace: &str,
        holder: &EmailTokenHolder,
        metadata: Metadata,
    ) -> Result<(), IamError> {
        let command = WorkspaceCommand::VerifyEmail {
            user_id: holder.user.user_id.clone(),
            token_version: holder.version,
        };
        let metadata = Metadata { actor: holder.user.user_id.clone(), ..metadata };
        self.command(workspace, command, admin_ctx(metadata)).await.map(drop).map_err(stale_token)
    }

    /// Sets a reset token holder's new password (Netsoc's 8–128 rule and the policy apply).
    pub async fn netsoc_reset(
        &self,
        workspace: &str,
        holder: &EmailTokenHolder,
        password: String,
        metadata: Metadata,
    ) -> Result<(), IamError> {
        self.netsoc_password_rules(&password, &holder.user.username)?;
        let new_hash = self.inner.hasher.hash(password).await?;
        let command = WorkspaceCommand::CompletePasswordReset {
            user_id: holder.user.user_id.clone(),
            token_version: holder.version,
            new_hash,
        };
        let metadata = Metadata { actor: holder.user.user_id.clone(), ..metadata };
        self.command(workspace, command, admin_ctx(metadata)).await.map(drop).map_err(stale_token)
    }

    /// Sets `user`'s password without the current one (a `/v1` PATCH by the user or an
    /// admin): every earlier token dies.
    pub async fn netsoc_set_password(
        &self,
        caller: &NetsocCaller,
        workspace: &str,
        user: &NetsocUser,
        password: String,
        metadata: Metadata,
    ) -> Result<(), IamError> {
        self.netsoc_password_rules(&password, &user.username)?;
        let new_hash = self.inner.hasher.hash(password).await?;
        let command = WorkspaceCommand::SetPassword { user_id: user.user_id.clone(), new_hash };
        let metadata = Metadata { actor: caller.user.user_id.clone(), ..metadata };
        self.command(workspace, command, admin_ctx(metadata)).await.map(drop)
    }

    /// Netsoc's 8–128 rule, then iamd's policy (`password.*`); both refusals are 400.
    pub fn netsoc_password_rules(&self, password: &str, username: &str) -> Result<(), IamError> {
        password_length(password)?;
        self.inner.settings.policy.check(password, username).map_err(|e| IamError::invalid(e.message))
    }

    /// Netsoc's rule for what a non-admin may write (sign-up, or a change of its own
    /// account): no `verified`, `is_admin` or `renewed`, an email `accounts.email_pattern`
    /// accepts (403 `only admin users…`), no reserved username (403, Netsoc's text).
    pub fn netsoc_non_admin_ok(&self, username: &str, email: &str, privileged: bool) -> Result<(), IamError> {
        let rules = &self.inner.settings.accounts;
        let refused_email =
            !email.is_empty() && rules.email_pattern.as_ref().is_some_and(|p| !p.is_match(email));
        if privileged || refused_email {
            return Err(status(ErrorKind::OperationNotPermitted, text::ADMIN_REQUIRED));
        }
        if rules.check(username, "").is_err() {
            return Err(status(ErrorKind::OperationNotPermitted, text::RESERVED));
        }
        Ok(())
    }
}

/// A command the `/v1` adapter has authorised already.
fn admin_ctx(metadata: Metadata) -> Ctx {
    Ctx { metadata, idempotency: None, key_owner: None, writer: AccountWriter::Admin }
}

/// An email token whose command was refused: it was used already (the version moved on).
fn stale_token(e: IamError) -> IamError {
    match e.kind {
        ErrorKind::InternalError => e,
        _ => unauthorized(text::TOKEN_EXPIRED),
    }
}
