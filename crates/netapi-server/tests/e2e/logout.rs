//! Issue 16, logout: OpenID Connect RP-Initiated Logout 1.0 at `/oauth/logout` and
//! Back-Channel Logout 1.0 (logout tokens POSTed to a receiver this test starts), with the
//! clients' logout metadata at `/v1/oauth-clients` and `/oauth/register`.

use std::collections::HashMap;

use axum::extract::{Form, State};
use netapi_core::Settings;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::e2e;
use crate::helpers::{
    Browser, Pkce, TestApp, approve, authorize_and_exchange, exchange_code, json_with, location_of,
    query_pairs,
};
use crate::rs256::{jwks, jwt_parts, verify_rs256};
use netapi_core::service::{BACKCHANNEL_ATTEMPTS, BACKCHANNEL_RETRY_BASE};
use netapi_server::webhooks::HttpBackchannelClient;

const REDIRECT: &str = "https://rp.example.com/callback";
const SIGNED_OUT: &str = "https://rp.example.com/signed-out";
const COOKIE: &str = "netapi_session";

fn private_targets(settings: &mut Settings) {
    settings.allow_private_targets = true;
}

e2e!(
    discovery_advertises_logout,
    a_valid_hint_ends_the_session_and_returns_to_the_registered_uri_with_state,
    an_unregistered_redirect_is_refused_on_a_page,
    a_hint_for_another_client_is_refused,
    without_a_hint_the_user_is_asked_on_a_csrf_protected_form,
    logout_metadata_is_validated_and_shown,
);

e2e!(
    settings = private_targets;
    back_channel_logout_tokens_reach_the_client_and_verify,
    a_logout_token_is_retried_until_the_client_takes_it,
    a_logout_token_is_given_up_after_the_last_attempt,
    a_refusal_or_a_removed_uri_ends_a_delivery,
);

/// A web client of a new owner with `extra` metadata; returns it and the owner's email.
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
        "post_logout_redirect_uris": [SIGNED_OUT],
    });
    for (name, value) in extra.as_object().unwrap() {
        body[name] = value.clone();
    }
    (app.create_client(&key, body).await, email)
}

/// Signs `email` in through `browser` and returns the ID token `client` gets.
async fn id_token(app: &TestApp, browser: &mut Browser, client: &Value, email: &str) -> String {
    let tokens =
        authorize_and_exchange(app, browser, client, REDIRECT, "openid email", email).await;
    tokens["id_token"].as_str().unwrap().to_owned()
}

/// The code flow for `client` in a browser that is signed in already: straight to consent.
async fn approve_signed_in(app: &TestApp, browser: &mut Browser, client: &Value) -> Value {
    let client_id = client["client_id"].as_str().unwrap();
    let pkce = Pkce::random();
    let mut url = url::Url::parse(&app.url("/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid")
        .append_pair("prompt", "consent")
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    let consent = browser.get(app, url.as_str()).await;
    assert_eq!(consent.status(), StatusCode::OK);
    let html = consent.text().await.unwrap();
    let approved = approve(app, browser, &html).await;
    let code = query_pairs(&location_of(&approved))["code"].clone();
    exchange_code(
        app,
        client_id,
        client["client_secret"].as_str(),
        &code,
        Some(REDIRECT),
        Some(&pkce.verifier),
    )
    .await
}

fn logout_url(app: &TestApp, pairs: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&app.url("/oauth/logout")).unwrap();
    for (name, value) in pairs {
        url.query_pairs_mut().append_pair(name, value);
    }
    url.into()
}

/// Whether a browser holding `cookie` as its session is still signed in: the authorization
/// endpoint answers the consent page (signed in) or the login page (not).
async fn signed_in_with(app: &TestApp, client: &Value, cookie: &str) -> bool {
    let mut browser = Browser::new();
    browser.cookies.insert(COOKIE.to_owned(), cookie.to_owned());
    let mut url = url::Url::parse(&app.url("/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client["client_id"].as_str().unwrap())
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid")
        .append_pair("prompt", "consent")
        .append_pair(
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        )
        .append_pair("code_challenge_method", "S256");
    let page = browser.get(app, url.as_str()).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    !html.contains("name=\"password\"")
}

async fn discovery_advertises_logout(app: TestApp) {
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        let doc = json_with(response, StatusCode::OK).await;
        assert_eq!(doc["end_session_endpoint"], app.url("/oauth/logout"));
        assert_eq!(doc["backchannel_logout_supported"], true);
        assert_eq!(doc["backchannel_logout_session_supported"], true);
        assert_eq!(doc["frontchannel_logout_supported"], false);
        assert!(
            doc["claims_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("sid"))
        );
    }
}

async fn a_valid_hint_ends_the_session_and_returns_to_the_registered_uri_with_state(app: TestApp) {
    let (client, email) = web_client(&app, json!({})).await;
    let mut browser = Browser::new();
    let hint = id_token(&app, &mut browser, &client, &email).await;
    let (_, claims) = jwt_parts(&hint);
    assert!(
        claims["sid"].as_str().unwrap().starts_with("sid_"),
        "{claims}"
    );
    let cookie = browser.cookies[COOKIE].clone();
    assert!(signed_in_with(&app, &client, &cookie).await);

    // An expired hint is still a hint (RP-Initiated Logout 1.0 §2).
    app.clock.advance(3 * 3600);
    let response = browser
        .get(
            &app,
            &logout_url(
                &app,
                &[
                    ("id_token_hint", &hint),
                    ("post_logout_redirect_uri", SIGNED_OUT),
                    ("state", "af0ifjsldkj"),
                    ("logout_hint", "ignored"),
                    ("ui_locales", "en"),
                ],
            ),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location_of(&response),
        format!("{SIGNED_OUT}?state=af0ifjsldkj")
    );
    assert!(
        !browser.cookies.contains_key(COOKIE),
        "the cookie is cleared"
    );
    // The session ended on the server: its old cookie no longer signs anyone in, and the next
    // authorization asks for the password.
    assert!(!signed_in_with(&app, &client, &cookie).await);

    // Again, with nobody signed in: nothing to end, on to the same place (by POST too).
    let response = app
        .http
        .post(app.url("/oauth/logout"))
        .form(&[
            ("id_token_hint", hint.as_str()),
            ("post_logout_redirect_uri", SIGNED_OUT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location_of(&response), SIGNED_OUT);
}

async fn an_unregistered_redirect_is_refused_on_a_page(app: TestApp) {
    let (client, email) = web_client(&app, json!({})).await;
    let mut browser = Browser::new();
    let hint = id_token(&app, &mut browser, &client, &email).await;
    let cookie = browser.cookies[COOKIE].clone();
    for uri in [
        "https://evil.example.com/signed-out",
        "https://rp.example.com/signed-out/",
        "https://rp.example.com/signed-out?x=1",
        REDIRECT,
    ] {
        let response = browser
            .get(
                &app,
                &logout_url(
                    &app,
                    &[("id_token_hint", &hint), ("post_logout_redirect_uri", uri)],
                ),
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{uri}");
        assert!(response.headers().get("location").is_none());
        let html = response.text().await.unwrap();
        assert!(html.contains("not one the client registered"), "{html}");
    }
    // A redirect without anything that names the client is refused too.
    let response = browser
        .get(
            &app,
            &logout_url(&app, &[("post_logout_redirect_uri", SIGNED_OUT)]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A forged hint is refused.
    let (head, rest) = hint.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let forged = format!(
        "{head}.{}.{signature}",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"iss":"x","sub":"y","aud":"z"}"#
        )
    );
    let response = browser
        .get(&app, &logout_url(&app, &[("id_token_hint", &forged)]))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // None of this signed anyone out.
    assert!(signed_in_with(&app, &client, &cookie).await);
}

async fn a_hint_for_another_client_is_refused(app: TestApp) {
    let (client, email) = web_client(&app, json!({})).await;
    let (other, _) = web_client(&app, json!({})).await;
    let mut browser = Browser::new();
    let hint = id_token(&app, &mut browser, &client, &email).await;
    let cookie = browser.cookies[COOKIE].clone();
    let response = browser
        .get(
            &app,
            &logout_url(
                &app,
                &[
                    ("id_token_hint", &hint),
                    ("client_id", other["client_id"].as_str().unwrap()),
                    ("post_logout_redirect_uri", SIGNED_OUT),
                ],
            ),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());
    assert!(signed_in_with(&app, &client, &cookie).await);
    // The hint's own client, named, is fine.
    let response = browser
        .get(
            &app,
            &logout_url(
                &app,
                &[
                    ("id_token_hint", &hint),
                    ("client_id", client["client_id"].as_str().unwrap()),
                ],
            ),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("signed out"));
    assert!(!signed_in_with(&app, &client, &cookie).await);
}

async fn without_a_hint_the_user_is_asked_on_a_csrf_protected_form(app: TestApp) {
    let (client, email) = web_client(&app, json!({})).await;
    let mut browser = Browser::new();
    id_token(&app, &mut browser, &client, &email).await;
    let cookie = browser.cookies[COOKIE].clone();
    let client_id = client["client_id"].as_str().unwrap();
    // Another site's link, without a hint: a question, nothing ends.
    let page = browser
        .get(
            &app,
            &logout_url(
                &app,
                &[
                    ("client_id", client_id),
                    ("post_logout_redirect_uri", SIGNED_OUT),
                    ("state", "s1"),
                ],
            ),
        )
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Relying Party") && html.contains("Sign out?"),
        "{html}"
    );
    let csrf = netapi_testkit::hidden_field(&html, "csrf_token");
    assert!(signed_in_with(&app, &client, &cookie).await);
    // A forged confirmation (wrong CSRF token) is refused; so is one without any.
    for token in ["forged", ""] {
        let response = browser
            .post(
                &app,
                "/oauth/logout",
                &[
                    ("csrf_token", token),
                    ("confirm", "yes"),
                    ("client_id", client_id),
                    ("post_logout_redirect_uri", SIGNED_OUT),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    assert!(signed_in_with(&app, &client, &cookie).await);
    // The user's click ends it, and goes back to the client with its state.
    let response = browser
        .post(
            &app,
            "/oauth/logout",
            &[
                ("csrf_token", &csrf),
                ("confirm", "yes"),
                ("client_id", client_id),
                ("post_logout_redirect_uri", SIGNED_OUT),
                ("state", "s1"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location_of(&response), format!("{SIGNED_OUT}?state=s1"));
    assert!(!signed_in_with(&app, &client, &cookie).await);
    // A parameter given twice is an error page.
    let response = app
        .http
        .get(format!("{}?state=a&state=b", app.url("/oauth/logout")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // So is a body that is not name=value pairs; an empty one is a request without parameters.
    for (body, status) in [("AAA", StatusCode::BAD_REQUEST), ("", StatusCode::OK)] {
        let response = app
            .http
            .post(app.url("/oauth/logout"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{body:?}");
    }
}

async fn logout_metadata_is_validated_and_shown(app: TestApp) {
    let key = app.member_key("owner@example.com").await;
    let created = app
        .create_client(
            &key,
            json!({
                "client_name": "RP",
                "redirect_uris": [REDIRECT],
                "post_logout_redirect_uris": [SIGNED_OUT, "http://127.0.0.1/out"],
                "backchannel_logout_uri": "https://rp.example.com/backchannel",
                "backchannel_logout_session_required": true,
            }),
        )
        .await;
    assert_eq!(
        created["post_logout_redirect_uris"],
        json!([SIGNED_OUT, "http://127.0.0.1/out"])
    );
    assert_eq!(
        created["backchannel_logout_uri"],
        "https://rp.example.com/backchannel"
    );
    assert_eq!(created["backchannel_logout_session_required"], true);
    let id = created["client_id"].as_str().unwrap();
    for (field, value) in [
        (
            "post_logout_redirect_uris",
            json!(["http://rp.example.com/out"]),
        ),
        (
            "post_logout_redirect_uris",
            json!(["https://rp.example.com/o#f"]),
        ),
        ("post_logout_redirect_uris", json!(["javascript:alert(1)"])),
        ("backchannel_logout_uri", json!("http://rp.example.com/bc")),
        ("backchannel_logout_uri", json!("https://127.0.0.1/bc")),
        (
            "backchannel_logout_uri",
            json!("https://rp.example.com/bc#f"),
        ),
        ("backchannel_logout_uri", json!("not a url")),
    ] {
        let response = app
            .http
            .patch(app.url(&format!("/v1/oauth-clients/{id}")))
            .bearer_auth(&key)
            .json(&json!({ field: value }))
            .send()
            .await
            .unwrap();
        let body = json_with(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["error"]["code"], "INVALID_ARGUMENT", "{body}");
    }
    let response = app
        .http
        .patch(app.url(&format!("/v1/oauth-clients/{id}")))
        .bearer_auth(&key)
        .json(&json!({ "backchannel_logout_uri": null }))
        .send()
        .await
        .unwrap();
    let changed = json_with(response, StatusCode::OK).await;
    assert_eq!(changed["backchannel_logout_uri"], Value::Null);
    assert_eq!(changed["backchannel_logout_session_required"], true);
    assert_eq!(
        changed["post_logout_redirect_uris"],
        created["post_logout_redirect_uris"]
    );

    // The RFC 7591 endpoint takes and shows the same metadata, and refuses bad values in its
    // own shape.
    let response = app
        .http
        .post(app.url("/oauth/register"))
        .bearer_auth(&key)
        .json(&json!({
            "redirect_uris": [REDIRECT],
            "post_logout_redirect_uris": [SIGNED_OUT],
            "backchannel_logout_uri": "https://rp.example.com/backchannel",
        }))
        .send()
        .await
        .unwrap();
    let registered = json_with(response, StatusCode::CREATED).await;
    assert_eq!(registered["post_logout_redirect_uris"], json!([SIGNED_OUT]));
    assert_eq!(
        registered["backchannel_logout_uri"],
        "https://rp.example.com/backchannel"
    );
    assert_eq!(registered["backchannel_logout_session_required"], false);
    let response = app
        .http
        .post(app.url("/oauth/register"))
        .bearer_auth(&key)
        .json(&json!({
            "redirect_uris": [REDIRECT],
            "backchannel_logout_uri": "http://rp.example.com/backchannel",
        }))
        .send()
        .await
        .unwrap();
    let refused = json_with(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(refused["error"], "invalid_client_metadata", "{refused}");
}

/// A receiver of logout tokens on 127.0.0.1: each form it is POSTed goes to the channel.
async fn receiver() -> (String, mpsc::UnboundedReceiver<HashMap<String, String>>) {
    let (sender, received) = mpsc::unbounded_channel();
    async fn take(
        State(sender): State<mpsc::UnboundedSender<HashMap<String, String>>>,
        Form(form): Form<HashMap<String, String>>,
    ) -> axum::http::StatusCode {
        let _ = sender.send(form);
        axum::http::StatusCode::OK
    }
    let router = axum::Router::new()
        .route("/backchannel", axum::routing::post(take))
        .with_state(sender);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{address}/backchannel"), received)
}

async fn next_token(received: &mut mpsc::UnboundedReceiver<HashMap<String, String>>) -> String {
    let form = tokio::time::timeout(std::time::Duration::from_secs(30), received.recv())
        .await
        .expect("a logout token arrives")
        .unwrap();
    assert_eq!(form.len(), 1, "only logout_token: {form:?}");
    form["logout_token"].clone()
}

async fn back_channel_logout_tokens_reach_the_client_and_verify(app: TestApp) {
    let (uri, mut received) = receiver().await;
    let (client, email) = web_client(
        &app,
        json!({
            "backchannel_logout_uri": uri,
            "backchannel_logout_session_required": true,
        }),
    )
    .await;
    // A second client without a back-channel URI in the same session is told nothing.
    let (quiet, _) = web_client(&app, json!({})).await;
    let mut browser = Browser::new();
    let hint = id_token(&app, &mut browser, &client, &email).await;
    let (_, id_claims) = jwt_parts(&hint);
    let quiet_tokens = approve_signed_in(&app, &mut browser, &quiet).await;
    let (_, quiet_claims) = jwt_parts(quiet_tokens["id_token"].as_str().unwrap());
    assert_eq!(
        quiet_claims["sid"], id_claims["sid"],
        "one session, one sid"
    );

    let response = browser
        .get(&app, &logout_url(&app, &[("id_token_hint", &hint)]))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("You are signed out"), "{html}");
    assert!(!browser.cookies.contains_key(COOKIE));

    let token = next_token(&mut received).await;
    let (header, claims) = jwt_parts(&token);
    assert_eq!(header["typ"], "logout+jwt");
    verify_rs256(&token, &jwks(&app).await);
    assert_eq!(claims["iss"], app.base);
    assert_eq!(claims["aud"], client["client_id"]);
    assert_eq!(claims["sub"], id_claims["sub"]);
    assert_eq!(claims["sid"], id_claims["sid"]);
    assert!(claims["sid"].as_str().is_some());
    assert!(claims.get("nonce").is_none(), "{claims}");
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    let iat = claims["iat"].as_i64().unwrap();
    let exp = claims["exp"].as_i64().unwrap();
    assert!(exp > iat && exp - iat <= 120, "{claims}");
    assert_eq!(
        claims["events"],
        json!({"http://schemas.openid.net/event/backchannel-logout": {}})
    );

    // Ending a session another way (the portal's sign-out) tells the client too.
    netapi_testkit::sign_in_to_portal(&app, &mut browser, &email).await;
    let tokens = approve_signed_in(&app, &mut browser, &client).await;
    let (_, second) = jwt_parts(tokens["id_token"].as_str().unwrap());
    assert_ne!(second["sid"], id_claims["sid"], "a new session, a new sid");
    let portal = browser.get(&app, &app.url("/portal")).await;
    let html = portal.text().await.unwrap();
    let csrf = netapi_testkit::hidden_field(&html, "csrf_token");
    let response = browser
        .post(&app, "/logout", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let token = next_token(&mut received).await;
    let (_, claims) = jwt_parts(&token);
    assert_eq!(claims["sid"], second["sid"]);
    // Nothing else arrived: the quiet client has no URI, and each session is told once.
    assert!(received.try_recv().is_err());
}

/// A receiver that answers each POST with the next of `answers` (the last one once they run
/// out), sending each form it got to the channel.
async fn flaky_receiver(
    answers: Vec<u16>,
) -> (String, mpsc::UnboundedReceiver<HashMap<String, String>>) {
    use std::sync::{Arc, Mutex};
    type Shared = (
        mpsc::UnboundedSender<HashMap<String, String>>,
        Arc<Mutex<Vec<u16>>>,
    );
    let (sender, received) = mpsc::unbounded_channel();
    async fn take(
        State((sender, answers)): State<Shared>,
        Form(form): Form<HashMap<String, String>>,
    ) -> axum::http::StatusCode {
        let status = {
            let mut answers = answers.lock().unwrap();
            if answers.len() > 1 {
                answers.remove(0)
            } else {
                answers[0]
            }
        };
        let _ = sender.send(form);
        axum::http::StatusCode::from_u16(status).unwrap()
    }
    let router = axum::Router::new()
        .route("/backchannel", axum::routing::post(take))
        .with_state((sender, Arc::new(Mutex::new(answers))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{address}/backchannel"), received)
}

/// Waits until the delivery to `client_id` has recorded `attempts` attempts (its attempt
/// over, not under lease), and answers it.
async fn recorded_attempts(
    app: &TestApp,
    client_id: &str,
    attempts: u32,
) -> netapi_core::model::PendingLogout {
    for _ in 0..300 {
        let pending = app
            .api
            .store()
            .list_logout_deliveries(client_id)
            .await
            .unwrap();
        assert_eq!(pending.len(), 1, "{pending:?}");
        if pending[0].attempts == attempts {
            return pending[0].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("attempt {attempts} was not recorded");
}

/// Signs `email` in to `client` and ends the session at `/oauth/logout`; answers the ID
/// token's claims.
async fn sign_in_and_out(app: &TestApp, client: &Value, email: &str) -> Value {
    let mut browser = Browser::new();
    let hint = id_token(app, &mut browser, client, email).await;
    let response = browser
        .get(app, &logout_url(app, &[("id_token_hint", &hint)]))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    jwt_parts(&hint).1
}

async fn a_logout_token_is_retried_until_the_client_takes_it(app: TestApp) {
    // Down at first (503, then 502), then up.
    let (uri, mut received) = flaky_receiver(vec![503, 502, 200]).await;
    let (client, email) = web_client(&app, json!({ "backchannel_logout_uri": uri })).await;
    let client_id = client["client_id"].as_str().unwrap();
    let id_claims = sign_in_and_out(&app, &client, &email).await;

    let first = next_token(&mut received).await;
    let pending = recorded_attempts(&app, client_id, 1).await;
    // Not sooner than the backoff: due BACKCHANNEL_RETRY_BASE seconds on, then twice that.
    assert_eq!(
        pending.next_attempt_at,
        app.api.now() + BACKCHANNEL_RETRY_BASE,
        "{pending:?}"
    );
    assert_eq!(pending.sid, id_claims["sid"].as_str().unwrap());
    assert_eq!(
        app.api
            .deliver_logouts(&HttpBackchannelClient)
            .await
            .unwrap(),
        0,
        "nothing is due before the backoff"
    );
    app.clock.advance(BACKCHANNEL_RETRY_BASE);
    let second = next_token(&mut received).await;
    let pending = recorded_attempts(&app, client_id, 2).await;
    assert_eq!(
        pending.next_attempt_at,
        app.api.now() + 2 * BACKCHANNEL_RETRY_BASE
    );
    app.clock.advance(2 * BACKCHANNEL_RETRY_BASE);
    let third = next_token(&mut received).await;

    // Each attempt carried a token signed for it: fresh iat, exp and jti, each verifying.
    let keys = jwks(&app).await;
    let mut jtis = std::collections::HashSet::new();
    let mut last_iat = 0;
    for token in [&first, &second, &third] {
        verify_rs256(token, &keys);
        let (header, claims) = jwt_parts(token);
        assert_eq!(header["typ"], "logout+jwt");
        assert_eq!(claims["aud"], client["client_id"]);
        assert_eq!(claims["sub"], id_claims["sub"]);
        assert_eq!(claims["sid"], id_claims["sid"]);
        let iat = claims["iat"].as_i64().unwrap();
        assert!(iat > last_iat, "{claims}");
        last_iat = iat;
        assert!(claims["exp"].as_i64().unwrap() - iat <= 120);
        assert!(jtis.insert(claims["jti"].as_str().unwrap().to_owned()));
    }
    // The third attempt was taken: the delivery is over, nothing is pending or sent again.
    for _ in 0..300 {
        if app
            .api
            .store()
            .list_logout_deliveries(client_id)
            .await
            .unwrap()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        app.api
            .store()
            .list_logout_deliveries(client_id)
            .await
            .unwrap()
            .is_empty()
    );
    app.clock.advance(86_400);
    assert_eq!(
        app.api
            .deliver_logouts(&HttpBackchannelClient)
            .await
            .unwrap(),
        0
    );
    assert!(received.try_recv().is_err());
}

async fn a_logout_token_is_given_up_after_the_last_attempt(app: TestApp) {
    let (uri, mut received) = flaky_receiver(vec![500]).await;
    let (client, email) = web_client(&app, json!({ "backchannel_logout_uri": uri })).await;
    let client_id = client["client_id"].as_str().unwrap();
    sign_in_and_out(&app, &client, &email).await;
    let mut waited = 0;
    for attempt in 1..=BACKCHANNEL_ATTEMPTS {
        next_token(&mut received).await;
        if attempt == BACKCHANNEL_ATTEMPTS {
            break;
        }
        let pending = recorded_attempts(&app, client_id, attempt).await;
        let wait = pending.next_attempt_at - app.api.now();
        assert_eq!(wait, BACKCHANNEL_RETRY_BASE << (attempt - 1));
        waited += wait;
        app.clock.advance(wait);
    }
    // About an hour of trying, then given up: nothing pending, nothing sent again.
    assert!((3000..=5400).contains(&waited), "{waited}");
    for _ in 0..300 {
        if app
            .api
            .store()
            .list_logout_deliveries(client_id)
            .await
            .unwrap()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        app.api
            .store()
            .list_logout_deliveries(client_id)
            .await
            .unwrap()
            .is_empty()
    );
    app.clock.advance(86_400);
    assert_eq!(
        app.api
            .deliver_logouts(&HttpBackchannelClient)
            .await
            .unwrap(),
        0
    );
    assert!(received.try_recv().is_err());
}

/// Polls until `client_id` has no pending logout delivery; panics if it still has after a
/// while.
async fn no_delivery_pending(app: &TestApp, client_id: &str) {
    for _ in 0..300 {
        let pending = app
            .api
            .store()
            .list_logout_deliveries(client_id)
            .await
            .unwrap();
        if pending.is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("a delivery to {client_id} is still pending");
}

async fn a_refusal_or_a_removed_uri_ends_a_delivery(app: TestApp) {
    // 4xx: the client will not take it; not sent again.
    let (uri, mut received) = flaky_receiver(vec![410]).await;
    let (client, email) = web_client(&app, json!({ "backchannel_logout_uri": uri })).await;
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    sign_in_and_out(&app, &client, &email).await;
    next_token(&mut received).await;
    no_delivery_pending(&app, &client_id).await;

    // 5xx, then the client's URI is removed: the pending delivery ends unsent.
    let (uri, mut received) = flaky_receiver(vec![503]).await;
    let (client, email) = web_client(&app, json!({ "backchannel_logout_uri": uri })).await;
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    sign_in_and_out(&app, &client, &email).await;
    next_token(&mut received).await;
    recorded_attempts(&app, &client_id, 1).await;
    let admin = app.admin_key("root@example.com").await;
    let response = app
        .http
        .patch(app.url(&format!("/v1/oauth-clients/{client_id}")))
        .bearer_auth(&admin)
        .json(&json!({ "backchannel_logout_uri": null }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    app.clock.advance(BACKCHANNEL_RETRY_BASE);
    no_delivery_pending(&app, &client_id).await;
    assert!(received.try_recv().is_err());
}
