//! The credential operations: login, resolve-api-key, change-password, reset-password.
//! Every authentication failure is the one `auth-failed` bucket, and login and
//! change-password verify a password (a dummy hash for unknown users) on every path, so
//! neither the answer nor its timing tells whether a user exists.

use super::queries::ResolvedKey;
use super::{required, Ctx, Service};
use crate::crypto::api_key::{API_KEY_PREFIX, MAX_API_KEY_LEN};
use crate::crypto::password::{random_password, MAX_PASSWORD_BYTES};
use crate::crypto::{ApiKeyHash, Claims};
use crate::domain::iso;
use crate::domain::workspace::WorkspaceCommand;
use crate::protocol::{IamError, IamRequest, IamResponse};
use chrono::Utc;
use std::time::{Duration, Instant};

/// `last_used` is written at most once per key per interval per process.
pub const LAST_USED_INTERVAL: Duration = Duration::from_secs(60);

impl Service {
    pub(super) async fn login(&self, req: IamRequest) -> Result<IamResponse, IamError> {
        if req.username.is_empty() || req.password.is_empty() || req.password.len() > MAX_PASSWORD_BYTES {
            return Err(IamError::auth_failed());
        }
        let found = self.inner.queries.credentials_by_username(&req.username).await?;
        let eligible = found
            .as_ref()
            .is_some_and(|c| c.usable && (req.workspace.is_empty() || req.workspace == c.record.workspace));
        let hash = found.as_ref().and_then(|c| c.password_hash.clone());
        let verified = self.inner.hasher.verify(hash, req.password).await;
        let user = match found {
            Some(user) if verified && eligible => user,
            _ => return Err(IamError::auth_failed()),
        };
        let signer = self.inner.signer.get(&self.inner.queries).await?;
        let now = Utc::now();
        let expires = now + self.inner.settings.jwt_ttl;
        let claims = Claims {
            iss: self.inner.settings.jwt_issuer.clone(),
            sub: user.record.id.clone(),
            workspace: user.record.workspace.clone(),
            is_admin: user.record.roles.iter().any(|r| r == "admin"),
            roles: user.record.roles,
            version: user.account_version,
            iat: now.timestamp(),
            exp: expires.timestamp(),
        };
        let jwt = signer.sign(&claims).map_err(|e| {
            tracing::error!(error = %e, "signing a token failed");
            IamError::internal()
        })?;
        Ok(IamResponse { jwt, jwt_expires: iso(expires), ..Default::default() })
    }

    pub(super) async fn resolve_api_key(&self, req: IamRequest) -> Result<IamResponse, IamError> {
        match self.usable_key(&req.api_key).await? {
            Some(k) => Ok(IamResponse {
                resolved_user_id: k.user_id,
                resolved_workspace: k.workspace,
                resolved_roles: k.roles,
                ..Default::default()
            }),
            None => Err(IamError::auth_failed()),
        }
    }

    /// The key behind a plaintext when it may be used now (known, unexpired, owner and
    /// workspace enabled); `None` otherwise, whatever the reason.
    pub(super) async fn usable_key(&self, key: &str) -> Result<Option<ResolvedKey>, IamError> {
        if key.len() > MAX_API_KEY_LEN || !key.starts_with(API_KEY_PREFIX) {
            return Ok(None);
        }
        let hash = ApiKeyHash::of(key);
        let now = Utc::now();
        match self.inner.queries.resolve_key(&hash.0).await? {
            Some(k) if k.usable && k.expires.is_none_or(|e| e > now) => {
                self.touch(&k.key_id);
                Ok(Some(k))
            }
            _ => Ok(None),
        }
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
