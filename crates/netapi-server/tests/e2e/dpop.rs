//! Issue 17: DPoP (RFC 9449). Proofs at the token endpoint bind access tokens (`cnf.jkt`,
//! `token_type: DPoP`) and public clients' refresh tokens to a key; a bound token is
//! refused as a bearer token and accepted with `Authorization: DPoP` and a proof of its key
//! made for that request, on `/v1` and at forward auth; proofs are single use; server nonces.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;

use crate::e2e;
use crate::helpers::{Browser, Pkce, TestApp, approved_code, json_with};

const REDIRECT: &str = "https://app.example.com/callback";

/// A client's DPoP key (P-256) and the proofs it signs.
pub(crate) struct DpopKey {
    key: p256::ecdsa::SigningKey,
}

impl DpopKey {
    pub(crate) fn new() -> Self {
        let seed = sha2::Sha256::digest(netapi_core::secret::random_base62(40).as_bytes());
        Self {
            key: p256::ecdsa::SigningKey::from_slice(&seed).unwrap(),
        }
    }

    fn jwk(&self) -> Value {
        let point = self.key.verifying_key().to_encoded_point(false);
        json!({
            "kty": "EC", "crv": "P-256",
            "x": B64.encode(point.x().unwrap()),
            "y": B64.encode(point.y().unwrap()),
        })
    }

    /// RFC 7638 thumbprint, computed here independently of the server.
    pub(crate) fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        B64.encode(sha2::Sha256::digest(canonical.as_bytes()))
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let mut jwt = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature: p256::ecdsa::Signature =
            p256::ecdsa::signature::Signer::sign(&self.key, jwt.as_bytes());
        jwt.push('.');
        jwt.push_str(&B64.encode(signature.to_bytes()));
        jwt
    }

    /// A proof for `method` `url` at `iat`, with `ath` for `token` and `nonce` when given.
    fn proof_at(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        nonce: Option<&str>,
        iat: i64,
    ) -> String {
        let mut claims = json!({
            "jti": netapi_core::secret::random_base62(22),
            "htm": method,
            "htu": url,
            "iat": iat,
        });
        if let Some(token) = token {
            claims["ath"] = json!(B64.encode(sha2::Sha256::digest(token.as_bytes())));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        self.sign(
            &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()}),
            &claims,
        )
    }

    pub(crate) fn proof(
        &self,
        app: &TestApp,
        method: &str,
        url: &str,
        token: Option<&str>,
    ) -> String {
        self.proof_at(method, url, token, None, app.api.now())
    }
}

pub(crate) fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// A client of a new member: confidential, or public (`token_endpoint_auth_method: none`).
async fn client(app: &TestApp, public: bool) -> (Value, String) {
    let email = format!(
        "dpop-{}@example.com",
        netapi_core::secret::random_base62(8).to_lowercase()
    );
    let key = app.member_key(&email).await;
    let mut body = json!({
        "client_name": "DPoP App",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "scope": "users:read keys:read",
    });
    if public {
        body["token_endpoint_auth_method"] = json!("none");
        body["grant_types"] = json!(["authorization_code", "refresh_token"]);
    }
    (app.create_client(&key, body).await, email)
}

/// `POST /oauth/token` with `form`, the client's credentials and the `DPoP` header (if any).
pub(crate) async fn token_request(
    app: &TestApp,
    client: &Value,
    mut form: Vec<(&str, String)>,
    proof: Option<&str>,
) -> Response {
    let id = client["client_id"].as_str().unwrap();
    let mut request = app.http.post(app.url("/oauth/token"));
    match client["client_secret"].as_str() {
        Some(secret) => request = request.basic_auth(id, Some(secret)),
        None => form.push(("client_id", id.to_owned())),
    }
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.form(&form).send().await.unwrap()
}

/// Signs `email` in and exchanges the code with a proof of `key`; returns the tokens.
async fn dpop_code_flow(app: &TestApp, client: &Value, email: &str, key: &DpopKey) -> Value {
    let pkce = Pkce::random();
    let mut url = url::Url::parse(&app.url("/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client["client_id"].as_str().unwrap())
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "users:read")
        .append_pair("state", "st4te")
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    let mut browser = Browser::new();
    let code = approved_code(app, &mut browser, url.as_str(), email).await;
    let proof = key.proof(app, "POST", &app.url("/oauth/token"), None);
    let response = token_request(
        app,
        client,
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code),
            ("redirect_uri", REDIRECT.to_owned()),
            ("code_verifier", pkce.verifier.clone()),
        ],
        Some(&proof),
    )
    .await;
    json_with(response, StatusCode::OK).await
}

async fn client_credentials(app: &TestApp, client: &Value, key: &DpopKey) -> Value {
    let proof = key.proof(app, "POST", &app.url("/oauth/token"), None);
    let response = token_request(
        app,
        client,
        vec![("grant_type", "client_credentials".to_owned())],
        Some(&proof),
    )
    .await;
    json_with(response, StatusCode::OK).await
}

/// `GET /v1/users/me` with `Authorization: DPoP <token>` and `proof`.
pub(crate) async fn me_with(app: &TestApp, token: &str, proof: Option<&str>) -> Response {
    let mut request = app
        .http
        .get(app.url("/v1/users/me"))
        .header("Authorization", format!("DPoP {token}"));
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.send().await.unwrap()
}

async fn expect_dpop_refusal(response: Response, error: &str) -> Value {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = header(&response, "www-authenticate");
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(
        challenge.contains(&format!("error=\"{error}\"")),
        "{challenge}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHENTICATED", "{body}");
    body
}

e2e!(
    a_proof_at_the_token_endpoint_binds_the_access_token,
    a_stolen_bound_token_is_useless_without_its_key,
    proofs_are_single_use_and_bound_to_the_request,
    the_token_endpoint_refuses_bad_proofs,
    a_public_clients_refresh_token_is_bound_to_the_key,
    a_confidential_clients_refresh_token_is_not_bound,
    forward_auth_checks_the_original_request,
    introspection_shows_the_confirmation,
    bearer_tokens_are_unchanged,
);

e2e!(
    settings = |s: &mut netapi_core::Settings| s.require_dpop_nonce = true;
    server_nonces_are_required_when_set,
);

async fn a_proof_at_the_token_endpoint_binds_the_access_token(app: TestApp) {
    let (client, email) = client(&app, false).await;
    let key = DpopKey::new();
    let tokens = dpop_code_flow(&app, &client, &email, &key).await;
    assert_eq!(tokens["token_type"], "DPoP", "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims_of(access)["cnf"]["jkt"], key.thumbprint());

    let proof = key.proof(&app, "GET", &app.url("/v1/users/me"), Some(access));
    let response = me_with(&app, access, Some(&proof)).await;
    let me = json_with(response, StatusCode::OK).await;
    assert_eq!(me["email"], email.as_str());

    // client_credentials too.
    let tokens = client_credentials(&app, &client, &key).await;
    assert_eq!(tokens["token_type"], "DPoP");
    assert_eq!(
        claims_of(tokens["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.thumbprint()
    );

    // Discovery lists the proof algorithms.
    let response = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    let metadata = json_with(response, StatusCode::OK).await;
    assert_eq!(
        metadata["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "RS256"])
    );
}

async fn a_stolen_bound_token_is_useless_without_its_key(app: TestApp) {
    let (client, _) = client(&app, false).await;
    let key = DpopKey::new();
    let tokens = client_credentials(&app, &client, &key).await;
    let access = tokens["access_token"].as_str().unwrap();

    // As a bearer token: refused (RFC 9449 §7.2), saying why.
    let response = app.get("/v1/users/me", access).await;
    let body = expect_dpop_refusal(response, "invalid_token").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bound to a DPoP key"),
        "{body}"
    );
    // With the DPoP scheme but no proof.
    expect_dpop_refusal(me_with(&app, access, None).await, "invalid_dpop_proof").await;
    // With a proof of another key (the thief's own).
    let thief = DpopKey::new();
    let proof = thief.proof(&app, "GET", &app.url("/v1/users/me"), Some(access));
    let body = expect_dpop_refusal(
        me_with(&app, access, Some(&proof)).await,
        "invalid_dpop_proof",
    )
    .await;
    assert!(body["error"]["message"].as_str().unwrap().contains("key"));
    // And the owner with its key still gets in.
    let proof = key.proof(&app, "GET", &app.url("/v1/users/me"), Some(access));
    assert_eq!(
        me_with(&app, access, Some(&proof)).await.status(),
        StatusCode::OK
    );
    // An API key is not DPoP-bound: the DPoP scheme is refused for it.
    let api_key = app.member_key("plain@example.com").await;
    let proof = key.proof(&app, "GET", &app.url("/v1/users/me"), Some(&api_key));
    expect_dpop_refusal(me_with(&app, &api_key, Some(&proof)).await, "invalid_token").await;
}

async fn proofs_are_single_use_and_bound_to_the_request(app: TestApp) {
    let (client, _) = client(&app, false).await;
    let key = DpopKey::new();
    let tokens = client_credentials(&app, &client, &key).await;
    let access = tokens["access_token"].as_str().unwrap();
    let me = app.url("/v1/users/me");

    let proof = key.proof(&app, "GET", &me, Some(access));
    assert_eq!(
        me_with(&app, access, Some(&proof)).await.status(),
        StatusCode::OK
    );
    // The same proof again: a replay.
    let body = expect_dpop_refusal(
        me_with(&app, access, Some(&proof)).await,
        "invalid_dpop_proof",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("used before")
    );
    // Wrong method, wrong URL, wrong token hash, too old, from the future.
    let now = app.api.now();
    for (proof, why) in [
        (key.proof(&app, "POST", &me, Some(access)), "htm"),
        (
            key.proof(&app, "GET", &app.url("/v1/api-keys"), Some(access)),
            "htu",
        ),
        (
            key.proof(&app, "GET", &me, Some("another.token.here")),
            "ath",
        ),
        (key.proof(&app, "GET", &me, None), "ath"),
        (
            key.proof_at("GET", &me, Some(access), None, now - 61),
            "iat",
        ),
        (
            key.proof_at("GET", &me, Some(access), None, now + 30),
            "iat",
        ),
    ] {
        let body = expect_dpop_refusal(
            me_with(&app, access, Some(&proof)).await,
            "invalid_dpop_proof",
        )
        .await;
        assert!(
            body["error"]["message"].as_str().unwrap().contains(why),
            "{why}: {body}"
        );
    }
    // The query is not part of `htu`; two DPoP headers are refused.
    let proof = key.proof(&app, "GET", &format!("{me}?unused=1"), Some(access));
    assert_eq!(
        me_with(&app, access, Some(&proof)).await.status(),
        StatusCode::OK
    );
    let one = key.proof(&app, "GET", &me, Some(access));
    let two = key.proof(&app, "GET", &me, Some(access));
    let response = app
        .http
        .get(&me)
        .header("Authorization", format!("DPoP {access}"))
        .header("DPoP", one)
        .header("DPoP", two)
        .send()
        .await
        .unwrap();
    expect_dpop_refusal(response, "invalid_dpop_proof").await;
    // A proof of 60 seconds ago is still good; once the clock moves past it, refused.
    let proof = key.proof(&app, "GET", &me, Some(access));
    app.clock.advance(61);
    expect_dpop_refusal(
        me_with(&app, access, Some(&proof)).await,
        "invalid_dpop_proof",
    )
    .await;
}

async fn the_token_endpoint_refuses_bad_proofs(app: TestApp) {
    let (client, _) = client(&app, false).await;
    let key = DpopKey::new();
    let token_url = app.url("/oauth/token");
    let form = || vec![("grant_type", "client_credentials".to_owned())];
    let now = app.api.now();
    let jwk = key.jwk();
    let claims = json!({"jti": "x1", "htm": "POST", "htu": token_url, "iat": now});
    let mut private = jwk.clone();
    private["d"] = json!(B64.encode(key.key.to_bytes()));
    let bad = [
        key.proof(&app, "GET", &token_url, None),
        key.proof(&app, "POST", &app.url("/oauth/revoke"), None),
        key.proof_at("POST", &token_url, None, None, now - 300),
        "not-a-jwt".to_owned(),
        key.sign(&json!({"typ": "JWT", "alg": "ES256", "jwk": jwk}), &claims),
        key.sign(
            &json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": jwk}),
            &claims,
        ),
        key.sign(
            &json!({"typ": "dpop+jwt", "alg": "none", "jwk": jwk}),
            &claims,
        ),
        key.sign(
            &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private}),
            &claims,
        ),
        key.sign(&json!({"typ": "dpop+jwt", "alg": "ES256"}), &claims),
        // Signed by one key, naming another.
        DpopKey::new().sign(
            &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}),
            &claims,
        ),
    ];
    for proof in bad {
        let response = token_request(&app, &client, form(), Some(&proof)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{proof}");
        assert_eq!(header(&response, "cache-control"), "no-store");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
    }
    // A good proof once; the same again is a replay.
    let proof = key.proof(&app, "POST", &token_url, None);
    let response = token_request(&app, &client, form(), Some(&proof)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = token_request(&app, &client, form(), Some(&proof)).await;
    let body = json_with(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"], "invalid_dpop_proof");
    // An Ed25519 key works as well (and its `jkt` is its own).
    let ed = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let ed_jwk =
        json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(ed.verifying_key().as_bytes())});
    let mut jwt = format!(
        "{}.{}",
        B64.encode(json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": ed_jwk}).to_string()),
        B64.encode(json!({"jti": "ed1", "htm": "POST", "htu": token_url, "iat": now}).to_string())
    );
    let signature = ed25519_dalek::Signer::sign(&ed, jwt.as_bytes());
    jwt.push('.');
    jwt.push_str(&B64.encode(signature.to_bytes()));
    let response = token_request(&app, &client, form(), Some(&jwt)).await;
    let tokens = json_with(response, StatusCode::OK).await;
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        ed_jwk["x"].as_str().unwrap()
    );
    assert_eq!(
        claims_of(tokens["access_token"].as_str().unwrap())["cnf"]["jkt"],
        B64.encode(sha2::Sha256::digest(canonical.as_bytes()))
    );
}

async fn a_public_clients_refresh_token_is_bound_to_the_key(app: TestApp) {
    let (client, email) = client(&app, true).await;
    let key = DpopKey::new();
    let tokens = dpop_code_flow(&app, &client, &email, &key).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let form = |token: &str| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", token.to_owned()),
        ]
    };
    let token_url = app.url("/oauth/token");
    // Without a proof, and with another key's: refused.
    let response = token_request(&app, &client, form(&refresh), None).await;
    let body = json_with(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
    let thief = DpopKey::new();
    let proof = thief.proof(&app, "POST", &token_url, None);
    let response = token_request(&app, &client, form(&refresh), Some(&proof)).await;
    let body = json_with(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
    // With the key: a new bound pair, and the successor is bound too.
    let proof = key.proof(&app, "POST", &token_url, None);
    let response = token_request(&app, &client, form(&refresh), Some(&proof)).await;
    let next = json_with(response, StatusCode::OK).await;
    assert_eq!(next["token_type"], "DPoP");
    assert_eq!(
        claims_of(next["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.thumbprint()
    );
    let successor = next["refresh_token"].as_str().unwrap();
    let response = token_request(&app, &client, form(successor), None).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let proof = key.proof(&app, "POST", &token_url, None);
    let response = token_request(&app, &client, form(successor), Some(&proof)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn a_confidential_clients_refresh_token_is_not_bound(app: TestApp) {
    let (client, email) = client(&app, false).await;
    let key = DpopKey::new();
    let tokens = dpop_code_flow(&app, &client, &email, &key).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    // RFC 9449 §5: a confidential client's refresh token is bound by its authentication.
    let response = token_request(
        &app,
        &client,
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh.to_owned()),
        ],
        None,
    )
    .await;
    let next = json_with(response, StatusCode::OK).await;
    assert_eq!(next["token_type"], "Bearer");
    assert!(claims_of(next["access_token"].as_str().unwrap())["cnf"].is_null());
}

async fn forward_auth_checks_the_original_request(app: TestApp) {
    let (client, _) = client(&app, false).await;
    let key = DpopKey::new();
    let tokens = client_credentials(&app, &client, &key).await;
    let access = tokens["access_token"].as_str().unwrap();
    let original = "https://api.example.com/orders/42";
    let forward = |proof: Option<String>, method: &'static str| {
        let mut request = app
            .http
            .get(app.url("/auth/forward"))
            .query(&[("resource", app.base.as_str()), ("scope", "users:read")])
            .header("Authorization", format!("DPoP {access}"))
            .header("X-Forwarded-Method", method)
            .header("X-Forwarded-Proto", "https")
            .header("X-Forwarded-Host", "api.example.com")
            .header("X-Forwarded-Uri", "/orders/42?page=2");
        if let Some(proof) = proof {
            request = request.header("DPoP", proof);
        }
        request.send()
    };
    let proof = key.proof(&app, "DELETE", original, Some(access));
    let response = forward(Some(proof.clone()), "DELETE").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-netapi-credential"), "access_token");
    // Replayed through the proxy: refused.
    let response = forward(Some(proof), "DELETE").await.unwrap();
    expect_dpop_refusal(response, "invalid_dpop_proof").await;
    // A proof for another method or URL of the API.
    let proof = key.proof(&app, "GET", original, Some(access));
    let response = forward(Some(proof), "DELETE").await.unwrap();
    expect_dpop_refusal(response, "invalid_dpop_proof").await;
    let proof = key.proof(
        &app,
        "DELETE",
        "https://api.example.com/orders/43",
        Some(access),
    );
    let response = forward(Some(proof), "DELETE").await.unwrap();
    expect_dpop_refusal(response, "invalid_dpop_proof").await;
    // Without a proof, or as a bearer token.
    expect_dpop_refusal(forward(None, "GET").await.unwrap(), "invalid_dpop_proof").await;
    let response = app
        .http
        .get(app.url("/auth/forward"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    expect_dpop_refusal(response, "invalid_token").await;
}

async fn introspection_shows_the_confirmation(app: TestApp) {
    let (client, _) = client(&app, false).await;
    let key = DpopKey::new();
    let tokens = client_credentials(&app, &client, &key).await;
    let access = tokens["access_token"].as_str().unwrap();
    let response = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth(
            client["client_id"].as_str().unwrap(),
            client["client_secret"].as_str(),
        )
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    let found = json_with(response, StatusCode::OK).await;
    assert_eq!(found["active"], true);
    assert_eq!(found["token_type"], "DPoP");
    assert_eq!(found["cnf"]["jkt"], key.thumbprint());
}

async fn bearer_tokens_are_unchanged(app: TestApp) {
    let (client, _) = client(&app, false).await;
    let access = app.client_credentials_token(&client).await;
    assert!(claims_of(&access)["cnf"].is_null());
    assert_eq!(
        app.get("/v1/users/me", &access).await.status(),
        StatusCode::OK
    );
    // A bearer token is not sent with the DPoP scheme.
    let key = DpopKey::new();
    let proof = key.proof(&app, "GET", &app.url("/v1/users/me"), Some(&access));
    expect_dpop_refusal(me_with(&app, &access, Some(&proof)).await, "invalid_token").await;
}

async fn server_nonces_are_required_when_set(app: TestApp) {
    let (client, _) = client(&app, false).await;
    let key = DpopKey::new();
    let token_url = app.url("/oauth/token");
    let form = || vec![("grant_type", "client_credentials".to_owned())];
    // No nonce: `use_dpop_nonce` with one to use.
    let proof = key.proof(&app, "POST", &token_url, None);
    let response = token_request(&app, &client, form(), Some(&proof)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let nonce = header(&response, "dpop-nonce");
    assert!(!nonce.is_empty());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "use_dpop_nonce");
    // With it: tokens, and a nonce for next time.
    let now = app.api.now();
    let proof = key.proof_at("POST", &token_url, None, Some(&nonce), now);
    let response = token_request(&app, &client, form(), Some(&proof)).await;
    assert!(!header(&response, "dpop-nonce").is_empty());
    let tokens = json_with(response, StatusCode::OK).await;
    let access = tokens["access_token"].as_str().unwrap();
    // A made-up nonce is refused.
    let proof = key.proof_at("POST", &token_url, None, Some("made-up"), now);
    let response = token_request(&app, &client, form(), Some(&proof)).await;
    assert_eq!(
        json_with(response, StatusCode::BAD_REQUEST).await["error"],
        "use_dpop_nonce"
    );
    // At the resource: 401 `use_dpop_nonce` with `DPoP-Nonce`, then accepted with it.
    let me = app.url("/v1/users/me");
    let proof = key.proof(&app, "GET", &me, Some(access));
    let response = me_with(&app, access, Some(&proof)).await;
    let nonce = header(&response, "dpop-nonce");
    assert!(!nonce.is_empty());
    expect_dpop_refusal(response, "use_dpop_nonce").await;
    let proof = key.proof_at("GET", &me, Some(access), Some(&nonce), app.api.now());
    assert_eq!(
        me_with(&app, access, Some(&proof)).await.status(),
        StatusCode::OK
    );
    // Nonces expire: three periods later that one is refused, and a fresh one is handed out.
    app.clock.advance(3 * netapi_core::dpop::NONCE_PERIOD);
    let proof = key.proof_at("GET", &me, Some(access), Some(&nonce), app.api.now());
    let response = me_with(&app, access, Some(&proof)).await;
    assert_ne!(header(&response, "dpop-nonce"), nonce);
    expect_dpop_refusal(response, "use_dpop_nonce").await;
    // Another instance (same pepper) accepts this instance's nonce.
    let other = app.another_instance().await;
    let nonce = app.api.dpop_nonce().unwrap();
    assert!(other.api.dpop_nonce().is_some_and(|n| n == nonce));
}
