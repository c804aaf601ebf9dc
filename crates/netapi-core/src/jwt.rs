//! JSON Web Tokens, signed and verified by hand with Ed25519.
//!
//! The algorithm is a property of the key, never read from the token: a token whose header
//! names anything else (`none`, `HS256`, ...) is refused before any cryptography runs.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey as Ed25519Key, VerifyingKey};
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

struct Verifier {
    alg: SigningAlgorithm,
    key: VerifyingKey,
}

/// The published keys and the one that signs now. Rebuilt whenever the keys change.
pub struct KeyRing {
    signer: Option<(String, Ed25519Key)>,
    verifiers: HashMap<String, Verifier>,
    jwks: Value,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("signing_kid", &self.signer.as_ref().map(|(kid, _)| kid))
            .field("published", &self.verifiers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Makes new Ed25519 private key bytes.
pub fn generate_ed25519() -> Vec<u8> {
    Ed25519Key::generate(&mut rand::rngs::OsRng)
        .to_bytes()
        .to_vec()
}

fn ed25519_from(bytes: &[u8]) -> Option<Ed25519Key> {
    let seed: [u8; 32] = bytes.try_into().ok()?;
    Some(Ed25519Key::from_bytes(&seed))
}

impl KeyRing {
    /// Builds the ring from stored keys: every key is published; the newest key whose
    /// `active_from` has come signs.
    pub fn new(keys: &[SigningKey], now: i64) -> Self {
        let mut verifiers = HashMap::new();
        let mut jwks_keys = Vec::new();
        let mut signer: Option<(&SigningKey, Ed25519Key)> = None;
        for stored in keys {
            let Some(private) = ed25519_from(&stored.private_key) else {
                tracing::error!(kid = %stored.kid, "signing key is unreadable; skipped");
                continue;
            };
            let public = private.verifying_key();
            jwks_keys.push(json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "alg": stored.alg.as_str(),
                "use": "sig",
                "kid": stored.kid,
                "x": B64.encode(public.as_bytes()),
            }));
            verifiers.insert(
                stored.kid.clone(),
                Verifier {
                    alg: stored.alg,
                    key: public,
                },
            );
            // Ties on `active_from` (a key rotated within the second the previous one began
            // signing) go to the later key: kids sort by creation time.
            let newer = signer.as_ref().is_none_or(|(current, _)| {
                (stored.active_from, &stored.kid) > (current.active_from, &current.kid)
            });
            if stored.active_from <= now && newer {
                signer = Some((stored, private));
            }
        }
        Self {
            signer: signer.map(|(stored, key)| (stored.kid.clone(), key)),
            verifiers,
            jwks: json!({ "keys": jwks_keys }),
        }
    }

    /// The JWK Set document.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// Whether a key can sign now.
    pub fn can_sign(&self) -> bool {
        self.signer.is_some()
    }

    /// The `kid` that signs now.
    pub fn signing_kid(&self) -> Option<&str> {
        self.signer.as_ref().map(|(kid, _)| kid.as_str())
    }

    /// Signs `claims` with header `typ`; `None` if no key may sign yet.
    pub fn sign<C: Serialize>(&self, typ: &str, claims: &C) -> Option<String> {
        let (kid, key) = self.signer.as_ref()?;
        let header = json!({ "alg": SigningAlgorithm::EdDsa.as_str(), "typ": typ, "kid": kid });
        let mut token = B64.encode(serde_json::to_vec(&header).ok()?);
        token.push('.');
        token.push_str(&B64.encode(serde_json::to_vec(claims).ok()?));
        let signature = key.sign(token.as_bytes());
        token.push('.');
        token.push_str(&B64.encode(signature.to_bytes()));
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
        if verifier.alg != alg {
            return Err(JwtError::Algorithm);
        }
        let signature_bytes: [u8; 64] = B64
            .decode(signature_b64)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(JwtError::Signature)?;
        let signed_len = header_b64.len() + 1 + claims_b64.len();
        verifier
            .key
            .verify_strict(
                &token.as_bytes()[..signed_len],
                &Signature::from_bytes(&signature_bytes),
            )
            .map_err(|_| JwtError::Signature)?;
        B64.decode(claims_b64)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(JwtError::Malformed)
    }
}

/// The left half of a SHA-256 of `value`, base64url: OpenID Connect's `at_hash`.
pub fn left_half_hash(value: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(value.as_bytes());
    B64.encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str, active_from: i64) -> SigningKey {
        SigningKey {
            kid: kid.to_owned(),
            alg: SigningAlgorithm::EdDsa,
            private_key: generate_ed25519(),
            created_at: 0,
            active_from,
            retire_at: None,
        }
    }

    #[test]
    fn signs_and_verifies() {
        let ring = KeyRing::new(&[key("a", 0)], 10);
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
        let ring = KeyRing::new(&[key("old", 0), key("new", 5), key("next", 100)], 10);
        assert_eq!(ring.signing_kid(), Some("new"));
        assert_eq!(ring.jwks()["keys"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn a_key_that_begins_signing_in_the_same_second_wins() {
        let ring = KeyRing::new(&[key("sig_a", 10), key("sig_b", 10)], 10);
        assert_eq!(ring.signing_kid(), Some("sig_b"));
        let ring = KeyRing::new(&[key("sig_b", 10), key("sig_a", 10)], 10);
        assert_eq!(ring.signing_kid(), Some("sig_b"));
    }

    #[test]
    fn tampering_and_alg_confusion_fail() {
        let ring = KeyRing::new(&[key("a", 0)], 10);
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
