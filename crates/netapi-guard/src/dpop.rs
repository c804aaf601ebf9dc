//! DPoP proofs (RFC 9449) that come with DPoP-bound access tokens: the proof's own checks
//! (`typ`, `alg`, a public `jwk`, the signature, `htm`, `htu`, `iat`, `ath`), the key's RFC
//! 7638 thumbprint, and a bounded, in-memory replay cache of `jti`s.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The algorithms of proofs accepted, as Net API accepts them.
pub(crate) const ALGORITHMS: &str = "ES256 EdDSA RS256";
/// How old a proof may be, seconds.
pub(crate) const MAX_AGE: i64 = 60;
/// The longest proof read.
const MAX_PROOF_LEN: usize = 4096;
/// How many `jti`s are remembered at most; past it, proofs are refused until some expire.
pub(crate) const MAX_REPLAY_ENTRIES: usize = 100_000;

pub(crate) const MISSING: &str = "A DPoP proof (the DPoP header) is required.";
pub(crate) const SEVERAL: &str = "Send exactly one DPoP header.";
pub(crate) const MALFORMED: &str = "The DPoP proof is malformed.";
const TYPE: &str = "The DPoP proof's typ must be dpop+jwt.";
const ALGORITHM: &str =
    "The DPoP proof's alg is not supported (ES256, EdDSA, RS256) or not its key's.";
const KEY: &str = "The DPoP proof's jwk is not a supported public key.";
const SIGNATURE: &str = "The DPoP proof's signature does not verify.";
const METHOD: &str = "The DPoP proof's htm is not the method of the request.";
pub(crate) const URL: &str = "The DPoP proof's htu is not the URL of the request.";
const TIME: &str = "The DPoP proof's iat is too old or in the future.";
const TOKEN_HASH: &str = "The DPoP proof's ath is not the hash of the access token.";
pub(crate) const REPLAYED: &str = "The DPoP proof has been used before.";
pub(crate) const KEY_MISMATCH: &str = "The DPoP proof's key is not the key the token is bound to.";
pub(crate) const BUSY: &str = "Too many DPoP proofs at once; try again shortly.";

/// The request a proof must name (no `Debug`: it holds the access token).
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) method: &'a str,
    pub(crate) url: &'a str,
    pub(crate) access_token: &'a str,
}

/// A proof that passed: its key's thumbprint, and the name of the proof in the replay
/// caches (a SHA-256 of the thumbprint and the `jti`, made once, so that neither cache holds
/// the proof or the token).
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) jkt: String,
    digest: [u8; 32],
}

impl Checked {
    fn new(jkt: String, jti: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(b"netapi-guard dpop replay\0")
            .chain_update(jkt.as_bytes())
            .chain_update([0])
            .chain_update(jti.as_bytes())
            .finalize()
            .into();
        Self { jkt, digest }
    }

    /// The name of this proof in a shared replay store: its digest in base64url.
    pub(crate) fn replay_key(&self) -> String {
        B64.encode(self.digest)
    }
}

enum Key {
    Point(&'static ring::signature::EdDSAParameters, Vec<u8>),
    Ec(Vec<u8>),
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

/// Reads a public `jwk` for `alg`; answers the key and the thumbprint's input.
fn key(jwk: Option<&Value>, alg: &str) -> Result<(Key, String), &'static str> {
    let object = jwk.and_then(Value::as_object).ok_or(KEY)?;
    if ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
        .iter()
        .any(|m| object.contains_key(*m))
    {
        return Err(KEY);
    }
    let text = |name: &str| object.get(name).and_then(Value::as_str);
    let bytes = |name: &str| text(name).and_then(|t| B64.decode(t).ok()).ok_or(KEY);
    match (text("kty"), alg) {
        (Some("EC"), "ES256") if text("crv") == Some("P-256") => {
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err(KEY);
            }
            let input = format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                B64.encode(&x),
                B64.encode(&y)
            );
            let mut point = vec![4];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            Ok((Key::Ec(point), input))
        }
        (Some("OKP"), "EdDSA") if text("crv") == Some("Ed25519") => {
            let x = bytes("x")?;
            if x.len() != 32 {
                return Err(KEY);
            }
            let input = format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                B64.encode(&x)
            );
            Ok((Key::Point(&ED25519, x), input))
        }
        (Some("RSA"), "RS256") => {
            let (n, e) = (bytes("n")?, bytes("e")?);
            if n.len() < 256 || n.len() > 1024 || e.is_empty() || e.len() > 8 {
                return Err(KEY);
            }
            let input = format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                B64.encode(&e),
                B64.encode(&n)
            );
            Ok((Key::Rsa { n, e }, input))
        }
        (Some("EC" | "OKP" | "RSA"), _) => Err(ALGORITHM),
        _ => Err(KEY),
    }
}

impl Key {
    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Point(alg, x) => UnparsedPublicKey::new(*alg, x)
                .verify(message, signature)
                .is_ok(),
            Self::Ec(point) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
                .is_ok(),
            Self::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
        }
    }
}

/// Whether two URLs are the same without query and fragment (RFC 9449 §4.3), after the
/// normalisation URL parsing does.
fn same_url(a: &str, b: &str) -> bool {
    let base = |text: &str| {
        let mut url = url::Url::parse(text).ok()?;
        url.set_query(None);
        url.set_fragment(None);
        Some(url)
    };
    matches!((base(a), base(b)), (Some(a), Some(b)) if a == b)
}

/// Checks `proof` for `target` at `now` (its `iat` may be `leeway` seconds ahead).
pub(crate) fn check(
    proof: &str,
    target: &Target<'_>,
    now: i64,
    leeway: i64,
) -> Result<Checked, &'static str> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(MALFORMED);
    }
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(MALFORMED);
    };
    let json = |part: &str| -> Result<Map<String, Value>, &'static str> {
        B64.decode(part)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(MALFORMED)
    };
    let header = json(header_b64)?;
    if !header
        .get("typ")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
    {
        return Err(TYPE);
    }
    let alg = header.get("alg").and_then(Value::as_str).ok_or(ALGORITHM)?;
    if !ALGORITHMS.split(' ').any(|a| a == alg) {
        return Err(ALGORITHM);
    }
    let (key, thumbprint_input) = key(header.get("jwk"), alg)?;
    let claims = json(claims_b64)?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(MALFORMED)?;
    let iat = claims.get("iat").and_then(Value::as_i64).ok_or(MALFORMED)?;
    if text("htm").ok_or(MALFORMED)? != target.method {
        return Err(METHOD);
    }
    if !same_url(text("htu").ok_or(MALFORMED)?, target.url) {
        return Err(URL);
    }
    if iat > now.saturating_add(leeway) || iat < now.saturating_sub(MAX_AGE) {
        return Err(TIME);
    }
    let expected = B64.encode(Sha256::digest(target.access_token.as_bytes()));
    if text("ath") != Some(expected.as_str()) {
        return Err(TOKEN_HASH);
    }
    let signature = B64.decode(signature_b64).map_err(|_| SIGNATURE)?;
    let signed = &proof.as_bytes()[..header_b64.len() + 1 + claims_b64.len()];
    if !key.verifies(signed, &signature) {
        return Err(SIGNATURE);
    }
    Ok(Checked::new(
        B64.encode(Sha256::digest(thumbprint_input.as_bytes())),
        jti,
    ))
}

/// Live entries by key, and the same in the order of their expiry.
type Seen = (HashMap<[u8; 16], i64>, VecDeque<(i64, [u8; 16])>);

/// The `jti`s of accepted proofs, per process, until they could no longer be accepted;
/// bounded (full: refuse, never grow).
#[derive(Debug)]
pub(crate) struct ReplayCache {
    capacity: usize,
    inner: Mutex<Seen>,
}

impl ReplayCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// Records `proof` at `now`: `REPLAYED` if seen, `BUSY` if full.
    pub(crate) fn record(
        &self,
        proof: &Checked,
        now: i64,
        leeway: i64,
    ) -> Result<(), &'static str> {
        let mut key = [0u8; 16];
        key.copy_from_slice(&proof.digest[..16]);
        let expires = now.saturating_add(MAX_AGE).saturating_add(leeway);
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (seen, order) = &mut *guard;
        while let Some((at, old)) = order.front().copied() {
            if at > now {
                break;
            }
            order.pop_front();
            if seen.get(&old) == Some(&at) {
                seen.remove(&old);
            }
        }
        if seen.get(&key).is_some_and(|at| *at > now) {
            return Err(REPLAYED);
        }
        if seen.len() >= self.capacity {
            return Err(BUSY);
        }
        seen.insert(key, expires);
        order.push_back((expires, key));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};
    use serde_json::json;

    struct Client {
        pair: Ed25519KeyPair,
    }

    impl Client {
        fn new() -> Self {
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("generate");
            Self {
                pair: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("parse"),
            }
        }

        fn jwk(&self) -> Value {
            json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(self.pair.public_key().as_ref())})
        }

        fn proof(&self, header: Value, claims: Value) -> String {
            let input = format!(
                "{}.{}",
                B64.encode(header.to_string()),
                B64.encode(claims.to_string())
            );
            let signature = self.pair.sign(input.as_bytes());
            format!("{input}.{}", B64.encode(signature.as_ref()))
        }
    }

    fn target() -> Target<'static> {
        Target {
            method: "GET",
            url: "https://orders.example.com/orders",
            access_token: "tok",
        }
    }

    fn claims() -> Value {
        json!({"jti": "j1", "htm": "GET", "htu": "https://orders.example.com/orders?x=1",
               "iat": 1000, "ath": B64.encode(Sha256::digest(b"tok"))})
    }

    #[test]
    fn a_good_proof_passes_and_each_rule_refuses() {
        let client = Client::new();
        let header = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": client.jwk()});
        let good = client.proof(header.clone(), claims());
        let checked = check(&good, &target(), 1000, 5).expect("valid");
        let input = format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            client.jwk()["x"].as_str().unwrap_or_default()
        );
        assert_eq!(checked.jkt, B64.encode(Sha256::digest(input.as_bytes())));
        let with = |name: &str, value: Value| {
            let mut claims = claims();
            claims[name] = value;
            client.proof(header.clone(), claims)
        };
        for (proof, why) in [
            (with("htm", json!("POST")), METHOD),
            (with("htu", json!("https://orders.example.com/other")), URL),
            (with("iat", json!(900)), TIME),
            (with("iat", json!(1010)), TIME),
            (with("ath", json!("x")), TOKEN_HASH),
        ] {
            assert_eq!(check(&proof, &target(), 1000, 5).err(), Some(why));
        }
        let none = client.proof(
            json!({"typ": "dpop+jwt", "alg": "none", "jwk": client.jwk()}),
            claims(),
        );
        assert_eq!(check(&none, &target(), 1000, 5).err(), Some(ALGORITHM));
        let mut private = client.jwk();
        private["d"] = json!("AAAA");
        let leaked = client.proof(
            json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": private}),
            claims(),
        );
        assert_eq!(check(&leaked, &target(), 1000, 5).err(), Some(KEY));
        let other = Client::new().proof(header, claims());
        assert_eq!(check(&other, &target(), 1000, 5).err(), Some(SIGNATURE));
    }

    #[test]
    fn the_replay_cache_refuses_a_second_use_and_stays_bounded() {
        let cache = ReplayCache::new(1);
        let proof = |jti: &str| Checked::new("k".to_owned(), jti);
        assert_eq!(cache.record(&proof("a"), 0, 5), Ok(()));
        assert_eq!(cache.record(&proof("a"), 1, 5), Err(REPLAYED));
        assert_eq!(cache.record(&proof("b"), 1, 5), Err(BUSY));
        assert_eq!(cache.record(&proof("b"), MAX_AGE + 5, 5), Ok(()));
    }
}
