//! OAuth 2.0 over real HTTP: the token endpoint (client credentials, refresh), revocation,
//! introspection, discovery, access tokens as JWTs, client management, brute-force limits and
//! signing-key rotation. The `oauth2` crate plays a real client wherever it can.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use ed25519_dalek::{Signer, Verifier};
use hmac::Mac;
use netapi_core::Scopes;
use netapi_core::ids::new_id;
use netapi_core::model::RefreshToken;
use netapi_core::secret::{SecretHasher, SecretKind, generate};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AccessToken, AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet, IntrospectionUrl,
    RequestTokenError, RevocationUrl, StandardRevocableToken, TokenIntrospectionResponse,
    TokenResponse, TokenUrl,
};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::e2e;
use crate::helpers::{Backend, TestApp, basic_header, expect_error, json_with};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A registered client and its owner.
#[derive(Debug, Clone)]
struct TestClient {
    id: String,
    secret: String,
    owner_id: String,
    owner_key: String,
}

type OAuthClient =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointSet, EndpointSet, EndpointSet>;

fn unique_email(tag: &str) -> String {
    format!(
        "{tag}-{}@example.com",
        netapi_core::secret::random_base62(8).to_lowercase()
    )
}

/// Registers an owner and a confidential client for it.
async fn client_with(app: &TestApp, grants: &[&str], scope: &str, method: &str) -> TestClient {
    let (user, key) = app.register(&unique_email("owner")).await;
    let owner_key = key["key"].as_str().unwrap().to_owned();
    let body = app
        .create_client(
            &owner_key,
            json!({
                "client_name": "Test client",
                "redirect_uris": ["https://app.example.com/callback"],
                "grant_types": grants,
                "scope": scope,
                "token_endpoint_auth_method": method,
            }),
        )
        .await;
    TestClient {
        id: body["client_id"].as_str().unwrap().to_owned(),
        secret: body["client_secret"].as_str().unwrap().to_owned(),
        owner_id: user["id"].as_str().unwrap().to_owned(),
        owner_key,
    }
}

/// A `client_credentials` client of an administrator.
async fn admin_client(app: &TestApp) -> TestClient {
    let email = unique_email("admin");
    let owner_key = app.admin_key(&email).await;
    let body = app
        .create_client(
            &owner_key,
            json!({
                "client_name": "Admin tool",
                "grant_types": ["client_credentials"],
                "scope": "users:read",
                "token_endpoint_auth_method": "client_secret_basic",
            }),
        )
        .await;
    let owner: Value = app
        .get("/v1/users/me", &owner_key)
        .await
        .json()
        .await
        .unwrap();
    TestClient {
        id: body["client_id"].as_str().unwrap().to_owned(),
        secret: body["client_secret"].as_str().unwrap().to_owned(),
        owner_id: owner["id"].as_str().unwrap().to_owned(),
        owner_key,
    }
}

/// A `client_credentials` client (HTTP Basic) with the given scope.
async fn cc_client(app: &TestApp, scope: &str) -> TestClient {
    client_with(app, &["client_credentials"], scope, "client_secret_basic").await
}

/// A client that may refresh (and use client credentials).
async fn refresh_client(app: &TestApp) -> TestClient {
    client_with(
        app,
        &["refresh_token", "client_credentials"],
        "users:read keys:read",
        "client_secret_basic",
    )
    .await
}

fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::ClientBuilder::new()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `oauth2` crate refuses a revocation endpoint that is not `https` (RFC 7009 §2), and
/// the test server speaks plain HTTP on loopback: the revocation URL is configured as
/// `https://` and this adapter sends the request over `http://` to the same address.
#[derive(Debug)]
struct PlainHttp(oauth2::reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for PlainHttp {
    type Error = oauth2::HttpClientError<oauth2::reqwest::Error>;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<oauth2::HttpResponse, Self::Error>>
                + Send
                + Sync
                + 'c,
        >,
    >;

    fn call(&'c self, mut request: oauth2::HttpRequest) -> Self::Future {
        let plain = request.uri().to_string().replacen("https://", "http://", 1);
        *request.uri_mut() = plain.parse().expect("a valid URI");
        oauth2::AsyncHttpClient::call(&self.0, request)
    }
}

fn oauth(app: &TestApp, client: &TestClient, auth: AuthType) -> OAuthClient {
    BasicClient::new(ClientId::new(client.id.clone()))
        .set_client_secret(ClientSecret::new(client.secret.clone()))
        .set_auth_type(auth)
        .set_token_uri(TokenUrl::new(app.url("/oauth/token")).unwrap())
        .set_introspection_url(IntrospectionUrl::new(app.url("/oauth/introspect")).unwrap())
        .set_revocation_url(
            RevocationUrl::new(app.url("/oauth/revoke").replacen("http://", "https://", 1))
                .unwrap(),
        )
}

/// A `client_credentials` access token through the `oauth2` crate.
async fn cc_token(app: &TestApp, client: &TestClient) -> String {
    oauth(app, client, AuthType::BasicAuth)
        .exchange_client_credentials()
        .request_async(&http())
        .await
        .unwrap()
        .access_token()
        .secret()
        .clone()
}

/// Stores a fresh refresh-token grant for the client's owner, as the authorization-code
/// flow would; returns `(refresh token, family id)`.
async fn mint_refresh(app: &TestApp, client: &TestClient, scope: &str) -> (String, String) {
    let secret = generate(SecretKind::RefreshToken);
    let settings = app.api.settings();
    let now = app.api.now();
    let family_id = new_id("fam");
    app.api
        .store()
        .insert_refresh_token(&RefreshToken {
            hash: SecretHasher::new(&settings.pepper).hash(secret.expose()),
            family_id: family_id.clone(),
            client_id: client.id.clone(),
            user_id: client.owner_id.clone(),
            scopes: Scopes::parse_space_separated(scope).unwrap(),
            issued_at: now,
            expires_at: now + settings.refresh_token_ttl,
            family_expires_at: now + settings.refresh_token_max_ttl,
            auth_time: now,
            amr: netapi_core::model::Amr::Password,
            rotated_at: None,
            revoked_at: None,
            successor_key: Some(netapi_core::secret::DerivationKey::random()),
            resource_id: None,
            resource_scopes: Vec::new(),
            sid: None,
            dpop_jkt: None,
        })
        .await
        .unwrap();
    (secret.expose().to_owned(), family_id)
}

/// A refresh through the `oauth2` crate: `Ok((access, refresh))` or the RFC error code.
async fn refresh_with(
    app: &TestApp,
    client: &TestClient,
    token: &str,
) -> Result<(String, String), BasicErrorResponseType> {
    let refresh = oauth2::RefreshToken::new(token.to_owned());
    match oauth(app, client, AuthType::BasicAuth)
        .exchange_refresh_token(&refresh)
        .request_async(&http())
        .await
    {
        Ok(response) => Ok((
            response.access_token().secret().clone(),
            response
                .refresh_token()
                .expect("a new refresh token")
                .secret()
                .clone(),
        )),
        Err(RequestTokenError::ServerResponse(error)) => Err(error.error().clone()),
        Err(other) => panic!("refresh failed unexpectedly: {other:?}"),
    }
}

/// Percent-encodes every byte (a stricter encoder than any client would use).
fn percent_all(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// `POST /oauth/<endpoint>` with a form, optionally HTTP Basic (encoded as given).
async fn post_form(
    app: &TestApp,
    endpoint: &str,
    authorization: Option<String>,
    form: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Value) {
    let mut request = app.http.post(app.url(endpoint)).form(form);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, headers, body)
}

fn basic_of(client: &TestClient) -> Option<String> {
    Some(basic_header(&client.id, &client.secret))
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// Checks an RFC 6749 §5.2 error: status, exact keys, code, no-store.
fn assert_oauth_error(
    (status, headers, body): &(StatusCode, HeaderMap, Value),
    expected_status: StatusCode,
    code: &str,
) {
    assert_eq!(*status, expected_status, "body: {body}");
    assert_eq!(body["error"], code, "body: {body}");
    let keys: Vec<&String> = body.as_object().expect("a JSON object").keys().collect();
    assert_eq!(keys.len(), 2, "only error and error_description: {body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "body: {body}"
    );
    assert!(header(headers, "content-type").starts_with("application/json"));
    assert_eq!(header(headers, "cache-control"), "no-store");
}

fn jwt_parts(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS compact serialization");
    let decode =
        |part: &str| -> Value { serde_json::from_slice(&B64.decode(part).unwrap()).unwrap() };
    (decode(parts[0]), decode(parts[1]))
}

fn sign_ed25519(key: &ed25519_dalek::SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature.to_bytes()))
}

async fn jwks(app: &TestApp) -> Value {
    let response = app
        .http
        .get(app.url("/oauth/jwks.json"))
        .send()
        .await
        .unwrap();
    json_with(response, StatusCode::OK).await
}

fn jwk_kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Expects `/v1/users/me` to refuse the token with 401; returns the error body.
async fn refused(app: &TestApp, token: &str) -> Value {
    let response = app.get("/v1/users/me", token).await;
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "challenge: {challenge}");
    expect_error(response, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await
}

async fn accepted(app: &TestApp, token: &str) -> Value {
    json_with(app.get("/v1/users/me", token).await, StatusCode::OK).await
}

/// The claims of `token` re-signed by the server's own current key, after `change`.
fn resigned_by_server(app: &TestApp, token: &str, change: impl FnOnce(&mut Value)) -> String {
    let (_, mut claims) = jwt_parts(token);
    change(&mut claims);
    app.api.key_ring().sign("at+jwt", &claims).unwrap()
}

// ---------------------------------------------------------------------------------------
// The token endpoint
// ---------------------------------------------------------------------------------------

crate::e2e!(
    token_success_response_follows_the_contract,
    client_credentials_with_http_basic,
    client_credentials_with_client_secret_post,
    client_credentials_issues_no_refresh_token,
    errors_have_the_rfc_shape,
    invalid_client_after_basic_is_401_with_challenge,
    invalid_client_in_body_is_400,
    unknown_grant_type_is_unsupported_grant_type,
    missing_grant_type_is_invalid_request,
    basic_and_body_secret_together_is_invalid_request,
    repeated_parameter_is_invalid_request,
    basic_credentials_are_form_urldecoded,
    non_form_body_is_invalid_request,
    grant_not_allowed_is_unauthorized_client,
    scope_beyond_the_client_is_invalid_scope,
    narrower_scope_is_honoured,
    access_token_acts_for_the_client_owner,
    access_token_is_limited_to_its_scopes,
);

async fn token_success_response_follows_the_contract(app: TestApp) {
    let client = cc_client(&app, "users:read keys:read").await;
    let (status, headers, body) = post_form(
        &app,
        "/oauth/token",
        basic_of(&client),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "body: {body}");
    assert!(header(&headers, "content-type").starts_with("application/json"));
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(header(&headers, "pragma"), "no-cache");
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        body["expires_in"].is_u64(),
        "expires_in must be an integer: {body}"
    );
    assert_eq!(body["expires_in"].as_u64(), Some(900));
    assert_eq!(body["scope"], "users:read keys:read");
    assert!(
        body["access_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
}

async fn client_credentials_with_http_basic(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let response = oauth(&app, &client, AuthType::BasicAuth)
        .exchange_client_credentials()
        .request_async(&http())
        .await
        .unwrap();
    assert_eq!(
        *response.token_type(),
        oauth2::basic::BasicTokenType::Bearer
    );
    assert_eq!(
        response.expires_in(),
        Some(std::time::Duration::from_secs(900))
    );
    let scopes: Vec<String> = response
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes, ["users:read"]);
    accepted(&app, response.access_token().secret()).await;
}

async fn client_credentials_with_client_secret_post(app: TestApp) {
    let client = client_with(
        &app,
        &["client_credentials"],
        "users:read",
        "client_secret_post",
    )
    .await;
    let response = oauth(&app, &client, AuthType::RequestBody)
        .exchange_client_credentials()
        .request_async(&http())
        .await
        .unwrap();
    assert_eq!(
        response.expires_in(),
        Some(std::time::Duration::from_secs(900))
    );
    let me = accepted(&app, response.access_token().secret()).await;
    assert_eq!(me["id"], client.owner_id.as_str());
}

async fn client_credentials_issues_no_refresh_token(app: TestApp) {
    // Even a client that may refresh gets no refresh token from client_credentials.
    let client = refresh_client(&app).await;
    let response = oauth(&app, &client, AuthType::BasicAuth)
        .exchange_client_credentials()
        .request_async(&http())
        .await
        .unwrap();
    assert!(response.refresh_token().is_none());
    let (status, _, body) = post_form(
        &app,
        "/oauth/token",
        basic_of(&client),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("refresh_token").is_none(), "body: {body}");
    assert!(body.get("id_token").is_none(), "body: {body}");
}

async fn errors_have_the_rfc_shape(app: TestApp) {
    let client = refresh_client(&app).await;
    let answer = post_form(
        &app,
        "/oauth/token",
        basic_of(&client),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "naprt_nonsense"),
        ],
    )
    .await;
    assert_oauth_error(&answer, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(header(&answer.1, "pragma"), "no-cache");
    // The oauth2 crate parses it as the same error.
    assert_eq!(
        refresh_with(&app, &client, "naprt_nonsense").await,
        Err(BasicErrorResponseType::InvalidGrant)
    );
}

async fn invalid_client_after_basic_is_401_with_challenge(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let wrong = generate(SecretKind::ClientSecret);
    let answer = post_form(
        &app,
        "/oauth/token",
        Some(basic_header(&client.id, wrong.expose())),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_oauth_error(&answer, StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(
        header(&answer.1, "www-authenticate").starts_with("Basic"),
        "challenge: {:?}",
        answer.1.get("www-authenticate")
    );
    // An unknown client id too.
    let answer = post_form(
        &app,
        "/oauth/token",
        Some(basic_header("cli_unknown", &client.secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_oauth_error(&answer, StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(header(&answer.1, "www-authenticate").starts_with("Basic"));
    // And through the oauth2 crate.
    let mut bad = client.clone();
    bad.secret = wrong.expose().to_owned();
    let error = oauth(&app, &bad, AuthType::BasicAuth)
        .exchange_client_credentials()
        .request_async(&http())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RequestTokenError::ServerResponse(e) if *e.error() == BasicErrorResponseType::InvalidClient),
        "{error:?}"
    );
}

async fn invalid_client_in_body_is_400(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let wrong = generate(SecretKind::ClientSecret);
    let answer = post_form(
        &app,
        "/oauth/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client.id),
            ("client_secret", wrong.expose()),
        ],
    )
    .await;
    assert_oauth_error(&answer, StatusCode::BAD_REQUEST, "invalid_client");
}

async fn unknown_grant_type_is_unsupported_grant_type(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    for grant in [
        "password",
        "urn:ietf:params:oauth:grant-type:saml2-bearer",
        "implicit",
    ] {
        let answer = post_form(
            &app,
            "/oauth/token",
            basic_of(&client),
            &[("grant_type", grant)],
        )
        .await;
        assert_oauth_error(&answer, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
}

async fn missing_grant_type_is_invalid_request(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let answer = post_form(
        &app,
        "/oauth/token",
        basic_of(&client),
        &[("scope", "users:read")],
    )
    .await;
    assert_oauth_error(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    let answer = post_form(
        &app,
        "/oauth/token",
        basic_of(&client),
        &[("grant_type", "")],
    )
    .await;
    assert_oauth_error(&answer, StatusCode::BAD_REQUEST, "invalid_request");
}

async fn basic_and_body_secret_together_is_invalid_request(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let answer = post_form(
        &app,
        "/oauth/token",
        basic_of(&client),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client.id),
            ("client_secret", &client.secret),
        ],
    )
    .await;
    assert_oauth_error(&answer, StatusCode::BAD_REQUEST, "invalid_request");
}

async fn repeated_parameter_is_invalid_request(app: TestApp) {
    let client = cc_client(&app, "users:read keys:read").await;
    let answer = post_form(
        &app,
        "/oauth/token",
        basic_of(&client),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "users:read"),
            ("scope", "keys:read"),
        ],
    )
    .await;
    assert_oauth_error(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    let answer = post_form(
        &app,
        "/oauth/token",
        basic_of(&client),
        &[
            ("grant_type", "client_credentials"),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_oauth_error(&answer, StatusCode::BAD_REQUEST, "invalid_request");
}

async fn basic_credentials_are_form_urldecoded(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    // Every byte of both halves percent-encoded, as RFC 6749 §2.3.1 allows.
    let encoded = basic_header(&percent_all(&client.id), &percent_all(&client.secret));
    let (status, _, body) = post_form(
        &app,
        "/oauth/token",
        Some(encoded),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "body: {body}");
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["client_id"], client.id.as_str());
    // One character of each (the `_` after the prefix) encoded, lower-case hex.
    let id = client.id.replacen('_', "%5f", 1);
    let secret = client.secret.replacen('_', "%5F", 1);
    let (status, _, body) = post_form(
        &app,
        "/oauth/token",
        Some(basic_header(&id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "body: {body}");
    // A '+' decodes to a space, so a secret with an appended '+' is a different secret.
    let answer = post_form(
        &app,
        "/oauth/token",
        Some(basic_header(&client.id, &format!("{}+", client.secret))),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_oauth_error(&answer, StatusCode::UNAUTHORIZED, "invalid_client");
}

async fn non_form_body_is_invalid_request(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .header("authorization", basic_header(&client.id, &client.secret))
        .json(&json!({ "grant_type": "client_credentials" }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body: Value = response.json().await.unwrap();
    assert_oauth_error(
        &(status, headers, body),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .header("authorization", basic_header(&client.id, &client.secret))
        .header("content-type", "text/plain")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body: Value = response.json().await.unwrap();
    assert_oauth_error(
        &(status, headers, body),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
}

async fn grant_not_allowed_is_unauthorized_client(app: TestApp) {
    let code_only = client_with(
        &app,
        &["authorization_code"],
        "users:read",
        "client_secret_basic",
    )
    .await;
    let answer = post_form(
        &app,
        "/oauth/token",
        basic_of(&code_only),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_oauth_error(&answer, StatusCode::BAD_REQUEST, "unauthorized_client");
    let cc_only = cc_client(&app, "users:read").await;
    let answer = post_form(
        &app,
        "/oauth/token",
        basic_of(&cc_only),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", generate(SecretKind::RefreshToken).expose()),
        ],
    )
    .await;
    assert_oauth_error(&answer, StatusCode::BAD_REQUEST, "unauthorized_client");
}

async fn scope_beyond_the_client_is_invalid_scope(app: TestApp) {
    let client = cc_client(&app, "keys:read").await;
    for scope in [
        "users:read",
        "keys:read users:write",
        "admin",
        "no-such-scope",
    ] {
        let answer = post_form(
            &app,
            "/oauth/token",
            basic_of(&client),
            &[("grant_type", "client_credentials"), ("scope", scope)],
        )
        .await;
        assert_oauth_error(&answer, StatusCode::BAD_REQUEST, "invalid_scope");
    }
    let error = oauth(&app, &client, AuthType::BasicAuth)
        .exchange_client_credentials()
        .add_scope(oauth2::Scope::new("users:write".to_owned()))
        .request_async(&http())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RequestTokenError::ServerResponse(e) if *e.error() == BasicErrorResponseType::InvalidScope),
        "{error:?}"
    );
}

async fn narrower_scope_is_honoured(app: TestApp) {
    let client = cc_client(&app, "users:read keys:read clients:read").await;
    let response = oauth(&app, &client, AuthType::BasicAuth)
        .exchange_client_credentials()
        .add_scope(oauth2::Scope::new("keys:read".to_owned()))
        .request_async(&http())
        .await
        .unwrap();
    let scopes: Vec<String> = response
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes, ["keys:read"]);
    let token = response.access_token().secret();
    let (_, claims) = jwt_parts(token);
    assert_eq!(claims["scope"], "keys:read");
    app.get("/v1/api-keys", token)
        .await
        .error_for_status()
        .unwrap();
    expect_error(
        app.get("/v1/users/me", token).await,
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
    )
    .await;
}

async fn access_token_acts_for_the_client_owner(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let token = cc_token(&app, &client).await;
    let me = accepted(&app, &token).await;
    assert_eq!(me["id"], client.owner_id.as_str());
    let by_key = accepted(&app, &client.owner_key).await;
    assert_eq!(me, by_key);
}

async fn access_token_is_limited_to_its_scopes(app: TestApp) {
    let client = cc_client(&app, "keys:read").await;
    let token = cc_token(&app, &client).await;
    let body = expect_error(
        app.get("/v1/users", &token).await,
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
    )
    .await;
    assert!(
        body.to_string().contains("users:read"),
        "the missing scope is named: {body}"
    );
    let listed = json_with(app.get("/v1/api-keys", &token).await, StatusCode::OK).await;
    assert!(listed["api_keys"].is_array(), "body: {listed}");
    // Writing keys is not among its scopes either.
    expect_error(
        app.post_json("/v1/api-keys", &token, json!({ "name": "sneaky" }))
            .await,
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Access tokens as JWTs (RFC 9068)
// ---------------------------------------------------------------------------------------

crate::e2e!(
    jwt_header_and_claims,
    jwt_verifies_with_the_published_key,
    jwt_alg_none_is_refused,
    jwt_hs256_with_the_public_key_is_refused,
    jwt_unknown_kid_is_refused,
    jwt_tampered_payload_is_refused,
    jwt_signed_by_a_foreign_key_is_refused,
    jwt_wrong_audience_is_refused,
    jwt_wrong_issuer_is_refused,
    jwt_expired_is_refused,
);

async fn jwt_header_and_claims(app: TestApp) {
    let client = cc_client(&app, "users:read keys:read").await;
    let before = app.api.now();
    let token = cc_token(&app, &client).await;
    let (header, claims) = jwt_parts(&token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    let kid = header["kid"].as_str().expect("kid");
    assert!(jwk_kids(&jwks(&app).await).contains(&kid.to_owned()));
    assert_eq!(claims["iss"], app.base.as_str());
    assert_eq!(claims["aud"], app.base.as_str());
    assert_eq!(claims["sub"], client.owner_id.as_str());
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(claims["scope"], "users:read keys:read");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let iat = claims["iat"].as_i64().expect("integer iat");
    let exp = claims["exp"].as_i64().expect("integer exp");
    assert_eq!(iat, before);
    assert_eq!(exp, iat + 900);
    // Every token has its own jti.
    let (_, other) = jwt_parts(&cc_token(&app, &client).await);
    assert_ne!(other["jti"], claims["jti"]);
}

async fn jwt_verifies_with_the_published_key(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let token = cc_token(&app, &client).await;
    let (header, _) = jwt_parts(&token);
    let set = jwks(&app).await;
    let jwk = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the token's key is published");
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert!(jwk.get("d").is_none(), "no private part is published");
    let x: [u8; 32] = B64
        .decode(jwk["x"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let public = ed25519_dalek::VerifyingKey::from_bytes(&x).unwrap();
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let signature: [u8; 64] = B64.decode(signature).unwrap().try_into().unwrap();
    public
        .verify(
            signed.as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&signature),
        )
        .expect("the signature verifies with the JWKS key");
    // A flipped byte does not.
    let mut altered = signed.as_bytes().to_vec();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    assert!(
        public
            .verify(&altered, &ed25519_dalek::Signature::from_bytes(&signature))
            .is_err()
    );
}

async fn jwt_alg_none_is_refused(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let token = cc_token(&app, &client).await;
    accepted(&app, &token).await;
    let (header, claims) = jwt_parts(&token);
    for alg in ["none", "None", "NONE"] {
        let forged_header = json!({ "alg": alg, "typ": "at+jwt", "kid": header["kid"] });
        let unsigned = format!(
            "{}.{}.",
            B64.encode(forged_header.to_string()),
            B64.encode(claims.to_string())
        );
        refused(&app, &unsigned).await;
        // With the original signature left on, too.
        let signature = token.rsplit('.').next().unwrap();
        refused(&app, &format!("{}{signature}", unsigned)).await;
    }
}

async fn jwt_hs256_with_the_public_key_is_refused(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let token = cc_token(&app, &client).await;
    let (header, claims) = jwt_parts(&token);
    let set = jwks(&app).await;
    let x = set["keys"][0]["x"].as_str().unwrap().to_owned();
    let public = B64.decode(&x).unwrap();
    let forged_header = json!({ "alg": "HS256", "typ": "at+jwt", "kid": header["kid"] });
    let input = format!(
        "{}.{}",
        B64.encode(forged_header.to_string()),
        B64.encode(claims.to_string())
    );
    // The raw public key bytes, and the base64url text of it, as HMAC keys.
    for secret in [public.as_slice(), x.as_bytes()] {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(input.as_bytes());
        let forged = format!("{input}.{}", B64.encode(mac.finalize().into_bytes()));
        refused(&app, &forged).await;
    }
}

async fn jwt_unknown_kid_is_refused(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let token = cc_token(&app, &client).await;
    let (header, claims) = jwt_parts(&token);
    let signature = token.rsplit('.').next().unwrap();
    // The server's signature under a header naming another kid.
    for kid in [json!("sig_doesnotexist00000000"), json!(""), Value::Null] {
        let mut changed = header.clone();
        changed["kid"] = kid;
        let forged = format!(
            "{}.{}.{signature}",
            B64.encode(changed.to_string()),
            B64.encode(claims.to_string())
        );
        refused(&app, &forged).await;
    }
    // A key of our own under an unknown kid.
    let own = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let forged = sign_ed25519(
        &own,
        &json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": "attacker" }),
        &claims,
    );
    refused(&app, &forged).await;
}

async fn jwt_tampered_payload_is_refused(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let token = cc_token(&app, &client).await;
    let parts: Vec<&str> = token.split('.').collect();
    let (_, mut claims) = jwt_parts(&token);
    claims["scope"] = json!("users:read users:write keys:write clients:write audit:read");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(claims.to_string()),
        parts[2]
    );
    refused(&app, &tampered).await;
    let (_, mut claims) = jwt_parts(&token);
    claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 86_400);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(claims.to_string()),
        parts[2]
    );
    refused(&app, &tampered).await;
    // A truncated signature, and no signature.
    refused(
        &app,
        &format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20]),
    )
    .await;
    refused(&app, &format!("{}.{}.", parts[0], parts[1])).await;
    refused(&app, &format!("{}.{}", parts[0], parts[1])).await;
    accepted(&app, &token).await;
}

async fn jwt_signed_by_a_foreign_key_is_refused(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let token = cc_token(&app, &client).await;
    let (header, claims) = jwt_parts(&token);
    let own = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let published: Vec<String> = jwks(&app).await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["x"].as_str().map(str::to_owned))
        .collect();
    assert!(!published.contains(&B64.encode(own.verifying_key().as_bytes())));
    // The server's kid, perfect claims, our key.
    refused(&app, &sign_ed25519(&own, &header, &claims)).await;
    // Wrong audience and wrong issuer, our key.
    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("https://other.example.com");
    refused(&app, &sign_ed25519(&own, &header, &wrong_aud)).await;
    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!("https://evil.example.com");
    refused(&app, &sign_ed25519(&own, &header, &wrong_iss)).await;
}

async fn jwt_wrong_audience_is_refused(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let token = cc_token(&app, &client).await;
    // Control: the server's own key with unchanged claims is accepted.
    accepted(&app, &resigned_by_server(&app, &token, |_| {})).await;
    for aud in [
        json!("https://other.example.com"),
        json!(format!("{}/", app.base)),
        json!(client.id),
        json!([]),
    ] {
        let forged = resigned_by_server(&app, &token, |c| c["aud"] = aud.clone());
        refused(&app, &forged).await;
    }
    let forged = resigned_by_server(&app, &token, |c| {
        c.as_object_mut().unwrap().remove("aud");
    });
    refused(&app, &forged).await;
}

async fn jwt_wrong_issuer_is_refused(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let token = cc_token(&app, &client).await;
    for iss in [
        json!("https://evil.example.com"),
        json!(format!("{}/", app.base)),
        json!(app.base.to_uppercase()),
    ] {
        let forged = resigned_by_server(&app, &token, |c| c["iss"] = iss.clone());
        refused(&app, &forged).await;
    }
    let forged = resigned_by_server(&app, &token, |c| {
        c.as_object_mut().unwrap().remove("iss");
    });
    refused(&app, &forged).await;
}

async fn jwt_expired_is_refused(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let token = cc_token(&app, &client).await;
    app.clock.advance(899);
    accepted(&app, &token).await;
    // At exp exactly, no leeway.
    app.clock.advance(1);
    let body = refused(&app, &token).await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("expired"), "message: {message}");
    // A token re-signed with an expiry in the past is refused the same way.
    let fresh = cc_token(&app, &client).await;
    let now = app.api.now();
    let past = resigned_by_server(&app, &fresh, |c| {
        c["iat"] = json!(now - 100);
        c["exp"] = json!(now - 1);
    });
    let body = refused(&app, &past).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    // And one issued in the future (beyond the 5 s leeway) is not accepted.
    let future = resigned_by_server(&app, &fresh, |c| {
        c["iat"] = json!(now + 60);
        c["exp"] = json!(now + 960);
    });
    refused(&app, &future).await;
}

// ---------------------------------------------------------------------------------------
// Refresh tokens
// ---------------------------------------------------------------------------------------

crate::e2e!(
    settings = crate::webhooks::allow_private;
    refresh_reuse_reaches_webhooks,
);

crate::e2e!(
    refresh_rotates_on_every_use,
    refresh_reuse_after_grace_revokes_the_family,
    refresh_reuse_within_grace_gets_the_same_successor,
    concurrent_refreshes_never_fail_badly,
    refresh_narrower_scope,
    refresh_by_another_client_is_invalid_grant,
);

async fn refresh_rotates_on_every_use(app: TestApp) {
    let client = refresh_client(&app).await;
    let (first, _) = mint_refresh(&app, &client, "users:read keys:read").await;
    let mut seen = vec![first.clone()];
    let mut current = first;
    for _ in 0..3 {
        let (access, next) = refresh_with(&app, &client, &current).await.unwrap();
        assert!(next.starts_with("naprt_"));
        assert!(!seen.contains(&next), "a new refresh token every time");
        let me = accepted(&app, &access).await;
        assert_eq!(me["id"], client.owner_id.as_str());
        let (_, claims) = jwt_parts(&access);
        assert_eq!(claims["scope"], "users:read keys:read");
        seen.push(next.clone());
        current = next;
    }
    // The raw response follows the token-endpoint rules and carries the refresh token.
    let (status, headers, body) = post_form(
        &app,
        "/oauth/token",
        basic_of(&client),
        &[("grant_type", "refresh_token"), ("refresh_token", &current)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "body: {body}");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(header(&headers, "pragma"), "no-cache");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"].as_u64(), Some(900));
    assert_eq!(body["scope"], "users:read keys:read");
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| !seen.iter().any(|s| s == t))
    );
}

async fn refresh_reuse_after_grace_revokes_the_family(app: TestApp) {
    let client = refresh_client(&app).await;
    let (old, family_id) = mint_refresh(&app, &client, "users:read").await;
    let (access, new) = refresh_with(&app, &client, &old).await.unwrap();
    assert_ne!(old, new);
    accepted(&app, &access).await;
    app.clock.advance(11);
    assert_eq!(
        refresh_with(&app, &client, &old).await,
        Err(BasicErrorResponseType::InvalidGrant)
    );
    // The whole family is gone: the new refresh token and the access token it came with.
    assert_eq!(
        refresh_with(&app, &client, &new).await,
        Err(BasicErrorResponseType::InvalidGrant)
    );
    refused(&app, &access).await;
    let events = app
        .api
        .store()
        .list_audit_events(None, None, 100)
        .await
        .unwrap();
    let reuse = events
        .iter()
        .find(|e| e.kind == "refresh_token.reuse_detected")
        .expect("a reuse_detected audit event");
    assert_eq!(reuse.user_id.as_deref(), Some(client.owner_id.as_str()));
    assert!(
        reuse.detail.contains(&family_id),
        "detail: {}",
        reuse.detail
    );
    // A client_credentials token of the same client is not part of the family.
    accepted(&app, &cc_token(&app, &client).await).await;
}

async fn refresh_reuse_reaches_webhooks(app: TestApp) {
    use crate::webhooks::{assert_signed, create_webhook, next, start_receiver};
    let admin = app.admin_key(&unique_email("admin")).await;
    let (url, mut rx) = start_receiver(&[]).await;
    let webhook = create_webhook(&app, &admin, &url, &["refresh_token.reuse_detected"]).await;
    let client = refresh_client(&app).await;
    let (old, family_id) = mint_refresh(&app, &client, "users:read").await;
    refresh_with(&app, &client, &old).await.unwrap();
    app.clock.advance(11);
    assert_eq!(
        refresh_with(&app, &client, &old).await,
        Err(BasicErrorResponseType::InvalidGrant)
    );
    app.api
        .deliver_webhooks(&netapi_server::webhooks::HttpWebhookClient)
        .await
        .unwrap();
    let received = next(&mut rx).await;
    assert_signed(&received, webhook["secret"].as_str().unwrap());
    let event = received.json();
    assert_eq!(event["type"], "refresh_token.reuse_detected");
    assert_eq!(event["data"]["client_id"], client.id.as_str());
    assert_eq!(event["data"]["family_id"], family_id.as_str());
    assert_eq!(event["data"]["user_id"], client.owner_id.as_str());
    assert!(!received.body.contains(&old), "never the token itself");
}

/// Within the grace period a repeated refresh is answered with the same successor, so that
/// two holders of one token cannot grow two live branches; once that successor has been used,
/// the old token is a replay and the family dies.
async fn refresh_reuse_within_grace_gets_the_same_successor(app: TestApp) {
    let client = refresh_client(&app).await;
    let (old, _) = mint_refresh(&app, &client, "users:read").await;
    let (first_access, first) = refresh_with(&app, &client, &old).await.unwrap();
    app.clock.advance(9);
    let (access, second) = refresh_with(&app, &client, &old).await.unwrap();
    assert_eq!(first, second, "the same successor within the grace period");
    accepted(&app, &access).await;
    assert_eq!(live_refresh_tokens(&app).await.len(), 1, "one live branch");
    // The successor is used; the old token, still within its grace period, is now a replay.
    let (next_access, next) = refresh_with(&app, &client, &first).await.unwrap();
    assert_eq!(
        refresh_with(&app, &client, &old).await,
        Err(BasicErrorResponseType::InvalidGrant)
    );
    assert_eq!(
        refresh_with(&app, &client, &next).await,
        Err(BasicErrorResponseType::InvalidGrant)
    );
    for token in [&first_access, &access, &next_access] {
        refused(&app, token).await;
    }
}

async fn concurrent_refreshes_never_fail_badly(app: TestApp) {
    let client = refresh_client(&app).await;
    let (token, family_id) = mint_refresh(&app, &client, "users:read").await;
    // Another grant of the same client, which must stay untouched.
    let (bystander, bystander_family) = mint_refresh(&app, &client, "users:read").await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let url = app.url("/oauth/token");
        let authorization = basic_header(&client.id, &client.secret);
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let response = reqwest::Client::new()
                .post(url)
                .header("authorization", authorization)
                .form(&[("grant_type", "refresh_token"), ("refresh_token", &token)])
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }));
    }
    let mut issued = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            StatusCode::OK => issued.push(body["refresh_token"].as_str().unwrap().to_owned()),
            StatusCode::BAD_REQUEST => assert_eq!(body["error"], "invalid_grant", "body: {body}"),
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(!issued.is_empty(), "at least the first refresh succeeds");
    // Every success within the grace period got the same successor: one live branch.
    issued.sort();
    issued.dedup();
    assert_eq!(issued.len(), 1, "issued: {issued:?}");
    let hasher = SecretHasher::new(&app.api.settings().pepper);
    for new in &issued {
        let stored = app
            .api
            .store()
            .get_refresh_token(&hasher.hash(new))
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(stored.family_id, family_id);
        assert!(stored.revoked_at.is_none() && stored.rotated_at.is_none());
    }
    // Every live token in storage is one of those, or the bystander.
    let live = live_refresh_tokens(&app).await;
    assert_eq!(live.len(), issued.len() + 1, "live: {live:?}");
    assert!(
        live.iter()
            .all(|f| *f == family_id || *f == bystander_family)
    );
    assert_eq!(live.iter().filter(|f| **f == bystander_family).count(), 1);
    refresh_with(&app, &client, &bystander).await.unwrap();
}

/// The family of every refresh token neither rotated nor revoked.
async fn live_refresh_tokens(app: &TestApp) -> Vec<String> {
    let sql =
        "SELECT family_id FROM refresh_tokens WHERE rotated_at IS NULL AND revoked_at IS NULL";
    match app.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
            let rows: Vec<(String,)> = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows.into_iter().map(|r| r.0).collect()
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
            let rows: Vec<(String,)> = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows.into_iter().map(|r| r.0).collect()
        }
    }
}

async fn refresh_narrower_scope(app: TestApp) {
    let client = refresh_client(&app).await;
    let (token, _) = mint_refresh(&app, &client, "users:read keys:read").await;
    let (status, _, body) = post_form(
        &app,
        "/oauth/token",
        basic_of(&client),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &token),
            ("scope", "keys:read"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "body: {body}");
    assert_eq!(body["scope"], "keys:read");
    // The grant keeps its original scope: the next refresh may ask for all of it again.
    let next = body["refresh_token"].as_str().unwrap();
    let (access, _) = refresh_with(&app, &client, next).await.unwrap();
    assert_eq!(jwt_parts(&access).1["scope"], "users:read keys:read");
    // But never more than the grant.
    let (token, _) = mint_refresh(&app, &client, "keys:read").await;
    let answer = post_form(
        &app,
        "/oauth/token",
        basic_of(&client),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &token),
            ("scope", "users:read"),
        ],
    )
    .await;
    assert_oauth_error(&answer, StatusCode::BAD_REQUEST, "invalid_scope");
}

async fn refresh_by_another_client_is_invalid_grant(app: TestApp) {
    let client = refresh_client(&app).await;
    let thief = refresh_client(&app).await;
    let (token, _) = mint_refresh(&app, &client, "users:read").await;
    assert_eq!(
        refresh_with(&app, &thief, &token).await,
        Err(BasicErrorResponseType::InvalidGrant)
    );
    // The rightful client can still use it.
    refresh_with(&app, &client, &token).await.unwrap();
}

e2e!(settings = |s: &mut netapi_core::Settings| {
        s.refresh_token_ttl = 100;
    }; refresh_token_idle_expiry);

async fn refresh_token_idle_expiry(app: TestApp) {
    let client = refresh_client(&app).await;
    let (token, _) = mint_refresh(&app, &client, "users:read").await;
    app.clock.advance(99);
    let (_, next) = refresh_with(&app, &client, &token).await.unwrap();
    // The successor lives refresh_token_ttl from its own issue.
    app.clock.advance(99);
    let (_, last) = refresh_with(&app, &client, &next).await.unwrap();
    app.clock.advance(100);
    assert_eq!(
        refresh_with(&app, &client, &last).await,
        Err(BasicErrorResponseType::InvalidGrant)
    );
}

e2e!(settings = |s: &mut netapi_core::Settings| {
        s.refresh_token_ttl = 100;
        s.refresh_token_max_ttl = 150;
    }; refresh_token_family_absolute_expiry);

async fn refresh_token_family_absolute_expiry(app: TestApp) {
    let client = refresh_client(&app).await;
    let (token, _) = mint_refresh(&app, &client, "users:read").await;
    app.clock.advance(90);
    let (_, next) = refresh_with(&app, &client, &token).await.unwrap();
    // Idle lifetime would allow until 190, the family ends at 150.
    app.clock.advance(61);
    assert_eq!(
        refresh_with(&app, &client, &next).await,
        Err(BasicErrorResponseType::InvalidGrant)
    );
}

// ---------------------------------------------------------------------------------------
// Revocation (RFC 7009)
// ---------------------------------------------------------------------------------------

crate::e2e!(
    revoke_unknown_tokens_is_200,
    revoke_requires_client_authentication,
    revoking_an_access_token_takes_effect_at_once,
    revoking_a_refresh_token_revokes_its_family,
    revoking_another_clients_token_does_nothing,
);

async fn revoke_unknown_tokens_is_200(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let unknown_refresh = generate(SecretKind::RefreshToken);
    for token in ["garbage", "naprt_short", unknown_refresh.expose(), "a.b.c"] {
        let (status, headers, body) = post_form(
            &app,
            "/oauth/revoke",
            basic_of(&client),
            &[("token", token)],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "body: {body}");
        assert!(header(&headers, "content-type").starts_with("application/json"));
        assert!(body.is_object(), "body: {body}");
    }
    oauth(&app, &client, AuthType::BasicAuth)
        .revoke_token(StandardRevocableToken::AccessToken(AccessToken::new(
            "not-a-token".to_owned(),
        )))
        .unwrap()
        .request_async(&PlainHttp(http()))
        .await
        .unwrap();
}

async fn revoke_requires_client_authentication(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let token = cc_token(&app, &client).await;
    let (status, _, body) = post_form(&app, "/oauth/revoke", None, &[("token", &token)]).await;
    assert!(
        status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST,
        "status {status}"
    );
    assert_eq!(body["error"], "invalid_client", "body: {body}");
    let wrong = generate(SecretKind::ClientSecret);
    let answer = post_form(
        &app,
        "/oauth/revoke",
        Some(basic_header(&client.id, wrong.expose())),
        &[("token", &token)],
    )
    .await;
    assert_oauth_error(&answer, StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(header(&answer.1, "www-authenticate").starts_with("Basic"));
    // The token was not revoked by either attempt.
    accepted(&app, &token).await;
}

async fn revoking_an_access_token_takes_effect_at_once(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let token = cc_token(&app, &client).await;
    let other = cc_token(&app, &client).await;
    accepted(&app, &token).await;
    oauth(&app, &client, AuthType::BasicAuth)
        .revoke_token(StandardRevocableToken::AccessToken(AccessToken::new(
            token.clone(),
        )))
        .unwrap()
        .request_async(&PlainHttp(http()))
        .await
        .unwrap();
    refused(&app, &token).await;
    // Only that token.
    accepted(&app, &other).await;
    let events = app
        .api
        .store()
        .list_audit_events(None, None, 100)
        .await
        .unwrap();
    assert!(events.iter().any(|e| e.kind == "access_token.revoked"));
}

async fn revoking_a_refresh_token_revokes_its_family(app: TestApp) {
    let client = refresh_client(&app).await;
    let (first, _) = mint_refresh(&app, &client, "users:read").await;
    let (access, current) = refresh_with(&app, &client, &first).await.unwrap();
    accepted(&app, &access).await;
    let (other_grant, _) = mint_refresh(&app, &client, "users:read").await;
    oauth(&app, &client, AuthType::BasicAuth)
        .revoke_token(StandardRevocableToken::RefreshToken(
            oauth2::RefreshToken::new(current.clone()),
        ))
        .unwrap()
        .request_async(&PlainHttp(http()))
        .await
        .unwrap();
    assert_eq!(
        refresh_with(&app, &client, &current).await,
        Err(BasicErrorResponseType::InvalidGrant)
    );
    assert_eq!(
        refresh_with(&app, &client, &first).await,
        Err(BasicErrorResponseType::InvalidGrant)
    );
    // The access token of the family is refused too; another grant is untouched.
    refused(&app, &access).await;
    refresh_with(&app, &client, &other_grant).await.unwrap();
}

async fn revoking_another_clients_token_does_nothing(app: TestApp) {
    let client = refresh_client(&app).await;
    let stranger = refresh_client(&app).await;
    let token = cc_token(&app, &client).await;
    let (refresh, _) = mint_refresh(&app, &client, "users:read").await;
    for t in [&token, &refresh] {
        let (status, _, _) =
            post_form(&app, "/oauth/revoke", basic_of(&stranger), &[("token", t)]).await;
        assert_eq!(status, StatusCode::OK);
    }
    accepted(&app, &token).await;
    refresh_with(&app, &client, &refresh).await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Introspection (RFC 7662)
// ---------------------------------------------------------------------------------------

crate::e2e!(
    introspection_requires_client_authentication,
    introspection_of_an_active_token,
    introspection_of_inactive_tokens,
    introspection_of_refresh_tokens,
);

async fn introspection_requires_client_authentication(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let token = cc_token(&app, &client).await;
    let (status, _, body) = post_form(&app, "/oauth/introspect", None, &[("token", &token)]).await;
    assert!(
        status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST,
        "status {status}"
    );
    assert_eq!(body["error"], "invalid_client", "body: {body}");
    assert!(body.get("active").is_none());
    let wrong = generate(SecretKind::ClientSecret);
    let answer = post_form(
        &app,
        "/oauth/introspect",
        Some(basic_header(&client.id, wrong.expose())),
        &[("token", &token)],
    )
    .await;
    assert_oauth_error(&answer, StatusCode::UNAUTHORIZED, "invalid_client");
    // A bearer token is not client authentication.
    let response = app
        .http
        .post(app.url("/oauth/introspect"))
        .bearer_auth(&token)
        .form(&[("token", &token)])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}

async fn introspection_of_an_active_token(app: TestApp) {
    let client = cc_client(&app, "users:read keys:read").await;
    let token = cc_token(&app, &client).await;
    let (_, claims) = jwt_parts(&token);
    let (status, headers, body) = post_form(
        &app,
        "/oauth/introspect",
        basic_of(&client),
        &[("token", &token)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(header(&headers, "content-type").starts_with("application/json"));
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(body["active"], true);
    assert!(body["exp"].is_i64() && body["iat"].is_i64(), "body: {body}");
    assert_eq!(body["exp"], claims["exp"]);
    assert_eq!(body["iat"], claims["iat"]);
    assert_eq!(body["scope"], "users:read keys:read");
    assert_eq!(body["client_id"], client.id.as_str());
    assert_eq!(body["sub"], client.owner_id.as_str());
    assert_eq!(body["iss"], app.base.as_str());
    // Another member's application learns nothing of it (nor of a refresh token, below).
    let other = cc_client(&app, "users:read").await;
    let (_, _, body) = post_form(
        &app,
        "/oauth/introspect",
        basic_of(&other),
        &[("token", &token)],
    )
    .await;
    assert_eq!(body, json!({ "active": false }));
    // Through the oauth2 crate, by an administrator's application, which may ask about any.
    let admin = admin_client(&app).await;
    let answer = oauth(&app, &admin, AuthType::BasicAuth)
        .introspect(&AccessToken::new(token.clone()))
        .request_async(&http())
        .await
        .unwrap();
    assert!(answer.active());
    assert_eq!(
        answer.client_id().map(|c| c.as_str()),
        Some(client.id.as_str())
    );
    assert_eq!(answer.sub(), Some(client.owner_id.as_str()));
    assert_eq!(answer.exp().map(|t| t.timestamp()), claims["exp"].as_i64());
    assert_eq!(answer.iat().map(|t| t.timestamp()), claims["iat"].as_i64());
    let scopes: Vec<String> = answer
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes, ["users:read", "keys:read"]);
}

async fn introspection_of_inactive_tokens(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let inactive = json!({ "active": false });
    let ask = |token: String| {
        let app = &app;
        let client = &client;
        async move {
            let (status, _, body) = post_form(
                app,
                "/oauth/introspect",
                basic_of(client),
                &[("token", &token)],
            )
            .await;
            assert_eq!(status, StatusCode::OK, "body: {body}");
            body
        }
    };
    // Garbage of several shapes.
    for garbage in ["garbage", "a.b.c", "naprt_nope", "napi_nope"] {
        assert_eq!(ask(garbage.to_owned()).await, inactive);
    }
    // A forged token (our own key).
    let token = cc_token(&app, &client).await;
    let (header_json, claims) = jwt_parts(&token);
    let forged = sign_ed25519(
        &ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
        &header_json,
        &claims,
    );
    assert_eq!(ask(forged).await, inactive);
    // Revoked.
    let (status, _, _) = post_form(
        &app,
        "/oauth/revoke",
        basic_of(&client),
        &[("token", &token)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ask(token).await, inactive);
    // Expired.
    let token = cc_token(&app, &client).await;
    assert_eq!(ask(token.clone()).await["active"], true);
    app.clock.advance(901);
    assert_eq!(ask(token).await, inactive);
    let answer = oauth(&app, &client, AuthType::BasicAuth)
        .introspect(&AccessToken::new("garbage".to_owned()))
        .request_async(&http())
        .await
        .unwrap();
    assert!(!answer.active());
}

async fn introspection_of_refresh_tokens(app: TestApp) {
    let client = refresh_client(&app).await;
    let (token, _) = mint_refresh(&app, &client, "users:read").await;
    let (status, _, body) = post_form(
        &app,
        "/oauth/introspect",
        basic_of(&client),
        &[("token", &token)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["active"], true, "body: {body}");
    assert!(body["exp"].is_i64() && body["iat"].is_i64(), "body: {body}");
    assert_eq!(body["client_id"], client.id.as_str());
    assert_eq!(body["sub"], client.owner_id.as_str());
    let other = cc_client(&app, "users:read").await;
    let (_, _, body) = post_form(
        &app,
        "/oauth/introspect",
        basic_of(&other),
        &[("token", &token)],
    )
    .await;
    assert_eq!(body, json!({ "active": false }));
    let admin = admin_client(&app).await;
    let (_, _, body) = post_form(
        &app,
        "/oauth/introspect",
        basic_of(&admin),
        &[("token", &token)],
    )
    .await;
    assert_eq!(body["active"], true, "body: {body}");
    // A rotated one is no longer active.
    let (_, next) = refresh_with(&app, &client, &token).await.unwrap();
    let (_, _, body) = post_form(
        &app,
        "/oauth/introspect",
        basic_of(&client),
        &[("token", &token)],
    )
    .await;
    assert_eq!(body, json!({ "active": false }));
    let (_, _, body) = post_form(
        &app,
        "/oauth/introspect",
        basic_of(&client),
        &[("token", &next)],
    )
    .await;
    assert_eq!(body["active"], true);
}

// ---------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------

crate::e2e!(
    discovery_documents,
    id_token_at_hash_follows_the_signing_algorithm
);
e2e!(settings = |s| {
    s.signing_algorithm = netapi_core::model::SigningAlgorithm::Es256;
}; es256_is_named_in_discovery);
e2e!(settings = |s| {
    s.signing_algorithm = netapi_core::model::SigningAlgorithm::Es256;
}; id_token_at_hash_follows_the_signing_algorithm_es256);

async fn es256_is_named_in_discovery(app: TestApp) {
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let doc = json_with(
            app.http.get(app.url(path)).send().await.unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            json!(["RS256", "ES256"])
        );
    }
}

async fn id_token_at_hash_follows_the_signing_algorithm_es256(app: TestApp) {
    id_token_at_hash_follows_the_signing_algorithm(app).await;
}

/// OpenID Connect Core §3.1.3.6: at_hash is the left half of the hash that the ID token's
/// algorithm uses: SHA-512 for EdDSA (Ed25519), SHA-256 for ES256 and RS256. The client asks
/// for ID tokens in the server's `signing_algorithm` (new clients get RS256 otherwise).
async fn id_token_at_hash_follows_the_signing_algorithm(app: TestApp) {
    use sha2::Digest;
    let client = client_with(
        &app,
        &["refresh_token"],
        "openid users:read",
        "client_secret_basic",
    )
    .await;
    let response = app
        .http
        .patch(app.url(&format!("/v1/oauth-clients/{}", client.id)))
        .bearer_auth(&client.owner_key)
        .json(&json!({
            "id_token_signed_response_alg": app.api.settings().signing_algorithm.as_str()
        }))
        .send()
        .await
        .unwrap();
    json_with(response, StatusCode::OK).await;
    let (token, _) = mint_refresh(&app, &client, "openid users:read").await;
    let (status, _, body) = post_form(
        &app,
        "/oauth/token",
        basic_of(&client),
        &[("grant_type", "refresh_token"), ("refresh_token", &token)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "body: {body}");
    let access = body["access_token"].as_str().unwrap();
    let (header, claims) = jwt_parts(body["id_token"].as_str().expect("an ID token"));
    let expected = match header["alg"].as_str() {
        Some("EdDSA") => B64.encode(&sha2::Sha512::digest(access.as_bytes())[..32]),
        Some("ES256" | "RS256") => B64.encode(&sha2::Sha256::digest(access.as_bytes())[..16]),
        other => panic!("unexpected alg {other:?}"),
    };
    assert_eq!(header["alg"], app.api.settings().signing_algorithm.as_str());
    assert_eq!(claims["at_hash"], expected);
}

async fn discovery_documents(app: TestApp) {
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert!(header(response.headers(), "content-type").starts_with("application/json"));
        let doc = json_with(response, StatusCode::OK).await;
        assert_eq!(doc["issuer"], app.base.as_str(), "{path}");
        assert_eq!(doc["token_endpoint"], app.url("/oauth/token"));
        assert_eq!(doc["jwks_uri"], app.url("/oauth/jwks.json"));
        assert_eq!(doc["revocation_endpoint"], app.url("/oauth/revoke"));
        assert_eq!(doc["introspection_endpoint"], app.url("/oauth/introspect"));
        assert_eq!(doc["authorization_endpoint"], app.url("/oauth/authorize"));
        let grants: Vec<&str> = doc["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap())
            .collect();
        for grant in ["authorization_code", "client_credentials", "refresh_token"] {
            assert!(grants.contains(&grant), "{path}: {grants:?}");
        }
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert!(
            doc["subject_types_supported"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        );
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            json!(["RS256", "EdDSA"])
        );
        // Exactly the client authentication methods each endpoint takes (issue 16), and the
        // algorithms of private_key_jwt assertions.
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            json!([
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
                "none"
            ])
        );
        assert_eq!(
            doc["revocation_endpoint_auth_methods_supported"],
            doc["token_endpoint_auth_methods_supported"]
        );
        assert_eq!(
            doc["introspection_endpoint_auth_methods_supported"],
            json!([
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt"
            ])
        );
        for endpoint in ["token", "revocation", "introspection"] {
            assert_eq!(
                doc[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")],
                json!(["RS256", "ES256", "EdDSA"]),
                "{endpoint}"
            );
        }
        // Pushed authorization requests (RFC 9126), not required by default.
        assert_eq!(
            doc["pushed_authorization_request_endpoint"],
            app.url("/oauth/par")
        );
        assert_eq!(doc["require_pushed_authorization_requests"], json!(false));
        // The JWKS it points to is reachable and has keys.
        let set = jwks(&app).await;
        assert!(!jwk_kids(&set).is_empty());
    }
}

// ---------------------------------------------------------------------------------------
// Client management (/v1/oauth-clients)
// ---------------------------------------------------------------------------------------

crate::e2e!(
    confidential_client_secret_is_shown_once,
    public_client_has_no_secret_and_no_client_credentials,
    redirect_uris_are_validated,
    rotate_secret_replaces_the_old_one,
    deleting_a_client_kills_its_tokens,
    members_cannot_see_each_others_clients,
);

async fn confidential_client_secret_is_shown_once(app: TestApp) {
    let key = app.member_key(&unique_email("c")).await;
    let created = app
        .create_client(
            &key,
            json!({
                "client_name": "Confidential",
                "grant_types": ["client_credentials"],
                "scope": "users:read",
                "token_endpoint_auth_method": "client_secret_post",
            }),
        )
        .await;
    let id = created["client_id"].as_str().unwrap();
    let secret = created["client_secret"].as_str().unwrap();
    assert!(id.starts_with("cli_"));
    assert!(secret.starts_with("napcs_"));
    assert_eq!(created["token_endpoint_auth_method"], "client_secret_post");
    assert_eq!(created["grant_types"], json!(["client_credentials"]));
    assert_eq!(created["scope"], "users:read");
    let fetched = json_with(
        app.get(&format!("/v1/oauth-clients/{id}"), &key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(fetched["client_id"], id);
    assert!(fetched.get("client_secret").is_none());
    assert!(!fetched.to_string().contains(secret));
    let listed = json_with(app.get("/v1/oauth-clients", &key).await, StatusCode::OK).await;
    assert!(!listed.to_string().contains(secret));
    assert_eq!(listed["oauth_clients"][0]["client_id"], id);
}

async fn public_client_has_no_secret_and_no_client_credentials(app: TestApp) {
    let key = app.member_key(&unique_email("p")).await;
    let created = app
        .create_client(
            &key,
            json!({
                "client_name": "SPA",
                "redirect_uris": ["http://127.0.0.1:8765/callback"],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none",
            }),
        )
        .await;
    assert!(created.get("client_secret").is_none(), "body: {created}");
    assert_eq!(created["token_endpoint_auth_method"], "none");
    let response = app
        .post_json(
            "/v1/oauth-clients",
            &key,
            json!({
                "client_name": "Bad",
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "none",
            }),
        )
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    // A public client cannot authenticate for client_credentials at the token endpoint.
    let id = created["client_id"].as_str().unwrap();
    let answer = post_form(
        &app,
        "/oauth/token",
        None,
        &[("grant_type", "client_credentials"), ("client_id", id)],
    )
    .await;
    assert_eq!(answer.0, StatusCode::BAD_REQUEST);
    assert!(
        answer.2["error"] == "unauthorized_client" || answer.2["error"] == "invalid_client",
        "body: {}",
        answer.2
    );
    // Nor rotate a secret it does not have.
    let response = app
        .post_json(
            &format!("/v1/oauth-clients/{id}/rotate-secret"),
            &key,
            json!({}),
        )
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
}

async fn redirect_uris_are_validated(app: TestApp) {
    let key = app.member_key(&unique_email("r")).await;
    for uri in [
        "http://app.example.com/callback",
        "https://app.example.com/callback#fragment",
        "/relative/callback",
        "javascript:alert(1)",
        "https://user:pw@app.example.com/cb",
    ] {
        let response = app
            .post_json(
                "/v1/oauth-clients",
                &key,
                json!({
                    "client_name": "Web",
                    "redirect_uris": [uri],
                    "grant_types": ["authorization_code"],
                }),
            )
            .await;
        let body = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
        assert!(body.to_string().contains("redirect_uris"), "{uri}: {body}");
    }
    for uri in [
        "https://app.example.com/callback",
        "http://127.0.0.1:8000/cb",
        "http://localhost/cb",
        "com.example.app:/oauth",
    ] {
        app.create_client(
            &key,
            json!({
                "client_name": "Web",
                "redirect_uris": [uri],
                "grant_types": ["authorization_code"],
            }),
        )
        .await;
    }
}

async fn rotate_secret_replaces_the_old_one(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let rotated = json_with(
        app.post_json(
            &format!("/v1/oauth-clients/{}/rotate-secret", client.id),
            &client.owner_key,
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, client.secret);
    assert!(new_secret.starts_with("napcs_"));
    let answer = post_form(
        &app,
        "/oauth/token",
        basic_of(&client),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_oauth_error(&answer, StatusCode::UNAUTHORIZED, "invalid_client");
    let mut renewed = client.clone();
    renewed.secret = new_secret;
    accepted(&app, &cc_token(&app, &renewed).await).await;
}

async fn deleting_a_client_kills_its_tokens(app: TestApp) {
    let client = refresh_client(&app).await;
    let token = cc_token(&app, &client).await;
    let (refresh, _) = mint_refresh(&app, &client, "users:read").await;
    accepted(&app, &token).await;
    let response = app
        .delete(
            &format!("/v1/oauth-clients/{}", client.id),
            &client.owner_key,
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    refused(&app, &token).await;
    let answer = post_form(
        &app,
        "/oauth/token",
        basic_of(&client),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_oauth_error(&answer, StatusCode::UNAUTHORIZED, "invalid_client");
    expect_error(
        app.get(
            &format!("/v1/oauth-clients/{}", client.id),
            &client.owner_key,
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
}

async fn members_cannot_see_each_others_clients(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let other = app.member_key(&unique_email("other")).await;
    let path = format!("/v1/oauth-clients/{}", client.id);
    expect_error(
        app.get(&path, &other).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        app.delete(&path, &other).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        app.post_json(&format!("{path}/rotate-secret"), &other, json!({}))
            .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    let listed = json_with(app.get("/v1/oauth-clients", &other).await, StatusCode::OK).await;
    assert_eq!(listed["oauth_clients"], json!([]));
    // The client is unharmed.
    accepted(&app, &cc_token(&app, &client).await).await;
}

// ---------------------------------------------------------------------------------------
// Brute force
// ---------------------------------------------------------------------------------------

e2e!(settings = |s: &mut netapi_core::Settings| {
        s.auth_failure_limit = 3;
    }; client_secret_brute_force_is_limited);

async fn client_secret_brute_force_is_limited(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    for _ in 0..3 {
        let wrong = generate(SecretKind::ClientSecret);
        let answer = post_form(
            &app,
            "/oauth/token",
            Some(basic_header(&client.id, wrong.expose())),
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_oauth_error(&answer, StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let (status, headers, body) = post_form(
        &app,
        "/oauth/token",
        basic_of(&client),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "body: {body}");
    let retry_after: u64 = header(&headers, "retry-after").parse().unwrap();
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    assert!(body["error"].is_string(), "body: {body}");
    assert!(body["error_description"].is_string(), "body: {body}");
    assert_eq!(body.as_object().unwrap().len(), 2, "body: {body}");
    app.clock.advance(61);
    let (status, _, body) = post_form(
        &app,
        "/oauth/token",
        basic_of(&client),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "body: {body}");
}

// ---------------------------------------------------------------------------------------
// Signing-key rotation
// ---------------------------------------------------------------------------------------

e2e!(settings = |s: &mut netapi_core::Settings| {
    s.signing_key_publish_delay = 0;
}; signing_key_rotation);

async fn signing_key_rotation(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let old_kids = jwk_kids(&jwks(&app).await);
    assert_eq!(old_kids.len(), 2, "an EdDSA and an RS256 key");
    let old_token = cc_token(&app, &client).await;
    let old_kid = jwt_parts(&old_token).0["kid"].as_str().unwrap().to_owned();
    assert!(old_kids.contains(&old_kid));
    let new_keys = app.api.rotate_signing_keys().await.unwrap();
    let new_key = &new_keys[0];
    let kids = jwk_kids(&jwks(&app).await);
    assert_eq!(kids.len(), 4, "kids: {kids:?}");
    assert!(
        old_kids
            .iter()
            .chain(&new_keys.iter().map(|k| k.kid.clone()).collect::<Vec<_>>())
            .all(|kid| kids.contains(kid))
    );
    // Tokens signed before still work; new ones carry the new kid.
    accepted(&app, &old_token).await;
    let new_token = cc_token(&app, &client).await;
    assert_eq!(jwt_parts(&new_token).0["kid"], new_key.kid.as_str());
    accepted(&app, &new_token).await;
    // Once every token the old key signed has expired (plus two minutes for instances that
    // reload keys once a minute), it leaves the JWKS.
    app.clock.advance(900 + 120 - 1);
    app.api.housekeeping().await.unwrap();
    assert_eq!(jwk_kids(&jwks(&app).await).len(), 4);
    app.clock.advance(2);
    app.api.housekeeping().await.unwrap();
    let mut kids = jwk_kids(&jwks(&app).await);
    kids.sort();
    let mut expected: Vec<String> = new_keys.iter().map(|k| k.kid.clone()).collect();
    expected.sort();
    assert_eq!(kids, expected);
    let token = cc_token(&app, &client).await;
    assert_eq!(jwt_parts(&token).0["kid"], new_key.kid.as_str());
    accepted(&app, &token).await;
}

// ---------------------------------------------------------------------------------------
// Later changes to a client, and several processes sharing one database
// ---------------------------------------------------------------------------------------

crate::e2e!(
    refresh_is_limited_to_the_clients_current_scopes,
    malformed_basic_credentials_are_invalid_client,
    revocation_reaches_other_instances,
);

async fn refresh_is_limited_to_the_clients_current_scopes(app: TestApp) {
    let client = refresh_client(&app).await;
    let (token, _) = mint_refresh(&app, &client, "users:read keys:read").await;
    let response = app
        .http
        .patch(app.url(&format!("/v1/oauth-clients/{}", client.id)))
        .bearer_auth(&client.owner_key)
        .json(&json!({ "scope": "keys:read" }))
        .send()
        .await
        .unwrap();
    let patched = json_with(response, StatusCode::OK).await;
    assert_eq!(patched["scope"], "keys:read");
    // The grant was made when the client could have users:read; it may not any more.
    let (status, _, body) = post_form(
        &app,
        "/oauth/token",
        basic_of(&client),
        &[("grant_type", "refresh_token"), ("refresh_token", &token)],
    )
    .await;
    if status == StatusCode::OK {
        assert_eq!(body["scope"], "keys:read", "body: {body}");
        let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
        assert_eq!(claims["scope"], "keys:read");
    } else {
        assert_oauth_error(
            &(status, HeaderMap::new(), body),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        );
    }
}

async fn malformed_basic_credentials_are_invalid_client(app: TestApp) {
    let client = cc_client(&app, "users:read").await;
    let colonless = format!("Basic {}", STANDARD.encode(&client.id));
    for value in ["Basic !!!not-base64!!!", "Basic ", colonless.as_str()] {
        let answer = post_form(
            &app,
            "/oauth/token",
            Some(value.to_owned()),
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_oauth_error(&answer, StatusCode::UNAUTHORIZED, "invalid_client");
        assert!(header(&answer.1, "www-authenticate").starts_with("Basic"));
    }
}

/// A second `netapi serve` on the same database (and the same issuer, as behind a load
/// balancer); returns its base URL and service.
async fn second_instance(app: &TestApp) -> (String, std::sync::Arc<netapi_core::NetApi>) {
    let store = netapi_store::open(&netapi_store::StoreOptions::new(&app.database_url), false)
        .await
        .unwrap();
    let api = std::sync::Arc::new(netapi_core::NetApi::new(
        store,
        app.clock.clone(),
        app.api.settings().clone(),
    ));
    api.start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(netapi_server::serve(
        listener,
        api.clone(),
        netapi_server::HttpOptions::default(),
        std::future::pending(),
    ));
    (base, api)
}

/// Polls `GET {base}/v1/users/me` until it answers `status`; panics after `within`.
async fn eventually(app: &TestApp, base: &str, token: &str, status: StatusCode, within: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(within);
    loop {
        let response = app
            .http
            .get(format!("{base}/v1/users/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        if response.status() == status {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{base} still answers {} instead of {status}",
            response.status()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn revocation_reaches_other_instances(app: TestApp) {
    let (other, _api) = second_instance(&app).await;
    let client = refresh_client(&app).await;
    // An access token revoked through the first instance.
    let token = cc_token(&app, &client).await;
    eventually(&app, &other, &token, StatusCode::OK, 0).await;
    let (status, _, _) = post_form(
        &app,
        "/oauth/revoke",
        basic_of(&client),
        &[("token", &token)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    refused(&app, &token).await;
    eventually(&app, &other, &token, StatusCode::UNAUTHORIZED, 1000).await;
    // A refresh-token family revoked through the first instance.
    let (refresh, _) = mint_refresh(&app, &client, "users:read").await;
    let (access, next) = refresh_with(&app, &client, &refresh).await.unwrap();
    eventually(&app, &other, &access, StatusCode::OK, 0).await;
    let (status, _, _) = post_form(
        &app,
        "/oauth/revoke",
        basic_of(&client),
        &[("token", &next)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    eventually(&app, &other, &access, StatusCode::UNAUTHORIZED, 1000).await;
    // A client deleted through the first instance.
    let token = cc_token(&app, &client).await;
    eventually(&app, &other, &token, StatusCode::OK, 0).await;
    let response = app
        .delete(
            &format!("/v1/oauth-clients/{}", client.id),
            &client.owner_key,
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    eventually(&app, &other, &token, StatusCode::UNAUTHORIZED, 1000).await;
}
