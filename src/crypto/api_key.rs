//! API keys: `tg_` + base64url of 24 random bytes (192 bits), stored only as SHA-256.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

pub const API_KEY_PREFIX: &str = "tg_";
/// Keys longer than this cannot be ours; they are refused before hashing.
pub const MAX_API_KEY_LEN: usize = 256;

/// A plaintext API key. Shown once at creation; never logged (Debug is redacted).
pub struct ApiKey(String);

impl ApiKey {
    pub fn generate() -> ApiKey {
        let mut bytes = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        ApiKey(format!("{API_KEY_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Wraps an operator-chosen key (bootstrap token mode).
    pub fn from_plaintext(s: String) -> ApiKey {
        ApiKey(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_plaintext(self) -> String {
        self.0
    }

    /// The first 4 characters, for telling keys apart in lists.
    pub fn display_prefix(&self) -> String {
        self.0.chars().take(4).collect()
    }

    pub fn hash(&self) -> ApiKeyHash {
        ApiKeyHash::of(&self.0)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

/// SHA-256 of a plaintext key: the primary key of the `api_keys` table.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApiKeyHash(pub [u8; 32]);

impl ApiKeyHash {
    pub fn of(plaintext: &str) -> ApiKeyHash {
        ApiKeyHash(Sha256::digest(plaintext.as_bytes()).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<ApiKeyHash> {
        let bytes = hex::decode(s).ok()?;
        Some(ApiKeyHash(bytes.try_into().ok()?))
    }

    /// The digest as events carry it since `api_key.created` v2: algorithm-tagged
    /// (`sha256:<hex>`), so a later change of digest (e.g. a keyed HMAC) is a new tag, not a
    /// silent reinterpretation of old events.
    pub fn to_tagged(&self) -> String {
        format!("{DIGEST_TAG}{}", self.to_hex())
    }

    /// Reads a tagged digest; `None` for another algorithm or a malformed value.
    pub fn from_tagged(s: &str) -> Option<ApiKeyHash> {
        ApiKeyHash::from_hex(s.strip_prefix(DIGEST_TAG)?)
    }
}

/// The tag of the one digest iamd writes today.
pub const DIGEST_TAG: &str = "sha256:";

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyHash({}…)", &self.to_hex()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let k = ApiKey::generate();
        assert!(k.expose().starts_with("tg_"));
        assert_eq!(k.expose().len(), 3 + 32);
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&k.expose()[3..]).unwrap();
        assert!(raw.len() * 8 >= 128);
        assert_eq!(k.display_prefix(), k.expose()[..4]);
        assert_ne!(k.expose(), ApiKey::generate().expose());
    }

    #[test]
    fn hash_is_sha256_hex_and_round_trips() {
        let h = ApiKeyHash::of("abc");
        assert_eq!(h.to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(ApiKeyHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(h.to_tagged(), format!("sha256:{}", h.to_hex()));
        assert_eq!(ApiKeyHash::from_tagged(&h.to_tagged()), Some(h));
        assert_eq!(ApiKeyHash::from_tagged(&h.to_hex()), None);
        assert_eq!(ApiKeyHash::from_tagged(&format!("hmac-sha256:{}", h.to_hex())), None);
        assert!(!format!("{:?}", ApiKey::generate()).contains("tg_"));
    }
}
