//! The issuer's public signing keys (a JWK Set) and JWS signature checks.
//!
//! The algorithm comes from the key, never from the token: a key is Ed25519 (`EdDSA`),
//! P-256 (`ES256`) or RSA published for `RS256`, and a token whose header names another
//! algorithm is refused before any cryptography runs.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
    UnparsedPublicKey, VerificationAlgorithm,
};
use serde::Deserialize;

/// The most keys taken from one JWK Set.
const MAX_KEYS: usize = 100;
/// The longest `kid` taken from a JWK Set or looked up for a token.
pub(crate) const MAX_KID_LEN: usize = 128;

/// A signing algorithm Net API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    EdDsa,
    Es256,
    Rs256,
}

impl Algorithm {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }
}

/// The bytes of a public key as ring reads them.
#[derive(Debug, Clone)]
enum Material {
    /// Ed25519: 32 bytes; P-256: the uncompressed point.
    Point(&'static dyn VerificationAlgorithm, Vec<u8>),
    /// RSA: modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

/// One public key: its algorithm and its bytes.
#[derive(Debug, Clone)]
pub(crate) struct PublicKey {
    alg: Algorithm,
    material: Material,
}

impl PublicKey {
    pub(crate) fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Whether `signature` signs `message` under this key.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            Material::Point(alg, bytes) => UnparsedPublicKey::new(*alg, bytes)
                .verify(message, signature)
                .is_ok(),
            Material::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
        }
    }
}

/// A JWK as published; fields this guard does not use are ignored.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    crv: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

#[derive(Deserialize)]
struct JwkSetDocument {
    keys: Vec<serde_json::Value>,
}

/// The keys of one JWK Set by `kid`.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: HashMap<String, PublicKey>,
}

impl KeySet {
    /// Reads a JWK Set. Keys this guard cannot use (RSA keys not marked `RS256`, encryption
    /// keys, keys without a `kid`, broken ones) are skipped; a document that is not a JWK Set is an error.
    pub(crate) fn parse(document: &[u8]) -> Result<Self, serde_json::Error> {
        let set: JwkSetDocument = serde_json::from_slice(document)?;
        let keys = set
            .keys
            .into_iter()
            .take(MAX_KEYS)
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(|jwk| {
                let key = public_key(&jwk)?;
                let kid = jwk.kid.filter(|kid| kid.len() <= MAX_KID_LEN)?;
                Some((kid, key))
            })
            .collect();
        Ok(Self { keys })
    }

    pub(crate) fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.get(kid)
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

fn public_key(jwk: &Jwk) -> Option<PublicKey> {
    if jwk.use_.as_deref().is_some_and(|use_| use_ != "sig") {
        return None;
    }
    let decode = |field: &Option<String>| field.as_deref().and_then(|v| B64.decode(v).ok());
    let (alg, material) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("OKP", Some("Ed25519")) => {
            let x = decode(&jwk.x).filter(|x| x.len() == 32)?;
            (Algorithm::EdDsa, Material::Point(&ED25519, x))
        }
        ("EC", Some("P-256")) => {
            let x = decode(&jwk.x).filter(|x| x.len() == 32)?;
            let y = decode(&jwk.y).filter(|y| y.len() == 32)?;
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (
                Algorithm::Es256,
                Material::Point(&ECDSA_P256_SHA256_FIXED, point),
            )
        }
        // RSA keys serve several algorithms: only one published for RS256 is taken. 2048 to
        // 8192 bits, as ring verifies.
        ("RSA", None) if jwk.alg.as_deref() == Some("RS256") => {
            let n = decode(&jwk.n).filter(|n| (256..=1024).contains(&n.len()))?;
            let e = decode(&jwk.e).filter(|e| (1..=8).contains(&e.len()))?;
            (Algorithm::Rs256, Material::Rsa { n, e })
        }
        _ => return None,
    };
    // A key that names an algorithm must name the one its type implies.
    if jwk.alg.as_deref().is_some_and(|named| named != alg.name()) {
        return None;
    }
    Some(PublicKey { alg, material })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn ed25519() -> Ed25519KeyPair {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("generate");
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("parse")
    }

    #[test]
    fn ed25519_and_p256_keys_verify_their_own_signatures_only() {
        let ed = ed25519();
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("generate");
        let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("parse");
        let point = ec.public_key().as_ref();
        let document = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "ed",
             "x": B64.encode(ed.public_key().as_ref())},
            {"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "ec",
             "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..])},
            {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"},
            {"kty": "OKP", "crv": "Ed25519", "alg": "ES256", "kid": "liar",
             "x": B64.encode(ed.public_key().as_ref())},
            {"kty": "OKP", "crv": "Ed25519", "use": "enc", "kid": "enc",
             "x": B64.encode(ed.public_key().as_ref())}
        ]});
        let set = KeySet::parse(document.to_string().as_bytes()).expect("a JWK Set");
        assert_eq!(
            set.len(),
            2,
            "RSA keys not published for RS256, mislabelled and encryption keys are skipped"
        );

        let ed_key = set.get("ed").expect("ed");
        assert_eq!(ed_key.alg(), Algorithm::EdDsa);
        assert!(ed_key.verifies(b"message", ed.sign(b"message").as_ref()));
        assert!(!ed_key.verifies(b"other", ed.sign(b"message").as_ref()));

        let ec_key = set.get("ec").expect("ec");
        assert_eq!(ec_key.alg(), Algorithm::Es256);
        let signature = ec.sign(&rng, b"message").expect("sign");
        assert!(ec_key.verifies(b"message", signature.as_ref()));
        assert!(!ed_key.verifies(b"message", signature.as_ref()));
    }

    #[test]
    fn a_document_that_is_not_a_jwk_set_is_an_error() {
        assert!(KeySet::parse(b"{\"keys\": 3}").is_err());
        assert!(KeySet::parse(b"<html>").is_err());
    }
}
