//! Email (issue 15): verification and password-reset links read from real messages, sent
//! through the server's SMTP client to the testkit's SMTP sink; limits, a mail server that is
//! down, and a server without email.

use reqwest::StatusCode;
use serde_json::json;

use crate::e2e;
use crate::helpers::{
    Backend, Browser, PASSWORD, SmtpSink, TestApp, expect_error, hidden_field, json_with,
    location_of, sign_in_to_portal,
};

/// A server sending mail to a sink of its own.
pub(crate) struct MailApp {
    pub(crate) app: TestApp,
    pub(crate) sink: SmtpSink,
}

impl AsRef<TestApp> for MailApp {
    fn as_ref(&self) -> &TestApp {
        &self.app
    }
}

async fn with_sink(
    backend: Backend,
    adjust: impl FnOnce(&mut netapi_core::Settings),
) -> Option<MailApp> {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(backend, &sink.url(), adjust).await?;
    Some(MailApp { app, sink })
}

pub(crate) async fn mail(backend: Backend) -> Option<MailApp> {
    with_sink(backend, |_| {}).await
}

async fn strict_mail(backend: Backend) -> Option<MailApp> {
    with_sink(backend, |s| s.require_verified_email = true).await
}

async fn limited_mail(backend: Backend) -> Option<MailApp> {
    with_sink(backend, |s| {
        s.email_recipient_limit_per_hour = 2;
        s.email_source_limit_per_hour = 6;
    })
    .await
}

async fn mail_server_down(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_with_mail(backend, &SmtpSink::down_url().await, |_| {}).await
}

e2e!(spawn = mail;
    a_verification_link_verifies_the_address_once,
    a_changed_email_is_verified_again_and_the_old_address_is_told,
    a_password_is_reset_through_the_pages,
    a_password_is_reset_through_the_api,
    the_portal_sends_the_verification_link_again,
);
e2e!(spawn = strict_mail; an_unverified_user_cannot_sign_in_until_verified);
e2e!(spawn = limited_mail;
    mail_is_limited_per_recipient_and_per_source,
    the_portals_resend_keeps_to_the_email_limits,
);
e2e!(spawn = mail_server_down; a_mail_server_that_is_down_fails_no_request);
e2e!(
    without_smtp_email_features_say_they_are_off,
    without_smtp_the_portal_says_email_is_off,
);

async fn me(app: &TestApp, key: &str) -> serde_json::Value {
    let response = app
        .http
        .get(app.url("/v1/users/me"))
        .bearer_auth(key)
        .send()
        .await
        .expect("me");
    json_with(response, StatusCode::OK).await
}

async fn request_reset(app: &TestApp, email: &str) -> reqwest::Response {
    app.http
        .post(app.url("/v1/password-reset"))
        .json(&json!({ "email": email }))
        .send()
        .await
        .expect("password reset")
}

async fn confirm_reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.http
        .post(app.url("/v1/password-reset/confirm"))
        .json(&json!({ "token": token, "password": password }))
        .send()
        .await
        .expect("confirm")
}

/// Signs in through the login page with `password`; answers the status of the POST.
async fn sign_in_status(
    app: &TestApp,
    browser: &mut Browser,
    email: &str,
    password: &str,
) -> (StatusCode, String) {
    let page = browser.get(app, &app.url("/login")).await;
    let html = page.text().await.expect("login page");
    let response = browser
        .post(
            app,
            "/login",
            &[
                ("email", email),
                ("password", password),
                ("csrf_token", &hidden_field(&html, "csrf_token")),
                ("return_to", "/portal"),
            ],
        )
        .await;
    let status = response.status();
    (status, response.text().await.expect("body"))
}

async fn a_verification_link_verifies_the_address_once(fixture: MailApp) {
    let MailApp { app, sink } = fixture;
    let (user, key) = app.register("ada@example.com").await;
    assert_eq!(user["email_verified"], false);
    let key = key["key"].as_str().expect("key").to_owned();
    let message = sink.wait_for("ada@example.com", 1).await.remove(0);
    assert_eq!(
        message.header("Subject").as_deref(),
        Some("Verify your email address")
    );
    assert!(
        message
            .header("From")
            .expect("From")
            .contains("netapi@example.com")
    );
    assert_eq!(message.from, "netapi@example.com");
    let link = message.link("/verify-email").expect("verification link");
    assert!(
        link.starts_with(&app.url("/verify-email?token=napel_")),
        "{link}"
    );
    let token = message.token("/verify-email").expect("token");

    // A forged or mangled token verifies nothing.
    let forged = app
        .http
        .get(app.url("/verify-email?token=napel_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
        .send()
        .await
        .expect("forged");
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    let mut mangled = token.clone();
    mangled.pop();
    mangled.push(if token.ends_with('A') { 'B' } else { 'A' });
    let body = expect_error(
        app.http
            .post(app.url("/v1/verify-email"))
            .json(&json!({ "token": mangled }))
            .send()
            .await
            .expect("mangled"),
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
    )
    .await;
    assert_eq!(body["error"]["details"][0]["field"], "token");
    assert_eq!(me(&app, &key).await["email_verified"], false);

    let page = app.http.get(&link).send().await.expect("verify");
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(page.text().await.expect("page").contains("is verified"));
    assert_eq!(me(&app, &key).await["email_verified"], true);

    // Single use: the link, and its token over the API, no longer work.
    let again = app.http.get(&link).send().await.expect("again");
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    expect_error(
        app.http
            .post(app.url("/v1/verify-email"))
            .json(&json!({ "token": token }))
            .send()
            .await
            .expect("again"),
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
    )
    .await;
    // Nothing more to verify.
    expect_error(
        app.http
            .post(app.url("/v1/email-verification"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("resend"),
        StatusCode::CONFLICT,
        "ALREADY_EXISTS",
    )
    .await;
}

async fn a_changed_email_is_verified_again_and_the_old_address_is_told(fixture: MailApp) {
    let MailApp { app, sink } = fixture;
    let key = app.member_key("grace@example.com").await;
    let first = sink.wait_for("grace@example.com", 1).await.remove(0);
    let verified = app
        .http
        .post(app.url("/v1/verify-email"))
        .json(&json!({ "token": first.token("/verify-email").expect("token") }))
        .send()
        .await
        .expect("verify");
    assert_eq!(
        json_with(verified, StatusCode::OK).await["email_verified"],
        true
    );

    // A reset link mailed to the old address before the change...
    assert_eq!(
        request_reset(&app, "grace@example.com").await.status(),
        StatusCode::ACCEPTED
    );
    let old_reset = sink.wait_for("grace@example.com", 2).await[1]
        .token("/reset-password")
        .expect("reset token");

    // An unverified user may ask for a new link; the API answers 202.
    let changed = app
        .http
        .patch(app.url("/v1/users/me"))
        .bearer_auth(&key)
        .json(&json!({ "email": "hopper@example.com", "current_password": PASSWORD }))
        .send()
        .await
        .expect("change email");
    let changed = json_with(changed, StatusCode::OK).await;
    assert_eq!(changed["email"], "hopper@example.com");
    assert_eq!(changed["email_verified"], false);
    let notice = sink.wait_for("grace@example.com", 3).await.remove(2);
    assert_eq!(
        notice.header("Subject").as_deref(),
        Some("Your email address was changed")
    );
    // ... resets nothing after it: whoever reads the old mailbox has no way back in.
    expect_error(
        confirm_reset(&app, &old_reset, "a takeover passphrase").await,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
    )
    .await;
    assert!(notice.link("/verify-email").is_none() && notice.link("/reset-password").is_none());
    let to_new = sink.wait_for("hopper@example.com", 1).await.remove(0);
    let resend = app
        .http
        .post(app.url("/v1/email-verification"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("resend");
    assert_eq!(resend.status(), StatusCode::ACCEPTED);
    let resent = sink.wait_for("hopper@example.com", 2).await.remove(1);
    // Both links work, each once: the first one used verifies the new address.
    let page = app
        .http
        .get(to_new.link("/verify-email").expect("link"))
        .send()
        .await
        .expect("verify");
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(me(&app, &key).await["email_verified"], true);
    assert_ne!(resent.token("/verify-email"), to_new.token("/verify-email"));

    // A password change is told to the address too.
    let changed = app
        .http
        .patch(app.url("/v1/users/me"))
        .bearer_auth(&key)
        .json(&json!({ "password": "a brand new passphrase", "current_password": PASSWORD }))
        .send()
        .await
        .expect("change password");
    assert_eq!(changed.status(), StatusCode::OK);
    let notice = sink.wait_for("hopper@example.com", 3).await.remove(2);
    assert_eq!(
        notice.header("Subject").as_deref(),
        Some("Your password was changed")
    );
}

async fn a_password_is_reset_through_the_pages(fixture: MailApp) {
    let MailApp { app, sink } = fixture;
    app.register("linus@example.com").await;
    sink.wait_for("linus@example.com", 1).await;
    let mut signed_in = Browser::new();
    let (status, _) = sign_in_status(&app, &mut signed_in, "linus@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    let mut browser = Browser::new();
    let login = browser.get(&app, &app.url("/login")).await;
    assert!(
        login
            .text()
            .await
            .expect("login")
            .contains("href=\"/forgot-password\"")
    );
    let form = browser.get(&app, &app.url("/forgot-password")).await;
    assert_eq!(form.status(), StatusCode::OK);
    assert!(form.text().await.expect("form").contains("name=\"email\""));
    // The form's CSRF token is checked; the form comes back with a new one.
    let forged = browser
        .post(
            &app,
            "/forgot-password",
            &[("email", "linus@example.com"), ("csrf_token", "forged")],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let html = forged.text().await.expect("form again");
    let sent = browser
        .post(
            &app,
            "/forgot-password",
            &[
                ("email", "linus@example.com"),
                ("csrf_token", &hidden_field(&html, "csrf_token")),
            ],
        )
        .await;
    assert_eq!(sent.status(), StatusCode::OK);
    assert!(
        sent.text()
            .await
            .expect("page")
            .contains("If an account has this address")
    );
    let message = sink.wait_for("linus@example.com", 2).await.remove(1);
    assert_eq!(
        message.header("Subject").as_deref(),
        Some("Reset your password")
    );
    let link = message.link("/reset-password").expect("reset link");

    let page = browser.get(&app, &link).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("reset page");
    let token = hidden_field(&html, "token");
    let csrf = hidden_field(&html, "csrf_token");
    // The same rules as at registration.
    let weak = browser
        .post(
            &app,
            "/reset-password",
            &[
                ("token", &token),
                ("password", "password1"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(weak.status(), StatusCode::BAD_REQUEST);
    let html = weak.text().await.expect("form again");
    assert!(html.contains("The password"));
    let csrf = hidden_field(&html, "csrf_token");
    let done = browser
        .post(
            &app,
            "/reset-password",
            &[
                ("token", &token),
                ("password", "a new and long passphrase"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(done.status(), StatusCode::OK);
    // Not signed in by the reset.
    assert!(done.headers().get_all("set-cookie").iter().all(|c| {
        !c.to_str()
            .unwrap_or_default()
            .starts_with("netapi_session=napss_")
    }));
    assert!(
        done.text()
            .await
            .expect("done")
            .contains("Password changed")
    );

    // The session the old password opened is over; the old password no longer works.
    let portal = signed_in.get(&app, &app.url("/portal")).await;
    assert_eq!(portal.status(), StatusCode::SEE_OTHER);
    assert!(location_of(&portal).starts_with("/login"));
    let (status, _) =
        sign_in_status(&app, &mut Browser::new(), "linus@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = sign_in_status(
        &app,
        &mut Browser::new(),
        "linus@example.com",
        "a new and long passphrase",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // The link worked once, and the address is told.
    let reused = browser.get(&app, &link).await;
    assert_eq!(reused.status(), StatusCode::BAD_REQUEST);
    assert!(
        reused
            .text()
            .await
            .expect("page")
            .contains("/forgot-password")
    );
    let notice = sink.wait_for("linus@example.com", 3).await.remove(2);
    assert_eq!(
        notice.header("Subject").as_deref(),
        Some("Your password was changed")
    );
}

async fn a_password_is_reset_through_the_api(fixture: MailApp) {
    let MailApp { app, sink } = fixture;
    app.register("barbara@example.com").await;
    sink.wait_for("barbara@example.com", 1).await;

    // An unknown address gets the same answer, and no message.
    let unknown = request_reset(&app, "nobody@example.com").await;
    assert_eq!(unknown.status(), StatusCode::ACCEPTED);
    let known = request_reset(&app, "Barbara@Example.com").await;
    assert_eq!(known.status(), StatusCode::ACCEPTED);
    expect_error(
        request_reset(&app, "not an address").await,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
    )
    .await;
    let token = sink.wait_for("barbara@example.com", 2).await[1]
        .token("/reset-password")
        .expect("token");

    // Forged tokens and rule-breaking passwords are refused; the token survives them.
    expect_error(
        confirm_reset(
            &app,
            "napel_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "a new and long passphrase",
        )
        .await,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
    )
    .await;
    expect_error(
        confirm_reset(&app, "not-a-token", "a new and long passphrase").await,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
    )
    .await;
    let body = expect_error(
        confirm_reset(&app, &token, "password1").await,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
    )
    .await;
    assert_eq!(body["error"]["details"][0]["field"], "password");

    // Two at once: exactly one succeeds.
    let (a, b) = tokio::join!(
        confirm_reset(&app, &token, "a new and long passphrase"),
        confirm_reset(&app, &token, "another long passphrase")
    );
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::NO_CONTENT, StatusCode::BAD_REQUEST]);
    expect_error(
        confirm_reset(&app, &token, "a third long passphrase").await,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
    )
    .await;

    // A link works for 30 minutes.
    assert_eq!(
        request_reset(&app, "barbara@example.com").await.status(),
        StatusCode::ACCEPTED
    );
    let received = sink.wait_for("barbara@example.com", 4).await;
    let late = received
        .iter()
        .filter_map(|m| m.token("/reset-password"))
        .next_back()
        .expect("second reset link");
    assert_ne!(late, token);
    app.clock.advance(30 * 60 + 1);
    expect_error(
        confirm_reset(&app, &late, "a fourth long passphrase").await,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
    )
    .await;

    // Nothing was ever sent to the unknown address.
    assert!(sink.messages_to("nobody@example.com").is_empty());
}

async fn an_unverified_user_cannot_sign_in_until_verified(fixture: MailApp) {
    let MailApp { app, sink } = fixture;
    app.register("margaret@example.com").await;
    sink.wait_for("margaret@example.com", 1).await;
    let mut browser = Browser::new();
    // A wrong password says nothing about verification.
    let (status, html) = sign_in_status(
        &app,
        &mut browser,
        "margaret@example.com",
        "wrong password here",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!html.contains("Verify your email"));
    let (status, html) = sign_in_status(&app, &mut browser, "margaret@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        html.contains("Verify your email address before you sign in"),
        "{html}"
    );
    assert!(html.contains("action=\"/verify-email/resend\""));
    let resent = browser
        .post(
            &app,
            "/verify-email/resend",
            &[
                ("email", &hidden_field(&html, "email")),
                ("csrf_token", &hidden_field(&html, "csrf_token")),
            ],
        )
        .await;
    assert_eq!(resent.status(), StatusCode::OK);
    let link = sink.wait_for("margaret@example.com", 2).await[1]
        .link("/verify-email")
        .expect("link");
    assert_eq!(
        app.http.get(&link).send().await.expect("verify").status(),
        StatusCode::OK
    );
    let (status, _) = sign_in_status(&app, &mut browser, "margaret@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

async fn mail_is_limited_per_recipient_and_per_source(fixture: MailApp) {
    let MailApp { app, sink } = fixture;
    // Two messages per recipient per hour: registration's verification message, one reset
    // link, then nothing, with the same answer.
    app.register("alan@example.com").await;
    for _ in 0..3 {
        assert_eq!(
            request_reset(&app, "alan@example.com").await.status(),
            StatusCode::ACCEPTED
        );
    }
    // Six requests for mail per source per hour: this is the fifth and the sixth, ...
    app.register("joan@example.com").await;
    assert_eq!(
        request_reset(&app, "joan@example.com").await.status(),
        StatusCode::ACCEPTED
    );
    // ... so the seventh sends nothing, to an address that has received nothing.
    app.register("kay@example.com").await;
    assert_eq!(
        request_reset(&app, "kay@example.com").await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(sink.wait_for("joan@example.com", 2).await.len(), 2);
    assert_eq!(sink.wait_for("alan@example.com", 2).await.len(), 2);
    // An hour later mail goes out again.
    app.clock.advance(3601);
    assert_eq!(
        request_reset(&app, "alan@example.com").await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(sink.wait_for("alan@example.com", 3).await.len(), 3);
    assert!(sink.messages_to("kay@example.com").is_empty());
}

async fn a_mail_server_that_is_down_fails_no_request(app: TestApp) {
    let (_, key) = app.register("dennis@example.com").await;
    let key = key["key"].as_str().expect("key");
    for _ in 0..2 {
        assert_eq!(
            request_reset(&app, "dennis@example.com").await.status(),
            StatusCode::ACCEPTED
        );
    }
    let resend = app
        .http
        .post(app.url("/v1/email-verification"))
        .bearer_auth(key)
        .send()
        .await
        .expect("resend");
    assert_eq!(resend.status(), StatusCode::ACCEPTED);
    let mut browser = Browser::new();
    let form = browser.get(&app, &app.url("/forgot-password")).await;
    let html = form.text().await.expect("form");
    let sent = browser
        .post(
            &app,
            "/forgot-password",
            &[
                ("email", "dennis@example.com"),
                ("csrf_token", &hidden_field(&html, "csrf_token")),
            ],
        )
        .await;
    assert_eq!(sent.status(), StatusCode::OK);
}

async fn without_smtp_email_features_say_they_are_off(app: TestApp) {
    let key = app.member_key("ken@example.com").await;
    let body = expect_error(
        request_reset(&app, "ken@example.com").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("Email is not set up")
    );
    expect_error(
        app.http
            .post(app.url("/v1/email-verification"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("verification"),
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
    )
    .await;
    let page = app
        .http
        .get(app.url("/forgot-password"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        page.text()
            .await
            .expect("page")
            .contains("Email is not set up")
    );
    assert_eq!(me(&app, &key).await["email_verified"], false);
}

const RESEND: &str = "Resend verification email";

/// Posts the portal's "Resend verification email" form; answers the `303` and the portal
/// it leads to.
async fn resend_from_portal(app: &TestApp, browser: &mut Browser, csrf: &str) -> String {
    let sent = browser
        .post(app, "/portal/email-verification", &[("csrf_token", csrf)])
        .await;
    assert_eq!(sent.status(), StatusCode::SEE_OTHER);
    assert_eq!(location_of(&sent), "/portal");
    let page = browser.get(app, &app.url("/portal")).await;
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.unwrap()
}

async fn the_portal_sends_the_verification_link_again(fixture: MailApp) {
    let MailApp { app, sink } = fixture;
    app.register("rosa@example.com").await;
    sink.wait_for("rosa@example.com", 1).await;
    let mut browser = Browser::new();
    let portal = sign_in_to_portal(&app, &mut browser, "rosa@example.com").await;
    assert!(portal.contains(RESEND), "{portal}");
    let csrf = hidden_field(&portal, "csrf_token");

    // A form from elsewhere sends nothing.
    let forged = browser
        .post(
            &app,
            "/portal/email-verification",
            &[("csrf_token", "forged")],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let page = resend_from_portal(&app, &mut browser, &csrf).await;
    assert!(
        page.contains("A new verification link is on its way to rosa@example.com"),
        "{page}"
    );
    let resent = sink.wait_for("rosa@example.com", 2).await.remove(1);
    assert_eq!(
        resent.header("Subject").as_deref(),
        Some("Verify your email address")
    );
    // Shown once: a refresh repeats neither the message nor the mail.
    let again = browser
        .get(&app, &app.url("/portal"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!again.contains("on its way"), "{again}");
    let verified = app
        .http
        .get(resent.link("/verify-email").expect("link"))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), StatusCode::OK);
    // Verified: the portal no longer offers it, and a late form says so.
    let portal = browser
        .get(&app, &app.url("/portal"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!portal.contains(RESEND), "{portal}");
    let late = resend_from_portal(&app, &mut browser, &csrf).await;
    assert!(late.contains("already verified"), "{late}");
    assert_eq!(sink.messages_to("rosa@example.com").len(), 2);
}

async fn the_portals_resend_keeps_to_the_email_limits(fixture: MailApp) {
    let MailApp { app, sink } = fixture;
    // Two messages per recipient per hour: registration's and one resent link; the third
    // request is answered the same and sends nothing.
    app.register("lou@example.com").await;
    let mut browser = Browser::new();
    let portal = sign_in_to_portal(&app, &mut browser, "lou@example.com").await;
    let csrf = hidden_field(&portal, "csrf_token");
    for _ in 0..2 {
        let page = resend_from_portal(&app, &mut browser, &csrf).await;
        assert!(page.contains("on its way"), "{page}");
    }
    // Another recipient's message, sent after them, has arrived: so would theirs have.
    app.register("max@example.com").await;
    sink.wait_for("max@example.com", 1).await;
    assert_eq!(sink.wait_for("lou@example.com", 2).await.len(), 2);
    assert_eq!(sink.messages_to("lou@example.com").len(), 2);
}

async fn without_smtp_the_portal_says_email_is_off(app: TestApp) {
    app.register("nell@example.com").await;
    let mut browser = Browser::new();
    let portal = sign_in_to_portal(&app, &mut browser, "nell@example.com").await;
    assert!(!portal.contains(RESEND), "{portal}");
    assert!(
        portal.contains("Email is not set up on this server"),
        "{portal}"
    );
    // A form posted anyway is answered with the reason, not an error page.
    let page = resend_from_portal(&app, &mut browser, &hidden_field(&portal, "csrf_token")).await;
    assert!(page.contains("class=\"error\""), "{page}");
    assert!(page.contains("Email is not set up"), "{page}");
}
