//! DPoP (RFC 9449): proofs of possession of a key, the keys' thumbprints (RFC 7638), the
//! replay cache of proof `jti`s and stateless server nonces.
//!
//! A proof is a JWT the client signs with its own key, whose public half travels in the
//! proof's header (`jwk`). It names the request it is made for (`htm`, `htu`), when it was
//! made (`iat`), a unique id (`jti`) and, at a resource, the hash of the access token it
//! comes with (`ath`). Nothing here touches storage or the network.

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::Mac;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::clock::Timestamp;

/// The proof algorithms accepted (`dpop_signing_alg_values_supported`). Never `none`, never
/// an HMAC.
pub const ALGORITHMS: [&str; 3] = ["ES256", "EdDSA", "RS256"];

/// How old a proof may be, by its `iat`, seconds.
pub const PROOF_MAX_AGE: i64 = 60;
/// How far in the future a proof's `iat` may be (clock skew), seconds.
pub const PROOF_LEEWAY: i64 = 5;
/// Longest proof read; an RSA-4096 `jwk` fits several times.
pub const MAX_PROOF_LEN: usize = 4096;
/// Longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;
/// Smallest RSA modulus accepted, bytes (2048 bits).
const MIN_RSA_BYTES: usize = 256;
/// How many proof `jti`s one instance remembers at most. Past it, new proofs are refused
/// until old ones expire (memory stays bounded under attack). About 60 bytes each.
pub const MAX_REPLAY_ENTRIES: usize = 100_000;
/// How long one server nonce is made for, seconds; a nonce is accepted during its period
/// and the next (and the previous one's nonce during a period, for clock skew).
pub const NONCE_PERIOD: i64 = 60;

/// Why DPoP refused a request. Every description is fixed text: nothing of the proof or the
/// token is repeated back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpopFailure {
    /// A DPoP-bound access token was presented as a bearer token.
    BoundToken,
    /// A credential that is not DPoP-bound was presented with the DPoP scheme.
    NotBound,
    /// No `DPoP` header.
    MissingProof,
    /// More than one `DPoP` header.
    SeveralProofs,
    /// Not a JWT, or a claim is missing or of the wrong type.
    Malformed,
    /// `typ` is not `dpop+jwt`.
    Type,
    /// `alg` is not one of [`ALGORITHMS`], or not the key's.
    Algorithm,
    /// `jwk` is not a supported public key (or carries a private part).
    Key,
    /// The signature does not verify.
    Signature,
    /// `htm` is not the request's method.
    Method,
    /// `htu` is not the request's URL.
    Url,
    /// `iat` is too old or in the future.
    Time,
    /// `ath` is missing or not the hash of the access token.
    TokenHash,
    /// This proof (`jti`) was used before.
    Replayed,
    /// The proof's key is not the one the token is bound to.
    KeyMismatch,
    /// A server nonce is required and the proof has none, or an expired one.
    UseNonce,
    /// The replay cache is full: try again shortly.
    Busy,
}

impl DpopFailure {
    /// The error code: `invalid_token`, `invalid_dpop_proof` or `use_dpop_nonce`.
    pub const fn code(self) -> &'static str {
        match self {
            Self::BoundToken | Self::NotBound => "invalid_token",
            Self::UseNonce => "use_dpop_nonce",
            _ => "invalid_dpop_proof",
        }
    }

    /// A short reason for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BoundToken => "dpop_bound_token_as_bearer",
            Self::NotBound => "dpop_not_bound",
            Self::MissingProof => "dpop_missing_proof",
            Self::SeveralProofs => "dpop_several_proofs",
            Self::Malformed => "dpop_malformed",
            Self::Type => "dpop_type",
            Self::Algorithm => "dpop_algorithm",
            Self::Key => "dpop_key",
            Self::Signature => "dpop_signature",
            Self::Method => "dpop_method",
            Self::Url => "dpop_url",
            Self::Time => "dpop_time",
            Self::TokenHash => "dpop_ath",
            Self::Replayed => "dpop_replayed",
            Self::KeyMismatch => "dpop_key_mismatch",
            Self::UseNonce => "dpop_nonce",
            Self::Busy => "dpop_busy",
        }
    }

    /// For the client: `error_description`.
    pub const fn description(self) -> &'static str {
        match self {
            Self::BoundToken => {
                "The access token is bound to a DPoP key: send it as Authorization: DPoP with a DPoP proof"
            }
            Self::NotBound => {
                "The credential is not bound to a DPoP key: send it as Authorization: Bearer"
            }
            Self::MissingProof => "A DPoP proof (the DPoP header) is required",
            Self::SeveralProofs => "Send exactly one DPoP header",
            Self::Malformed => "The DPoP proof is malformed",
            Self::Type => "The DPoP proof's typ must be dpop+jwt",
            Self::Algorithm => {
                "The DPoP proof's alg is not supported (ES256, EdDSA, RS256) or not its key's"
            }
            Self::Key => "The DPoP proof's jwk is not a supported public key",
            Self::Signature => "The DPoP proof's signature does not verify",
            Self::Method => "The DPoP proof's htm is not the method of the request",
            Self::Url => "The DPoP proof's htu is not the URL of the request",
            Self::Time => "The DPoP proof's iat is too old or in the future",
            Self::TokenHash => "The DPoP proof's ath is not the hash of the access token",
            Self::Replayed => "The DPoP proof has been used before",
            Self::KeyMismatch => "The DPoP proof's key is not the key the token is bound to",
            Self::UseNonce => "A DPoP nonce from the server is required in the proof",
            Self::Busy => "Too many DPoP proofs at once; try again shortly",
        }
    }
}

/// The `cnf` (confirmation) claim of a DPoP-bound access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The RFC 7638 SHA-256 thumbprint of the key, base64url.
    pub jkt: String,
}

/// What a proof must match. Its `Debug` leaves the access token out.
#[derive(Clone, Copy)]
pub struct ProofTarget<'a> {
    /// The request's method (`htm`).
    pub method: &'a str,
    /// The request's URL (`htu`); its query and fragment are ignored.
    pub url: &'a str,
    /// The access token presented with the proof (`ath`), at a resource.
    pub access_token: Option<&'a str>,
}

impl std::fmt::Debug for ProofTarget<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofTarget")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("access_token", &self.access_token.map(|_| "[redacted]"))
            .finish()
    }
}

/// A proof whose signature, claims and freshness were checked (not yet its `jti`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedProof {
    /// The key's thumbprint.
    pub jkt: String,
    /// The proof's `jti`.
    pub jti: String,
    /// The proof's `iat`.
    pub iat: Timestamp,
    /// The proof's `nonce`.
    pub nonce: Option<String>,
}

/// A public key of a proof.
enum ProofKey {
    Es256(p256::ecdsa::VerifyingKey),
    EdDsa(ed25519_dalek::VerifyingKey),
    Rs256 { n: Vec<u8>, e: Vec<u8> },
}

impl ProofKey {
    /// Reads `jwk` for `alg`, and its RFC 7638 thumbprint input (the required members, in
    /// lexicographic order, without white space).
    fn parse(jwk: &Value, alg: &str) -> Result<(Self, String), DpopFailure> {
        let object = jwk.as_object().ok_or(DpopFailure::Key)?;
        // A private key has no place in a proof: whoever sent one gave it away.
        if ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
            .iter()
            .any(|m| object.contains_key(*m))
        {
            return Err(DpopFailure::Key);
        }
        let member = |name: &str| -> Result<Vec<u8>, DpopFailure> {
            object
                .get(name)
                .and_then(Value::as_str)
                .and_then(|text| B64.decode(text).ok())
                .ok_or(DpopFailure::Key)
        };
        let text = |name: &str| object.get(name).and_then(Value::as_str);
        match (text("kty"), alg) {
            (Some("EC"), "ES256") => {
                if text("crv") != Some("P-256") {
                    return Err(DpopFailure::Key);
                }
                let (x, y) = (member("x")?, member("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(DpopFailure::Key);
                }
                let point = p256::EncodedPoint::from_affine_coordinates(
                    p256::FieldBytes::from_slice(&x),
                    p256::FieldBytes::from_slice(&y),
                    false,
                );
                let key = p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                    .map_err(|_| DpopFailure::Key)?;
                let thumbprint = format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                    B64.encode(&x),
                    B64.encode(&y)
                );
                Ok((Self::Es256(key), thumbprint))
            }
            (Some("OKP"), "EdDSA") => {
                if text("crv") != Some("Ed25519") {
                    return Err(DpopFailure::Key);
                }
                let x: [u8; 32] = member("x")?.try_into().map_err(|_| DpopFailure::Key)?;
                let key =
                    ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|_| DpopFailure::Key)?;
                let thumbprint =
                    format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, B64.encode(x));
                Ok((Self::EdDsa(key), thumbprint))
            }
            (Some("RSA"), "RS256") => {
                let (n, e) = (member("n")?, member("e")?);
                if n.len() < MIN_RSA_BYTES || n.len() > 1024 || e.is_empty() || e.len() > 8 {
                    return Err(DpopFailure::Key);
                }
                let thumbprint = format!(
                    r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                    B64.encode(&e),
                    B64.encode(&n)
                );
                Ok((Self::Rs256 { n, e }, thumbprint))
            }
            (Some("EC" | "OKP" | "RSA"), _) => Err(DpopFailure::Algorithm),
            _ => Err(DpopFailure::Key),
        }
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Es256(key) => p256::ecdsa::Signature::from_slice(signature).is_ok_and(|sig| {
                p256::ecdsa::signature::Verifier::verify(key, message, &sig).is_ok()
            }),
            Self::EdDsa(key) => <[u8; 64]>::try_from(signature).is_ok_and(|bytes| {
                key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&bytes))
                    .is_ok()
            }),
            Self::Rs256 { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
        }
    }
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK (`EC` P-256, `OKP` Ed25519 or `RSA`),
/// base64url; `None` for any other key or a private one.
pub fn thumbprint(jwk: &Value) -> Option<String> {
    let alg = match jwk.get("kty").and_then(Value::as_str)? {
        "EC" => "ES256",
        "OKP" => "EdDSA",
        "RSA" => "RS256",
        _ => return None,
    };
    let (_, input) = ProofKey::parse(jwk, alg).ok()?;
    Some(B64.encode(Sha256::digest(input.as_bytes())))
}

/// `ath`: base64url of the SHA-256 of the access token.
pub fn token_hash(access_token: &str) -> String {
    B64.encode(Sha256::digest(access_token.as_bytes()))
}

/// Whether `htu` names `url`, both without query and fragment, after the syntax-based
/// normalisation of RFC 3986 §6.2.2 and the scheme-based one of §6.2.3 that URL parsing
/// does (case of scheme and host, default ports, dot segments, percent-encoding case).
pub fn same_url(htu: &str, url: &str) -> bool {
    let base = |text: &str| {
        let mut parsed = url::Url::parse(text).ok()?;
        parsed.set_query(None);
        parsed.set_fragment(None);
        Some(parsed)
    };
    match (base(htu), base(url)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Checks a proof's shape, signature, `htm`, `htu`, `iat` and `ath` at `now`. The `jti`
/// (replay) and `nonce` are the caller's to check.
pub fn check_proof(
    proof: &str,
    target: &ProofTarget<'_>,
    now: Timestamp,
) -> Result<CheckedProof, DpopFailure> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(DpopFailure::Malformed);
    }
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(DpopFailure::Malformed);
    };
    let json = |part: &str| -> Result<serde_json::Map<String, Value>, DpopFailure> {
        B64.decode(part)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(DpopFailure::Malformed)
    };
    let header = json(header_b64)?;
    let typ = header.get("typ").and_then(Value::as_str);
    if !typ.is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt")) {
        return Err(DpopFailure::Type);
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .filter(|alg| ALGORITHMS.contains(alg))
        .ok_or(DpopFailure::Algorithm)?;
    let (key, thumbprint_input) = ProofKey::parse(header.get("jwk").unwrap_or(&Value::Null), alg)?;
    let claims = json(claims_b64)?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
        .ok_or(DpopFailure::Malformed)?;
    let htm = text("htm").ok_or(DpopFailure::Malformed)?;
    let htu = text("htu").ok_or(DpopFailure::Malformed)?;
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or(DpopFailure::Malformed)?;
    let nonce = match claims.get("nonce") {
        None => None,
        Some(Value::String(nonce)) if nonce.len() <= 256 => Some(nonce.clone()),
        Some(_) => return Err(DpopFailure::Malformed),
    };
    if htm != target.method {
        return Err(DpopFailure::Method);
    }
    if !same_url(htu, target.url) {
        return Err(DpopFailure::Url);
    }
    if iat > now + PROOF_LEEWAY || iat < now - PROOF_MAX_AGE {
        return Err(DpopFailure::Time);
    }
    if let Some(token) = target.access_token {
        let expected = token_hash(token);
        let matches = text("ath").is_some_and(|ath| {
            subtle::ConstantTimeEq::ct_eq(ath.as_bytes(), expected.as_bytes()).into()
        });
        if !matches {
            return Err(DpopFailure::TokenHash);
        }
    }
    let signature = B64
        .decode(signature_b64)
        .map_err(|_| DpopFailure::Signature)?;
    let signed = &proof.as_bytes()[..header_b64.len() + 1 + claims_b64.len()];
    if !key.verify(signed, &signature) {
        return Err(DpopFailure::Signature);
    }
    Ok(CheckedProof {
        jkt: B64.encode(Sha256::digest(thumbprint_input.as_bytes())),
        jti: jti.to_owned(),
        iat,
        nonce,
    })
}

/// The `jti`s of the proofs one instance accepted, until they are too old to be accepted
/// again. Bounded: when [`MAX_REPLAY_ENTRIES`] are live, new proofs are refused
/// ([`DpopFailure::Busy`]) rather than the memory growing. Keys are a hash of the key's
/// thumbprint and the `jti`, so their size is fixed whatever the client sends.
pub struct ReplayCache {
    capacity: usize,
    inner: Mutex<ReplayInner>,
}

#[derive(Default)]
struct ReplayInner {
    seen: HashMap<[u8; 16], Timestamp>,
    /// The same entries in the order they were added (and so of their expiry).
    order: VecDeque<(Timestamp, [u8; 16])>,
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Default for ReplayCache {
    fn default() -> Self {
        Self::with_capacity(MAX_REPLAY_ENTRIES)
    }
}

impl ReplayCache {
    /// A cache of at most `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(ReplayInner::default()),
        }
    }

    /// Records the proof's `jti` (for its key) at `now`: `Replayed` if it is already there,
    /// `Busy` if the cache is full of live entries. An entry lives as long as a proof with
    /// that `iat` could still be accepted.
    pub fn record(&self, proof: &CheckedProof, now: Timestamp) -> Result<(), DpopFailure> {
        let mut hasher = Sha256::new();
        hasher.update(proof.jkt.as_bytes());
        hasher.update([0]);
        hasher.update(proof.jti.as_bytes());
        let digest = hasher.finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        // Accepted until `iat + PROOF_MAX_AGE`; `iat` is at most `now + PROOF_LEEWAY`, so an
        // expiry computed from `now` keeps the queue in order.
        let expires = now + PROOF_MAX_AGE + PROOF_LEEWAY;
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some((at, old)) = inner.order.front().copied() {
            if at > now {
                break;
            }
            inner.order.pop_front();
            if inner.seen.get(&old) == Some(&at) {
                inner.seen.remove(&old);
            }
        }
        if inner.seen.get(&key).is_some_and(|at| *at > now) {
            return Err(DpopFailure::Replayed);
        }
        if inner.seen.len() >= self.capacity {
            return Err(DpopFailure::Busy);
        }
        inner.seen.insert(key, expires);
        inner.order.push_back((expires, key));
        Ok(())
    }

    /// How many entries are live.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .seen
            .len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The `jti`s of accepted proofs in counters every instance shares (Redis), so that a proof
/// is accepted once across instances, not once per instance. Keys are
/// `netapi:dpop-jti:<hex>`, a salted hash of the key's thumbprint and the `jti` (fixed size,
/// and nothing of the proof readable in Redis); each expires when the proof could no longer
/// be accepted.
pub struct SharedReplay {
    /// The shared counters.
    pub counters: std::sync::Arc<dyn crate::limiter::SharedCounters>,
    salt: [u8; 32],
}

impl std::fmt::Debug for SharedReplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedReplay")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl SharedReplay {
    /// `jti`s in `counters`, under keys salted with `salt` (the same on every instance).
    pub fn new(
        counters: std::sync::Arc<dyn crate::limiter::SharedCounters>,
        salt: [u8; 32],
    ) -> Self {
        Self { counters, salt }
    }

    /// The key of `proof`'s `jti` (for its key).
    pub fn key(&self, proof: &CheckedProof) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.salt);
        hasher.update(b"dpop-jti");
        for part in [proof.jkt.as_bytes(), proof.jti.as_bytes()] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        let digest = hasher.finalize();
        let mut key = String::with_capacity(16 + 32);
        key.push_str("netapi:dpop-jti:");
        for byte in &digest[..16] {
            key.push_str(&format!("{byte:02x}"));
        }
        key
    }
}

/// Stateless server nonces: an HMAC of the period's number under a key every instance
/// derives from the shared pepper, so that any instance accepts any other's nonces.
#[derive(Clone)]
pub struct NonceMaker {
    key: [u8; 32],
}

impl std::fmt::Debug for NonceMaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceMaker")
    }
}

impl NonceMaker {
    /// Nonces under `key` (secret, the same on every instance).
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn for_period(&self, period: i64) -> String {
        #[allow(clippy::expect_used)]
        let mut mac =
            hmac::Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(b"dpop-nonce");
        mac.update(&period.to_be_bytes());
        B64.encode(&mac.finalize().into_bytes()[..18])
    }

    /// The nonce to hand out at `now`.
    pub fn current(&self, now: Timestamp) -> String {
        self.for_period(now.div_euclid(NONCE_PERIOD))
    }

    /// Whether `nonce` was made for the period of `now`, the one before or the one after.
    pub fn accepts(&self, nonce: &str, now: Timestamp) -> bool {
        let period = now.div_euclid(NONCE_PERIOD);
        (period - 1..=period + 1).any(|p| {
            subtle::ConstantTimeEq::ct_eq(self.for_period(p).as_bytes(), nonce.as_bytes()).into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn es256_proof(claims: &Value, key: &p256::ecdsa::SigningKey) -> String {
        let point = key.verifying_key().to_encoded_point(false);
        let header = json!({
            "typ": "dpop+jwt", "alg": "ES256",
            "jwk": {"kty": "EC", "crv": "P-256",
                    "x": B64.encode(point.x().map(|x| x.to_vec()).unwrap_or_default()),
                    "y": B64.encode(point.y().map(|y| y.to_vec()).unwrap_or_default())},
        });
        let mut jwt = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature: p256::ecdsa::Signature =
            p256::ecdsa::signature::Signer::sign(key, jwt.as_bytes());
        jwt.push('.');
        jwt.push_str(&B64.encode(signature.to_bytes()));
        jwt
    }

    fn target<'a>(token: Option<&'a str>) -> ProofTarget<'a> {
        ProofTarget {
            method: "GET",
            url: "https://api.example.com/orders",
            access_token: token,
        }
    }

    #[test]
    fn debug_output_shows_no_token() {
        let printed = format!("{:?}", target(Some("eyJXYZZY")));
        assert!(!printed.contains("XYZZY"), "{printed}");
    }

    #[test]
    fn rfc_7638_thumbprint_example() {
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(&jwk).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
        let mut private = jwk.clone();
        private["d"] = json!("AQAB");
        assert_eq!(thumbprint(&private), None);
    }

    #[test]
    fn a_good_proof_passes_and_each_claim_is_checked() {
        let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let claims = json!({"jti": "j1", "htm": "GET", "htu": "https://API.example.com:443/orders?x=1",
                            "iat": 1000, "ath": token_hash("tok")});
        let proof = es256_proof(&claims, &key);
        let checked = check_proof(&proof, &target(Some("tok")), 1000);
        assert!(checked.is_ok(), "{checked:?}");
        assert_eq!(
            check_proof(&proof, &target(Some("other")), 1000),
            Err(DpopFailure::TokenHash)
        );
        assert_eq!(
            check_proof(&proof, &target(Some("tok")), 1000 + PROOF_MAX_AGE + 1),
            Err(DpopFailure::Time)
        );
        assert_eq!(
            check_proof(&proof, &target(Some("tok")), 1000 - PROOF_LEEWAY - 1),
            Err(DpopFailure::Time)
        );
        let post = ProofTarget {
            method: "POST",
            ..target(Some("tok"))
        };
        assert_eq!(check_proof(&proof, &post, 1000), Err(DpopFailure::Method));
        let elsewhere = ProofTarget {
            url: "https://api.example.com/orders/1",
            ..target(Some("tok"))
        };
        assert_eq!(check_proof(&proof, &elsewhere, 1000), Err(DpopFailure::Url));
        // A tampered claim breaks the signature.
        let mut parts: Vec<String> = proof.split('.').map(str::to_owned).collect();
        parts[1] = B64.encode(
            json!({"jti": "j2", "htm": "GET", "htu": "https://api.example.com/orders",
                   "iat": 1000, "ath": token_hash("tok")})
            .to_string(),
        );
        assert_eq!(
            check_proof(&parts.join("."), &target(Some("tok")), 1000),
            Err(DpopFailure::Signature)
        );
    }

    #[test]
    fn none_hmac_and_private_keys_are_refused() {
        let claims = B64.encode(
            json!({"jti": "j", "htm": "GET", "htu": "https://api.example.com/orders", "iat": 1})
                .to_string(),
        );
        for header in [
            json!({"typ": "dpop+jwt", "alg": "none", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": B64.encode([1u8; 32])}}),
            json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
        ] {
            let proof = format!("{}.{claims}.", B64.encode(header.to_string()));
            assert_eq!(
                check_proof(&proof, &target(None), 1),
                Err(DpopFailure::Algorithm)
            );
        }
        let ed = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let header = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": {
            "kty": "OKP", "crv": "Ed25519",
            "x": B64.encode(ed.verifying_key().as_bytes()),
            "d": B64.encode(ed.to_bytes())}});
        let proof = format!("{}.{claims}.AAAA", B64.encode(header.to_string()));
        assert_eq!(check_proof(&proof, &target(None), 1), Err(DpopFailure::Key));
        let header = json!({"typ": "JWT", "alg": "EdDSA"});
        let proof = format!("{}.{claims}.AAAA", B64.encode(header.to_string()));
        assert_eq!(
            check_proof(&proof, &target(None), 1),
            Err(DpopFailure::Type)
        );
    }

    #[test]
    fn the_replay_cache_refuses_a_second_use_expires_and_stays_bounded() {
        let cache = ReplayCache::with_capacity(2);
        let proof = |jti: &str| CheckedProof {
            jkt: "k".to_owned(),
            jti: jti.to_owned(),
            iat: 0,
            nonce: None,
        };
        assert_eq!(cache.record(&proof("a"), 0), Ok(()));
        assert_eq!(cache.record(&proof("a"), 10), Err(DpopFailure::Replayed));
        assert_eq!(cache.record(&proof("b"), 10), Ok(()));
        assert_eq!(cache.record(&proof("c"), 10), Err(DpopFailure::Busy));
        assert_eq!(cache.len(), 2);
        // Once "a" could no longer be accepted, its place is free.
        let later = PROOF_MAX_AGE + PROOF_LEEWAY;
        assert_eq!(cache.record(&proof("c"), later), Ok(()));
        assert_eq!(cache.len(), 2);
    }

    #[derive(Debug)]
    struct NoCounters;

    #[async_trait::async_trait]
    impl crate::limiter::SharedCounters for NoCounters {
        async fn add(
            &self,
            _: &[String],
            _: u32,
            _: u64,
        ) -> Result<Vec<(u64, u64)>, crate::limiter::SharedUnavailable> {
            Err(crate::limiter::SharedUnavailable)
        }
    }

    #[test]
    fn shared_replay_keys_are_fixed_size_salted_and_tell_nothing_of_the_proof() {
        let shared = SharedReplay::new(std::sync::Arc::new(NoCounters), [1; 32]);
        let other_salt = SharedReplay::new(std::sync::Arc::new(NoCounters), [2; 32]);
        let proof = |jkt: &str, jti: &str| CheckedProof {
            jkt: jkt.to_owned(),
            jti: jti.to_owned(),
            iat: 0,
            nonce: None,
        };
        let key = shared.key(&proof("thumb", "jti-XYZZY"));
        assert!(key.starts_with("netapi:dpop-jti:"), "{key}");
        assert_eq!(key.len(), "netapi:dpop-jti:".len() + 32);
        assert!(!key.contains("XYZZY") && !key.contains("thumb"), "{key}");
        assert_eq!(key, shared.key(&proof("thumb", "jti-XYZZY")));
        assert_ne!(key, other_salt.key(&proof("thumb", "jti-XYZZY")));
        assert_ne!(key, shared.key(&proof("thumb2", "jti-XYZZY")));
        // The parts are length-prefixed: moving a character from one to the other differs.
        assert_ne!(shared.key(&proof("ab", "c")), shared.key(&proof("a", "bc")));
        let long = shared.key(&proof("thumb", &"j".repeat(256)));
        assert_eq!(long.len(), key.len());
    }

    #[test]
    fn nonces_are_accepted_for_two_periods_and_by_any_instance_with_the_key() {
        let one = NonceMaker::new([7; 32]);
        let other = NonceMaker::new([7; 32]);
        let stranger = NonceMaker::new([8; 32]);
        let nonce = one.current(1000);
        assert!(other.accepts(&nonce, 1000));
        assert!(other.accepts(&nonce, 1000 + NONCE_PERIOD));
        assert!(!other.accepts(&nonce, 1000 + 3 * NONCE_PERIOD));
        assert!(!stranger.accepts(&nonce, 1000));
        assert!(!one.accepts("", 1000));
    }
}
