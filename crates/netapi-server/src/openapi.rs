//! `GET /openapi.json`: the OpenAPI 3.1 document. The route table (`crate::router`) collects
//! every route's `#[utoipa::path]` and the schemas of the types it names; this module adds
//! what is common to all of them (info, tags, security schemes, the shared error responses,
//! `X-Request-Id` everywhere) and the per-server parts (the issuer as server URL, the OAuth
//! endpoints in the security schemes). It imports no handler.

use axum::Extension;
use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use netapi_core::Scope;
use netapi_core::model::GrantType;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{
    AuthorizationCode, ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes,
    SecurityScheme,
};
use utoipa::openapi::server::Server;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};
use utoipa::{Modify, OpenApi as _};

use crate::dto::ErrorEnvelope;
use crate::dto::fields;
use crate::dto::oauth::{BearerError, OAuthErrorBody};
use crate::error::{ERRORS, error_response};

/// The `Scope` component: every scope name the server knows.
fn scope_enum() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("A scope name."))
        .enum_values(Some(Scope::ALL.iter().map(|s| s.as_str())))
        .into()
}

/// The `GrantType` component: every grant type the server supports.
fn grant_type_enum() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("An OAuth 2.0 grant type."))
        .enum_values(Some(GrantType::ALL.iter().map(|g| g.as_str())))
        .into()
}

fn request_id_header() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(fields::request_id())
        .description(Some("The request id; every response carries it."))
        .build()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Net API",
        description = "API keys and OAuth 2.0 for your users. Every `/v1` endpoint but \
                       `POST /v1/register` takes `Authorization: Bearer <credential>`, where the \
                       credential is an API key (`napi_...`) or an OAuth 2.0 access token. \
                       Errors of `/v1` and the other non-OAuth endpoints use one envelope \
                       (`ErrorEnvelope`); the OAuth endpoints answer errors in the RFC 6749 \
                       shape. Every response carries `X-Request-Id`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(ErrorEnvelope, OAuthErrorBody, BearerError)),
    tags(
        (name = "users", description = "Registration and users."),
        (name = "api-keys", description = "API keys."),
        (name = "oauth-clients", description = "OAuth 2.0 clients (RFC 7591 field names)."),
        (name = "audit", description = "Security events."),
        (name = "resources", description = "The operator's APIs that Net API guards besides its own (RFC 8707 resources), and the scopes of theirs administrators grant users."),
        (name = "invitations", description = "Single-use invitations to register, made by administrators."),
        (name = "registration-tokens", description = "Initial access tokens for dynamic client registration (RFC 7591 §3) when `client_registration = admin`, made by administrators; each is good for one registration."),
        (name = "webhooks", description = "Signed HTTP callbacks of security events to endpoints administrators register."),
        (name = "oauth", description = "OAuth 2.0 and OpenID Connect endpoints (RFC 6749, 7009, 7591, 7592, 7662, 8414)."),
        (name = "forward-auth", description = "Checking a credential for a reverse proxy in front of an API (nginx `auth_request`, Traefik `ForwardAuth`, Caddy `forward_auth`, Envoy `ext_authz`), and RFC 9728 protected resource metadata. 401, 403 and 429 carry the error envelope; a `resource` Net API does not guard is a 403 naming it."),
        (name = "secret-scanning", description = "Leaked keys revoke themselves: reports of GitHub's secret scanning partner program, signed by GitHub, answered with a label per token."),
        (name = "operations", description = "Health, readiness, metrics and this document."),
        (name = "browser", description = "Pages for people: sign-in, consent, registration and the developer portal. Every form carries a CSRF token."),
    )
)]
struct ApiDoc;

/// Adds what the derive cannot: the code-derived enums, the reusable error responses, the
/// security schemes and the `X-Request-Id` header on every response.
struct Common;

impl Modify for Common {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .schemas
            .insert("Scope".to_owned(), RefOr::T(scope_enum()));
        components
            .schemas
            .insert("GrantType".to_owned(), RefOr::T(grant_type_enum()));
        for (name, _, description, headers) in ERRORS {
            components.responses.insert(
                (*name).to_owned(),
                RefOr::T(error_response(description, headers)),
            );
        }
        components.security_schemes.insert(
            "bearer".to_owned(),
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`napi_...`) or an OAuth 2.0 access token (a JWT); every \
                         `/v1` endpoint accepts both. The scopes listed per operation are those \
                         the credential needs.",
                    ))
                    .build(),
            ),
        );
        components.security_schemes.insert(
            "client_basic".to_owned(),
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "OAuth client authentication `client_secret_basic`: the client id and \
                         secret, each form-urlencoded, then base64 (RFC 6749 §2.3.1). \
                         `client_secret_post` sends them in the form body instead, and a public \
                         client sends only `client_id`.",
                    ))
                    .build(),
            ),
        );
        for response in components.responses.values_mut() {
            if let RefOr::T(response) = response {
                response
                    .headers
                    .insert("X-Request-Id".to_owned(), request_id_header());
            }
        }
        // These bodies may be left out (`OptionalJson`, an empty form), but `null` is neither
        // a `RotateBody` nor a form.
        for (path, schema, content_type) in [
            ("/v1/api-keys/{id}/rotate", "RotateBody", "application/json"),
            (
                "/oauth/logout",
                "LogoutForm",
                "application/x-www-form-urlencoded",
            ),
        ] {
            if let Some(body) = openapi
                .paths
                .paths
                .get_mut(path)
                .and_then(|item| item.post.as_mut())
                .and_then(|post| post.request_body.as_mut())
            {
                body.required = Some(utoipa::openapi::Required::False);
                body.content = BTreeMap::from([(
                    content_type.to_owned(),
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(schema)))
                        .build(),
                )]);
            }
        }
        if let Some(post) = openapi
            .paths
            .paths
            .get_mut("/oauth/userinfo")
            .and_then(|item| item.post.as_mut())
        {
            // One handler serves both methods; operation ids must differ.
            post.operation_id = Some("userinfoPost".to_owned());
        }
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
                &mut item.put,
            ]
            .into_iter()
            .flatten()
            {
                if operation.request_body.is_some() {
                    // Every body is read up to `body_limit`; the JSON API answers beyond it
                    // with its error envelope, the forms and OAuth endpoints with this.
                    operation
                        .responses
                        .responses
                        .entry("413".to_owned())
                        .or_insert_with(|| {
                            crate::web::page_response(
                                "The body is over `body_limit` (64 KiB by default).",
                                "text/plain",
                            )
                        });
                }
                for response in operation.responses.responses.values_mut() {
                    if let RefOr::T(response) = response {
                        response
                            .headers
                            .insert("X-Request-Id".to_owned(), request_id_header());
                    }
                }
            }
        }
    }
}

/// The OAuth 2.0 security scheme, with this server's endpoints.
fn oauth2_scheme(issuer: &str) -> SecurityScheme {
    let base = issuer.trim_end_matches('/');
    let scopes = || {
        Scopes::from_iter(
            Scope::ALL
                .iter()
                .map(|s| (s.as_str().to_owned(), s.description().to_owned())),
        )
    };
    let mut scheme = OAuth2::new([
        Flow::AuthorizationCode(AuthorizationCode::new(
            format!("{base}/oauth/authorize"),
            format!("{base}/oauth/token"),
            scopes(),
        )),
        Flow::ClientCredentials(ClientCredentials::new(
            format!("{base}/oauth/token"),
            scopes(),
        )),
    ]);
    scheme.description = Some(
        "An OAuth 2.0 access token, sent as `Authorization: Bearer`. The authorization code \
         flow needs PKCE (S256). A token issued with a DPoP proof (RFC 9449; `token_type: \
         DPoP`, `cnf.jkt`) is sent as `Authorization: DPoP <token>` with a `DPoP` header \
         holding a proof for the request (`htm`, `htu`, `iat`, `jti`, `ath`), and refused as a \
         bearer token (401, `WWW-Authenticate: DPoP ... error=\"invalid_token\"`)."
            .to_owned(),
    );
    SecurityScheme::OAuth2(scheme)
}

/// Marks the headers that are always sent as required (utoipa's header type has no such
/// field): `X-Request-Id` everywhere, `WWW-Authenticate` on 401, `Retry-After` on 429,
/// `Location` on redirects, `Cache-Control` and `Pragma` on the token endpoint's answers.
fn require_headers(document: &mut Value) {
    const ALWAYS_SENT: [&str; 7] = [
        "X-Request-Id",
        "WWW-Authenticate",
        "Retry-After",
        "Location",
        "Cache-Control",
        "Pragma",
        "Allow",
    ];
    let mark = |response: &mut Value| {
        if let Some(headers) = response.get_mut("headers").and_then(Value::as_object_mut) {
            for (name, header) in headers.iter_mut() {
                if ALWAYS_SENT.contains(&name.as_str())
                    && let Some(header) = header.as_object_mut()
                {
                    header.insert("required".to_owned(), Value::Bool(true));
                }
            }
        }
    };
    each_response(document, mark);
}

/// Spells the fields of response links as OpenAPI does (`operationId`, `operationRef`,
/// `requestBody`): utoipa 5 writes its `Link` in Rust's spelling (`operation_id`), which
/// no tool reads as a link.
fn spell_links(document: &mut Value) {
    const RENAMED: [(&str, &str); 3] = [
        ("operation_id", "operationId"),
        ("operation_ref", "operationRef"),
        ("request_body", "requestBody"),
    ];
    each_response(document, |response| {
        let Some(links) = response.get_mut("links").and_then(Value::as_object_mut) else {
            return;
        };
        for link in links.values_mut().filter_map(Value::as_object_mut) {
            for (rust, openapi) in RENAMED {
                if let Some(value) = link.remove(rust) {
                    link.insert(openapi.to_owned(), value);
                }
            }
        }
    });
}

/// Calls `f` on every response object: the shared ones and each operation's.
fn each_response(document: &mut Value, mut f: impl FnMut(&mut Value)) {
    if let Some(shared) = document
        .pointer_mut("/components/responses")
        .and_then(Value::as_object_mut)
    {
        shared.values_mut().for_each(&mut f);
    }
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for operation in paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|item| item.values_mut())
        {
            if let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            {
                responses.values_mut().for_each(&mut f);
            }
        }
    }
}

/// Where the routes' documentation starts: the info, tags and shared schemas.
pub(crate) fn base() -> OpenApi {
    ApiDoc::openapi()
}

/// The whole document as JSON text, from what the route table collected, for a server whose
/// issuer is `issuer`.
pub(crate) fn document(mut doc: OpenApi, issuer: &str) -> Bytes {
    Common.modify(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.servers = Some(vec![Server::new(issuer.trim_end_matches('/'))]);
    if let Some(components) = doc.components.as_mut() {
        components
            .security_schemes
            .insert("oauth2".to_owned(), oauth2_scheme(issuer));
    }
    let mut value = serde_json::to_value(&doc).unwrap_or(Value::Null);
    require_headers(&mut value);
    spell_links(&mut value);
    add_client_rules(&mut value);
    Bytes::from(value.to_string())
}

/// The document as served (JSON text), built once when the router is: filled in by
/// [`crate::router`].
pub(crate) type Document = Arc<OnceLock<Bytes>>;

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 description of every endpoint.", body = Object))
)]
pub async fn spec(Extension(document): Extension<Document>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.get().cloned().unwrap_or_default(),
    )
        .into_response()
}

/// The rules of `check_client_shape` that tie one field of a new client to another, as JSON
/// Schema conditions (utoipa has no `if`/`then`): `authorization_code` needs a redirect URI,
/// and a public client (`none`) cannot use `client_credentials`, which is also the default
/// grant of a client registered without redirect URIs.
fn add_client_rules(document: &mut Value) {
    let Some(schema) = document
        .pointer_mut("/components/schemas/NewClientBody")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let grants_contain =
        |grant: &str| serde_json::json!({ "type": "array", "contains": { "const": grant } });
    let needs_redirect_uri = serde_json::json!({
        "required": ["redirect_uris"],
        "properties": { "redirect_uris": { "minItems": 1 } }
    });
    schema.insert(
        "allOf".to_owned(),
        serde_json::json!([
            {
                "if": {
                    "required": ["grant_types"],
                    "properties": { "grant_types": grants_contain("authorization_code") }
                },
                "then": needs_redirect_uri
            },
            {
                "if": {
                    "required": ["token_endpoint_auth_method"],
                    "properties": { "token_endpoint_auth_method": { "const": "none" } }
                },
                "then": {
                    "properties": {
                        "grant_types": { "not": grants_contain("client_credentials") }
                    },
                    "if": {
                        "required": ["grant_types"],
                        "properties": { "grant_types": { "type": "array" } }
                    },
                    "else": needs_redirect_uri
                }
            }
        ]),
    );
}
