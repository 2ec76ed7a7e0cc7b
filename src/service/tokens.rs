//! TrustGraph's token operations beyond the seed: `authenticate-anonymous`, which iamd always
//! refuses (and records), and `mint-token`, by which an admin issues a token for a user to act
//! in a workspace with a caller-supplied `user_context` claim. A minted token is an ordinary
//! iamd JWT (EdDSA, `kid`, the user's account version), so JWKS, the gateway and iamd itself
//! verify it, and a password change or a disable kills it; its issue is a `token.minted`
//! event in the user's workspace stream (the token itself is never stored). And Netsoc's
//! `issue-token`: a long-lived token an admin issues for a service account (`token.issued`).

use super::{Ctx, Service};
use crate::authn_audit::{Attempt, AuthOperation, CredentialKind, Origin, Reason};
use crate::crypto::Claims;
use crate::domain::iso;
use crate::domain::workspace::WorkspaceCommand;
use crate::protocol::{IamError, IamRequest, IamResponse};
use chrono::Utc;

/// Largest accepted `user_context_json`: it travels in every request the token makes.
pub const MAX_USER_CONTEXT_BYTES: usize = 8 * 1024;

impl Service {
    /// Always `auth-failed`: iamd grants no anonymous access. Each refusal is recorded in the
    /// authentication audit, with the client address and request id the gateway reported.
    pub(super) fn authenticate_anonymous(
        &self,
        req: &IamRequest,
        origin: &Origin,
    ) -> Result<IamResponse, IamError> {
        let mut attempt = Attempt::new(
            AuthOperation::AuthenticateAnonymous,
            CredentialKind::Anonymous,
            origin,
            &req.request_id,
        );
        attempt.reason = Reason::AnonymousRefused;
        self.inner.authentications.record(attempt);
        Err(IamError::auth_failed())
    }

    /// mint-token, with upstream's argument rules: `workspace` and `user_context_json` are
    /// required; the user is `user_id` or `username` (not both), else the caller (`actor`);
    /// an unknown user is `not-found`, a disabled one `operation-not-permitted`; a missing or
    /// disabled workspace is `not-found`.
    pub(super) async fn mint_token(&self, req: IamRequest, ctx: Ctx) -> Result<IamResponse, IamError> {
        if req.workspace.is_empty() {
            return Err(IamError::invalid("workspace is required"));
        }
        if req.user_context_json.is_empty() {
            return Err(IamError::invalid("user_context_json is required"));
        }
        if !req.user_id.is_empty() && !req.username.is_empty() {
            return Err(IamError::invalid("give user_id or username, not both"));
        }
        let found = if !req.username.is_empty() {
            self.inner.queries.credentials_by_username(&req.username).await?
        } else {
            let id = if req.user_id.is_empty() { &req.actor } else { &req.user_id };
            if id.is_empty() {
                return Err(IamError::invalid("user_id, username or actor (the caller itself) is required"));
            }
            self.inner.queries.credentials_by_id(id).await?
        };
        let user = found.ok_or_else(|| IamError::not_found("user not found"))?;
        if !user.usable {
            return Err(IamError::not_permitted("user is disabled"));
        }
        if req.user_context_json.len() > MAX_USER_CONTEXT_BYTES {
            return Err(IamError::invalid(format!(
                "user_context_json is larger than {MAX_USER_CONTEXT_BYTES} bytes"
            )));
        }
        let user_context: serde_json::Value = serde_json::from_str(&req.user_context_json)
            .map_err(|_| IamError::invalid("user_context_json is not valid JSON"))?;
        // The event's jsonb cannot hold a NUL character.
        if user_context.to_string().contains("\\u0000") {
            return Err(IamError::invalid("user_context_json contains a NUL character"));
        }
        match self.inner.queries.workspace(&req.workspace).await? {
            Some(ws) if ws.enabled => {}
            _ => return Err(IamError::not_found("workspace not found or disabled")),
        }
        let signer = self.inner.signer.get(&self.inner.queries).await?;
        let now = Utc::now();
        let expires = now + self.inner.settings.jwt_ttl;
        let token_id = uuid::Uuid::new_v4().to_string();
        let mut claims = Claims::new(
            &self.inner.settings.jwt_issuer,
            &user.record.id,
            &req.workspace,
            user.record.roles.clone(),
            user.account_version,
            now.timestamp(),
            expires.timestamp(),
        );
        claims.user_context = Some(user_context.clone());
        claims.jti = Some(token_id.clone());
        let jwt = signer.sign(&claims).map_err(|e| {
            tracing::error!(error = %e, "signing a token failed");
            IamError::internal()
        })?;
        let command = WorkspaceCommand::RecordMintedToken {
            user_id: user.record.id,
            workspace: req.workspace,
            token_id,
            expires,
            user_context,
        };
        // Each mint is its own issue: never answered from a dedupe record, which could not
        // hold the token.
        self.command(&user.record.workspace, command, Ctx { idempotency: None, ..ctx }).await?;
        Ok(IamResponse { jwt, jwt_expires: iso(expires), ..Default::default() })
    }

    /// issue-token (Netsoc's `POST /v1/users/{u}/token`): a token for `user_id` living
    /// `duration` (Go's syntax, parsed before the user is looked up), from a second up to
    /// 876,000 hours, bound to the user's account version (a logout everywhere, a password
    /// change or a disable kills it), acting in the user's own workspace. Recorded as a
    /// `token.issued` event; the token itself is never stored.
    pub(super) async fn issue_token(&self, req: IamRequest, ctx: Ctx) -> Result<IamResponse, IamError> {
        let lifetime = crate::protocol::time::go_duration(req.duration.trim())
            .map_err(|e| IamError::invalid(format!("duration: {e}")))?;
        if lifetime < chrono::Duration::seconds(1)
            || lifetime.num_seconds() > crate::crypto::signing::MAX_ISSUED_LIFETIME_SECONDS
        {
            return Err(IamError::invalid("duration must be between 1s and 876000h"));
        }
        let user_id = super::required("user_id", &req.user_id)?;
        let user = self
            .inner
            .queries
            .credentials_by_id(user_id)
            .await?
            .ok_or_else(|| IamError::not_found("user not found"))?;
        if !req.workspace.is_empty() && user.record.workspace != req.workspace {
            return Err(IamError::not_permitted("the user belongs to another workspace"));
        }
        if !user.usable {
            return Err(IamError::not_permitted("user is disabled"));
        }
        let signer = self.inner.signer.get(&self.inner.queries).await?;
        let now = Utc::now();
        let expires = now + lifetime;
        let token_id = uuid::Uuid::new_v4().to_string();
        let mut claims = Claims::new(
            &self.inner.settings.jwt_issuer,
            &user.record.id,
            &user.record.workspace,
            user.record.roles.clone(),
            user.account_version,
            now.timestamp(),
            expires.timestamp(),
        );
        claims.jti = Some(token_id.clone());
        claims.token_use = Some(crate::crypto::signing::ISSUED.to_owned());
        let jwt = signer.sign(&claims).map_err(|e| {
            tracing::error!(error = %e, "signing a token failed");
            IamError::internal()
        })?;
        let command = WorkspaceCommand::RecordIssuedToken { user_id: user.record.id, token_id, expires };
        // Each issue is its own: never answered from a dedupe record, which could not hold
        // the token.
        self.command(&user.record.workspace, command, Ctx { idempotency: None, ..ctx }).await?;
        Ok(IamResponse { jwt, jwt_expires: iso(expires), ..Default::default() })
    }
}
