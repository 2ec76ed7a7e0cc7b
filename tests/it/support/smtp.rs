//! [`SmtpServer`]: a real SMTP server on loopback — Python's `aiosmtpd` from PyPI, which
//! `make test` installs (`scripts/smtp.sh`; `IAMD_TEST_SMTP` names its Python) — delivering
//! into a Maildir the test reads. Stopped when dropped, or by [`SmtpServer::stop`].

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Python with aiosmtpd: `IAMD_TEST_SMTP` (set by `make test`), else `scripts/smtp.sh`.
fn python() -> PathBuf {
    if let Some(p) = std::env::var("IAMD_TEST_SMTP").ok().filter(|p| !p.trim().is_empty()) {
        return PathBuf::from(p);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/smtp.sh");
    let out = Command::new(script).stderr(Stdio::inherit()).output().expect("running scripts/smtp.sh");
    assert!(out.status.success(), "scripts/smtp.sh failed: run `make test` (it installs aiosmtpd)");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// One mail as the server received it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub text: String,
}

impl Mail {
    /// The value of header `name` (first occurrence).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.text.split("\n\n").next().unwrap_or_default();
        let prefix = format!("{}:", name.to_ascii_lowercase());
        head.lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    }

    /// The body, with quoted-printable soft line breaks joined.
    pub fn body(&self) -> String {
        let body = self.text.split_once("\n\n").map(|(_, b)| b).unwrap_or_default();
        body.replace("=\n", "").replace("=3D", "=")
    }

    /// The JWT the mail carries (three base64url parts), bare or in a link.
    pub fn token(&self) -> String {
        let body = self.body();
        body.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
            .find(|w| w.split('.').count() == 3 && w.len() > 40 && w.starts_with("ey"))
            .unwrap_or_else(|| panic!("no token in the mail: {body}"))
            .to_owned()
    }
}

pub struct SmtpServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        let port = super::broker::free_port();
        let dir = tempfile::tempdir().expect("a maildir");
        let mut server = SmtpServer { port, child: None, dir };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let maildir = self.dir.path().join("mail");
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{}", self.port)])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting aiosmtpd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server: mail sent afterwards fails to connect.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The `IAMD_*` settings that send iamd's mail here.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("IAMD_SMTP_HOST", "127.0.0.1".to_owned()),
            ("IAMD_SMTP_PORT", self.port.to_string()),
            ("IAMD_SMTP_TLS", "false".to_owned()),
            ("IAMD_SMTP_CONNECT_TIMEOUT", "5s".to_owned()),
            ("IAMD_MAIL_FROM", "Accounts <accounts@iamd.test>".to_owned()),
            ("IAMD_MAIL_REPLY_TO", "help@iamd.test".to_owned()),
            ("IAMD_MAIL_VERIFY_URL", "https://accounts.iamd.test/verify/{{.Token}}".to_owned()),
            ("IAMD_MAIL_RESET_URL", "https://accounts.iamd.test/reset?t={{.Token}}".to_owned()),
        ]
    }

    /// Every mail received so far, oldest first.
    pub fn mails(&self) -> Vec<Mail> {
        let new = self.dir.path().join("mail").join("new");
        let mut files: Vec<_> = std::fs::read_dir(&new)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
            .into_iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|t| Mail { text: t.replace("\r\n", "\n") })
            .collect()
    }

    /// The mails to `address`, waiting up to 10 s for there to be at least `count`.
    pub fn wait_for(&self, address: &str, count: usize) -> Vec<Mail> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let to: Vec<Mail> = self
                .mails()
                .into_iter()
                .filter(|m| m.header("X-RcptTo").is_some_and(|r| r.contains(address)))
                .collect();
            if to.len() >= count || Instant::now() >= deadline {
                assert!(to.len() >= count, "{} mail(s) to {address}, expected {count}", to.len());
                return to;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}
