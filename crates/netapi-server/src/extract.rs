//! Extractors whose failures speak the contract's envelope.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use netapi_core::AuthFailure;
use netapi_core::dpop::DpopFailure;
use netapi_core::service::{DpopPresentation, Principal};
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};

use crate::error::{ApiError, Code};
use crate::state::AppState;

/// The source address of the request.
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(
                || "unknown".to_owned(),
                |c| ip_text(state.trusted_proxies.client_ip(c.0.ip(), &parts.headers)),
            );
        Ok(Self(ip))
    }
}

/// `ip` as `Display` writes it; IPv4 without the formatting machinery, which cost more than
/// the rest of this extractor (every request from an IPv4 client runs it).
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

/// Where the authenticated caller's rate-limit standing is left for the response headers.
#[derive(Debug, Clone, Default)]
pub struct RateSlot(pub std::sync::Arc<std::sync::OnceLock<netapi_core::limiter::RateStatus>>);

/// The authenticated caller of a `/v1` endpoint.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

/// The credential in `Authorization: Bearer <credential>`.
pub fn bearer(parts: &Parts) -> Result<&str, AuthFailure> {
    bearer_of(&parts.headers)
}

/// The credential in `Authorization: Bearer <credential>` of `headers`.
pub fn bearer_of(headers: &axum::http::HeaderMap) -> Result<&str, AuthFailure> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(AuthFailure::Missing);
    };
    let value = value.to_str().map_err(|_| AuthFailure::Malformed)?;
    let (scheme, credential) = value.split_once(' ').ok_or(AuthFailure::Malformed)?;
    let credential = credential.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || credential.is_empty() {
        return Err(AuthFailure::Malformed);
    }
    Ok(credential)
}

/// The access token of `Authorization: DPoP <token>` (RFC 9449 §7.1), if that is the
/// header. Looked at only once the Bearer scheme was not found.
pub fn dpop_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("dpop") && !token.is_empty()).then_some(token)
}

/// The `DPoP` header: `None` without one, a failure for several or an unreadable one.
pub fn dpop_proof(headers: &axum::http::HeaderMap) -> Option<Result<&str, DpopFailure>> {
    let mut values = headers.get_all("dpop").iter();
    let first = values.next()?;
    if values.next().is_some() {
        return Some(Err(DpopFailure::SeveralProofs));
    }
    Some(first.to_str().map_err(|_| DpopFailure::Malformed))
}

/// The error of a refused access; `use_dpop_nonce` refusals carry the nonce to use (RFC
/// 9449 §9).
pub fn refusal(err: netapi_core::Error, state: &AppState) -> ApiError {
    let nonce = if matches!(
        err,
        netapi_core::Error::Unauthenticated(AuthFailure::Dpop(DpopFailure::UseNonce))
    ) {
        state.api.dpop_nonce()
    } else {
        None
    };
    let error = ApiError::from(err);
    match nonce {
        Some(nonce) => error.with_dpop_nonce(nonce),
        None => error,
    }
}

/// Said when a credential was sent without its scheme (`Authorization: napi_...`).
const BEARER_HINT: &str =
    "The Authorization header has no scheme: use the Bearer scheme, Authorization: Bearer <key>";

/// Whether the `Authorization` header is a bare credential, without `Bearer ` before it.
fn lacks_scheme(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty() && !v.trim().contains(' '))
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        // Net API's own resource, no scope yet: each handler requires its own.
        let outcome = match bearer(parts) {
            // Not the Bearer scheme: perhaps DPoP (RFC 9449 §7.1), whose proof names the
            // request's method and URL (the issuer's origin and this path).
            Err(AuthFailure::Malformed) if let Some(token) = dpop_token(&parts.headers) => {
                let url = format!(
                    "{}{}",
                    state.api.settings().issuer.trim_end_matches('/'),
                    parts.uri.path()
                );
                let dpop = DpopPresentation {
                    proof: dpop_proof(&parts.headers).unwrap_or(Err(DpopFailure::MissingProof)),
                    method: parts.method.as_str(),
                    url: &url,
                };
                state
                    .api
                    .check_access_with(Ok(token), Some(&dpop), &ip, None, "")
                    .await
            }
            credential => state.api.check_access(credential, &ip, None, "").await,
        };
        let access = outcome.map_err(|err| {
            let refused = refusal(err, state);
            if lacks_scheme(parts) {
                refused.with_detail(serde_json::json!({ "description": BEARER_HINT }))
            } else {
                refused
            }
        })?;
        if let (Some(status), Some(slot)) = (access.rate, parts.extensions.get::<RateSlot>()) {
            let _ = slot.0.set(status);
        }
        Ok(Self(access.principal))
    }
}

fn is_json(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .is_some_and(|mime| {
            mime.eq_ignore_ascii_case("application/json")
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

pub(crate) async fn read_body(request: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(Code::PayloadTooLarge, "The request body is too large.")
            } else {
                ApiError::new(Code::InvalidArgument, "The request body could not be read.")
            }
        })
}

/// Parses JSON; a failure is a 400 naming the field (by its path) where there is one.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(&mut deserializer).or_else(|err| {
        // JSON (and JSON Schema, so OpenAPI 3.1) has one kind of number: `3.0` is the integer
        // 3, which serde refuses for an integer field. Such a body is read again with whole
        // numbers written as integers.
        let whole_float = err.inner().classify() == serde_json::error::Category::Data
            && err
                .inner()
                .to_string()
                .starts_with("invalid type: floating point");
        match whole_float.then(|| serde_json::from_slice::<WholeNumbers>(bytes)) {
            Some(Ok(WholeNumbers(value))) => serde_path_to_error::deserialize(value),
            _ => Err(err),
        }
    });
    parsed.map_err(|err| {
        let inner = err.inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new(Code::InvalidArgument, "The request body is not valid JSON.");
        }
        let text = inner.to_string();
        let summary = text.split(" at line ").next().unwrap_or(&text).to_owned();
        let path = err.path().to_string();
        // A missing or unknown field is named inside serde's message; others by their path.
        let field = if path == "." {
            text.split('`').nth(1).map(str::to_owned)
        } else {
            Some(path)
        };
        let error = ApiError::new(
            Code::InvalidArgument,
            format!("Invalid request: {summary}."),
        );
        match field {
            Some(field) => {
                error.with_detail(serde_json::json!({ "field": field, "description": summary }))
            }
            None => error,
        }
    })
}

/// A JSON value with every whole number that fits an `f64` exactly written as an integer;
/// duplicate object keys are refused, as serde refuses them for a struct.
struct WholeNumbers(serde_json::Value);

impl<'de> serde::Deserialize<'de> for WholeNumbers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WholeNumbersVisitor).map(Self)
    }
}

struct WholeNumbersVisitor;

impl<'de> serde::de::Visitor<'de> for WholeNumbersVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        /// 2^53: past it a float no longer spells every integer.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        #[allow(clippy::cast_possible_truncation)]
        let value = if v.fract() == 0.0 && v.abs() <= EXACT {
            (v as i64).into()
        } else {
            v.into()
        };
        Ok(value)
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(WholeNumbers(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(items.into())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let WholeNumbers(value) = map.next_value()?;
            if object.insert(key.clone(), value).is_some() {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate field `{key}`"
                )));
            }
        }
        Ok(object.into())
    }
}

/// A JSON body: 415 without a JSON content type, 413 over the limit, 400 when malformed or
/// invalid (naming the field).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json(&request) {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                "The request body must be JSON (Content-Type: application/json).",
            ));
        }
        let bytes = read_body(request, state).await?;
        parse_json(&bytes).map(Self)
    }
}

/// A JSON body that may be left out entirely (then `T::default()`).
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let declared_json = is_json(&request);
        let has_content_type = request.headers().contains_key(header::CONTENT_TYPE);
        let bytes = read_body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        if has_content_type && !declared_json {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                "The request body must be JSON (Content-Type: application/json).",
            ));
        }
        parse_json(&bytes).map(Self)
    }
}

/// Query parameters; a bad one is a 400.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded_query(query).map(Self)
    }
}

fn serde_urlencoded_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::new(Code::InvalidArgument, "The query string is malformed."))?,
    )
    .map(|q| q.0)
    .map_err(|rejection| {
        let text = rejection.body_text();
        let field = text.split('`').nth(1).map(str::to_owned);
        let message = format!(
            "Invalid query parameter: {}",
            text.trim_start_matches("Failed to deserialize query string: ")
        );
        let error = ApiError::new(Code::InvalidArgument, message);
        match field {
            Some(field) => error.with_detail(serde_json::json!({ "field": field })),
            None => error,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_is_display() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "192.168.100.255",
            "9.99.100.199",
            "::1",
            "2001:db8::42",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().expect("an address");
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }
}
