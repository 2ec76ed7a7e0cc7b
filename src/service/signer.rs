//! The signing keys in memory: the active keys sign (EdDSA, and ES256 for `/v1`), they and
//! the keys in grace verify.
//! Loaded from `signing_keys` at start, after a rotation in this process, and every
//! [`RELOAD_EVERY`] so a rotation made by another process is picked up.

use super::queries::Queries;
use crate::crypto::{seal, Kek, KeyAlgorithm, SigningKey, TokenSigner, VerifyingKey};
use crate::protocol::IamError;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub const RELOAD_EVERY: Duration = Duration::from_secs(30);

struct Loaded {
    signer: Arc<TokenSigner>,
    at: Instant,
}

#[derive(Clone, Default)]
pub struct SignerCache {
    loaded: Arc<RwLock<Option<Loaded>>>,
    /// Opens the active key's sealed private half.
    kek: Option<Kek>,
}

impl SignerCache {
    pub fn new(kek: Option<Kek>) -> SignerCache {
        SignerCache { loaded: Arc::default(), kek }
    }

    /// The current signer, reloading when it is older than [`RELOAD_EVERY`] or absent.
    pub async fn get(&self, queries: &Queries) -> Result<Arc<TokenSigner>, IamError> {
        {
            let guard = self.loaded.read().unwrap_or_else(|p| p.into_inner());
            if let Some(l) = guard.as_ref().filter(|l| l.at.elapsed() < RELOAD_EVERY) {
                return Ok(l.signer.clone());
            }
        }
        self.reload(queries).await
    }

    /// Reads the keys from the table and replaces the cached signer.
    pub async fn reload(&self, queries: &Queries) -> Result<Arc<TokenSigner>, IamError> {
        let rows = queries.signing_keys().await?;
        let mut active = None;
        let mut netsoc = None;
        let mut retired = Vec::new();
        for row in rows {
            let unreadable = |e: &dyn std::fmt::Display| {
                tracing::error!(kid = %row.kid, error = %e, "unreadable signing key");
                IamError::internal()
            };
            let algorithm =
                KeyAlgorithm::parse(&row.algorithm).ok_or_else(|| unreadable(&"an unknown algorithm"))?;
            match (row.valid_until, &row.private) {
                (None, Some(stored)) => {
                    let name = seal::signing_key_name(&row.kid);
                    let pkcs8 = seal::load(self.kek.as_ref(), &name, stored, row.sealed_by.as_deref())
                        .map_err(|e| unreadable(&e))?;
                    let key = SigningKey::from_parts(row.kid.clone(), row.created, algorithm, pkcs8)
                        .map_err(|e| unreadable(&e))?;
                    match algorithm {
                        KeyAlgorithm::EdDSA => active = Some(key),
                        KeyAlgorithm::ES256 => netsoc = Some(key),
                    }
                }
                (None, None) => return Err(unreadable(&"the active key has no private half")),
                (Some(until), _) => retired.push(VerifyingKey {
                    kid: row.kid.clone(),
                    algorithm,
                    public: row.public.clone(),
                    until: Some(until),
                }),
            }
        }
        let Some(active) = active else {
            tracing::error!("no active signing key (the start-up check creates one)");
            return Err(IamError::internal());
        };
        let signer = Arc::new(TokenSigner::new(active, netsoc, retired));
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) =
            Some(Loaded { signer: signer.clone(), at: Instant::now() });
        Ok(signer)
    }
}
