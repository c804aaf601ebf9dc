//! The portal's application settings form (issue 16/17): sign-out redirect URIs, the
//! back-channel logout URI, token exchange resources and `dpop_bound_access_tokens`, with
//! the rules of `PATCH /v1/oauth-clients/{id}`: good input is saved, bad input is refused
//! with a message and changes nothing, and nobody gets a token exchange resource they hold
//! no scope on.

use crate::e2e;
use crate::helpers::{Browser, TestApp, hidden_field, json_with, sign_in_to_portal};
use crate::resources::{ORDERS, define, orders_api};
use reqwest::StatusCode;
use serde_json::{Value, json};

e2e!(
    the_portal_saves_good_client_settings,
    bad_client_settings_are_refused_and_change_nothing,
);

const VAULT: &str = "https://vault.example.com";

/// A member signed in to the portal with a confidential web application: the member's API
/// key, the portal's CSRF token and the application's id.
async fn member_with_app(app: &TestApp, browser: &mut Browser) -> (String, String, String) {
    let admin = app.admin_key("settings-admin@example.com").await;
    define(app, &admin, orders_api(ORDERS)).await;
    let mut vault = orders_api(VAULT);
    vault["self_service_scopes"] = json!([]);
    define(app, &admin, vault).await;
    let email = "settings@example.com";
    let key = app.member_key(email).await;
    let client = app
        .create_client(
            &key,
            json!({"client_name": "Web", "redirect_uris": ["https://app.example.com/cb"],
                   "grant_types": ["authorization_code", "refresh_token"], "scope": "users:read"}),
        )
        .await;
    let portal = sign_in_to_portal(app, browser, email).await;
    (
        key,
        hidden_field(&portal, "csrf_token"),
        client["client_id"].as_str().unwrap().to_owned(),
    )
}

async fn post_settings(
    app: &TestApp,
    browser: &mut Browser,
    client_id: &str,
    fields: &[(&str, &str)],
) -> String {
    let response = browser
        .post(
            app,
            &format!("/portal/clients/{client_id}/settings"),
            fields,
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let page = browser.get(app, &app.url("/portal")).await;
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.unwrap()
}

async fn stored(app: &TestApp, key: &str, client_id: &str) -> Value {
    json_with(
        app.get(&format!("/v1/oauth-clients/{client_id}"), key)
            .await,
        StatusCode::OK,
    )
    .await
}

async fn the_portal_saves_good_client_settings(app: TestApp) {
    let mut browser = Browser::new();
    let (key, csrf, id) = member_with_app(&app, &mut browser).await;
    let page = browser
        .get(&app, &app.url("/portal"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("/portal/clients/{id}/settings")),
        "{page}"
    );
    let issuer = app.base.clone();
    let exchange = format!("{ORDERS}\n{issuer}");
    let page = post_settings(
        &app,
        &mut browser,
        &id,
        &[
            ("csrf_token", &csrf),
            (
                "post_logout_redirect_uris",
                "https://app.example.com/signed-out\nhttps://app.example.com/bye",
            ),
            (
                "backchannel_logout_uri",
                "https://app.example.com/backchannel",
            ),
            ("token_exchange_resources", &exchange),
            ("dpop_bound_access_tokens", "on"),
        ],
    )
    .await;
    assert!(page.contains("Application settings saved."), "{page}");
    // The form shows what is stored.
    assert!(
        page.contains("https://app.example.com/backchannel"),
        "{page}"
    );
    assert!(page.contains(" checked>"), "{page}");
    let client = stored(&app, &key, &id).await;
    assert_eq!(
        client["post_logout_redirect_uris"],
        json!([
            "https://app.example.com/signed-out",
            "https://app.example.com/bye"
        ])
    );
    assert_eq!(
        client["backchannel_logout_uri"],
        "https://app.example.com/backchannel"
    );
    assert_eq!(client["token_exchange_resources"], json!([ORDERS, issuer]));
    assert_eq!(client["dpop_bound_access_tokens"], true);
    // The redirect URIs are untouched.
    assert_eq!(
        client["redirect_uris"],
        json!(["https://app.example.com/cb"])
    );

    // Emptied and unticked: removed and off.
    let page = post_settings(&app, &mut browser, &id, &[("csrf_token", &csrf)]).await;
    assert!(page.contains("Application settings saved."), "{page}");
    let client = stored(&app, &key, &id).await;
    assert_eq!(client["post_logout_redirect_uris"], json!([]));
    assert_eq!(client["backchannel_logout_uri"], Value::Null);
    assert_eq!(client["token_exchange_resources"], json!([]));
    assert_eq!(client["dpop_bound_access_tokens"], false);
}

async fn bad_client_settings_are_refused_and_change_nothing(app: TestApp) {
    let mut browser = Browser::new();
    let (key, csrf, id) = member_with_app(&app, &mut browser).await;
    let good = [
        ("csrf_token", csrf.as_str()),
        (
            "post_logout_redirect_uris",
            "https://app.example.com/signed-out",
        ),
        (
            "backchannel_logout_uri",
            "https://app.example.com/backchannel",
        ),
        ("token_exchange_resources", ORDERS),
        ("dpop_bound_access_tokens", "on"),
    ];
    let page = post_settings(&app, &mut browser, &id, &good).await;
    assert!(page.contains("Application settings saved."), "{page}");
    let before = stored(&app, &key, &id).await;

    // Each bad value (with the other fields changed too): an error naming the field, and
    // nothing of the form is saved.
    let cases: [(&str, &str, &str); 5] = [
        (
            "post_logout_redirect_uris",
            "http://evil.example.com/out",
            "Sign-out redirect URIs",
        ),
        (
            "post_logout_redirect_uris",
            "not a uri",
            "Sign-out redirect URIs",
        ),
        (
            "backchannel_logout_uri",
            "javascript:alert(1)",
            "Back-channel logout URI",
        ),
        (
            "token_exchange_resources",
            "https://unknown.example.com",
            "Token exchange APIs",
        ),
        // A resource the member holds no scope on: never granted to its client.
        ("token_exchange_resources", VAULT, "hold no scope"),
    ];
    for (field, value, message) in cases {
        let mut fields: Vec<(&str, &str)> = vec![
            ("csrf_token", csrf.as_str()),
            ("post_logout_redirect_uris", "https://app.example.com/other"),
            (
                "backchannel_logout_uri",
                "https://app.example.com/other-backchannel",
            ),
            ("token_exchange_resources", ""),
        ];
        fields.retain(|(name, _)| *name != field);
        fields.push((field, value));
        let page = post_settings(&app, &mut browser, &id, &fields).await;
        assert!(page.contains("class=\"error\""), "{field}={value}: {page}");
        assert!(page.contains(message), "{field}={value}: {page}");
        assert!(!page.contains("Application settings saved."), "{page}");
        // Stored as before, and the form shows the stored values again.
        assert_eq!(stored(&app, &key, &id).await, before, "{field}={value}");
        assert!(
            page.contains("https://app.example.com/backchannel"),
            "{page}"
        );
        assert!(!page.contains("other-backchannel"), "{page}");
    }

    // Someone else's application: not found, and unchanged.
    let mut other = Browser::new();
    app.member_key("other@example.com").await;
    let portal = sign_in_to_portal(&app, &mut other, "other@example.com").await;
    let other_csrf = hidden_field(&portal, "csrf_token");
    let page = post_settings(
        &app,
        &mut other,
        &id,
        &[
            ("csrf_token", other_csrf.as_str()),
            ("token_exchange_resources", ""),
        ],
    )
    .await;
    assert!(page.contains("class=\"error\""), "{page}");
    assert_eq!(stored(&app, &key, &id).await, before);

    // A wrong CSRF token: refused, unchanged.
    let response = browser
        .post(
            &app,
            &format!("/portal/clients/{id}/settings"),
            &[("csrf_token", "wrong"), ("token_exchange_resources", "")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(stored(&app, &key, &id).await, before);
}
