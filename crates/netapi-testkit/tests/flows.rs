//! The crate used as the other test binaries use it: `e2e!` from outside (this binary has no
//! `tokio` of its own), and every shared flow run once against a real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use netapi_testkit::{
    Backend, Browser, PASSWORD, TestApp, authorize_and_exchange, e2e, json_with,
    register_in_browser, sign_in_to_portal,
};
use reqwest::StatusCode;
use serde_json::json;

const REDIRECT: &str = "http://127.0.0.1:9/callback";

async fn every_flow_works_against_the_server(app: TestApp) {
    let key = app.member_key("kit@example.com").await;
    assert_eq!(app.get("/v1/users/me", &key).await.status(), StatusCode::OK);

    let service = app
        .create_client(
            &key,
            json!({"client_name": "svc", "grant_types": ["client_credentials"], "scope": "users:read"}),
        )
        .await;
    let token = app.client_credentials_token(&service).await;
    assert_eq!(
        app.get("/v1/users/me", &token).await.status(),
        StatusCode::OK
    );

    let web = app
        .create_client(
            &key,
            json!({
                "client_name": "web",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "openid email users:read",
            }),
        )
        .await;
    let mut browser = Browser::new();
    let tokens = authorize_and_exchange(
        &app,
        &mut browser,
        &web,
        REDIRECT,
        "openid email users:read",
        "kit@example.com",
    )
    .await;
    assert!(browser.cookies.contains_key("netapi_session"));
    let access = tokens["access_token"].as_str().unwrap();
    let me = json_with(app.get("/oauth/userinfo", access).await, StatusCode::OK).await;
    assert_eq!(me["email"], "kit@example.com");

    let mut newcomer = Browser::new();
    let shown =
        register_in_browser(&app, &mut newcomer, "Page", "page@example.com", PASSWORD).await;
    assert_eq!(
        app.get("/v1/users/me", &shown).await.status(),
        StatusCode::OK
    );
    let portal = sign_in_to_portal(&app, &mut Browser::new(), "page@example.com").await;
    assert!(portal.contains("page@example.com"), "{portal}");
}

async fn on_the_backend_it_was_asked_for(app: TestApp) {
    let scheme = app.database_url.split(':').next().unwrap();
    let expected = match app.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(scheme, expected);
}

e2e!(
    every_flow_works_against_the_server,
    on_the_backend_it_was_asked_for
);
