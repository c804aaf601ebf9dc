//! Offline checks of RFC 9068 access tokens: structure, `typ`, the key's algorithm, the
//! signature, then `iss`, `aud`, `exp` and `nbf`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;

use crate::jwks::{MAX_KID_LEN, PublicKey};

/// The longest token parsed (Net API's own limit).
pub(crate) const MAX_TOKEN_LEN: usize = 8 * 1024;

pub(crate) const MALFORMED: &str = "The credential is malformed.";
const BAD_SIGNATURE: &str = "The access token's signature does not verify.";
const WRONG_ISSUER: &str = "The access token comes from another issuer.";
pub(crate) const WRONG_RESOURCE: &str = "The credential is for another resource.";
pub(crate) const EXPIRED: &str = "The access token has expired.";
const NOT_YET_VALID: &str = "The access token is not valid yet.";
pub(crate) const SENDER_CONSTRAINED: &str =
    "The access token is bound to a DPoP key: send it as Authorization: DPoP with a DPoP proof.";
pub(crate) const NOT_BOUND: &str =
    "The credential is not bound to a DPoP key: send it as Authorization: Bearer.";

/// A token split and its header read; the signature not yet checked.
#[derive(Debug)]
pub(crate) struct UnverifiedToken<'a> {
    pub(crate) kid: String,
    alg: String,
    signing_input: &'a str,
    claims_b64: &'a str,
    signature: Vec<u8>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
}

/// The claims the guard uses.
#[derive(Debug, Deserialize)]
pub(crate) struct Claims {
    iss: String,
    pub(crate) sub: String,
    aud: Audience,
    pub(crate) exp: i64,
    nbf: Option<i64>,
    pub(crate) client_id: Option<String>,
    pub(crate) scope: Option<String>,
    /// Who acts for `sub` (RFC 8693 token exchange).
    pub(crate) act: Option<serde_json::Value>,
    /// A confirmation (DPoP, mTLS): such a token is not a bearer token.
    cnf: Option<serde_json::Value>,
}

impl Claims {
    /// Whether the token has a confirmation: then it is not a bearer token.
    pub(crate) fn is_bound(&self) -> bool {
        self.cnf.is_some()
    }

    /// The DPoP key's thumbprint it is bound to (`cnf.jkt`).
    pub(crate) fn jkt(&self) -> Option<&str> {
        self.cnf.as_ref()?.get("jkt")?.as_str()
    }
}

/// RFC 7519 allows one audience as a string or several as an array.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, resource: &str) -> bool {
        match self {
            Self::One(aud) => aud == resource,
            Self::Many(auds) => auds.iter().any(|aud| aud == resource),
        }
    }
}

/// Whether a credential has the shape of a JWS (three dot-separated parts).
pub(crate) fn looks_like_jwt(credential: &str) -> bool {
    credential.bytes().filter(|&b| b == b'.').count() == 2
}

/// Splits the token and reads its header: `typ` must be `at+jwt` (RFC 9068), and a `kid`
/// must name the key.
pub(crate) fn parse(token: &str) -> Result<UnverifiedToken<'_>, &'static str> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(MALFORMED);
    }
    let (signing_input, signature_b64) = token.rsplit_once('.').ok_or(MALFORMED)?;
    let (header_b64, claims_b64) = signing_input.split_once('.').ok_or(MALFORMED)?;
    let header: Header = B64
        .decode(header_b64)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(MALFORMED)?;
    let typ = header.typ.unwrap_or_default();
    let typ = typ.strip_prefix("application/").unwrap_or(&typ);
    if !typ.eq_ignore_ascii_case("at+jwt") {
        return Err(MALFORMED);
    }
    let kid = header
        .kid
        .filter(|kid| !kid.is_empty() && kid.len() <= MAX_KID_LEN)
        .ok_or(MALFORMED)?;
    let signature = B64.decode(signature_b64).map_err(|_| MALFORMED)?;
    Ok(UnverifiedToken {
        kid,
        alg: header.alg,
        signing_input,
        claims_b64,
        signature,
    })
}

/// What a token must show.
#[derive(Debug)]
pub(crate) struct Expected<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) resource: &'a str,
    pub(crate) leeway: i64,
    pub(crate) now: i64,
}

/// Checks the signature with `key` (whose algorithm the header must name), then the claims.
pub(crate) fn verify(
    token: &UnverifiedToken<'_>,
    key: &PublicKey,
    expected: &Expected<'_>,
) -> Result<Claims, &'static str> {
    if token.alg != key.alg().name() {
        return Err(BAD_SIGNATURE);
    }
    if !key.verifies(token.signing_input.as_bytes(), &token.signature) {
        return Err(BAD_SIGNATURE);
    }
    let claims: Claims = B64
        .decode(token.claims_b64)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(MALFORMED)?;
    if claims.iss != expected.issuer {
        return Err(WRONG_ISSUER);
    }
    if !claims.aud.contains(expected.resource) {
        return Err(WRONG_RESOURCE);
    }
    if expected.now >= claims.exp.saturating_add(expected.leeway) {
        return Err(EXPIRED);
    }
    if claims
        .nbf
        .is_some_and(|nbf| expected.now.saturating_add(expected.leeway) < nbf)
    {
        return Err(NOT_YET_VALID);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::KeySet;
    use ring::signature::{Ed25519KeyPair, KeyPair};
    use serde_json::{Value, json};

    struct Issuer {
        pair: Ed25519KeyPair,
        keys: KeySet,
    }

    impl Issuer {
        fn new() -> Self {
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("generate");
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("parse");
            let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1",
                "x": B64.encode(pair.public_key().as_ref())}]});
            let keys = KeySet::parse(jwks.to_string().as_bytes()).expect("jwks");
            Self { pair, keys }
        }

        fn sign(&self, header: Value, claims: Value) -> String {
            let input = format!(
                "{}.{}",
                B64.encode(header.to_string()),
                B64.encode(claims.to_string())
            );
            let signature = self.pair.sign(input.as_bytes());
            format!("{input}.{}", B64.encode(signature.as_ref()))
        }

        fn check(&self, token: &str, now: i64) -> Result<Claims, &'static str> {
            let parsed = parse(token)?;
            let key = self.keys.get(&parsed.kid).ok_or("unknown kid")?;
            verify(
                &parsed,
                key,
                &Expected {
                    issuer: "https://auth.example.com",
                    resource: "https://orders.example.com",
                    leeway: 5,
                    now,
                },
            )
        }
    }

    fn header() -> Value {
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1"})
    }

    fn claims() -> Value {
        json!({"iss": "https://auth.example.com", "sub": "usr_1", "aud": "https://orders.example.com",
               "client_id": "cli_1", "scope": "orders:read", "jti": "j", "iat": 1000, "exp": 1900})
    }

    #[test]
    fn a_good_token_passes_until_its_expiry_plus_the_leeway() {
        let issuer = Issuer::new();
        let token = issuer.sign(header(), claims());
        let found = issuer.check(&token, 1000).expect("valid");
        assert_eq!(found.sub, "usr_1");
        assert_eq!(found.scope.as_deref(), Some("orders:read"));
        assert!(issuer.check(&token, 1904).is_ok());
        assert_eq!(issuer.check(&token, 1905).err(), Some(EXPIRED));
    }

    #[test]
    fn each_claim_and_header_rule_refuses() {
        let issuer = Issuer::new();
        let with = |key: &str, value: Value| {
            let mut claims = claims();
            claims[key] = value;
            issuer.sign(header(), claims)
        };
        assert_eq!(
            issuer
                .check(&with("aud", json!("https://other.example.com")), 1000)
                .err(),
            Some(WRONG_RESOURCE)
        );
        assert!(
            issuer
                .check(
                    &with("aud", json!(["x", "https://orders.example.com"])),
                    1000
                )
                .is_ok()
        );
        assert_eq!(
            issuer
                .check(&with("iss", json!("https://evil.example.com")), 1000)
                .err(),
            Some(WRONG_ISSUER)
        );
        assert_eq!(
            issuer.check(&with("nbf", json!(1010)), 1000).err(),
            Some(NOT_YET_VALID)
        );
        assert!(
            issuer
                .check(&with("cnf", json!({"jkt": "x"})), 1000)
                .is_ok_and(|claims| claims.jkt() == Some("x"))
        );

        let mut id_token_header = header();
        id_token_header["typ"] = json!("JWT");
        assert_eq!(
            issuer
                .check(&issuer.sign(id_token_header, claims()), 1000)
                .err(),
            Some(MALFORMED)
        );
        let mut other_alg = header();
        other_alg["alg"] = json!("HS256");
        assert_eq!(
            issuer.check(&issuer.sign(other_alg, claims()), 1000).err(),
            Some(BAD_SIGNATURE)
        );
        let mut media_type = header();
        media_type["typ"] = json!("application/AT+JWT");
        assert!(
            issuer
                .check(&issuer.sign(media_type, claims()), 1000)
                .is_ok()
        );
    }

    #[test]
    fn a_changed_payload_or_garbage_is_refused() {
        let issuer = Issuer::new();
        let token = issuer.sign(header(), claims());
        let (head, rest) = token.split_once('.').expect("parts");
        let (_, signature) = rest.split_once('.').expect("parts");
        let mut forged = claims();
        forged["scope"] = json!("orders:read orders:write");
        let tampered = format!("{head}.{}.{signature}", B64.encode(forged.to_string()));
        assert_eq!(issuer.check(&tampered, 1000).err(), Some(BAD_SIGNATURE));
        for garbage in ["", "a.b.c", "..", "eyJ.eyJ.", &"a.".repeat(5000)] {
            assert!(issuer.check(garbage, 1000).is_err(), "{garbage:.20}");
        }
        assert!(looks_like_jwt(&token));
        assert!(!looks_like_jwt("napi_abc"));
    }
}
