//! Signing keys and the JWTs they sign: Ed25519 keys (EdDSA) for iamd's own tokens, and
//! P-256 keys (ES256) for the tokens of Netsoc's `/v1` surface, whose clients' JWT library
//! knows no EdDSA. Private keys exist only here and in the `signing_keys` table; events carry
//! the key id and public key, never the private half.

use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a signing key signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum KeyAlgorithm {
    /// Ed25519: iamd's own tokens.
    #[default]
    EdDSA,
    /// ECDSA P-256 with SHA-256: the `/v1` tokens Netsoc's clients parse.
    ES256,
}

impl KeyAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EdDSA => "EdDSA",
            KeyAlgorithm::ES256 => "ES256",
        }
    }

    pub fn parse(s: &str) -> Option<KeyAlgorithm> {
        match s {
            "EdDSA" => Some(KeyAlgorithm::EdDSA),
            "ES256" => Some(KeyAlgorithm::ES256),
            _ => None,
        }
    }

    /// The curve's name, as the audit shows it.
    pub fn curve(self) -> &'static str {
        match self {
            KeyAlgorithm::EdDSA => "Ed25519",
            KeyAlgorithm::ES256 => "P-256",
        }
    }

    pub fn is_eddsa(&self) -> bool {
        *self == KeyAlgorithm::EdDSA
    }

    fn jwt(self) -> Algorithm {
        match self {
            KeyAlgorithm::EdDSA => Algorithm::EdDSA,
            KeyAlgorithm::ES256 => Algorithm::ES256,
        }
    }

    fn decoding_key(self, public: &[u8]) -> DecodingKey {
        match self {
            KeyAlgorithm::EdDSA => DecodingKey::from_ed_der(public),
            // ring reads the SEC1 uncompressed point.
            KeyAlgorithm::ES256 => DecodingKey::from_ec_der(public),
        }
    }
}

/// The DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1) before the
/// 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
    0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// One key pair with its id.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub created: DateTime<Utc>,
    pub algorithm: KeyAlgorithm,
    /// PKCS#8 DER of the private key.
    private_pkcs8: Vec<u8>,
    /// The public key: 32 raw bytes (Ed25519) or the 65-byte uncompressed point (P-256).
    pub public: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn p256_public(pkcs8: &[u8]) -> anyhow::Result<Vec<u8>> {
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(pair.public_key().as_ref().to_vec())
}

impl SigningKey {
    pub fn generate(now: DateTime<Utc>) -> anyhow::Result<SigningKey> {
        SigningKey::generate_for(KeyAlgorithm::EdDSA, now)
    }

    pub fn generate_for(algorithm: KeyAlgorithm, now: DateTime<Utc>) -> anyhow::Result<SigningKey> {
        let kid = uuid::Uuid::new_v4().simple().to_string();
        match algorithm {
            KeyAlgorithm::EdDSA => {
                let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
                let der = key
                    .to_pkcs8_der()
                    .map_err(|e| anyhow::anyhow!("encoding the signing key failed: {e}"))?;
                Ok(SigningKey {
                    kid,
                    created: now,
                    algorithm,
                    private_pkcs8: der.as_bytes().to_vec(),
                    public: key.verifying_key().to_bytes().to_vec(),
                })
            }
            KeyAlgorithm::ES256 => {
                use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
                let rng = ring::rand::SystemRandom::new();
                let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|e| anyhow::anyhow!("generating a P-256 key failed: {e}"))?;
                let private_pkcs8 = der.as_ref().to_vec();
                let public = p256_public(&private_pkcs8)?;
                Ok(SigningKey { kid, created: now, algorithm, private_pkcs8, public })
            }
        }
    }

    /// Rebuilds a key from the `signing_keys` table; checks that the halves match.
    pub fn from_parts(
        kid: String,
        created: DateTime<Utc>,
        algorithm: KeyAlgorithm,
        private_pkcs8: Vec<u8>,
    ) -> anyhow::Result<SigningKey> {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let public = match algorithm {
            KeyAlgorithm::EdDSA => ed25519_dalek::SigningKey::from_pkcs8_der(&private_pkcs8)
                .map_err(|e| anyhow::anyhow!("signing key {kid} is unreadable: {e}"))?
                .verifying_key()
                .to_bytes()
                .to_vec(),
            KeyAlgorithm::ES256 => p256_public(&private_pkcs8)
                .map_err(|e| anyhow::anyhow!("signing key {kid} is unreadable: {e}"))?,
        };
        Ok(SigningKey { kid, created, algorithm, private_pkcs8, public })
    }

    pub fn private_pkcs8(&self) -> &[u8] {
        &self.private_pkcs8
    }

    /// The public key as SubjectPublicKeyInfo PEM (what get-signing-key-public returns).
    pub fn public_pem(&self) -> String {
        public_pem(self.algorithm, &self.public)
    }

    fn encoding_key(&self) -> EncodingKey {
        match self.algorithm {
            KeyAlgorithm::EdDSA => EncodingKey::from_ed_der(&self.private_pkcs8),
            KeyAlgorithm::ES256 => EncodingKey::from_ec_der(&self.private_pkcs8),
        }
    }
}

/// A public key as SubjectPublicKeyInfo PEM; empty when it is not one of its algorithm.
pub fn public_pem(algorithm: KeyAlgorithm, public: &[u8]) -> String {
    match algorithm {
        KeyAlgorithm::EdDSA => <[u8; 32]>::try_from(public)
            .ok()
            .and_then(|raw| ed25519_dalek::VerifyingKey::from_bytes(&raw).ok())
            .and_then(|k| k.to_public_key_pem(LineEnding::LF).ok())
            .unwrap_or_default(),
        KeyAlgorithm::ES256 if public.len() == 65 && public[0] == 4 => {
            use base64::Engine;
            let der = [P256_SPKI_PREFIX.as_slice(), public].concat();
            let b64 = base64::engine::general_purpose::STANDARD.encode(der);
            let lines: Vec<&str> =
                b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
            format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
        }
        KeyAlgorithm::ES256 => String::new(),
    }
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

/// The claims of a `/v1` token, exactly as Netsoc's iamd writes them: `sub` the user's
/// integer id as a decimal string, `aud` `["auth"]` (a login or issued token) or
/// `["verification"]` / `["password_reset"]` (an email token, without `is_admin`).
/// Times are read as Go's jwt-go v4 writes them too (seconds with a fraction), and `aud` as a
/// string or an array (tokens Netsoc's iamd issued before the switch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetsocClaims {
    pub sub: String,
    #[serde(default, deserialize_with = "seconds")]
    pub iat: i64,
    #[serde(default, deserialize_with = "seconds")]
    pub nbf: i64,
    #[serde(deserialize_with = "seconds")]
    pub exp: i64,
    pub iss: String,
    #[serde(deserialize_with = "audience")]
    pub aud: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_admin: Option<bool>,
    pub version: i64,
    /// An email token's id, recorded in its `mail.sent` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// Unix seconds, whole or with a fraction (floored).
fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let value = f64::deserialize(d)?;
    if !value.is_finite() || value.abs() > 1e15 {
        return Err(serde::de::Error::custom("a time out of range"));
    }
    Ok(value.floor() as i64)
}

/// One audience or several.
fn audience<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(a) => vec![a],
        OneOrMany::Many(a) => a,
    })
}

/// A token Netsoc's iamd signed before the switch (HS256 with its `jwt.key`, given to iamd as
/// `compat.legacy_jwt_key`): its claims when the signature, `iss` and `aud` (exactly
/// `[audience]`) hold — not `exp`, which the caller weighs like a `/v1` token's.
pub fn verify_legacy_hs256(token: &str, key: &[u8], issuer: &str, audience: &str) -> Option<NetsocClaims> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.alg != Algorithm::HS256 || key.is_empty() {
        return None;
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["iss", "sub"]);
    validation.validate_exp = false;
    validation.leeway = 0;
    validation.set_audience(&[audience]);
    let data =
        jsonwebtoken::decode::<NetsocClaims>(token, &DecodingKey::from_secret(key), &validation).ok()?;
    (data.claims.aud == [audience]).then_some(data.claims)
}

/// The audience of a `/v1` token that authenticates its bearer.
pub const NETSOC_AUTH_AUDIENCE: &str = "auth";

/// A key that still verifies tokens: the active ones, and retired ones until `until`.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyingKey {
    pub kid: String,
    pub algorithm: KeyAlgorithm,
    /// As in [`SigningKey::public`].
    pub public: Vec<u8>,
    pub until: Option<DateTime<Utc>>,
}

/// Signs with the active keys (EdDSA for iamd's tokens, ES256 for `/v1` tokens) and verifies
/// against them and the keys in grace.
#[derive(Clone)]
pub struct TokenSigner {
    active: SigningKey,
    encoding: EncodingKey,
    /// The active ES256 key, when one exists.
    netsoc: Option<(SigningKey, EncodingKey)>,
    verifying: Vec<VerifyingKey>,
}

impl TokenSigner {
    /// `active` is the EdDSA key, `netsoc` the ES256 one; `retired` are older keys with the end
    /// of their grace period.
    pub fn new(active: SigningKey, netsoc: Option<SigningKey>, retired: Vec<VerifyingKey>) -> Self {
        let encoding = active.encoding_key();
        let current = |k: &SigningKey| VerifyingKey {
            kid: k.kid.clone(),
            algorithm: k.algorithm,
            public: k.public.clone(),
            until: None,
        };
        let mut verifying = vec![current(&active)];
        verifying.extend(netsoc.iter().map(current));
        verifying.extend(retired);
        let netsoc = netsoc.map(|k| {
            let encoding = k.encoding_key();
            (k, encoding)
        });
        TokenSigner { active, encoding, netsoc, verifying }
    }

    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// Whether `kid` is an active key or one still held for verification.
    pub fn knows(&self, kid: &str) -> bool {
        self.verifying.iter().any(|k| k.kid == kid)
    }

    /// The keys that verify at `now`, the active ones first.
    pub fn verifying_keys(&self, now: DateTime<Utc>) -> impl Iterator<Item = &VerifyingKey> {
        self.verifying.iter().filter(move |k| k.until.is_none_or(|until| now < until))
    }

    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.active.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }

    /// Signs a `/v1` token with the active ES256 key.
    pub fn sign_netsoc(&self, claims: &NetsocClaims) -> anyhow::Result<String> {
        let (key, encoding) =
            self.netsoc.as_ref().ok_or_else(|| anyhow::anyhow!("there is no active ES256 signing key"))?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, encoding)?)
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
        let claims: Claims = self.verify_with(token, KeyAlgorithm::EdDSA, issuer, now, audience)?;
        (claims.aud.as_deref() == audience).then_some(claims)
    }

    /// Verifies a `/v1` token: ES256 only (key chosen by `kid`), `iss`, and `aud` exactly
    /// `[audience]` — but not `exp`, which the caller weighs (an expired token still lets its
    /// user look after its own account).
    pub fn verify_netsoc(
        &self,
        token: &str,
        issuer: &str,
        now: DateTime<Utc>,
        audience: &str,
    ) -> Option<NetsocClaims> {
        let claims: NetsocClaims =
            self.verify_with(token, KeyAlgorithm::ES256, issuer, now, Some(audience))?;
        (claims.aud == [audience]).then_some(claims)
    }

    fn verify_with<C: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        algorithm: KeyAlgorithm,
        issuer: &str,
        now: DateTime<Utc>,
        audience: Option<&str>,
    ) -> Option<C> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != algorithm.jwt() {
            return None;
        }
        let kid = header.kid?;
        let key = self.verifying.iter().find(|k| k.kid == kid && k.algorithm == algorithm)?;
        if key.until.is_some_and(|until| now >= until) {
            return None;
        }
        let mut validation = Validation::new(algorithm.jwt());
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["iss", "sub"]);
        validation.validate_exp = false;
        validation.leeway = 0;
        match audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data =
            jsonwebtoken::decode::<C>(token, &algorithm.decoding_key(&key.public), &validation).ok()?;
        Some(data.claims)
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
        let signer = TokenSigner::new(key.clone(), None, vec![]);
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
        let token = TokenSigner::new(old.clone(), None, vec![]).sign(&claims(now)).unwrap();
        let new = SigningKey::generate(now).unwrap();
        let until = now + Duration::minutes(30);
        let retired = VerifyingKey {
            kid: old.kid.clone(),
            algorithm: old.algorithm,
            public: old.public,
            until: Some(until),
        };
        let signer = TokenSigner::new(new, None, vec![retired]);
        assert!(signer.verify(&token, "iamd", now).is_some());
        assert!(signer.verify(&token, "iamd", until).is_none());
    }

    #[test]
    fn parts_round_trip() {
        let key = SigningKey::generate(Utc::now()).unwrap();
        let back =
            SigningKey::from_parts(key.kid.clone(), key.created, key.algorithm, key.private_pkcs8().to_vec())
                .unwrap();
        assert_eq!(back.public, key.public);
    }

    fn netsoc_claims(now: DateTime<Utc>, aud: &str) -> NetsocClaims {
        NetsocClaims {
            sub: "7".into(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: now.timestamp() + 60,
            iss: "iamd".into(),
            aud: vec![aud.into()],
            is_admin: Some(true),
            version: 1,
            jti: None,
        }
    }

    #[test]
    fn netsoc_tokens_are_es256_and_verify_only_as_such() {
        let now = Utc::now();
        let ed = SigningKey::generate(now).unwrap();
        let p256 = SigningKey::generate_for(KeyAlgorithm::ES256, now).unwrap();
        assert_eq!(p256.public.len(), 65);
        assert!(p256.public_pem().starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let back =
            SigningKey::from_parts(p256.kid.clone(), now, KeyAlgorithm::ES256, p256.private_pkcs8().to_vec())
                .unwrap();
        assert_eq!(back.public, p256.public);
        let signer = TokenSigner::new(ed.clone(), Some(p256.clone()), vec![]);
        let token = signer.sign_netsoc(&netsoc_claims(now, "auth")).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!((header.alg, header.kid.as_deref()), (Algorithm::ES256, Some(p256.kid.as_str())));
        assert_eq!(signer.verify_netsoc(&token, "iamd", now, "auth"), Some(netsoc_claims(now, "auth")));
        assert_eq!(signer.verify_netsoc(&token, "iamd", now, "verification"), None);
        assert_eq!(signer.verify_netsoc(&token, "other", now, "auth"), None);
        assert_eq!(signer.verify_signed(&token, "iamd", now, None), None, "never an iamd token");
        let email = signer.sign_netsoc(&netsoc_claims(now, "verification")).unwrap();
        assert_eq!(signer.verify_netsoc(&email, "iamd", now, "auth"), None);
        // An EdDSA token is never a /v1 token, and a signer without an ES256 key signs none.
        let ours = signer.sign(&claims(now)).unwrap();
        assert_eq!(signer.verify_netsoc(&ours, "iamd", now, "auth"), None);
        assert!(TokenSigner::new(ed, None, vec![]).sign_netsoc(&netsoc_claims(now, "auth")).is_err());
    }

    #[test]
    fn a_token_netsocs_iamd_signed_verifies_with_its_key_only() {
        // jwt-go v4 writes times with a fraction; iamd reads them floored.
        let key = b"a netsoc jwt key of at least 32 bytes!!";
        let claims = serde_json::json!({"sub": "90", "iat": 1600287519.848895, "nbf": 1600287519.848897,
            "exp": 4102444800.5, "iss": "iamd", "aud": ["auth"], "is_admin": true, "version": 3});
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(key))
                .unwrap();
        let read = verify_legacy_hs256(&token, key, "iamd", "auth").unwrap();
        assert_eq!((read.sub.as_str(), read.iat, read.exp, read.version), ("90", 1600287519, 4102444800, 3));
        assert_eq!(read.is_admin, Some(true));
        assert!(
            verify_legacy_hs256(&token, b"another key of at least 32 bytes!!!!!", "iamd", "auth").is_none()
        );
        assert!(verify_legacy_hs256(&token, key, "iamd", "verification").is_none());
        assert!(verify_legacy_hs256(&token, key, "other", "auth").is_none());
        // A single audience as a string reads as one.
        let single =
            serde_json::json!({"sub": "1", "exp": 4102444800u64, "iss": "iamd", "aud": "auth", "version": 1});
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &single, &EncodingKey::from_secret(key))
                .unwrap();
        assert_eq!(
            verify_legacy_hs256(&token, key, "iamd", "auth").map(|c| c.aud),
            Some(vec!["auth".into()])
        );
        // Never an ES256 or EdDSA token, never with an empty key.
        assert!(verify_legacy_hs256(&token, b"", "iamd", "auth").is_none());
    }
}
