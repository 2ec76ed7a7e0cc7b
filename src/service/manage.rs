//! Management operations on users, workspaces and API keys. Reads come from the read tables;
//! writes are checked cheaply here (required fields, ownership, the target's existence) so a
//! bad request costs no argon2 work and starts no actor, then `decide` rules on them.

use super::accounts::AccountWriter;
use super::page::Page;
use super::{required, Ctx, Service};
use crate::crypto::ApiKey;
use crate::domain::rules;
use crate::domain::workspace::{ProfileEdit, WorkspaceCommand};
use crate::protocol::{IamError, IamRequest, IamResponse, UserInput, WorkspaceRecord};
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

    pub(super) async fn create_user(&self, mut req: IamRequest, ctx: Ctx) -> Result<IamResponse, IamError> {
        let input = req.user.take().ok_or_else(|| IamError::invalid("user is required"))?;
        self.account_create_rules(ctx.writer, &mut req.workspace, &input)?;
        let ws = self.existing_workspace(&req.workspace).await?;
        let roles = rules::new_user(
            &input.username,
            &input.name,
            &input.email,
            input.roles.as_deref().unwrap_or_default(),
        )?;
        required("user.password", &input.password)?;
        self.inner.settings.policy.check(&input.password, &input.username)?;
        if !ws.enabled {
            return Err(IamError::disabled("workspace is disabled"));
        }
        let profile = profile_edit(&input)?;
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
            profile,
            self_registered: ctx.writer == AccountWriter::Anonymous,
            number: Some(self.inner.queries.next_user_number().await?),
        };
        let metadata = ctx.metadata.clone();
        let reply = self.command(&ws.id, command, ctx).await?;
        Ok(self.verify_after_write(reply, None, req.email_link, req.netsoc_mail, metadata).await)
    }

    /// The users of `workspace`; without one (upstream's system-level listing, for a trusted
    /// caller or an admin), every user.
    pub(super) async fn list_users(&self, req: IamRequest) -> Result<IamResponse, IamError> {
        let page = Page::from_request(req.limit, &req.cursor)?;
        let ws = match req.workspace.as_str() {
            "" => None,
            id => Some(self.existing_workspace(id).await?.id),
        };
        let (users, next_cursor) = self.inner.queries.users(ws.as_deref(), &page).await?;
        Ok(IamResponse { users, next_cursor, ..Default::default() })
    }

    // The operations on one user take `workspace` as upstream does, as an optional check:
    // given, it must own the user (`operation-not-permitted` otherwise).

    pub(super) async fn get_user(&self, req: IamRequest) -> Result<IamResponse, IamError> {
        let user = self.owned_user(&req.workspace, &req.user_id).await?;
        Ok(IamResponse { user: Some(user), ..Default::default() })
    }

    pub(super) async fn update_user(&self, req: IamRequest, ctx: Ctx) -> Result<IamResponse, IamError> {
        let input = req.user.ok_or_else(|| IamError::invalid("user is required"))?;
        self.account_update_rules(ctx.writer, &input)?;
        let user = self.owned_user(&req.workspace, &req.user_id).await?;
        let command = update_command(user.id, input)?;
        let metadata = ctx.metadata.clone();
        let reply = self.command(&user.workspace, command, ctx).await?;
        Ok(self.verify_after_write(reply, Some(&user.email), req.email_link, req.netsoc_mail, metadata).await)
    }

    pub(super) async fn disable_user(&self, req: IamRequest, ctx: Ctx) -> Result<IamResponse, IamError> {
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
        rules::workspace_name(&name)?;
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
        let user = self.owned_user(&req.workspace, &req.user_id).await?;
        let page = Page::from_request(req.limit, &req.cursor)?;
        let (api_keys, next_cursor) = self.inner.queries.api_keys(&user.id, &page).await?;
        Ok(IamResponse { api_keys, next_cursor, ..Default::default() })
    }

    /// `workspace`, when given, must own the key (as for enable-user and delete-user).
    /// logout-all: every token of the user issued so far dies (its API keys do not).
    pub(super) async fn logout_all(&self, req: IamRequest, ctx: Ctx) -> Result<IamResponse, IamError> {
        let user = self.owned_user(&req.workspace, &req.user_id).await?;
        self.command(&user.workspace, WorkspaceCommand::EndSessions { user_id: user.id }, ctx).await
    }

    pub(super) async fn revoke_api_key(
        &self,
        req: IamRequest,
        mut ctx: Ctx,
    ) -> Result<IamResponse, IamError> {
        let key_id = required("key_id", &req.key_id)?;
        let owner = match ctx.key_owner.take() {
            Some(looked_up) => looked_up,
            None => self.inner.queries.key_owner(key_id).await?,
        };
        let (workspace, _) = owner.ok_or_else(|| IamError::not_found("api key not found"))?;
        if !req.workspace.is_empty() && workspace != req.workspace {
            return Err(IamError::not_permitted("the api key belongs to another workspace"));
        }
        self.command(&workspace, WorkspaceCommand::RevokeApiKey { key_id: key_id.to_owned() }, ctx).await
    }
}

/// update-user's command, with the semantics that survive TrustGraph's codec, which sends
/// every `UserInput` field whatever the caller meant (`"roles": []`, `"enabled": true`,
/// `"must_change_password": false`): empty text and an empty roles list leave the field as it
/// is; `enabled` may only disable (enable-user re-enables) and `must_change_password` may only
/// be set (change-password clears it).
fn update_command(user_id: String, input: UserInput) -> Result<WorkspaceCommand, IamError> {
    let profile = profile_edit(&input)?;
    Ok(WorkspaceCommand::UpdateUser {
        user_id,
        username: Some(input.username).filter(|v| !v.is_empty()),
        name: Some(input.name).filter(|v| !v.is_empty()),
        email: Some(input.email).filter(|v| !v.is_empty()),
        roles: input.roles.filter(|r| !r.is_empty()),
        enabled: input.enabled.filter(|enabled| !enabled),
        must_change_password: input.must_change_password.filter(|set| *set),
        password_given: !input.password.is_empty(),
        profile,
    })
}

/// Netsoc's account fields of a create or an update: empty text leaves a field as it is, as
/// for the rest of `UserInput`; `renewed` is RFC 3339.
fn profile_edit(input: &UserInput) -> Result<ProfileEdit, IamError> {
    let text = |v: &str| Some(v.to_owned()).filter(|v| !v.is_empty());
    let renewed = crate::protocol::time::optional_instant(&input.renewed).map_err(|_| {
        IamError::invalid("user.renewed is not an RFC 3339 instant (e.g. 2027-01-01T00:00:00Z)")
    })?;
    Ok(ProfileEdit {
        first_name: text(&input.first_name),
        last_name: text(&input.last_name),
        ssh_key: text(&input.ssh_key),
        verified: input.verified,
        renewed,
    })
}

/// An optional ISO-8601 expiry (`2027-01-01T00:00:00Z`).
fn parse_expiry(raw: &str) -> Result<Option<DateTime<Utc>>, IamError> {
    crate::protocol::time::optional_instant(raw).map_err(|_| {
        IamError::invalid("key.expires is not an ISO-8601 timestamp (e.g. 2027-01-01T00:00:00Z)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What TrustGraph's codec sends for "change the name only".
    fn trustgraph_input(name: &str) -> UserInput {
        UserInput {
            name: name.into(),
            roles: Some(vec![]),
            enabled: Some(true),
            must_change_password: Some(false),
            ..UserInput::default()
        }
    }

    #[test]
    fn trustgraphs_defaults_change_nothing_but_what_was_meant() {
        match update_command("u".into(), trustgraph_input("Alice B")).unwrap() {
            WorkspaceCommand::UpdateUser {
                name,
                roles,
                enabled,
                must_change_password,
                username,
                email,
                ..
            } => {
                assert_eq!(name.as_deref(), Some("Alice B"));
                assert_eq!((roles, enabled, must_change_password), (None, None, None));
                assert_eq!((username, email), (None, None));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn update_user_may_disable_and_demand_a_new_password_but_never_undo_them() {
        let input = UserInput {
            roles: Some(vec!["reader".into()]),
            enabled: Some(false),
            must_change_password: Some(true),
            ..UserInput::default()
        };
        match update_command("u".into(), input).unwrap() {
            WorkspaceCommand::UpdateUser { roles, enabled, must_change_password, .. } => {
                assert_eq!(roles, Some(vec!["reader".to_string()]));
                assert_eq!((enabled, must_change_password), (Some(false), Some(true)));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn expiry_is_optional_iso_8601() {
        assert_eq!(parse_expiry("").unwrap(), None);
        let t = parse_expiry("2027-01-01T00:00:00+02:00").unwrap().unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-31T22:00:00+00:00");
        assert!(parse_expiry("tomorrow").is_err());
    }
}
