//! Issue 17, the client side of DPoP (RFC 9449): an authorization code bound to the key an
//! authorization request names (`dpop_jkt`, §10, at `/oauth/authorize` and `/oauth/par`, or
//! the key of a proof sent to `/oauth/par`, §10.1), and clients registered with
//! `dpop_bound_access_tokens` (§5.2), which get no bearer token.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dpop::{DpopKey, claims_of, token_request};
use crate::e2e;
use crate::helpers::{
    Browser, Pkce, TestApp, approve, approved_code, json_with, location_of, query_pairs,
};

const REDIRECT: &str = "https://app.example.com/callback";

e2e!(
    a_code_bound_by_dpop_jkt_needs_a_proof_of_that_key,
    a_malformed_dpop_jkt_is_refused,
    a_pushed_request_binds_the_code_to_its_proofs_key,
    dpop_bound_access_tokens_refuses_token_requests_without_a_proof,
    dpop_bound_access_tokens_at_dynamic_registration,
);

/// A confidential web client of a new member, and the member's email.
async fn web_client(app: &TestApp, extra: Value) -> (Value, String) {
    let email = format!(
        "dpopc-{}@example.com",
        netapi_core::secret::random_base62(8).to_lowercase()
    );
    let key = app.member_key(&email).await;
    let mut body = json!({
        "client_name": "DPoP web app",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "scope": "users:read",
    });
    for (name, value) in extra.as_object().unwrap() {
        body[name] = value.clone();
    }
    (app.create_client(&key, body).await, email)
}

fn authorize_url(app: &TestApp, client: &Value, pkce: &Pkce, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&app.url("/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client["client_id"].as_str().unwrap())
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "users:read")
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    for (name, value) in extra {
        url.query_pairs_mut().append_pair(name, value);
    }
    url.to_string()
}

/// The code for `url` in a browser whose user is signed in (approving if asked).
async fn code_at(app: &TestApp, browser: &mut Browser, url: &str) -> String {
    let response = browser.get(app, url).await;
    let response = if response.status() == StatusCode::SEE_OTHER {
        response
    } else {
        assert_eq!(response.status(), StatusCode::OK);
        let consent = response.text().await.unwrap();
        approve(app, browser, &consent).await
    };
    query_pairs(&location_of(&response))["code"].clone()
}

/// Exchanges `code` with `proof` (if any).
async fn exchange(
    app: &TestApp,
    client: &Value,
    code: &str,
    pkce: &Pkce,
    proof: Option<&str>,
) -> reqwest::Response {
    token_request(
        app,
        client,
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("code_verifier", pkce.verifier.clone()),
        ],
        proof,
    )
    .await
}

async fn oauth_error(response: reqwest::Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    body
}

async fn a_code_bound_by_dpop_jkt_needs_a_proof_of_that_key(app: TestApp) {
    let (client, email) = web_client(&app, json!({})).await;
    let key = DpopKey::new();
    let jkt = key.thumbprint();
    let token_url = app.url("/oauth/token");
    let mut browser = Browser::new();

    // Without a proof: refused, and the code is used up (RFC 9449 §10).
    let pkce = Pkce::random();
    let url = authorize_url(&app, &client, &pkce, &[("dpop_jkt", &jkt)]);
    let code = approved_code(&app, &mut browser, &url, &email).await;
    let body = oauth_error(
        exchange(&app, &client, &code, &pkce, None).await,
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
    )
    .await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("required"),
        "{body}"
    );
    let proof = key.proof(&app, "POST", &token_url, None);
    oauth_error(
        exchange(&app, &client, &code, &pkce, Some(&proof)).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;

    // With a proof of another key (whoever stole the code): refused.
    let pkce = Pkce::random();
    let url = authorize_url(&app, &client, &pkce, &[("dpop_jkt", &jkt)]);
    let code = code_at(&app, &mut browser, &url).await;
    let thief = DpopKey::new();
    let proof = thief.proof(&app, "POST", &token_url, None);
    let body = oauth_error(
        exchange(&app, &client, &code, &pkce, Some(&proof)).await,
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
    )
    .await;
    assert!(
        body["error_description"].as_str().unwrap().contains("key"),
        "{body}"
    );

    // With a proof of the key: tokens bound to it.
    let pkce = Pkce::random();
    let url = authorize_url(&app, &client, &pkce, &[("dpop_jkt", &jkt)]);
    let code = code_at(&app, &mut browser, &url).await;
    let proof = key.proof(&app, "POST", &token_url, None);
    let tokens = json_with(
        exchange(&app, &client, &code, &pkce, Some(&proof)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tokens["token_type"], "DPoP");
    assert_eq!(
        claims_of(tokens["access_token"].as_str().unwrap())["cnf"]["jkt"],
        jkt.as_str()
    );

    // A code without dpop_jkt is exchanged as before, with or without a proof.
    let pkce = Pkce::random();
    let url = authorize_url(&app, &client, &pkce, &[]);
    let code = code_at(&app, &mut browser, &url).await;
    let tokens = json_with(
        exchange(&app, &client, &code, &pkce, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tokens["token_type"], "Bearer");
}

async fn a_malformed_dpop_jkt_is_refused(app: TestApp) {
    let (client, email) = web_client(&app, json!({})).await;
    let id = client["client_id"].as_str().unwrap();
    let secret = client["client_secret"].as_str().unwrap();
    let pkce = Pkce::random();
    let good = DpopKey::new().thumbprint();
    // Too short, too long, not base64url, trailing bits set (not 32 bytes' encoding).
    let mut last_bits = good[..42].to_owned();
    last_bits.push('B');
    for bad in [
        &good[..42],
        &format!("{good}A"),
        &format!("{}+", &good[..42]),
        last_bits.as_str(),
    ] {
        // At the PAR endpoint: invalid_request.
        let response = app
            .http
            .post(app.url("/oauth/par"))
            .basic_auth(id, Some(secret))
            .form(&[
                ("response_type", "code"),
                ("redirect_uri", REDIRECT),
                ("code_challenge", pkce.challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("dpop_jkt", bad),
            ])
            .send()
            .await
            .unwrap();
        let body = oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("dpop_jkt"),
            "{bad}: {body}"
        );
    }
    // At /oauth/authorize (a client not marked trusted): the error page, whose link is the
    // redirect with invalid_request; no code is issued, even to a signed-in user.
    let mut browser = Browser::new();
    let url = authorize_url(&app, &client, &pkce, &[]);
    approved_code(&app, &mut browser, &url, &email).await;
    let url = authorize_url(&app, &client, &pkce, &[("dpop_jkt", &good[..42])]);
    let response = browser.get(&app, &url).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.unwrap();
    assert!(page.contains("dpop_jkt"), "{page}");
    assert!(page.contains("error=invalid_request"), "{page}");
    assert!(!page.contains("code="), "{page}");
}

async fn a_pushed_request_binds_the_code_to_its_proofs_key(app: TestApp) {
    let (client, email) = web_client(&app, json!({})).await;
    let id = client["client_id"].as_str().unwrap().to_owned();
    let secret = client["client_secret"].as_str().unwrap().to_owned();
    let key = DpopKey::new();
    let par_url = app.url("/oauth/par");
    let token_url = app.url("/oauth/token");
    let push = |pkce: &Pkce, jkt: Option<String>, proof: Option<String>| {
        let mut form = vec![
            ("response_type", "code".to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("scope", "users:read".to_owned()),
            ("code_challenge", pkce.challenge.clone()),
            ("code_challenge_method", "S256".to_owned()),
        ];
        if let Some(jkt) = jkt {
            form.push(("dpop_jkt", jkt));
        }
        let mut request = app
            .http
            .post(app.url("/oauth/par"))
            .basic_auth(&id, Some(&secret))
            .form(&form);
        if let Some(proof) = proof {
            request = request.header("DPoP", proof);
        }
        request.send()
    };
    let via = |request_uri: &str| {
        let mut url = url::Url::parse(&app.url("/oauth/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", &id)
            .append_pair("request_uri", request_uri);
        url.to_string()
    };

    // A proof at PAR, no dpop_jkt: the code is bound to the proof's key.
    let pkce = Pkce::random();
    let proof = key.proof(&app, "POST", &par_url, None);
    let pushed = json_with(
        push(&pkce, None, Some(proof)).await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let mut browser = Browser::new();
    let url = via(pushed["request_uri"].as_str().unwrap());
    let code = approved_code(&app, &mut browser, &url, &email).await;
    let other = DpopKey::new().proof(&app, "POST", &token_url, None);
    oauth_error(
        exchange(&app, &client, &code, &pkce, Some(&other)).await,
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
    )
    .await;

    let pkce = Pkce::random();
    let proof = key.proof(&app, "POST", &par_url, None);
    let pushed = json_with(
        push(&pkce, None, Some(proof)).await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let code = code_at(
        &app,
        &mut browser,
        &via(pushed["request_uri"].as_str().unwrap()),
    )
    .await;
    let proof = key.proof(&app, "POST", &token_url, None);
    let tokens = json_with(
        exchange(&app, &client, &code, &pkce, Some(&proof)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        claims_of(tokens["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.thumbprint().as_str()
    );

    // dpop_jkt and a proof of another key: refused (RFC 9449 §10.1); of the same key: fine.
    let pkce = Pkce::random();
    let proof = key.proof(&app, "POST", &par_url, None);
    let response = push(&pkce, Some(DpopKey::new().thumbprint()), Some(proof))
        .await
        .unwrap();
    oauth_error(response, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
    let proof = key.proof(&app, "POST", &par_url, None);
    let response = push(&pkce, Some(key.thumbprint()), Some(proof))
        .await
        .unwrap();
    json_with(response, StatusCode::CREATED).await;

    // A proof made for another endpoint, or used before: refused at PAR too.
    let proof = key.proof(&app, "POST", &token_url, None);
    let response = push(&pkce, None, Some(proof)).await.unwrap();
    oauth_error(response, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
    let proof = key.proof(&app, "POST", &par_url, None);
    json_with(
        push(&pkce, None, Some(proof.clone())).await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let response = push(&pkce, None, Some(proof)).await.unwrap();
    oauth_error(response, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;

    // dpop_jkt alone, pushed: bound as well; without a proof the code is refused.
    let pkce = Pkce::random();
    let pushed = json_with(
        push(&pkce, Some(key.thumbprint()), None).await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let code = code_at(
        &app,
        &mut browser,
        &via(pushed["request_uri"].as_str().unwrap()),
    )
    .await;
    oauth_error(
        exchange(&app, &client, &code, &pkce, None).await,
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
    )
    .await;
}

async fn client_credentials(
    app: &TestApp,
    client: &Value,
    proof: Option<&str>,
) -> reqwest::Response {
    token_request(
        app,
        client,
        vec![("grant_type", "client_credentials".to_owned())],
        proof,
    )
    .await
}

async fn dpop_bound_access_tokens_refuses_token_requests_without_a_proof(app: TestApp) {
    let owner = app.member_key("owner@example.com").await;
    let token_url = app.url("/oauth/token");
    // Off by default, and shown.
    let plain = app
        .create_client(
            &owner,
            json!({"client_name": "plain", "grant_types": ["client_credentials"], "scope": "users:read"}),
        )
        .await;
    assert_eq!(plain["dpop_bound_access_tokens"], false, "{plain}");

    let client = app
        .create_client(
            &owner,
            json!({"client_name": "bound", "grant_types": ["client_credentials"],
                   "scope": "users:read", "dpop_bound_access_tokens": true}),
        )
        .await;
    assert_eq!(client["dpop_bound_access_tokens"], true, "{client}");
    let id = client["client_id"].as_str().unwrap();
    let read = json_with(
        app.get(&format!("/v1/oauth-clients/{id}"), &owner).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read["dpop_bound_access_tokens"], true, "{read}");

    // No proof: refused (RFC 9449 §5.2), whatever the grant.
    let body = oauth_error(
        client_credentials(&app, &client, None).await,
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
    )
    .await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("DPoP proof"),
        "{body}"
    );
    // With one: a DPoP-bound token.
    let key = DpopKey::new();
    let proof = key.proof(&app, "POST", &token_url, None);
    let tokens = json_with(
        client_credentials(&app, &client, Some(&proof)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tokens["token_type"], "DPoP");
    // Wrong client credentials say nothing of the setting.
    let mut wrong = client.clone();
    wrong["client_secret"] = json!("wrong");
    oauth_error(
        client_credentials(&app, &wrong, None).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;

    // PATCH turns it off (bearer tokens again) and on; other fields stay.
    let patch = |value: Value| {
        app.http
            .patch(app.url(&format!("/v1/oauth-clients/{id}")))
            .bearer_auth(&owner)
            .json(&value)
            .send()
    };
    let off = json_with(
        patch(json!({"dpop_bound_access_tokens": false}))
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(off["dpop_bound_access_tokens"], false);
    let tokens = json_with(
        client_credentials(&app, &client, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tokens["token_type"], "Bearer");
    let renamed = json_with(
        patch(json!({"client_name": "renamed"})).await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(renamed["dpop_bound_access_tokens"], false);
    let on = json_with(
        patch(json!({"dpop_bound_access_tokens": true}))
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(on["dpop_bound_access_tokens"], true);
    assert_eq!(on["client_name"], "renamed");
    oauth_error(
        client_credentials(&app, &client, None).await,
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
    )
    .await;
    // Not a boolean: INVALID_ARGUMENT-style refusal, not a 500.
    let response = patch(json!({"dpop_bound_access_tokens": "yes"}))
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());

    // Someone else's client: 404.
    let stranger = app.member_key("stranger@example.com").await;
    let response = app
        .http
        .patch(app.url(&format!("/v1/oauth-clients/{id}")))
        .bearer_auth(&stranger)
        .json(&json!({"dpop_bound_access_tokens": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Discovery is unchanged: the setting is per client.
    let metadata = json_with(
        app.http
            .get(app.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(metadata.get("dpop_bound_access_tokens").is_none());
}

async fn dpop_bound_access_tokens_at_dynamic_registration(app: TestApp) {
    let key = app.member_key("ada@example.com").await;
    let response = app
        .http
        .post(app.url("/oauth/register"))
        .bearer_auth(&key)
        .json(&json!({
            "client_name": "Registered",
            "grant_types": ["client_credentials"],
            "scope": "users:read",
            "dpop_bound_access_tokens": true,
        }))
        .send()
        .await
        .unwrap();
    let registered = json_with(response, StatusCode::CREATED).await;
    assert_eq!(registered["dpop_bound_access_tokens"], true, "{registered}");
    oauth_error(
        client_credentials(&app, &registered, None).await,
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
    )
    .await;
    let proof = DpopKey::new().proof(&app, "POST", &app.url("/oauth/token"), None);
    let tokens = json_with(
        client_credentials(&app, &registered, Some(&proof)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tokens["token_type"], "DPoP");
    // The RFC 7592 read shows it; an update (a full replacement) that leaves it out turns
    // it off, as for every other field of the metadata.
    let uri = registered["registration_client_uri"].as_str().unwrap();
    let token = registered["registration_access_token"].as_str().unwrap();
    let read = json_with(
        app.http.get(uri).bearer_auth(token).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(read["dpop_bound_access_tokens"], true);
    let updated = json_with(
        app.http
            .put(uri)
            .bearer_auth(token)
            .json(&json!({
                "client_id": registered["client_id"],
                "client_name": "Registered",
                "grant_types": ["client_credentials"],
                "scope": "users:read",
            }))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["dpop_bound_access_tokens"], false, "{updated}");
    // Not a boolean: refused in the RFC 7591 shape.
    let response = app
        .http
        .post(app.url("/oauth/register"))
        .bearer_auth(&key)
        .json(&json!({"grant_types": ["client_credentials"], "dpop_bound_access_tokens": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client_metadata", "{body}");
}
