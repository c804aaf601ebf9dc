//! Token exchange (RFC 8693): a confidential client that lists `token_exchange_resources`
//! trades a user's access token for one for another resource, never wider, with `act`
//! naming it; every refusal the RFC and the contract name.

use crate::e2e;
use crate::helpers::{Browser, TestApp, authorize_and_exchange, expect_error, json_with};
use crate::resources::{ORDERS, define, forward, orders_api};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};

e2e!(
    an_exchanged_token_acts_for_the_user_and_names_the_client,
    an_exchange_never_widens_nor_reaches_an_unlisted_resource,
    only_confidential_clients_with_the_setting_may_exchange,
    expired_revoked_and_foreign_subject_tokens_are_refused,
    token_exchange_resources_are_validated,
    an_exchange_gives_no_scope_the_clients_owner_lacks_on_the_target,
);

const BILLING: &str = "https://billing.example.com";
const VAULT: &str = "https://vault.example.com";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

fn claims(token: &str) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

async fn token(app: &TestApp, client: &Value, form: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.http.post(app.url("/oauth/token"));
    let mut form = form.to_vec();
    match client["client_secret"].as_str() {
        Some(secret) => {
            request = request.basic_auth(client["client_id"].as_str().unwrap(), Some(secret));
        }
        None => form.push(("client_id", client["client_id"].as_str().unwrap())),
    }
    request.form(&form).send().await.unwrap()
}

/// An exchange of `subject` by `client`, with `extra` parameters.
async fn exchange(
    app: &TestApp,
    client: &Value,
    subject: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", GRANT),
        ("subject_token", subject),
        ("subject_token_type", ACCESS_TOKEN),
    ];
    form.extend_from_slice(extra);
    token(app, client, &form).await
}

async fn refused(response: reqwest::Response, error: &str) -> Value {
    assert_eq!(
        response.headers()["cache-control"],
        "no-store",
        "errors are not cached"
    );
    let body = json_with(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string());
    body
}

async fn introspect(app: &TestApp, client: &Value, token: &str) -> Value {
    let response = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth(
            client["client_id"].as_str().unwrap(),
            client["client_secret"].as_str(),
        )
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    json_with(response, StatusCode::OK).await
}

/// Orders (300 s tokens), Billing (same scope names) and Vault (`orders:read` only by grant);
/// a member `m` whose app (a `client_credentials` client, acting for `m`) holds a token for
/// Orders; and the Orders service's client, which may exchange tokens for Billing.
struct World {
    admin: String,
    member: String,
    member_id: String,
    app_client: Value,
    service: Value,
    subject: String,
}

async fn world(app: &TestApp) -> World {
    let admin = app.admin_key("te-admin@example.com").await;
    let mut orders = orders_api(ORDERS);
    orders["access_token_ttl"] = json!(300);
    define(app, &admin, orders).await;
    define(app, &admin, orders_api(BILLING)).await;
    let mut vault = orders_api(VAULT);
    vault["self_service_scopes"] = json!([]);
    define(app, &admin, vault).await;
    let (user, key) = app.register("te-member@example.com").await;
    let member = key["key"].as_str().unwrap().to_owned();
    let app_client = app
        .create_client(
            &member,
            json!({"client_name": "Shop app", "grant_types": ["client_credentials"],
                   "resources": [ORDERS], "scope": "orders:read"}),
        )
        .await;
    let subject = app.client_credentials_token_for(&app_client, ORDERS).await;
    let service = app
        .create_client(
            &admin,
            json!({"client_name": "Orders service",
                   "grant_types": ["client_credentials", GRANT],
                   "resources": [ORDERS, BILLING],
                   "scope": "orders:read",
                   "token_exchange_resources": [BILLING]}),
        )
        .await;
    assert_eq!(service["token_exchange_resources"], json!([BILLING]));
    assert!(
        service["grant_types"]
            .as_array()
            .unwrap()
            .contains(&json!(GRANT))
    );
    World {
        admin,
        member,
        member_id: user["id"].as_str().unwrap().to_owned(),
        app_client,
        service,
        subject,
    }
}

async fn an_exchanged_token_acts_for_the_user_and_names_the_client(app: TestApp) {
    let w = world(&app).await;
    let discovery = json_with(
        app.http
            .get(app.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(
        discovery["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(GRANT))
    );
    let service_id = w.service["client_id"].as_str().unwrap();

    let response = exchange(
        &app,
        &w.service,
        &w.subject,
        &[
            ("resource", BILLING),
            ("requested_token_type", ACCESS_TOKEN),
        ],
    )
    .await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let issued = json_with(response, StatusCode::OK).await;
    assert_eq!(issued["issued_token_type"], ACCESS_TOKEN);
    assert_eq!(issued["token_type"], "Bearer");
    assert_eq!(issued["scope"], "orders:read");
    assert!(issued.get("refresh_token").is_none());
    assert!(issued.get("id_token").is_none());
    // Billing's tokens live 900 s; the subject token only 300 s: the new one no longer.
    let expires_in = issued["expires_in"].as_i64().unwrap();
    assert!((1..=300).contains(&expires_in), "{expires_in}");
    let exchanged = issued["access_token"].as_str().unwrap().to_owned();
    let at = claims(&exchanged);
    assert_eq!(at["sub"], w.member_id.as_str());
    assert_eq!(at["aud"], BILLING);
    assert_eq!(at["client_id"], service_id);
    assert_eq!(at["act"], json!({"sub": service_id}));
    assert!(at["exp"].as_i64().unwrap() <= claims(&w.subject)["exp"].as_i64().unwrap());

    // Good for Billing, for nothing else (audience isolation).
    let ok = forward(&app, &exchanged, BILLING, "orders:read").await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["x-netapi-subject"], w.member_id.as_str());
    assert_eq!(ok.headers()["x-netapi-client-id"], service_id);
    for other in [ORDERS, VAULT] {
        expect_error(
            forward(&app, &exchanged, other, "").await,
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
        )
        .await;
    }
    expect_error(
        app.get("/v1/users/me", &exchanged).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;

    // Introspection shows who acts.
    let seen = introspect(&app, &w.service, &exchanged).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["act"], json!({"sub": service_id}));
    assert_eq!(seen["aud"], BILLING);
    assert_eq!(seen["sub"], w.member_id.as_str());
    let original = introspect(&app, &w.service, &w.subject).await;
    assert!(original.get("act").is_none(), "{original}");

    // Exchanged again (the default target is the subject token's own audience): the chain
    // nests; the client's own actor token is accepted, another client's is not.
    let updated = app
        .http
        .patch(app.url(&format!("/v1/oauth-clients/{service_id}")))
        .bearer_auth(&w.admin)
        .json(&json!({"token_exchange_resources": [BILLING, app.base.as_str()]}))
        .send()
        .await
        .unwrap();
    let updated = json_with(updated, StatusCode::OK).await;
    assert_eq!(
        updated["token_exchange_resources"],
        json!([BILLING, app.base.as_str()])
    );
    let actor = app.client_credentials_token(&w.service).await;
    let again = json_with(
        exchange(
            &app,
            &w.service,
            &exchanged,
            &[("actor_token", &actor), ("actor_token_type", ACCESS_TOKEN)],
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let nested = claims(again["access_token"].as_str().unwrap());
    assert_eq!(nested["aud"], BILLING, "default target: the subject's own");
    assert_eq!(
        nested["act"],
        json!({"sub": service_id, "act": {"sub": service_id}})
    );
    let foreign_actor = app.client_credentials_token(&w.app_client).await;
    refused(
        exchange(
            &app,
            &w.service,
            &exchanged,
            &[
                ("actor_token", &foreign_actor),
                ("actor_token_type", ACCESS_TOKEN),
            ],
        )
        .await,
        "invalid_request",
    )
    .await;
    // `audience` names the target as `resource` does.
    let by_audience = json_with(
        exchange(&app, &w.service, &w.subject, &[("audience", BILLING)]).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        claims(by_audience["access_token"].as_str().unwrap())["aud"],
        BILLING
    );
}

async fn an_exchange_never_widens_nor_reaches_an_unlisted_resource(app: TestApp) {
    let w = world(&app).await;
    // The member holds orders:write on Billing, but the subject token carries only
    // orders:read: the exchange cannot add it.
    let granted = app
        .http
        .put(app.url(&format!("/v1/users/{}/grants", w.member_id)))
        .bearer_auth(&w.admin)
        .json(&json!({"resource": BILLING, "scopes": ["orders:write"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), StatusCode::OK);
    for scope in ["orders:write", "orders:read orders:write", "users:read"] {
        refused(
            exchange(
                &app,
                &w.service,
                &w.subject,
                &[("resource", BILLING), ("scope", scope)],
            )
            .await,
            "invalid_scope",
        )
        .await;
    }
    let narrow = json_with(
        exchange(
            &app,
            &w.service,
            &w.subject,
            &[("resource", BILLING), ("scope", "orders:read")],
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(narrow["scope"], "orders:read");

    // Resources the client does not list, unknown ones, two different targets.
    for target in [
        ORDERS,
        VAULT,
        "https://unknown.example.com",
        app.base.as_str(),
    ] {
        refused(
            exchange(&app, &w.service, &w.subject, &[("resource", target)]).await,
            "invalid_target",
        )
        .await;
    }
    refused(
        exchange(
            &app,
            &w.service,
            &w.subject,
            &[("resource", BILLING), ("audience", ORDERS)],
        )
        .await,
        "invalid_target",
    )
    .await;
    refused(
        exchange(&app, &w.service, &w.subject, &[("resource", "not a uri")]).await,
        "invalid_target",
    )
    .await;

    // No escalation on the target: Vault's orders:read is not the member's there.
    let vault_client = app
        .create_client(
            &w.admin,
            json!({"client_name": "Vault gateway", "grant_types": [GRANT],
                   "resources": [ORDERS], "scope": "",
                   "token_exchange_resources": [VAULT]}),
        )
        .await;
    refused(
        exchange(&app, &vault_client, &w.subject, &[("resource", VAULT)]).await,
        "invalid_scope",
    )
    .await;
    refused(
        exchange(
            &app,
            &vault_client,
            &w.subject,
            &[("resource", VAULT), ("scope", "orders:read")],
        )
        .await,
        "invalid_scope",
    )
    .await;

    // Token types other than access tokens, and malformed requests.
    for (name, value) in [
        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:refresh_token",
        ),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:refresh_token",
        ),
    ] {
        let mut form = vec![
            ("grant_type", GRANT),
            ("subject_token", w.subject.as_str()),
            ("subject_token_type", ACCESS_TOKEN),
            ("resource", BILLING),
        ];
        form.retain(|(n, _)| *n != name);
        form.push((name, value));
        refused(token(&app, &w.service, &form).await, "invalid_request").await;
    }
    refused(
        token(
            &app,
            &w.service,
            &[("grant_type", GRANT), ("subject_token", &w.subject)],
        )
        .await,
        "invalid_request",
    )
    .await;
    refused(
        exchange(
            &app,
            &w.service,
            &w.subject,
            &[("actor_token_type", ACCESS_TOKEN)],
        )
        .await,
        "invalid_request",
    )
    .await;
    refused(
        exchange(&app, &w.service, &w.subject, &[("actor_token", &w.subject)]).await,
        "invalid_request",
    )
    .await;
    refused(
        exchange(&app, &w.service, &"x".repeat(9000), &[]).await,
        "invalid_request",
    )
    .await;
}

/// A member may list a target on which they hold one scope; their client then presents a
/// user's token that carries a scope the member does not hold there (the user holds it on
/// both resources): the new token does not get it.
async fn an_exchange_gives_no_scope_the_clients_owner_lacks_on_the_target(app: TestApp) {
    let w = world(&app).await;
    for resource in [ORDERS, BILLING] {
        let granted = app
            .http
            .put(app.url(&format!("/v1/users/{}/grants", w.member_id)))
            .bearer_auth(&w.admin)
            .json(&json!({"resource": resource, "scopes": ["orders:write"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(granted.status(), StatusCode::OK);
    }
    let writer = app
        .create_client(
            &w.member,
            json!({"client_name": "Shop writer", "grant_types": ["client_credentials"],
                   "resources": [ORDERS], "scope": "orders:read orders:write"}),
        )
        .await;
    let subject = app.client_credentials_token_for(&writer, ORDERS).await;
    assert!(
        claims(&subject)["scope"]
            .as_str()
            .unwrap()
            .contains("orders:write")
    );
    // Another member, with only the self-service orders:read on Billing, and their client.
    let (_, key) = app.register("te-other@example.com").await;
    let other = key["key"].as_str().unwrap().to_owned();
    let theirs = app
        .create_client(
            &other,
            json!({"client_name": "Other service",
                   "grant_types": ["client_credentials", GRANT],
                   "resources": [ORDERS],
                   "scope": "orders:read",
                   "token_exchange_resources": [BILLING]}),
        )
        .await;
    let all = json_with(
        exchange(&app, &theirs, &subject, &[("resource", BILLING)]).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(all["scope"], "orders:read", "{all}");
    refused(
        exchange(
            &app,
            &theirs,
            &subject,
            &[("resource", BILLING), ("scope", "orders:write")],
        )
        .await,
        "invalid_scope",
    )
    .await;
    // The administrator's service, whose owner holds everything, passes it on.
    let passed = json_with(
        exchange(
            &app,
            &w.service,
            &subject,
            &[("resource", BILLING), ("scope", "orders:write")],
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(passed["scope"], "orders:write");
}

async fn only_confidential_clients_with_the_setting_may_exchange(app: TestApp) {
    let w = world(&app).await;
    // A public client can register neither the grant nor the setting.
    for body in [
        json!({"client_name": "spa", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
               "grant_types": ["authorization_code", GRANT]}),
        json!({"client_name": "spa", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
               "token_exchange_resources": [BILLING]}),
    ] {
        let made = app.post_json("/v1/oauth-clients", &w.admin, body).await;
        expect_error(made, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    }
    // A public client that tries anyway.
    let public = app
        .create_client(
            &w.admin,
            json!({"client_name": "spa", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
                   "resources": [ORDERS]}),
        )
        .await;
    assert!(public["client_secret"].is_null());
    refused(
        exchange(&app, &public, &w.subject, &[("resource", BILLING)]).await,
        "unauthorized_client",
    )
    .await;
    // The grant type without the setting, and the setting without the grant type.
    let without_setting = app
        .create_client(
            &w.admin,
            json!({"client_name": "no list", "grant_types": [GRANT], "resources": [ORDERS], "scope": ""}),
        )
        .await;
    assert_eq!(without_setting["token_exchange_resources"], json!([]));
    let without_grant = app
        .create_client(
            &w.admin,
            json!({"client_name": "no grant", "grant_types": ["client_credentials"], "resources": [ORDERS],
                   "scope": "", "token_exchange_resources": [BILLING]}),
        )
        .await;
    for client in [&without_setting, &without_grant] {
        refused(
            exchange(&app, client, &w.subject, &[("resource", BILLING)]).await,
            "unauthorized_client",
        )
        .await;
    }
    // A client that is not the subject token's resource server (it does not list Orders)
    // learns nothing from it.
    let outsider = app
        .create_client(
            &w.member,
            json!({"client_name": "outsider", "grant_types": [GRANT], "scope": "",
                   "token_exchange_resources": [BILLING]}),
        )
        .await;
    refused(
        exchange(&app, &outsider, &w.subject, &[("resource", BILLING)]).await,
        "invalid_request",
    )
    .await;
    // A wrong secret is invalid_client, as for every grant.
    let wrong = json!({"client_id": w.service["client_id"], "client_secret": "napcs_wrong"});
    let response = exchange(&app, &wrong, &w.subject, &[("resource", BILLING)]).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

async fn expired_revoked_and_foreign_subject_tokens_are_refused(app: TestApp) {
    let w = world(&app).await;
    let exchanged = json_with(
        exchange(&app, &w.service, &w.subject, &[("resource", BILLING)]).await,
        StatusCode::OK,
    )
    .await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Revoked by the client it was issued to: refused as a subject from then on.
    let revoked = app
        .http
        .post(app.url("/oauth/revoke"))
        .basic_auth(
            w.app_client["client_id"].as_str().unwrap(),
            w.app_client["client_secret"].as_str(),
        )
        .form(&[("token", w.subject.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    refused(
        exchange(&app, &w.service, &w.subject, &[("resource", BILLING)]).await,
        "invalid_request",
    )
    .await;
    // Not a token at all, or not this server's.
    for junk in ["eyJhbGciOiJub25lIn0.e30.", "naprt_notatoken"] {
        refused(
            exchange(&app, &w.service, junk, &[("resource", BILLING)]).await,
            "invalid_request",
        )
        .await;
    }
    // Expired.
    let fresh = app
        .client_credentials_token_for(&w.app_client, ORDERS)
        .await;
    app.clock.advance(301);
    refused(
        exchange(&app, &w.service, &fresh, &[("resource", BILLING)]).await,
        "invalid_request",
    )
    .await;
    assert_eq!(
        forward(&app, &exchanged, BILLING, "").await.status(),
        StatusCode::UNAUTHORIZED,
        "the exchanged token expired with its subject"
    );

    // A disabled user's tokens, exchanged ones included, are refused.
    let subject = app
        .client_credentials_token_for(&w.app_client, ORDERS)
        .await;
    let exchanged = json_with(
        exchange(&app, &w.service, &subject, &[("resource", BILLING)]).await,
        StatusCode::OK,
    )
    .await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let disabled = app
        .http
        .patch(app.url(&format!("/v1/users/{}", w.member_id)))
        .bearer_auth(&w.admin)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), StatusCode::OK);
    assert_eq!(
        forward(&app, &exchanged, BILLING, "").await.status(),
        StatusCode::UNAUTHORIZED
    );
    refused(
        exchange(&app, &w.service, &subject, &[("resource", BILLING)]).await,
        "invalid_request",
    )
    .await;

    // A token from a sign-in (with a grant behind it, `sid`): exchanged by the client it
    // was issued to for a narrower token of Net API's own; revoking the refresh token (the
    // grant) ends the exchanged token too.
    let own = app.admin_key("te-own@example.com").await;
    let web = app
        .create_client(
            &own,
            json!({"client_name": "web", "redirect_uris": [REDIRECT],
                   "grant_types": ["authorization_code", "refresh_token", GRANT],
                   "scope": "users:read keys:read",
                   "token_exchange_resources": [app.base.as_str()]}),
        )
        .await;
    let mut browser = Browser::new();
    let tokens = authorize_and_exchange(
        &app,
        &mut browser,
        &web,
        REDIRECT,
        "users:read keys:read",
        "te-own@example.com",
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap();
    let narrowed = json_with(
        exchange(&app, &web, access, &[("scope", "users:read")]).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(narrowed["scope"], "users:read");
    let narrowed = narrowed["access_token"].as_str().unwrap().to_owned();
    let me = app.get("/v1/users/me", &narrowed).await;
    assert_eq!(me.status(), StatusCode::OK);
    expect_error(
        app.get("/v1/api-keys", &narrowed).await,
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
    )
    .await;
    assert_eq!(claims(&narrowed)["sid"], claims(access)["sid"]);
    // Another member's client (no admin behind it) may not exchange the web client's token.
    let other = app.member_key("te-other@example.com").await;
    let other = app
        .create_client(
            &other,
            json!({"client_name": "other", "grant_types": [GRANT], "scope": "users:read",
                   "token_exchange_resources": [app.base.as_str()]}),
        )
        .await;
    refused(
        exchange(&app, &other, access, &[("scope", "users:read")]).await,
        "invalid_request",
    )
    .await;
    let revoked = app
        .http
        .post(app.url("/oauth/revoke"))
        .basic_auth(
            web["client_id"].as_str().unwrap(),
            web["client_secret"].as_str(),
        )
        .form(&[("token", tokens["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    expect_error(
        app.get("/v1/users/me", &narrowed).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
}

async fn token_exchange_resources_are_validated(app: TestApp) {
    let w = world(&app).await;
    let create = |body: Value| {
        let app = &app;
        let member = w.member.clone();
        async move { app.post_json("/v1/oauth-clients", &member, body).await }
    };
    let base = |list: Value| {
        json!({"client_name": "svc", "grant_types": ["client_credentials", GRANT], "scope": "",
               "token_exchange_resources": list})
    };
    let bad = expect_error(
        create(base(json!(["https://unknown.example.com"]))).await,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
    )
    .await;
    assert!(
        bad.to_string().contains("token_exchange_resources"),
        "{bad}"
    );
    expect_error(
        create(base(json!(["not a uri"]))).await,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
    )
    .await;
    let too_many: Vec<String> = (0..21).map(|_| BILLING.to_owned()).collect();
    expect_error(
        create(base(json!(too_many))).await,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
    )
    .await;
    // Vault: the member holds no scope there.
    expect_error(
        create(base(json!([VAULT]))).await,
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
    )
    .await;
    let made = json_with(
        create(base(json!([BILLING, BILLING, app.base.as_str()]))).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        made["token_exchange_resources"],
        json!([BILLING, app.base.as_str()])
    );
    let id = made["client_id"].as_str().unwrap();
    let path = format!("/v1/oauth-clients/{id}");
    let patch = |body: Value| {
        let app = &app;
        let member = w.member.clone();
        let path = path.clone();
        async move {
            app.http
                .patch(app.url(&path))
                .bearer_auth(&member)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    expect_error(
        patch(json!({"token_exchange_resources": [VAULT]})).await,
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
    )
    .await;
    let cleared = json_with(
        patch(json!({"token_exchange_resources": []})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(cleared["token_exchange_resources"], json!([]));
    let read = json_with(app.get(&path, &w.member).await, StatusCode::OK).await;
    assert_eq!(read["token_exchange_resources"], json!([]));
}
