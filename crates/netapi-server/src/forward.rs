//! Forward auth for reverse proxies (`/auth/forward`) and RFC 9728 protected resource
//! metadata. The decision itself is `NetApi::check_access`, the one `/v1` uses.

use axum::Json;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any};
use netapi_core::Error;
use netapi_core::scope::Scopes;
use netapi_core::service::{Access, Credential, Principal, form_decoded};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::convert::Infallible;

use crate::dto::oauth::ProtectedResourceMetadata;
use crate::error::{ApiError, AuthErrors, NotFoundErrors};
use crate::extract::{ClientIp, RateSlot, bearer, dpop_proof, dpop_token, refusal};
use crate::state::AppState;
use netapi_core::dpop::DpopFailure;
use netapi_core::service::DpopPresentation;

/// The first value of each query parameter named; a repeated or undecodable one cannot make
/// the answer anything but the decision (a proxy turns a 400 into a 500). Values borrow the
/// query unless they need decoding, and other parameters are skipped undecoded: this runs
/// on every proxied request.
fn query_values<'q, const N: usize>(query: &'q str, names: [&str; N]) -> [Option<Cow<'q, str>>; N] {
    let mut found: [Option<Cow<'q, str>>; N] = std::array::from_fn(|_| None);
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = form_decoded(name.as_bytes());
        let Some(i) = names.iter().position(|n| name == *n) else {
            continue;
        };
        if found[i].is_none() {
            found[i] = Some(form_decoded(value.as_bytes()));
        }
    }
    found
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<Cow<'h, str>> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
}

/// `?resource=` of the metadata endpoint.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetadataQuery {
    /// The resource's identifier; without it, Net API's own.
    resource: Option<String>,
}

/// Read leniently (`query_values`): a repeated parameter is no error.
impl<S: Send + Sync> FromRequestParts<S> for MetadataQuery {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let query = parts.uri.query().unwrap_or_default();
        let [resource] = query_values(query, ["resource"]).map(|v| v.map(Cow::into_owned));
        Ok(Self { resource })
    }
}

/// `/auth/forward?resource=...&scope=...`, any method. The query is read leniently
/// (`query_values`): a repeated parameter is no error.
#[utoipa::path(
    get,
    path = "/auth/forward",
    tag = "forward-auth",
    operation_id = "forwardAuth",
    params(
        ("resource" = Option<String>, Query, description = "The identifier of the resource the original request is for; without it, Net API's own."),
        ("scope" = Option<String>, Query, description = "Space-separated scopes the credential must all hold."),
    ),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The credential may make the original request. Empty body; \
            the identity is in the headers, for the proxy to pass upstream. Any method is \
            accepted (Envoy forwards the original one).",
            headers(
                ("X-Netapi-Subject" = String, description = "The user id."),
                ("X-Netapi-Credential" = String, description = "`api_key` or `access_token`."),
                ("X-Netapi-Key-Id" = String, description = "The API key's id (API keys only)."),
                ("X-Netapi-Client-Id" = String, description = "The OAuth client's id (access tokens only)."),
                ("X-Netapi-Scopes" = String, description = "The credential's scopes, space-separated."),
                ("X-Netapi-Resource" = String, description = "The resource's identifier."),
                ("X-Netapi-Metadata" = String, description = "The API key's metadata, a JSON object with non-ASCII characters escaped (API keys that have metadata only)."),
                ("Cache-Control" = String, description = "`no-store`"),
            )),
        AuthErrors,
    )
)]
pub async fn forward(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: Request,
) -> Response {
    let (parts, _body) = request.into_parts();
    let [resource, scope] =
        query_values(parts.uri.query().unwrap_or_default(), ["resource", "scope"]);
    decide(
        &state,
        &ip,
        &parts,
        resource.as_deref(),
        scope.as_deref(),
        false,
    )
    .await
}

/// `/auth/forward/{*path}`, any method: the resource and scopes in `X-Netapi-Resource` and
/// `X-Netapi-Scope`, the original path appended (Envoy `ext_authz`).
#[utoipa::path(
    get,
    path = "/auth/forward/{path}",
    tag = "forward-auth",
    operation_id = "forwardAuthWithPath",
    params(
        ("path" = String, Path, description = "The original request's path, appended by the proxy; ignored."),
        ("X-Netapi-Resource" = Option<String>, Header, description = "The identifier of the resource; without it, Net API's own."),
        ("X-Netapi-Scope" = Option<String>, Header, description = "Space-separated scopes the credential must all hold."),
    ),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "As `GET /auth/forward`.",
            headers(
                ("X-Netapi-Subject" = String, description = "The user id."),
                ("X-Netapi-Credential" = String, description = "`api_key` or `access_token`."),
                ("X-Netapi-Scopes" = String, description = "The credential's scopes, space-separated."),
                ("X-Netapi-Resource" = String, description = "The resource's identifier."),
                ("Cache-Control" = String, description = "`no-store`"),
            )),
        AuthErrors,
    )
)]
pub async fn forward_with_path(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: Request,
) -> Response {
    let (parts, _body) = request.into_parts();
    let resource = header_text(&parts.headers, "x-netapi-resource");
    let scope = header_text(&parts.headers, "x-netapi-scope");
    decide(
        &state,
        &ip,
        &parts,
        resource.as_deref(),
        scope.as_deref(),
        true,
    )
    .await
}

/// The first of a comma-separated header's values (`X-Forwarded-Proto: https, http`).
fn first_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let value = headers.get(name)?.to_str().ok()?;
    value
        .split(',')
        .next()
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The original request's method and URL, for a DPoP proof (RFC 9449 §4.3): the method from
/// `X-Forwarded-Method` / `X-Original-Method` (or, under `/auth/forward/{*path}`, this
/// request's own), the URL from `X-Forwarded-Proto` (default `https`), `X-Forwarded-Host`
/// (default `Host`) and `X-Forwarded-Uri` / `X-Original-URI` (or the appended path). `None`
/// when the proxy passed too little to tell.
fn original_request(parts: &Parts, appended: bool) -> Option<(String, String)> {
    let headers = &parts.headers;
    let method = match first_value(headers, "x-forwarded-method")
        .or_else(|| first_value(headers, "x-original-method"))
    {
        Some(method) => method.to_owned(),
        None if appended => parts.method.as_str().to_owned(),
        None => return None,
    };
    let uri = match first_value(headers, "x-forwarded-uri")
        .or_else(|| first_value(headers, "x-original-uri"))
    {
        Some(uri) => uri.to_owned(),
        None if appended => parts
            .uri
            .path()
            .strip_prefix("/auth/forward")
            .unwrap_or("/")
            .to_owned(),
        None => return None,
    };
    if uri.starts_with("https://") || uri.starts_with("http://") {
        return Some((method, uri));
    }
    let proto = first_value(headers, "x-forwarded-proto").unwrap_or("https");
    let host = first_value(headers, "x-forwarded-host")
        .or_else(|| first_value(headers, header::HOST.as_str()))?;
    Some((method, format!("{proto}://{host}{uri}")))
}

async fn decide(
    state: &AppState,
    ip: &str,
    parts: &Parts,
    resource: Option<&str>,
    scope: Option<&str>,
    appended: bool,
) -> Response {
    let scopes = scope.unwrap_or_default();
    let outcome = match bearer(parts) {
        // Not the Bearer scheme: perhaps DPoP, whose proof names the original request.
        Err(netapi_core::AuthFailure::Malformed)
            if let Some(token) = dpop_token(&parts.headers) =>
        {
            let original = original_request(parts, appended);
            let (method, url) = original
                .as_ref()
                .map_or(("", ""), |(m, u)| (m.as_str(), u.as_str()));
            let proof = match (&original, dpop_proof(&parts.headers)) {
                (None, _) => Err(DpopFailure::Url),
                (_, None) => Err(DpopFailure::MissingProof),
                (_, Some(proof)) => proof,
            };
            let dpop = DpopPresentation { proof, method, url };
            state
                .api
                .check_access_with(Ok(token), Some(&dpop), ip, resource, scopes)
                .await
        }
        credential => {
            state
                .api
                .check_access(credential, ip, resource, scopes)
                .await
        }
    };
    log_decision(&parts.headers, &outcome);
    let mut response = match outcome {
        Ok(access) => {
            if let (Some(status), Some(slot)) = (access.rate, parts.extensions.get::<RateSlot>()) {
                let _ = slot.0.set(status);
            }
            granted(&access)
        }
        Err(err) => {
            let metadata = state
                .api
                .protected_resource(resource)
                .await
                .ok()
                .flatten()
                .map(|r| metadata_url(&state.api.settings().issuer, &r.identifier));
            let error = refusal(err, state);
            match metadata {
                Some(url) => error.with_resource_metadata(&url),
                None => error,
            }
            .into_response()
        }
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn granted(access: &Access) -> Response {
    let principal = &access.principal;
    let (kind, id_header, id) = match &principal.credential {
        Credential::ApiKey { key_id, .. } => ("api_key", "x-netapi-key-id", key_id.as_str()),
        Credential::AccessToken { client_id, .. } => {
            ("access_token", "x-netapi-client-id", client_id.as_str())
        }
        // Neither reaches an HTTP bearer check.
        Credential::Operator | Credential::Session => return ApiError::internal().into_response(),
    };
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    // Room for the identity, security, request-id and rate-limit headers at once: growing
    // the map step by step rehashed it three times.
    headers.reserve(16);
    for (name, value) in [
        ("x-netapi-subject", principal.user_id.as_str()),
        ("x-netapi-credential", kind),
        (id_header, id),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    // In the documented order (docs/resources.md shows them so).
    if let Some(value) = scopes_header(principal) {
        headers.insert(HeaderName::from_static("x-netapi-scopes"), value);
    }
    if let Ok(value) = HeaderValue::from_str(&access.resource) {
        headers.insert(HeaderName::from_static("x-netapi-resource"), value);
    }
    if let Credential::ApiKey {
        metadata: Some(metadata),
        ..
    } = &principal.credential
        && let Ok(value) = HeaderValue::from_str(&ascii_json(metadata))
    {
        headers.insert(HeaderName::from_static("x-netapi-metadata"), value);
    }
    response
}

thread_local! {
    /// `X-Netapi-Scopes` of each set of Net API's own scopes met so far, made once per
    /// thread: formatting the names cost more than the rest of the identity headers. At most
    /// one entry per subset of the 14 scopes.
    static OWN_SCOPES: RefCell<HashMap<Scopes, HeaderValue, netapi_core::FastHash>> =
        RefCell::new(HashMap::default());
}

/// The credential's scopes, space-separated, as a header value.
fn scopes_header(principal: &Principal) -> Option<HeaderValue> {
    if principal.resource.is_some() {
        return HeaderValue::from_str(&principal.scope_names()).ok();
    }
    OWN_SCOPES.with_borrow_mut(|known| {
        if let Some(value) = known.get(&principal.scopes) {
            return Some(value.clone());
        }
        let value = HeaderValue::from_str(&principal.scope_names()).ok()?;
        known.insert(principal.scopes, value.clone());
        Some(value)
    })
}

/// JSON text with every character beyond ASCII written as a `\u` escape, so that it fits in
/// a header value unchanged in meaning.
fn ascii_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// The original method and path (never the query: it can carry secrets) go to the debug log;
/// the outcome, by method, to metrics. Nothing is written to the audit log on this path, and
/// nothing is allocated when debug logging is off: this runs on every proxied request.
fn log_decision(headers: &HeaderMap, outcome: &Result<Access, Error>) {
    // Names made once: looking a header up by `&str` parses the name on every call.
    static FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
    static ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
    static FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
    static ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
    let original = |a: &HeaderName, b: &HeaderName| headers.get(a).or_else(|| headers.get(b));
    let method = original(&FORWARDED_METHOD, &ORIGINAL_METHOD);
    let result = match outcome {
        Ok(_) => "allowed",
        Err(Error::Unauthenticated(_)) => "unauthenticated",
        Err(Error::InsufficientScope { .. }) => "insufficient_scope",
        Err(Error::PermissionDenied { .. }) => "unknown_resource",
        Err(Error::RateLimited { .. } | Error::RequestRateLimited(_)) => "rate_limited",
        Err(_) => "error",
    };
    let method_label = match method.map(HeaderValue::as_bytes) {
        Some(b"GET") => "get",
        Some(b"HEAD") => "head",
        Some(b"POST") => "post",
        Some(b"PUT") => "put",
        Some(b"PATCH") => "patch",
        Some(b"DELETE") => "delete",
        Some(b"OPTIONS") => "options",
        Some(_) => "other",
        None => "unknown",
    };
    netapi_core::counters::increment(
        "netapi_forward_auth_total",
        [("outcome", result), ("method", method_label)],
    );
    // The fields are evaluated only when the event is enabled.
    tracing::debug!(
        original_method = method
            .map_or("-".into(), |v| String::from_utf8_lossy(v.as_bytes()))
            .as_ref(),
        original_path = original(&FORWARDED_URI, &ORIGINAL_URI)
            .map_or("-".into(), |v| String::from_utf8_lossy(v.as_bytes()))
            .split(['?', '#'])
            .next()
            .unwrap_or_default(),
        outcome = result,
        "forward auth"
    );
}

/// `<issuer>/.well-known/oauth-protected-resource?resource=<identifier>`.
pub fn metadata_url(issuer: &str, identifier: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(identifier.as_bytes()).collect();
    format!(
        "{}/.well-known/oauth-protected-resource?resource={encoded}",
        issuer.trim_end_matches('/')
    )
}

/// `GET /.well-known/oauth-protected-resource` (RFC 9728).
#[utoipa::path(
    get,
    path = "/.well-known/oauth-protected-resource",
    tag = "forward-auth",
    operation_id = "protectedResourceMetadata",
    params(MetadataQuery),
    responses(
        (status = 200, description = "RFC 9728 metadata of the resource.", body = ProtectedResourceMetadata),
        NotFoundErrors,
    )
)]
pub async fn metadata(
    State(state): State<AppState>,
    MetadataQuery { resource }: MetadataQuery,
) -> Response {
    let found = match state.api.protected_resource(resource.as_deref()).await {
        Ok(Some(found)) => found,
        Ok(None) => return ApiError::from(Error::NotFound("resource")).into_response(),
        Err(err) => return ApiError::from(err).into_response(),
    };
    Json(ProtectedResourceMetadata {
        scopes_supported: found.scopes_supported(),
        resource: found.identifier,
        authorization_servers: vec![state.api.settings().issuer.clone()],
        bearer_methods_supported: vec!["header"],
        resource_name: found.name,
    })
    .into_response()
}

/// The forward-auth routes and the protected resource metadata, with their documentation.
/// Forward auth answers any method (Envoy forwards the original one); the document shows it
/// once, as GET, and its catch-all as one path parameter.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::new().routes(routes!(metadata));
    let router = any_method(router, "/auth/forward", routes!(forward), any(forward));
    any_method(
        router,
        "/auth/forward/{*path}",
        routes!(forward_with_path),
        any(forward_with_path),
    )
}

/// Serves `method_router` at `path` and adds the documentation `routes!` made for it.
fn any_method(
    router: OpenApiRouter<AppState>,
    path: &str,
    (schemas, paths, _): UtoipaMethodRouter<AppState>,
    method_router: MethodRouter<AppState>,
) -> OpenApiRouter<AppState> {
    let mut router = router.route(path, method_router);
    let document = router.get_openapi_mut();
    document.paths.paths.extend(paths.paths);
    document
        .components
        .get_or_insert_with(Default::default)
        .schemas
        .extend(schemas);
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_decode_like_form_urlencoded() {
        let queries = [
            "resource=https%3A%2F%2Fapi.example&scope=users%3Aread+keys%3Awrite",
            "scope=a&scope=b&resource=r&resource=s",
            "sc%6Fpe=x%2&resource&other=%zz",
            "scope=%C3%A9%FF&=&&resource=a=b",
            "",
        ];
        for query in queries {
            let ours = query_values(query, ["resource", "scope"]).map(|v| v.map(Cow::into_owned));
            let mut theirs: [Option<String>; 2] = [None, None];
            for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
                let slot = match name.as_ref() {
                    "resource" => &mut theirs[0],
                    "scope" => &mut theirs[1],
                    _ => continue,
                };
                slot.get_or_insert_with(|| value.into_owned());
            }
            assert_eq!(ours, theirs, "{query}");
        }
        let [resource, scope] = query_values("resource=plain&scope=a%20b", ["resource", "scope"]);
        assert!(matches!(resource, Some(Cow::Borrowed("plain"))));
        assert_eq!(scope.as_deref(), Some("a b"));
    }
}
