//! Secrets at rest: the key-encryption key (KEK) that seals private signing keys and the
//! digest key with XChaCha20-Poly1305 (what is sealed is bound to its name, e.g. the kid, as
//! associated data), and the digest key whose HMAC-SHA256 lets iamd compare values it must
//! not keep (an unknown username, a request under an idempotency key) without storing them.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

const NONCE_LEN: usize = 24;
/// The first byte of a sealed value: the format, so a later one can be told apart.
const VERSION: u8 = 1;

/// The key-encryption key. Never printed.
#[derive(Clone)]
pub struct Kek {
    key: [u8; 32],
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kek({})", self.fingerprint())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The value was sealed with another KEK, or was altered.
    #[error("it does not open with this key-encryption key (another KEK sealed it, or it was altered)")]
    WrongKey,
    #[error("it is not a sealed value of a known format")]
    Format,
}

impl Kek {
    /// 32 bytes in standard or URL-safe base64 (padding optional); surrounding whitespace is
    /// ignored. The error never repeats the input.
    pub fn from_base64(text: &str) -> anyhow::Result<Kek> {
        let text = text.trim();
        let bytes = [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| anyhow::anyhow!("the key-encryption key is not base64"))?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            anyhow::anyhow!("the key-encryption key must be 32 bytes, this one is {}", b.len())
        })?;
        Ok(Kek { key })
    }

    /// A fresh random key, as `iamd signing-keys new-kek` prints it.
    pub fn generate() -> Kek {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Kek { key }
    }

    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.key)
    }

    /// Names the key without revealing it (the first 8 bytes of a SHA-256 over a label and
    /// the key, hex): stored beside what it sealed so a wrong KEK is named at start.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"iamd kek fingerprint\0");
        h.update(self.key);
        hex::encode(&h.finalize()[..8])
    }

    /// `plaintext` sealed, bound to `name` (the kid): version ‖ nonce ‖ ciphertext+tag.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new((&self.key).into());
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: name.as_bytes() })
            .expect("XChaCha20-Poly1305 seals any length iamd stores");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// What [`Kek::seal`] sealed under `name`.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != VERSION {
            return Err(SealError::Format);
        }
        let (nonce, body) = sealed[1..].split_at(NONCE_LEN);
        XChaCha20Poly1305::new((&self.key).into())
            .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad: name.as_bytes() })
            .map_err(|_| SealError::WrongKey)
    }
}

/// Why a stored secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UnsealError {
    #[error(
        "{name} is sealed with key-encryption key {sealed_by} and no KEK is configured: set \
         signing.kek_file (IAMD_SIGNING_KEK_FILE) or signing.kek (IAMD_SIGNING_KEK)"
    )]
    NoKek { name: String, sealed_by: String },
    #[error(
        "the configured key-encryption key ({configured}) is not the one that sealed {name} \
         ({sealed_by}): configure that KEK, or rewrap with `iamd signing-keys rewrap --old-kek-file`"
    )]
    WrongKek { name: String, sealed_by: String, configured: String },
    #[error("{name} does not open with key-encryption key {sealed_by}: {cause}")]
    Damaged { name: String, sealed_by: String, cause: SealError },
}

/// A secret as iamd stores it: sealed under `kek` (and the KEK's fingerprint beside it), or
/// as it is (no fingerprint) when no KEK is configured.
pub fn store(kek: Option<&Kek>, name: &str, plaintext: &[u8]) -> (Vec<u8>, Option<String>) {
    match kek {
        Some(kek) => (kek.seal(name, plaintext), Some(kek.fingerprint())),
        None => (plaintext.to_vec(), None),
    }
}

/// The secret [`store`] kept as `stored`, sealed by the KEK `sealed_by` names (None: not
/// sealed). An unsealed secret reads with or without a KEK (`iamd signing-keys rewrap` seals it).
pub fn load(
    kek: Option<&Kek>,
    name: &str,
    stored: &[u8],
    sealed_by: Option<&str>,
) -> Result<Vec<u8>, UnsealError> {
    let Some(sealed_by) = sealed_by else { return Ok(stored.to_vec()) };
    let (name, sealed_by) = (name.to_owned(), sealed_by.to_owned());
    let Some(kek) = kek else { return Err(UnsealError::NoKek { name, sealed_by }) };
    if kek.fingerprint() != sealed_by {
        return Err(UnsealError::WrongKek { name, sealed_by, configured: kek.fingerprint() });
    }
    kek.open(&name, stored).map_err(|cause| UnsealError::Damaged { name, sealed_by, cause })
}

/// The name a signing key's private half is sealed under (its associated data).
pub fn signing_key_name(kid: &str) -> String {
    format!("signing key {kid}")
}

/// The server-held key of iamd's keyed digests. Never printed.
#[derive(Clone)]
pub struct DigestKey {
    key: [u8; 32],
}

impl fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DigestKey([redacted])")
    }
}

impl DigestKey {
    pub fn generate() -> DigestKey {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        DigestKey { key }
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<DigestKey> {
        Some(DigestKey { key: bytes.try_into().ok()? })
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// HMAC-SHA256 over `purpose` ‖ 0 ‖ `data`, hex: equal inputs give equal digests, and
    /// without the key no guess can be checked against one. `purpose` keeps the digests of
    /// different uses apart.
    pub fn digest(&self, purpose: &str, data: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_and_name_only() {
        let kek = Kek::generate();
        let sealed = kek.seal("kid-1", b"private half");
        assert!(!sealed.windows(12).any(|w| w == b"private half"));
        assert_eq!(kek.open("kid-1", &sealed).unwrap(), b"private half");
        assert!(matches!(kek.open("kid-2", &sealed), Err(SealError::WrongKey)));
        assert!(matches!(Kek::generate().open("kid-1", &sealed), Err(SealError::WrongKey)));
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(matches!(kek.open("kid-1", &altered), Err(SealError::WrongKey)));
        assert!(matches!(kek.open("kid-1", b"plain pkcs8 bytes, not sealed at all"), Err(SealError::Format)));
    }

    #[test]
    fn a_stored_secret_names_the_kek_it_needs() {
        let (kek, other) = (Kek::generate(), Kek::generate());
        let (stored, sealed_by) = store(Some(&kek), "signing key k1", b"secret");
        assert_eq!(sealed_by.as_deref(), Some(kek.fingerprint().as_str()));
        assert_eq!(load(Some(&kek), "signing key k1", &stored, sealed_by.as_deref()).unwrap(), b"secret");
        let no_kek = load(None, "signing key k1", &stored, sealed_by.as_deref()).unwrap_err().to_string();
        assert!(no_kek.contains("no KEK is configured") && !no_kek.contains('\n'), "{no_kek}");
        let wrong =
            load(Some(&other), "signing key k1", &stored, sealed_by.as_deref()).unwrap_err().to_string();
        assert!(wrong.contains(&kek.fingerprint()) && wrong.contains(&other.fingerprint()), "{wrong}");
        assert!(!wrong.contains(&kek.to_base64()) && !wrong.contains(&other.to_base64()));
        let (plain, none) = store(None, "signing key k1", b"secret");
        assert_eq!((plain.as_slice(), none), (&b"secret"[..], None));
        assert_eq!(load(Some(&kek), "signing key k1", b"secret", None).unwrap(), b"secret");
    }

    #[test]
    fn a_kek_is_32_bytes_of_base64_and_its_errors_never_repeat_it() {
        let kek = Kek::generate();
        let again = Kek::from_base64(&format!("  {}\n", kek.to_base64())).unwrap();
        assert_eq!(again.fingerprint(), kek.fingerprint());
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
        let err = Kek::from_base64(&short).unwrap_err().to_string();
        assert!(err.contains("32 bytes") && !err.contains(&short), "{err}");
        let err = Kek::from_base64("not base64 at all!").unwrap_err().to_string();
        assert!(!err.contains("at all"), "{err}");
        assert!(!format!("{kek:?}").contains(&kek.to_base64()));
    }

    #[test]
    fn digests_are_keyed_and_kept_apart_by_purpose() {
        let key = DigestKey::generate();
        assert_eq!(key.digest("username", b"admin"), key.digest("username", b"admin"));
        assert_ne!(key.digest("username", b"admin"), key.digest("request", b"admin"));
        assert_ne!(key.digest("username", b"admin"), DigestKey::generate().digest("username", b"admin"));
        assert_eq!(key.digest("username", b"admin").len(), 64);
    }
}
