//! What ma1sd's REST identity store asks of the accounts of one workspace (`compat.workspace`):
//! Matrix logins, the user directory and 3PID (email) lookups. Only verified, enabled accounts
//! are found; a Matrix login also needs the renewal not to have lapsed (when
//! `accounts.renewal_validity` is set) and the right password, checked like any login
//! (argon2 on the hashing pool, a dummy hash when no account was found) and recorded in the
//! authentication audit as `matrix-login`.

use super::Service;
use crate::authn_audit::{clip, Attempt, AuthOperation, CredentialKind, Origin, Reason};
use crate::crypto::password::MAX_PASSWORD_BYTES;
use crate::protocol::IamError;
use chrono::Utc;

/// Most directory results in one answer (`limited` says when there were more).
pub const DIRECTORY_LIMIT: i64 = 50;

/// A Matrix identity of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixIdentity {
    /// The lower-cased username: the Matrix localpart.
    pub localpart: String,
    /// "First Last", else the account's name.
    pub display_name: String,
    pub email: String,
}

/// How a Matrix login ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatrixLogin {
    Accepted(MatrixIdentity),
    /// No account of that localpart in the workspace.
    Unknown,
    /// The account may not log in: unverified, renewal lapsed, disabled, or a wrong password.
    Refused,
}

/// Which directory search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchBy {
    /// A substring of "first last".
    Name,
    /// A substring of the email.
    Email,
}

const SEARCH_NAME: &str = "SELECT username, name, first_name, last_name, email FROM users \
    WHERE workspace = $1 AND verified AND enabled \
    AND strpos(lower(first_name || ' ' || last_name), lower($2)) > 0 ORDER BY username LIMIT $3";
const SEARCH_EMAIL: &str = "SELECT username, name, first_name, last_name, email FROM users \
    WHERE workspace = $1 AND verified AND enabled AND email <> '' \
    AND strpos(lower(email), lower($2)) > 0 ORDER BY username LIMIT $3";
const BY_EMAIL: &str = "SELECT username, name, first_name, last_name, email FROM users \
    WHERE workspace = $1 AND verified AND enabled AND lower(email) = lower($2)";

fn identity(username: &str, name: &str, first: &str, last: &str, email: &str) -> MatrixIdentity {
    let full = format!("{first} {last}").trim().to_owned();
    MatrixIdentity {
        localpart: username.to_lowercase(),
        display_name: if full.is_empty() { name.to_owned() } else { full },
        email: email.to_owned(),
    }
}

fn from_row(r: &tokio_postgres::Row) -> MatrixIdentity {
    identity(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
}

impl Service {
    /// A Matrix login of `localpart` in `workspace` with `password`, from ma1sd.
    pub async fn matrix_login(
        &self,
        workspace: &str,
        localpart: &str,
        password: String,
        origin: &Origin,
    ) -> Result<MatrixLogin, IamError> {
        let mut attempt = Attempt::new(AuthOperation::MatrixLogin, CredentialKind::Password, origin, "");
        attempt.workspace = clip(workspace);
        self.checked(attempt, async |attempt| {
            let found = match localpart.len() {
                1..=super::MAX_ID_FIELD => self.inner.queries.credentials_by_username(localpart).await?,
                _ => None,
            };
            let found = found.filter(|c| c.record.workspace == workspace);
            let hash = found.as_ref().and_then(|c| c.password_hash.clone());
            let (old_hash, legacy) =
                (hash.clone(), super::credentials::legacy_password(hash.as_deref(), &password));
            let long = password.len() > MAX_PASSWORD_BYTES;
            let matches = !long && !password.is_empty() && self.inner.hasher.verify(hash, password).await;
            let Some(user) = found else {
                attempt.reason = Reason::UnknownUser;
                attempt.username_digest =
                    Some(crate::authn_audit::username_digest(&self.inner.digest_key, localpart));
                return Ok(MatrixLogin::Unknown);
            };
            attempt.user_id = Some(user.record.id.clone());
            attempt.username = clip(&user.record.username);
            let lapsed = self
                .inner
                .settings
                .renewal_validity
                .is_some_and(|validity| user.renewal_expiry(validity) <= Utc::now());
            attempt.reason = if !user.record.verified {
                Reason::Unverified
            } else if lapsed {
                Reason::RenewalLapsed
            } else if !user.usable {
                Reason::Disabled
            } else if user.password_hash.is_none() {
                Reason::NoPassword
            } else if !matches {
                Reason::BadPassword
            } else {
                Reason::Ok
            };
            if attempt.reason != Reason::Ok {
                return Ok(MatrixLogin::Refused);
            }
            self.upgrade_hash(&user.record.id, workspace, old_hash, legacy).await;
            let r = &user.record;
            Ok(MatrixLogin::Accepted(identity(&r.username, &r.name, &r.first_name, &r.last_name, &r.email)))
        })
        .await
    }

    /// The verified, enabled accounts of `workspace` whose name or email holds `term`
    /// (case-insensitively), at most [`DIRECTORY_LIMIT`]; and whether there were more.
    pub async fn directory_search(
        &self,
        workspace: &str,
        by: SearchBy,
        term: &str,
    ) -> Result<(Vec<MatrixIdentity>, bool), IamError> {
        let sql = match by {
            SearchBy::Name => SEARCH_NAME,
            SearchBy::Email => SEARCH_EMAIL,
        };
        let rows =
            self.inner.queries.rows("directory", sql, &[&workspace, &term, &(DIRECTORY_LIMIT + 1)]).await?;
        let limited = rows.len() as i64 > DIRECTORY_LIMIT;
        Ok((rows.iter().take(DIRECTORY_LIMIT as usize).map(from_row).collect(), limited))
    }

    /// The verified, enabled account of `workspace` with email `address` (compared
    /// case-insensitively).
    pub async fn identity_by_email(
        &self,
        workspace: &str,
        address: &str,
    ) -> Result<Option<MatrixIdentity>, IamError> {
        let rows = self.inner.queries.rows("identity_by_email", BY_EMAIL, &[&workspace, &address]).await?;
        Ok(rows.first().map(from_row))
    }

    /// The verified, enabled account of `workspace` whose username is `localpart`.
    pub async fn identity_by_localpart(
        &self,
        workspace: &str,
        localpart: &str,
    ) -> Result<Option<MatrixIdentity>, IamError> {
        if localpart.is_empty() || localpart.len() > super::MAX_ID_FIELD {
            return Ok(None);
        }
        let found = self.inner.queries.credentials_by_username(localpart).await?;
        Ok(found.filter(|c| c.record.workspace == workspace && c.record.verified && c.usable).map(|c| {
            let r = &c.record;
            identity(&r.username, &r.name, &r.first_name, &r.last_name, &r.email)
        }))
    }
}
