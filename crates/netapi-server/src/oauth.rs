//! The OAuth 2.0 and OpenID Connect endpoints. Their errors use RFC 6749 §5.2's shape, not
//! the `/v1` envelope, because that is what OAuth client libraries parse.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use netapi_core::model::GrantType;
use netapi_core::service::{ClientAuth, Credential, OAuthError, OAuthErrorKind, TokenRequest};
use netapi_core::{Scope, Scopes};
use serde_json::{Value, json};
use std::collections::HashMap;

use crate::AppState;
use crate::extract::{Auth, ClientIp};

fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// An OAuth error response, remembering whether the client used HTTP Basic.
#[derive(Debug)]
pub struct OAuthFailure {
    error: OAuthError,
    basic: bool,
}

impl IntoResponse for OAuthFailure {
    fn into_response(self) -> Response {
        let status = if self.error.retry_after.is_some() {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            match self.error.kind {
                OAuthErrorKind::InvalidClient if self.basic => StatusCode::UNAUTHORIZED,
                OAuthErrorKind::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
                OAuthErrorKind::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            }
        };
        let body = json!({
            "error": self.error.kind.as_str(),
            "error_description": self.error.description,
        });
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        no_store(headers);
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"netapi\", charset=\"UTF-8\""),
            );
        }
        if let Some(seconds) = self.error.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

fn failure(kind: OAuthErrorKind, description: &str) -> OAuthFailure {
    OAuthFailure {
        error: OAuthError::new(kind, description),
        basic: false,
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

fn json_no_store(body: impl serde::Serialize) -> Response {
    let mut response = Json(body).into_response();
    no_store(response.headers_mut());
    response
}

/// `POST /oauth/token`
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "oauth",
    operation_id = "token",
    request_body(content = crate::openapi::TokenForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = []), ()),
    responses(
        (status = 200, description = "Tokens (RFC 6749 §5.1).", body = crate::openapi::TokenResponse, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        crate::openapi::OAuthErrors,
    )
)]
pub async fn token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthFailure> {
    let request = token_request(&headers, &body)?;
    let basic = request.client.is_basic();
    let response = state
        .api
        .token(&request, &ip)
        .await
        .map_err(|error| OAuthFailure { error, basic })?;
    Ok(json_no_store(response))
}

/// `POST /oauth/revoke` (RFC 7009): 200 with `{}` whether or not the token was known.
#[utoipa::path(
    post,
    path = "/oauth/revoke",
    tag = "oauth",
    operation_id = "revoke",
    request_body(content = crate::openapi::TokenTargetForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = []), ()),
    responses(
        (status = 200, description = "Revoked, or unknown: the answer is the same (RFC 7009). Revoking a refresh token revokes its family.", body = crate::openapi::RevocationResponse, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        crate::openapi::OAuthErrors,
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthFailure> {
    let request = token_request(&headers, &body)?;
    let basic = request.client.is_basic();
    state
        .api
        .revoke_token(&request, &ip)
        .await
        .map_err(|error| OAuthFailure { error, basic })?;
    Ok(json_no_store(json!({})))
}

/// `POST /oauth/introspect` (RFC 7662)
#[utoipa::path(
    post,
    path = "/oauth/introspect",
    tag = "oauth",
    operation_id = "introspect",
    request_body(content = crate::openapi::TokenTargetForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = []), ()),
    responses(
        (status = 200, description = "The token's state (RFC 7662); confidential clients only.", body = crate::openapi::Introspection, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        crate::openapi::OAuthErrors,
    )
)]
pub async fn introspect(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthFailure> {
    let request = token_request(&headers, &body)?;
    let basic = request.client.is_basic();
    let answer = state
        .api
        .introspect(&request, &ip)
        .await
        .map_err(|error| OAuthFailure { error, basic })?;
    Ok(json_no_store(answer))
}

/// `GET /oauth/jwks.json`
#[utoipa::path(
    get,
    path = "/oauth/jwks.json",
    tag = "oauth",
    operation_id = "jwks",
    responses(
        (status = 200, description = "The public keys that verify access and ID tokens.", body = crate::openapi::Jwks,
            headers(("Cache-Control" = String, description = "`public, max-age=300`"))),
    )
)]
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = Json(state.api.key_ring().jwks().clone()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

fn metadata(state: &AppState) -> Value {
    let issuer = &state.api.settings().issuer;
    let base = issuer.trim_end_matches('/');
    // The algorithm of the key that signs ID tokens now (the configured one until a key is
    // loaded).
    let alg = state
        .api
        .key_ring()
        .signing_alg()
        .unwrap_or(state.api.settings().signing_algorithm);
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "introspection_endpoint": format!("{base}/oauth/introspect"),
        "userinfo_endpoint": format!("{base}/oauth/userinfo"),
        "jwks_uri": format!("{base}/oauth/jwks.json"),
        "registration_endpoint": format!("{base}/v1/oauth-clients"),
        "scopes_supported": Scopes::all().names(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": GrantType::ALL.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [alg.as_str()],
        "claims_supported": ["sub", "iss", "aud", "azp", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "name", "updated_at", "email", "email_verified"],
        "prompt_values_supported": ["none", "login", "consent"],
    })
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414)
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    tag = "oauth",
    operation_id = "authorizationServerMetadata",
    responses((status = 200, description = "RFC 8414 metadata.", body = crate::openapi::ServerMetadata))
)]
pub async fn authorization_server_metadata(State(state): State<AppState>) -> Json<Value> {
    Json(metadata(&state))
}

/// `GET /.well-known/openid-configuration`
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "oauth",
    operation_id = "openidConfiguration",
    responses((status = 200, description = "OpenID Connect discovery.", body = crate::openapi::ServerMetadata))
)]
pub async fn openid_configuration(State(state): State<AppState>) -> Json<Value> {
    Json(metadata(&state))
}

/// `GET/POST /oauth/userinfo`: the claims the token's scopes allow. Errors follow RFC 6750.
#[utoipa::path(
    method(get, post),
    path = "/oauth/userinfo",
    tag = "oauth",
    operation_id = "userinfo",
    security(("oauth2" = ["openid"])),
    responses(
        (status = 200, description = "The claims the token's scopes allow.", body = crate::openapi::UserInfo, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        (status = 401, description = "`invalid_token`: no access token, or a bad, expired or revoked one (an API key is not accepted here).", body = crate::openapi::BearerError,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"netapi\", error=\"invalid_token\", error_description=\"...\"`"))),
        (status = 403, description = "`insufficient_scope`: the token lacks `openid`.", body = crate::openapi::BearerError,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"netapi\", error=\"insufficient_scope\", ...`"))),
    )
)]
pub async fn userinfo(
    State(state): State<AppState>,
    auth: Result<Auth, crate::error::ApiError>,
) -> Response {
    let challenge = |error: &str, description: &str| {
        let mut response = (
            if error == "insufficient_scope" {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNAUTHORIZED
            },
            Json(json!({ "error": error, "error_description": description })),
        )
            .into_response();
        if let Ok(value) = HeaderValue::from_str(&format!(
            "Bearer realm=\"netapi\", error=\"{error}\", error_description=\"{description}\""
        )) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    };
    let principal = match auth {
        Ok(Auth(principal)) if matches!(principal.credential, Credential::AccessToken { .. }) => {
            principal
        }
        _ => {
            return challenge(
                "invalid_token",
                "The access token is missing, invalid or expired.",
            );
        }
    };
    if !principal.scopes.contains(Scope::OpenId) {
        return challenge(
            "insufficient_scope",
            "The access token lacks the openid scope.",
        );
    }
    match state.api.userinfo(&principal).await {
        Ok(claims) => json_no_store(claims),
        Err(_) => challenge("invalid_token", "The user no longer exists."),
    }
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
