//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA-1, six digits,
//! 30-second steps, what every authenticator app reads from an `otpauth://` QR code.

use ring::hmac;

/// Seconds per time step.
pub const STEP_SECONDS: i64 = 30;
/// Digits of a code.
pub const DIGITS: usize = 6;
/// Bytes of a new secret (160 bits, RFC 4226's recommendation).
pub const SECRET_LEN: usize = 20;
/// Steps accepted on either side of the current one (clock drift and typing time).
pub const WINDOW: i64 = 1;

/// The time step of `now` (Unix seconds).
pub fn step_at(now: i64) -> i64 {
    now.div_euclid(STEP_SECONDS)
}

/// The code of `step` (RFC 4226 §5.3, dynamic truncation).
pub fn code_at(secret: &[u8], step: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let digest = tag.as_ref();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", binary % 1_000_000)
}

/// Whether `text` has the shape of a code: exactly six ASCII digits.
pub fn looks_like_code(text: &str) -> bool {
    text.len() == DIGITS && text.bytes().all(|b| b.is_ascii_digit())
}

/// The step within the window around `now` whose code is `code`, if any; every step is
/// compared (in constant time), so the answer's timing says nothing of which matched.
pub fn matching_step(secret: &[u8], code: &str, now: i64) -> Option<i64> {
    if !looks_like_code(code) {
        return None;
    }
    let current = step_at(now);
    let mut found = None;
    for step in current - WINDOW..=current + WINDOW {
        if crate::secret::constant_time_eq(&code_at(secret, step), code) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// RFC 4648 base32 without padding, as `otpauth://` URIs and manual entry take a secret.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The `otpauth://totp/...` URI an authenticator app reads (the de facto Key URI format).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let label: String =
        url::form_urlencoded::byte_serialize(format!("{issuer}:{account}").as_bytes())
            .collect::<String>()
            .replace('+', "%20");
    let mut uri = format!("otpauth://totp/{label}?");
    uri.push_str(
        &url::form_urlencoded::Serializer::new(String::new())
            .append_pair("secret", &base32(secret))
            .append_pair("issuer", issuer)
            .append_pair("algorithm", "SHA1")
            .append_pair("digits", "6")
            .append_pair("period", "30")
            .finish()
            .replace('+', "%20"),
    );
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 (the last six of its eight digits).
    #[test]
    fn rfc_6238_vectors() {
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(code_at(secret, step_at(time)), code, "at {time}");
        }
    }

    #[test]
    fn window_is_one_step_each_side() {
        let secret = b"12345678901234567890";
        let now = 1_111_111_109;
        let step = step_at(now);
        for delta in -1..=1 {
            let code = code_at(secret, step + delta);
            assert_eq!(matching_step(secret, &code, now), Some(step + delta));
        }
        assert_eq!(matching_step(secret, &code_at(secret, step + 2), now), None);
        assert_eq!(matching_step(secret, &code_at(secret, step - 2), now), None);
        assert_eq!(matching_step(secret, "12345", now), None);
        assert_eq!(matching_step(secret, "12345a", now), None);
    }

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }

    #[test]
    fn otpauth_uri_escapes_the_label() {
        let uri = otpauth_uri("Net API", "a+b@example.com", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/Net%20API%3Aa%2Bb%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Net%20API&algorithm=SHA1&digits=6&period=30"
        );
    }
}
