//! People's accounts as Netsoc's iamd has them (docs/accounts.md): the rules non-admins are
//! held to (reserved usernames, the email pattern, self-registration), and the email-token
//! flows — verification and password reset — whose tokens are EdDSA JWTs with their own
//! audience, bound to the account version (so each works once) and expiring after
//! `jwt.email_validity`. Every mail is a `mail.sent` event, sent or failed; the token and the
//! mail are never stored or logged.
//!
//! Asking for a mail (request-verification, request-password-reset) answers the same whether
//! or not the account exists, is verified or has an address; only a mail that could not be
//! sent is reported (`internal-error`), because the caller must learn that.

use super::queries::Credentials;
use super::{Ctx, Service};
use crate::authn_audit::{clip, Attempt, AuthOperation, CredentialKind, Origin, Reason};
use crate::crypto::password::MAX_PASSWORD_BYTES;
use crate::crypto::{Claims, NetsocClaims};
use crate::domain::workspace::WorkspaceCommand;
use crate::events::{MailPurpose, Metadata};
use crate::mail::{Letter, MailFailure};
use crate::protocol::{ErrorKind, IamError, IamRequest, IamResponse, UserInput, UserRecord};
use chrono::Utc;

/// What `accounts.*` asks of callers who are no admin.
#[derive(Debug, Clone, Default)]
pub struct AccountRules {
    /// Anyone may create an account, in `registration_workspace`.
    pub self_registration: bool,
    pub registration_workspace: String,
    /// Non-admins' emails must match it.
    pub email_pattern: Option<regex::Regex>,
    /// Usernames only an admin may give.
    pub reserved_usernames: Vec<String>,
}

impl AccountRules {
    /// Refuses a username or an email a non-admin may not give (`operation-not-permitted`).
    pub fn check(&self, username: &str, email: &str) -> Result<(), IamError> {
        if !username.is_empty()
            && self.reserved_usernames.iter().any(|r| crate::domain::username::same(r, username))
        {
            return Err(IamError::not_permitted("this username is reserved"));
        }
        if let Some(pattern) = &self.email_pattern {
            if !email.is_empty() && !pattern.is_match(email) {
                return Err(IamError::not_permitted("this email address is not accepted here"));
            }
        }
        Ok(())
    }
}

/// Who is writing an account, for the rules above.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum AccountWriter {
    /// The gateway or an admin: no account rule applies.
    #[default]
    Admin,
    /// An authenticated user without the admin role.
    User,
    /// Nobody proven: self-registration.
    Anonymous,
}

impl Service {
    /// The one place every password and email-token check passes, with what it names (the
    /// attempt): the outcome is recorded in the authentication audit, whatever it is. A
    /// brute-force throttle belongs here, in front of `check`.
    pub(super) async fn checked<T>(
        &self,
        mut attempt: Attempt,
        check: impl AsyncFnOnce(&mut Attempt) -> Result<T, IamError>,
    ) -> Result<T, IamError> {
        let result = check(&mut attempt).await;
        self.inner.authentications.record(attempt);
        result
    }

    /// create-user's account rules: self-registration (anonymous) puts the account in
    /// `accounts.registration_workspace`, unverified, with no role and with an email; a
    /// non-admin's username and email pass [`AccountRules::check`].
    pub(super) fn account_create_rules(
        &self,
        writer: AccountWriter,
        workspace: &mut String,
        input: &UserInput,
    ) -> Result<(), IamError> {
        let rules = &self.inner.settings.accounts;
        if writer == AccountWriter::Anonymous {
            if !rules.self_registration {
                return Err(IamError::not_permitted("self-registration is off"));
            }
            let named = [workspace.as_str(), input.workspace.as_str()];
            if named.iter().any(|w| !w.is_empty() && *w != rules.registration_workspace) {
                return Err(IamError::not_permitted(
                    "self-registration creates accounts in its own workspace only",
                ));
            }
            *workspace = rules.registration_workspace.clone();
            if input.roles.as_ref().is_some_and(|r| !r.is_empty())
                || input.verified.is_some()
                || !input.renewed.is_empty()
                || input.enabled == Some(false)
                || input.must_change_password == Some(true)
            {
                return Err(IamError::not_permitted(
                    "only an admin gives roles, or sets verified, renewed, enabled or must_change_password",
                ));
            }
            if input.email.is_empty() {
                return Err(IamError::invalid("user.email is required to register"));
            }
        }
        if writer != AccountWriter::Admin {
            rules.check(&input.username, &input.email)?;
        }
        Ok(())
    }

    /// update-user's account rules: a non-admin's new username and email pass
    /// [`AccountRules::check`].
    pub(super) fn account_update_rules(
        &self,
        writer: AccountWriter,
        input: &UserInput,
    ) -> Result<(), IamError> {
        if writer == AccountWriter::Admin {
            return Ok(());
        }
        self.inner.settings.accounts.check(&input.username, &input.email)
    }

    /// After a create or an update: a verification mail when the account has an address it
    /// has not proven, and either was just created or just changed its address (`previous`).
    /// A mail that could not be sent turns the reply into `internal-error`, still carrying the
    /// user (which stays as written). A replayed reply sends nothing. `netsoc`: the token is a
    /// `/v1` email token (the request came through Netsoc's surface).
    pub(super) async fn verify_after_write(
        &self,
        reply: IamResponse,
        previous_email: Option<&str>,
        link: bool,
        netsoc: bool,
        metadata: Metadata,
    ) -> IamResponse {
        let mailer = &self.inner.settings.mailer;
        let Some(user) = reply.user.as_ref().filter(|_| reply.error.is_none() && !reply.replayed) else {
            return reply;
        };
        let new_address = previous_email.is_none_or(|old| old != user.email);
        if !mailer.enabled() || user.email.is_empty() || user.verified || !new_address {
            return reply;
        }
        let version = match self.inner.queries.credentials_by_id(&user.id).await {
            Ok(Some(c)) => c.account_version,
            Ok(None) => return reply,
            Err(e) => return IamResponse { user: reply.user, ..IamResponse::error(e) },
        };
        let netsoc = match netsoc {
            false => None,
            true => match self.inner.queries.user_number(&user.id).await {
                Ok(number) => number,
                Err(e) => return IamResponse { user: reply.user, ..IamResponse::error(e) },
            },
        };
        match self.mail_token(user, version, MailPurpose::Verification, link, netsoc, metadata).await {
            Ok(()) => reply,
            Err(e) => IamResponse { user: reply.user, ..IamResponse::error(e) },
        }
    }

    /// request-verification and request-password-reset: mails a token for `purpose` to the
    /// account named by `user_id` or `username` when it is enabled and has an address — one it
    /// has not proven for a verification, a proven one for a reset.
    pub(super) async fn request_mail(
        &self,
        req: IamRequest,
        ctx: Ctx,
        purpose: MailPurpose,
    ) -> Result<IamResponse, IamError> {
        let Some(user) = self.named_account(&req).await? else { return Ok(IamResponse::default()) };
        let due = match purpose {
            MailPurpose::Verification => !user.record.verified,
            MailPurpose::PasswordReset => user.record.verified,
        };
        if user.record.email.is_empty() || !due || !user.usable {
            return Ok(IamResponse::default());
        }
        self.mail_token(&user.record, user.account_version, purpose, req.email_link, None, ctx.metadata)
            .await?;
        Ok(IamResponse::default())
    }

    /// verify-email: the verification token's account becomes verified (which moves its
    /// version on: the token works once, and every earlier session ends).
    pub(super) async fn verify_email(
        &self,
        req: IamRequest,
        origin: &Origin,
        ctx: Ctx,
    ) -> Result<IamResponse, IamError> {
        let attempt = Attempt::new(AuthOperation::VerifyEmail, CredentialKind::Jwt, origin, &req.request_id);
        self.checked(attempt, async |attempt| {
            let (user, version) =
                self.email_token_holder(&req.token, MailPurpose::Verification, attempt).await?;
            let command =
                WorkspaceCommand::VerifyEmail { user_id: user.record.id.clone(), token_version: version };
            let result = self.command(&user.record.workspace, command, ctx).await;
            attempt.reason = command_reason(&result);
            result
        })
        .await
    }

    /// complete-password-reset: the reset token's account gets `new_password` (the policy
    /// applies; a refused password leaves the token usable), which moves its version on.
    pub(super) async fn complete_password_reset(
        &self,
        req: IamRequest,
        origin: &Origin,
        ctx: Ctx,
    ) -> Result<IamResponse, IamError> {
        super::required("new_password", &req.new_password)?;
        if req.new_password.len() > MAX_PASSWORD_BYTES {
            return Err(IamError::invalid(format!("new_password is longer than {MAX_PASSWORD_BYTES} bytes")));
        }
        let attempt =
            Attempt::new(AuthOperation::CompletePasswordReset, CredentialKind::Jwt, origin, &req.request_id);
        self.checked(attempt, async |attempt| {
            let (user, version) =
                self.email_token_holder(&req.token, MailPurpose::PasswordReset, attempt).await?;
            self.inner.settings.policy.check(&req.new_password, &user.record.username)?;
            let new_hash = self.inner.hasher.hash(req.new_password).await?;
            let command = WorkspaceCommand::CompletePasswordReset {
                user_id: user.record.id.clone(),
                token_version: version,
                new_hash,
            };
            let result = self.command(&user.record.workspace, command, ctx).await;
            attempt.reason = command_reason(&result);
            result
        })
        .await
    }

    /// The account an email token for `purpose` names, with the version it was issued at,
    /// when the token is one iamd signed for that purpose and has not expired; anything else
    /// is the one `auth-failed` (`attempt` learns why). Whether the version is still current
    /// is the command's to decide, where no second use can race it.
    async fn email_token_holder(
        &self,
        token: &str,
        purpose: MailPurpose,
        attempt: &mut Attempt,
    ) -> Result<(Credentials, i64), IamError> {
        let refuse = |attempt: &mut Attempt, reason| {
            attempt.reason = reason;
            Err(IamError::auth_failed())
        };
        if token.is_empty() || token.len() > super::MAX_TOKEN {
            return refuse(attempt, Reason::Malformed);
        }
        let now = Utc::now();
        let signer = self.inner.signer.get(&self.inner.queries).await?;
        let issuer = &self.inner.settings.jwt_issuer;
        let Some(claims) = signer.verify_signed(token, issuer, now, Some(purpose.audience())) else {
            return refuse(attempt, Reason::InvalidToken);
        };
        let lifetime = self.inner.settings.email_validity.num_seconds();
        if claims.exp <= now.timestamp() || !claims.times_plausible(now.timestamp(), lifetime) {
            return refuse(attempt, Reason::InvalidToken);
        }
        attempt.user_id = clip(&claims.sub);
        attempt.workspace = clip(&claims.workspace);
        let Some(user) = self.inner.queries.credentials_by_id(&claims.sub).await? else {
            return refuse(attempt, Reason::UnknownUser);
        };
        attempt.username = clip(&user.record.username);
        if !user.usable {
            return refuse(attempt, Reason::Disabled);
        }
        if user.account_version != claims.version {
            return refuse(attempt, Reason::StaleToken);
        }
        Ok((user, claims.version))
    }

    /// Mails `user` a token for `purpose`, bound to account `version`, and records it (a
    /// `mail.sent` event, with the failure's category when it failed). A failure is reported
    /// as `internal-error` naming its category.
    pub(super) async fn mail_token(
        &self,
        user: &UserRecord,
        version: i64,
        purpose: MailPurpose,
        link: bool,
        netsoc: Option<i32>,
        metadata: Metadata,
    ) -> Result<(), IamError> {
        let signer = self.inner.signer.get(&self.inner.queries).await?;
        let now = Utc::now();
        let expires = now + self.inner.settings.email_validity;
        let token_id = uuid::Uuid::new_v4().to_string();
        let signed = match netsoc {
            // A `/v1` email token, as Netsoc's iamd writes it: ES256, `sub` the integer id.
            Some(number) => signer.sign_netsoc(&NetsocClaims {
                sub: number.to_string(),
                iat: now.timestamp(),
                nbf: now.timestamp(),
                exp: expires.timestamp(),
                iss: self.inner.settings.jwt_issuer.clone(),
                aud: vec![purpose.audience().to_owned()],
                is_admin: None,
                version,
                jti: Some(token_id.clone()),
            }),
            None => signer.sign(&Claims {
                aud: Some(purpose.audience().to_owned()),
                jti: Some(token_id.clone()),
                ..Claims::new(
                    &self.inner.settings.jwt_issuer,
                    &user.id,
                    &user.workspace,
                    Vec::new(),
                    version,
                    now.timestamp(),
                    expires.timestamp(),
                )
            }),
        };
        let token = signed.map_err(|e| {
            tracing::error!(error = %e, "signing an email token failed");
            IamError::internal()
        })?;
        let letter = Letter {
            purpose,
            username: &user.username,
            first_name: &user.first_name,
            last_name: &user.last_name,
            address: &user.email,
            token: &token,
            link,
        };
        let sent = self.inner.settings.mailer.send(&letter).await;
        let failure = sent.err();
        if let Some(f) = failure {
            tracing::warn!(user_id = %user.id, purpose = purpose.as_str(), failure = f.as_str(), "a mail could not be sent");
        }
        let command = WorkspaceCommand::RecordMail {
            user_id: user.id.clone(),
            purpose,
            token_id,
            expires,
            failure: failure.map(|f| f.as_str().to_owned()),
        };
        let ctx = Ctx { metadata, idempotency: None, key_owner: None, writer: AccountWriter::Admin };
        self.command(&user.workspace, command, ctx).await?;
        match failure {
            None => Ok(()),
            Some(f) => Err(mail_failed(purpose, f)),
        }
    }

    /// Refuses when no mail can be sent at all (no `smtp.host`): the deployment offers no mail,
    /// which no caller can mend (`operation-not-permitted`).
    pub(super) fn mail_ready(&self) -> Result<(), IamError> {
        if self.inner.settings.mailer.enabled() {
            return Ok(());
        }
        Err(IamError::not_permitted("iamd sends no mail here: smtp.host is not configured"))
    }

    /// The account `user_id` or `username` names (`workspace`, when given, must own it),
    /// once the arguments hold and mail can be sent at all.
    async fn named_account(&self, req: &IamRequest) -> Result<Option<Credentials>, IamError> {
        let (id, name) = (req.user_id.as_str(), req.username.as_str());
        match (id, name) {
            ("", "") => return Err(IamError::invalid("user_id or username is required")),
            (_, "") | ("", _) => {}
            _ => return Err(IamError::invalid("give user_id or username, not both")),
        }
        self.mail_ready()?;
        let found = match id {
            "" => self.inner.queries.credentials_by_username(name).await?,
            id => self.inner.queries.credentials_by_id(id).await?,
        };
        Ok(found.filter(|c| req.workspace.is_empty() || c.record.workspace == req.workspace))
    }
}

/// The audit reason of an email-token command's outcome: a refusal there is a token that no
/// longer holds (used already, or its account changed).
fn command_reason(result: &Result<IamResponse, IamError>) -> Reason {
    match result {
        Ok(_) => Reason::Ok,
        Err(e) if e.kind == ErrorKind::InternalError => Reason::Error,
        Err(_) => Reason::StaleToken,
    }
}

fn mail_failed(purpose: MailPurpose, failure: MailFailure) -> IamError {
    let what = match purpose {
        MailPurpose::Verification => "verification",
        MailPurpose::PasswordReset => "password reset",
    };
    IamError::new(ErrorKind::InternalError, format!("the {what} mail could not be sent ({failure})"))
}
