//! System operations: the JWT signing keys and the one-time bootstrap. Key pairs and the
//! bootstrap API key are generated here; the system actor records their public facts, the
//! store puts the private half in `signing_keys`, and no secret reaches the log.

use super::{Ctx, Service};
use crate::actors::SystemExecute;
use crate::crypto::{ApiKey, KeyAlgorithm, SigningKey, VerifyingKey};
use crate::domain::system::{NewKey, SystemCommand};
use crate::events::Metadata;
use crate::protocol::{IamError, IamResponse};
use crate::store::RequestKey;
use chrono::Utc;

/// What a bootstrap did.
#[derive(Debug)]
pub struct Bootstrapped {
    /// False when the system was already bootstrapped (nothing was created).
    pub applied: bool,
    pub admin_user_id: String,
    /// The admin key, when this call created it (one-time; `None` in token mode).
    pub admin_api_key: Option<ApiKey>,
}

fn new_key(algorithm: KeyAlgorithm) -> Result<(SigningKey, NewKey), IamError> {
    let key = SigningKey::generate_for(algorithm, Utc::now()).map_err(|e| {
        tracing::error!(error = %e, "generating a signing key failed");
        IamError::internal()
    })?;
    let public = NewKey { kid: key.kid.clone(), public_key: key.public_pem(), algorithm };
    Ok((key, public))
}

fn system_metadata(operation: &str) -> Metadata {
    Metadata {
        actor: String::new(),
        request_id: String::new(),
        source: "system".into(),
        operation: operation.into(),
    }
}

impl Service {
    pub(super) async fn signing_key_public(&self) -> Result<IamResponse, IamError> {
        let signer = self.inner.signer.get(&self.inner.queries).await?;
        Ok(IamResponse { signing_key_public: signer.active().public_pem(), ..Default::default() })
    }

    /// The keys that verify tokens now, the active ones first.
    pub async fn verifying_keys(&self) -> Result<Vec<VerifyingKey>, IamError> {
        let signer = self.inner.signer.get(&self.inner.queries).await?;
        Ok(signer.verifying_keys(chrono::Utc::now()).cloned().collect())
    }

    /// rotate-signing-key: a new EdDSA key, and a new ES256 key for the `/v1` tokens; the keys
    /// they replace keep verifying for `signing.grace_period`. The ES256 rotation is its own
    /// command, after the EdDSA one (whose reply a retry under the same request id replays).
    pub(super) async fn rotate_signing_key(&self, ctx: Ctx) -> Result<IamResponse, IamError> {
        let grace = self.inner.settings.signing_grace;
        let (key, public) = new_key(KeyAlgorithm::EdDSA)?;
        let msg = SystemExecute {
            command: SystemCommand::RotateSigningKey { key: public, grace },
            metadata: ctx.metadata.clone(),
            idempotency: ctx.idempotency,
            signing_key: Some(key),
        };
        let outcome = self.inner.registry.execute_system(msg).await?;
        if outcome.applied {
            let (key, public) = new_key(KeyAlgorithm::ES256)?;
            let msg = SystemExecute {
                command: SystemCommand::RotateSigningKey { key: public, grace },
                metadata: ctx.metadata,
                idempotency: None,
                signing_key: Some(key),
            };
            self.inner.registry.execute_system(msg).await?;
        }
        let signer = self.inner.signer.reload(&self.inner.queries).await?;
        Ok(IamResponse { signing_key_public: signer.active().public_pem(), ..outcome.response })
    }

    /// Creates a signing key of each algorithm when none is active (start-up).
    pub async fn ensure_signing_key(&self) -> Result<(), IamError> {
        for algorithm in [KeyAlgorithm::EdDSA, KeyAlgorithm::ES256] {
            let (key, public) = new_key(algorithm)?;
            let msg = SystemExecute {
                command: SystemCommand::EnsureSigningKey { key: public },
                metadata: system_metadata("ensure-signing-key"),
                idempotency: None,
                signing_key: Some(key),
            };
            self.inner.registry.execute_system(msg).await?;
        }
        self.inner.signer.reload(&self.inner.queries).await?;
        Ok(())
    }

    pub(super) async fn bootstrap_operation(&self, ctx: Ctx) -> Result<IamResponse, IamError> {
        let done = self.bootstrap(None, ctx.metadata, ctx.idempotency).await?;
        let mut r = IamResponse::default();
        if done.applied {
            r.bootstrap_admin_user_id = done.admin_user_id;
            r.bootstrap_admin_api_key = done.admin_api_key.map(ApiKey::into_plaintext).unwrap_or_default();
        }
        Ok(r)
    }

    /// Bootstraps until an admin exists: user `admin` (no usable password) in workspace
    /// `default` (created unless it exists), an API key (`token` when the operator chose one,
    /// else a fresh one) and a signing key. A no-op afterwards.
    pub async fn bootstrap(
        &self,
        token: Option<ApiKey>,
        metadata: Metadata,
        idempotency: Option<RequestKey>,
    ) -> Result<Bootstrapped, IamError> {
        let chosen = token.is_some();
        let api_key = token.unwrap_or_else(ApiKey::generate);
        let (key, public) = new_key(KeyAlgorithm::EdDSA)?;
        let admin_exists = self.inner.queries.bootstrapped().await?;
        let number = match admin_exists {
            true => None,
            false => Some(self.inner.queries.next_user_number().await?),
        };
        let msg = SystemExecute {
            command: SystemCommand::Bootstrap {
                admin_exists,
                number,
                user_id: uuid::Uuid::new_v4().to_string(),
                key_id: uuid::Uuid::new_v4().to_string(),
                key_hash: api_key.hash().to_tagged(),
                prefix: api_key.display_prefix(),
                signing_key: public,
            },
            metadata,
            idempotency,
            signing_key: Some(key),
        };
        let outcome = self.inner.registry.execute_system(msg).await?;
        self.inner.signer.reload(&self.inner.queries).await?;
        let applied = outcome.applied;
        Ok(Bootstrapped {
            applied,
            admin_user_id: outcome.response.bootstrap_admin_user_id,
            admin_api_key: (applied && !chosen).then_some(api_key),
        })
    }

    /// Start-up bootstrap (`bootstrap.on_start`, or `bootstrap.token`).
    pub async fn bootstrap_on_start(&self, token: Option<ApiKey>) -> Result<Bootstrapped, IamError> {
        self.bootstrap(token, system_metadata("bootstrap"), None).await
    }

    /// Netsoc's root account (`compat.root_password`): when `workspace` has no user yet,
    /// creates it if need be and `root` in it — admin, verified, renewed now, `root@tcd.ie`,
    /// "Root Netsoc", as upstream creates it — with `password`.
    /// True when it created root. Another process creating it first is no error.
    pub async fn ensure_root(&self, workspace: &str, password: String) -> Result<bool, IamError> {
        use crate::domain::workspace::{ProfileEdit, WorkspaceCommand};
        let ctx = |operation: &str| Ctx {
            metadata: system_metadata(operation),
            idempotency: None,
            key_owner: None,
            writer: super::accounts::AccountWriter::Admin,
        };
        if self.inner.queries.workspace(workspace).await?.is_none() {
            let create = WorkspaceCommand::CreateWorkspace { name: String::new() };
            match self.command(workspace, create, ctx("create-workspace")).await {
                Err(e) if e.kind != crate::protocol::ErrorKind::Duplicate => return Err(e),
                _ => {}
            }
        }
        let first = super::page::Page::from_request(1, "")?;
        if !self.inner.queries.users(Some(workspace), &first).await?.0.is_empty() {
            return Ok(false);
        }
        self.inner.settings.policy.check(&password, "root")?;
        let password_hash = self.inner.hasher.hash(password).await?;
        let command = WorkspaceCommand::CreateUser {
            user_id: uuid::Uuid::new_v4().to_string(),
            username: "root".into(),
            name: "Root Netsoc".into(),
            // As upstream creates it: Netsoc's OpenAPI document requires an email and names.
            email: "root@tcd.ie".into(),
            roles: vec![crate::authz::ADMIN_ROLE.to_owned()],
            enabled: true,
            must_change_password: false,
            password_hash,
            profile: ProfileEdit {
                first_name: Some("Root".into()),
                last_name: Some("Netsoc".into()),
                verified: Some(true),
                renewed: Some(Utc::now()),
                ..ProfileEdit::default()
            },
            self_registered: false,
            number: Some(self.inner.queries.next_user_number().await?),
        };
        match self.command(workspace, command, ctx("create-user")).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind == crate::protocol::ErrorKind::Duplicate => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Integer ids at start: a fresh `user_numbers` sequence (a database restored from the
    /// log) first moves past every id the log ever gave, deleted users' too; then each user
    /// created before ids existed gets the next one (`user.numbered`). How many were numbered.
    pub async fn number_users(&self) -> Result<usize, IamError> {
        let q = &self.inner.queries;
        let fresh: bool = q
            .rows("user_numbers_fresh", "SELECT NOT is_called FROM user_numbers", &[])
            .await?
            .first()
            .is_some_and(|r| r.get(0));
        if fresh {
            q.rows("user_numbers_floor", USER_NUMBERS_FLOOR, &[]).await?;
        }
        let unnumbered = q.rows("unnumbered_users", UNNUMBERED, &[]).await?;
        let ctx = || Ctx {
            metadata: system_metadata("number-user"),
            idempotency: None,
            key_owner: None,
            writer: super::accounts::AccountWriter::Admin,
        };
        for row in &unnumbered {
            let (user_id, workspace): (String, String) = (row.get(0), row.get(1));
            let number = q.next_user_number().await?;
            let command = crate::domain::workspace::WorkspaceCommand::NumberUser { user_id, number };
            self.command(&workspace, command, ctx()).await?;
        }
        Ok(unnumbered.len())
    }
}

/// Moves a fresh sequence past the largest id any `user.created` or `user.numbered` event holds.
const USER_NUMBERS_FLOOR: &str = "SELECT setval('user_numbers', m) FROM (SELECT max(coalesce( \
    (payload->>'number')::integer, 0)) AS m FROM events \
    WHERE event_type IN ('user.created', 'user.numbered')) AS ids WHERE m > 0";
const UNNUMBERED: &str = "SELECT id, workspace FROM users WHERE number IS NULL ORDER BY created, id";
