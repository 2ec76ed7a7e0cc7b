//! The operations iamd understands, by their wire names.

use super::*;

/// Every operation iamd understands. Parsing an unknown name is `invalid-argument`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Login,
    ResolveApiKey,
    ChangePassword,
    ResetPassword,
    CreateUser,
    ListUsers,
    GetUser,
    UpdateUser,
    DisableUser,
    CreateWorkspace,
    ListWorkspaces,
    GetWorkspace,
    UpdateWorkspace,
    DisableWorkspace,
    CreateApiKey,
    ListApiKeys,
    RevokeApiKey,
    GetSigningKeyPublic,
    RotateSigningKey,
    Bootstrap,
    // Upstream extensions beyond the seed spec.
    Whoami,
    ListMyWorkspaces,
    BootstrapStatus,
    Authorise,
    AuthoriseMany,
    EnableUser,
    DeleteUser,
    AuthenticateAnonymous,
    MintToken,
    // Accounts (Netsoc's iamd).
    LogoutAll,
    ValidateToken,
    IssueToken,
    RequestVerification,
    VerifyEmail,
    RequestPasswordReset,
    CompletePasswordReset,
}

impl Operation {
    pub const ALL: [Operation; 36] = [
        Operation::Login,
        Operation::ResolveApiKey,
        Operation::ChangePassword,
        Operation::ResetPassword,
        Operation::CreateUser,
        Operation::ListUsers,
        Operation::GetUser,
        Operation::UpdateUser,
        Operation::DisableUser,
        Operation::CreateWorkspace,
        Operation::ListWorkspaces,
        Operation::GetWorkspace,
        Operation::UpdateWorkspace,
        Operation::DisableWorkspace,
        Operation::CreateApiKey,
        Operation::ListApiKeys,
        Operation::RevokeApiKey,
        Operation::GetSigningKeyPublic,
        Operation::RotateSigningKey,
        Operation::Bootstrap,
        Operation::Whoami,
        Operation::ListMyWorkspaces,
        Operation::BootstrapStatus,
        Operation::Authorise,
        Operation::AuthoriseMany,
        Operation::EnableUser,
        Operation::DeleteUser,
        Operation::AuthenticateAnonymous,
        Operation::MintToken,
        Operation::LogoutAll,
        Operation::ValidateToken,
        Operation::IssueToken,
        Operation::RequestVerification,
        Operation::VerifyEmail,
        Operation::RequestPasswordReset,
        Operation::CompletePasswordReset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Login => "login",
            Operation::ResolveApiKey => "resolve-api-key",
            Operation::ChangePassword => "change-password",
            Operation::ResetPassword => "reset-password",
            Operation::CreateUser => "create-user",
            Operation::ListUsers => "list-users",
            Operation::GetUser => "get-user",
            Operation::UpdateUser => "update-user",
            Operation::DisableUser => "disable-user",
            Operation::CreateWorkspace => "create-workspace",
            Operation::ListWorkspaces => "list-workspaces",
            Operation::GetWorkspace => "get-workspace",
            Operation::UpdateWorkspace => "update-workspace",
            Operation::DisableWorkspace => "disable-workspace",
            Operation::CreateApiKey => "create-api-key",
            Operation::ListApiKeys => "list-api-keys",
            Operation::RevokeApiKey => "revoke-api-key",
            Operation::GetSigningKeyPublic => "get-signing-key-public",
            Operation::RotateSigningKey => "rotate-signing-key",
            Operation::Bootstrap => "bootstrap",
            Operation::Whoami => "whoami",
            Operation::ListMyWorkspaces => "list-my-workspaces",
            Operation::BootstrapStatus => "bootstrap-status",
            Operation::Authorise => "authorise",
            Operation::AuthoriseMany => "authorise-many",
            Operation::EnableUser => "enable-user",
            Operation::DeleteUser => "delete-user",
            Operation::AuthenticateAnonymous => "authenticate-anonymous",
            Operation::MintToken => "mint-token",
            Operation::LogoutAll => "logout-all",
            Operation::ValidateToken => "validate-token",
            Operation::IssueToken => "issue-token",
            Operation::RequestVerification => "request-verification",
            Operation::VerifyEmail => "verify-email",
            Operation::RequestPasswordReset => "request-password-reset",
            Operation::CompletePasswordReset => "complete-password-reset",
        }
    }

    pub fn parse(name: &str) -> Result<Operation, IamError> {
        Operation::ALL.iter().copied().find(|op| op.as_str() == name).ok_or_else(|| {
            if name.is_empty() {
                IamError::invalid("operation is required")
            } else {
                // Echo the name only when it is short and printable: it is caller input.
                let shown: String = name.chars().take(64).filter(|c| !c.is_control()).collect();
                IamError::invalid(format!("unknown operation '{shown}'"))
            }
        })
    }

    /// Operations that change state go through an actor and are deduplicated by `request_id`.
    pub fn is_command(self) -> bool {
        !matches!(
            self,
            Operation::Login
                | Operation::ResolveApiKey
                | Operation::ListUsers
                | Operation::GetUser
                | Operation::ListWorkspaces
                | Operation::GetWorkspace
                | Operation::ListApiKeys
                | Operation::GetSigningKeyPublic
                | Operation::Whoami
                | Operation::ListMyWorkspaces
                | Operation::BootstrapStatus
                | Operation::Authorise
                | Operation::AuthoriseMany
                | Operation::AuthenticateAnonymous
                | Operation::ValidateToken
        )
    }
}
