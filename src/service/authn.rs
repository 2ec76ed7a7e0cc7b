//! Who is calling: a bearer credential — an API key (`tg_…`) or a JWT — becomes a
//! [`Principal`], or nothing. A JWT must be EdDSA, signed by the active key or one still in
//! its grace period (chosen by `kid`), unexpired, issued by us, not issued nor valid only in the
//! future, living no longer than `jwt.ttl`, and carry the user's current
//! account version; the user and its workspace must be enabled. Roles always come from the
//! read tables, never from the token, so a role change or a disable takes effect at once.

use super::{Caller, Refusal, Service};
use crate::authn_audit::{clip, Attempt, AuthOperation, CredentialKind, Origin, Reason};
use crate::crypto::api_key::API_KEY_PREFIX;
use crate::domain::iso;
use crate::protocol::{IamError, IamRequest, IamResponse};
use chrono::Utc;
use std::time::{Duration, Instant};

/// How often an unknown `kid` may trigger a reload of the signing keys (a rotation made by
/// another process), so that garbage tokens cannot turn into a database load.
const UNKNOWN_KID_RELOAD: Duration = Duration::from_secs(5);

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    ApiKey {
        key_id: String,
    },
    /// A JWT: its signing key, and its `iat`, `exp` and `iss` (what introspection tells).
    Jwt {
        kid: String,
        issued: i64,
        expires: i64,
        issuer: String,
    },
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    /// The user's own workspace.
    pub workspace: String,
    pub roles: Vec<String>,
    pub credential: Credential,
    /// A login token of a user who must change its password (after reset-password, or as
    /// created): it may only change that password and read itself. API keys are not held to
    /// it: they were issued for automation, not typed.
    pub password_change_required: bool,
    /// A renewal token past its expiry (`accounts.renewal_validity`): its user may read,
    /// update and delete its own account and log out, nothing else.
    pub lapsed: bool,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == crate::authz::ADMIN_ROLE)
    }
}

impl Service {
    /// The principal behind a bearer token from `origin`, or `None` for anything that does
    /// not prove a usable identity; database trouble is an error, not a denial. A failure (or
    /// an error) is recorded in the authentication audit as `http-bearer`; a success is not —
    /// every authenticated call would be one.
    pub async fn authenticate_from(
        &self,
        token: &str,
        origin: &Origin,
    ) -> Result<Option<Principal>, IamError> {
        let api_key = token.starts_with(API_KEY_PREFIX);
        let credential = if api_key { CredentialKind::ApiKey } else { CredentialKind::Jwt };
        let attempt = Attempt::new(AuthOperation::HttpBearer, credential, origin, "");
        self.authenticate_recorded(token, attempt, true).await
    }

    /// The principal behind `token` with a refusal (or an error) recorded in the
    /// authentication audit as `attempt`. A `bearer` (a caller's own credential) may be an API
    /// key or a lapsed renewal token; a token a service checks is neither.
    async fn authenticate_recorded(
        &self,
        token: &str,
        mut attempt: Attempt,
        bearer: bool,
    ) -> Result<Option<Principal>, IamError> {
        let result = if token.starts_with(API_KEY_PREFIX) && bearer {
            self.authenticate_api_key(token, &mut attempt).await
        } else if !token.starts_with(API_KEY_PREFIX) && token.bytes().filter(|b| *b == b'.').count() == 2 {
            self.authenticate_jwt(token, &mut attempt, bearer).await
        } else {
            attempt.reason = Reason::Malformed;
            Ok(None)
        };
        if !matches!(result, Ok(Some(_))) {
            self.inner.authentications.record(attempt);
        }
        result
    }

    /// The principal behind a JWT iamd issued (never an API key) that is good now: its
    /// signature and `iss`, its `exp`, the account's current version, the user and its
    /// workspace enabled. A refusal is recorded in the authentication audit as `operation`.
    async fn token_principal(
        &self,
        token: &str,
        origin: &Origin,
        operation: AuthOperation,
        request_id: &str,
    ) -> Result<Option<Principal>, IamError> {
        let attempt = Attempt::new(operation, CredentialKind::Jwt, origin, request_id);
        self.authenticate_recorded(token, attempt, false).await
    }

    /// validate-token, for services: the account behind a good JWT (see
    /// [`Service::token_principal`]) — the user, its workspace and roles and whether it is an
    /// admin, all read from the account, never from the token — and when the token expires.
    /// Anything else is the one `auth-failed`.
    pub(super) async fn validate_token(
        &self,
        req: &IamRequest,
        origin: &Origin,
    ) -> Result<IamResponse, IamError> {
        let token = super::required("token", &req.token)?;
        let principal = self
            .token_principal(token, origin, AuthOperation::ValidateToken, &req.request_id)
            .await?
            .ok_or_else(IamError::auth_failed)?;
        let expires = match &principal.credential {
            Credential::Jwt { expires, .. } => chrono::DateTime::from_timestamp(*expires, 0).map(iso),
            Credential::ApiKey { .. } => None,
        };
        let is_admin = principal.is_admin();
        let renewal_lapsed = match self.inner.settings.renewal_validity {
            Some(validity) => self
                .inner
                .queries
                .credentials_by_id(&principal.user_id)
                .await?
                .is_some_and(|c| c.renewal_expiry(validity) <= Utc::now()),
            None => false,
        };
        Ok(IamResponse {
            resolved_is_admin: is_admin,
            resolved_renewal_lapsed: renewal_lapsed,
            jwt_expires: expires.unwrap_or_default(),
            ..IamResponse::resolved(principal.user_id, principal.workspace, principal.roles)
        })
    }

    /// RFC 7662 token introspection for `caller` (a user, or the gateway: any authenticated
    /// caller; the holder of a token learns nothing it could not read from it): the principal
    /// behind `token` when it is good now, `None` (inactive) otherwise.
    pub async fn introspect(
        &self,
        caller: &Caller,
        token: &str,
        origin: &Origin,
    ) -> Result<Option<Principal>, super::observe::ReadFailure> {
        use super::observe::ReadFailure;
        if matches!(caller, Caller::Anonymous) {
            return Err(ReadFailure::Refused(Refusal::Unauthenticated));
        }
        if token.len() > super::MAX_TOKEN || token.contains('\0') {
            return Ok(None);
        }
        self.token_principal(token, origin, AuthOperation::Introspect, "")
            .await
            .map_err(ReadFailure::Unavailable)
    }

    async fn authenticate_api_key(
        &self,
        token: &str,
        attempt: &mut Attempt,
    ) -> Result<Option<Principal>, IamError> {
        Ok(self.usable_key(token, attempt).await?.map(|k| Principal {
            user_id: k.user_id,
            workspace: k.workspace,
            roles: k.roles,
            credential: Credential::ApiKey { key_id: k.key_id },
            password_change_required: false,
            lapsed: false,
        }))
    }

    /// `lapsed_allowed`: whether a renewal token past its expiry is a (lapsed) principal;
    /// token checks for services never take one.
    async fn authenticate_jwt(
        &self,
        token: &str,
        attempt: &mut Attempt,
        lapsed_allowed: bool,
    ) -> Result<Option<Principal>, IamError> {
        let issuer = &self.inner.settings.jwt_issuer;
        let now = Utc::now();
        let mut signer = self.inner.signer.get(&self.inner.queries).await?;
        let refuse = |attempt: &mut Attempt, reason| {
            attempt.reason = reason;
            Ok(None)
        };
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return refuse(attempt, Reason::Malformed);
        };
        let Some(kid) = header.kid else { return refuse(attempt, Reason::Malformed) };
        if !signer.knows(&kid) && self.may_reload_for_unknown_kid() {
            signer = self.inner.signer.reload(&self.inner.queries).await?;
        }
        if !signer.knows(&kid) {
            return refuse(attempt, Reason::UnknownSigningKey);
        }
        let Some(claims) = signer.verify_signed(token, issuer, now, None) else {
            return refuse(attempt, Reason::InvalidToken);
        };
        // Past its expiry, only a renewal token (while renewal is on) is still anything: its
        // user's hold on its own account ([`Principal::lapsed`]).
        let lapsed = claims.exp <= now.timestamp();
        let renewal = claims.token_use.as_deref() == Some(crate::crypto::signing::RENEWAL)
            && self.inner.settings.renewal_validity.is_some();
        if lapsed && !(renewal && lapsed_allowed) {
            return refuse(attempt, Reason::InvalidToken);
        }
        let max_lifetime = claims.max_lifetime(self.inner.settings.jwt_ttl.num_seconds());
        if claims.sub.is_empty() || !claims.times_plausible(now.timestamp(), max_lifetime) {
            return refuse(attempt, Reason::InvalidToken);
        }
        attempt.user_id = clip(&claims.sub);
        attempt.workspace = clip(&claims.workspace);
        let Some(user) = self.inner.queries.credentials_by_id(&claims.sub).await? else {
            return refuse(attempt, Reason::UnknownUser);
        };
        if !user.usable {
            return refuse(attempt, Reason::Disabled);
        }
        if user.account_version != claims.version {
            return refuse(attempt, Reason::StaleToken);
        }
        attempt.reason = Reason::Ok;
        Ok(Some(Principal {
            password_change_required: user.record.must_change_password,
            user_id: user.record.id,
            workspace: user.record.workspace,
            roles: user.record.roles,
            credential: Credential::Jwt { kid, issued: claims.iat, expires: claims.exp, issuer: claims.iss },
            lapsed,
        }))
    }

    /// True at most once per [`UNKNOWN_KID_RELOAD`].
    pub(super) fn may_reload_for_unknown_kid(&self) -> bool {
        let mut last = self.inner.unknown_kid_reload.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|at| at.elapsed() < UNKNOWN_KID_RELOAD) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}
