//! Issue 16: RS256 ID tokens (the algorithm OpenID Connect requires and most relying parties
//! verify), per-client `id_token_signed_response_alg`, RSA keys published and rotated like the
//! others, RS256 access tokens by setting; and loopback redirect URIs on any port for public
//! clients (RFC 8252 §7.3).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use netapi_core::model::{OAuthClient, SigningAlgorithm};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::e2e;
use crate::helpers::{
    Browser, Pkce, TestApp, approve, authorize_and_exchange, exchange_code, json_with, location_of,
    query_pairs, sign_in,
};

const REDIRECT: &str = "https://rp.example.com/callback";

pub(crate) fn jwt_parts(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS compact serialization");
    let decode =
        |part: &str| -> Value { serde_json::from_slice(&B64.decode(part).unwrap()).unwrap() };
    (decode(parts[0]), decode(parts[1]))
}

pub(crate) async fn jwks(app: &TestApp) -> Vec<Value> {
    let response = app
        .http
        .get(app.url("/oauth/jwks.json"))
        .send()
        .await
        .unwrap();
    json_with(response, StatusCode::OK).await["keys"]
        .as_array()
        .unwrap()
        .clone()
}

async fn discovery(app: &TestApp) -> Value {
    let response = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    json_with(response, StatusCode::OK).await
}

/// Checks `token`'s RS256 signature against the published key its `kid` names, with ring
/// (an implementation other than the server's aws-lc-rs).
pub(crate) fn verify_rs256(token: &str, keys: &[Value]) {
    let (header, _) = jwt_parts(token);
    assert_eq!(header["alg"], "RS256");
    let jwk = keys
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap_or_else(|| panic!("kid {} is not published", header["kid"]));
    let n = B64.decode(jwk["n"].as_str().unwrap()).unwrap();
    let e = B64.decode(jwk["e"].as_str().unwrap()).unwrap();
    let (signed, signature) = token.rsplit_once('.').unwrap();
    ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &B64.decode(signature).unwrap(),
        )
        .expect("independent RS256 verification");
}

/// A web client of a new owner, registered with `extra` metadata; returns the client (with
/// its secret) and the owner's email, who signs in.
async fn web_client(app: &TestApp, extra: Value) -> (Value, String) {
    let email = format!(
        "rp-{}@example.com",
        netapi_core::secret::random_base62(8).to_lowercase()
    );
    let key = app.member_key(&email).await;
    let mut body = json!({
        "client_name": "Relying Party",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid email users:read",
    });
    for (name, value) in extra.as_object().unwrap() {
        body[name] = value.clone();
    }
    (app.create_client(&key, body).await, email)
}

async fn sign_in_tokens(app: &TestApp, client: &Value, email: &str, scope: &str) -> Value {
    let mut browser = Browser::new();
    authorize_and_exchange(app, &mut browser, client, REDIRECT, scope, email).await
}

async fn refresh(app: &TestApp, client: &Value, refresh_token: &str, scope: Option<&str>) -> Value {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    form.extend(scope.map(|scope| ("scope", scope)));
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(
            client["client_id"].as_str().unwrap(),
            client["client_secret"].as_str(),
        )
        .form(&form)
        .send()
        .await
        .unwrap();
    json_with(response, StatusCode::OK).await
}

e2e!(
    a_new_clients_id_token_is_rs256_and_verifies_against_the_jwks,
    a_client_registered_with_eddsa_gets_eddsa,
    a_client_registered_before_the_choice_keeps_its_algorithm,
    id_token_algorithms_are_validated,
    discovery_and_jwks_list_exactly_the_keys_there_are,
    a_refresh_without_openid_has_no_id_token,
);

async fn a_new_clients_id_token_is_rs256_and_verifies_against_the_jwks(app: TestApp) {
    let (client, email) = web_client(&app, json!({})).await;
    assert_eq!(client["id_token_signed_response_alg"], "RS256");
    let tokens = sign_in_tokens(&app, &client, &email, "openid email users:read").await;
    let keys = jwks(&app).await;
    let id_token = tokens["id_token"].as_str().expect("an ID token");
    verify_rs256(id_token, &keys);
    let (_, claims) = jwt_parts(id_token);
    assert_eq!(claims["aud"], client["client_id"]);
    assert_eq!(claims["email"], email);
    // at_hash with SHA-256, as RS256 says (OpenID Connect Core §3.1.3.6).
    use sha2::Digest;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        claims["at_hash"],
        B64.encode(&sha2::Sha256::digest(access.as_bytes())[..16])
    );
    // Access tokens keep the server's algorithm.
    assert_eq!(jwt_parts(access).0["alg"], "EdDSA");
    assert_eq!(
        app.get("/v1/users/me", access).await.status(),
        StatusCode::OK
    );
}

async fn a_client_registered_with_eddsa_gets_eddsa(app: TestApp) {
    let (client, email) = web_client(&app, json!({"id_token_signed_response_alg": "EdDSA"})).await;
    assert_eq!(client["id_token_signed_response_alg"], "EdDSA");
    let tokens = sign_in_tokens(&app, &client, &email, "openid").await;
    let (header, _) = jwt_parts(tokens["id_token"].as_str().unwrap());
    assert_eq!(header["alg"], "EdDSA");
    assert!(
        jwks(&app)
            .await
            .iter()
            .any(|k| k["kid"] == header["kid"] && k["kty"] == "OKP")
    );
    // Switched to RS256, its next ID token (here from a refresh) is RS256.
    let admin = app.admin_key("root@example.com").await;
    let response = app
        .http
        .patch(app.url(&format!(
            "/v1/oauth-clients/{}",
            client["client_id"].as_str().unwrap()
        )))
        .bearer_auth(&admin)
        .json(&json!({"id_token_signed_response_alg": "RS256"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_with(response, StatusCode::OK).await["id_token_signed_response_alg"],
        "RS256"
    );
    let refreshed = refresh(
        &app,
        &client,
        tokens["refresh_token"].as_str().unwrap(),
        None,
    )
    .await;
    verify_rs256(refreshed["id_token"].as_str().unwrap(), &jwks(&app).await);
}

/// A client registered before `id_token_signed_response_alg` existed has none stored (the
/// migration leaves it NULL): it keeps the server's algorithm, so its relying party sees no
/// change on upgrade.
async fn a_client_registered_before_the_choice_keeps_its_algorithm(app: TestApp) {
    let (client, email) = web_client(&app, json!({})).await;
    let id = client["client_id"].as_str().unwrap();
    let store = app.api.store();
    let stored = store.get_client(id).await.unwrap().unwrap();
    assert!(store.delete_client(id).await.unwrap());
    let legacy = OAuthClient {
        id_token_signed_response_alg: None,
        ..stored
    };
    store.insert_client(&legacy).await.unwrap();
    let owner = app.admin_key("root@example.com").await;
    let shown = json_with(
        app.get(&format!("/v1/oauth-clients/{id}"), &owner).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shown["id_token_signed_response_alg"], Value::Null);
    let tokens = sign_in_tokens(&app, &client, &email, "openid").await;
    let (header, _) = jwt_parts(tokens["id_token"].as_str().unwrap());
    assert_eq!(header["alg"], "EdDSA");
}

async fn id_token_algorithms_are_validated(app: TestApp) {
    let key = app.member_key("picky@example.com").await;
    // Unknown, symmetric, `none`, and ES256 (no ES256 keys on this server).
    for alg in ["HS256", "none", "ES256", "rs256", ""] {
        let response = app
            .post_json(
                "/v1/oauth-clients",
                &key,
                json!({
                    "client_name": "Picky",
                    "redirect_uris": [REDIRECT],
                    "id_token_signed_response_alg": alg,
                }),
            )
            .await;
        let body = json_with(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["error"]["code"], "INVALID_ARGUMENT", "{alg}: {body}");
        assert!(
            body.to_string().contains("id_token_signed_response_alg"),
            "{alg}: {body}"
        );
    }
    let (client, _) = web_client(&app, json!({})).await;
    let response = app
        .http
        .patch(app.url(&format!(
            "/v1/oauth-clients/{}",
            client["client_id"].as_str().unwrap()
        )))
        .bearer_auth(app.admin_key("root@example.com").await)
        .json(&json!({"id_token_signed_response_alg": "HS256"}))
        .send()
        .await
        .unwrap();
    json_with(response, StatusCode::BAD_REQUEST).await;
}

async fn discovery_and_jwks_list_exactly_the_keys_there_are(app: TestApp) {
    assert_eq!(
        discovery(&app).await["id_token_signing_alg_values_supported"],
        json!(["RS256", "EdDSA"])
    );
    let keys = jwks(&app).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    let rsa = keys.iter().find(|k| k["kty"] == "RSA").expect("an RSA key");
    assert_eq!(rsa["alg"], "RS256");
    assert_eq!(rsa["use"], "sig");
    assert!(rsa["kid"].as_str().is_some_and(|kid| !kid.is_empty()));
    assert_eq!(
        B64.decode(rsa["n"].as_str().unwrap()).unwrap().len(),
        256,
        "RSA-2048"
    );
    assert_eq!(rsa["e"], "AQAB");
    // Public halves only.
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(rsa.get(private).is_none(), "{private} published");
    }
}

/// OpenID Connect Core §12.2: a refresh may return an ID token; here only when the refreshed
/// grant still has `openid`, so a refresh that narrows the scope without it has none (and
/// costs no RSA signature).
async fn a_refresh_without_openid_has_no_id_token(app: TestApp) {
    let (client, email) = web_client(&app, json!({})).await;
    let tokens = sign_in_tokens(&app, &client, &email, "openid users:read").await;
    let with_openid = refresh(
        &app,
        &client,
        tokens["refresh_token"].as_str().unwrap(),
        None,
    )
    .await;
    verify_rs256(with_openid["id_token"].as_str().unwrap(), &jwks(&app).await);
    let without = refresh(
        &app,
        &client,
        with_openid["refresh_token"].as_str().unwrap(),
        Some("users:read"),
    )
    .await;
    assert_eq!(without["scope"], "users:read");
    assert!(without.get("id_token").is_none(), "{without}");
    assert!(without["access_token"].is_string());
}

// ---------------------------------------------------------------------------------------
// Rotation

e2e!(settings = |s: &mut netapi_core::Settings| {
    s.signing_key_publish_delay = 0;
}; rotation_rotates_the_rsa_keys_too);

async fn rotation_rotates_the_rsa_keys_too(app: TestApp) {
    let (client, email) = web_client(&app, json!({})).await;
    let tokens = sign_in_tokens(&app, &client, &email, "openid").await;
    let old_kid = jwt_parts(tokens["id_token"].as_str().unwrap()).0["kid"].clone();
    let new_keys = app.api.rotate_signing_keys().await.unwrap();
    let algs: Vec<SigningAlgorithm> = new_keys.iter().map(|k| k.alg).collect();
    assert_eq!(algs, [SigningAlgorithm::EdDsa, SigningAlgorithm::Rs256]);
    let keys = jwks(&app).await;
    assert_eq!(keys.len(), 4, "old and new of each algorithm: {keys:?}");
    // The old RSA key stays published for the tokens it signed; new ID tokens use the new one.
    assert!(keys.iter().any(|k| k["kid"] == old_kid));
    let refreshed = refresh(
        &app,
        &client,
        tokens["refresh_token"].as_str().unwrap(),
        None,
    )
    .await;
    let id_token = refreshed["id_token"].as_str().unwrap();
    verify_rs256(id_token, &keys);
    assert_eq!(jwt_parts(id_token).0["kid"], new_keys[1].kid.as_str());
    // Once what the old keys signed has expired, only the new keys are left.
    app.clock.advance(900 + 120 + 1);
    app.api.housekeeping().await.unwrap();
    let mut kids: Vec<String> = jwks(&app)
        .await
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    let mut expected: Vec<String> = new_keys.iter().map(|k| k.kid.clone()).collect();
    expected.sort();
    assert_eq!(kids, expected);
}

// ---------------------------------------------------------------------------------------
// RS256 access tokens by setting

e2e!(settings = |s: &mut netapi_core::Settings| {
    s.signing_algorithm = netapi_core::model::SigningAlgorithm::Rs256;
}; access_tokens_are_rs256_by_setting);

async fn access_tokens_are_rs256_by_setting(app: TestApp) {
    let key = app.member_key("svc@example.com").await;
    let client = app
        .create_client(
            &key,
            json!({"client_name": "svc", "grant_types": ["client_credentials"], "scope": "users:read"}),
        )
        .await;
    let access = app.client_credentials_token(&client).await;
    let keys = jwks(&app).await;
    // One family: RSA keys serve both token kinds.
    assert_eq!(keys.len(), 1, "{keys:?}");
    verify_rs256(&access, &keys);
    assert_eq!(jwt_parts(&access).0["typ"], "at+jwt");
    assert_eq!(
        app.get("/v1/users/me", &access).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        discovery(&app).await["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    // EdDSA is not on offer here.
    let response = app
        .post_json(
            "/v1/oauth-clients",
            &key,
            json!({
                "client_name": "Ed",
                "redirect_uris": [REDIRECT],
                "id_token_signed_response_alg": "EdDSA",
            }),
        )
        .await;
    json_with(response, StatusCode::BAD_REQUEST).await;
}

// ---------------------------------------------------------------------------------------
// Loopback redirect URIs (RFC 8252 §7.3)

e2e!(
    a_public_clients_loopback_redirect_matches_any_port,
    loopback_ports_are_exact_for_confidential_clients_and_localhost,
);

/// Starts an authorization request for `client_id` at `redirect_uri`; the status tells
/// whether the redirect URI was accepted (the login page, 200) or not (an error page, 400).
async fn authorize_status(app: &TestApp, client_id: &str, redirect_uri: &str) -> StatusCode {
    let pkce = Pkce::random();
    let mut url = url::Url::parse(&app.url("/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "openid")
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    Browser::new().get(app, url.as_str()).await.status()
}

async fn a_public_clients_loopback_redirect_matches_any_port(app: TestApp) {
    let email = "native@example.com";
    let key = app.member_key(email).await;
    let client = app
        .create_client(
            &key,
            json!({
                "client_name": "CLI",
                "redirect_uris": ["http://127.0.0.1/cb", "http://[::1]/cb"],
                "token_endpoint_auth_method": "none",
                "scope": "openid users:read",
            }),
        )
        .await;
    let id = client["client_id"].as_str().unwrap();
    for uri in [
        "http://127.0.0.1/cb",
        "http://127.0.0.1:54321/cb",
        "http://[::1]:54321/cb",
        "http://[::1]:1/cb",
    ] {
        assert_eq!(
            authorize_status(&app, id, uri).await,
            StatusCode::OK,
            "{uri}"
        );
    }
    // Only the port may differ.
    for uri in [
        "http://127.0.0.1:54321/other",
        "http://127.0.0.1:54321/cb?x=1",
        "http://127.0.0.1:54321/cb/",
        "https://127.0.0.1:54321/cb",
        "http://127.0.0.2:54321/cb",
        "http://[::1]:54321/cb#f",
        "http://user@127.0.0.1:54321/cb",
        "http://127.0.0.1:54321/./cb",
        "http://localhost:54321/cb",
    ] {
        assert_eq!(
            authorize_status(&app, id, uri).await,
            StatusCode::BAD_REQUEST,
            "{uri}"
        );
    }
    // The whole flow on an ephemeral port: the code goes to that port, and the exchange
    // names the same URI.
    let redirect = "http://127.0.0.1:54321/cb";
    let pkce = Pkce::random();
    let mut url = url::Url::parse(&app.url("/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", id)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "openid")
        .append_pair("state", "s")
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    let mut browser = Browser::new();
    let consent = sign_in(&app, &mut browser, url.as_str(), email).await;
    let location = location_of(&approve(&app, &mut browser, &consent).await);
    assert!(
        location.starts_with("http://127.0.0.1:54321/cb?"),
        "{location}"
    );
    let code = query_pairs(&location)["code"].clone();
    let tokens = exchange_code(&app, id, None, &code, Some(redirect), Some(&pkce.verifier)).await;
    verify_rs256(tokens["id_token"].as_str().unwrap(), &jwks(&app).await);
}

async fn loopback_ports_are_exact_for_confidential_clients_and_localhost(app: TestApp) {
    let key = app.member_key("web@example.com").await;
    let confidential = app
        .create_client(
            &key,
            json!({
                "client_name": "Web",
                "redirect_uris": ["http://127.0.0.1/cb"],
            }),
        )
        .await;
    let id = confidential["client_id"].as_str().unwrap();
    assert_eq!(
        authorize_status(&app, id, "http://127.0.0.1/cb").await,
        StatusCode::OK
    );
    assert_eq!(
        authorize_status(&app, id, "http://127.0.0.1:54321/cb").await,
        StatusCode::BAD_REQUEST
    );
    let localhost = app
        .create_client(
            &key,
            json!({
                "client_name": "Local",
                "redirect_uris": ["http://localhost/cb"],
                "token_endpoint_auth_method": "none",
            }),
        )
        .await;
    let id = localhost["client_id"].as_str().unwrap();
    assert_eq!(
        authorize_status(&app, id, "http://localhost/cb").await,
        StatusCode::OK
    );
    assert_eq!(
        authorize_status(&app, id, "http://localhost:54321/cb").await,
        StatusCode::BAD_REQUEST
    );
}
