//! Password hashing (argon2id, OWASP parameters by default) and the password policy.
//! Hashing and verification run on tokio's blocking pool, bounded by a semaphore so that a
//! burst of logins queues instead of allocating `memory_kib` per request without limit.

use crate::protocol::IamError;
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Upper bound on a password's length in bytes: longer input is rejected before hashing.
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    /// Bounds concurrent argon2 work (each one holds `memory_kib` of RAM).
    permits: Arc<Semaphore>,
    /// A hash of a random password with the configured parameters: unknown users are verified
    /// against it so that their failures cost the same time as a wrong password.
    dummy_hash: Arc<String>,
}

impl PasswordHasher {
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> anyhow::Result<Self> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let mut hasher = PasswordHasher {
            params,
            permits: Arc::new(Semaphore::new(workers * 2)),
            dummy_hash: Arc::new(String::new()),
        };
        let dummy = hasher.hash_now(&random_password())?;
        hasher.dummy_hash = Arc::new(dummy);
        Ok(hasher)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes on the current thread. Use [`PasswordHasher::hash`] from async code.
    pub fn hash_now(&self, password: &str) -> anyhow::Result<String> {
        use argon2::PasswordHasher as _;
        let salt = SaltString::generate(&mut OsRng);
        let hash = self
            .argon2()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
        Ok(hash.to_string())
    }

    /// Verifies on the current thread. A malformed stored hash verifies as false.
    pub fn verify_now(&self, encoded: &str, password: &str) -> bool {
        match PasswordHash::new(encoded) {
            // The parameters come from the encoded hash, so older hashes keep verifying.
            Ok(parsed) => self.argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
            Err(_) => false,
        }
    }

    /// Hashes on the blocking pool.
    pub async fn hash(&self, password: String) -> Result<String, IamError> {
        let _permit = self.permits.acquire().await.map_err(|_| IamError::internal())?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.hash_now(&password))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "password hashing task failed");
                IamError::internal()
            })?
            .map_err(|e| {
                tracing::error!(error = %e, "password hashing failed");
                IamError::internal()
            })
    }

    /// Verifies on the blocking pool. `None` (unknown user, no password set) verifies against
    /// the dummy hash and returns false, taking the same time as a real failure.
    pub async fn verify(&self, encoded: Option<String>, password: String) -> bool {
        let Ok(_permit) = self.permits.acquire().await else { return false };
        let this = self.clone();
        tokio::task::spawn_blocking(move || match encoded {
            Some(encoded) => this.verify_now(&encoded, &password),
            None => {
                let _ = this.verify_now(&this.dummy_hash, &password);
                false
            }
        })
        .await
        .unwrap_or(false)
    }
}

/// A random password of 24 characters from a 64-symbol alphabet (144 bits): temporary
/// passwords for reset-password, and the unusable password of the bootstrap admin.
pub fn random_password() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 18];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The service-level password policy (`weak-password`).
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    pub min_length: usize,
}

impl PasswordPolicy {
    pub fn check(&self, password: &str, username: &str) -> Result<(), IamError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(IamError::invalid(format!("password is longer than {MAX_PASSWORD_BYTES} bytes")));
        }
        if password.chars().count() < self.min_length {
            return Err(IamError::weak_password(format!(
                "password must be at least {} characters",
                self.min_length
            )));
        }
        if !username.is_empty() && password.trim().eq_ignore_ascii_case(username.trim()) {
            return Err(IamError::weak_password("password must not be the username"));
        }
        if password.chars().all(|c| c == password.chars().next().unwrap_or(' ')) {
            return Err(IamError::weak_password("password must not repeat one character"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorKind;

    fn fast() -> PasswordHasher {
        PasswordHasher::new(1024, 1, 1).unwrap()
    }

    #[test]
    fn hash_is_argon2id_and_verifies() {
        let h = fast();
        let enc = h.hash_now("correct horse battery").unwrap();
        assert!(enc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert!(h.verify_now(&enc, "correct horse battery"));
        assert!(!h.verify_now(&enc, "correct horse battery!"));
        assert!(!h.verify_now("not a hash", "x"));
    }

    #[test]
    fn default_owasp_parameters_are_accepted() {
        let h = PasswordHasher::new(19 * 1024, 2, 1).unwrap();
        assert!(h.hash_now("abc").unwrap().contains("m=19456,t=2,p=1"));
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        assert!(!fast().verify(None, "anything".into()).await);
    }

    #[test]
    fn policy_rules() {
        let p = PasswordPolicy { min_length: 12 };
        assert_eq!(p.check("short", "bob").unwrap_err().kind, ErrorKind::WeakPassword);
        assert_eq!(
            p.check("AliceInWonderland", "aliceinwonderland").unwrap_err().kind,
            ErrorKind::WeakPassword
        );
        assert_eq!(p.check("aaaaaaaaaaaaaa", "bob").unwrap_err().kind, ErrorKind::WeakPassword);
        assert_eq!(p.check(&"x".repeat(2000), "bob").unwrap_err().kind, ErrorKind::InvalidArgument);
        assert!(p.check("a long passphrase", "bob").is_ok());
    }

    #[test]
    fn random_passwords_differ_and_are_long() {
        let a = random_password();
        assert_eq!(a.len(), 24);
        assert_ne!(a, random_password());
    }
}
