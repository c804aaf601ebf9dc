//! How the token, revocation and introspection endpoints read their request: a form body
//! (every parameter at most once) and the client's credentials, from HTTP Basic or the form
//! (RFC 6749 §2.3.1), in one extractor they share.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use netapi_core::service::{ClientAuth, OAuthError, OAuthErrorKind, TokenRequest};
use std::collections::HashMap;

use super::error::{OAuthFailure, failure};
use crate::state::AppState;

/// The parsed form and the client's credentials; rejected with the OAuth error shape (a body
/// over the limit: axum's own rejection, as before).
#[derive(Debug)]
pub(crate) struct ClientRequest(pub(crate) TokenRequest);

impl FromRequest<AppState> for ClientRequest {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        token_request(&headers, &body)
            .map(Self)
            .map_err(IntoResponse::into_response)
    }
}

/// Decodes `application/x-www-form-urlencoded` where every parameter appears at most once
/// (RFC 6749 §3.2).
pub fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut params = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        if params.insert(name.to_string(), value.to_string()).is_some() {
            return Err(format!("The parameter '{name}' is repeated."));
        }
    }
    Ok(params)
}

/// HTTP Basic credentials that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedBasic;

/// Decodes an `Authorization: Basic` header: base64, then each half form-urldecoded
/// (RFC 6749 §2.3.1). `Ok(None)` when the header is absent or of another scheme.
pub fn parse_basic(headers: &HeaderMap) -> Result<Option<(String, String)>, MalformedBasic> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| MalformedBasic)?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(MalformedBasic);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| MalformedBasic)?;
    let text = String::from_utf8(decoded).map_err(|_| MalformedBasic)?;
    let (id, secret) = text.split_once(':').ok_or(MalformedBasic)?;
    // Only `+` and `%XX` are decoded: a `&` in a half is data, not a parameter separator.
    let decode = |part: &str| -> String {
        url::form_urlencoded::parse(format!("x={}", part.replace('&', "%26")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((decode(id), decode(secret))))
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn token_request(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, OAuthFailure> {
    if !is_form(headers) {
        return Err(failure(
            OAuthErrorKind::InvalidRequest,
            "The body must be application/x-www-form-urlencoded.",
        ));
    }
    let resources = url::form_urlencoded::parse(body)
        .filter(|(name, _)| name == "resource")
        .count();
    if resources > 1 {
        // RFC 8707 allows several; one per request is what this server supports.
        return Err(failure(
            OAuthErrorKind::InvalidTarget,
            "One resource per request: several resource parameters are not supported.",
        ));
    }
    let params = parse_form(body).map_err(|e| failure(OAuthErrorKind::InvalidRequest, &e))?;
    let basic = parse_basic(headers).map_err(|MalformedBasic| OAuthFailure {
        error: OAuthError::new(
            OAuthErrorKind::InvalidClient,
            "The HTTP Basic credentials are malformed.",
        ),
        basic: true,
    })?;
    let client = ClientAuth::from_request(basic, &params).map_err(|error| OAuthFailure {
        basic: error.kind == OAuthErrorKind::InvalidClient,
        error,
    })?;
    Ok(TokenRequest { params, client })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(credentials: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(credentials));
        headers.insert(
            header::AUTHORIZATION,
            value.parse().unwrap_or_else(|_| unreachable!()),
        );
        headers
    }

    fn pair(id: &str, secret: &str) -> Result<Option<(String, String)>, MalformedBasic> {
        Ok(Some((id.to_owned(), secret.to_owned())))
    }

    #[test]
    fn basic_halves_are_form_urldecoded_whole() {
        assert_eq!(
            parse_basic(&basic("my%20app:a+b%2B%3A")),
            pair("my app", "a b+:")
        );
        assert_eq!(parse_basic(&basic("cli:s:e:c")), pair("cli", "s:e:c"));
        // Found by fuzzing: a `&` used to end the half, so "secret&anything" read as "secret".
        assert_eq!(
            parse_basic(&basic("cli&x=y:secret&x")),
            pair("cli&x=y", "secret&x")
        );
        assert_eq!(parse_basic(&basic("cli:%26")), pair("cli", "&"));
        assert_eq!(parse_basic(&basic("no colon")), Err(MalformedBasic));
        assert_eq!(parse_basic(&HeaderMap::new()), Ok(None));
    }
}
