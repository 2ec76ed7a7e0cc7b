//! Credentials: argon2id passwords, `tg_` API keys stored as SHA-256, Ed25519 signing keys
//! and the EdDSA JWTs they sign, the KEK sealing private keys at rest and the keyed digest.
//! Nothing here logs or stores a plaintext.

pub mod api_key;
pub mod password;
pub mod seal;
pub mod signing;

pub use api_key::{ApiKey, ApiKeyHash};
pub use password::{PasswordHasher, PasswordPolicy};
pub use seal::{DigestKey, Kek, SealError, UnsealError};
pub use signing::{Claims, KeyAlgorithm, NetsocClaims, SigningKey, TokenSigner, VerifyingKey};
