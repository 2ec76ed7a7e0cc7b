//! One dispatch from `IamRequest` to `IamResponse` for every adapter (HTTP, Kafka), after one
//! authorisation of the adapter's [`Caller`] ([`access`]).
//! Queries read the read tables ([`queries`]); commands go to the workspace's actor (or the
//! system actor) after the slow or secret work is done here: argon2 on the hashing pool,
//! API-key and signing-key generation. Every failure is a protocol error; causes are logged.
//!
//! - [`access`]: who may ask what, for every transport.
//! - [`credentials`]: login, resolve-api-key, change-password, reset-password.
//! - [`manage`]: users, workspaces and API keys.
//! - [`system`]: signing keys and bootstrap.
//! - [`observe`]: what operators and auditors read (metrics, the audits), behind capabilities.

pub mod access;
mod accounts;
mod authn;
pub mod cleanup;
mod credentials;
pub mod directory;
mod identity;
pub mod import;
pub mod keys;
mod manage;
pub mod netsoc;
pub mod observe;
pub mod page;
pub mod queries;
mod signer;
mod system;
mod tokens;

pub use access::{Caller, Refusal};
pub use accounts::AccountRules;
pub use authn::{Credential, Principal};
pub use queries::Queries;
pub use signer::SignerCache;
pub use system::Bootstrapped;

use crate::actors::{self, Execute, Registry};
use crate::authn_audit::{Origin, Recorder};
use crate::crypto::DigestKey;
use crate::crypto::{PasswordHasher, PasswordPolicy};
use crate::domain::workspace::WorkspaceCommand;
use crate::events::{MailPurpose, Metadata};
use crate::metrics::{self, Metrics};
use crate::protocol::{IamError, IamRequest, IamResponse, Operation, UserRecord};
use crate::store::{EventStore, RequestKey};
use access::Grant;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Longest accepted identifier-like request field (ids, usernames, actor, request id).
pub const MAX_ID_FIELD: usize = 256;
/// Longest accepted token to validate (iamd's JWTs are well under 2 KiB, a mint-token
/// context included).
pub const MAX_TOKEN: usize = 16 * 1024;

/// What the service needs from the settings.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub jwt_issuer: String,
    pub jwt_ttl: chrono::Duration,
    /// `accounts.renewal_validity`: login tokens expire at `renewed` + this.
    pub renewal_validity: Option<chrono::Duration>,
    /// `jwt.email_validity`: how long an email token stays good.
    pub email_validity: chrono::Duration,
    /// What non-admins are held to (`accounts.*`).
    pub accounts: AccountRules,
    /// Verification and reset mail (`smtp.*`, `mail.*`).
    pub mailer: crate::mail::Mailer,
    pub signing_grace: chrono::Duration,
    pub policy: PasswordPolicy,
    /// The authentication audit's queue and batches.
    pub authentication_audit: crate::config::AuthenticationAuditSettings,
    /// Opens the sealed private signing keys (the store seals new ones with the same KEK).
    pub kek: Option<crate::crypto::Kek>,
    /// `compat.legacy_jwt_key`: Netsoc's HS256 key, whose tokens `/v1` still takes.
    pub legacy_jwt_key: Option<Vec<u8>>,
}

struct Inner {
    store: EventStore,
    queries: Queries,
    registry: Registry,
    hasher: PasswordHasher,
    signer: SignerCache,
    settings: ServiceSettings,
    /// Requests by operation and outcome, and what `GET /metrics` shows.
    metrics: Metrics,
    /// When each key's `last_used` was last written by this process (coalescing).
    last_used: Mutex<HashMap<String, Instant>>,
    /// When a token with an unknown `kid` last made this process reload its signing keys.
    unknown_kid_reload: Mutex<Option<Instant>>,
    /// The authentication audit: login, resolve-api-key and failed bearer outcomes.
    authentications: Recorder,
    /// The key of the keyed digests (requests under an idempotency key, unknown usernames).
    digest_key: DigestKey,
    /// (caller, request id) of the commands being applied now.
    in_flight: Mutex<HashSet<(String, String)>>,
}

/// Cheap to clone; shared by every adapter.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

impl Service {
    pub fn new(
        store: EventStore,
        registry: Registry,
        hasher: PasswordHasher,
        settings: ServiceSettings,
        digest_key: DigestKey,
    ) -> Self {
        let queries = Queries::new(store.pool().clone());
        let metrics = Metrics::new(store.commit_counters(), store.key_cache().counters());
        let authentications = Recorder::start(
            store.pool().clone(),
            &settings.authentication_audit,
            metrics.authentications().clone(),
        );
        Service {
            inner: Arc::new(Inner {
                store,
                queries,
                registry,
                hasher,
                signer: SignerCache::new(settings.kek.clone()),
                settings,
                metrics,
                last_used: Mutex::new(HashMap::new()),
                unknown_kid_reload: Mutex::new(None),
                authentications,
                digest_key,
                in_flight: Mutex::new(HashSet::new()),
            }),
        }
    }

    pub fn queries(&self) -> &Queries {
        &self.inner.queries
    }

    /// The resolve-api-key cache (its listener is started by the server).
    pub fn key_cache(&self) -> &std::sync::Arc<crate::projections::key_cache::KeyCache> {
        self.inner.store.key_cache()
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The authentication audit's recorder (to flush it at shutdown).
    pub fn authentications(&self) -> &Recorder {
        &self.inner.authentications
    }

    /// Answers one authorised request (see [`Service::handle_as`]): counted by operation and
    /// outcome and timed, per transport (`origin.source`). `scope` is whose request ids these
    /// are ([`Caller::idempotency_scope`]); none: no deduplication.
    async fn handle_scoped(
        &self,
        req: IamRequest,
        origin: &Origin,
        scope: Option<&str>,
        grant: Grant,
    ) -> IamResponse {
        let started = Instant::now();
        let operation = metrics::operation_label(&req.operation);
        let op = req.operation.clone();
        let response = match self.dispatch(req, origin, scope, grant).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(operation = %op.chars().take(64).collect::<String>(), error = %e.kind.as_str(), "request refused");
                IamResponse::error(e)
            }
        };
        let outcome = metrics::outcome_label(&response);
        let transport = metrics::transport_label(&origin.source);
        self.inner.metrics.observe(operation, outcome, transport, started.elapsed());
        response
    }

    async fn dispatch(
        &self,
        req: IamRequest,
        origin: &Origin,
        scope: Option<&str>,
        grant: Grant,
    ) -> Result<IamResponse, IamError> {
        let op = Operation::parse(&req.operation)?;
        if let Err(e) = check_sizes(&req) {
            self.record_malformed(op, &req, origin);
            return Err(e);
        }
        let source = origin.source.as_str();
        let scope = scope.filter(|_| op.is_command() && !req.request_id.is_empty());
        let idempotency = scope.map(|scope| RequestKey {
            caller: scope.to_owned(),
            request_id: req.request_id.clone(),
            digest: self.inner.digest_key.digest("request", &req.idempotency_input()),
        });
        // Held until the reply: a retry arriving meanwhile is told so, not applied twice.
        let _in_flight = match &idempotency {
            Some(key) => {
                let claim = InFlight::claim(&self.inner.in_flight, key)?;
                if let Some(r) = actors::replayed(&self.inner.store, key, op.as_str()).await? {
                    return Ok(r);
                }
                Some(claim)
            }
            None => None,
        };
        let ctx = Ctx {
            metadata: Metadata {
                actor: req.actor.clone(),
                request_id: req.request_id.clone(),
                source: source.to_owned(),
                operation: op.as_str().to_owned(),
            },
            idempotency,
            key_owner: grant.key_owner,
            writer: grant.writer,
        };
        use Operation as O;
        match op {
            O::Login => self.login(req, origin).await,
            O::ResolveApiKey => self.resolve_api_key(req, origin).await,
            O::ChangePassword => self.change_password(req, ctx).await,
            O::ResetPassword => self.reset_password(req, ctx).await,
            O::CreateUser => self.create_user(req, ctx).await,
            O::ListUsers => self.list_users(req).await,
            O::GetUser => self.get_user(req).await,
            O::UpdateUser => self.update_user(req, ctx).await,
            O::DisableUser => self.disable_user(req, ctx).await,
            O::CreateWorkspace => self.create_workspace(req, ctx).await,
            O::ListWorkspaces => self.list_workspaces(req).await,
            O::GetWorkspace => self.get_workspace(req).await,
            O::UpdateWorkspace => self.update_workspace(req, ctx).await,
            O::DisableWorkspace => self.disable_workspace(req, ctx).await,
            O::CreateApiKey => self.create_api_key(req, ctx).await,
            O::ListApiKeys => self.list_api_keys(req).await,
            O::RevokeApiKey => self.revoke_api_key(req, ctx).await,
            O::GetSigningKeyPublic => self.signing_key_public().await,
            O::RotateSigningKey => self.rotate_signing_key(ctx).await,
            O::Bootstrap => self.bootstrap_operation(ctx).await,
            O::Whoami => self.whoami(req).await,
            O::ListMyWorkspaces => self.list_my_workspaces(req).await,
            O::BootstrapStatus => self.bootstrap_status().await,
            O::Authorise => self.authorise(req).await,
            O::AuthoriseMany => self.authorise_many(req).await,
            O::EnableUser => self.enable_user(req, ctx).await,
            O::DeleteUser => self.delete_user(req, ctx).await,
            O::AuthenticateAnonymous => self.authenticate_anonymous(&req, origin),
            O::MintToken => self.mint_token(req, ctx).await,
            O::LogoutAll => self.logout_all(req, ctx).await,
            O::ValidateToken => self.validate_token(&req, origin).await,
            O::IssueToken => self.issue_token(req, ctx).await,
            O::RequestVerification => self.request_mail(req, ctx, MailPurpose::Verification).await,
            O::VerifyEmail => self.verify_email(req, origin, ctx).await,
            O::RequestPasswordReset => self.request_mail(req, ctx, MailPurpose::PasswordReset).await,
            O::CompletePasswordReset => self.complete_password_reset(req, origin, ctx).await,
        }
    }

    /// Runs a command on a workspace's actor.
    async fn command(
        &self,
        workspace: &str,
        command: WorkspaceCommand,
        ctx: Ctx,
    ) -> Result<IamResponse, IamError> {
        let msg = Execute { command, metadata: ctx.metadata, idempotency: ctx.idempotency };
        self.inner.registry.execute(workspace, msg).await
    }

    /// The user `user_id`, which `workspace` (when given) must own.
    async fn owned_user(&self, workspace: &str, user_id: &str) -> Result<UserRecord, IamError> {
        if user_id.is_empty() {
            return Err(IamError::invalid("user_id is required"));
        }
        let user =
            self.inner.queries.user(user_id).await?.ok_or_else(|| IamError::not_found("user not found"))?;
        if !workspace.is_empty() && user.workspace != workspace {
            return Err(IamError::not_permitted("the user belongs to another workspace"));
        }
        Ok(user)
    }
}

/// Who asked, through what, under which idempotency key; and what authorisation looked up.
struct Ctx {
    metadata: Metadata,
    idempotency: Option<RequestKey>,
    /// revoke-api-key: the key's (workspace, user) when authorisation looked it up already.
    key_owner: Option<Option<(String, String)>>,
    /// Who writes an account (create-user, update-user): the rules for non-admins.
    writer: accounts::AccountWriter,
}

/// The requests (caller, request id) this process is applying now; a claim leaves the set
/// when dropped, whatever the outcome.
#[derive(Debug)]
struct InFlight<'a> {
    set: &'a Mutex<HashSet<(String, String)>>,
    key: (String, String),
}

impl<'a> InFlight<'a> {
    /// Refuses with [`IamError::request_in_progress`] while the same caller's request with
    /// the same id is being applied (another process finds the record, or the unique key).
    fn claim(set: &'a Mutex<HashSet<(String, String)>>, key: &RequestKey) -> Result<InFlight<'a>, IamError> {
        let key = (key.caller.clone(), key.request_id.clone());
        if !set.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone()) {
            return Err(IamError::request_in_progress());
        }
        Ok(InFlight { set, key })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.set.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
    }
}

fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, IamError> {
    if value.is_empty() {
        return Err(IamError::invalid(format!("{field} is required")));
    }
    Ok(value)
}

/// Refuses oversized identifier fields, and NUL characters in any text field (no PostgreSQL
/// text or jsonb value can hold one), before any work is done. The message names the field,
/// never its value.
fn check_sizes(req: &IamRequest) -> Result<(), IamError> {
    if let Some((field, _)) = req.text_fields().into_iter().find(|(_, v)| v.contains('\0')) {
        return Err(IamError::invalid(format!("{field} contains a NUL character")));
    }
    for (field, value) in [
        ("workspace", &req.workspace),
        ("actor", &req.actor),
        ("user_id", &req.user_id),
        ("username", &req.username),
        ("key_id", &req.key_id),
        ("request_id", &req.request_id),
        ("capability", &req.capability),
        ("cursor", &req.cursor),
        ("client_ip", &req.client_ip),
        ("duration", &req.duration),
    ] {
        if value.len() > MAX_ID_FIELD {
            return Err(IamError::invalid(format!("{field} is longer than {MAX_ID_FIELD} bytes")));
        }
    }
    if req.token.len() > MAX_TOKEN {
        return Err(IamError::invalid(format!("token is longer than {MAX_TOKEN} bytes")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorKind;

    #[test]
    fn oversized_identifiers_are_invalid_arguments() {
        let req = IamRequest { username: "x".repeat(MAX_ID_FIELD + 1), ..Default::default() };
        let err = check_sizes(&req).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
        assert!(err.message.starts_with("username"));
        assert!(check_sizes(&IamRequest { username: "x".repeat(MAX_ID_FIELD), ..Default::default() }).is_ok());
        let nul = IamRequest { actor: "a\0b".into(), ..Default::default() };
        assert_eq!(check_sizes(&nul).unwrap_err().kind, ErrorKind::InvalidArgument);
    }

    #[test]
    fn a_request_in_flight_is_claimed_once_per_caller_until_its_claim_is_dropped() {
        let set = Mutex::new(HashSet::new());
        let key =
            |caller: &str| RequestKey { caller: caller.into(), request_id: "r".into(), digest: "d".into() };
        let first = InFlight::claim(&set, &key("gateway")).unwrap();
        assert!(InFlight::claim(&set, &key("gateway")).unwrap_err().is_request_in_progress());
        let other = InFlight::claim(&set, &key("user:u")).expect("another caller's id is its own");
        drop(first);
        drop(other);
        assert!(InFlight::claim(&set, &key("gateway")).is_ok(), "free again once the first is done");
    }

    #[test]
    fn required_names_the_field() {
        assert_eq!(required("user_id", "").unwrap_err().message, "user_id is required");
        assert_eq!(required("user_id", "u").unwrap(), "u");
    }
}
