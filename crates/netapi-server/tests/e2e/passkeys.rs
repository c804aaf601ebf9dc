//! Passkeys, the server's side: what is refused without a browser's authenticator (an IP
//! issuer turns them off; forged or unknown assertions, spent ceremonies, missing CSRF tokens
//! and sessions are refused; failures count in the limiter). The whole ceremony with an
//! authenticator runs in Chromium (`crates/netapi/tests/cli.rs`, `tests/browser/passkeys.mjs`).

use crate::e2e;
use crate::helpers::{Browser, PASSWORD, TestApp, hidden_field};
use netapi_core::Settings;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// WebAuthn needs a domain: the tests' servers listen on 127.0.0.1 but call themselves
/// `localhost`.
fn on_localhost(settings: &mut Settings) {
    settings.issuer = settings.issuer.replace("127.0.0.1", "localhost");
}

fn on_localhost_tight(settings: &mut Settings) {
    on_localhost(settings);
    settings.auth_failure_limit = 3;
}

/// Posts `body` as JSON to `path` with the browser's cookies.
async fn post_json(
    app: &TestApp,
    browser: &mut Browser,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    let response = app
        .http
        .post(app.url(path))
        .header("cookie", browser.header())
        .json(body)
        .send()
        .await
        .expect("POST");
    browser.remember(&response);
    response
}

/// The sign-in page's CSRF token (its cookie kept by `browser`).
async fn login_csrf(app: &TestApp, browser: &mut Browser) -> String {
    let page = browser.get(app, &app.url("/login")).await;
    hidden_field(&page.text().await.unwrap(), "csrf_token")
}

/// Registers `email` and signs it in with the password; answers the security page's HTML.
async fn signed_in(app: &TestApp, browser: &mut Browser, email: &str) -> String {
    app.register(email).await;
    sign_in(app, browser, email).await
}

/// Signs `email` in with the password; answers the security page's HTML.
async fn sign_in(app: &TestApp, browser: &mut Browser, email: &str) -> String {
    let csrf = login_csrf(app, browser).await;
    let answer = browser
        .post(
            app,
            "/login",
            &[
                ("email", email),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
                ("return_to", "/portal"),
            ],
        )
        .await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let page = browser.get(app, &app.url("/portal/security")).await;
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.unwrap()
}

/// An assertion in the shape the script sends, for a credential nobody registered.
fn forged_assertion() -> Value {
    json!({
        "id": "AAECAwQFBgcICQoLDA0ODw",
        "rawId": "AAECAwQFBgcICQoLDA0ODw",
        "type": "public-key",
        "response": {
            "clientDataJSON": "eyJ0eXBlIjoid2ViYXV0aG4uZ2V0In0",
            "authenticatorData": "AAAA",
            "signature": "AAAA",
            "userHandle": null
        },
        "extensions": {}
    })
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

async fn off_with_an_ip_issuer(app: TestApp) {
    let mut browser = Browser::new();
    let login = browser.get(&app, &app.url("/login")).await;
    let html = login.text().await.unwrap();
    assert!(html.contains("id=\"passkeys-off\""), "{html}");
    assert!(
        !html.contains("passkey-login") && !html.contains("<script"),
        "{html}"
    );
    let csrf = hidden_field(&html, "csrf_token");
    let refused = post_json(
        &app,
        &mut browser,
        "/login/passkey/options",
        &json!({"csrf_token": csrf, "step": "passwordless"}),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(error_code(&body), "PERMISSION_DENIED", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Passkeys are off")
    );

    let mut member = Browser::new();
    let security = signed_in(&app, &mut member, "ipa@example.com").await;
    assert!(security.contains("id=\"passkeys-off\""), "{security}");
    assert!(!security.contains("add-passkey"), "{security}");
    let csrf = hidden_field(&security, "csrf_token");
    let refused = post_json(
        &app,
        &mut member,
        "/portal/security/passkeys/options",
        &json!({"csrf_token": csrf}),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // The script is served all the same, by the server itself.
    let script = app
        .http
        .get(app.url("/assets/passkeys.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(
        script
            .text()
            .await
            .unwrap()
            .contains("navigator.credentials.get")
    );
}

async fn passwordless_sign_in_refuses_forgeries(app: TestApp) {
    let mut browser = Browser::new();
    let login = browser.get(&app, &app.url("/login")).await;
    let csp = login.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = login.text().await.unwrap();
    assert!(
        html.contains("data-action=\"passkey-login\"")
            && html.contains("<script src=\"/assets/passkeys.js\" defer></script>"),
        "{html}"
    );
    let csrf = hidden_field(&html, "csrf_token");

    // Without the sign-in form's token (or with another), nothing starts.
    for token in ["", "forged"] {
        let forged = post_json(
            &app,
            &mut browser,
            "/login/passkey/options",
            &json!({"csrf_token": token, "step": "passwordless"}),
        )
        .await;
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    }
    let unknown_step = post_json(
        &app,
        &mut browser,
        "/login/passkey/options",
        &json!({"csrf_token": csrf, "step": "sideways"}),
    )
    .await;
    assert_eq!(unknown_step.status(), StatusCode::BAD_REQUEST);
    // The second factor needs a pending sign-in (a right password first).
    let no_ticket = post_json(
        &app,
        &mut browser,
        "/login/passkey/options",
        &json!({"csrf_token": csrf, "step": "second_factor"}),
    )
    .await;
    assert_eq!(no_ticket.status(), StatusCode::UNAUTHORIZED);
    let not_json = app
        .http
        .post(app.url("/login/passkey/options"))
        .header("cookie", browser.header())
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let options = post_json(
        &app,
        &mut browser,
        "/login/passkey/options",
        &json!({"csrf_token": csrf, "step": "passwordless"}),
    )
    .await;
    assert_eq!(options.status(), StatusCode::OK);
    let options: Value = options.json().await.unwrap();
    assert_eq!(options["publicKey"]["rpId"], "localhost", "{options}");
    assert_eq!(options["publicKey"]["userVerification"], "required");
    assert!(options["publicKey"]["challenge"].as_str().unwrap().len() >= 43);
    // Discoverable: no credential is named, so nobody's are disclosed.
    assert!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{options}"
    );
    assert!(options.get("mediation").is_none(), "{options}");

    // An assertion for a credential nobody registered is refused, and no session starts.
    let refused = post_json(
        &app,
        &mut browser,
        "/login/passkey",
        &json!({"csrf_token": csrf, "step": "passwordless", "credential": forged_assertion()}),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    assert!(!browser.cookies.contains_key("netapi_session"));
    // Not even a well-formed object: refused the same way.
    let garbage = post_json(
        &app,
        &mut browser,
        "/login/passkey",
        &json!({"csrf_token": csrf, "step": "passwordless", "credential": {"id": 1}}),
    )
    .await;
    assert_eq!(garbage.status(), StatusCode::UNAUTHORIZED);
    // A finish with another form's token is a forgery.
    let forged = post_json(
        &app,
        &mut browser,
        "/login/passkey",
        &json!({"csrf_token": "forged", "step": "passwordless", "credential": forged_assertion()}),
    )
    .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}

/// A session older than 15 minutes (left open, or stolen) cannot add a passkey: 401, which
/// the page's script answers by signing in again. Signed in again, it can.
async fn adding_a_passkey_needs_a_recent_sign_in(app: TestApp) {
    let mut browser = Browser::new();
    let security = signed_in(&app, &mut browser, "ada@example.com").await;
    let csrf = hidden_field(&security, "csrf_token");
    app.clock.advance(15 * 60 + 1);
    for (path, body) in [
        (
            "/portal/security/passkeys/options",
            json!({"csrf_token": csrf}),
        ),
        (
            "/portal/security/passkeys",
            json!({"csrf_token": csrf, "name": "stolen", "credential": {}}),
        ),
    ] {
        let refused = post_json(&app, &mut browser, path, &body).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body: Value = refused.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("recent sign-in"),
            "{body}"
        );
    }
    let security = sign_in(&app, &mut browser, "ada@example.com").await;
    let options = post_json(
        &app,
        &mut browser,
        "/portal/security/passkeys/options",
        &json!({"csrf_token": hidden_field(&security, "csrf_token")}),
    )
    .await;
    assert_eq!(options.status(), StatusCode::OK);
}

async fn registration_needs_the_session_and_is_single_use(app: TestApp) {
    let mut browser = Browser::new();
    let security = signed_in(&app, &mut browser, "ada@example.com").await;
    assert!(
        security.contains("data-action=\"add-passkey\"") && !security.contains("passkeys-off"),
        "{security}"
    );
    let csrf = hidden_field(&security, "csrf_token");

    // No session: 401; another page's token: 403.
    let mut stranger = Browser::new();
    let anonymous = post_json(
        &app,
        &mut stranger,
        "/portal/security/passkeys/options",
        &json!({"csrf_token": csrf}),
    )
    .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let forged = post_json(
        &app,
        &mut browser,
        "/portal/security/passkeys/options",
        &json!({"csrf_token": "forged"}),
    )
    .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let options = post_json(
        &app,
        &mut browser,
        "/portal/security/passkeys/options",
        &json!({"csrf_token": csrf}),
    )
    .await;
    assert_eq!(options.status(), StatusCode::OK);
    let options: Value = options.json().await.unwrap();
    let public_key = &options["publicKey"];
    assert_eq!(public_key["rp"]["id"], "localhost", "{options}");
    assert_eq!(public_key["user"]["name"], "ada@example.com");
    assert_eq!(
        public_key["authenticatorSelection"]["residentKey"],
        "required"
    );
    assert_eq!(
        public_key["authenticatorSelection"]["userVerification"],
        "required"
    );

    // A bad name is refused before the ceremony is spent.
    let unnamed = post_json(
        &app,
        &mut browser,
        "/portal/security/passkeys",
        &json!({"csrf_token": csrf, "name": " ", "credential": {}}),
    )
    .await;
    assert_eq!(unnamed.status(), StatusCode::BAD_REQUEST);
    let body: Value = unnamed.json().await.unwrap();
    assert_eq!(body["error"]["details"][0]["field"], "name", "{body}");
    // An answer that is no credential is refused, and spends the ceremony: trying again
    // finds nothing to answer.
    let refused = post_json(
        &app,
        &mut browser,
        "/portal/security/passkeys",
        &json!({"csrf_token": csrf, "name": "Laptop", "credential": {"id": "x"}}),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let again = post_json(
        &app,
        &mut browser,
        "/portal/security/passkeys",
        &json!({"csrf_token": csrf, "name": "Laptop", "credential": {"id": "x"}}),
    )
    .await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let body: Value = again.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired or was already used"),
        "{body}"
    );
    // Nothing was added; removing what does not exist (or is not the user's) finds nothing.
    let page = browser
        .post(
            &app,
            "/portal/security/passkeys/pk_missing/remove",
            &[("csrf_token", &csrf), ("code", PASSWORD)],
        )
        .await;
    let html = page.text().await.unwrap();
    assert!(!html.contains("class=\"passkey\""), "{html}");
    // A removal without the session's token is a forgery.
    let forged = browser
        .post(
            &app,
            "/portal/security/passkeys/pk_missing/remove",
            &[("csrf_token", "forged"), ("code", PASSWORD)],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}

async fn failed_assertions_are_limited(app: TestApp) {
    let mut browser = Browser::new();
    let csrf = login_csrf(&app, &mut browser).await;
    for attempt in 0..4 {
        let options = post_json(
            &app,
            &mut browser,
            "/login/passkey/options",
            &json!({"csrf_token": csrf, "step": "passwordless"}),
        )
        .await;
        assert_eq!(options.status(), StatusCode::OK);
        let refused = post_json(
            &app,
            &mut browser,
            "/login/passkey",
            &json!({"csrf_token": csrf, "step": "passwordless", "credential": forged_assertion()}),
        )
        .await;
        if attempt < 3 {
            assert_eq!(
                refused.status(),
                StatusCode::UNAUTHORIZED,
                "attempt {attempt}"
            );
        } else {
            assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
            assert!(refused.headers().contains_key("retry-after"));
        }
    }
}

e2e!(off_with_an_ip_issuer);
e2e!(settings = on_localhost;
    passwordless_sign_in_refuses_forgeries,
    registration_needs_the_session_and_is_single_use,
    adding_a_passkey_needs_a_recent_sign_in,
);
e2e!(settings = on_localhost_tight; failed_assertions_are_limited);
