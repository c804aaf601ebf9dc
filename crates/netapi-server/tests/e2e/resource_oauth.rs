//! OAuth 2.0 for resources (RFC 8707): `resource` at `/oauth/authorize` and `/oauth/token`
//! for every grant, `invalid_target`, tokens whose `aud` and scopes are the resource's, the
//! consent page naming the resource, and introspection told only about listed resources.

use crate::authorize::{error_link, trust};
use crate::e2e;
use crate::helpers::{
    Browser, TestApp, expect_error, hidden_field, json_with, location_of, query_pairs, sign_in,
};
use crate::resources::{ORDERS, define, forward, orders_api};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};

e2e!(
    authorization_code_with_pkce_for_a_resource,
    client_credentials_for_a_resource,
    bad_targets_at_the_authorization_endpoint,
    clients_register_the_resources_they_use,
    introspection_tells_only_about_listed_resources,
);

const BILLING: &str = "https://billing.example.com";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
/// An RFC 7636 verifier and its S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// Orders (300 s tokens) and Billing, defined by a new admin; returns the admin's key.
async fn two_apis(app: &TestApp) -> String {
    let admin = app.admin_key("oauth-res-admin@example.com").await;
    let mut orders = orders_api(ORDERS);
    orders["access_token_ttl"] = json!(300);
    define(app, &admin, orders).await;
    define(app, &admin, orders_api(BILLING)).await;
    admin
}

fn claims(token: &str) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

async fn token(app: &TestApp, client: &Value, form: &[(&str, &str)]) -> reqwest::Response {
    app.http
        .post(app.url("/oauth/token"))
        .basic_auth(
            client["client_id"].as_str().unwrap(),
            client["client_secret"].as_str(),
        )
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn oauth_error(response: reqwest::Response, error: &str) {
    let body = json_with(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"], error, "{body}");
}

fn authorize_url(app: &TestApp, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&app.url("/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", "s1")
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256");
    for (name, value) in extra {
        url.query_pairs_mut().append_pair(name, value);
    }
    url.to_string()
}

async fn authorization_code_with_pkce_for_a_resource(app: TestApp) {
    two_apis(&app).await;
    let member = app.member_key("oauth-res-member@example.com").await;
    let client = app
        .create_client(
            &member,
            json!({
                "client_name": "Shop App",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "users:read orders:read",
                "resources": [ORDERS],
            }),
        )
        .await;
    assert_eq!(client["resources"], json!([ORDERS]));
    assert_eq!(client["scope"], "users:read orders:read");
    let client_id = client["client_id"].as_str().unwrap();

    let url = authorize_url(
        &app,
        client_id,
        &[("resource", ORDERS), ("scope", "orders:read")],
    );
    let mut browser = Browser::new();
    let consent = sign_in(&app, &mut browser, &url, "oauth-res-member@example.com").await;
    assert!(
        consent.contains("Orders API"),
        "the consent page names the resource"
    );
    assert!(consent.contains(ORDERS));
    assert!(
        consent.contains("See your orders"),
        "and the scopes' descriptions"
    );
    let approved = browser
        .post(
            &app,
            "/oauth/authorize",
            &[
                ("csrf_token", &hidden_field(&consent, "csrf_token")),
                ("request", &hidden_field(&consent, "request")),
                ("decision", "approve"),
            ],
        )
        .await;
    let code = query_pairs(&location_of(&approved))["code"].clone();
    let exchange = |code: String, resource: &'static str| {
        let client = client.clone();
        let app = &app;
        async move {
            let mut form = vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code),
                ("redirect_uri", REDIRECT.to_owned()),
                ("code_verifier", VERIFIER.to_owned()),
            ];
            if !resource.is_empty() {
                form.push(("resource", resource.to_owned()));
            }
            let form: Vec<(&str, &str)> = form.iter().map(|(n, v)| (*n, v.as_str())).collect();
            token(app, &client, &form).await
        }
    };
    let tokens = json_with(exchange(code, ORDERS).await, StatusCode::OK).await;
    assert_eq!(tokens["scope"], "orders:read");
    assert_eq!(tokens["expires_in"], 300, "the resource's token lifetime");
    assert!(tokens.get("id_token").is_none());
    let access = tokens["access_token"].as_str().unwrap();
    let at = claims(access);
    assert_eq!(at["aud"], ORDERS);
    assert_eq!(at["scope"], "orders:read");
    assert_eq!(
        at["exp"].as_i64().unwrap() - at["iat"].as_i64().unwrap(),
        300
    );

    assert_eq!(
        forward(&app, access, ORDERS, "orders:read").await.status(),
        StatusCode::OK
    );
    expect_error(
        forward(&app, access, BILLING, "").await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
    expect_error(
        app.get("/v1/users/me", access).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;

    // Refresh: the granted resource, or none; never another.
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    oauth_error(
        token(
            &app,
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("resource", BILLING),
            ],
        )
        .await,
        "invalid_target",
    )
    .await;
    let renewed = json_with(
        token(
            &app,
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("resource", ORDERS),
            ],
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        claims(renewed["access_token"].as_str().unwrap())["aud"],
        ORDERS
    );
    let again = json_with(
        token(
            &app,
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", renewed["refresh_token"].as_str().unwrap()),
            ],
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        claims(again["access_token"].as_str().unwrap())["aud"],
        ORDERS
    );
    assert_eq!(again["scope"], "orders:read");
    oauth_error(
        token(
            &app,
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", again["refresh_token"].as_str().unwrap()),
                ("scope", "orders:write"),
            ],
        )
        .await,
        "invalid_scope",
    )
    .await;

    // The consent is remembered for the resource; a code must be exchanged for its own.
    let remembered = browser.get(&app, &url).await;
    assert_eq!(remembered.status(), StatusCode::SEE_OTHER);
    let code = query_pairs(&location_of(&remembered))["code"].clone();
    oauth_error(exchange(code, BILLING).await, "invalid_target").await;
    let remembered = browser.get(&app, &url).await;
    let code = query_pairs(&location_of(&remembered))["code"].clone();
    let plain = json_with(exchange(code, "").await, StatusCode::OK).await;
    assert_eq!(
        claims(plain["access_token"].as_str().unwrap())["aud"],
        ORDERS
    );
    // Net API's own scopes still need their own request.
    let own = authorize_url(&app, client_id, &[("scope", "users:read")]);
    let consent = browser.get(&app, &own).await;
    assert_eq!(
        consent.status(),
        StatusCode::OK,
        "not yet approved for Net API's own"
    );
}

async fn client_credentials_for_a_resource(app: TestApp) {
    let admin = two_apis(&app).await;
    let (member, member_key) = app.register("cc-res@example.com").await;
    let member_key = member_key["key"].as_str().unwrap();
    let grants = format!("/v1/users/{}/grants", member["id"].as_str().unwrap());
    let granted = app
        .http
        .put(app.url(&grants))
        .bearer_auth(&admin)
        .json(&json!({"resource": ORDERS, "scopes": ["orders:write"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), StatusCode::OK);
    let client = app
        .create_client(
            member_key,
            json!({"client_name": "svc", "grant_types": ["client_credentials"], "resources": [ORDERS], "scope": "users:read orders:read orders:write"}),
        )
        .await;
    let issued = json_with(
        token(
            &app,
            &client,
            &[("grant_type", "client_credentials"), ("resource", ORDERS)],
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(issued["scope"], "orders:read orders:write");
    let access = issued["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&access)["aud"], ORDERS);
    assert_eq!(
        forward(&app, &access, ORDERS, "orders:write")
            .await
            .status(),
        StatusCode::OK
    );
    let narrow = json_with(
        token(
            &app,
            &client,
            &[
                ("grant_type", "client_credentials"),
                ("resource", ORDERS),
                ("scope", "orders:read"),
            ],
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(narrow["scope"], "orders:read");
    // Without a resource: Net API's own, as before.
    let own = json_with(
        token(&app, &client, &[("grant_type", "client_credentials")]).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        claims(own["access_token"].as_str().unwrap())["aud"],
        app.base.as_str()
    );
    assert_eq!(own["scope"], "users:read");
    let named_own = json_with(
        token(
            &app,
            &client,
            &[
                ("grant_type", "client_credentials"),
                ("resource", &app.base),
            ],
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        claims(named_own["access_token"].as_str().unwrap())["aud"],
        app.base.as_str()
    );

    for resource in [
        BILLING,
        "https://unknown.example.com",
        "orders",
        "https://orders.example.com#x",
    ] {
        oauth_error(
            token(
                &app,
                &client,
                &[("grant_type", "client_credentials"), ("resource", resource)],
            )
            .await,
            "invalid_target",
        )
        .await;
    }
    oauth_error(
        token(
            &app,
            &client,
            &[
                ("grant_type", "client_credentials"),
                ("resource", ORDERS),
                ("resource", ORDERS),
            ],
        )
        .await,
        "invalid_target",
    )
    .await;
    for scope in ["orders:read billing:read", "users:read", "orders:delete"] {
        oauth_error(
            token(
                &app,
                &client,
                &[
                    ("grant_type", "client_credentials"),
                    ("resource", ORDERS),
                    ("scope", scope),
                ],
            )
            .await,
            "invalid_scope",
        )
        .await;
    }
    oauth_error(
        token(
            &app,
            &client,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "orders:read"),
            ],
        )
        .await,
        "invalid_scope",
    )
    .await;

    // The grant taken back: the token loses the scope at its next use.
    app.http
        .put(app.url(&grants))
        .bearer_auth(&admin)
        .json(&json!({"resource": ORDERS, "scopes": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        forward(&app, &access, ORDERS, "orders:write")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        forward(&app, &access, ORDERS, "orders:read").await.status(),
        StatusCode::OK
    );
    let reissued = json_with(
        token(
            &app,
            &client,
            &[("grant_type", "client_credentials"), ("resource", ORDERS)],
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(reissued["scope"], "orders:read");
    // The client still lists orders:write, which its owner no longer holds: the owner may
    // neither rotate its secret nor change it (either would hand the scope back); an
    // administrator may.
    let client_path = format!(
        "/v1/oauth-clients/{}",
        client["client_id"].as_str().unwrap()
    );
    let rotate = app
        .http
        .post(app.url(&format!("{client_path}/rotate-secret")))
        .bearer_auth(member_key)
        .send()
        .await
        .unwrap();
    let refused = expect_error(rotate, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("orders:write"),
        "{refused}"
    );
    let rename = app
        .http
        .patch(app.url(&client_path))
        .bearer_auth(member_key)
        .json(&json!({"client_name": "renamed"}))
        .send()
        .await
        .unwrap();
    expect_error(rename, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    let unchanged = json_with(app.get(&client_path, member_key).await, StatusCode::OK).await;
    assert_eq!(unchanged["client_name"], "svc");
    let by_admin = app
        .http
        .patch(app.url(&client_path))
        .bearer_auth(&admin)
        .json(&json!({"client_name": "renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_admin.status(), StatusCode::OK);

    // Deleting the resource stops its tokens at once; it is no target any more.
    let listed = json_with(app.get("/v1/resources", &admin).await, StatusCode::OK).await;
    let id = listed["resources"][0]["id"].as_str().unwrap();
    assert_eq!(listed["resources"][0]["identifier"], ORDERS);
    assert_eq!(
        app.delete(&format!("/v1/resources/{id}"), &admin)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        forward(&app, &access, ORDERS, "orders:read").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let verifier_client = app
        .create_client(
            &admin,
            json!({"client_name": "rs", "grant_types": ["client_credentials"]}),
        )
        .await;
    let inactive = json_with(
        app.http
            .post(app.url("/oauth/introspect"))
            .basic_auth(
                verifier_client["client_id"].as_str().unwrap(),
                verifier_client["client_secret"].as_str(),
            )
            .form(&[("token", access.as_str())])
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(inactive, json!({"active": false}));
    oauth_error(
        token(
            &app,
            &client,
            &[("grant_type", "client_credentials"), ("resource", ORDERS)],
        )
        .await,
        "invalid_target",
    )
    .await;
}

async fn bad_targets_at_the_authorization_endpoint(app: TestApp) {
    two_apis(&app).await;
    let member = app.member_key("az-res@example.com").await;
    let client = app
        .create_client(
            &member,
            json!({"client_name": "Shop", "redirect_uris": [REDIRECT], "resources": [ORDERS], "scope": "users:read orders:read"}),
        )
        .await;
    let client_id = client["client_id"].as_str().unwrap();
    // Not trusted: a page with a link to the error redirect.
    let link = error_link(
        app.http
            .get(authorize_url(&app, client_id, &[("resource", BILLING)]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(query_pairs(&link)["error"], "invalid_target");
    trust(&app, client_id).await;
    for extra in [
        vec![("resource", BILLING)],
        vec![("resource", "https://unknown.example.com")],
        vec![("resource", "not-absolute")],
        vec![("resource", ORDERS), ("resource", ORDERS)],
    ] {
        let response = app
            .http
            .get(authorize_url(&app, client_id, &extra))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{extra:?}");
        let params = query_pairs(&location_of(&response));
        assert_eq!(params["error"], "invalid_target", "{extra:?}");
        assert_eq!(params["state"], "s1");
        assert_eq!(params["iss"], app.base);
    }
    for scope in ["users:read", "orders:write", "orders:read billing:read"] {
        let response = app
            .http
            .get(authorize_url(
                &app,
                client_id,
                &[("resource", ORDERS), ("scope", scope)],
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(
            query_pairs(&location_of(&response))["error"],
            "invalid_scope",
            "{scope}"
        );
    }
}

async fn clients_register_the_resources_they_use(app: TestApp) {
    let admin = two_apis(&app).await;
    let member = app.member_key("reg-res@example.com").await;
    // By default, every scope the caller holds on its resources.
    let client = app
        .create_client(&member, json!({"client_name": "svc", "grant_types": ["client_credentials"], "resources": [ORDERS, BILLING]}))
        .await;
    assert_eq!(client["resources"], json!([ORDERS, BILLING]));
    assert!(
        client["scope"].as_str().unwrap().ends_with(" orders:read"),
        "{client}"
    );
    let id = client["client_id"].as_str().unwrap();
    for (body, status, code) in [
        (
            json!({"client_name": "x", "resources": ["https://unknown.example.com"]}),
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        (
            json!({"client_name": "x", "resources": ["orders"]}),
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        (
            json!({"client_name": "x", "resources": [ORDERS], "scope": "orders:nope"}),
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        (
            json!({"client_name": "x", "scope": "orders:read"}),
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        (
            json!({"client_name": "x", "resources": [ORDERS], "scope": "orders:write"}),
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
        ),
    ] {
        expect_error(
            app.post_json("/v1/oauth-clients", &member, body).await,
            status,
            code,
        )
        .await;
    }
    let patched = json_with(
        app.http
            .patch(app.url(&format!("/v1/oauth-clients/{id}")))
            .bearer_auth(&member)
            .json(&json!({"resources": [BILLING]}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["resources"], json!([BILLING]));
    // An admin may give a client any scope of a resource.
    let admins = app
        .create_client(&admin, json!({"client_name": "ops", "grant_types": ["client_credentials"], "resources": [ORDERS], "scope": "orders:write"}))
        .await;
    assert_eq!(admins["scope"], "orders:write");
}

async fn introspection_tells_only_about_listed_resources(app: TestApp) {
    two_apis(&app).await;
    let member = app.member_key("intro-res@example.com").await;
    let listing = app
        .create_client(&member, json!({"client_name": "orders-rs", "grant_types": ["client_credentials"], "resources": [ORDERS]}))
        .await;
    let other = app
        .create_client(&member, json!({"client_name": "other", "grant_types": ["client_credentials"], "resources": [BILLING]}))
        .await;
    let access = json_with(
        token(
            &app,
            &listing,
            &[("grant_type", "client_credentials"), ("resource", ORDERS)],
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let access = access["access_token"].as_str().unwrap().to_owned();
    let key = json_with(
        app.post_json(
            "/v1/api-keys",
            &member,
            json!({"name": "k", "resource": ORDERS, "metadata": {"shop": 7}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let key = key["key"].as_str().unwrap().to_owned();
    let introspect = |client: &Value, token: &str| {
        app.http
            .post(app.url("/oauth/introspect"))
            .basic_auth(
                client["client_id"].as_str().unwrap(),
                client["client_secret"].as_str(),
            )
            .form(&[("token", token)])
            .send()
    };
    let told = json_with(introspect(&listing, &access).await.unwrap(), StatusCode::OK).await;
    assert_eq!(told["active"], true);
    assert_eq!(told["aud"], ORDERS);
    assert_eq!(told["scope"], "orders:read");
    let key_told = json_with(introspect(&listing, &key).await.unwrap(), StatusCode::OK).await;
    assert_eq!(key_told["active"], true, "{key_told}");
    assert_eq!(key_told["token_type"], "api_key");
    assert_eq!(key_told["aud"], ORDERS);
    assert_eq!(key_told["metadata"], json!({"shop": 7}));
    for token in [&access, &key] {
        let untold = json_with(introspect(&other, token).await.unwrap(), StatusCode::OK).await;
        assert_eq!(untold, json!({"active": false}));
    }
    // A member's client learns nothing of Net API's own keys, even listing resources.
    let own_untold = json_with(introspect(&listing, &member).await.unwrap(), StatusCode::OK).await;
    assert_eq!(own_untold, json!({"active": false}));
}
