//! Extractors whose failures speak the contract's envelope.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use netapi_core::AuthFailure;
use netapi_core::service::Principal;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;

use crate::AppState;
use crate::error::{ApiError, Code};

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
                |c| {
                    state
                        .trusted_proxies
                        .client_ip(c.0.ip(), &parts.headers)
                        .to_string()
                },
            );
        Ok(Self(ip))
    }
}

/// Where the authenticated caller's rate-limit standing is left for the response headers.
#[derive(Debug, Clone, Default)]
pub struct RateSlot(pub std::sync::Arc<std::sync::OnceLock<netapi_core::limiter::RateStatus>>);

/// The authenticated caller of a `/v1` endpoint.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

/// The credential in `Authorization: Bearer <credential>`.
pub fn bearer(parts: &Parts) -> Result<&str, AuthFailure> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
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

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        let credential = bearer(parts).map_err(ApiError::unauthenticated)?;
        let principal = state.api.authenticate(credential, &ip).await?;
        let status = state.api.check_rate(&principal)?;
        if let (Some(status), Some(slot)) = (status, parts.extensions.get::<RateSlot>()) {
            let _ = slot.0.set(status);
        }
        Ok(Self(principal))
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

async fn read_body(request: Request, state: &AppState) -> Result<Bytes, ApiError> {
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
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
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
