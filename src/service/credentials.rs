//! The credential operations: login, resolve-api-key, change-password, reset-password.
//! Every authentication failure is the one `auth-failed` bucket, and login and
//! change-password verify a password (a dummy hash for unknown users) on every path, so
//! neither the answer nor its timing tells whether a user exists.

use super::queries::ResolvedKey;
use super::{required, Ctx, Service};
use crate::authn_audit::{clip, username_digest, Attempt, AuthOperation, CredentialKind, Origin, Reason};
use crate::crypto::api_key::{API_KEY_PREFIX, MAX_API_KEY_LEN};
use crate::crypto::password::{random_password, MAX_PASSWORD_BYTES};
use crate::crypto::signing::RENEWAL;
use crate::crypto::{ApiKeyHash, Claims};
use crate::domain::iso;
use crate::domain::workspace::WorkspaceCommand;
use crate::protocol::{IamError, IamRequest, IamResponse, Operation};
use chrono::Utc;
use std::time::{Duration, Instant};

/// `last_used` is written at most once per key per interval per process.
pub const LAST_USED_INTERVAL: Duration = Duration::from_secs(60);

/// The typed password when `hash` is of an older scheme (an imported bcrypt hash), for
/// [`Service::upgrade_hash`] once the login succeeds.
pub(super) fn legacy_password(hash: Option<&str>, password: &str) -> Option<String> {
    hash.is_some_and(crate::crypto::password::is_legacy).then(|| password.to_owned())
}

impl Service {
    /// After a successful login with a hash of an older scheme (`password` from
    /// [`legacy_password`]): the same password as argon2id, recorded as
    /// `user.password.rehashed` (no session ends). A failure is logged; the login stands.
    pub(super) async fn upgrade_hash(
        &self,
        user_id: &str,
        workspace: &str,
        old_hash: Option<String>,
        password: Option<String>,
    ) {
        let (Some(old_hash), Some(password)) = (old_hash, password) else { return };
        let new_hash = match self.inner.hasher.hash(password).await {
            Ok(h) => h,
            Err(_) => return,
        };
        let command = WorkspaceCommand::RehashPassword { user_id: user_id.to_owned(), old_hash, new_hash };
        let metadata = crate::events::Metadata {
            actor: user_id.to_owned(),
            request_id: String::new(),
            source: "system".into(),
            operation: "rehash-password".into(),
        };
        let ctx = Ctx {
            metadata,
            idempotency: None,
            key_owner: None,
            writer: super::accounts::AccountWriter::Admin,
        };
        if let Err(e) = self.command(workspace, command, ctx).await {
            tracing::warn!(%user_id, error = %e.kind.as_str(), "upgrading a password hash to argon2id failed");
        }
    }

    /// Login, recorded in the authentication audit whatever its outcome.
    pub(super) async fn login(&self, req: IamRequest, origin: &Origin) -> Result<IamResponse, IamError> {
        let mut attempt =
            Attempt::new(AuthOperation::Login, CredentialKind::Password, origin, &req.request_id);
        attempt.workspace = clip(&req.workspace);
        self.checked(attempt, async |attempt| self.decide_login(req, attempt).await).await
    }

    /// Login's decision; `attempt` learns why (the caller only ever learns auth-failed).
    async fn decide_login(&self, req: IamRequest, attempt: &mut Attempt) -> Result<IamResponse, IamError> {
        if req.username.is_empty() || req.password.is_empty() || req.password.len() > MAX_PASSWORD_BYTES {
            attempt.reason = Reason::Malformed;
            attempt.username_digest = self.username_digest(&req.username);
            return Err(IamError::auth_failed());
        }
        let found = self.inner.queries.credentials_by_username(&req.username).await?;
        match &found {
            Some(c) => attempt.username = clip(&c.record.username),
            None => attempt.username_digest = self.username_digest(&req.username),
        }
        let eligible = found
            .as_ref()
            .is_some_and(|c| c.usable && (req.workspace.is_empty() || req.workspace == c.record.workspace));
        let hash = found.as_ref().and_then(|c| c.password_hash.clone());
        let legacy = legacy_password(hash.as_deref(), &req.password);
        let verified = self.inner.hasher.verify(hash, req.password).await;
        if let Some(c) = &found {
            attempt.user_id = Some(c.record.id.clone());
            attempt.workspace = Some(c.record.workspace.clone());
        }
        let user = match found {
            Some(user) if verified && eligible => user,
            found => {
                attempt.reason = match found {
                    None => Reason::UnknownUser,
                    Some(c) if c.password_hash.is_none() => Reason::NoPassword,
                    Some(_) if !verified => Reason::BadPassword,
                    Some(c) if !c.usable => Reason::Disabled,
                    Some(_) => Reason::WrongWorkspace,
                };
                return Err(IamError::auth_failed());
            }
        };
        self.upgrade_hash(&user.record.id, &user.record.workspace, user.password_hash.clone(), legacy).await;
        let signer = self.inner.signer.get(&self.inner.queries).await?;
        let now = Utc::now();
        // With renewal on, the account's renewal is the token's expiry, even one long past.
        let (expires, token_use) = match self.inner.settings.renewal_validity {
            Some(validity) => (user.renewal_expiry(validity), Some(RENEWAL.to_owned())),
            None => (now + self.inner.settings.jwt_ttl, None),
        };
        let claims = Claims {
            token_use,
            ..Claims::new(
                &self.inner.settings.jwt_issuer,
                &user.record.id,
                &user.record.workspace,
                user.record.roles,
                user.account_version,
                now.timestamp(),
                expires.timestamp(),
            )
        };
        let jwt = signer.sign(&claims).map_err(|e| {
            tracing::error!(error = %e, "signing a token failed");
            IamError::internal()
        })?;
        attempt.reason = Reason::Ok;
        Ok(IamResponse { jwt, jwt_expires: iso(expires), ..Default::default() })
    }

    /// resolve-api-key, recorded in the authentication audit whatever its outcome.
    pub(super) async fn resolve_api_key(
        &self,
        req: IamRequest,
        origin: &Origin,
    ) -> Result<IamResponse, IamError> {
        let mut attempt =
            Attempt::new(AuthOperation::ResolveApiKey, CredentialKind::ApiKey, origin, &req.request_id);
        let decided = self.usable_key(&req.api_key, &mut attempt).await;
        self.inner.authentications.record(attempt);
        match decided? {
            Some(k) => Ok(IamResponse::resolved(k.user_id, k.workspace, k.roles)),
            None => Err(IamError::auth_failed()),
        }
    }

    /// The key behind a plaintext when it may be used now (known, unexpired, owner and
    /// workspace enabled); `None` otherwise, whatever the reason — which `attempt` learns,
    /// with the key's id and owner when the key was found.
    pub(super) async fn usable_key(
        &self,
        key: &str,
        attempt: &mut Attempt,
    ) -> Result<Option<ResolvedKey>, IamError> {
        if key.len() > MAX_API_KEY_LEN || !key.starts_with(API_KEY_PREFIX) {
            attempt.reason = Reason::Malformed;
            return Ok(None);
        }
        let hash = ApiKeyHash::of(key);
        let now = Utc::now();
        let cache = self.inner.store.key_cache();
        let k = match cache.get(&hash.0) {
            Ok(k) => k,
            Err(ticket) => {
                let Some(k) = self.inner.queries.resolve_key(&hash.0).await? else {
                    attempt.reason = Reason::RevokedOrUnknown;
                    return Ok(None);
                };
                cache.put(ticket, &hash.0, &k);
                k
            }
        };
        attempt.key_id = Some(k.key_id.clone());
        attempt.user_id = Some(k.user_id.clone());
        attempt.workspace = Some(k.workspace.clone());
        attempt.reason = if k.expires.is_some_and(|e| e <= now) {
            Reason::Expired
        } else if !k.usable {
            Reason::Disabled
        } else {
            Reason::Ok
        };
        if attempt.reason != Reason::Ok {
            return Ok(None);
        }
        self.touch(&k.key_id);
        Ok(Some(k))
    }

    /// A login or resolve-api-key refused before any check (an oversized or NUL-holding
    /// field): recorded as `malformed`. Other operations record nothing.
    pub(super) fn record_malformed(&self, op: Operation, req: &IamRequest, origin: &Origin) {
        let (operation, credential) = match op {
            Operation::Login => (AuthOperation::Login, CredentialKind::Password),
            Operation::ResolveApiKey => (AuthOperation::ResolveApiKey, CredentialKind::ApiKey),
            _ => return,
        };
        let mut attempt = Attempt::new(operation, credential, origin, &req.request_id);
        attempt.reason = Reason::Malformed;
        if op == Operation::Login {
            attempt.username_digest = self.username_digest(&req.username);
            attempt.workspace = clip(&req.workspace);
        }
        self.inner.authentications.record(attempt);
    }

    /// What the authentication audit keeps of a name that found no user (it may be a password
    /// typed into the wrong field): its keyed digest. None for an empty name.
    pub(super) fn username_digest(&self, typed: &str) -> Option<String> {
        (!typed.is_empty()).then(|| username_digest(&self.inner.digest_key, typed))
    }

    /// Stamps a key's `last_used` in the background, at most once per interval.
    fn touch(&self, key_id: &str) {
        {
            let mut seen = self.inner.last_used.lock().unwrap_or_else(|p| p.into_inner());
            if seen.get(key_id).is_some_and(|at| at.elapsed() < LAST_USED_INTERVAL) {
                return;
            }
            seen.insert(key_id.to_owned(), Instant::now());
        }
        let queries = self.inner.queries.clone();
        let key_id = key_id.to_owned();
        tokio::spawn(async move {
            let _ = queries.touch_key(&key_id, Utc::now()).await;
        });
    }

    pub(super) async fn change_password(&self, req: IamRequest, ctx: Ctx) -> Result<IamResponse, IamError> {
        let user_id = required("user_id", &req.user_id)?;
        required("new_password", &req.new_password)?;
        if req.password.len() > MAX_PASSWORD_BYTES {
            return Err(IamError::auth_failed());
        }
        let found = self.inner.queries.credentials_by_id(user_id).await?;
        if let Some(c) = &found {
            if !req.workspace.is_empty() && req.workspace != c.record.workspace {
                return Err(IamError::not_permitted("the user belongs to another workspace"));
            }
        }
        let current_hash = found.as_ref().and_then(|c| c.password_hash.clone());
        let verified =
            !req.password.is_empty() && self.inner.hasher.verify(current_hash.clone(), req.password).await;
        let (user, current_hash) = match (found, current_hash) {
            (Some(user), Some(hash)) if verified && user.usable => (user, hash),
            _ => return Err(IamError::auth_failed()),
        };
        self.inner.settings.policy.check(&req.new_password, &user.record.username)?;
        let new_hash = self.inner.hasher.hash(req.new_password).await?;
        let command = WorkspaceCommand::ChangePassword {
            user_id: user.record.id.clone(),
            verified_hash: current_hash,
            new_hash,
        };
        self.command(&user.record.workspace, command, ctx).await
    }

    pub(super) async fn reset_password(&self, req: IamRequest, ctx: Ctx) -> Result<IamResponse, IamError> {
        let user = self.owned_user(&req.workspace, &req.user_id).await?;
        if !user.enabled {
            return Err(IamError::disabled("user is disabled"));
        }
        let temporary = random_password();
        let new_hash = self.inner.hasher.hash(temporary.clone()).await?;
        let command = WorkspaceCommand::ResetPassword { user_id: user.id, new_hash };
        let mut reply = self.command(&user.workspace, command, ctx).await?;
        if !reply.replayed {
            reply.temporary_password = temporary;
        }
        Ok(reply)
    }
}
