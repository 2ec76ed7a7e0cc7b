//! What an authenticated user may ask of iamd over HTTP: each operation needs a capability
//! (see [`crate::authz`]) in the workspace it concerns. The API gateway (its shared secret)
//! and Kafka are trusted and skip this: they authorise their own callers.
//!
//! Before the check, the request is bound to the caller: `actor` becomes the caller's user
//! id (it cannot be spoofed), and a missing `workspace` becomes the caller's own, so a
//! reader or writer can only ever address its own workspace, and the service's ownership
//! rule (`operation-not-permitted` for a user or key of another workspace) does the rest.

use crate::authz;
use crate::protocol::{IamError, IamRequest, Operation};
use crate::service::{Principal, Service};

/// The idempotency scope of the API gateway (its shared secret; Kafka's too).
pub const GATEWAY_CALLER: &str = "gateway";

/// The idempotency scope of a user bearer: its request ids are its own.
pub fn idempotency_caller(caller: &Principal) -> String {
    format!("user:{}", caller.user_id)
}

/// What an operation needs from a user caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any authenticated user.
    Authenticated,
    /// This capability in the target workspace (system capabilities: in none).
    Capability(&'static str),
    /// On the caller's own user, the first capability; on anyone else's, the second.
    OwnOr(Option<&'static str>, &'static str),
}

/// The rule for `op`. Exhaustive: a new operation does not compile until it has one.
pub fn need(op: Operation) -> Need {
    use Operation as O;
    match op {
        O::Login | O::Whoami | O::BootstrapStatus | O::GetSigningKeyPublic => Need::Authenticated,
        O::ListMyWorkspaces => Need::Capability(authz::WORKSPACES_LIST_OWN),
        // Changing one's own password needs the current one, which is proof enough.
        O::ChangePassword => Need::OwnOr(None, authz::USERS_ADMIN),
        O::CreateUser | O::DisableUser | O::EnableUser | O::DeleteUser | O::ResetPassword => {
            Need::Capability(authz::USERS_ADMIN)
        }
        O::ListUsers | O::GetUser => Need::Capability(authz::USERS_READ),
        O::UpdateUser => Need::Capability(authz::USERS_WRITE),
        O::CreateApiKey | O::ListApiKeys | O::RevokeApiKey => {
            Need::OwnOr(Some(authz::KEYS_SELF), authz::KEYS_ADMIN)
        }
        O::CreateWorkspace
        | O::ListWorkspaces
        | O::GetWorkspace
        | O::UpdateWorkspace
        | O::DisableWorkspace => Need::Capability(authz::WORKSPACES_ADMIN),
        O::RotateSigningKey
        | O::Bootstrap
        | O::ResolveApiKey
        | O::Authorise
        | O::AuthoriseMany
        | O::AuthenticateAnonymous => Need::Capability(authz::IAM_ADMIN),
        O::MintToken => Need::Capability(authz::MINT_TOKEN),
    }
}

/// Binds `req` to `caller` and decides. `Ok(false)` is a denial (403).
pub async fn permits(
    caller: &Principal,
    op: Operation,
    req: &mut IamRequest,
    service: &Service,
) -> Result<bool, IamError> {
    req.actor = caller.user_id.clone();
    if caller.password_change_required && !password_change(caller, op, req) {
        return Err(IamError::not_permitted("password change required"));
    }
    if req.workspace.is_empty() && !caller.is_admin() && op_has_workspace(op) {
        req.workspace = caller.workspace.clone();
    }
    let target = target_workspace(op, req);
    let allows =
        |capability: &str| authz::allows(&caller.roles, &caller.workspace, capability, target.as_deref());
    Ok(match need(op) {
        Need::Authenticated => true,
        Need::Capability(capability) => allows(capability),
        Need::OwnOr(own, others) => match target_user(op, req, service).await? {
            // No such key (never issued, or revoked already): whoever asks, the service
            // answers not-found, so an owner and an admin get the same answer.
            None if op == Operation::RevokeApiKey => true,
            Some(user) if user == caller.user_id => own.is_none_or(allows),
            _ => allows(others),
        },
    })
}

/// What a token that must first change its password may do: read itself, change its own
/// password (nobody else's, whatever its roles).
fn password_change(caller: &Principal, op: Operation, req: &IamRequest) -> bool {
    match op {
        Operation::Whoami => true,
        Operation::ChangePassword => req.user_id == caller.user_id,
        _ => false,
    }
}

/// Operations addressed to a workspace through `workspace` (the others name it in
/// `workspace_record`, or concern none).
fn op_has_workspace(op: Operation) -> bool {
    use Operation as O;
    matches!(
        op,
        O::ChangePassword
            | O::ResetPassword
            | O::CreateUser
            | O::ListUsers
            | O::GetUser
            | O::UpdateUser
            | O::DisableUser
            | O::EnableUser
            | O::DeleteUser
            | O::CreateApiKey
            | O::ListApiKeys
            | O::RevokeApiKey
            | O::MintToken
    )
}

/// The workspace a request acts in, for the scope check.
fn target_workspace(op: Operation, req: &IamRequest) -> Option<String> {
    let ws = req.target_workspace();
    (op_has_workspace(op) || matches!(op, Operation::GetWorkspace | Operation::UpdateWorkspace))
        .then(|| ws.to_owned())
        .filter(|w| !w.is_empty())
}

/// The user an own-or-other operation is about.
async fn target_user(op: Operation, req: &IamRequest, service: &Service) -> Result<Option<String>, IamError> {
    Ok(match op {
        Operation::CreateApiKey => req.key.as_ref().map(|k| k.user_id.clone()),
        // An id no key can have is no key (the service refuses it as invalid-argument).
        Operation::RevokeApiKey
            if req.key_id.contains('\0') || req.key_id.len() > crate::service::MAX_ID_FIELD =>
        {
            None
        }
        Operation::RevokeApiKey => service.queries().key_owner(&req.key_id).await?.map(|(_, user)| user),
        _ => Some(req.user_id.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_a_rule_and_only_four_need_nothing_more_than_a_login() {
        let open: Vec<_> = Operation::ALL
            .iter()
            .filter(|op| need(**op) == Need::Authenticated)
            .map(|op| op.as_str())
            .collect();
        assert_eq!(open, ["login", "get-signing-key-public", "whoami", "bootstrap-status"]);
    }

    #[test]
    fn management_needs_admin_capabilities() {
        for op in [Operation::CreateUser, Operation::DisableUser, Operation::ResetPassword] {
            assert_eq!(need(op), Need::Capability("users:admin"));
        }
        assert_eq!(need(Operation::CreateWorkspace), Need::Capability("workspaces:admin"));
        assert_eq!(need(Operation::RotateSigningKey), Need::Capability("iam:admin"));
        assert_eq!(need(Operation::RevokeApiKey), Need::OwnOr(Some("keys:self"), "keys:admin"));
    }

    #[test]
    fn the_target_workspace_is_the_one_addressed() {
        let req = IamRequest { workspace: "acme".into(), ..Default::default() };
        assert_eq!(target_workspace(Operation::ListUsers, &req).as_deref(), Some("acme"));
        assert_eq!(target_workspace(Operation::ListWorkspaces, &req), None);
        let ws = IamRequest {
            workspace_record: Some(crate::protocol::WorkspaceInput {
                id: "globex".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(target_workspace(Operation::UpdateWorkspace, &ws).as_deref(), Some("globex"));
        assert_eq!(target_workspace(Operation::ListUsers, &IamRequest::default()), None);
    }
}
