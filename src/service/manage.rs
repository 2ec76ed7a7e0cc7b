//! Management operations on users, workspaces and API keys. Reads come from the read tables;
//! writes are checked cheaply here (required fields, ownership, the target's existence) so a
//! bad request costs no argon2 work and starts no actor, then `decide` rules on them.

use super::page::Page;
use super::{required, Ctx, Service};
use crate::crypto::ApiKey;
use crate::domain::rules;
use crate::domain::workspace::WorkspaceCommand;
use crate::protocol::{IamError, IamRequest, IamResponse, WorkspaceRecord};
use chrono::{DateTime, Utc};

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Service {
    /// The workspace, which must exist.
    async fn existing_workspace(&self, id: &str) -> Result<WorkspaceRecord, IamError> {
        required("workspace", id)?;
        self.inner.queries.workspace(id).await?.ok_or_else(|| IamError::not_found("workspace not found"))
    }

    pub(super) async fn create_user(&self, req: IamRequest, ctx: Ctx) -> Result<IamResponse, IamError> {
        let ws = self.existing_workspace(&req.workspace).await?;
        let input = req.user.ok_or_else(|| IamError::invalid("user is required"))?;
        rules::username(&input.username)?;
        rules::max_len("user.name", &input.name, rules::MAX_NAME)?;
        rules::email(&input.email)?;
        let roles = rules::roles(input.roles.as_deref().unwrap_or_default())?;
        required("user.password", &input.password)?;
        self.inner.settings.policy.check(&input.password, &input.username)?;
        if !ws.enabled {
            return Err(IamError::disabled("workspace is disabled"));
        }
        let password_hash = self.inner.hasher.hash(input.password).await?;
        let command = WorkspaceCommand::CreateUser {
            user_id: new_id(),
            username: input.username,
            name: input.name,
            email: input.email,
            roles,
            enabled: input.enabled.unwrap_or(true),
            must_change_password: input.must_change_password.unwrap_or(false),
            password_hash,
        };
        self.command(&ws.id, command, ctx).await
    }

    pub(super) async fn list_users(&self, req: IamRequest) -> Result<IamResponse, IamError> {
        let ws = self.existing_workspace(&req.workspace).await?;
        let page = Page::from_request(req.limit, &req.cursor)?;
        let (users, next_cursor) = self.inner.queries.users(&ws.id, &page).await?;
        Ok(IamResponse { users, next_cursor, ..Default::default() })
    }

    pub(super) async fn get_user(&self, req: IamRequest) -> Result<IamResponse, IamError> {
        required("workspace", &req.workspace)?;
        let user = self.owned_user(&req.workspace, &req.user_id).await?;
        Ok(IamResponse { user: Some(user), ..Default::default() })
    }

    pub(super) async fn update_user(&self, req: IamRequest, ctx: Ctx) -> Result<IamResponse, IamError> {
        required("workspace", &req.workspace)?;
        let input = req.user.ok_or_else(|| IamError::invalid("user is required"))?;
        let user = self.owned_user(&req.workspace, &req.user_id).await?;
        let command = WorkspaceCommand::UpdateUser {
            user_id: user.id,
            username: Some(input.username).filter(|v| !v.is_empty()),
            name: Some(input.name).filter(|v| !v.is_empty()),
            email: Some(input.email).filter(|v| !v.is_empty()),
            roles: input.roles,
            enabled: input.enabled,
            must_change_password: input.must_change_password,
            password_given: !input.password.is_empty(),
        };
        self.command(&user.workspace, command, ctx).await
    }

    pub(super) async fn disable_user(&self, req: IamRequest, ctx: Ctx) -> Result<IamResponse, IamError> {
        required("workspace", &req.workspace)?;
        let user = self.owned_user(&req.workspace, &req.user_id).await?;
        self.command(&user.workspace, WorkspaceCommand::DisableUser { user_id: user.id }, ctx).await
    }

    /// Upstream's enable-user: `workspace`, when given, must own the user. Keys revoked by
    /// the disable stay revoked.
    pub(super) async fn enable_user(&self, req: IamRequest, ctx: Ctx) -> Result<IamResponse, IamError> {
        let user = self.owned_user(&req.workspace, &req.user_id).await?;
        self.command(&user.workspace, WorkspaceCommand::EnableUser { user_id: user.id }, ctx).await
    }

    /// Upstream's delete-user: a hard delete from the read tables (the log keeps the history);
    /// the user's keys are revoked and its username is free again.
    pub(super) async fn delete_user(&self, req: IamRequest, ctx: Ctx) -> Result<IamResponse, IamError> {
        let user = self.owned_user(&req.workspace, &req.user_id).await?;
        self.command(&user.workspace, WorkspaceCommand::DeleteUser { user_id: user.id }, ctx).await
    }

    /// The workspace id of a workspace operation: `workspace_record.id`, else `workspace`.
    fn workspace_id(req: &IamRequest) -> &str {
        match req.workspace_record.as_ref().map(|r| r.id.as_str()) {
            Some(id) if !id.is_empty() => id,
            _ => &req.workspace,
        }
    }

    pub(super) async fn create_workspace(&self, req: IamRequest, ctx: Ctx) -> Result<IamResponse, IamError> {
        let id = Self::workspace_id(&req).to_owned();
        rules::workspace_id(&id)?;
        let name = req.workspace_record.map(|r| r.name).unwrap_or_default();
        rules::max_len("workspace_record.name", &name, rules::MAX_NAME)?;
        if self.inner.queries.workspace(&id).await?.is_some() {
            return Err(IamError::duplicate("workspace already exists"));
        }
        self.command(&id, WorkspaceCommand::CreateWorkspace { name }, ctx).await
    }

    pub(super) async fn list_workspaces(&self, req: IamRequest) -> Result<IamResponse, IamError> {
        let page = Page::from_request(req.limit, &req.cursor)?;
        let (workspaces, next_cursor) = self.inner.queries.workspaces(&page).await?;
        Ok(IamResponse { workspaces, next_cursor, ..Default::default() })
    }

    pub(super) async fn get_workspace(&self, req: IamRequest) -> Result<IamResponse, IamError> {
        let ws = self.existing_workspace(Self::workspace_id(&req)).await?;
        Ok(IamResponse { workspace: Some(ws), ..Default::default() })
    }

    pub(super) async fn update_workspace(&self, req: IamRequest, ctx: Ctx) -> Result<IamResponse, IamError> {
        let ws = self.existing_workspace(Self::workspace_id(&req)).await?;
        let record = req.workspace_record.ok_or_else(|| IamError::invalid("workspace_record is required"))?;
        let command = WorkspaceCommand::UpdateWorkspace {
            name: Some(record.name).filter(|n| !n.is_empty()),
            enabled: record.enabled,
        };
        self.command(&ws.id, command, ctx).await
    }

    pub(super) async fn disable_workspace(&self, req: IamRequest, ctx: Ctx) -> Result<IamResponse, IamError> {
        let ws = self.existing_workspace(Self::workspace_id(&req)).await?;
        self.command(&ws.id, WorkspaceCommand::DisableWorkspace, ctx).await
    }

    pub(super) async fn create_api_key(&self, req: IamRequest, ctx: Ctx) -> Result<IamResponse, IamError> {
        required("workspace", &req.workspace)?;
        let input = req.key.ok_or_else(|| IamError::invalid("key is required"))?;
        let user_id = if input.user_id.is_empty() { &req.user_id } else { &input.user_id };
        required("key.name", &input.name)?;
        let expires = parse_expiry(&input.expires)?;
        let user = self.owned_user(&req.workspace, user_id).await?;
        let key = ApiKey::generate();
        let command = WorkspaceCommand::CreateApiKey {
            key_id: new_id(),
            user_id: user.id,
            name: input.name,
            prefix: key.display_prefix(),
            key_hash: key.hash().to_tagged(),
            expires,
        };
        let mut reply = self.command(&user.workspace, command, ctx).await?;
        if !reply.replayed {
            reply.api_key_plaintext = key.into_plaintext();
        }
        Ok(reply)
    }

    pub(super) async fn list_api_keys(&self, req: IamRequest) -> Result<IamResponse, IamError> {
        required("workspace", &req.workspace)?;
        let user = self.owned_user(&req.workspace, &req.user_id).await?;
        let page = Page::from_request(req.limit, &req.cursor)?;
        let (api_keys, next_cursor) = self.inner.queries.api_keys(&user.id, &page).await?;
        Ok(IamResponse { api_keys, next_cursor, ..Default::default() })
    }

    /// `workspace`, when given, must own the key (as for enable-user and delete-user).
    pub(super) async fn revoke_api_key(&self, req: IamRequest, ctx: Ctx) -> Result<IamResponse, IamError> {
        let key_id = required("key_id", &req.key_id)?;
        let (workspace, _) = self
            .inner
            .queries
            .key_owner(key_id)
            .await?
            .ok_or_else(|| IamError::not_found("api key not found"))?;
        if !req.workspace.is_empty() && workspace != req.workspace {
            return Err(IamError::not_permitted("the api key belongs to another workspace"));
        }
        self.command(&workspace, WorkspaceCommand::RevokeApiKey { key_id: key_id.to_owned() }, ctx).await
    }
}

/// An optional ISO-8601 expiry (`2027-01-01T00:00:00Z`).
fn parse_expiry(raw: &str) -> Result<Option<DateTime<Utc>>, IamError> {
    if raw.is_empty() {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(raw).map(|t| Some(t.with_timezone(&Utc))).map_err(|_| {
        IamError::invalid("key.expires is not an ISO-8601 timestamp (e.g. 2027-01-01T00:00:00Z)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_optional_iso_8601() {
        assert_eq!(parse_expiry("").unwrap(), None);
        let t = parse_expiry("2027-01-01T00:00:00+02:00").unwrap().unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-31T22:00:00+00:00");
        assert!(parse_expiry("tomorrow").is_err());
    }
}
