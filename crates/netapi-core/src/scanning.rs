//! The receiving end of GitHub's secret scanning partner program: GitHub's public keys, the
//! signature over a report, and the report itself. Pure functions; what a report does to keys
//! is in `service::scanning`.
//!
//! GitHub signs the raw body of each report with ECDSA P-256 and SHA-256, sends the DER
//! signature in base64 as `Github-Public-Key-Signature`, and names the key in
//! `Github-Public-Key-Identifier`. Its keys are published as
//! `{"public_keys": [{"key_identifier", "key" (PEM SPKI), "is_current"}]}`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde::Deserialize;
use std::path::Path;

use crate::secret::Secret;

/// Longest `Github-Public-Key-Identifier` looked at (GitHub's are 64 hex digits).
pub const MAX_KEY_IDENTIFIER_LEN: usize = 256;
/// Longest `Github-Public-Key-Signature` looked at: a DER ECDSA P-256 signature is at most
/// 72 bytes, 96 characters of base64.
pub const MAX_SIGNATURE_LEN: usize = 256;
/// Most tokens in one report; beyond, the report is refused.
pub const MAX_REPORT_TOKENS: usize = 1000;
/// How much of a reported `url` is kept in the audit event.
pub const MAX_KEPT_URL_LEN: usize = 2048;
/// How much of a reported `source` is kept in the audit event.
pub const MAX_KEPT_SOURCE_LEN: usize = 64;

/// DER is distinguished: an uncompressed P-256 public key has exactly one SubjectPublicKeyInfo
/// encoding, this header (SEQUENCE, AlgorithmIdentifier id-ecPublicKey with the prime256v1
/// curve, a BIT STRING of 66 bytes with no unused bits) followed by the 65-byte point.
const P256_SPKI_HEADER: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// An uncompressed point: `0x04`, then x and y of 32 bytes each.
const P256_POINT_LEN: usize = 65;

/// Why the key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// Not the JSON GitHub publishes.
    #[error("not GitHub's public key JSON ({0})")]
    Json(String),
    /// A key that is not a PEM P-256 public key.
    #[error("the key '{0}' is not a PEM P-256 public key (SubjectPublicKeyInfo)")]
    Key(String),
    /// No key at all: every report would be refused.
    #[error("it lists no public key")]
    Empty,
}

#[derive(Deserialize)]
struct KeyFile {
    public_keys: Vec<KeyEntry>,
}

/// `is_current` is not read: a key GitHub still lists may still sign (rotation).
#[derive(Deserialize)]
struct KeyEntry {
    key_identifier: String,
    key: String,
}

/// GitHub's public keys for secret scanning, each as its identifier and uncompressed point.
#[derive(Debug, Clone, Default)]
pub struct GithubKeys {
    keys: Vec<(String, Vec<u8>)>,
}

impl GithubKeys {
    /// Reads and parses the key file at `path`.
    pub fn read(path: &Path) -> Result<Self, KeyFileError> {
        let bytes = std::fs::read(path).map_err(|err| KeyFileError::Read {
            path: path.display().to_string(),
            reason: err.to_string(),
        })?;
        Self::parse(&bytes)
    }

    /// Parses GitHub's JSON; every key must be a P-256 public key in PEM.
    pub fn parse(json: &[u8]) -> Result<Self, KeyFileError> {
        let file: KeyFile =
            serde_json::from_slice(json).map_err(|err| KeyFileError::Json(err.to_string()))?;
        if file.public_keys.is_empty() {
            return Err(KeyFileError::Empty);
        }
        let keys = file
            .public_keys
            .into_iter()
            .map(|entry| {
                let point = p256_point_from_pem(&entry.key)
                    .ok_or_else(|| KeyFileError::Key(entry.key_identifier.clone()))?;
                Ok((entry.key_identifier, point))
            })
            .collect::<Result<Vec<_>, KeyFileError>>()?;
        Ok(Self { keys })
    }

    /// Whether a key of this identifier is known.
    pub fn knows(&self, identifier: &str) -> bool {
        self.point(identifier).is_some()
    }

    fn point(&self, identifier: &str) -> Option<&[u8]> {
        self.keys
            .iter()
            .find(|(id, _)| id == identifier)
            .map(|(_, point)| point.as_slice())
    }

    /// Checks a DER signature over `body` by the key `identifier`: `UnknownKey` when there is
    /// no such key, `BadSignature` when it does not verify.
    pub fn verify(&self, identifier: &str, signature: &[u8], body: &[u8]) -> Result<(), ScanError> {
        let point = self
            .point(identifier)
            .ok_or(ScanError::UnknownKeyIdentifier)?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
            .verify(body, signature)
            .map_err(|_| ScanError::BadSignature)
    }
}

/// The uncompressed point of a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of P-256, checked to
/// be on the curve, so that a broken key file fails at start rather than at each report.
pub fn p256_point_from_pem(pem: &str) -> Option<Vec<u8>> {
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")?
        .strip_suffix("-----END PUBLIC KEY-----")?;
    let base64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD.decode(base64).ok()?;
    let point = der.strip_prefix(&P256_SPKI_HEADER)?;
    if point.len() != P256_POINT_LEN || point[0] != 0x04 {
        return None;
    }
    p256::ecdsa::VerifyingKey::from_sec1_bytes(point).ok()?;
    Some(point.to_vec())
}

/// Why a report was refused, before or instead of any revocation.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// `secret_scanning_github_keys` is not set: the endpoint is off.
    #[error("secret scanning is not configured")]
    NotConfigured,
    /// The signature headers are absent, too long, or not base64.
    #[error("missing or malformed signature headers")]
    SignatureHeaders,
    /// No configured key has this identifier (even after reading the key file again).
    #[error("unknown public key identifier")]
    UnknownKeyIdentifier,
    /// The signature does not verify over the body.
    #[error("bad signature")]
    BadSignature,
    /// A signed body that is not a report, or one of too many tokens.
    #[error("{0}")]
    InvalidReport(String),
    /// Storage failed while the report was acted on.
    #[error(transparent)]
    Failed(#[from] crate::Error),
}

/// One token of a report, as GitHub sends it. Unknown fields are ignored: GitHub may add some.
#[derive(Debug, Deserialize)]
pub struct ReportedToken {
    /// The found string; its `Debug` does not show it.
    pub token: Secret,
    /// The token type under which the pattern was registered.
    #[serde(rename = "type")]
    pub token_type: String,
    /// Where it was found.
    #[serde(default)]
    pub url: Option<String>,
    /// What kind of place that is (`content`, `commit`, `gist_content`, ...).
    #[serde(default)]
    pub source: Option<String>,
}

/// Parses a (verified) report: a JSON array of at most [`MAX_REPORT_TOKENS`] tokens.
pub fn parse_report(body: &[u8]) -> Result<Vec<ReportedToken>, ScanError> {
    // The message says where, never what: serde's own text may quote a value, a token perhaps.
    let tokens: Vec<ReportedToken> = serde_json::from_slice(body).map_err(|err| {
        ScanError::InvalidReport(format!(
            "The body is not a JSON array of {{\"token\", \"type\", \"url\", \"source\"}} \
             (line {}, column {}).",
            err.line(),
            err.column()
        ))
    })?;
    if tokens.len() > MAX_REPORT_TOKENS {
        return Err(ScanError::InvalidReport(format!(
            "A report may list at most {MAX_REPORT_TOKENS} tokens."
        )));
    }
    Ok(tokens)
}

/// Decodes `Github-Public-Key-Signature`, refusing what is too long before decoding it.
pub fn decode_signature(header: &str) -> Result<Vec<u8>, ScanError> {
    if header.is_empty() || header.len() > MAX_SIGNATURE_LEN {
        return Err(ScanError::SignatureHeaders);
    }
    STANDARD
        .decode(header.trim())
        .map_err(|_| ScanError::SignatureHeaders)
}

/// The answer for one token, in GitHub's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// A real Net API key (now revoked, if it was not already).
    TruePositive,
    /// Not a key Net API issued.
    FalsePositive,
}

impl Label {
    /// The label on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TruePositive => "true_positive",
            Self::FalsePositive => "false_positive",
        }
    }
}

/// The answer for one reported token.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The token as reported, echoed back as `token_raw`.
    pub token: Secret,
    /// The type as reported.
    pub token_type: String,
    /// Whether it is a real key.
    pub label: Label,
}

/// At most `max` characters of `value`, for what is kept of a report.
pub(crate) fn bounded(value: Option<&str>, max: usize) -> Option<String> {
    value.map(|v| v.chars().take(max).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    fn key_pair() -> EcdsaKeyPair {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("key pair");
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .expect("key pair")
    }

    fn pem_of(pair: &EcdsaKeyPair) -> String {
        let mut der = P256_SPKI_HEADER.to_vec();
        der.extend_from_slice(pair.public_key().as_ref());
        let text = STANDARD.encode(der);
        let lines: Vec<&str> = text
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    fn key_file(entries: &[(&str, &str)]) -> Vec<u8> {
        let keys: Vec<serde_json::Value> = entries
            .iter()
            .map(|(id, pem)| serde_json::json!({"key_identifier": id, "key": pem, "is_current": true}))
            .collect();
        serde_json::to_vec(&serde_json::json!({ "public_keys": keys })).expect("test value")
    }

    /// GitHub's published example key parses, and its example signature verifies over its
    /// example body: the key and the headers are read as GitHub writes them.
    #[test]
    fn githubs_published_example_verifies() {
        let pem = "-----BEGIN PUBLIC KEY-----\n\
            MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE9MJJHnMfn2+H4xL4YaPDA4RpJqUq\n\
            kCmRCBnYERxZanmcpzQSXs1X/AljlKkbJ8qpVIW4clayyef9gWhFbNHWAA==\n\
            -----END PUBLIC KEY-----";
        let point = p256_point_from_pem(pem).expect("test value");
        assert_eq!(point.len(), 65);
        let keys = GithubKeys::parse(&key_file(&[("90a421169f0a", pem)])).expect("test value");
        let signature = decode_signature(
            "MEUCIQDKZokqnCjrRtw0tni+2Ltvl/uiMJ1EGumEsp1BsNr32AIgQY1YXD2nlj+XNfGK4rBfkMJ1JDOQcYXxa2sY8FNkrKc=",
        )
        .expect("test value");
        let body = br#"[{"token":"some_token","type":"some_type","url":"some_url"}]"#;
        assert!(keys.verify("90a421169f0a", &signature, body).is_ok());
    }

    #[test]
    fn a_signature_by_the_named_key_verifies_and_nothing_else_does() {
        let pair = key_pair();
        let other = key_pair();
        let keys = GithubKeys::parse(&key_file(&[
            ("k1", &pem_of(&pair)),
            ("k2", &pem_of(&other)),
        ]))
        .expect("test value");
        let rng = SystemRandom::new();
        let body = br#"[{"token":"x","type":"t","url":"u"}]"#;
        let signature = pair.sign(&rng, body).expect("test value");
        assert!(keys.verify("k1", signature.as_ref(), body).is_ok());
        assert!(matches!(
            keys.verify("k2", signature.as_ref(), body),
            Err(ScanError::BadSignature)
        ));
        assert!(matches!(
            keys.verify("k1", signature.as_ref(), b"[]"),
            Err(ScanError::BadSignature)
        ));
        assert!(matches!(
            keys.verify("k3", signature.as_ref(), body),
            Err(ScanError::UnknownKeyIdentifier)
        ));
        assert!(keys.knows("k2") && !keys.knows("k3"));
    }

    #[test]
    fn broken_key_files_are_refused_with_the_reason() {
        assert!(matches!(
            GithubKeys::parse(b"{}"),
            Err(KeyFileError::Json(_))
        ));
        assert!(matches!(
            GithubKeys::parse(br#"{"public_keys": []}"#),
            Err(KeyFileError::Empty)
        ));
        let not_pem = key_file(&[("k1", "MFkwEwYH")]);
        assert!(matches!(GithubKeys::parse(&not_pem), Err(KeyFileError::Key(id)) if id == "k1"));
        // An Ed25519 SPKI in PEM: well-formed, not P-256.
        let ed25519 = "-----BEGIN PUBLIC KEY-----\n\
            MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
            -----END PUBLIC KEY-----";
        assert!(p256_point_from_pem(ed25519).is_none());
        // The right header, a point that is not on the curve.
        let mut der = P256_SPKI_HEADER.to_vec();
        der.push(4);
        der.extend_from_slice(&[1; 64]);
        let off_curve = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----",
            STANDARD.encode(der)
        );
        assert!(p256_point_from_pem(&off_curve).is_none());
        let missing = GithubKeys::read(Path::new("/nonexistent/netapi-github-keys.json"));
        assert!(matches!(missing, Err(KeyFileError::Read { .. })));
    }

    #[test]
    fn reports_are_parsed_and_bounded() {
        let report = parse_report(
            br#"[{"token":"napi_x","type":"netapi_api_key","url":"https://github.com/o/r/blob/1/f","source":"content","extra":1}]"#,
        )
        .expect("test value");
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].token.expose(), "napi_x");
        assert_eq!(report[0].source.as_deref(), Some("content"));
        assert!(!format!("{:?}", report[0]).contains("napi_x"));
        assert!(parse_report(br#"[{"type":"t"}]"#).is_err());
        let quoted = parse_report(br#"["napi_JNmJJ9ppGis79LdiVB56gNnwCY8JwfT00lDFGZ"]"#);
        assert!(matches!(quoted, Err(ScanError::InvalidReport(m)) if !m.contains("napi_")));
        assert!(parse_report(br#"{"token":"x"}"#).is_err());
        let many = format!(
            "[{}]",
            vec![r#"{"token":"","type":""}"#; MAX_REPORT_TOKENS + 1].join(",")
        );
        assert!(matches!(
            parse_report(many.as_bytes()),
            Err(ScanError::InvalidReport(_))
        ));
        assert!(decode_signature(&"A".repeat(MAX_SIGNATURE_LEN + 4)).is_err());
        assert!(decode_signature("not base64!").is_err());
        assert_eq!(bounded(Some("abcdef"), 3).as_deref(), Some("abc"));
    }

    proptest! {
        #[test]
        fn the_pem_parser_never_panics(input in ".{0,200}") {
            let _ = p256_point_from_pem(&input);
            let wrapped = format!("-----BEGIN PUBLIC KEY-----{input}-----END PUBLIC KEY-----");
            let _ = p256_point_from_pem(&wrapped);
        }

        #[test]
        fn the_report_parser_never_panics(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_report(&input);
            let _ = decode_signature(&String::from_utf8_lossy(&input));
        }
    }
}
