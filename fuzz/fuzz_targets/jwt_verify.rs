//! `jwt::KeyRing::verify` on access tokens (`typ` `at+jwt`): header, claims and signature.
//!
//! The ring holds a fixed EdDSA key (kid `fuzz-fixed`, so that seed tokens in the corpus
//! verify), an EdDSA key and an ES256 key made once per process.
//! Input: one byte choosing the mode, then:
//! - 0: a whole token, as text;
//! - 1: the claims (any bytes) of a token properly signed by the fixed key;
//! - 2: the header (any bytes) of a token properly signed by the fixed key;
//! - 3: a payload segment (as text) put in place of the one of a token the ring signed.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::Signer;
use libfuzzer_sys::fuzz_target;
use netapi_core::jwt::{JwtError, KeyRing, generate_key};
use netapi_core::model::{SigningAlgorithm, SigningKey};
use serde_json::{Value, json};
use std::sync::OnceLock;

const TYP: &str = "at+jwt";
const FIXED_KID: &str = "fuzz-fixed";
/// Not a secret: it signs only the fuzzing corpus (see fuzz/make_corpus.py).
const FIXED_SEED: [u8; 32] = [7; 32];

struct Setup {
    ring: KeyRing,
    fixed: ed25519_dalek::SigningKey,
    /// A token the ring signed, split into its three parts.
    signed: [String; 3],
}

fn stored(kid: &str, alg: SigningAlgorithm, private_key: Vec<u8>) -> SigningKey {
    SigningKey {
        kid: kid.to_owned(),
        alg,
        private_key,
        created_at: 0,
        active_from: 0,
        retire_at: None,
    }
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let ring = KeyRing::new(
            &[
                stored(FIXED_KID, SigningAlgorithm::EdDsa, FIXED_SEED.to_vec()),
                stored(
                    "fuzz-random-ed",
                    SigningAlgorithm::EdDsa,
                    generate_key(SigningAlgorithm::EdDsa).expect("EdDSA keys are made here"),
                ),
                stored(
                    "fuzz-random-es",
                    SigningAlgorithm::Es256,
                    generate_key(SigningAlgorithm::Es256).expect("ES256 keys are made here"),
                ),
            ],
            SigningAlgorithm::EdDsa,
            0,
        );
        let claims = json!({"iss": "https://issuer.example", "sub": "usr_0", "scope": "keys:read"});
        let token = ring
            .sign(TYP, &claims)
            .expect("a ring with active keys signs");
        let mut parts = token.split('.').map(str::to_owned);
        let signed = [(); 3].map(|()| parts.next().expect("three parts"));
        Setup {
            ring,
            fixed: ed25519_dalek::SigningKey::from_bytes(&FIXED_SEED),
            signed,
        }
    })
}

/// Signs `header.claims` (both already base64url) with the fixed key.
fn sign_fixed(setup: &Setup, header_b64: &str, claims_b64: &str) -> String {
    let signing_input = format!("{header_b64}.{claims_b64}");
    let signature = setup.fixed.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(signature.to_bytes()))
}

fn fixed_header() -> String {
    B64.encode(
        serde_json::to_vec(&json!({"alg": "EdDSA", "typ": TYP, "kid": FIXED_KID})).expect("JSON"),
    )
}

/// What every accepted token must satisfy, whatever its origin.
fn check_accepted(token: &str, claims: &Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted {token:?}");
    let header: Value =
        serde_json::from_slice(&B64.decode(parts[0]).expect("header b64")).expect("header JSON");
    let typ = header["typ"].as_str().expect("typ");
    let typ = typ.strip_prefix("application/").unwrap_or(typ);
    assert!(typ.eq_ignore_ascii_case(TYP), "accepted typ {typ:?}");
    let alg = header["alg"].as_str().expect("alg");
    assert!(matches!(alg, "EdDSA" | "ES256"), "accepted alg {alg:?}");
    let kid = header["kid"].as_str().expect("kid");
    assert!(kid.starts_with("fuzz-"), "accepted kid {kid:?}");
    assert_eq!(
        alg == "ES256",
        kid == "fuzz-random-es",
        "alg {alg} accepted for kid {kid}"
    );
    // The claims are exactly the signed payload, and re-serialize to the same value.
    let payload: Value =
        serde_json::from_slice(&B64.decode(parts[1]).expect("claims b64")).expect("claims JSON");
    assert_eq!(&payload, claims);
    let again = serde_json::to_vec(claims).expect("claims re-serialize");
    // serde_json (with `raw_value`, which sqlx and axum turn on) reads one reserved key
    // specially when it sorts first; such claims only round-trip while it does not.
    if uses_reserved_key(claims) {
        return;
    }
    let reparsed: Value = serde_json::from_slice(&again).expect("re-serialized claims parse");
    assert!(
        same_json(&reparsed, claims),
        "{claims} re-read as {reparsed}"
    );
}

/// Whether an object anywhere in `value` has serde_json's private raw-value key.
fn uses_reserved_key(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.starts_with("$serde_json::private::") || uses_reserved_key(v)),
        Value::Array(items) => items.iter().any(uses_reserved_key),
        _ => false,
    }
}

/// Equal JSON values, but for the last bits of floating-point numbers: serde_json's default
/// number parser is fast rather than exact, so a 20-digit number may read back one unit in
/// the last place off. (Every number Net API itself puts in a token is an integer.)
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            x == y || (x - y).abs() <= 1e-15 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let setup = setup();
    match mode % 4 {
        0 => {
            let Ok(token) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(claims) = setup.ring.verify::<Value>(token, TYP) {
                check_accepted(token, &claims);
            }
        }
        1 => {
            // A genuine signature over arbitrary claims: accepted exactly when they are JSON.
            let token = sign_fixed(setup, &fixed_header(), &B64.encode(rest));
            let result = setup.ring.verify::<Value>(&token, TYP);
            match serde_json::from_slice::<Value>(rest) {
                Ok(expected) => {
                    assert_eq!(result.as_ref(), Ok(&expected), "{token}");
                    check_accepted(&token, &expected);
                }
                Err(_) => assert_eq!(result, Err(JwtError::Malformed), "{token}"),
            }
        }
        2 => {
            // A genuine signature under an arbitrary header: `alg` and `kid` are still checked.
            let claims_b64 = B64.encode(br#"{"sub":"usr_0"}"#);
            let token = sign_fixed(setup, &B64.encode(rest), &claims_b64);
            match setup.ring.verify::<Value>(&token, TYP) {
                Ok(claims) => {
                    check_accepted(&token, &claims);
                    let header: Value = serde_json::from_slice(rest).expect("header JSON");
                    assert_eq!(header["kid"], FIXED_KID);
                    assert_eq!(header["alg"], "EdDSA");
                }
                Err(JwtError::Signature) => {
                    // Only a key other than the fixed one can refuse this signature.
                    let header: Value = serde_json::from_slice(rest).expect("header JSON");
                    assert_ne!(header["kid"], FIXED_KID);
                }
                Err(_) => {}
            }
        }
        _ => {
            // A real token with its payload replaced: never accepted (unless unchanged).
            let Ok(payload) = std::str::from_utf8(rest) else {
                return;
            };
            let [header, original, signature] = &setup.signed;
            let token = format!("{header}.{payload}.{signature}");
            let result = setup.ring.verify::<Value>(&token, TYP);
            if payload == original {
                assert!(result.is_ok(), "the untouched token is refused");
            } else {
                assert!(result.is_err(), "forged payload {payload:?} accepted");
            }
        }
    }
});
