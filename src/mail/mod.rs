//! Mail carrying an email token — a verification or a password-reset JWT — to a user, over
//! SMTP with `lettre` (`smtp.*`: STARTTLS when `smtp.tls`, optional credentials, a connect
//! timeout; `mail.*`: the sender, the subjects and the link templates). Plain text: the link
//! (`mail.verify_url` / `mail.reset_url` with the token in place of `{{.Token}}`) when the
//! request asked for HTML, else the raw token. A mail, its address and its token never reach
//! a log line: a failure is reported as a [`MailFailure`] category only.

use crate::config::{MailSettings, SmtpSettings};
use crate::events::MailPurpose;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::fmt;
use std::sync::Arc;

/// One mail to write.
#[derive(Debug, Clone, Copy)]
pub struct Letter<'a> {
    pub purpose: MailPurpose,
    pub username: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub address: &'a str,
    pub token: &'a str,
    /// A link (the request asked for HTML), else the raw token.
    pub link: bool,
}

/// Why a mail was not handed over, as a category (what an event and a log line may say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailFailure {
    /// `smtp.host` is empty: iamd sends no mail.
    NotConfigured,
    /// The account's address is not one a mail can go to.
    BadAddress,
    /// The server could not be reached, or TLS failed.
    Connection,
    /// The server did not answer in `smtp.connect_timeout`.
    Timeout,
    /// The server refused the mail (or the credentials).
    Rejected,
}

impl MailFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            MailFailure::NotConfigured => "not-configured",
            MailFailure::BadAddress => "bad-address",
            MailFailure::Connection => "connection",
            MailFailure::Timeout => "timeout",
            MailFailure::Rejected => "rejected",
        }
    }
}

impl fmt::Display for MailFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sends the mails; cheap to clone. [`Mailer::disabled`] (no `smtp.host`) sends none.
#[derive(Clone)]
pub struct Mailer {
    inner: Option<Arc<Transport>>,
}

struct Transport {
    smtp: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    subject_prefix: String,
    verify_url: String,
    reset_url: String,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer").field("enabled", &self.enabled()).finish_non_exhaustive()
    }
}

impl Mailer {
    pub fn disabled() -> Mailer {
        Mailer { inner: None }
    }

    /// The mailer `smtp` and `mail` describe (disabled while `smtp.host` is empty). Nothing
    /// connects yet: each mail opens its own connection.
    pub fn new(smtp: &SmtpSettings, mail: &MailSettings) -> anyhow::Result<Mailer> {
        if smtp.host.is_empty() {
            return Ok(Mailer::disabled());
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .timeout(Some(smtp.connect_timeout));
        if smtp.tls {
            let params = TlsParameters::new(smtp.host.clone())
                .map_err(|e| anyhow::anyhow!("smtp.tls: no TLS for {}: {e}", smtp.host))?;
            builder = builder.tls(Tls::Required(params));
        }
        if !smtp.username.is_empty() {
            builder = builder
                .credentials(Credentials::new(smtp.username.clone(), smtp.password.expose().to_owned()));
        }
        let parse = |key: &str, value: &str| {
            value.parse::<Mailbox>().map_err(|e| anyhow::anyhow!("{key} is not a mail address ({e})"))
        };
        let reply_to = match mail.reply_to.as_str() {
            "" => None,
            v => Some(parse("mail.reply_to", v)?),
        };
        Ok(Mailer {
            inner: Some(Arc::new(Transport {
                smtp: builder.build(),
                from: parse("mail.from", &mail.from)?,
                reply_to,
                subject_prefix: mail.subject_prefix.clone(),
                verify_url: mail.verify_url.clone(),
                reset_url: mail.reset_url.clone(),
            })),
        })
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Hands `letter` to the SMTP server.
    pub async fn send(&self, letter: &Letter<'_>) -> Result<(), MailFailure> {
        let Some(t) = &self.inner else { return Err(MailFailure::NotConfigured) };
        let address = letter.address.parse().map_err(|_| MailFailure::BadAddress)?;
        let name = format!("{} {}", letter.first_name, letter.last_name).trim().to_owned();
        let to = Mailbox::new((!name.is_empty()).then_some(name), address);
        let mut message = Message::builder()
            .from(t.from.clone())
            .to(to)
            .subject(t.subject(letter.purpose))
            .header(ContentType::TEXT_PLAIN);
        if let Some(reply_to) = &t.reply_to {
            message = message.reply_to(reply_to.clone());
        }
        let message = message.body(t.body(letter)).map_err(|_| MailFailure::BadAddress)?;
        t.smtp.send(message).await.map(|_| ()).map_err(|e| {
            if e.is_timeout() {
                MailFailure::Timeout
            } else if e.is_permanent() || e.is_transient() {
                MailFailure::Rejected
            } else {
                MailFailure::Connection
            }
        })
    }
}

impl Transport {
    fn subject(&self, purpose: MailPurpose) -> String {
        let what = match purpose {
            MailPurpose::Verification => "account verification",
            MailPurpose::PasswordReset => "account password reset",
        };
        format!("{} {what}", self.subject_prefix).trim().to_owned()
    }

    fn body(&self, letter: &Letter<'_>) -> String {
        let greeting = match letter.first_name {
            "" => format!("Hello {},", letter.username),
            first => format!("Hello {first},"),
        };
        let (template, ask, token_ask) = match letter.purpose {
            MailPurpose::Verification => (
                &self.verify_url,
                "To verify the email address of your account, open this link:",
                "To verify the email address of your account, enter this verification token:",
            ),
            MailPurpose::PasswordReset => (
                &self.reset_url,
                "To choose a new password for your account, open this link:",
                "To choose a new password for your account, enter this reset token:",
            ),
        };
        let (ask, what) = if letter.link {
            (ask, render_url(template, letter.token))
        } else {
            (token_ask, letter.token.to_owned())
        };
        format!(
            "{greeting}\n\n{ask}\n\n{what}\n\nIt works once, and only for a while. If you did not ask for this \
             (account {}), ignore this mail.\n",
            letter.username
        )
    }
}

/// `template` with the token in place of Netsoc's `{{.Token}}` (or `{{ .Token }}`, or
/// `{token}`).
pub fn render_url(template: &str, token: &str) -> String {
    template.replace("{{.Token}}", token).replace("{{ .Token }}", token).replace("{token}", token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailer() -> Mailer {
        let smtp = SmtpSettings { host: "127.0.0.1".into(), tls: false, ..SmtpSettings::default() };
        Mailer::new(&smtp, &MailSettings::default()).unwrap()
    }

    fn letter(link: bool) -> Letter<'static> {
        Letter {
            purpose: MailPurpose::Verification,
            username: "ada",
            first_name: "Ada",
            last_name: "Lovelace",
            address: "ada@example.org",
            token: "aaa.bbb.ccc",
            link,
        }
    }

    #[test]
    fn netsocs_placeholder_and_ours_become_the_token() {
        assert_eq!(render_url("https://a.example/v?t={{.Token}}", "T"), "https://a.example/v?t=T");
        assert_eq!(render_url("https://a.example/v/{{ .Token }}", "T"), "https://a.example/v/T");
        assert_eq!(render_url("https://a.example/v/{token}", "T"), "https://a.example/v/T");
    }

    #[test]
    fn a_link_when_html_was_asked_for_else_the_raw_token() {
        let m = mailer();
        let t = m.inner.as_ref().unwrap();
        let link = t.body(&letter(true));
        assert!(link.contains("http://localhost:8080/verify?token=aaa.bbb.ccc"), "{link}");
        let raw = t.body(&letter(false));
        assert!(raw.contains("\n\naaa.bbb.ccc\n\n") && !raw.contains("http"), "{raw}");
        assert_eq!(t.subject(MailPurpose::PasswordReset), "iamd account password reset");
    }

    #[test]
    fn no_host_no_mail() {
        let m = Mailer::new(&SmtpSettings::default(), &MailSettings::default()).unwrap();
        assert!(!m.enabled());
        let sent = actix_rt::System::new().block_on(m.send(&letter(false)));
        assert_eq!(sent, Err(MailFailure::NotConfigured));
    }
}
