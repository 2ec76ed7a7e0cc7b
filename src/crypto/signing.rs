//! Ed25519 signing keys and the EdDSA JWTs they sign. Private keys exist only here and in
//! the `signing_keys` table; events carry the key id and public key, never the private half.

use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One Ed25519 key pair with its id.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub created: DateTime<Utc>,
    /// PKCS#8 DER of the private key.
    private_pkcs8: Vec<u8>,
    /// The raw 32-byte public key.
    pub public: [u8; 32],
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn generate(now: DateTime<Utc>) -> anyhow::Result<SigningKey> {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let der = key.to_pkcs8_der().map_err(|e| anyhow::anyhow!("encoding the signing key failed: {e}"))?;
        Ok(SigningKey {
            kid: uuid::Uuid::new_v4().simple().to_string(),
            created: now,
            private_pkcs8: der.as_bytes().to_vec(),
            public: key.verifying_key().to_bytes(),
        })
    }

    /// Rebuilds a key from the `signing_keys` table; checks that the halves match.
    pub fn from_parts(
        kid: String,
        created: DateTime<Utc>,
        private_pkcs8: Vec<u8>,
    ) -> anyhow::Result<SigningKey> {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let key = ed25519_dalek::SigningKey::from_pkcs8_der(&private_pkcs8)
            .map_err(|e| anyhow::anyhow!("signing key {kid} is unreadable: {e}"))?;
        Ok(SigningKey { kid, created, private_pkcs8, public: key.verifying_key().to_bytes() })
    }

    pub fn private_pkcs8(&self) -> &[u8] {
        &self.private_pkcs8
    }

    /// The public key as SubjectPublicKeyInfo PEM (what get-signing-key-public returns).
    pub fn public_pem(&self) -> String {
        public_pem(&self.public)
    }
}

pub fn public_pem(raw: &[u8; 32]) -> String {
    ed25519_dalek::VerifyingKey::from_bytes(raw)
        .ok()
        .and_then(|k| k.to_public_key_pem(LineEnding::LF).ok())
        .unwrap_or_default()
}

/// The claims iamd puts in every token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user id: immutable, unlike the username.
    pub sub: String,
    /// The workspace the token acts in (the user's own, or the one mint-token named).
    pub workspace: String,
    /// Alias of `workspace`, always equal: TrustGraph's gateway refuses a token without it.
    #[serde(default)]
    pub default_workspace: String,
    /// mint-token: the caller-supplied context TrustGraph's gateway hands to services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_context: Option<serde_json::Value>,
    /// mint-token: the token's id, recorded in its `token.minted` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `"issued"` on a token an admin issued with issue-token: it may live up to
    /// [`MAX_ISSUED_LIFETIME_SECONDS`] rather than `jwt.ttl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_use: Option<String>,
    /// An email token's audience (`verification`, `password_reset`); absent on every token
    /// that authenticates a caller, and a token with one never does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Not before (iamd never sets it; a token that carries one is held to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub roles: Vec<String>,
    pub is_admin: bool,
    /// The account version: a token whose version is below the user's current one is dead.
    pub version: i64,
    pub iat: i64,
    pub exp: i64,
}

impl Claims {
    /// The claims of a token for user `sub` acting in `workspace`, valid from `iat` to `exp`
    /// (Unix seconds), at account `version`.
    pub fn new(
        iss: &str,
        sub: &str,
        workspace: &str,
        roles: Vec<String>,
        version: i64,
        iat: i64,
        exp: i64,
    ) -> Self {
        Claims {
            iss: iss.to_owned(),
            sub: sub.to_owned(),
            workspace: workspace.to_owned(),
            default_workspace: workspace.to_owned(),
            user_context: None,
            jti: None,
            token_use: None,
            aud: None,
            nbf: None,
            is_admin: roles.iter().any(|r| r == crate::authz::ADMIN_ROLE),
            roles,
            version,
            iat,
            exp,
        }
    }
}

/// The `token_use` of an issued token.
pub const ISSUED: &str = "issued";
/// The `token_use` of a login token whose expiry is the account's renewal
/// (`accounts.renewal_validity`): past `exp` it still lets its user look after its own account.
pub const RENEWAL: &str = "renewal";
/// The longest an issued token lives: 876,000 hours (100 years), the longest Netsoc's
/// clients ask for.
pub const MAX_ISSUED_LIFETIME_SECONDS: i64 = 876_000 * 3_600;

impl Claims {
    /// The longest a token of this kind may live, `ttl` (seconds) being `jwt.ttl` (a renewal
    /// token lives until `renewed + accounts.renewal_validity`, which an admin may set ahead).
    pub fn max_lifetime(&self, ttl: i64) -> i64 {
        if matches!(self.token_use.as_deref(), Some(ISSUED | RENEWAL)) {
            MAX_ISSUED_LIFETIME_SECONDS
        } else {
            ttl
        }
    }
}

/// Clock skew tolerated on `iat` and `nbf`, in seconds.
pub const CLOCK_LEEWAY_SECONDS: i64 = 30;

impl Claims {
    /// Whether the token's times are ones iamd could have issued at `now` (Unix seconds): not
    /// issued nor valid only in the future (beyond [`CLOCK_LEEWAY_SECONDS`]), and living no
    /// longer than `max_lifetime` seconds, the longest iamd issues. Expiry is checked apart.
    pub fn times_plausible(&self, now: i64, max_lifetime: i64) -> bool {
        self.iat <= now + CLOCK_LEEWAY_SECONDS
            && self.nbf.is_none_or(|nbf| nbf <= now + CLOCK_LEEWAY_SECONDS)
            && self.exp.saturating_sub(self.iat) <= max_lifetime
    }
}

/// Signs with the active key and verifies against the active key and keys in grace.
#[derive(Clone)]
pub struct TokenSigner {
    active: SigningKey,
    encoding: EncodingKey,
    /// (kid, raw public key, valid until) of keys that still verify.
    verifying: Vec<(String, [u8; 32], Option<DateTime<Utc>>)>,
}

impl TokenSigner {
    /// `retired` are older keys with the end of their grace period.
    pub fn new(active: SigningKey, retired: Vec<(String, [u8; 32], DateTime<Utc>)>) -> Self {
        let encoding = EncodingKey::from_ed_der(active.private_pkcs8());
        let mut verifying = vec![(active.kid.clone(), active.public, None)];
        verifying.extend(retired.into_iter().map(|(kid, public, until)| (kid, public, Some(until))));
        TokenSigner { active, encoding, verifying }
    }

    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// Whether `kid` is the active key or one still held for verification.
    pub fn knows(&self, kid: &str) -> bool {
        self.verifying.iter().any(|(k, _, _)| k == kid)
    }

    /// The keys that verify at `now`: (kid, raw Ed25519 public key), the active one first.
    pub fn verifying_keys(&self, now: DateTime<Utc>) -> impl Iterator<Item = (&str, &[u8; 32])> {
        self.verifying
            .iter()
            .filter(move |(_, _, until)| until.is_none_or(|until| now < until))
            .map(|(kid, public, _)| (kid.as_str(), public))
    }

    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.active.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }

    /// Verifies signature (EdDSA only, key chosen by `kid`), `iss` and `exp`. The account
    /// version and enabled state are the caller's to check against the read tables.
    pub fn verify(&self, token: &str, issuer: &str, now: DateTime<Utc>) -> Option<Claims> {
        self.verify_signed(token, issuer, now, None).filter(|c| c.exp > now.timestamp())
    }

    /// Verifies signature (EdDSA only, key chosen by `kid`), `iss` and the audience — exactly
    /// `audience`, `None` being no `aud` at all — but not `exp`: the claims of a token iamd
    /// signed, expired or not (`exp` may be negative: a renewal token of an account never
    /// renewed expires in year 2).
    pub fn verify_signed(
        &self,
        token: &str,
        issuer: &str,
        now: DateTime<Utc>,
        audience: Option<&str>,
    ) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::EdDSA {
            return None;
        }
        let kid = header.kid?;
        let (_, public, until) = self.verifying.iter().find(|(k, _, _)| *k == kid)?;
        if until.is_some_and(|until| now >= until) {
            return None;
        }
        let key = DecodingKey::from_ed_der(public);
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["iss", "sub"]);
        validation.validate_exp = false;
        validation.leeway = 0;
        match audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).ok()?;
        (data.claims.aud.as_deref() == audience).then_some(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn claims(now: DateTime<Utc>) -> Claims {
        Claims::new(
            "iamd",
            "u1",
            "default",
            vec!["admin".into()],
            1,
            now.timestamp(),
            (now + Duration::hours(1)).timestamp(),
        )
    }

    #[test]
    fn times_from_the_future_or_lifetimes_longer_than_issued_are_implausible() {
        let now = Utc::now().timestamp();
        let c = claims(Utc::now());
        assert!(c.times_plausible(now, 3600));
        assert!(!c.times_plausible(now, 3599), "longer than the longest iamd issues");
        let future = Claims { iat: now + 120, exp: now + 3720, ..c.clone() };
        assert!(!future.times_plausible(now, 3600), "issued in the future");
        let skewed = Claims { iat: now + 20, exp: now + 3620, ..c.clone() };
        assert!(skewed.times_plausible(now, 3600), "within the leeway");
        let not_yet = Claims { nbf: Some(now + 600), ..c.clone() };
        assert!(!not_yet.times_plausible(now, 3600), "not valid before a future instant");
        assert!(Claims { nbf: Some(now - 5), ..c }.times_plausible(now, 3600));
    }

    #[test]
    fn claims_carry_both_spellings_of_the_workspace() {
        let c = serde_json::to_value(claims(Utc::now())).unwrap();
        assert_eq!((&c["workspace"], &c["default_workspace"]), (&"default".into(), &"default".into()));
        assert_eq!(c["is_admin"], true);
        assert!(c.get("user_context").is_none());
    }

    #[test]
    fn signs_eddsa_with_kid_and_verifies() {
        let now = Utc::now();
        let key = SigningKey::generate(now).unwrap();
        let signer = TokenSigner::new(key.clone(), vec![]);
        let token = signer.sign(&claims(now)).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
        assert_eq!(signer.verify(&token, "iamd", now), Some(claims(now)));
        assert_eq!(signer.verify(&token, "other", now), None);
        assert!(key.public_pem().starts_with("-----BEGIN PUBLIC KEY-----"));
    }

    #[test]
    fn a_retired_key_verifies_only_within_grace() {
        let now = Utc::now();
        let old = SigningKey::generate(now).unwrap();
        let token = TokenSigner::new(old.clone(), vec![]).sign(&claims(now)).unwrap();
        let new = SigningKey::generate(now).unwrap();
        let until = now + Duration::minutes(30);
        let signer = TokenSigner::new(new, vec![(old.kid.clone(), old.public, until)]);
        assert!(signer.verify(&token, "iamd", now).is_some());
        assert!(signer.verify(&token, "iamd", until).is_none());
    }

    #[test]
    fn parts_round_trip() {
        let key = SigningKey::generate(Utc::now()).unwrap();
        let back =
            SigningKey::from_parts(key.kid.clone(), key.created, key.private_pkcs8().to_vec()).unwrap();
        assert_eq!(back.public, key.public);
    }
}
