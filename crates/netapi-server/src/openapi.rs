//! `GET /openapi.json`: the OpenAPI 3.1 description of every endpoint, generated from the
//! handlers' `#[utoipa::path]` attributes and the request types' `ToSchema` derives.
//!
//! The handlers render JSON with `serde_json::json!` (see `views.rs`), so the response shapes
//! are described here by doc-only structs that mirror `views.rs` field for field. The
//! per-request parts (the issuer as server URL, the OAuth endpoints in the security schemes)
//! are filled in when the document is served.

#![allow(dead_code)] // The doc-only structs and functions exist for their attributes.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use netapi_core::Scope;
use netapi_core::model::GrantType;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response as OpenApiResponse, ResponseBuilder};
use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{
    AuthorizationCode, ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes,
    SecurityScheme,
};
use utoipa::openapi::server::Server;
use utoipa::openapi::{ContentBuilder, KnownFormat, Ref, RefOr, SchemaFormat};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, ToSchema};

use crate::AppState;

// ---------------------------------------------------------------------------------------------
// Schemas built from the code's own lists (scopes, grant types) and shared field shapes.

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

fn nullable(types: Type) -> SchemaType {
    SchemaType::from_iter([types, Type::Null])
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// `[A-Za-z0-9]` ids with a kind prefix (`usr_...`).
fn id_pattern(prefix: &str) -> String {
    format!("^{prefix}_[0-9A-Za-z]{{20}}$")
}

/// Printable text that is not blank (`normalize_name`): 1 to 100 characters, no control
/// characters, at least one that is not white space.
const NAME_PATTERN: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";
/// something@domain.tld (`normalize_email`): no white space or control characters, one `@`,
/// and a domain of dot-separated labels.
const EMAIL_PATTERN: &str =
    r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@.\s\x00-\x1f\x7f-\x9f]+(\.[^@.\s\x00-\x1f\x7f-\x9f]+)+$";
/// The same in printable ASCII.
const ASCII_EMAIL_PATTERN: &str =
    r"^[\x21-\x3f\x41-\x7e]+@[\x21-\x2d\x2f-\x3f\x41-\x7e]+(\.[\x21-\x2d\x2f-\x3f\x41-\x7e]+)+$";

/// An `https` redirect URI that `validate_redirect_uri` takes: in normal form (lower-case host
/// of letters and digits, no default port, no `.` or `..` path segment, nothing the URL
/// standard would percent-encode, a query only after a path), without user information or
/// fragment. It also takes `http` on a loopback host and private-use schemes; those are
/// described in words.
fn redirect_uri_pattern() -> String {
    // Printable ASCII but for space, `"`, `#`, `<`, `>`, `?`, `` ` ``, `{`, `}`, `/` and `\`.
    let path = r"!$%&'()*+,\-.0-9:;=@A-Z\[\]^_a-z|~";
    let path_no_dot = r"!$%&'()*+,\-0-9:;=@A-Z\[\]^_a-z|~";
    // Printable ASCII but for space, `"`, `#`, `<`, `>` and `'`.
    let query = r"!$%&()*+,\-./0-9:;=?@A-Z\[\\\]^_`a-z{|}~";
    let segment =
        format!("(?:[{path_no_dot}][{path}]*|\\.[{path_no_dot}][{path}]*|\\.\\.[{path}]+)?");
    format!("^https://[a-z][a-z0-9]*(\\.[a-z][a-z0-9]*)*((/{segment})+(\\?[{query}]*)?)?$")
}

fn name_field() -> ObjectBuilder {
    string()
        .min_length(Some(1))
        .max_length(Some(100))
        .pattern(Some(NAME_PATTERN))
}

pub(crate) fn name_schema() -> Schema {
    name_field()
        .description(Some("1 to 100 printable characters."))
        .into()
}

pub(crate) fn name_schema_nullable() -> Schema {
    name_field()
        .schema_type(nullable(Type::String))
        .description(Some(
            "1 to 100 printable characters; `null` or absent: unchanged.",
        ))
        .into()
}

/// The server counts at most 254 bytes of UTF-8, which a schema cannot count: the email is
/// either printable ASCII (up to 254 characters) or up to 63 characters of anything.
fn email_variants() -> [Schema; 2] {
    [
        string()
            .max_length(Some(254))
            .pattern(Some(ASCII_EMAIL_PATTERN))
            .into(),
        string()
            .max_length(Some(63))
            .pattern(Some(EMAIL_PATTERN))
            .into(),
    ]
}

const EMAIL_DESCRIPTION: &str = "something@domain.tld, at most 254 bytes of UTF-8, without white \
                                 space or control characters; stored lower-cased.";

pub(crate) fn email_schema() -> Schema {
    let mut schema = AnyOfBuilder::new().description(Some(EMAIL_DESCRIPTION));
    for variant in email_variants() {
        schema = schema.item(variant);
    }
    schema.into()
}

pub(crate) fn email_schema_nullable() -> Schema {
    let mut schema = AnyOfBuilder::new().description(Some(format!(
        "{EMAIL_DESCRIPTION} A new, unused one; `null` or absent: unchanged."
    )));
    for variant in email_variants() {
        schema = schema.item(variant);
    }
    schema
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .into()
}

pub(crate) fn password_schema() -> Schema {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .min_length(Some(8))
        .max_length(Some(128))
        .description(Some("8 to 128 characters; not a common password, and not containing the email's local part."))
        .into()
}

pub(crate) fn password_schema_nullable() -> Schema {
    string()
        .schema_type(nullable(Type::String))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .min_length(Some(8))
        .max_length(Some(128))
        .description(Some("8 to 128 characters; `null` or absent: unchanged."))
        .into()
}

pub(crate) fn current_password_schema() -> Schema {
    string()
        .schema_type(nullable(Type::String))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .max_length(Some(128))
        .description(Some(
            "The user's present password. Required with a new `email` or `password` (missing or \
             wrong: 400 naming `current_password`; wrong ones count as failed sign-ins), except \
             for an administrator changing another user. A successful change ends the user's \
             browser sessions and refresh tokens (and their access tokens).",
        ))
        .into()
}

pub(crate) fn role_schema_nullable() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .enum_values(Some(
            ["admin", "member"].into_iter().map(Some).chain([None]),
        ))
        .description(Some(
            "`admin` or `member`; changing it needs administrator powers.",
        ))
        .into()
}

pub(crate) fn scopes_array_nullable() -> Schema {
    ArrayBuilder::new()
        .schema_type(nullable(Type::Array))
        .items(Ref::from_schema_name("Scope"))
        .description(Some(
            "Scope names; default: the scopes of the credential making the request, which it \
             cannot exceed (403).",
        ))
        .into()
}

pub(crate) fn scope_string_nullable() -> Schema {
    string()
        .schema_type(nullable(Type::String))
        .pattern(Some(
            "^ *([a-z][a-z0-9_.:-]{0,63}( +[a-z][a-z0-9_.:-]{0,63})*)? *$",
        ))
        .description(Some(
            "Space-separated scope names: the most the client's tokens may carry, of Net API's \
             own (`Scope`) and of the client's `resources`. Default: the scopes of the \
             credential making the request, which it cannot exceed (403), and every scope it \
             holds on those resources.",
        ))
        .into()
}

pub(crate) fn future_time_nullable() -> Schema {
    string()
        .schema_type(nullable(Type::String))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .description(Some(
            "RFC 3339 date-time in the future; `null` or absent: the key never expires.",
        ))
        .into()
}

pub(crate) fn rate_limit_nullable() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::Integer))
        .minimum(Some(0))
        .maximum(Some(u32::MAX))
        .description(Some(
            "Requests per minute for this credential; `null`: the server's default. Only \
             administrators may raise it above the default or turn it off (0).",
        ))
        .into()
}

pub(crate) fn grace_period_nullable() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::Integer))
        .minimum(Some(0))
        .maximum(Some(2_592_000))
        .description(Some(
            "Seconds the old key keeps working (default 0: it stops at once; at most 30 days).",
        ))
        .into()
}

fn redirect_uri_items() -> ObjectBuilder {
    string()
        .pattern(Some(redirect_uri_pattern()))
        .description(Some(
            "Absolute, in normal form, without fragment or user information: `https`, `http` on a \
         loopback host, or a private-use scheme containing a dot (RFC 8252).",
        ))
}

pub(crate) fn redirect_uris() -> Schema {
    ArrayBuilder::new()
        .items(redirect_uri_items())
        .max_items(Some(20))
        .description(Some(
            "At most 20; compared exactly at authorization time. `authorization_code` needs at \
             least one.",
        ))
        .into()
}

pub(crate) fn redirect_uris_nullable() -> Schema {
    ArrayBuilder::new()
        .schema_type(nullable(Type::Array))
        .items(redirect_uri_items())
        .max_items(Some(20))
        .description(Some("At most 20; `null` or absent: unchanged."))
        .into()
}

pub(crate) fn grant_types_nullable() -> Schema {
    ArrayBuilder::new()
        .schema_type(nullable(Type::Array))
        .items(Ref::from_schema_name("GrantType"))
        .min_items(Some(1))
        .description(Some(
            "Default at creation: `[\"authorization_code\", \"refresh_token\"]` with redirect \
             URIs, else `[\"client_credentials\"]`. A public client cannot use \
             `client_credentials`.",
        ))
        .into()
}

pub(crate) fn response_types_nullable() -> Schema {
    ArrayBuilder::new()
        .schema_type(nullable(Type::Array))
        .items(string().enum_values(Some(["code"])))
        .description(Some("Only `code` is supported."))
        .into()
}

pub(crate) fn auth_method_nullable() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .enum_values(Some(
            ["client_secret_basic", "client_secret_post", "none"]
                .into_iter()
                .map(Some)
                .chain([None]),
        ))
        .description(Some(
            "Default `client_secret_basic`; `none` makes a public client (no secret, PKCE only).",
        ))
        .into()
}

fn date_time() -> ObjectBuilder {
    string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
}

fn date_time_schema() -> Schema {
    date_time().description(Some("RFC 3339, UTC.")).into()
}

fn date_time_nullable() -> Schema {
    date_time()
        .schema_type(nullable(Type::String))
        .description(Some("RFC 3339, UTC, or `null`."))
        .into()
}

fn user_id() -> Schema {
    string().pattern(Some(id_pattern("usr"))).into()
}

fn user_id_nullable() -> Schema {
    string()
        .schema_type(nullable(Type::String))
        .pattern(Some(id_pattern("usr")))
        .into()
}

fn key_id() -> Schema {
    string().pattern(Some(id_pattern("key"))).into()
}

fn client_id() -> Schema {
    string().pattern(Some(id_pattern("cli"))).into()
}

fn event_id() -> Schema {
    string().pattern(Some(id_pattern("evt"))).into()
}

fn scopes_array() -> Schema {
    ArrayBuilder::new()
        .items(Ref::from_schema_name("Scope"))
        .into()
}

fn grant_types_array() -> Schema {
    ArrayBuilder::new()
        .items(Ref::from_schema_name("GrantType"))
        .into()
}

fn rate_limit_out() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::Integer))
        .minimum(Some(0))
        .description(Some("Requests per minute; `null`: the server's default."))
        .into()
}

fn next_page_token() -> Schema {
    string()
        .schema_type(nullable(Type::String))
        .description(Some(
            "Pass as `page_token` for the next page; `null` on the last page.",
        ))
        .into()
}

fn any_value() -> Schema {
    Schema::Object(ObjectBuilder::new().build())
}

// ---------------------------------------------------------------------------------------------
// Response bodies (mirrors of `views.rs` and of the core's JSON).

/// A user; never its password hash (`views::user`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = User)]
pub struct UserView {
    #[schema(schema_with = user_id)]
    id: String,
    email: String,
    name: String,
    #[schema(inline)]
    role: RoleName,
    #[schema(schema_with = date_time_schema)]
    created_at: String,
    #[schema(schema_with = date_time_schema)]
    updated_at: String,
}

/// A role.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum RoleName {
    Admin,
    Member,
}

/// An API key as listed and read: never the key itself (`views::api_key`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ApiKey)]
pub struct ApiKeyView {
    #[schema(schema_with = key_id)]
    id: String,
    #[schema(schema_with = user_id)]
    user_id: String,
    name: String,
    /// The first 9 characters of the key.
    #[schema(pattern = "^napi_[0-9A-Za-z]{4}$")]
    prefix: String,
    /// The last 4 characters of the key.
    #[schema(pattern = "^[0-9A-Za-z]{4}$")]
    last_four: String,
    /// The identifier of the resource the key is for (the issuer: Net API's own).
    resource: String,
    /// Scope names of the key's resource.
    #[schema(schema_with = crate::resources::scope_names)]
    scopes: Vec<String>,
    /// The JSON object given at creation, or `null`.
    #[schema(value_type = Option<Object>, required = true)]
    metadata: Option<Value>,
    #[schema(schema_with = date_time_schema)]
    created_at: String,
    /// Kept to within about a minute.
    #[schema(schema_with = date_time_nullable, required = true)]
    last_used_at: Option<String>,
    /// `null` for a key that does not expire.
    #[schema(schema_with = date_time_nullable, required = true)]
    expires_at: Option<String>,
    #[schema(schema_with = rate_limit_out, required = true)]
    rate_limit_per_minute: Option<u32>,
}

/// An API key as created or rotated: with the key, shown this once.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewApiKey)]
pub struct NewApiKeyView {
    #[schema(schema_with = key_id)]
    id: String,
    #[schema(schema_with = user_id)]
    user_id: String,
    name: String,
    #[schema(pattern = "^napi_[0-9A-Za-z]{4}$")]
    prefix: String,
    #[schema(pattern = "^[0-9A-Za-z]{4}$")]
    last_four: String,
    /// The identifier of the resource the key is for (the issuer: Net API's own).
    resource: String,
    #[schema(schema_with = crate::resources::scope_names)]
    scopes: Vec<String>,
    /// The JSON object given at creation, or `null`.
    #[schema(value_type = Option<Object>, required = true)]
    metadata: Option<Value>,
    #[schema(schema_with = date_time_schema)]
    created_at: String,
    #[schema(schema_with = date_time_nullable, required = true)]
    last_used_at: Option<String>,
    #[schema(schema_with = date_time_nullable, required = true)]
    expires_at: Option<String>,
    #[schema(schema_with = rate_limit_out, required = true)]
    rate_limit_per_minute: Option<u32>,
    /// The API key. Shown only in this answer; store it now.
    #[schema(pattern = "^napi_[0-9A-Za-z]{38}$")]
    key: String,
}

/// An OAuth client, RFC 7591 field names (`views::client`). `client_secret` and
/// `client_secret_expires_at` only in the answer that creates a confidential client or rotates
/// its secret.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OAuthClient)]
pub struct ClientView {
    #[schema(schema_with = client_id)]
    client_id: String,
    client_name: String,
    #[schema(schema_with = user_id)]
    owner_id: String,
    redirect_uris: Vec<String>,
    #[schema(schema_with = grant_types_array)]
    grant_types: Vec<String>,
    /// `["code"]` when the client may use `authorization_code`, else `[]`.
    #[schema(inline)]
    response_types: Vec<ResponseType>,
    /// Space-separated: Net API's own scopes, then those of its resources.
    scope: String,
    /// Identifiers of the resources it may ask tokens for, besides Net API's own.
    resources: Vec<String>,
    #[schema(inline)]
    token_endpoint_auth_method: AuthMethod,
    /// Seconds since the epoch.
    #[schema(minimum = 0)]
    client_id_issued_at: i64,
    #[schema(schema_with = rate_limit_out, required = true)]
    rate_limit_per_minute: Option<u32>,
    /// Marked trusted by an administrator: `/oauth/authorize` redirects its errors at once;
    /// for other clients, errors before the user has seen the request are shown on a page
    /// with a link to the same redirect (RFC 9700 §4.11.2).
    trusted: bool,
    #[schema(schema_with = date_time_schema)]
    created_at: String,
    #[schema(schema_with = date_time_schema)]
    updated_at: String,
    /// Shown only in this answer; store it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^napcs_[0-9A-Za-z]{38}$", nullable = false)]
    client_secret: Option<String>,
    /// Always 0: the secret does not expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 0, nullable = false)]
    client_secret_expires_at: Option<i64>,
}

/// A response type.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum ResponseType {
    Code,
}

/// A client authentication method (RFC 7591).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    None,
}

/// A security event (`views::event`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AuditEvent)]
pub struct EventView {
    #[schema(schema_with = event_id)]
    id: String,
    /// E.g. `api_key.created`, `authentication.failed`.
    #[serde(rename = "type")]
    kind: String,
    /// `null` for events tied to no account.
    #[schema(schema_with = user_id_nullable, required = true)]
    user_id: Option<String>,
    /// The address the request came from; `null` for the `netapi admin` command.
    #[schema(required = true)]
    ip: Option<String>,
    /// Particulars; never a secret.
    #[schema(schema_with = any_value)]
    detail: Value,
    #[schema(schema_with = date_time_schema)]
    created_at: String,
}

/// `POST /v1/register`'s answer.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    user: UserView,
    api_key: NewApiKeyView,
}

/// A page of users.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserList {
    users: Vec<UserView>,
    #[schema(schema_with = next_page_token, required = true)]
    next_page_token: Option<String>,
}

/// A page of API keys.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyList {
    api_keys: Vec<ApiKeyView>,
    #[schema(schema_with = next_page_token, required = true)]
    next_page_token: Option<String>,
}

/// A page of OAuth clients.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthClientList {
    oauth_clients: Vec<ClientView>,
    #[schema(schema_with = next_page_token, required = true)]
    next_page_token: Option<String>,
}

/// A page of security events, newest first.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditEventList {
    audit_events: Vec<EventView>,
    #[schema(schema_with = next_page_token, required = true)]
    next_page_token: Option<String>,
}

/// The error envelope of `/v1` and every non-OAuth endpoint.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorEnvelope {
    error: ErrorObject,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorObject {
    code: crate::error::Code,
    /// For people; program against `code`.
    message: String,
    /// Also in the `X-Request-Id` header; finds the server's log line.
    #[schema(pattern = "^req_[0-9A-Za-z]{20}$")]
    request_id: String,
    /// Particulars: `{"field", "description"}` for a field that failed validation,
    /// `{"missing_scope"}` for a missing scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    details: Option<Vec<BTreeMap<String, Value>>>,
}

/// An OAuth error (RFC 6749 §5.2).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthError {
    #[schema(inline)]
    error: OAuthErrorCode,
    error_description: String,
}

/// The RFC 6749 error codes the token, revocation and introspection endpoints use.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    ServerError,
    TemporarilyUnavailable,
}

/// A bearer-token error of the UserInfo endpoint (RFC 6750 §3.1).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BearerError {
    #[schema(inline)]
    error: BearerErrorCode,
    error_description: String,
}

/// RFC 6750 error codes.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum BearerErrorCode {
    InvalidToken,
    InsufficientScope,
}

/// A token response (RFC 6749 §5.1).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenResponse {
    /// A JWT (RFC 9068, `typ: at+jwt`).
    access_token: String,
    #[schema(inline)]
    token_type: BearerType,
    /// Seconds until the access token expires.
    expires_in: i64,
    /// The granted scopes, space-separated.
    scope: String,
    /// A new refresh token (`authorization_code` and `refresh_token` grants, for clients that
    /// may use `refresh_token`); always store the newest.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^naprt_[0-9A-Za-z]{38}$", nullable = false)]
    refresh_token: Option<String>,
    /// OpenID Connect ID token, with the `openid` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    id_token: Option<String>,
}

/// `Bearer`.
#[derive(Serialize, ToSchema)]
enum BearerType {
    Bearer,
}

/// The answer of `/oauth/revoke`: an empty object.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevocationResponse {}

/// An introspection answer (RFC 7662): exactly `{"active": false}` for a token that is not
/// active.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Introspection {
    /// A token that is not active.
    Inactive(InactiveToken),
    /// An active access or refresh token.
    Active(ActiveToken),
    /// An active API key.
    ActiveKey(ActiveApiKey),
}

/// `{"active": false}`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InactiveToken {
    #[schema(schema_with = const_false)]
    active: bool,
}

fn const_false() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([false]))
        .into()
}

fn const_true() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([true]))
        .into()
}

/// The answer of `POST /v1/keys/verify` (`views::verification`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationView {
    /// True exactly when `code` is `VALID`.
    valid: bool,
    #[schema(inline)]
    code: VerifyCodeName,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = key_id, required = false)]
    key_id: Option<String>,
    /// The user the key acts for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = user_id, required = false)]
    subject: Option<String>,
    /// The identifier of the resource the key is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::resources::scope_names, required = false)]
    scopes: Option<Vec<String>>,
    /// Present with the key's facts; `null` for a key that never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = date_time_nullable, required = false)]
    expires_at: Option<String>,
    /// Present with the key's facts: its metadata, or `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, required = false)]
    metadata: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    ratelimit: Option<KeyRateLimit>,
}

/// The verified key's standing under its per-minute limit.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRateLimit {
    /// Requests allowed per minute.
    limit: u32,
    /// Requests left in this minute.
    remaining: u32,
    /// Seconds until the minute resets.
    reset: u64,
}

/// A verification's answer code.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum VerifyCodeName {
    Valid,
    NotFound,
    Expired,
    Revoked,
    WrongResource,
    InsufficientScope,
    RateLimited,
}

/// An active API key (only an admin's client learns about API keys).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActiveApiKey {
    #[schema(schema_with = const_true)]
    active: bool,
    scope: String,
    #[schema(schema_with = user_id)]
    sub: String,
    /// The identifier of the resource the key is for.
    aud: String,
    iss: String,
    /// When the key was made, seconds since the epoch.
    iat: i64,
    /// When the key expires, seconds since the epoch; absent when it never does.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    exp: Option<i64>,
    /// `api_key`.
    #[schema(schema_with = const_api_key)]
    token_type: String,
    #[schema(schema_with = key_id)]
    key_id: String,
    /// The key's metadata; absent when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object, nullable = false)]
    metadata: Option<Value>,
}

fn const_api_key() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["api_key"]))
        .into()
}

/// An active token's claims.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActiveToken {
    #[schema(schema_with = const_true)]
    active: bool,
    scope: String,
    #[schema(schema_with = client_id)]
    client_id: String,
    #[schema(schema_with = user_id)]
    sub: String,
    iss: String,
    /// Seconds since the epoch.
    iat: i64,
    /// Seconds since the epoch.
    exp: i64,
    /// `Bearer` for an access token, `refresh_token` for a refresh token.
    #[schema(inline)]
    token_type: TokenTypeName,
    /// Access tokens only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    aud: Option<String>,
    /// Access tokens only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    jti: Option<String>,
}

/// A token type.
#[derive(Serialize, ToSchema)]
enum TokenTypeName {
    Bearer,
    #[serde(rename = "refresh_token")]
    RefreshToken,
}

/// `resource` and `scope` of `/auth/forward` (read by `forward::query_values`).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForwardQuery {
    /// The identifier of the resource the original request is for; without it, Net API's own.
    pub resource: Option<String>,
    /// Space-separated scopes the credential must all hold.
    pub scope: Option<String>,
}

/// `?resource=` of the metadata endpoint.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetadataQuery {
    /// The resource's identifier; without it, Net API's own.
    pub resource: Option<String>,
}

/// RFC 9728 protected resource metadata (`forward::metadata`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProtectedResourceMetadata {
    /// The resource's identifier.
    resource: String,
    /// The issuer, which makes credentials for it.
    authorization_servers: Vec<String>,
    /// The scope names a credential for it may carry.
    scopes_supported: Vec<String>,
    /// Always `["header"]`: `Authorization: Bearer`.
    bearer_methods_supported: Vec<String>,
    /// A name for people.
    resource_name: String,
}

/// The public signing keys (RFC 7517).
#[derive(Serialize, ToSchema)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

/// A public key: Ed25519 (`OKP`) or P-256 (`EC`).
#[derive(Serialize, ToSchema)]
pub struct Jwk {
    /// `OKP` or `EC`.
    kty: String,
    /// `Ed25519` or `P-256`.
    crv: String,
    /// `EdDSA` or `ES256`.
    alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    usage: String,
    kid: String,
    /// base64url.
    x: String,
    /// base64url; `EC` keys only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    y: Option<String>,
}

/// Authorization server metadata (RFC 8414); also the OpenID Connect discovery document.
#[derive(Serialize, ToSchema)]
pub struct ServerMetadata {
    /// Equals the configured issuer exactly.
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    revocation_endpoint: String,
    introspection_endpoint: String,
    userinfo_endpoint: String,
    jwks_uri: String,
    registration_endpoint: String,
    #[schema(schema_with = scopes_array)]
    scopes_supported: Vec<String>,
    response_types_supported: Vec<String>,
    response_modes_supported: Vec<String>,
    #[schema(schema_with = grant_types_array)]
    grant_types_supported: Vec<String>,
    token_endpoint_auth_methods_supported: Vec<String>,
    revocation_endpoint_auth_methods_supported: Vec<String>,
    introspection_endpoint_auth_methods_supported: Vec<String>,
    code_challenge_methods_supported: Vec<String>,
    authorization_response_iss_parameter_supported: bool,
    subject_types_supported: Vec<String>,
    id_token_signing_alg_values_supported: Vec<String>,
    claims_supported: Vec<String>,
    prompt_values_supported: Vec<String>,
}

/// OpenID Connect UserInfo claims, limited by the token's scopes.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInfo {
    #[schema(schema_with = user_id)]
    sub: String,
    /// With `profile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    name: Option<String>,
    /// With `profile`; seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    updated_at: Option<i64>,
    /// With `email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    email: Option<String>,
    /// With `email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    email_verified: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// Form bodies of the OAuth endpoints.

/// `POST /oauth/token` (`application/x-www-form-urlencoded`; every parameter at most once).
/// A confidential client authenticates with HTTP Basic or with `client_id` and
/// `client_secret` here; a public client sends only `client_id`.
#[derive(Serialize, ToSchema)]
pub struct TokenForm {
    #[schema(schema_with = grant_type_ref)]
    grant_type: String,
    /// `authorization_code`: the code from the redirect.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    code: Option<String>,
    /// `authorization_code`: the `redirect_uri` of the authorization request.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier (RFC 7636).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    code_verifier: Option<String>,
    /// `refresh_token`: the refresh token.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    refresh_token: Option<String>,
    /// Space-separated scopes (`client_credentials`, `refresh_token`: a narrower set).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    scope: Option<String>,
    /// `client_secret_post` and public clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    client_id: Option<String>,
    /// `client_secret_post`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    client_secret: Option<String>,
}

fn grant_type_ref() -> RefOr<Schema> {
    Ref::from_schema_name("GrantType").into()
}

/// `POST /oauth/revoke` and `POST /oauth/introspect` (`application/x-www-form-urlencoded`;
/// every parameter at most once). The client authenticates as at the token endpoint.
#[derive(Serialize, ToSchema)]
pub struct TokenTargetForm {
    /// The access or refresh token.
    #[schema(min_length = 1)]
    token: String,
    /// `access_token` or `refresh_token`; a hint only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    token_type_hint: Option<String>,
    /// `client_secret_post` and public clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    client_id: Option<String>,
    /// `client_secret_post`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    client_secret: Option<String>,
}

/// `GET /oauth/authorize` query parameters (RFC 6749 §4.1.1, RFC 7636, OpenID Connect). Only
/// `client_id` and `redirect_uri` are checked before redirecting: a bad value of any other
/// parameter is answered with a redirect carrying `error` (RFC 6749 §4.1.2.1), so each is
/// described as text with the values that succeed.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuthorizeQuery {
    /// The client; an unknown one gets the 400 error page, never a redirect.
    #[param(required = true)]
    client_id: String,
    /// Must equal one of the client's redirect URIs exactly; may be left out when the client
    /// has exactly one. Another value gets the 400 error page.
    redirect_uri: Option<String>,
    /// `code`; anything else (or nothing) is `unsupported_response_type` (`invalid_request`).
    response_type: Option<String>,
    /// Space-separated scopes, within the client's; default: every scope of the client.
    /// Otherwise `invalid_scope`.
    scope: Option<String>,
    /// Returned unchanged with the redirect; at most 512 bytes.
    state: Option<String>,
    /// PKCE S256 challenge: 43 characters of base64url. Required for public clients and, by
    /// default, for every client.
    code_challenge: Option<String>,
    /// `S256`.
    code_challenge_method: Option<String>,
    /// OpenID Connect nonce, copied into the ID token; at most 512 bytes.
    nonce: Option<String>,
    /// `none`, `login` or `consent`, space-separated (`none` alone).
    prompt: Option<String>,
    /// A non-negative number of seconds: the longest ago the user may have signed in.
    max_age: Option<String>,
    /// `query`.
    response_mode: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Reusable error responses, referenced by the operations.

/// A reusable error response: its component name, status, description and extra headers.
type ErrorResponse = (
    &'static str,
    u16,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// Every error response of the envelope.
const ERRORS: &[ErrorResponse] = &[
    (
        "InvalidArgument",
        400,
        "INVALID_ARGUMENT: malformed JSON, a field that fails validation, a bad query parameter \
         (`details` names the field).",
        &[],
    ),
    (
        "Unauthenticated",
        401,
        "UNAUTHENTICATED: no credential, or an unknown, malformed, revoked or expired one.",
        &[(
            "WWW-Authenticate",
            "`Bearer realm=\"netapi\"`, with `error=\"invalid_token\"` and \
             `error_description` for a credential that was presented but is bad (RFC 6750).",
        )],
    ),
    (
        "PermissionDenied",
        403,
        "PERMISSION_DENIED: a missing scope (named in `details`, with `WWW-Authenticate: Bearer \
         error=\"insufficient_scope\"`) or something only an administrator may do.",
        &[],
    ),
    (
        "NotFound",
        404,
        "NOT_FOUND: no such resource, or one of another user.",
        &[],
    ),
    (
        "MethodNotAllowed",
        405,
        "METHOD_NOT_ALLOWED: the path exists but not with this method.",
        &[("Allow", "The methods the path supports.")],
    ),
    (
        "DeadlineExceeded",
        408,
        "DEADLINE_EXCEEDED: the request was not received and handled in time.",
        &[],
    ),
    (
        "AlreadyExists",
        409,
        "ALREADY_EXISTS: the email is already registered.",
        &[],
    ),
    (
        "PayloadTooLarge",
        413,
        "PAYLOAD_TOO_LARGE: the body is over the limit (64 KiB by default).",
        &[],
    ),
    (
        "UnsupportedMediaType",
        415,
        "UNSUPPORTED_MEDIA_TYPE: a body that is not `application/json`.",
        &[],
    ),
    (
        "ResourceExhausted",
        429,
        "RESOURCE_EXHAUSTED: too many failed authentications or registrations from this \
         address, or the credential's request rate limit.",
        &[("Retry-After", "Seconds to wait before trying again.")],
    ),
    (
        "Internal",
        500,
        "INTERNAL: an unexpected failure; quote the `request_id`.",
        &[],
    ),
    (
        "Unavailable",
        503,
        "UNAVAILABLE: storage down or not writable, the server is shutting down, or (at \
         registration) the password-hashing queue is full, then with `Retry-After`.",
        &[],
    ),
];

fn request_id_header() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(string().pattern(Some("^req_[0-9A-Za-z]{20}$")))
        .description(Some("The request id; every response carries it."))
        .build()
}

fn error_response(description: &str, headers: &[(&str, &str)]) -> OpenApiResponse {
    let mut builder = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
            .build(),
    );
    for (name, text) in headers {
        let schema = if *name == "Retry-After" {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
        } else {
            string()
        };
        builder = builder.header(
            *name,
            HeaderBuilder::new()
                .schema(schema)
                .description(Some(*text))
                .build(),
        );
    }
    builder.build()
}

macro_rules! error_set {
    ($(#[$doc:meta])* $name:ident: $($component:literal),+) => {
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
                [$($component),+]
                    .into_iter()
                    .filter_map(|component| {
                        ERRORS.iter().find(|e| e.0 == component).map(|e| {
                            (e.1.to_string(), Ref::from_response_name(component).into())
                        })
                    })
                    .collect()
            }
        }
    };
}

error_set!(
    /// What any authenticated `/v1` call can get.
    AuthErrors: "Unauthenticated", "PermissionDenied", "ResourceExhausted", "Internal", "Unavailable"
);
error_set!(
    /// What a JSON body can get.
    BodyErrors: "InvalidArgument", "DeadlineExceeded", "PayloadTooLarge", "UnsupportedMediaType"
);
error_set!(
    /// A bad query parameter or argument.
    InvalidErrors: "InvalidArgument"
);
error_set!(
    /// Storage not answering.
    UnavailableErrors: "Unavailable"
);
error_set!(
    /// A resource named in the path that is not there (or not the caller's).
    NotFoundErrors: "NotFound"
);
error_set!(
    /// Something that is already there.
    ConflictErrors: "AlreadyExists"
);
error_set!(
    /// Storage trouble.
    ServiceErrors: "Internal", "Unavailable"
);
error_set!(
    /// A per-source limit (registrations).
    SourceLimitErrors: "ResourceExhausted"
);

fn page_response(description: &str, content_type: &str) -> RefOr<OpenApiResponse> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                content_type,
                ContentBuilder::new().schema(Some(string())).build(),
            )
            .build(),
    )
}

/// The error pages any page can answer with (`web::error::error_response`).
pub struct PageErrors;

impl IntoResponses for PageErrors {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([
            (
                "400".to_owned(),
                page_response(
                    "An error page: the request cannot be carried out.",
                    "text/html",
                ),
            ),
            (
                "429".to_owned(),
                page_response("An error page: too many attempts.", "text/html"),
            ),
            (
                "500".to_owned(),
                page_response("An error page.", "text/html"),
            ),
            (
                "503".to_owned(),
                page_response("An error page: storage is not answering.", "text/html"),
            ),
        ])
    }
}

/// What every portal form can answer besides its own 200 page: the way to sign in, the CSRF
/// refusal, the error pages and the form rejections.
pub struct PortalFormErrors;

impl IntoResponses for PortalFormErrors {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        let mut responses = BTreeMap::from([
            (
                "303".to_owned(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description("Not signed in: to the sign-in page.")
                        .header(
                            "Location",
                            HeaderBuilder::new()
                                .schema(string())
                                .description(Some("`/login?return_to=/portal`"))
                                .build(),
                        )
                        .build(),
                ),
            ),
            (
                "403".to_owned(),
                page_response(
                    "An error page: the CSRF token does not match the session.",
                    "text/html",
                ),
            ),
        ]);
        responses.extend(PageErrors::responses());
        responses.extend(FormErrors::responses());
        responses
    }
}

/// What a form body that cannot be read gets (axum's `Form` rejections).
pub struct FormErrors;

impl IntoResponses for FormErrors {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([
            (
                "415".to_owned(),
                page_response(
                    "The body is not `application/x-www-form-urlencoded`.",
                    "text/plain",
                ),
            ),
            (
                "422".to_owned(),
                page_response("A form field is missing or malformed.", "text/plain"),
            ),
        ])
    }
}

/// The OAuth error responses of the token, revocation and introspection endpoints.
pub struct OAuthErrors;

impl IntoResponses for OAuthErrors {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        let oauth = |description: &str, headers: &[(&str, &str)]| {
            let mut builder = ResponseBuilder::new().description(description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("OAuthError")))
                    .build(),
            );
            for (name, text) in headers {
                builder = builder.header(
                    *name,
                    HeaderBuilder::new()
                        .schema(string())
                        .description(Some(*text))
                        .build(),
                );
            }
            RefOr::T(builder.build())
        };
        let no_store = [("Cache-Control", "`no-store`"), ("Pragma", "`no-cache`")];
        BTreeMap::from([
            (
                "400".to_owned(),
                oauth(
                    "An RFC 6749 §5.2 error: `invalid_request`, `invalid_grant`, \
                     `invalid_client` (without HTTP Basic), `unauthorized_client`, \
                     `unsupported_grant_type`, `invalid_scope`.",
                    &no_store,
                ),
            ),
            (
                "401".to_owned(),
                oauth(
                    "`invalid_client` after HTTP Basic client authentication.",
                    &[
                        no_store[0],
                        no_store[1],
                        (
                            "WWW-Authenticate",
                            "`Basic realm=\"netapi\", charset=\"UTF-8\"`",
                        ),
                    ],
                ),
            ),
            (
                "429".to_owned(),
                oauth(
                    "Too many failed client authentications from this address or for this \
                     client.",
                    &[
                        no_store[0],
                        no_store[1],
                        ("Retry-After", "Seconds to wait before trying again."),
                    ],
                ),
            ),
            ("500".to_owned(), oauth("`server_error`.", &no_store)),
            (
                "503".to_owned(),
                oauth("`temporarily_unavailable`.", &no_store),
            ),
        ])
    }
}

// ---------------------------------------------------------------------------------------------
// Operations whose handlers live where this module may not put attributes (lib.rs), or have
// no body of their own.

/// Liveness.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    responses((status = 200, description = "The process runs.", body = String, content_type = "text/plain", example = "ok"))
)]
fn healthz() {}

/// Readiness.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Storage answers.", body = String, content_type = "text/plain", example = "ready"),
        UnavailableErrors,
    )
)]
fn readyz() {}

/// The favicon: none.
#[utoipa::path(
    get,
    path = "/favicon.ico",
    tag = "browser",
    operation_id = "favicon",
    responses((status = 204, description = "There is no favicon."))
)]
fn favicon() {}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 description of every endpoint.", body = Object))
)]
pub async fn spec(State(state): State<AppState>) -> Response {
    Json(document(&state.api.settings().issuer)).into_response()
}

// ---------------------------------------------------------------------------------------------
// The document.

#[derive(OpenApi)]
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
    paths(
        crate::v1::register,
        crate::v1::list_users,
        crate::v1::me,
        crate::v1::update_me,
        crate::v1::delete_me,
        crate::v1::get_user,
        crate::v1::update_user,
        crate::v1::delete_user,
        crate::v1::list_keys,
        crate::v1::create_key,
        crate::v1::get_key,
        crate::v1::revoke_key,
        crate::v1::rotate_key,
        crate::v1::verify_key,
        crate::v1::list_clients,
        crate::v1::create_client,
        crate::v1::get_client,
        crate::v1::update_client,
        crate::v1::delete_client,
        crate::v1::rotate_client_secret,
        crate::v1::list_events,
        crate::resources::list_resources,
        crate::resources::create_resource,
        crate::resources::get_resource,
        crate::resources::update_resource,
        crate::resources::delete_resource,
        crate::resources::list_grants,
        crate::resources::set_grant,
        crate::oauth::token,
        crate::oauth::revoke,
        crate::oauth::introspect,
        crate::oauth::jwks,
        crate::oauth::userinfo,
        crate::oauth::authorization_server_metadata,
        crate::oauth::openid_configuration,
        crate::web::consent::authorize,
        crate::web::consent::decide,
        crate::web::home,
        crate::web::stylesheet,
        favicon,
        crate::web::login::login_form,
        crate::web::login::login,
        crate::web::login::logout,
        crate::web::register::register_form,
        crate::web::register::register,
        crate::web::portal::portal,
        crate::web::portal::create_key,
        crate::web::portal::rotate_key,
        crate::web::portal::revoke_key,
        crate::web::portal::create_client,
        crate::web::portal::rotate_client_secret,
        crate::web::portal::delete_client,
        crate::web::portal::set_redirect_uris,
        crate::web::portal::withdraw_authorization,
        crate::forward::forward,
        crate::forward::forward_with_path,
        crate::forward::metadata,
        crate::metrics::render,
        healthz,
        readyz,
        spec,
    ),
    components(schemas(ErrorEnvelope, OAuthError, BearerError)),
    modifiers(&Common),
    tags(
        (name = "users", description = "Registration and users."),
        (name = "api-keys", description = "API keys."),
        (name = "oauth-clients", description = "OAuth 2.0 clients (RFC 7591 field names)."),
        (name = "audit", description = "Security events."),
        (name = "resources", description = "The operator's APIs that Net API guards besides its own (RFC 8707 resources), and the scopes of theirs administrators grant users."),
        (name = "oauth", description = "OAuth 2.0 and OpenID Connect endpoints (RFC 6749, 7009, 7662, 8414)."),
        (name = "forward-auth", description = "Checking a credential for a reverse proxy in front of an API (nginx `auth_request`, Traefik `ForwardAuth`, Caddy `forward_auth`, Envoy `ext_authz`), and RFC 9728 protected resource metadata. 401, 403 and 429 carry the error envelope; a `resource` Net API does not guard is a 403 naming it."),
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
        if let Some(body) = openapi
            .paths
            .paths
            .get_mut("/v1/api-keys/{id}/rotate")
            .and_then(|item| item.post.as_mut())
            .and_then(|post| post.request_body.as_mut())
        {
            // The body may be left out (`OptionalJson`), but `null` is not a `RotateBody`.
            body.required = Some(utoipa::openapi::Required::False);
            body.content = BTreeMap::from([(
                "application/json".to_owned(),
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("RotateBody")))
                    .build(),
            )]);
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
         flow needs PKCE (S256)."
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
    if let Some(shared) = document
        .pointer_mut("/components/responses")
        .and_then(Value::as_object_mut)
    {
        shared.values_mut().for_each(mark);
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
                responses.values_mut().for_each(mark);
            }
        }
    }
}

/// The whole document for a server whose issuer is `issuer`.
pub fn document(issuer: &str) -> Value {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.servers = Some(vec![Server::new(issuer.trim_end_matches('/'))]);
    if let Some(components) = doc.components.as_mut() {
        components
            .security_schemes
            .insert("oauth2".to_owned(), oauth2_scheme(issuer));
    }
    let mut value = serde_json::to_value(&doc).unwrap_or(Value::Null);
    require_headers(&mut value);
    add_client_rules(&mut value);
    value
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
