//! Password hashing (argon2id, OWASP parameters by default) and the password policy.
//!
//! Hashing and verification run on a pool of its own: one thread per core, each with the
//! argon2 memory (`memory_kib`) allocated once and reused. That is what makes a login cost
//! what the hash costs: on a 2-core machine, allocating and faulting in 19 MiB per hash made a
//! hash take up to 1.6 times as long, and running twice as many hashes at once as there are
//! cores cost another 10 % of throughput (docs/performance.md, *Login*). A burst of logins queues for the pool; an idle
//! thread frees its memory after [`IDLE`].

use crate::protocol::IamError;
use argon2::password_hash::{rand_core::OsRng, Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

/// Upper bound on a password's length in bytes: longer input is rejected before hashing.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A hashing thread that has had nothing to do for this long frees its argon2 memory.
pub const IDLE: Duration = Duration::from_secs(30);

/// The working memory of one argon2 computation, kept between computations.
#[derive(Default)]
pub struct Memory(Vec<Block>);

impl Memory {
    fn blocks(&mut self, params: &Params) -> &mut [Block] {
        let count = params.block_count();
        if self.0.len() < count {
            self.0 = vec![Block::default(); count];
        }
        &mut self.0[..count]
    }
}

type Job = Box<dyn FnOnce(&mut Memory) + Send>;

#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
    /// The pool's queue; its threads end when the last clone of the hasher is dropped.
    jobs: crossbeam_channel::Sender<Job>,
}

struct Inner {
    params: Params,
    /// A hash of a random password with the configured parameters: unknown users are verified
    /// against it so that their failures cost the same time as a wrong password.
    dummy_hash: String,
}

impl PasswordHasher {
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> anyhow::Result<Self> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let dummy_hash = hash_with(&params, &random_password(), &mut Memory::default())?;
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        for n in 0..workers {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("iamd-argon2-{n}"))
                .spawn(move || work(queue))
                .map_err(|e| anyhow::anyhow!("starting the password hashing threads: {e}"))?;
        }
        Ok(PasswordHasher { inner: Arc::new(Inner { params, dummy_hash }), jobs })
    }

    /// Hashes on the current thread, with memory of its own. Use [`PasswordHasher::hash`]
    /// from async code.
    pub fn hash_now(&self, password: &str) -> anyhow::Result<String> {
        hash_with(&self.inner.params, password, &mut Memory::default())
    }

    /// Hashes on the current thread in `memory` (kept by the caller between hashes).
    pub fn hash_in(&self, password: &str, memory: &mut Memory) -> anyhow::Result<String> {
        hash_with(&self.inner.params, password, memory)
    }

    /// Verifies on the current thread. A malformed stored hash verifies as false.
    pub fn verify_now(&self, encoded: &str, password: &str) -> bool {
        verify_with(encoded, password, &mut Memory::default())
    }

    /// Runs `f` on the pool; `None` when it could not (the pool is gone, or `f` panicked).
    async fn on_pool<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner, &mut Memory) -> T + Send + 'static,
    ) -> Option<T> {
        let (reply, result) = tokio::sync::oneshot::channel();
        let inner = self.inner.clone();
        let job: Job = Box::new(move |memory| {
            let _ = reply.send(f(&inner, memory));
        });
        self.jobs.send(job).ok()?;
        result.await.ok()
    }

    /// Hashes on the pool.
    pub async fn hash(&self, password: String) -> Result<String, IamError> {
        match self.on_pool(move |inner, memory| hash_with(&inner.params, &password, memory)).await {
            Some(Ok(hash)) => Ok(hash),
            Some(Err(e)) => {
                tracing::error!(error = %e, "password hashing failed");
                Err(IamError::internal())
            }
            None => {
                tracing::error!("password hashing failed: the hashing pool did not answer");
                Err(IamError::internal())
            }
        }
    }

    /// Verifies on the pool. `None` (unknown user, no password set) verifies against the
    /// dummy hash and returns false, taking the same time as a real failure.
    pub async fn verify(&self, encoded: Option<String>, password: String) -> bool {
        self.on_pool(move |inner, memory| match encoded {
            Some(encoded) => verify_with(&encoded, &password, memory),
            None => {
                let _ = verify_with(&inner.dummy_hash, &password, memory);
                false
            }
        })
        .await
        .unwrap_or(false)
    }
}

/// A hashing thread: runs jobs until every sender is gone, freeing its memory when idle.
fn work(queue: crossbeam_channel::Receiver<Job>) {
    let mut memory = Memory::default();
    loop {
        match queue.recv_timeout(IDLE) {
            Ok(job) => {
                // A panic drops the job's reply sender (its caller sees a failure); the
                // thread and its memory stay.
                if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut memory))).is_err() {
                    memory = Memory::default();
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => memory = Memory::default(),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// An argon2id PHC string of `password` with a fresh salt, computed in `memory`.
fn hash_with(params: &Params, password: &str, memory: &mut Memory) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt.decode_b64(&mut salt_bytes).map_err(|e| anyhow::anyhow!("argon2 salt: {e}"))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2
        .hash_password_into_with_memory(password.as_bytes(), salt_raw, &mut out, memory.blocks(params))
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: params.try_into().map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("argon2 output: {e}"))?),
    };
    Ok(phc.to_string())
}

/// Whether `encoded` is a bcrypt hash (`$2a$`, `$2b$`, `$2y$`): what Netsoc's iamd stored,
/// kept by `iamd import netsoc` and replaced by argon2id at the next login.
pub fn is_legacy(encoded: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| encoded.starts_with(p))
}

/// Whether `password` matches the PHC string `encoded` (any argon2 variant, version and
/// parameters it names, so older hashes keep verifying; or an imported bcrypt hash),
/// computed in `memory`; the outputs are compared in constant time. Anything malformed is
/// false.
fn verify_with(encoded: &str, password: &str, memory: &mut Memory) -> bool {
    if is_legacy(encoded) {
        // bcrypt compares in constant time itself.
        return bcrypt::verify(password, encoded).unwrap_or(false);
    }
    let Ok(parsed) = PasswordHash::new(encoded) else { return false };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else { return false };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params.clone());
    if argon2
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, memory.blocks(&params))
        .is_err()
    {
        return false;
    }
    Output::new(&out).is_ok_and(|computed| computed == expected)
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

    /// The pool's own encoder and verifier agree with the argon2 crate's, both ways, and a
    /// memory reused across hashes of different sizes gives the same answers.
    #[test]
    fn hashes_agree_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let h = fast();
        let ours = h.hash_now("tr0ub4dor&3").unwrap();
        let argon2 = Argon2::default();
        assert!(argon2.verify_password(b"tr0ub4dor&3", &PasswordHash::new(&ours).unwrap()).is_ok());
        let theirs =
            Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(2048, 2, 2, Some(40)).unwrap())
                .hash_password(b"hunter42", &SaltString::generate(&mut OsRng))
                .unwrap()
                .to_string();
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x10, Params::new(512, 3, 1, None).unwrap())
            .hash_password(b"hunter42", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        let mut memory = Memory::default();
        for _ in 0..2 {
            for encoded in [&theirs, &argon2i, &ours] {
                let right = if encoded == &ours { "tr0ub4dor&3" } else { "hunter42" };
                assert!(verify_with(encoded, right, &mut memory), "{encoded}");
                assert!(!verify_with(encoded, "hunter43", &mut memory), "{encoded}");
            }
        }
        assert!(!verify_with("$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ", "x", &mut memory));
        assert!(!verify_with("$scrypt$ln=4,r=8,p=1$c2FsdHNhbHQ$aGFzaA", "x", &mut memory));
    }

    #[tokio::test]
    async fn the_pool_hashes_and_verifies() {
        let h = fast();
        let hashes = futures_util::future::join_all((0..8).map(|i| h.hash(format!("password {i}")))).await;
        for (i, hash) in hashes.into_iter().enumerate() {
            let hash = hash.unwrap();
            assert!(h.verify(Some(hash.clone()), format!("password {i}")).await);
            assert!(!h.verify(Some(hash), format!("password {}", i + 1)).await);
        }
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

    #[test]
    fn an_imported_bcrypt_hash_verifies_and_is_known_as_legacy() {
        let hash = bcrypt::hash("hunter2222", 4).unwrap();
        assert!(is_legacy(&hash) && !is_legacy("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$abc"));
        let mut memory = Memory::default();
        assert!(verify_with(&hash, "hunter2222", &mut memory));
        assert!(!verify_with(&hash, "hunter2223", &mut memory));
        assert!(!verify_with("$2b$10$not-a-hash", "hunter2222", &mut memory));
    }
}
