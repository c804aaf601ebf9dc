//! JSON Web Tokens, signed and verified by hand with Ed25519, P-256 or RSA-2048.
//!
//! The algorithm is a property of the key, never read from the token: a token whose header
//! names anything else (`none`, `HS256`, ...) is refused before any cryptography runs.
//! RSA goes through aws-lc-rs, which can also generate RSA keys (ring cannot).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKey, KeySize, PublicKeyComponents as RsaPublic};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, SigningKey as Ed25519Key, VerifyingKey};
use p256::ecdsa::{
    Signature as Es256Signature, SigningKey as Es256Key, VerifyingKey as Es256Verifying,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::HashMap;

use crate::model::{SigningAlgorithm, SigningKey};

/// Longest token we are willing to parse.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a JWT was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON, or the wrong `typ`.
    #[error("malformed token")]
    Malformed,
    /// `alg` is not the key's algorithm.
    #[error("unexpected algorithm")]
    Algorithm,
    /// No published key has this `kid`.
    #[error("unknown key id")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
}

/// A private key of any of the algorithms.
enum Signer {
    EdDsa(Ed25519Key),
    Es256(Es256Key),
    Rs256(RsaKey),
}

impl Signer {
    fn from_stored(stored: &SigningKey) -> Option<Self> {
        match stored.alg {
            SigningAlgorithm::EdDsa => ed25519_from(&stored.private_key).map(Self::EdDsa),
            SigningAlgorithm::Es256 => Es256Key::from_slice(&stored.private_key)
                .ok()
                .map(Self::Es256),
            SigningAlgorithm::Rs256 => RsaKey::from_pkcs8(&stored.private_key)
                .ok()
                .map(Self::Rs256),
        }
    }

    /// `None` only if RSA signing fails, which a key that parsed does not.
    fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::EdDsa(key) => Some(
                ed25519_dalek::Signer::sign(key, message)
                    .to_bytes()
                    .to_vec(),
            ),
            Self::Es256(key) => {
                let signature: Es256Signature = p256::ecdsa::signature::Signer::sign(key, message);
                Some(signature.to_bytes().to_vec())
            }
            Self::Rs256(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                let rng = aws_lc_rs::rand::SystemRandom::new();
                key.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .ok()?;
                Some(signature)
            }
        }
    }

    fn verifier(&self) -> Verifier {
        match self {
            Self::EdDsa(key) => Verifier::EdDsa(key.verifying_key()),
            Self::Es256(key) => Verifier::Es256(*key.verifying_key()),
            Self::Rs256(key) => Verifier::Rs256(RsaPublic::from(key.public_key())),
        }
    }
}

/// A public key of any of the algorithms.
enum Verifier {
    EdDsa(VerifyingKey),
    Es256(Es256Verifying),
    Rs256(RsaPublic<Vec<u8>>),
}

impl Verifier {
    fn alg(&self) -> SigningAlgorithm {
        match self {
            Self::EdDsa(_) => SigningAlgorithm::EdDsa,
            Self::Es256(_) => SigningAlgorithm::Es256,
            Self::Rs256(_) => SigningAlgorithm::Rs256,
        }
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::EdDsa(key) => <[u8; 64]>::try_from(signature).is_ok_and(|bytes| {
                key.verify_strict(message, &Signature::from_bytes(&bytes))
                    .is_ok()
            }),
            Self::Es256(key) => Es256Signature::from_slice(signature).is_ok_and(|sig| {
                p256::ecdsa::signature::Verifier::verify(key, message, &sig).is_ok()
            }),
            Self::Rs256(key) => key
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
        }
    }

    fn jwk(&self, kid: &str) -> Value {
        match self {
            Self::EdDsa(key) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "alg": "EdDSA",
                "use": "sig",
                "kid": kid,
                "x": B64.encode(key.as_bytes()),
            }),
            Self::Es256(key) => {
                let point = key.to_encoded_point(false);
                json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "alg": "ES256",
                    "use": "sig",
                    "kid": kid,
                    "x": point.x().map(|x| B64.encode(x)),
                    "y": point.y().map(|y| B64.encode(y)),
                })
            }
            Self::Rs256(key) => json!({
                "kty": "RSA",
                "alg": "RS256",
                "use": "sig",
                "kid": kid,
                "n": B64.encode(&key.n),
                "e": B64.encode(&key.e),
            }),
        }
    }
}

/// The published keys and, per algorithm, the one that signs now. Rebuilt whenever the keys
/// change.
pub struct KeyRing {
    /// Signs when no algorithm is asked for (access tokens).
    default_alg: SigningAlgorithm,
    signers: HashMap<SigningAlgorithm, (String, Signer)>,
    verifiers: HashMap<String, Verifier>,
    jwks: Value,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let signing: Vec<&String> = self.signers.values().map(|(kid, _)| kid).collect();
        f.debug_struct("KeyRing")
            .field("default_alg", &self.default_alg)
            .field("signing_kids", &signing)
            .field("published", &self.verifiers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Makes new private key bytes for `alg` (RSA: PKCS#8 DER). An RSA-2048 key takes tens to
/// hundreds of milliseconds: call this when rotating, never on a request path. `None` only
/// if the RSA generator fails.
pub fn generate_key(alg: SigningAlgorithm) -> Option<Vec<u8>> {
    match alg {
        SigningAlgorithm::EdDsa => Some(
            Ed25519Key::generate(&mut rand::rngs::OsRng)
                .to_bytes()
                .to_vec(),
        ),
        SigningAlgorithm::Es256 => {
            Some(Es256Key::random(&mut rand::rngs::OsRng).to_bytes().to_vec())
        }
        SigningAlgorithm::Rs256 => {
            let key = RsaKey::generate(KeySize::Rsa2048).ok()?;
            let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key).ok()?;
            Some(der.as_ref().to_vec())
        }
    }
}

fn ed25519_from(bytes: &[u8]) -> Option<Ed25519Key> {
    let seed: [u8; 32] = bytes.try_into().ok()?;
    Some(Ed25519Key::from_bytes(&seed))
}

impl KeyRing {
    /// Builds the ring from stored keys: every key is published; for each algorithm, the
    /// newest key whose `active_from` has come signs. `default_alg` signs when the caller
    /// names no algorithm.
    pub fn new(keys: &[SigningKey], default_alg: SigningAlgorithm, now: i64) -> Self {
        let mut verifiers = HashMap::new();
        let mut jwks_keys = Vec::new();
        let mut signers: HashMap<SigningAlgorithm, (&SigningKey, Signer)> = HashMap::new();
        for stored in keys {
            let Some(private) = Signer::from_stored(stored) else {
                tracing::error!(kid = %stored.kid, "signing key is unreadable; skipped");
                continue;
            };
            let public = private.verifier();
            jwks_keys.push(public.jwk(&stored.kid));
            verifiers.insert(stored.kid.clone(), public);
            // Ties on `active_from` (a key rotated within the second the previous one began
            // signing) go to the later key: kids sort by creation time.
            let newer = signers.get(&stored.alg).is_none_or(|(current, _)| {
                (stored.active_from, &stored.kid) > (current.active_from, &current.kid)
            });
            if stored.active_from <= now && newer {
                signers.insert(stored.alg, (stored, private));
            }
        }
        Self {
            default_alg,
            signers: signers
                .into_iter()
                .map(|(alg, (stored, key))| (alg, (stored.kid.clone(), key)))
                .collect(),
            verifiers,
            jwks: json!({ "keys": jwks_keys }),
        }
    }

    /// The JWK Set document.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// Whether a key of the default algorithm can sign now.
    pub fn can_sign(&self) -> bool {
        self.signers.contains_key(&self.default_alg)
    }

    /// The `kid` that signs now with the default algorithm.
    pub fn signing_kid(&self) -> Option<&str> {
        self.signing_kid_for(self.default_alg)
    }

    /// The `kid` that signs now with `alg`.
    pub fn signing_kid_for(&self, alg: SigningAlgorithm) -> Option<&str> {
        self.signers.get(&alg).map(|(kid, _)| kid.as_str())
    }

    /// The algorithm that signs when none is named.
    pub fn default_alg(&self) -> SigningAlgorithm {
        self.default_alg
    }

    /// Whether a key of `alg` can sign now.
    pub fn can_sign_with(&self, alg: SigningAlgorithm) -> bool {
        self.signers.contains_key(&alg)
    }

    /// Signs `claims` with header `typ` with the default algorithm; `None` if no key of it
    /// may sign yet.
    pub fn sign<C: Serialize>(&self, typ: &str, claims: &C) -> Option<String> {
        self.sign_with(self.default_alg, typ, claims)
    }

    /// Signs `claims` with header `typ` with a key of `alg`; `None` if none may sign yet.
    pub fn sign_with<C: Serialize>(
        &self,
        alg: SigningAlgorithm,
        typ: &str,
        claims: &C,
    ) -> Option<String> {
        let (kid, key) = self.signers.get(&alg)?;
        let header = json!({ "alg": alg.as_str(), "typ": typ, "kid": kid });
        let mut token = B64.encode(serde_json::to_vec(&header).ok()?);
        token.push('.');
        token.push_str(&B64.encode(serde_json::to_vec(claims).ok()?));
        let signature = key.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&B64.encode(signature));
        Some(token)
    }

    /// Checks structure, `typ`, `alg`, `kid` and signature, and returns the claims. Time,
    /// issuer and audience are the caller's to check.
    pub fn verify<C: DeserializeOwned>(&self, token: &str, typ: &str) -> Result<C, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header: Value = B64
            .decode(header_b64)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(JwtError::Malformed)?;
        let header_typ = header.get("typ").and_then(Value::as_str).unwrap_or("");
        let header_typ = header_typ
            .strip_prefix("application/")
            .unwrap_or(header_typ);
        if !header_typ.eq_ignore_ascii_case(typ) {
            return Err(JwtError::Malformed);
        }
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(SigningAlgorithm::parse)
            .ok_or(JwtError::Algorithm)?;
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .ok_or(JwtError::UnknownKey)?;
        let verifier = self.verifiers.get(kid).ok_or(JwtError::UnknownKey)?;
        if verifier.alg() != alg {
            return Err(JwtError::Algorithm);
        }
        let signature = B64.decode(signature_b64).map_err(|_| JwtError::Signature)?;
        let signed_len = header_b64.len() + 1 + claims_b64.len();
        if !verifier.verify(&token.as_bytes()[..signed_len], &signature) {
            return Err(JwtError::Signature);
        }
        B64.decode(claims_b64)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(JwtError::Malformed)
    }
}

/// Most keys in a client's JWK Set.
pub const MAX_CLIENT_KEYS: usize = 10;
/// Longest `kid` of a client's key.
const MAX_KID_LEN: usize = 200;

/// A client's public keys, read from the JWK Set it registered (or publishes at its
/// `jwks_uri`), for `private_key_jwt` (RFC 7523 §2.2). RSA (2048 to 8192 bits, RS256),
/// EC P-256 (ES256) and OKP Ed25519 (EdDSA) keys for signing; keys of other types or
/// uses are skipped. Each key verifies one algorithm only.
pub struct ClientKeys {
    keys: Vec<(Option<String>, Verifier)>,
}

impl std::fmt::Debug for ClientKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<(Option<&str>, SigningAlgorithm)> = self
            .keys
            .iter()
            .map(|(kid, v)| (kid.as_deref(), v.alg()))
            .collect();
        f.debug_struct("ClientKeys").field("keys", &kids).finish()
    }
}

fn b64_field(key: &Value, name: &str) -> Result<Vec<u8>, String> {
    key.get(name)
        .and_then(Value::as_str)
        .and_then(|v| B64.decode(v).ok())
        .ok_or_else(|| format!("a key's '{name}' is missing or not base64url"))
}

fn verifier_from_jwk(key: &Value) -> Result<Option<Verifier>, String> {
    if key
        .get("use")
        .and_then(Value::as_str)
        .is_some_and(|u| u != "sig")
    {
        return Ok(None);
    }
    let alg = key.get("alg").and_then(Value::as_str);
    let verifier = match key.get("kty").and_then(Value::as_str) {
        Some("RSA") => {
            let n = b64_field(key, "n")?;
            let e = b64_field(key, "e")?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if !(2048..=8192).contains(&bits) {
                return Err("an RSA key must have 2048 to 8192 bits".to_owned());
            }
            Verifier::Rs256(RsaPublic { n, e })
        }
        Some("EC") => {
            if key.get("crv").and_then(Value::as_str) != Some("P-256") {
                return Ok(None);
            }
            let x = b64_field(key, "x")?;
            let y = b64_field(key, "y")?;
            if x.len() != 32 || y.len() != 32 {
                return Err("a P-256 key's coordinates must be 32 bytes each".to_owned());
            }
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            Verifier::Es256(
                Es256Verifying::from_sec1_bytes(&point)
                    .map_err(|_| "a P-256 key is not a point of the curve".to_owned())?,
            )
        }
        Some("OKP") => {
            if key.get("crv").and_then(Value::as_str) != Some("Ed25519") {
                return Ok(None);
            }
            let x: [u8; 32] = b64_field(key, "x")?
                .try_into()
                .map_err(|_| "an Ed25519 key must be 32 bytes".to_owned())?;
            Verifier::EdDsa(
                VerifyingKey::from_bytes(&x)
                    .map_err(|_| "an Ed25519 key is not valid".to_owned())?,
            )
        }
        _ => return Ok(None),
    };
    if alg.is_some_and(|alg| alg != verifier.alg().as_str()) {
        // A key marked for another algorithm (RS384, ...) is not one we verify with.
        return Ok(None);
    }
    if key.get("d").is_some() || key.get("p").is_some() {
        return Err("a key in the set is a private key; register only public keys".to_owned());
    }
    Ok(Some(verifier))
}

impl ClientKeys {
    /// Reads a JWK Set (`{"keys": [...]}`). Refused: not a set, more than
    /// [`MAX_CLIENT_KEYS`] keys, a private key, a malformed key of a supported type, or no
    /// key that can verify a signature of a supported algorithm.
    pub fn parse(set: &Value) -> Result<Self, String> {
        let list = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| "must be a JWK Set: an object with a 'keys' array".to_owned())?;
        if list.len() > MAX_CLIENT_KEYS {
            return Err(format!("at most {MAX_CLIENT_KEYS} keys are allowed"));
        }
        let mut keys = Vec::with_capacity(list.len());
        for key in list {
            let kid = match key.get("kid") {
                None => None,
                Some(Value::String(kid)) if kid.len() <= MAX_KID_LEN => Some(kid.clone()),
                Some(_) => {
                    return Err(format!(
                        "a 'kid' must be a string of at most {MAX_KID_LEN} characters"
                    ));
                }
            };
            if let Some(verifier) = verifier_from_jwk(key)? {
                keys.push((kid, verifier));
            }
        }
        if keys.is_empty() {
            return Err(
                "has no signing key of a supported type (RSA 2048+, EC P-256, OKP Ed25519)"
                    .to_owned(),
            );
        }
        Ok(Self { keys })
    }

    /// Checks a JWS (compact) signed with one of these keys and returns its claims. The
    /// header's `alg` must be RS256, ES256 or EdDSA and the key's own algorithm (`none` and
    /// the HMAC algorithms are refused before any cryptography runs); with a `kid`, only
    /// the key of that id is tried. Time, issuer and audience are the caller's to check.
    pub fn verify(&self, token: &str) -> Result<Value, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header: Value = B64
            .decode(header_b64)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(JwtError::Malformed)?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(SigningAlgorithm::parse)
            .ok_or(JwtError::Algorithm)?;
        if header.get("crit").is_some() {
            return Err(JwtError::Malformed);
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(JwtError::Malformed),
        };
        let signature = B64.decode(signature_b64).map_err(|_| JwtError::Signature)?;
        let signed = &token.as_bytes()[..header_b64.len() + 1 + claims_b64.len()];
        let mut candidates = self
            .keys
            .iter()
            .filter(|(key_kid, _)| kid.is_none() || key_kid.as_deref() == kid)
            .filter(|(_, verifier)| verifier.alg() == alg)
            .peekable();
        if candidates.peek().is_none() {
            return Err(JwtError::UnknownKey);
        }
        if !candidates.any(|(_, verifier)| verifier.verify(signed, &signature)) {
            return Err(JwtError::Signature);
        }
        let claims: Value = B64
            .decode(claims_b64)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(JwtError::Malformed)?;
        if claims.is_object() {
            Ok(claims)
        } else {
            Err(JwtError::Malformed)
        }
    }
}

/// The claims of a JWS, read without checking anything (to learn who claims to have sent
/// it before its keys are looked up); `None` if it is not three parts of which the second
/// is a JSON object.
pub fn unverified_claims(token: &str) -> Option<Value> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let claims_b64 = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&B64.decode(claims_b64).ok()?).ok()?;
    claims.is_object().then_some(claims)
}

/// OpenID Connect's `at_hash`: the left half of a hash of `value`, base64url. The hash is
/// the one the signing algorithm uses: SHA-256 for ES256 and RS256, SHA-512 for EdDSA
/// (Ed25519), as OpenID Connect Core §3.1.3.6 and its Ed25519 errata say.
pub fn left_half_hash(alg: SigningAlgorithm, value: &str) -> String {
    use sha2::Digest;
    match alg {
        SigningAlgorithm::EdDsa => B64.encode(&sha2::Sha512::digest(value.as_bytes())[..32]),
        SigningAlgorithm::Es256 | SigningAlgorithm::Rs256 => {
            B64.encode(&sha2::Sha256::digest(value.as_bytes())[..16])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str, active_from: i64) -> SigningKey {
        SigningKey {
            kid: kid.to_owned(),
            alg: SigningAlgorithm::EdDsa,
            private_key: generate_key(SigningAlgorithm::EdDsa).unwrap_or_default(),
            created_at: 0,
            active_from,
            retire_at: None,
        }
    }

    /// A client's key set is read from a JWK Set as the key ring publishes one: each of
    /// RS256, ES256 and EdDSA verifies its own signatures; no other algorithm, a key of
    /// another set, or a tampered token does.
    #[test]
    fn client_keys_verify_rs256_es256_and_eddsa() {
        let keys = [
            SigningKey {
                alg: SigningAlgorithm::Rs256,
                private_key: generate_key(SigningAlgorithm::Rs256).unwrap_or_default(),
                ..key("rsa", 0)
            },
            SigningKey {
                alg: SigningAlgorithm::Es256,
                private_key: generate_key(SigningAlgorithm::Es256).unwrap_or_default(),
                ..key("ec", 0)
            },
            key("ed", 0),
        ];
        let ring = KeyRing::new(&keys, SigningAlgorithm::EdDsa, 10);
        let client = ClientKeys::parse(ring.jwks()).unwrap_or_else(|e| panic!("{e}"));
        let stranger = KeyRing::new(&[key("ed", 0)], SigningAlgorithm::EdDsa, 10);
        for alg in [
            SigningAlgorithm::Rs256,
            SigningAlgorithm::Es256,
            SigningAlgorithm::EdDsa,
        ] {
            let token = ring
                .sign_with(alg, "JWT", &json!({"iss": "cli_a"}))
                .unwrap_or_default();
            assert_eq!(
                client.verify(&token).ok(),
                Some(json!({"iss": "cli_a"})),
                "{alg:?}"
            );
            // The header is signed too: one changed (its kid dropped) no longer verifies.
            let (header, rest) = token.split_once('.').unwrap_or_default();
            let mut plain: Value =
                serde_json::from_slice(&B64.decode(header).unwrap_or_default()).unwrap_or_default();
            plain.as_object_mut().map(|h| h.remove("kid"));
            let headerless = format!("{}.{rest}", B64.encode(plain.to_string()));
            assert_eq!(
                client.verify(&headerless).err(),
                Some(JwtError::Signature),
                "{alg:?}"
            );
            // Tampered claims.
            let parts: Vec<&str> = token.split('.').collect();
            let forged = format!(
                "{}.{}.{}",
                parts[0],
                B64.encode(json!({"iss": "cli_b"}).to_string()),
                parts[2]
            );
            assert_eq!(client.verify(&forged).err(), Some(JwtError::Signature));
        }
        // A key of the same kid from another set.
        let token = stranger
            .sign_with(SigningAlgorithm::EdDsa, "JWT", &json!({}))
            .unwrap_or_default();
        assert_eq!(client.verify(&token).err(), Some(JwtError::Signature));
        // `none` and HS256 are refused before any cryptography.
        for alg in ["none", "HS256", "RS512"] {
            let token = format!(
                "{}.{}.",
                B64.encode(json!({"alg": alg, "kid": "ed"}).to_string()),
                B64.encode("{}")
            );
            assert_eq!(
                client.verify(&token).err(),
                Some(JwtError::Algorithm),
                "{alg}"
            );
        }
        // An ES256 header with the RSA key's kid: no key of that algorithm has it.
        let token = format!(
            "{}.{}.AAAA",
            B64.encode(json!({"alg": "ES256", "kid": "rsa"}).to_string()),
            B64.encode("{}")
        );
        assert_eq!(client.verify(&token).err(), Some(JwtError::UnknownKey));
    }

    #[test]
    fn client_key_sets_are_checked() {
        assert!(ClientKeys::parse(&json!([])).is_err());
        assert!(ClientKeys::parse(&json!({"keys": []})).is_err());
        assert!(ClientKeys::parse(&json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})).is_err());
        let ring = KeyRing::new(&[key("ed", 0)], SigningAlgorithm::EdDsa, 10);
        let mut private = ring.jwks().clone();
        private["keys"][0]["d"] = json!("AAAA");
        assert!(ClientKeys::parse(&private).is_err());
        let many = json!({"keys": vec![ring.jwks()["keys"][0].clone(); MAX_CLIENT_KEYS + 1]});
        assert!(ClientKeys::parse(&many).is_err());
        let short_rsa = json!({"keys": [{"kty": "RSA", "n": B64.encode([7u8; 128]), "e": "AQAB"}]});
        assert!(ClientKeys::parse(&short_rsa).is_err());
        // A key for encryption is skipped, not an error, when a signing key is there too.
        let mut mixed = ring.jwks().clone();
        if let Some(keys) = mixed["keys"].as_array_mut() {
            keys.push(json!({"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}));
        }
        assert!(ClientKeys::parse(&mixed).is_ok());
    }

    #[test]
    fn es256_signs_verifies_and_publishes_an_ec_key() {
        let stored = SigningKey {
            alg: SigningAlgorithm::Es256,
            private_key: generate_key(SigningAlgorithm::Es256).unwrap_or_default(),
            ..key("ec", 0)
        };
        let ring = KeyRing::new(&[stored, key("ed", -10)], SigningAlgorithm::Es256, 10);
        let token = ring
            .sign("at+jwt", &json!({"sub": "u"}))
            .unwrap_or_default();
        let header: Value = serde_json::from_slice(
            &B64.decode(token.split('.').next().unwrap_or(""))
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        assert_eq!(header["alg"], "ES256");
        let claims: Value = ring.verify(&token, "at+jwt").unwrap_or_default();
        assert_eq!(claims["sub"], "u");
        let ec = ring.jwks()["keys"]
            .as_array()
            .and_then(|k| k.iter().find(|k| k["kid"] == "ec").cloned())
            .unwrap_or_default();
        assert_eq!(
            (ec["kty"].as_str(), ec["crv"].as_str()),
            (Some("EC"), Some("P-256"))
        );
        assert_eq!(
            B64.decode(ec["x"].as_str().unwrap_or(""))
                .map(|x| x.len())
                .ok(),
            Some(32)
        );
        // An ES256 token relabelled EdDSA is refused before any signature check.
        let parts: Vec<&str> = token.split('.').collect();
        let relabelled = format!(
            "{}.{}.{}",
            B64.encode(br#"{"alg":"EdDSA","typ":"at+jwt","kid":"ec"}"#),
            parts[1],
            parts[2]
        );
        assert_eq!(
            ring.verify::<Value>(&relabelled, "at+jwt"),
            Err(JwtError::Algorithm)
        );
    }

    /// One RSA key (they are slow to make) signing beside an EdDSA key that signs by default.
    #[test]
    fn rs256_signs_when_asked_verifies_and_publishes_an_rsa_key() {
        let rsa = SigningKey {
            alg: SigningAlgorithm::Rs256,
            private_key: generate_key(SigningAlgorithm::Rs256).unwrap_or_default(),
            ..key("rsa", 0)
        };
        let ring = KeyRing::new(&[rsa, key("ed", 0)], SigningAlgorithm::EdDsa, 10);
        assert_eq!(ring.signing_kid(), Some("ed"));
        assert_eq!(ring.signing_kid_for(SigningAlgorithm::Rs256), Some("rsa"));
        assert!(!ring.can_sign_with(SigningAlgorithm::Es256));
        assert_eq!(
            ring.sign_with(SigningAlgorithm::Es256, "JWT", &json!({})),
            None
        );
        let token = ring
            .sign_with(SigningAlgorithm::Rs256, "JWT", &json!({"sub": "u"}))
            .unwrap_or_default();
        let header: Value = serde_json::from_slice(
            &B64.decode(token.split('.').next().unwrap_or(""))
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        assert_eq!(
            (header["alg"].as_str(), header["kid"].as_str()),
            (Some("RS256"), Some("rsa"))
        );
        let claims: Value = ring.verify(&token, "JWT").unwrap_or_default();
        assert_eq!(claims["sub"], "u");
        let jwk = ring.jwks()["keys"]
            .as_array()
            .and_then(|k| k.iter().find(|k| k["kid"] == "rsa").cloned())
            .unwrap_or_default();
        assert_eq!(
            (jwk["kty"].as_str(), jwk["alg"].as_str()),
            (Some("RSA"), Some("RS256"))
        );
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(
            B64.decode(jwk["n"].as_str().unwrap_or(""))
                .map(|n| n.len())
                .ok(),
            Some(256)
        );
        assert!(jwk.get("d").is_none());
        // An RS256 token relabelled EdDSA, and a tampered one, are refused.
        let parts: Vec<&str> = token.split('.').collect();
        let relabelled = format!(
            "{}.{}.{}",
            B64.encode(br#"{"alg":"EdDSA","typ":"JWT","kid":"rsa"}"#),
            parts[1],
            parts[2]
        );
        assert_eq!(
            ring.verify::<Value>(&relabelled, "JWT"),
            Err(JwtError::Algorithm)
        );
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            B64.encode(br#"{"sub":"x"}"#),
            parts[2]
        );
        assert_eq!(
            ring.verify::<Value>(&tampered, "JWT"),
            Err(JwtError::Signature)
        );
        assert_eq!(
            left_half_hash(SigningAlgorithm::Rs256, "t"),
            left_half_hash(SigningAlgorithm::Es256, "t")
        );
    }

    #[test]
    fn at_hash_uses_the_hash_of_the_signing_algorithm() {
        use sha2::Digest;
        let token = "eyJhbGciOiJFZERTQSJ9.e30.sig";
        let sha512 = sha2::Sha512::digest(token.as_bytes());
        let sha256 = sha2::Sha256::digest(token.as_bytes());
        assert_eq!(
            left_half_hash(SigningAlgorithm::EdDsa, token),
            B64.encode(&sha512[..32])
        );
        assert_eq!(
            left_half_hash(SigningAlgorithm::Es256, token),
            B64.encode(&sha256[..16])
        );
    }

    #[test]
    fn signs_and_verifies() {
        let ring = KeyRing::new(&[key("a", 0)], SigningAlgorithm::EdDsa, 10);
        let token = ring
            .sign("at+jwt", &json!({"sub": "u"}))
            .unwrap_or_default();
        let claims: Value = ring.verify(&token, "at+jwt").unwrap_or_default();
        assert_eq!(claims["sub"], "u");
        assert_eq!(
            ring.verify::<Value>(&token, "JWT"),
            Err(JwtError::Malformed)
        );
    }

    #[test]
    fn newest_active_key_signs_and_future_keys_are_published_first() {
        let ring = KeyRing::new(
            &[key("old", 0), key("new", 5), key("next", 100)],
            SigningAlgorithm::EdDsa,
            10,
        );
        assert_eq!(ring.signing_kid(), Some("new"));
        assert_eq!(ring.jwks()["keys"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn a_key_that_begins_signing_in_the_same_second_wins() {
        let ring = KeyRing::new(
            &[key("sig_a", 10), key("sig_b", 10)],
            SigningAlgorithm::EdDsa,
            10,
        );
        assert_eq!(ring.signing_kid(), Some("sig_b"));
        let ring = KeyRing::new(
            &[key("sig_b", 10), key("sig_a", 10)],
            SigningAlgorithm::EdDsa,
            10,
        );
        assert_eq!(ring.signing_kid(), Some("sig_b"));
    }

    #[test]
    fn tampering_and_alg_confusion_fail() {
        let ring = KeyRing::new(&[key("a", 0)], SigningAlgorithm::EdDsa, 10);
        let token = ring
            .sign("at+jwt", &json!({"sub": "u"}))
            .unwrap_or_default();
        let parts: Vec<&str> = token.split('.').collect();
        let forged_claims = B64.encode(br#"{"sub":"admin"}"#);
        let tampered = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        assert_eq!(
            ring.verify::<Value>(&tampered, "at+jwt"),
            Err(JwtError::Signature)
        );
        let none_header = B64.encode(br#"{"alg":"none","typ":"at+jwt","kid":"a"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert_eq!(
            ring.verify::<Value>(&unsigned, "at+jwt"),
            Err(JwtError::Algorithm)
        );
        let wrong_kid = B64.encode(br#"{"alg":"EdDSA","typ":"at+jwt","kid":"b"}"#);
        let other = format!("{wrong_kid}.{}.{}", parts[1], parts[2]);
        assert_eq!(
            ring.verify::<Value>(&other, "at+jwt"),
            Err(JwtError::UnknownKey)
        );
    }
}
