//! How the token, revocation and introspection endpoints read their request: a form body
//! (every parameter at most once) and the client's credentials, from HTTP Basic or the form
//! (RFC 6749 §2.3.1), in one extractor they share.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use netapi_core::service::{ClientRequest, OAuthError, OAuthErrorKind, OAuthForm, OAuthReason};

use super::error::OAuthFailure;
use crate::state::AppState;

/// The client's credentials and the request's parameters (`T`: a `TokenGrant` or a
/// `TokenTarget`), parsed once; rejected with the OAuth error shape (a body over the limit:
/// axum's own rejection, as before).
#[derive(Debug)]
pub(crate) struct ClientForm<T>(pub(crate) ClientRequest<T>);

impl<T> FromRequest<AppState> for ClientForm<T>
where
    T: for<'a> TryFrom<&'a OAuthForm, Error = OAuthError>,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        client_request(&headers, &body)
            .map(Self)
            .map_err(IntoResponse::into_response)
    }
}

/// Decodes `application/x-www-form-urlencoded` into its pairs, in order.
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
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

fn client_request<T>(headers: &HeaderMap, body: &[u8]) -> Result<ClientRequest<T>, OAuthFailure>
where
    T: for<'a> TryFrom<&'a OAuthForm, Error = OAuthError>,
{
    let plain = |reason: OAuthReason| OAuthFailure {
        error: reason.into(),
        basic: false,
    };
    if !is_form(headers) {
        return Err(plain(OAuthReason::NotAForm));
    }
    let form = OAuthForm::parse(&form_pairs(body)).map_err(|error| OAuthFailure {
        error,
        basic: false,
    })?;
    let basic = parse_basic(headers).map_err(|MalformedBasic| OAuthFailure {
        error: OAuthReason::MalformedBasic.into(),
        basic: true,
    })?;
    // No credentials at all is a 401 with a challenge.
    ClientRequest::from_form(basic, &form).map_err(|error| OAuthFailure {
        basic: error.kind() == OAuthErrorKind::InvalidClient,
        error,
    })
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
