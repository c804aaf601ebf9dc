//! Issue 16: `private_key_jwt` client authentication (RFC 7523 §2.2, OpenID Connect Core §9)
//! at the token, revocation, introspection and PAR endpoints, and pushed authorization
//! requests (RFC 9126).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::Signer as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::e2e;
use crate::helpers::{
    Browser, Pkce, TestApp, approve, basic_header, exchange_code, expect_error, json_with,
    location_of, query_pairs, sign_in,
};

const REDIRECT: &str = "https://app.example.com/callback";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client's Ed25519 key pair.
struct Ed25519 {
    key: ed25519_dalek::SigningKey,
    kid: String,
}

impl Ed25519 {
    fn new(kid: &str) -> Self {
        use sha2::Digest;
        let seed: [u8; 32] =
            sha2::Sha256::digest(netapi_core::secret::random_base62(43).as_bytes()).into();
        Self {
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
            kid: kid.to_owned(),
        }
    }

    fn jwk(&self) -> Value {
        json!({
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": self.kid,
            "x": B64.encode(self.key.verifying_key().as_bytes()),
        })
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let signed = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = self.key.sign(signed.as_bytes());
        format!("{signed}.{}", B64.encode(signature.to_bytes()))
    }

    /// An assertion for `client_id` to `aud`, with `claims` merged over the usual ones.
    fn assertion(&self, app: &TestApp, client_id: &str, aud: &str, extra: Value) -> String {
        let now = app.clock_now();
        let mut claims = json!({
            "iss": client_id, "sub": client_id, "aud": aud,
            "exp": now + 60, "iat": now,
            "jti": netapi_core::secret::random_base62(20),
        });
        for (name, value) in extra.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        self.sign(
            &json!({"alg": "EdDSA", "kid": self.kid, "typ": "JWT"}),
            &claims,
        )
    }
}

trait ClockNow {
    fn clock_now(&self) -> i64;
}

impl ClockNow for TestApp {
    fn clock_now(&self) -> i64 {
        netapi_core::Clock::now(&*self.clock)
    }
}

/// A member and a `private_key_jwt` client of theirs with `key`'s public half; returns the
/// client's answer and the member's API key.
async fn keyed_client(app: &TestApp, key: &Ed25519, grants: &[&str]) -> (Value, String) {
    let email = format!(
        "pk-{}@example.com",
        netapi_core::secret::random_base62(8).to_lowercase()
    );
    let owner = app.member_key(&email).await;
    let response = app
        .post_json(
            "/v1/oauth-clients",
            &owner,
            json!({
                "client_name": "Keyed",
                "redirect_uris": [REDIRECT],
                "grant_types": grants,
                "scope": "users:read",
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [key.jwk()]},
            }),
        )
        .await;
    let client = json_with(response, StatusCode::CREATED).await;
    (client, owner)
}

async fn post(app: &TestApp, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = app
        .http
        .post(app.url(path))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn token_with(app: &TestApp, client_id: &str, assertion: &str) -> (StatusCode, Value) {
    post(
        app,
        "/oauth/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ],
    )
    .await
}

fn refused(answer: &(StatusCode, Value)) {
    assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{}", answer.1);
    assert_eq!(answer.1["error"], "invalid_client", "{}", answer.1);
}

e2e!(
    private_key_jwt_authenticates_at_every_endpoint,
    private_key_jwt_assertions_are_checked,
    private_key_jwt_registration_rules,
    pushed_requests_are_used_once_by_their_client,
    pushed_requests_are_checked_as_authorize_would,
    a_client_can_require_pushed_requests,
    private_key_jwt_client_pushes_requests
);
e2e!(spawn = proxied; pushes_of_a_public_client_are_counted_per_source);
e2e!(settings = |s| {
    s.require_pushed_authorization_requests = true;
}; the_server_can_require_pushed_requests);
e2e!(settings = |s| {
    s.allow_private_targets = true;
}; private_key_jwt_keys_from_a_jwks_uri);

async fn private_key_jwt_authenticates_at_every_endpoint(app: TestApp) {
    let key = Ed25519::new("k1");
    let (client, _) = keyed_client(&app, &key, &["client_credentials"]).await;
    let id = client["client_id"].as_str().unwrap();
    assert_eq!(client["token_endpoint_auth_method"], "private_key_jwt");
    assert!(client.get("client_secret").is_none(), "no secret: {client}");
    assert_eq!(client["jwks"]["keys"][0]["kid"], "k1");

    // The token endpoint, `aud` its URL.
    let assertion = key.assertion(&app, id, &app.url("/oauth/token"), json!({}));
    let (status, body) = token_with(&app, id, &assertion).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    // Without client_id: the assertion names the client (RFC 7521 §4.2). `aud` the issuer.
    let assertion = key.assertion(&app, id, &app.base, json!({}));
    let (status, body) = post(
        &app,
        "/oauth/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Introspection, `aud` an array naming its URL.
    let assertion = key.assertion(
        &app,
        id,
        "ignored",
        json!({"aud": ["https://elsewhere.example", app.url("/oauth/introspect")]}),
    );
    let (status, body) = post(
        &app,
        "/oauth/introspect",
        &[
            ("token", &access),
            ("client_id", id),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], id);

    // Revocation.
    let assertion = key.assertion(&app, id, &app.url("/oauth/revoke"), json!({}));
    let (status, body) = post(
        &app,
        "/oauth/revoke",
        &[
            ("token", &access),
            ("client_id", id),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let assertion = key.assertion(&app, id, &app.url("/oauth/introspect"), json!({}));
    let (_, body) = post(
        &app,
        "/oauth/introspect",
        &[
            ("token", &access),
            ("client_id", id),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ],
    )
    .await;
    assert_eq!(body, json!({"active": false}));

    // A client secret is no way in for it, and it has none to rotate.
    let (status, _) = post(
        &app,
        "/oauth/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            (
                "client_secret",
                "napcs_0000000000000000000000000000000000000000",
            ),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn private_key_jwt_assertions_are_checked(app: TestApp) {
    let key = Ed25519::new("k1");
    let (client, _) = keyed_client(&app, &key, &["client_credentials"]).await;
    let id = client["client_id"].as_str().unwrap();
    let token_url = app.url("/oauth/token");
    let now = app.clock_now();

    // A replayed jti is refused (the first use succeeds).
    let once = key.assertion(&app, id, &token_url, json!({}));
    assert_eq!(token_with(&app, id, &once).await.0, StatusCode::OK);
    refused(&token_with(&app, id, &once).await);
    // Even with a new signature over the same jti.
    let jti = json!({"jti": "fixed-jti", "exp": now + 100});
    assert_eq!(
        token_with(&app, id, &key.assertion(&app, id, &token_url, jti.clone()))
            .await
            .0,
        StatusCode::OK
    );
    refused(&token_with(&app, id, &key.assertion(&app, id, &token_url, jti)).await);

    // Wrong audience, none, another server's token endpoint.
    refused(
        &token_with(
            &app,
            id,
            &key.assertion(&app, id, "https://other.example/oauth/token", json!({})),
        )
        .await,
    );
    refused(
        &token_with(
            &app,
            id,
            &key.assertion(&app, id, &token_url, json!({"aud": null})),
        )
        .await,
    );
    // Expired, without exp, too long-lived, not yet valid, issued in the future.
    refused(
        &token_with(
            &app,
            id,
            &key.assertion(&app, id, &token_url, json!({"exp": now - 10})),
        )
        .await,
    );
    refused(
        &token_with(
            &app,
            id,
            &key.assertion(&app, id, &token_url, json!({"exp": null})),
        )
        .await,
    );
    refused(
        &token_with(
            &app,
            id,
            &key.assertion(&app, id, &token_url, json!({"exp": now + 3600})),
        )
        .await,
    );
    refused(
        &token_with(
            &app,
            id,
            &key.assertion(&app, id, &token_url, json!({"nbf": now + 120})),
        )
        .await,
    );
    refused(
        &token_with(
            &app,
            id,
            &key.assertion(&app, id, &token_url, json!({"iat": now + 120})),
        )
        .await,
    );
    // iss and sub must be the client; no jti.
    refused(
        &token_with(
            &app,
            id,
            &key.assertion(&app, id, &token_url, json!({"sub": "usr_someone"})),
        )
        .await,
    );
    refused(
        &token_with(
            &app,
            id,
            &key.assertion(&app, id, &token_url, json!({"iss": "cli_other"})),
        )
        .await,
    );
    refused(
        &token_with(
            &app,
            id,
            &key.assertion(&app, id, &token_url, json!({"jti": null})),
        )
        .await,
    );

    // alg none, and HS256 keyed with the public key: refused.
    let claims = json!({"iss": id, "sub": id, "aud": token_url, "exp": now + 60, "jti": "n1"});
    let unsigned = format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        B64.encode(claims.to_string())
    );
    refused(&token_with(&app, id, &unsigned).await);
    let hs = {
        use hmac::Mac;
        let signed = format!(
            "{}.{}",
            B64.encode(json!({"alg": "HS256", "kid": "k1"}).to_string()),
            B64.encode(claims.to_string())
        );
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(key.key.verifying_key().as_bytes()).unwrap();
        mac.update(signed.as_bytes());
        format!("{signed}.{}", B64.encode(mac.finalize().into_bytes()))
    };
    refused(&token_with(&app, id, &hs).await);
    // A key that is not in the client's set, even under its kid, and an unknown kid.
    let stranger = Ed25519::new("k1");
    refused(
        &token_with(
            &app,
            id,
            &stranger.assertion(&app, id, &token_url, json!({})),
        )
        .await,
    );
    let unknown = Ed25519::new("k9");
    refused(
        &token_with(
            &app,
            id,
            &unknown.assertion(&app, id, &token_url, json!({})),
        )
        .await,
    );
    // Another client's assertion, presented as this one.
    let other_key = Ed25519::new("o1");
    let (other, _) = keyed_client(&app, &other_key, &["client_credentials"]).await;
    let other_id = other["client_id"].as_str().unwrap();
    refused(
        &token_with(
            &app,
            id,
            &other_key.assertion(&app, other_id, &token_url, json!({})),
        )
        .await,
    );
    // A garbled assertion, a wrong type, an assertion with a secret too.
    refused(&token_with(&app, id, "not.a.jwt").await);
    let (status, body) = post(
        &app,
        "/oauth/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_assertion_type", "urn:example:other"),
            (
                "client_assertion",
                &key.assertion(&app, id, &token_url, json!({})),
            ),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_request"))
    );
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .header("authorization", basic_header(id, "napcs_x"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            (
                "client_assertion",
                &key.assertion(&app, id, &token_url, json!({})),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_with(response, StatusCode::BAD_REQUEST).await["error"],
        "invalid_request"
    );
    // After all this, a good assertion still works (the test server's failure limit is
    // high).
    assert_eq!(
        token_with(&app, id, &key.assertion(&app, id, &token_url, json!({})))
            .await
            .0,
        StatusCode::OK
    );
}

async fn private_key_jwt_registration_rules(app: TestApp) {
    let key = Ed25519::new("k1");
    let owner = app.member_key("rules@example.com").await;
    let create = |body: Value| {
        let app = &app;
        let owner = owner.clone();
        async move { app.post_json("/v1/oauth-clients", &owner, body).await }
    };
    let base = json!({
        "client_name": "Keyed",
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt",
    });
    let with = |extra: Value| {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    // Keys needed; one of jwks and jwks_uri; public keys only; a usable key.
    for bad in [
        json!({}),
        json!({"jwks": {"keys": [key.jwk()]}, "jwks_uri": "https://app.example.com/jwks"}),
        json!({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
        json!({"jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": B64.encode(key.key.verifying_key().as_bytes()), "d": B64.encode(key.key.to_bytes())}]}}),
        json!({"jwks": {"keys": [{"kty": "RSA", "n": B64.encode([1u8; 64]), "e": "AQAB"}]}}),
        json!({"jwks": [key.jwk()]}),
        json!({"jwks_uri": "http://app.example.com/jwks"}),
        json!({"jwks_uri": "https://127.0.0.1/jwks"}),
        json!({"jwks_uri": "not a url"}),
    ] {
        let body = with(bad.clone());
        expect_error(
            create(body).await,
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        )
        .await;
    }
    // Keys are for private_key_jwt clients only.
    let mut secret_client = with(json!({"jwks": {"keys": [key.jwk()]}}));
    secret_client["token_endpoint_auth_method"] = json!("client_secret_basic");
    expect_error(
        create(secret_client).await,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
    )
    .await;

    // A good one; no secret to rotate; its keys can be replaced.
    let client = json_with(
        create(with(json!({"jwks": {"keys": [key.jwk()]}}))).await,
        StatusCode::CREATED,
    )
    .await;
    let id = client["client_id"].as_str().unwrap();
    let rotate = app
        .post_json(
            &format!("/v1/oauth-clients/{id}/rotate-secret"),
            &owner,
            json!({}),
        )
        .await;
    expect_error(rotate, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    let new_key = Ed25519::new("k2");
    let patched = app
        .http
        .patch(app.url(&format!("/v1/oauth-clients/{id}")))
        .bearer_auth(&owner)
        .json(&json!({"jwks": {"keys": [new_key.jwk()]}}))
        .send()
        .await
        .unwrap();
    let patched = json_with(patched, StatusCode::OK).await;
    assert_eq!(patched["jwks"]["keys"][0]["kid"], "k2");
    let token_url = app.url("/oauth/token");
    refused(&token_with(&app, id, &key.assertion(&app, id, &token_url, json!({}))).await);
    assert_eq!(
        token_with(
            &app,
            id,
            &new_key.assertion(&app, id, &token_url, json!({}))
        )
        .await
        .0,
        StatusCode::OK
    );

    // RFC 7591 registration and RFC 7592 update.
    let response = app
        .http
        .post(app.url("/oauth/register"))
        .bearer_auth(&owner)
        .json(&json!({
            "client_name": "Dynamic keyed",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [key.jwk()]},
            "require_pushed_authorization_requests": true,
        }))
        .send()
        .await
        .unwrap();
    let registered = json_with(response, StatusCode::CREATED).await;
    assert!(registered.get("client_secret").is_none(), "{registered}");
    assert_eq!(registered["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(registered["require_pushed_authorization_requests"], true);
    let response = app
        .http
        .post(app.url("/oauth/register"))
        .bearer_auth(&owner)
        .json(&json!({
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "private_key_jwt",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_with(response, StatusCode::BAD_REQUEST).await["error"],
        "invalid_client_metadata"
    );
    let response = app
        .http
        .put(registered["registration_client_uri"].as_str().unwrap())
        .bearer_auth(registered["registration_access_token"].as_str().unwrap())
        .json(&json!({
            "client_id": registered["client_id"],
            "client_name": "Dynamic keyed",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [new_key.jwk()]},
        }))
        .send()
        .await
        .unwrap();
    let updated = json_with(response, StatusCode::OK).await;
    assert_eq!(updated["jwks"]["keys"][0]["kid"], "k2");
    assert_eq!(updated["require_pushed_authorization_requests"], false);
}

/// Serves a JWK Set at `http://127.0.0.1:<port>/jwks.json`, counting the fetches.
async fn serve_jwks(set: Value) -> (String, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let set = set.clone();
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::Json(set)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/jwks.json"), fetches)
}

/// A key set with `key` in it, padded past what Net API reads, sent in chunks without a
/// `Content-Length` (so only counting the bytes read can stop it), by a bare HTTP/1.1 server.
async fn serve_oversized_jwks(key: &Ed25519) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut set = json!({"keys": [key.jwk()]});
    set["padding"] = json!("x".repeat(netapi_core::service::MAX_JWKS_BYTES));
    let body = set.to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let mut answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                    Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    .to_vec();
                for chunk in body.as_bytes().chunks(4096) {
                    answer.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    answer.extend_from_slice(chunk);
                    answer.extend_from_slice(b"\r\n");
                }
                answer.extend_from_slice(b"0\r\n\r\n");
                let _ = socket.write_all(&answer).await;
            });
        }
    });
    format!("http://{address}/jwks.json")
}

async fn private_key_jwt_keys_from_a_jwks_uri(app: TestApp) {
    let key = Ed25519::new("k1");
    let (uri, fetches) = serve_jwks(json!({"keys": [key.jwk()]})).await;
    let owner = app.member_key("uri@example.com").await;
    let response = app
        .post_json(
            "/v1/oauth-clients",
            &owner,
            json!({
                "client_name": "Fetched keys",
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks_uri": uri,
            }),
        )
        .await;
    let client = json_with(response, StatusCode::CREATED).await;
    assert_eq!(client["jwks_uri"], uri.as_str());
    let id = client["client_id"].as_str().unwrap();
    let token_url = app.url("/oauth/token");
    for _ in 0..2 {
        let answer = token_with(&app, id, &key.assertion(&app, id, &token_url, json!({}))).await;
        assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    }
    // Fetched once, then cached.
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // A key set larger than Net API reads (sent without its length) is not used: its
    // client cannot authenticate, although the right key is in it.
    let big = Ed25519::new("k9");
    let response = app
        .post_json(
            "/v1/oauth-clients",
            &owner,
            json!({
                "client_name": "Oversized keys",
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks_uri": serve_oversized_jwks(&big).await,
            }),
        )
        .await;
    let oversized = json_with(response, StatusCode::CREATED).await;
    let oversized_id = oversized["client_id"].as_str().unwrap();
    refused(
        &token_with(
            &app,
            oversized_id,
            &big.assertion(&app, oversized_id, &token_url, json!({})),
        )
        .await,
    );
    refused(
        &token_with(
            &app,
            id,
            &Ed25519::new("k1").assertion(&app, id, &token_url, json!({})),
        )
        .await,
    );
}

/// Pushes `form` (with HTTP Basic when `secret` is given).
async fn push(
    app: &TestApp,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = app.http.post(app.url("/oauth/par")).form(form);
    if let Some((id, secret)) = basic {
        request = request.header("authorization", basic_header(id, secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// A server behind a trusted proxy, so that `X-Forwarded-For` names each request's source.
async fn proxied(backend: crate::helpers::Backend) -> Option<TestApp> {
    crate::helpers::behind_a_proxy(backend, |_| {}).await
}

/// A public client's id is all it takes to push: one source gets 20 pushes a minute for
/// it, so it cannot use up the client's 120 for everyone; a confidential client's pushes
/// (its secret needed) count against the client alone.
async fn pushes_of_a_public_client_are_counted_per_source(app: TestApp) {
    use netapi_core::service::{PUSHES_PER_MINUTE, PUSHES_PER_SOURCE};
    let (public, _) = web_client(&app, json!({"token_endpoint_auth_method": "none"})).await;
    let public_id = public["client_id"].as_str().unwrap();
    let (confidential, _) = web_client(&app, json!({})).await;
    let pkce = Pkce::random();
    let push_from = async |client: &Value, source: &str| {
        let id = client["client_id"].as_str().unwrap();
        let mut request = app
            .http
            .post(app.url("/oauth/par"))
            .header("X-Forwarded-For", source)
            .form(&[
                ("client_id", id),
                ("response_type", "code"),
                ("redirect_uri", REDIRECT),
                ("scope", "users:read"),
                ("code_challenge", pkce.challenge.as_str()),
                ("code_challenge_method", "S256"),
            ]);
        if let Some(secret) = client["client_secret"].as_str() {
            request = request.header("authorization", basic_header(id, secret));
        }
        request.send().await.unwrap()
    };
    for _ in 0..PUSHES_PER_SOURCE {
        let pushed = push_from(&public, "192.0.2.1").await;
        assert_eq!(pushed.status(), StatusCode::CREATED, "{public_id}");
    }
    let refused = push_from(&public, "192.0.2.1").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        push_from(&public, "192.0.2.2").await.status(),
        StatusCode::CREATED,
        "another source is not held back"
    );
    // A confidential client from one source: up to the client's own count.
    for _ in 0..PUSHES_PER_MINUTE {
        assert_eq!(
            push_from(&confidential, "192.0.2.1").await.status(),
            StatusCode::CREATED
        );
    }
    assert_eq!(
        push_from(&confidential, "192.0.2.1").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// A confidential web client of a new member; returns it and the member's email.
async fn web_client(app: &TestApp, extra: Value) -> (Value, String) {
    let email = format!(
        "par-{}@example.com",
        netapi_core::secret::random_base62(8).to_lowercase()
    );
    let owner = app.member_key(&email).await;
    let mut body = json!({
        "client_name": "Web app",
        "redirect_uris": [REDIRECT, "https://app.example.com/other"],
        "grant_types": ["authorization_code"],
        "scope": "users:read",
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let response = app.post_json("/v1/oauth-clients", &owner, body).await;
    (json_with(response, StatusCode::CREATED).await, email)
}

fn authorize_url(app: &TestApp, client_id: &str, request_uri: &str) -> String {
    let mut url = url::Url::parse(&app.url("/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("request_uri", request_uri);
    url.to_string()
}

async fn pushed_requests_are_used_once_by_their_client(app: TestApp) {
    let (client, email) = web_client(&app, json!({})).await;
    let id = client["client_id"].as_str().unwrap();
    let secret = client["client_secret"].as_str().unwrap();
    let pkce = Pkce::random();
    let form = [
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", "users:read"),
        ("state", "s1"),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let (status, headers, body) = push(&app, Some((id, secret)), &form).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["expires_in"], 60);
    let request_uri = body["request_uri"].as_str().unwrap().to_owned();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 2, "{body}");

    // Another client's id with this request_uri: the error page, never a redirect.
    let (other, _) = web_client(&app, json!({})).await;
    let other_id = other["client_id"].as_str().unwrap();
    let mut browser = Browser::new();
    let response = browser
        .get(&app, &authorize_url(&app, other_id, &request_uri))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // An unknown request_uri, and a malformed one.
    for bad in [
        "urn:ietf:params:oauth:request_uri:00000000000000000000000000000000".to_owned(),
        "https://evil.example/request".to_owned(),
    ] {
        let response = browser.get(&app, &authorize_url(&app, id, &bad)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    // The pushing client: sign-in, consent, code. Other query parameters are ignored (a
    // redirect_uri sent along does not replace the pushed one).
    let url = format!(
        "{}&redirect_uri={}&state=other",
        authorize_url(&app, id, &request_uri),
        "https%3A%2F%2Fapp.example.com%2Fother"
    );
    let consent = sign_in(&app, &mut browser, &url, &email).await;
    let approved = approve(&app, &mut browser, &consent).await;
    let location = location_of(&approved);
    assert!(location.starts_with(REDIRECT), "{location}");
    let pairs = query_pairs(&location);
    assert_eq!(pairs["state"], "s1");
    let tokens = exchange_code(
        &app,
        id,
        Some(secret),
        &pairs["code"],
        Some(REDIRECT),
        Some(&pkce.verifier),
    )
    .await;
    assert!(tokens["access_token"].is_string());

    // Used: refused the second time, even to its client and a signed-in user.
    let response = browser
        .get(&app, &authorize_url(&app, id, &request_uri))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Expired after 60 seconds.
    let (_, _, body) = push(&app, Some((id, secret)), &form).await;
    let late = body["request_uri"].as_str().unwrap().to_owned();
    app.clock.advance(61);
    let response = browser.get(&app, &authorize_url(&app, id, &late)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Within its life, a signed-in user who approved before gets a code at once; the second
    // approval of one pushed request fails even if both were opened.
    let (_, _, body) = push(&app, Some((id, secret)), &form).await;
    let twice = body["request_uri"].as_str().unwrap().to_owned();
    let first = browser.get(&app, &authorize_url(&app, id, &twice)).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert!(query_pairs(&location_of(&first)).contains_key("code"));
    let second = browser.get(&app, &authorize_url(&app, id, &twice)).await;
    assert_eq!(second.status(), StatusCode::BAD_REQUEST);
}

async fn pushed_requests_are_checked_as_authorize_would(app: TestApp) {
    let (client, _) = web_client(&app, json!({})).await;
    let id = client["client_id"].as_str().unwrap();
    let secret = client["client_secret"].as_str().unwrap();
    let pkce = Pkce::random();
    let good = |extra: &[(&'static str, &'static str)]| {
        let mut form: Vec<(&str, String)> = vec![
            ("response_type", "code".to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("scope", "users:read".to_owned()),
            ("code_challenge", pkce.challenge.clone()),
            ("code_challenge_method", "S256".to_owned()),
        ];
        for (name, value) in extra {
            form.retain(|(n, _)| n != name);
            if !value.is_empty() {
                form.push((name, (*value).to_owned()));
            }
        }
        form
    };
    let check = |extra: &'static [(&'static str, &'static str)], code: &'static str| {
        let form = good(extra);
        let app = &app;
        async move {
            let pairs: Vec<(&str, &str)> = form.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let (status, headers, body) = push(app, Some((id, secret)), &pairs).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{extra:?}: {body}");
            assert_eq!(body["error"], code, "{extra:?}: {body}");
            assert_eq!(headers["cache-control"], "no-store");
        }
    };
    check(
        &[("redirect_uri", "https://evil.example/cb")],
        "invalid_request",
    )
    .await;
    check(&[("code_challenge", "")], "invalid_request").await;
    check(&[("code_challenge_method", "plain")], "invalid_request").await;
    check(&[("scope", "admin")], "invalid_scope").await;
    check(&[("response_type", "token")], "unsupported_response_type").await;
    check(
        &[("resource", "https://unknown.example/api")],
        "invalid_target",
    )
    .await;
    check(
        &[("request", "eyJhbGciOiJub25lIn0.e30.")],
        "request_not_supported",
    )
    .await;
    check(
        &[("request_uri", "urn:ietf:params:oauth:request_uri:abc")],
        "invalid_request",
    )
    .await;
    check(&[("client_id", "cli_someone_else")], "invalid_request").await;

    // Client authentication as at the token endpoint.
    let pairs: Vec<(&str, String)> = good(&[]);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (status, headers, body) = push(&app, Some((id, "napcs_wrong")), &pairs).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    assert!(headers.contains_key("www-authenticate"));
    let mut with_id = pairs.clone();
    with_id.push(("client_id", id));
    let (status, _, body) = push(&app, None, &with_id).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_client"))
    );
    let (status, _, _) = push(&app, None, &pairs).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A public client pushes with its client_id alone.
    let owner = app.member_key("public-par@example.com").await;
    let public = json_with(
        app.post_json(
            "/v1/oauth-clients",
            &owner,
            json!({
                "client_name": "SPA",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code"],
                "scope": "users:read",
                "token_endpoint_auth_method": "none",
            }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let mut public_form = pairs.clone();
    public_form.push(("client_id", public["client_id"].as_str().unwrap()));
    let (status, _, body) = push(&app, None, &public_form).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Not a form: invalid_request.
    let response = app
        .http
        .post(app.url("/oauth/par"))
        .json(&json!({"client_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_with(response, StatusCode::BAD_REQUEST).await["error"],
        "invalid_request"
    );
}

async fn a_client_can_require_pushed_requests(app: TestApp) {
    let (client, email) =
        web_client(&app, json!({"require_pushed_authorization_requests": true})).await;
    assert_eq!(client["require_pushed_authorization_requests"], true);
    let id = client["client_id"].as_str().unwrap();
    let secret = client["client_secret"].as_str().unwrap();
    let pkce = Pkce::random();
    // A plain authorization request is refused (not redirected: the client is not trusted,
    // so the page links to the error redirect).
    let mut plain = url::Url::parse(&app.url("/oauth/authorize")).unwrap();
    plain
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    let mut browser = Browser::new();
    let response = browser.get(&app, plain.as_str()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.unwrap();
    assert!(page.contains("error=invalid_request"), "{page}");
    // Through PAR it works.
    let (status, _, body) = push(
        &app,
        Some((id, secret)),
        &[
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let url = authorize_url(&app, id, body["request_uri"].as_str().unwrap());
    let consent = sign_in(&app, &mut browser, &url, &email).await;
    let approved = approve(&app, &mut browser, &consent).await;
    assert!(query_pairs(&location_of(&approved)).contains_key("code"));
}

async fn the_server_can_require_pushed_requests(app: TestApp) {
    let doc = json_with(
        app.http
            .get(app.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(doc["require_pushed_authorization_requests"], true);
    let (client, email) = web_client(&app, json!({})).await;
    let id = client["client_id"].as_str().unwrap();
    let secret = client["client_secret"].as_str().unwrap();
    let pkce = Pkce::random();
    let mut plain = url::Url::parse(&app.url("/oauth/authorize")).unwrap();
    plain
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    let mut browser = Browser::new();
    let response = browser.get(&app, plain.as_str()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (status, _, body) = push(
        &app,
        Some((id, secret)),
        &[
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let url = authorize_url(&app, id, body["request_uri"].as_str().unwrap());
    let consent = sign_in(&app, &mut browser, &url, &email).await;
    let approved = approve(&app, &mut browser, &consent).await;
    assert!(query_pairs(&location_of(&approved)).contains_key("code"));
}

async fn private_key_jwt_client_pushes_requests(app: TestApp) {
    let key = Ed25519::new("k1");
    let (client, _) = keyed_client(&app, &key, &["authorization_code"]).await;
    let id = client["client_id"].as_str().unwrap();
    let pkce = Pkce::random();
    let assertion = key.assertion(&app, id, &app.url("/oauth/par"), json!({}));
    let (status, _, body) = push(
        &app,
        None,
        &[
            ("response_type", "code"),
            ("client_id", id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The assertion's parameters are not part of the stored request, and the same
    // assertion cannot push again.
    let (status, _, body) = push(
        &app,
        None,
        &[
            ("response_type", "code"),
            ("client_id", id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_client"))
    );
}
