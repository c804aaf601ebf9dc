//! The admin console (`/admin`): only administrators get it; every form is CSRF checked and
//! answers 303 with a message shown once; users are searched, promoted, disabled (their keys
//! stop at once) and deleted after a confirmation; the last administrator is kept with a
//! message; invitations are made and revoked; the audit log is filtered; what users typed is
//! escaped.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::e2e;
use crate::helpers::{
    Backend, Browser, SmtpSink, TestApp, hidden_field, json_with, location_of, shown_secret,
    sign_in_to_portal, unescape,
};

/// A server sending mail to a sink of its own.
struct MailApp {
    app: TestApp,
    sink: SmtpSink,
}

impl AsRef<TestApp> for MailApp {
    fn as_ref(&self) -> &TestApp {
        &self.app
    }
}

async fn mail(backend: Backend) -> Option<MailApp> {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(backend, &sink.url(), |_| {}).await?;
    Some(MailApp { app, sink })
}

e2e!(
    members_get_403_and_the_signed_out_sign_in_first,
    an_admin_searches_users_and_changes_a_role,
    role_disable_and_delete_need_a_recent_sign_in,
    disabling_a_user_stops_its_key_at_once,
    deleting_a_user_asks_for_confirmation,
    the_last_administrator_is_kept_with_a_message,
    invitations_are_created_shown_once_and_revoked,
    the_audit_log_is_filtered_by_user_type_and_time,
    a_form_without_its_csrf_token_is_refused,
    what_users_typed_is_escaped,
    an_admin_revokes_a_key_and_deletes_an_application,
    without_smtp_the_reset_button_says_email_is_off,
);
e2e!(spawn = mail; a_password_reset_link_is_mailed);

/// An administrator signed in; returns its key and the console's CSRF token.
async fn admin_in_console(app: &TestApp, browser: &mut Browser, email: &str) -> (String, String) {
    let key = app.admin_key(email).await;
    let portal = sign_in_to_portal(app, browser, email).await;
    assert!(portal.contains("href=\"/admin\""), "{portal}");
    let html = page(app, browser, "/admin").await;
    (key, hidden_field(&html, "csrf_token"))
}

/// A page's HTML, which must be a 200.
async fn page(app: &TestApp, browser: &mut Browser, path: &str) -> String {
    let response = browser.get(app, &app.url(path)).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.text().await.unwrap()
}

/// Posts a form, which must answer 303 to `to`; returns the page it leads to.
async fn post_to(
    app: &TestApp,
    browser: &mut Browser,
    path: &str,
    form: &[(&str, &str)],
    to: &str,
) -> String {
    let response = browser.post(app, path, form).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "POST {path}");
    assert_eq!(location_of(&response), to, "POST {path}");
    page(app, browser, to).await
}

async fn user_json(app: &TestApp, admin: &str, id: &str) -> Value {
    json_with(
        app.get(&format!("/v1/users/{id}"), admin).await,
        StatusCode::OK,
    )
    .await
}

async fn members_get_403_and_the_signed_out_sign_in_first(app: TestApp) {
    let signed_out = app.http.get(app.url("/admin/audit")).send().await.unwrap();
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location_of(&signed_out),
        "/login?return_to=%2Fadmin%2Faudit"
    );

    let (member, _) = app.register("member@example.com").await;
    let mut browser = Browser::new();
    let portal = sign_in_to_portal(&app, &mut browser, "member@example.com").await;
    assert!(!portal.contains("href=\"/admin\""), "{portal}");
    let csrf = hidden_field(&portal, "csrf_token");
    for path in [
        "/admin".to_owned(),
        "/admin/invitations".to_owned(),
        "/admin/audit".to_owned(),
        format!("/admin/users/{}", member["id"].as_str().unwrap()),
    ] {
        let response = browser.get(&app, &app.url(&path)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("administrators only")
        );
    }
    // Nor the actions, with the member's own valid CSRF token.
    let id = member["id"].as_str().unwrap();
    let refused = browser
        .post(
            &app,
            &format!("/admin/users/{id}/role"),
            &[("csrf_token", &csrf), ("role", "admin")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let refused = browser
        .post(
            &app,
            "/admin/invitations",
            &[("csrf_token", &csrf), ("role", "admin")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let admin = app.admin_key("root@example.com").await;
    assert_eq!(user_json(&app, &admin, id).await["role"], "member");
    let invitations = json_with(app.get("/v1/invitations", &admin).await, StatusCode::OK).await;
    assert_eq!(invitations["invitations"], json!([]), "{invitations}");
}

async fn an_admin_searches_users_and_changes_a_role(app: TestApp) {
    let mut browser = Browser::new();
    let (admin, csrf) = admin_in_console(&app, &mut browser, "root@example.com").await;
    let (alice, _) = app.register("alice@example.com").await;
    app.register("bob@example.org").await;

    let found = page(&app, &mut browser, "/admin?q=EXAMPLE.ORG").await;
    assert!(found.contains("bob@example.org"), "{found}");
    assert!(!found.contains("alice@example.com"), "{found}");
    let everyone = page(&app, &mut browser, "/admin").await;
    assert!(everyone.contains("alice@example.com") && everyone.contains("bob@example.org"));
    let too_long = format!("/admin?q={}", "a".repeat(300));
    let refused = page(&app, &mut browser, &too_long).await;
    assert!(refused.contains("at most 254 characters"), "{refused}");

    let id = alice["id"].as_str().unwrap();
    let to = format!("/admin/users/{id}");
    let done = post_to(
        &app,
        &mut browser,
        &format!("/admin/users/{id}/role"),
        &[("csrf_token", &csrf), ("role", "admin")],
        &to,
    )
    .await;
    assert!(
        done.contains("alice@example.com is now an administrator."),
        "{done}"
    );
    assert_eq!(user_json(&app, &admin, id).await["role"], "admin");
    // Shown once: a refresh shows the page without it.
    let again = page(&app, &mut browser, &to).await;
    assert!(!again.contains("is now an administrator"), "{again}");

    let bad = post_to(
        &app,
        &mut browser,
        &format!("/admin/users/{id}/role"),
        &[("csrf_token", &csrf), ("role", "owner")],
        &to,
    )
    .await;
    assert!(bad.contains("must be admin or member"), "{bad}");
    assert_eq!(user_json(&app, &admin, id).await["role"], "admin");
}

/// A console left open is not enough to change a role, disable, delete or invite an
/// administrator: after 15 minutes the administrator signs in again first, and nothing is
/// changed until then.
async fn role_disable_and_delete_need_a_recent_sign_in(app: TestApp) {
    let mut browser = Browser::new();
    let (admin, csrf) = admin_in_console(&app, &mut browser, "root@example.com").await;
    let (alice, _) = app.register("alice@example.com").await;
    let id = alice["id"].as_str().unwrap();
    app.clock.advance(15 * 60 + 1);
    let again = format!("/login?reauth=1&return_to=%2Fadmin%2Fusers%2F{id}");
    for (path, form) in [
        (format!("/admin/users/{id}/role"), vec![("role", "admin")]),
        (
            format!("/admin/users/{id}/disabled"),
            vec![("disabled", "yes")],
        ),
        (
            format!("/admin/users/{id}/delete"),
            vec![("confirm", "yes")],
        ),
    ] {
        let mut fields = vec![("csrf_token", csrf.as_str())];
        fields.extend(form);
        let response = browser.post(&app, &path, &fields).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "POST {path}");
        assert_eq!(location_of(&response), again, "POST {path}");
    }
    // An invitation to be an administrator makes one too; one to be a member does not
    // need it.
    let response = browser
        .post(
            &app,
            "/admin/invitations",
            &[("csrf_token", csrf.as_str()), ("role", "admin")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location_of(&response),
        "/login?reauth=1&return_to=%2Fadmin%2Finvitations"
    );
    let listed = json_with(app.get("/v1/invitations", &admin).await, StatusCode::OK).await;
    assert_eq!(
        listed["invitations"].as_array().unwrap().len(),
        0,
        "{listed}"
    );
    let response = browser
        .post(
            &app,
            "/admin/invitations",
            &[("csrf_token", csrf.as_str()), ("role", "member")],
        )
        .await;
    assert_eq!(location_of(&response), "/admin/invitations");
    let listed = json_with(app.get("/v1/invitations", &admin).await, StatusCode::OK).await;
    assert_eq!(listed["invitations"][0]["role"], "member", "{listed}");
    let alice_now = user_json(&app, &admin, id).await;
    assert_eq!(alice_now["role"], "member");
    assert!(alice_now["disabled_at"].is_null(), "{alice_now}");
    let login = page(&app, &mut browser, &again).await;
    assert!(
        login.contains("this change needs a recent sign-in"),
        "{login}"
    );

    // Signed in again: the same change goes through.
    sign_in_to_portal(&app, &mut browser, "root@example.com").await;
    let html = page(&app, &mut browser, "/admin").await;
    let csrf = hidden_field(&html, "csrf_token");
    let to = format!("/admin/users/{id}");
    let done = post_to(
        &app,
        &mut browser,
        &format!("/admin/users/{id}/role"),
        &[("csrf_token", &csrf), ("role", "admin")],
        &to,
    )
    .await;
    assert!(done.contains("is now an administrator"), "{done}");
    assert_eq!(user_json(&app, &admin, id).await["role"], "admin");
}

async fn disabling_a_user_stops_its_key_at_once(app: TestApp) {
    let mut browser = Browser::new();
    let (_, csrf) = admin_in_console(&app, &mut browser, "root@example.com").await;
    let (member, key) = app.register("member@example.com").await;
    let key = key["key"].as_str().unwrap();
    assert_eq!(app.get("/v1/users/me", key).await.status(), StatusCode::OK);

    let id = member["id"].as_str().unwrap();
    let to = format!("/admin/users/{id}");
    let done = post_to(
        &app,
        &mut browser,
        &format!("/admin/users/{id}/disabled"),
        &[("csrf_token", &csrf), ("disabled", "yes")],
        &to,
    )
    .await;
    assert!(done.contains("is disabled"), "{done}");
    assert!(done.contains("Enable the account"), "{done}");
    assert_eq!(
        app.get("/v1/users/me", key).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let done = post_to(
        &app,
        &mut browser,
        &format!("/admin/users/{id}/disabled"),
        &[("csrf_token", &csrf), ("disabled", "no")],
        &to,
    )
    .await;
    assert!(done.contains("is enabled again"), "{done}");
    assert_eq!(app.get("/v1/users/me", key).await.status(), StatusCode::OK);
}

async fn deleting_a_user_asks_for_confirmation(app: TestApp) {
    let mut browser = Browser::new();
    let (admin, csrf) = admin_in_console(&app, &mut browser, "root@example.com").await;
    let (member, key) = app.register("member@example.com").await;
    let key = key["key"].as_str().unwrap();
    let id = member["id"].as_str().unwrap();
    let action = format!("/admin/users/{id}/delete");

    // Without `confirm=yes`: to the confirmation page, nothing done.
    let asked = browser
        .post(&app, &action, &[("csrf_token", csrf.as_str())])
        .await;
    assert_eq!(asked.status(), StatusCode::SEE_OTHER);
    assert_eq!(location_of(&asked), action);
    assert_eq!(
        user_json(&app, &admin, id).await["email"],
        "member@example.com"
    );
    let confirm = page(&app, &mut browser, &action).await;
    assert!(
        confirm.contains("member@example.com will be deleted"),
        "{confirm}"
    );
    assert!(
        confirm.contains("name=\"confirm\" value=\"yes\""),
        "{confirm}"
    );

    let done = post_to(
        &app,
        &mut browser,
        &action,
        &[("csrf_token", &csrf), ("confirm", "yes")],
        "/admin",
    )
    .await;
    assert!(done.contains("The user was deleted"), "{done}");
    assert!(!done.contains("member@example.com"), "{done}");
    assert_eq!(
        app.get(&format!("/v1/users/{id}"), &admin).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/v1/users/me", key).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The user is gone: its page is not found.
    let gone = browser
        .get(&app, &app.url(&format!("/admin/users/{id}")))
        .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

async fn the_last_administrator_is_kept_with_a_message(app: TestApp) {
    let mut browser = Browser::new();
    let (admin, csrf) = admin_in_console(&app, &mut browser, "root@example.com").await;
    let me = json_with(app.get("/v1/users/me", &admin).await, StatusCode::OK).await;
    let id = me["id"].as_str().unwrap();
    let to = format!("/admin/users/{id}");

    let demoted = post_to(
        &app,
        &mut browser,
        &format!("/admin/users/{id}/role"),
        &[("csrf_token", &csrf), ("role", "member")],
        &to,
    )
    .await;
    assert!(demoted.contains("last administrator"), "{demoted}");
    let disabled = post_to(
        &app,
        &mut browser,
        &format!("/admin/users/{id}/disabled"),
        &[("csrf_token", &csrf), ("disabled", "yes")],
        &to,
    )
    .await;
    assert!(
        disabled.contains("cannot be set on your own account"),
        "{disabled}"
    );
    let deleted = post_to(
        &app,
        &mut browser,
        &format!("/admin/users/{id}/delete"),
        &[("csrf_token", &csrf), ("confirm", "yes")],
        &to,
    )
    .await;
    assert!(deleted.contains("last administrator"), "{deleted}");
    let after = user_json(&app, &admin, id).await;
    assert_eq!(after["role"], "admin");
    assert_eq!(after["disabled_at"], Value::Null, "{after}");
}

async fn invitations_are_created_shown_once_and_revoked(app: TestApp) {
    let mut browser = Browser::new();
    let (admin, csrf) = admin_in_console(&app, &mut browser, "root@example.com").await;
    let done = post_to(
        &app,
        &mut browser,
        "/admin/invitations",
        &[
            ("csrf_token", &csrf),
            ("email", "Newcomer@Example.com"),
            ("role", "member"),
            ("expires_in_days", "3"),
        ],
        "/admin/invitations",
    )
    .await;
    let link = shown_secret(&done);
    assert!(
        link.starts_with(&format!("{}/register?invitation=", app.base)),
        "{link}"
    );
    assert!(done.contains("newcomer@example.com"), "{done}");
    let again = page(&app, &mut browser, "/admin/invitations").await;
    assert!(!again.contains("id=\"new-secret\""), "{again}");
    assert!(again.contains("newcomer@example.com"), "{again}");

    let listed = json_with(app.get("/v1/invitations", &admin).await, StatusCode::OK).await;
    let invitation = &listed["invitations"][0];
    assert_eq!(invitation["email"], "newcomer@example.com");
    let id = invitation["id"].as_str().unwrap();
    assert!(again.contains(&format!("/admin/invitations/{id}/delete")));

    // A bad lifetime is a message; nothing is made.
    let refused = post_to(
        &app,
        &mut browser,
        "/admin/invitations",
        &[("csrf_token", &csrf), ("expires_in_days", "31")],
        "/admin/invitations",
    )
    .await;
    assert!(refused.contains("from 1 to 30"), "{refused}");

    let revoked = post_to(
        &app,
        &mut browser,
        &format!("/admin/invitations/{id}/delete"),
        &[("csrf_token", &csrf)],
        "/admin/invitations",
    )
    .await;
    assert!(revoked.contains("The invitation was revoked"), "{revoked}");
    assert!(revoked.contains("No pending invitations."), "{revoked}");
    let listed = json_with(app.get("/v1/invitations", &admin).await, StatusCode::OK).await;
    assert_eq!(listed["invitations"], json!([]), "{listed}");
    // The link no longer registers anyone.
    let token = link.rsplit_once('=').unwrap().1;
    let register = app
        .http
        .post(app.url("/v1/register"))
        .json(&json!({
            "email": "newcomer@example.com",
            "password": crate::helpers::PASSWORD,
            "name": "Newcomer",
            "invitation": token,
        }))
        .send()
        .await
        .unwrap();
    assert!(register.status().is_client_error(), "{}", register.status());
}

async fn the_audit_log_is_filtered_by_user_type_and_time(app: TestApp) {
    let mut browser = Browser::new();
    let (_, csrf) = admin_in_console(&app, &mut browser, "root@example.com").await;
    let (alice, _) = app.register("alice@example.com").await;
    let (bob, _) = app.register("bob@example.com").await;
    let alice_id = alice["id"].as_str().unwrap();
    let bob_id = bob["id"].as_str().unwrap();
    for id in [alice_id, bob_id] {
        post_to(
            &app,
            &mut browser,
            &format!("/admin/users/{id}/role"),
            &[("csrf_token", &csrf), ("role", "admin")],
            &format!("/admin/users/{id}"),
        )
        .await;
    }

    // By email and type: Alice's role change only.
    let rows = |html: &str| html.matches("<tr><td>").count();
    let alices = page(
        &app,
        &mut browser,
        "/admin/audit?user=alice%40example.com&type=user.updated",
    )
    .await;
    assert_eq!(rows(&alices), 1, "{alices}");
    assert!(
        alices.contains(alice_id) && !alices.contains(bob_id),
        "{alices}"
    );
    // By id, every type: her registration too.
    let by_id = page(&app, &mut browser, &format!("/admin/audit?user={alice_id}")).await;
    assert!(
        by_id.contains("user.registered") && by_id.contains("user.updated"),
        "{by_id}"
    );
    assert!(!by_id.contains(bob_id), "{by_id}");
    // By type: both changes, newest (Bob's) first.
    let updates = page(&app, &mut browser, "/admin/audit?type=user.updated").await;
    assert_eq!(rows(&updates), 2, "{updates}");
    assert!(updates.find(bob_id).unwrap() < updates.find(alice_id).unwrap());
    // By time: everything happened at the test clock's present.
    let now = app.api.now();
    let day = time::OffsetDateTime::from_unix_timestamp(now)
        .unwrap()
        .date()
        .to_string();
    let that_day = page(
        &app,
        &mut browser,
        &format!("/admin/audit?type=user.updated&from={day}&to={day}"),
    )
    .await;
    assert_eq!(rows(&that_day), 2, "{that_day}");
    let later = page(
        &app,
        &mut browser,
        "/admin/audit?type=user.updated&from=2999-01-01T00%3A00",
    )
    .await;
    assert!(later.contains("No events match."), "{later}");
    let unknown = page(&app, &mut browser, "/admin/audit?user=nobody%40example.com").await;
    assert!(unknown.contains("No events match."), "{unknown}");
    let malformed = page(&app, &mut browser, "/admin/audit?from=yesterday").await;
    assert!(malformed.contains("From: must be a date"), "{malformed}");
    assert!(malformed.contains("No events match."), "{malformed}");
}

async fn a_form_without_its_csrf_token_is_refused(app: TestApp) {
    let mut browser = Browser::new();
    let (admin, _) = admin_in_console(&app, &mut browser, "root@example.com").await;
    let (member, _) = app.register("member@example.com").await;
    let id = member["id"].as_str().unwrap();
    let path = format!("/admin/users/{id}/role");
    let missing = browser.post(&app, &path, &[("role", "admin")]).await;
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let forged = browser
        .post(&app, &path, &[("csrf_token", "forged"), ("role", "admin")])
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let forged = browser
        .post(
            &app,
            &format!("/admin/users/{id}/delete"),
            &[("csrf_token", ""), ("confirm", "yes")],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let member = user_json(&app, &admin, id).await;
    assert_eq!(member["role"], "member");
}

async fn what_users_typed_is_escaped(app: TestApp) {
    let mut browser = Browser::new();
    admin_in_console(&app, &mut browser, "root@example.com").await;
    let (member, key) = app.register("member@example.com").await;
    let key = key["key"].as_str().unwrap();
    let created = app
        .post_json(
            "/v1/api-keys",
            key,
            json!({ "name": "<script>alert(1)</script>" }),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = member["id"].as_str().unwrap();
    let html = page(&app, &mut browser, &format!("/admin/users/{id}")).await;
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        unescape(&html).contains("<script>alert(1)</script>"),
        "{html}"
    );
    let search = page(&app, &mut browser, "/admin?q=%22%3E%3Cscript%3E").await;
    assert!(!search.contains("<script>"), "{search}");
    assert!(
        unescape(&search).contains("value=\"\"><script>\""),
        "{search}"
    );
}

async fn an_admin_revokes_a_key_and_deletes_an_application(app: TestApp) {
    let mut browser = Browser::new();
    let (_, csrf) = admin_in_console(&app, &mut browser, "root@example.com").await;
    let (member, first) = app.register("member@example.com").await;
    let first = first["key"].as_str().unwrap();
    let id = member["id"].as_str().unwrap();
    let second = json_with(
        app.post_json("/v1/api-keys", first, json!({ "name": "deploy" }))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let client = app
        .create_client(
            first,
            json!({ "client_name": "Member app", "grant_types": ["client_credentials"] }),
        )
        .await;
    let user_page = format!("/admin/users/{id}");
    let html = page(&app, &mut browser, &user_page).await;
    assert!(
        html.contains("deploy") && html.contains("Member app"),
        "{html}"
    );

    let key_id = second["id"].as_str().unwrap();
    let revoke = format!("/admin/keys/{key_id}/revoke");
    let confirm = page(&app, &mut browser, &revoke).await;
    assert!(confirm.contains("will stop working at once"), "{confirm}");
    let done = post_to(
        &app,
        &mut browser,
        &revoke,
        &[("csrf_token", &csrf), ("confirm", "yes")],
        &user_page,
    )
    .await;
    assert!(done.contains("was revoked; it no longer works."), "{done}");
    let secret = second["key"].as_str().unwrap();
    assert_eq!(
        app.get("/v1/users/me", secret).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/v1/users/me", first).await.status(),
        StatusCode::OK
    );

    let client_id = client["client_id"].as_str().unwrap();
    let delete = format!("/admin/clients/{client_id}/delete");
    let confirm = page(&app, &mut browser, &delete).await;
    assert!(
        confirm.contains("every token it holds revoked"),
        "{confirm}"
    );
    let done = post_to(
        &app,
        &mut browser,
        &delete,
        &[("csrf_token", &csrf), ("confirm", "yes")],
        &user_page,
    )
    .await;
    assert!(
        done.contains("was deleted and its tokens revoked"),
        "{done}"
    );
    assert!(done.contains("No applications."), "{done}");
    let unknown = browser
        .get(&app, &app.url("/admin/keys/key_unknown/revoke"))
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

async fn without_smtp_the_reset_button_says_email_is_off(app: TestApp) {
    let mut browser = Browser::new();
    let (_, csrf) = admin_in_console(&app, &mut browser, "root@example.com").await;
    let (member, _) = app.register("member@example.com").await;
    let id = member["id"].as_str().unwrap();
    let to = format!("/admin/users/{id}");
    let html = page(&app, &mut browser, &to).await;
    assert!(html.contains("Email is off on this server"), "{html}");
    // The form posted anyway gets the same news.
    let done = post_to(
        &app,
        &mut browser,
        &format!("/admin/users/{id}/password-reset"),
        &[("csrf_token", &csrf)],
        &to,
    )
    .await;
    assert!(done.contains("class=\"error\""), "{done}");
}

async fn a_password_reset_link_is_mailed(fixture: MailApp) {
    let app = &fixture.app;
    let mut browser = Browser::new();
    let (_, csrf) = admin_in_console(app, &mut browser, "root@example.com").await;
    // Verified from the start, so that the reset link is the only message.
    let (member, _, _) = app
        .api
        .register(
            netapi_core::service::NewUser {
                email: "member@example.com".to_owned(),
                password: netapi_core::secret::Secret::new(crate::helpers::PASSWORD),
                name: "Member".to_owned(),
                role: netapi_core::Role::Member,
                email_verified: true,
                invitation: None,
            },
            None,
        )
        .await
        .unwrap();
    let id = member.id.as_str();
    let to = format!("/admin/users/{id}");
    let done = post_to(
        app,
        &mut browser,
        &format!("/admin/users/{id}/password-reset"),
        &[("csrf_token", &csrf)],
        &to,
    )
    .await;
    assert!(
        done.contains("A password-reset link is on its way to member@example.com"),
        "{done}"
    );
    let message = fixture
        .sink
        .wait_for("member@example.com", 1)
        .await
        .remove(0);
    assert!(message.link("/reset-password").is_some(), "no reset link");
    let audit = page(
        app,
        &mut browser,
        &format!("/admin/audit?user={id}&type=user.password_reset_requested"),
    )
    .await;
    assert_eq!(audit.matches("<tr><td>").count(), 1, "{audit}");
}
