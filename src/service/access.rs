//! Who may ask what: every request reaches the service with a [`Caller`], which an adapter
//! builds after authenticating (and nothing more), and [`Service::handle_as`] authorises it
//! here before dispatch — the same rules whatever the transport.
//!
//! - [`Caller::Gateway`]: the API gateway, over Kafka (the only writer on the request topic)
//!   or over HTTP with `http.gateway_secret`. It authorised its own caller already and is
//!   trusted to say who that was (`actor`, `client_ip`).
//! - [`Caller::User`]: a user proven by an API key or a JWT. Each operation needs a capability
//!   (see [`crate::authz`]) in the workspace it concerns ([`need`]). The request is bound to
//!   the caller first: `actor` becomes the caller's user id (it cannot be spoofed), and a
//!   missing `workspace` becomes the caller's own, so a reader or writer can only ever address
//!   its own workspace, and the ownership rules (`operation-not-permitted` for a user or key
//!   of another workspace) do the rest.
//! - [`Caller::Anonymous`]: no credential at all: only what needs none ([`public`]).
//!
//! The operator's own errands (`iamd call`) travel over Kafka as the gateway; start-up work
//! (the signing key, bootstrap on start) is not a request.

use super::accounts::AccountWriter;
use super::{Principal, Service};
use crate::authn_audit::Origin;
use crate::authz;
use crate::protocol::{IamError, IamRequest, IamResponse, Operation};

/// Who is asking, as the transport authenticated it.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The API gateway: it authorised its own caller already.
    Gateway,
    /// A user, by API key or JWT ([`Principal::credential`]).
    User(Principal),
    /// Nobody proven.
    Anonymous,
}

impl Caller {
    /// Whose request ids (idempotency keys) these are: a user's are its own, and the
    /// gateway's are shared by every path it takes (Kafka and HTTP). Nobody proven has any:
    /// `None`, and its requests (self-registration, the email-token flows) are never
    /// deduplicated — another anonymous caller could otherwise claim its ids first.
    pub fn idempotency_scope(&self) -> Option<String> {
        match self {
            Caller::Gateway => Some("gateway".to_owned()),
            Caller::User(p) => Some(format!("user:{}", p.user_id)),
            Caller::Anonymous => None,
        }
    }
}

impl Principal {
    /// Whether this user's roles grant the system-wide `capability` (`/metrics`, the audit
    /// endpoints; the gateway holds none: it reads nothing but replies).
    pub fn holds_system(&self, capability: &str) -> bool {
        !self.lapsed && authz::allows(&self.roles, &self.workspace, capability, None)
    }
}

/// Why a request was not let through to dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The operation needs a credential and none was given (HTTP 401).
    Unauthenticated,
    /// The caller's roles do not grant it (HTTP 403).
    Forbidden,
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
        // A mail goes to the account's own address; a token proves itself.
        O::RequestVerification | O::VerifyEmail | O::RequestPasswordReset | O::CompletePasswordReset => {
            Need::Authenticated
        }
        O::ListMyWorkspaces => Need::Capability(authz::WORKSPACES_LIST_OWN),
        // Changing one's own password needs the current one, which is proof enough; anyone
        // may log itself out everywhere.
        O::ChangePassword | O::LogoutAll => Need::OwnOr(None, authz::USERS_ADMIN),
        O::CreateUser | O::DisableUser | O::EnableUser | O::ResetPassword => {
            Need::Capability(authz::USERS_ADMIN)
        }
        // Self-service, as Netsoc's accounts have it: a user reads, edits (not its roles nor
        // its state: see `privileged_edit`) and deletes its own account.
        O::DeleteUser => Need::OwnOr(None, authz::USERS_ADMIN),
        O::GetUser => Need::OwnOr(None, authz::USERS_READ),
        O::UpdateUser => Need::OwnOr(None, authz::USERS_WRITE),
        O::ListUsers => Need::Capability(authz::USERS_READ),
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
        | O::AuthenticateAnonymous
        | O::ValidateToken
        | O::IssueToken => Need::Capability(authz::IAM_ADMIN),
        O::MintToken => Need::Capability(authz::MINT_TOKEN),
    }
}

/// What an anonymous caller may do: log in, ask whether bootstrap is still open, and the
/// email-token flows (ask for a mail; present its token). Self-registration (create-user)
/// too, when `accounts.self_registration` is on.
pub fn public(op: Operation) -> bool {
    use Operation as O;
    matches!(
        op,
        O::Login
            | O::BootstrapStatus
            | O::RequestVerification
            | O::VerifyEmail
            | O::RequestPasswordReset
            | O::CompletePasswordReset
    )
}

/// What the check learned that dispatch would otherwise look up again.
#[derive(Debug, Default)]
pub(super) struct Grant {
    /// revoke-api-key by a user: the key's (workspace, user), looked up to find its owner.
    pub(super) key_owner: Option<Option<(String, String)>>,
    /// Who writes an account: an admin (or the gateway), a user, nobody proven.
    pub(super) writer: AccountWriter,
}

impl Service {
    /// Answers one request from `caller`: authorises it ([`need`]), then dispatches. Protocol
    /// errors travel in the reply; a refusal comes back as `Err` for the adapter to render
    /// (401, 403). `origin` is what the transport knows of the client.
    pub async fn handle_as(
        &self,
        caller: &Caller,
        mut req: IamRequest,
        origin: &Origin,
    ) -> Result<IamResponse, Refusal> {
        let scope = caller.idempotency_scope();
        if matches!(caller, Caller::Anonymous) {
            // Nobody proven names no actor: the events it causes say so, whatever it wrote.
            req.actor.clear();
        }
        let Ok(op) = Operation::parse(&req.operation) else {
            // Unknown operations are refused by dispatch, the same for every caller.
            return Ok(self.handle_scoped(req, origin, scope.as_deref(), Grant::default()).await);
        };
        let grant = match caller {
            // The gateway is trusted to say who its client was.
            Caller::Gateway => {
                let origin = origin.clone().relayed(&req.client_ip);
                return Ok(self.handle_scoped(req, &origin, scope.as_deref(), Grant::default()).await);
            }
            Caller::Anonymous if public(op) => Grant::default(),
            // Self-registration: create-user with no credential, held to the account rules.
            Caller::Anonymous
                if op == Operation::CreateUser && self.inner.settings.accounts.self_registration =>
            {
                Grant { writer: AccountWriter::Anonymous, ..Grant::default() }
            }
            Caller::Anonymous => return Err(Refusal::Unauthenticated),
            Caller::User(principal) => match self.permits(principal, op, &mut req).await {
                Ok(Some(grant)) => grant,
                Ok(None) => return Err(Refusal::Forbidden),
                Err(e) => return Ok(IamResponse::error(e)),
            },
        };
        Ok(self.handle_scoped(req, origin, scope.as_deref(), grant).await)
    }

    /// Binds `req` to `caller` and decides: `Ok(None)` is a denial.
    async fn permits(
        &self,
        caller: &Principal,
        op: Operation,
        req: &mut IamRequest,
    ) -> Result<Option<Grant>, IamError> {
        req.actor = caller.user_id.clone();
        if caller.password_change_required && !password_change(caller, op, req) {
            return Err(IamError::not_permitted("password change required"));
        }
        if caller.lapsed && !own_account(caller, op, req) {
            return Err(IamError::not_permitted(
                "the account's renewal has lapsed: only the account itself can be read, updated or deleted, or logged out",
            ));
        }
        if req.workspace.is_empty() && !caller.is_admin() && op_has_workspace(op) {
            req.workspace = caller.workspace.clone();
        }
        // Whether an account is verified, and when it was renewed, only an admin says.
        let admin_fields = req.user.as_ref().is_some_and(|u| u.verified.is_some() || !u.renewed.is_empty());
        if admin_fields && matches!(op, Operation::CreateUser | Operation::UpdateUser) && !caller.is_admin() {
            return Ok(None);
        }
        // What only those who may write users change, even on their own account.
        if op == Operation::UpdateUser && privileged_edit(req) && !caller.is_admin() {
            let target = target_workspace(op, req);
            if !authz::allows(&caller.roles, &caller.workspace, authz::USERS_WRITE, target.as_deref()) {
                return Ok(None);
            }
        }
        let target = target_workspace(op, req);
        let allows =
            |capability: &str| authz::allows(&caller.roles, &caller.workspace, capability, target.as_deref());
        let writer = if caller.is_admin() { AccountWriter::Admin } else { AccountWriter::User };
        let mut grant = Grant { writer, ..Grant::default() };
        let permitted = match need(op) {
            Need::Authenticated => true,
            Need::Capability(capability) => allows(capability),
            Need::OwnOr(own, others) => {
                let owner = match op {
                    Operation::CreateApiKey => req.key.as_ref().map(|k| k.user_id.clone()),
                    // An id no key can have is no key (dispatch refuses it as invalid-argument).
                    Operation::RevokeApiKey
                        if req.key_id.contains('\0') || req.key_id.len() > super::MAX_ID_FIELD =>
                    {
                        None
                    }
                    Operation::RevokeApiKey => {
                        let found = self.inner.queries.key_owner(&req.key_id).await?;
                        let user = found.as_ref().map(|(_, user)| user.clone());
                        grant.key_owner = Some(found);
                        user
                    }
                    _ => Some(req.user_id.clone()),
                };
                match owner {
                    // No such key (never issued, or revoked already): whoever asks, dispatch
                    // answers not-found, so an owner and an admin get the same answer.
                    None if op == Operation::RevokeApiKey => true,
                    Some(user) if user == caller.user_id => own.is_none_or(allows),
                    _ => allows(others),
                }
            }
        };
        Ok(permitted.then_some(grant))
    }
}

/// What a token that must first change its password may do: read itself, change its own
/// password and log itself out everywhere (nobody else, whatever its roles).
fn password_change(caller: &Principal, op: Operation, req: &IamRequest) -> bool {
    match op {
        Operation::Whoami => true,
        Operation::ChangePassword | Operation::LogoutAll => req.user_id == caller.user_id,
        _ => false,
    }
}

/// Whether an update-user changes what a user may not change on its own account: its roles,
/// or its state (disabled, must change its password). TrustGraph's codec sends `"roles": []`,
/// `"enabled": true` and `"must_change_password": false` with every update; those change
/// nothing.
fn privileged_edit(req: &IamRequest) -> bool {
    req.user.as_ref().is_some_and(|u| {
        u.roles.as_ref().is_some_and(|r| !r.is_empty())
            || u.enabled == Some(false)
            || u.must_change_password == Some(true)
    })
}

/// What a lapsed renewal token may do ([`Principal::lapsed`]): look after its own account —
/// read, update (its password too) and delete it, and log it out everywhere.
fn own_account(caller: &Principal, op: Operation, req: &IamRequest) -> bool {
    use Operation as O;
    match op {
        O::Whoami => true,
        O::GetUser | O::UpdateUser | O::DeleteUser | O::ChangePassword | O::LogoutAll => {
            req.user_id == caller.user_id
        }
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
            | O::LogoutAll
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_a_rule_and_only_login_and_the_email_flows_are_public() {
        let open: Vec<_> = Operation::ALL
            .iter()
            .filter(|op| need(**op) == Need::Authenticated)
            .map(|op| op.as_str())
            .collect();
        let email =
            ["request-verification", "verify-email", "request-password-reset", "complete-password-reset"];
        let first = ["login", "get-signing-key-public", "whoami", "bootstrap-status"];
        assert_eq!(open, [&first[..], &email[..]].concat());
        let public: Vec<_> = Operation::ALL.iter().filter(|op| public(**op)).map(|op| op.as_str()).collect();
        assert_eq!(public, [&["login", "bootstrap-status"][..], &email[..]].concat());
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

    #[test]
    fn each_caller_has_its_own_idempotency_scope() {
        let user = Principal {
            user_id: "u1".into(),
            workspace: "acme".into(),
            roles: vec!["admin".into()],
            credential: super::super::Credential::ApiKey { key_id: "k".into() },
            password_change_required: false,
            lapsed: false,
        };
        assert_eq!(Caller::Gateway.idempotency_scope().as_deref(), Some("gateway"));
        assert_eq!(Caller::Anonymous.idempotency_scope(), None);
        assert!(user.holds_system(authz::METRICS_READ));
        let reader = Principal { roles: vec!["reader".into()], ..user.clone() };
        assert!(!reader.holds_system(authz::METRICS_READ));
        assert_eq!(Caller::User(user).idempotency_scope().as_deref(), Some("user:u1"));
    }
}
