//! How the token, revocation and introspection endpoints read their request: a form body
//! (every parameter at most once) and the client's credentials, from HTTP Basic or the form
//! (RFC 6749 §2.3.1), in one extractor they share.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use netapi_core::service::{
    ClientRequest, MalformedBasic, OAuthError, OAuthErrorKind, OAuthForm, OAuthReason,
    basic_credentials,
};

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

/// The `Authorization: Basic` credentials, decoded by [`basic_credentials`]; `Ok(None)` when
/// the header is absent or of another scheme.
fn parse_basic(headers: &HeaderMap) -> Result<Option<(String, String)>, MalformedBasic> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    basic_credentials(value.to_str().map_err(|_| MalformedBasic)?)
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
    let form = OAuthForm::parse(&OAuthForm::decode(body)).map_err(|error| OAuthFailure {
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

    fn authorization(value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = header::HeaderValue::from_bytes(value).unwrap_or_else(|_| unreachable!());
        headers.insert(header::AUTHORIZATION, value);
        headers
    }

    /// The decoding itself is `basic_credentials`'s (tested in core); here, the header.
    #[test]
    fn basic_credentials_are_read_from_the_authorization_header() {
        assert_eq!(
            parse_basic(&authorization(b"Basic Y2xpOnMlM0E=")),
            Ok(Some(("cli".to_owned(), "s:".to_owned())))
        );
        assert_eq!(parse_basic(&authorization(b"Bearer abc")), Ok(None));
        assert_eq!(parse_basic(&HeaderMap::new()), Ok(None));
        // Not text: refused, never read as some other scheme.
        assert_eq!(
            parse_basic(&authorization(b"Basic \xff\xfe")),
            Err(MalformedBasic)
        );
    }
}
