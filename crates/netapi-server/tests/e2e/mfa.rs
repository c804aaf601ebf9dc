//! Two-step sign-in (TOTP, RFC 6238) and the sessions list, through the real pages: the test
//! reads the enrolment secret from the security page and computes codes with its own HOTP.

use crate::e2e;
use crate::email::MailApp;
use crate::helpers::{
    Browser, PASSWORD, TestApp, authorize_and_exchange, hidden_field, location_of,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use netapi_core::{Clock, Settings};
use reqwest::StatusCode;
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// RFC 4648 base32, as the page shows the key.
fn base32_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text.chars() {
        let value = match c {
            'A'..='Z' => c as u32 - 'A' as u32,
            '2'..='7' => c as u32 - '2' as u32 + 26,
            _ => panic!("not base32: {c}"),
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

/// RFC 6238 with SHA-1, six digits, 30-second steps: the code at `time`.
fn totp(secret: &[u8], time: i64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = ring::hmac::sign(&key, &(time / 30).to_be_bytes());
    let mac = mac.as_ref();
    let offset = (mac[19] & 0xf) as usize;
    let number = (u32::from(mac[offset] & 0x7f) << 24)
        | (u32::from(mac[offset + 1]) << 16)
        | (u32::from(mac[offset + 2]) << 8)
        | u32::from(mac[offset + 3]);
    format!("{:06}", number % 1_000_000)
}

/// The text of the element whose opening tag ends with `marker`.
fn text_after<'a>(html: &'a str, marker: &str) -> &'a str {
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in:\n{html}"))
        + marker.len();
    let end = html[start..].find('<').unwrap() + start;
    &html[start..end]
}

fn recovery_codes(html: &str) -> Vec<String> {
    html.split("<code class=\"recovery-code\">")
        .skip(1)
        .map(|rest| rest[..rest.find('<').unwrap()].to_owned())
        .collect()
}

/// Signs in with the password alone (no second factor yet) and lands on `return_to`.
async fn sign_in(app: &TestApp, browser: &mut Browser, email: &str) {
    let answer = password_step(app, browser, email, "/portal").await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
}

/// The password step of signing in, through the login page; answers `POST /login`.
async fn password_step(
    app: &TestApp,
    browser: &mut Browser,
    email: &str,
    return_to: &str,
) -> reqwest::Response {
    let login = browser
        .get(app, &app.url(&format!("/login?return_to={return_to}")))
        .await;
    let html = login.text().await.unwrap();
    browser
        .post(
            app,
            "/login",
            &[
                ("email", email),
                ("password", PASSWORD),
                ("csrf_token", &hidden_field(&html, "csrf_token")),
                ("return_to", &hidden_field(&html, "return_to")),
            ],
        )
        .await
}

/// Posts the code step's form (`page` is its HTML).
async fn code_step(
    app: &TestApp,
    browser: &mut Browser,
    page: &str,
    code: &str,
) -> reqwest::Response {
    browser
        .post(
            app,
            "/login/code",
            &[
                ("code", code),
                ("csrf_token", &hidden_field(page, "csrf_token")),
                ("return_to", &hidden_field(page, "return_to")),
            ],
        )
        .await
}

/// Sets up an authenticator on the security page of a signed-in browser; answers the secret
/// (read from the page) and the recovery codes shown once.
async fn enrol(app: &TestApp, browser: &mut Browser) -> (Vec<u8>, Vec<String>) {
    let page = browser.get(app, &app.url("/portal/security")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"mfa-status\">Off"), "{html}");
    let csrf = hidden_field(&html, "csrf_token");
    let started = browser
        .post(app, "/portal/security/totp", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(started.status(), StatusCode::OK);
    assert_eq!(started.headers()["cache-control"], "no-store");
    let html = started.text().await.unwrap();
    // The QR code is drawn here, as SVG: nothing is loaded from elsewhere.
    let qr = text_after(&html, "id=\"totp-qr\">");
    assert!(qr.is_empty() && html.contains("<svg"), "{html}");
    let secret = base32_decode(text_after(&html, "id=\"totp-secret\">"));
    assert_eq!(secret.len(), 20);
    // Not active before a first code: a wrong one is refused and nothing changes.
    let wrong = browser
        .post(
            app,
            "/portal/security/totp/confirm",
            &[("csrf_token", &csrf), ("code", "000000x")],
        )
        .await;
    assert!(wrong.text().await.unwrap().contains("class=\"error\""));
    assert!(
        !app.api
            .has_second_factor(&user_id(app, browser).await)
            .await
            .unwrap()
    );
    let now = app.clock.now();
    let confirmed = browser
        .post(
            app,
            "/portal/security/totp/confirm",
            &[("csrf_token", &csrf), ("code", &totp(&secret, now))],
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let html = confirmed.text().await.unwrap();
    let codes = recovery_codes(&html);
    assert_eq!(codes.len(), 10, "{html}");
    assert!(html.contains("id=\"mfa-status\">On"));
    (secret, codes)
}

/// A session older than 15 minutes (left open, or stolen) cannot bind an authenticator: it
/// is sent to sign in again first, and nothing changes until it has.
async fn adding_a_second_factor_needs_a_recent_sign_in(app: TestApp) {
    let (_, _) = app.register("stale@example.com").await;
    let mut browser = Browser::new();
    sign_in(&app, &mut browser, "stale@example.com").await;
    let page = browser.get(&app, &app.url("/portal/mfa")).await;
    let html = page.text().await.unwrap();
    let csrf = hidden_field(&html, "csrf_token");
    let secret = base32_decode(text_after(&html, "id=\"totp-secret\">"));
    app.clock.advance(15 * 60 + 1);
    let again = "/login?reauth=1&return_to=%2Fportal%2Fmfa";
    let started = browser
        .post(&app, "/portal/security/totp", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    assert_eq!(location_of(&started), again);
    let confirmed = browser
        .post(
            &app,
            "/portal/security/totp/confirm",
            &[
                ("csrf_token", &csrf),
                ("code", &totp(&secret, app.clock.now())),
            ],
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::SEE_OTHER);
    assert_eq!(location_of(&confirmed), again);
    assert!(
        !app.api
            .has_second_factor(&user_id(&app, &mut browser).await)
            .await
            .unwrap(),
        "nothing changed"
    );
    let login = browser
        .get(&app, &app.url(again))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        login.contains("this change needs a recent sign-in"),
        "{login}"
    );

    // Signed in again: the same step goes through, with the same key.
    sign_in(&app, &mut browser, "stale@example.com").await;
    let html = browser
        .get(&app, &app.url("/portal/mfa"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        base32_decode(text_after(&html, "id=\"totp-secret\">")),
        secret
    );
    let confirmed = browser
        .post(
            &app,
            "/portal/security/totp/confirm",
            &[
                ("csrf_token", &hidden_field(&html, "csrf_token")),
                ("code", &totp(&secret, app.clock.now())),
            ],
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let html = confirmed.text().await.unwrap();
    assert!(html.contains("id=\"mfa-status\">On"), "{html}");
}

async fn user_id(app: &TestApp, browser: &mut Browser) -> String {
    let cookie = browser.cookies["netapi_session"].clone();
    app.api.find_session(&cookie).await.unwrap().unwrap().1.id
}

async fn audit_kinds(app: &TestApp) -> Vec<String> {
    app.api
        .store()
        .list_audit_events(None, None, 200)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// CONTRACT.md's enrolment address: `/portal/mfa` shows the key as text, a QR code and a
/// `code` input at once; a reload shows the same pending key; the first code turns it on, and
/// the page then starts nothing new.
async fn the_contract_enrolment_page_shows_the_key_at_once(app: TestApp) {
    app.register("mia@example.com").await;
    let signed_out = Browser::new().get(&app, &app.url("/portal/mfa")).await;
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location_of(&signed_out), "/login?return_to=/portal/mfa");
    let mut browser = Browser::new();
    sign_in(&app, &mut browser, "mia@example.com").await;
    let page = browser.get(&app, &app.url("/portal/mfa")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<svg") && html.contains("name=\"code\""),
        "{html}"
    );
    let key = text_after(&html, "id=\"totp-secret\">").to_owned();
    let again = browser.get(&app, &app.url("/portal/mfa")).await;
    let html = again.text().await.unwrap();
    assert_eq!(
        text_after(&html, "id=\"totp-secret\">"),
        key,
        "a reload keeps the key"
    );
    assert!(
        !app.api
            .has_second_factor(&user_id(&app, &mut browser).await)
            .await
            .unwrap(),
        "nothing is on before the first code"
    );
    let csrf = hidden_field(&html, "csrf_token");
    let secret = base32_decode(&key);
    let confirmed = browser
        .post(
            &app,
            "/portal/security/totp/confirm",
            &[
                ("csrf_token", &csrf),
                ("code", &totp(&secret, app.clock.now())),
            ],
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert_eq!(recovery_codes(&confirmed.text().await.unwrap()).len(), 10);
    let after = browser.get(&app, &app.url("/portal/mfa")).await;
    let html = after.text().await.unwrap();
    assert!(html.contains("id=\"mfa-status\">On"), "{html}");
    assert!(
        !html.contains("id=\"totp-secret\""),
        "no new enrolment once on"
    );
}

async fn totp_sign_in_with_codes_and_recovery(app: TestApp) {
    app.register("tia@example.com").await;
    let mut browser = Browser::new();
    sign_in(&app, &mut browser, "tia@example.com").await;
    let (secret, codes) = enrol(&app, &mut browser).await;

    // A new browser: the password alone gives no session, only the code step.
    let mut other = Browser::new();
    let answer = password_step(&app, &mut other, "tia@example.com", "/portal").await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(!other.cookies.contains_key("netapi_session"));
    assert!(other.cookies.contains_key("netapi_second_factor"));
    let page = answer.text().await.unwrap();
    assert!(page.contains("name=\"code\""));
    // The portal is still closed.
    let portal = other.get(&app, &app.url("/portal")).await;
    assert_eq!(portal.status(), StatusCode::SEE_OTHER);

    // The code of the step just used to confirm is refused (replay), a wrong one too.
    let now = app.clock.now();
    let replayed = code_step(&app, &mut other, &page, &totp(&secret, now)).await;
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    let wrong = code_step(&app, &mut other, &page, "123456").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(!other.cookies.contains_key("netapi_session"));

    // The next step's code signs in; replaying it in a third browser fails.
    app.clock.advance(30);
    let code = totp(&secret, app.clock.now());
    let passed = code_step(&app, &mut other, &page, &code).await;
    assert_eq!(passed.status(), StatusCode::SEE_OTHER);
    assert_eq!(location_of(&passed), "/portal");
    assert!(other.cookies.contains_key("netapi_session"));
    assert!(!other.cookies.contains_key("netapi_second_factor"));
    let mut third = Browser::new();
    let page3 = password_step(&app, &mut third, "tia@example.com", "/portal")
        .await
        .text()
        .await
        .unwrap();
    let replay = code_step(&app, &mut third, &page3, &code).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);

    // A recovery code works once, however it is typed.
    let typed = codes[0].to_uppercase().replace('-', " ");
    let used = code_step(&app, &mut third, &page3, &typed).await;
    assert_eq!(used.status(), StatusCode::SEE_OTHER);
    let mut fourth = Browser::new();
    let page4 = password_step(&app, &mut fourth, "tia@example.com", "/portal")
        .await
        .text()
        .await
        .unwrap();
    let again = code_step(&app, &mut fourth, &page4, &codes[0]).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    let other_code = code_step(&app, &mut fourth, &page4, &codes[1]).await;
    assert_eq!(other_code.status(), StatusCode::SEE_OTHER);

    // The security page counts what is left.
    let html = other
        .get(&app, &app.url("/portal/security"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Unused recovery codes: 8."), "{html}");
    let kinds = audit_kinds(&app).await;
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "mfa.recovery_code_used")
            .count(),
        2
    );
    assert!(kinds.iter().any(|k| k == "mfa.verified"));
}

async fn pending_sign_in_is_bound_and_expires(app: TestApp) {
    app.register("pia@example.com").await;
    let mut browser = Browser::new();
    sign_in(&app, &mut browser, "pia@example.com").await;
    let (secret, _) = enrol(&app, &mut browser).await;
    app.clock.advance(30);

    let mut other = Browser::new();
    let page = password_step(&app, &mut other, "pia@example.com", "/portal")
        .await
        .text()
        .await
        .unwrap();
    // The ticket alone, in a browser with another sign-in form, is worth nothing.
    let mut thief = Browser::new();
    let stolen_page = thief
        .get(&app, &app.url("/login"))
        .await
        .text()
        .await
        .unwrap();
    thief.cookies.insert(
        "netapi_second_factor".to_owned(),
        other.cookies["netapi_second_factor"].clone(),
    );
    let stolen = code_step(
        &app,
        &mut thief,
        &stolen_page,
        &totp(&secret, app.clock.now()),
    )
    .await;
    assert_eq!(stolen.status(), StatusCode::UNAUTHORIZED);
    assert!(stolen.text().await.unwrap().contains("name=\"password\""));
    // A forged ticket neither.
    let mut forged = other.cookies["netapi_second_factor"].clone();
    forged.replace_range(forged.len() - 4.., "0000");
    let mut forger = Browser::new();
    forger.cookies = other.cookies.clone();
    forger
        .cookies
        .insert("netapi_second_factor".to_owned(), forged);
    let refused = code_step(&app, &mut forger, &page, &totp(&secret, app.clock.now())).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    // Past five minutes the pending sign-in is gone.
    app.clock.advance(301);
    let late = code_step(&app, &mut other, &page, &totp(&secret, app.clock.now())).await;
    assert_eq!(late.status(), StatusCode::UNAUTHORIZED);
    assert!(late.text().await.unwrap().contains("Please sign in again"));
    assert!(!other.cookies.contains_key("netapi_session"));
}

fn tight_limit(settings: &mut Settings) {
    settings.auth_failure_limit = 3;
}

async fn wrong_codes_are_limited(app: TestApp) {
    app.register("lia@example.com").await;
    let mut browser = Browser::new();
    sign_in(&app, &mut browser, "lia@example.com").await;
    let (secret, _) = enrol(&app, &mut browser).await;
    app.clock.advance(30);
    let mut other = Browser::new();
    let page = password_step(&app, &mut other, "lia@example.com", "/portal")
        .await
        .text()
        .await
        .unwrap();
    // The wrong code tried during enrolment counted too: two more reach the limit of three.
    for _ in 0..2 {
        let wrong = code_step(&app, &mut other, &page, "999999").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    // Limited now: even the right code waits, and so does the password.
    let limited = code_step(&app, &mut other, &page, &totp(&secret, app.clock.now())).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    let mut another = Browser::new();
    let password = password_step(&app, &mut another, "lia@example.com", "/portal").await;
    assert_eq!(password.status(), StatusCode::TOO_MANY_REQUESTS);
}

async fn id_token_says_how_the_user_signed_in(app: TestApp) {
    let key = app.member_key("oia@example.com").await;
    let client = app
        .create_client(
            &key,
            json!({
                "client_name": "Reader",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "openid",
            }),
        )
        .await;
    let claims = |tokens: &Value| -> Value {
        let id_token = tokens["id_token"].as_str().expect("id_token");
        serde_json::from_slice(&B64.decode(id_token.split('.').nth(1).unwrap()).unwrap()).unwrap()
    };
    let mut browser = Browser::new();
    let tokens = authorize_and_exchange(
        &app,
        &mut browser,
        &client,
        REDIRECT,
        "openid",
        "oia@example.com",
    )
    .await;
    assert_eq!(claims(&tokens)["amr"], json!(["pwd"]));
    assert_eq!(claims(&tokens)["acr"], "urn:netapi:acr:pwd");

    let (secret, _) = enrol(&app, &mut browser).await;
    app.clock.advance(30);
    // A fresh sign-in with the code: prompt=login makes the authorization ask again.
    let mut other = Browser::new();
    let client_id = client["client_id"].as_str().unwrap();
    let pkce = crate::helpers::Pkce::random();
    let mut url = url::Url::parse(&app.url("/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid")
        .append_pair("prompt", "login")
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    let login = other.get(&app, url.as_str()).await.text().await.unwrap();
    let step = other
        .post(
            &app,
            "/login",
            &[
                ("email", "oia@example.com"),
                ("password", PASSWORD),
                ("csrf_token", &hidden_field(&login, "csrf_token")),
                ("return_to", &hidden_field(&login, "return_to")),
            ],
        )
        .await;
    assert_eq!(step.status(), StatusCode::OK);
    let page = step.text().await.unwrap();
    let passed = code_step(&app, &mut other, &page, &totp(&secret, app.clock.now())).await;
    assert_eq!(passed.status(), StatusCode::SEE_OTHER);
    let next = location_of(&passed);
    assert!(next.starts_with("/oauth/authorize?"), "{next}");
    // Consent was given in the first flow: straight back to the client with a code.
    let back = other.get(&app, &app.url(&next)).await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    let code = crate::helpers::query_pairs(&location_of(&back))["code"].clone();
    let tokens = crate::helpers::exchange_code(
        &app,
        client_id,
        client["client_secret"].as_str(),
        &code,
        Some(REDIRECT),
        Some(&pkce.verifier),
    )
    .await;
    assert_eq!(claims(&tokens)["amr"], json!(["pwd", "otp"]));
    assert_eq!(claims(&tokens)["acr"], "urn:netapi:acr:mfa");
    // Refreshing keeps what the sign-in was.
    let refreshed: Value = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(client_id, client["client_secret"].as_str())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(claims(&refreshed)["amr"], json!(["pwd", "otp"]));
}

fn admins_need_mfa(settings: &mut Settings) {
    settings.mfa_required_for_admins = true;
}

async fn required_mfa_sends_to_enrolment_first(app: TestApp) {
    let admin = app.admin_key("ria@example.com").await;
    app.register("member@example.com").await;
    // A member is not concerned.
    let mut member = Browser::new();
    let answer = password_step(&app, &mut member, "member@example.com", "/portal").await;
    assert_eq!(location_of(&answer), "/portal");

    let mut browser = Browser::new();
    let answer = password_step(&app, &mut browser, "ria@example.com", "/portal/webhooks").await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location_of(&answer),
        "/portal/security?return_to=%2Fportal%2Fwebhooks"
    );
    // Nothing else opens before enrolment: the portal sends to sign-in, which sends here.
    let portal = browser.get(&app, &app.url("/portal")).await;
    assert_eq!(portal.status(), StatusCode::SEE_OTHER);
    let login = browser.get(&app, &app.url(&location_of(&portal))).await;
    assert_eq!(location_of(&login), "/portal/security?return_to=%2Fportal");
    let page = browser
        .get(
            &app,
            &app.url("/portal/security?return_to=/portal/webhooks"),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"mfa-required\""));
    let (secret, _) = {
        // The enrolment page keeps where to continue to.
        let csrf = hidden_field(&page, "csrf_token");
        let html = browser
            .post(
                &app,
                "/portal/security/totp",
                &[("csrf_token", &csrf), ("return_to", "/portal/webhooks")],
            )
            .await
            .text()
            .await
            .unwrap();
        let secret = base32_decode(text_after(&html, "id=\"totp-secret\">"));
        let done = browser
            .post(
                &app,
                "/portal/security/totp/confirm",
                &[
                    ("csrf_token", &csrf),
                    ("return_to", "/portal/webhooks"),
                    ("code", &totp(&secret, app.clock.now())),
                ],
            )
            .await
            .text()
            .await
            .unwrap();
        assert!(
            done.contains("id=\"continue\" href=\"/portal/webhooks\""),
            "{done}"
        );
        (secret, recovery_codes(&done))
    };
    let webhooks = browser.get(&app, &app.url("/portal/webhooks")).await;
    assert_eq!(webhooks.status(), StatusCode::OK);
    // It cannot be turned off while required.
    let csrf = hidden_field(
        &browser
            .get(&app, &app.url("/portal/security"))
            .await
            .text()
            .await
            .unwrap(),
        "csrf_token",
    );
    let refused = browser
        .post(
            &app,
            "/portal/security/totp/disable",
            &[("csrf_token", &csrf), ("code", PASSWORD)],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(refused.contains("requires a second factor"), "{refused}");
    assert!(
        app.api
            .has_second_factor(&user_id(&app, &mut browser).await)
            .await
            .unwrap()
    );
    let _ = (secret, admin);
}

async fn disable_and_regenerate_need_presence(app: TestApp) {
    app.register("dia@example.com").await;
    let mut browser = Browser::new();
    sign_in(&app, &mut browser, "dia@example.com").await;
    let (secret, old_codes) = enrol(&app, &mut browser).await;
    let csrf = hidden_field(
        &browser
            .get(&app, &app.url("/portal/security"))
            .await
            .text()
            .await
            .unwrap(),
        "csrf_token",
    );
    // A wrong password regenerates nothing.
    let wrong = browser
        .post(
            &app,
            "/portal/security/recovery-codes",
            &[("csrf_token", &csrf), ("code", "not the password")],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(recovery_codes(&wrong).is_empty());
    assert!(wrong.contains("class=\"error\""));
    // With the password: ten new codes, and the old ones stop working.
    let fresh = browser
        .post(
            &app,
            "/portal/security/recovery-codes",
            &[("csrf_token", &csrf), ("code", PASSWORD)],
        )
        .await
        .text()
        .await
        .unwrap();
    let new_codes = recovery_codes(&fresh);
    assert_eq!(new_codes.len(), 10);
    let mut other = Browser::new();
    let page = password_step(&app, &mut other, "dia@example.com", "/portal")
        .await
        .text()
        .await
        .unwrap();
    let old = code_step(&app, &mut other, &page, &old_codes[0]).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    // Turned off with a current code: the password alone signs in again.
    app.clock.advance(30);
    let off = browser
        .post(
            &app,
            "/portal/security/totp/disable",
            &[
                ("csrf_token", &csrf),
                ("code", &totp(&secret, app.clock.now())),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(off.contains("id=\"mfa-status\">Off"), "{off}");
    let mut third = Browser::new();
    let answer = password_step(&app, &mut third, "dia@example.com", "/portal").await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let kinds = audit_kinds(&app).await;
    for kind in [
        "mfa.enabled",
        "mfa.proof_failed",
        "mfa.recovery_codes_regenerated",
        "mfa.failed",
        "mfa.disabled",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}

async fn sessions_are_listed_and_ended(app: TestApp) {
    app.register("sia@example.com").await;
    let mut laptop = Browser::new();
    sign_in(&app, &mut laptop, "sia@example.com").await;
    // A phone signs in with its own User-Agent.
    let mut phone = Browser::new();
    let login = app.http.get(app.url("/login")).send().await.unwrap();
    phone.remember(&login);
    let html = login.text().await.unwrap();
    let signed = app
        .http
        .post(app.url("/login"))
        .header("cookie", phone.header())
        .header(
            "user-agent",
            "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36",
        )
        .form(&[
            ("email", "sia@example.com"),
            ("password", PASSWORD),
            ("csrf_token", hidden_field(&html, "csrf_token").as_str()),
            ("return_to", "/portal"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    phone.remember(&signed);
    let mut tablet = Browser::new();
    sign_in(&app, &mut tablet, "sia@example.com").await;

    app.clock.advance(120);
    let page = laptop
        .get(&app, &app.url("/portal/security"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(page.matches("<tr class=\"session\">").count(), 3, "{page}");
    assert!(page.contains("Chrome on Android"), "{page}");
    assert!(page.contains("127.0.0.1"));
    assert_eq!(page.matches("(this browser)").count(), 1);
    // Another user's list does not show these, nor can it end them.
    app.register("eve@example.com").await;
    let mut eve = Browser::new();
    sign_in(&app, &mut eve, "eve@example.com").await;
    let eve_page = eve
        .get(&app, &app.url("/portal/security"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(eve_page.matches("<tr class=\"session\">").count(), 1);
    // The phone's row: the one with Android in it.
    let row_start = page.find("Chrome on Android").unwrap();
    let action = "/portal/security/sessions/";
    let id_start = page[row_start..].find(action).unwrap() + row_start + action.len();
    let phone_id = &page[id_start..id_start + page[id_start..].find('/').unwrap()];
    let eve_try = eve
        .post(
            &app,
            &format!("/portal/security/sessions/{phone_id}/end"),
            &[("csrf_token", &hidden_field(&eve_page, "csrf_token"))],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(eve_try.contains("session not found"), "{eve_try}");
    assert_eq!(
        phone.get(&app, &app.url("/portal")).await.status(),
        StatusCode::OK
    );

    // Ending the phone's session takes effect at once.
    let csrf = hidden_field(&page, "csrf_token");
    let ended = laptop
        .post(
            &app,
            &format!("/portal/security/sessions/{phone_id}/end"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(ended.status(), StatusCode::OK);
    assert_eq!(
        phone.get(&app, &app.url("/portal")).await.status(),
        StatusCode::SEE_OTHER
    );
    // "End all other sessions" leaves only this one.
    assert_eq!(
        tablet.get(&app, &app.url("/portal")).await.status(),
        StatusCode::OK
    );
    let others = laptop
        .post(
            &app,
            "/portal/security/sessions/end-others",
            &[("csrf_token", &csrf)],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(others.contains("1 other session was ended."), "{others}");
    assert_eq!(
        tablet.get(&app, &app.url("/portal")).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        laptop.get(&app, &app.url("/portal")).await.status(),
        StatusCode::OK
    );
    // A forged form (no CSRF token of the session) ends nothing.
    let forged = laptop
        .post(
            &app,
            "/portal/security/sessions/end-others",
            &[("csrf_token", "x")],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}

async fn with_mail(backend: crate::helpers::Backend) -> Option<MailApp> {
    crate::email::mail(backend).await
}

/// The subject and body of the `n`-th message (from 1) to `address`, once it has arrived.
async fn nth_message(sink: &crate::helpers::SmtpSink, address: &str, n: usize) -> (String, String) {
    let message = sink.wait_for(address, n).await.remove(n - 1);
    let subject = message.header("Subject").expect("Subject");
    (subject, message.data)
}

async fn enabling_mfa_ends_other_sign_ins_and_every_change_is_mailed(fixture: MailApp) {
    let MailApp { app, sink } = fixture;
    let key = app.member_key("mia@example.com").await;
    nth_message(&sink, "mia@example.com", 1).await;
    let client = app
        .create_client(
            &key,
            json!({
                "client_name": "Reader",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "openid",
            }),
        )
        .await;
    // Another browser signed in (and holding a refresh token) before the second factor.
    let mut phone = Browser::new();
    let tokens = authorize_and_exchange(
        &app,
        &mut phone,
        &client,
        REDIRECT,
        "openid",
        "mia@example.com",
    )
    .await;
    let refresh = |token: String| {
        let app = &app;
        let client = &client;
        async move {
            app.http
                .post(app.url("/oauth/token"))
                .basic_auth(
                    client["client_id"].as_str().unwrap(),
                    client["client_secret"].as_str(),
                )
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let first_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let rotated: Value = refresh(first_refresh).await.json().await.unwrap();
    let refresh_token = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        phone.get(&app, &app.url("/portal")).await.status(),
        StatusCode::OK
    );

    let mut laptop = Browser::new();
    sign_in(&app, &mut laptop, "mia@example.com").await;
    let (_, codes) = enrol(&app, &mut laptop).await;
    // The phone is signed out and its refresh token refused; this browser stays.
    assert_eq!(
        phone.get(&app, &app.url("/portal")).await.status(),
        StatusCode::SEE_OTHER
    );
    let refused = refresh(refresh_token).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let page = laptop
        .get(&app, &app.url("/portal/security"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(page.matches("<tr class=\"session\">").count(), 1, "{page}");

    // The address is told, without the secret or a code.
    let (subject, body) = nth_message(&sink, "mia@example.com", 2).await;
    assert_eq!(subject, "Two-step sign-in was turned on");
    assert!(!body.contains("otpauth:"), "{body}");
    assert!(
        codes.iter().all(|code| !body.contains(code.as_str())),
        "{body}"
    );

    let csrf = hidden_field(&page, "csrf_token");
    let fresh = laptop
        .post(
            &app,
            "/portal/security/recovery-codes",
            &[("csrf_token", &csrf), ("code", PASSWORD)],
        )
        .await
        .text()
        .await
        .unwrap();
    let new_codes = recovery_codes(&fresh);
    assert_eq!(new_codes.len(), 10);
    let (subject, body) = nth_message(&sink, "mia@example.com", 3).await;
    assert_eq!(subject, "Your recovery codes were replaced");
    assert!(
        new_codes.iter().all(|code| !body.contains(code.as_str())),
        "{body}"
    );

    let off = laptop
        .post(
            &app,
            "/portal/security/totp/disable",
            &[("csrf_token", &csrf), ("code", PASSWORD)],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(off.contains("id=\"mfa-status\">Off"), "{off}");
    let (subject, body) = nth_message(&sink, "mia@example.com", 4).await;
    assert_eq!(subject, "Two-step sign-in was turned off");
    assert!(body.contains("turned off for your account at"), "{body}");
}

e2e!(spawn = with_mail; enabling_mfa_ends_other_sign_ins_and_every_change_is_mailed);
e2e!(
    the_contract_enrolment_page_shows_the_key_at_once,
    totp_sign_in_with_codes_and_recovery,
    pending_sign_in_is_bound_and_expires,
    id_token_says_how_the_user_signed_in,
    disable_and_regenerate_need_presence,
    sessions_are_listed_and_ended,
    adding_a_second_factor_needs_a_recent_sign_in,
);
e2e!(settings = tight_limit; wrong_codes_are_limited);
e2e!(settings = admins_need_mfa; required_mfa_sends_to_enrolment_first);
