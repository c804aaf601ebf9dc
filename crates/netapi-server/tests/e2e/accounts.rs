//! Accounts (issue 15): the registration policy, administrators' invitations, disabled
//! users and the last administrator, through the real API and pages.

use netapi_core::Settings;
use netapi_core::service::RegistrationPolicy;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::e2e;
use crate::helpers::{Browser, TestApp, expect_error, hidden_field, sign_in_to_portal};
use netapi_testkit::PASSWORD;

async fn register_with(app: &TestApp, email: &str, invitation: Option<&str>) -> reqwest::Response {
    let mut body = json!({ "email": email, "password": PASSWORD, "name": "Invitee" });
    if let Some(token) = invitation {
        body["invitation"] = json!(token);
    }
    app.http
        .post(app.url("/v1/register"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn invite(app: &TestApp, admin: &str, body: Value) -> Value {
    let response = app.post_json("/v1/invitations", admin, body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

fn invite_only(settings: &mut Settings) {
    settings.registration = RegistrationPolicy::Invite;
    settings.registration_email_domains = vec!["example.com".to_owned()];
}

fn closed(settings: &mut Settings) {
    settings.registration = RegistrationPolicy::Closed;
}

fn open_to_example_com(settings: &mut Settings) {
    settings.registration_email_domains = vec!["example.com".to_owned()];
}

e2e!(
    settings = invite_only;
    invite_only_registration_takes_single_use_invitations,
    invitations_are_refused_when_used_expired_forged_or_deleted,
    an_invitation_stops_when_its_maker_stops_being_an_administrator,
    one_invitation_registers_one_user_however_many_try_at_once,
);

e2e!(settings = closed; closed_registration_refuses_everyone);

e2e!(settings = open_to_example_com; open_registration_keeps_to_the_allowed_domains);

e2e!(
    a_disabled_user_is_refused_everywhere_until_enabled,
    the_last_administrator_stays_one,
    members_cannot_invite_or_disable,
);

async fn invite_only_registration_takes_single_use_invitations(app: TestApp) {
    let admin = app.admin_key("root@example.com").await;
    // Without an invitation: 403 saying so.
    let refused = register_with(&app, "ada@example.com", None).await;
    let body = expect_error(refused, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invitation only"),
        "{body}"
    );
    // An invitation bound to an email outside the allowed domains: the admin's decision.
    let bound = invite(
        &app,
        &admin,
        json!({ "email": "Bob@Other.org", "expires_in": 3600 }),
    )
    .await;
    let token = bound["token"].as_str().unwrap();
    assert!(token.starts_with("napiv_"), "{bound}");
    assert_eq!(bound["email"], "bob@other.org");
    assert_eq!(bound["role"], "member");
    assert_eq!(
        bound["url"].as_str().unwrap(),
        format!("{}/register?invitation={token}", app.base)
    );
    let other = register_with(&app, "eve@example.com", Some(token)).await;
    let body = expect_error(other, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another email"),
        "{body}"
    );
    let made = register_with(&app, "bob@other.org", Some(token)).await;
    assert_eq!(made.status(), StatusCode::CREATED);
    let made: Value = made.json().await.unwrap();
    assert_eq!(made["user"]["role"], "member");
    // An unbound admin invitation, through the register page opened from its link.
    let for_admin = invite(&app, &admin, json!({ "role": "admin" })).await;
    let link = for_admin["url"].as_str().unwrap();
    let mut browser = Browser::new();
    let page = browser.get(&app, link).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert_eq!(
        hidden_field(&html, "invitation"),
        for_admin["token"].as_str().unwrap()
    );
    let registered = browser
        .post(
            &app,
            "/register",
            &[
                ("csrf_token", &hidden_field(&html, "csrf_token")),
                ("invitation", &hidden_field(&html, "invitation")),
                ("name", "Carol"),
                ("email", "carol@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(registered.status(), StatusCode::OK);
    let carol = app
        .api
        .store()
        .get_user_by_email("carol@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(carol.role, netapi_core::Role::Admin);
    // Without an invitation the page says why and shows no form.
    let page = Browser::new().get(&app, &app.url("/register")).await;
    let html = page.text().await.unwrap();
    assert!(html.contains("by invitation only"), "{html}");
    assert!(!html.contains("name=\"password\""), "{html}");
    // The list shows both used, with who used them, and never a token.
    let list = app.get("/v1/invitations", &admin).await;
    assert_eq!(list.status(), StatusCode::OK);
    let text = list.text().await.unwrap();
    assert!(!text.contains("napiv_"), "{text}");
    let list: Value = serde_json::from_str(&text).unwrap();
    let items = list["invitations"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| !i["used_at"].is_null()), "{list}");
    assert_eq!(items[0]["used_by"], made["user"]["id"]);
    // Audit events name the invitation.
    let events: Value = app
        .get("/v1/audit-events?page_size=100", &admin)
        .await
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = events["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default())
        .collect();
    assert!(kinds.contains(&"invitation.created"), "{events}");
}

async fn an_invitation_stops_when_its_maker_stops_being_an_administrator(app: TestApp) {
    let root = app.admin_key("root@example.com").await;
    let maker = app.admin_key("maker@example.com").await;
    let me: Value = app.get("/v1/users/me", &maker).await.json().await.unwrap();
    let maker_id = me["id"].as_str().unwrap().to_owned();
    let for_admin = invite(&app, &maker, json!({ "role": "admin" })).await;
    let for_member = invite(&app, &maker, json!({})).await;
    let patch = |body: Value| {
        app.http
            .patch(app.url(&format!("/v1/users/{maker_id}")))
            .bearer_auth(&root)
            .json(&body)
            .send()
    };
    let refused = async |email: &str, invitation: &Value| {
        let response = register_with(&app, email, invitation["token"].as_str()).await;
        let body = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
        assert_eq!(body["error"]["details"][0]["field"], "invitation", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no longer"),
            "{body}"
        );
    };

    // Demoted: neither invitation lets anybody in, an admin's least of all.
    let demoted = patch(json!({ "role": "member" })).await.unwrap();
    assert_eq!(demoted.status(), StatusCode::OK);
    refused("new-admin@example.com", &for_admin).await;
    refused("new-member@example.com", &for_member).await;
    // Disabled while an administrator again: still nothing.
    assert_eq!(
        patch(json!({ "role": "admin" })).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        patch(json!({ "disabled": true })).await.unwrap().status(),
        StatusCode::OK
    );
    refused("new-admin@example.com", &for_admin).await;
    // An administrator in good standing again: the unused invitation is theirs to honour.
    assert_eq!(
        patch(json!({ "disabled": false })).await.unwrap().status(),
        StatusCode::OK
    );
    let made = register_with(&app, "new-admin@example.com", for_admin["token"].as_str()).await;
    assert_eq!(made.status(), StatusCode::CREATED);
    let made: Value = made.json().await.unwrap();
    assert_eq!(made["user"]["role"], "admin", "{made}");
}

async fn invitations_are_refused_when_used_expired_forged_or_deleted(app: TestApp) {
    let admin = app.admin_key("root@example.com").await;
    let once = invite(&app, &admin, json!({})).await;
    let token = once["token"].as_str().unwrap();
    assert_eq!(
        register_with(&app, "first@example.com", Some(token))
            .await
            .status(),
        StatusCode::CREATED
    );
    let again = register_with(&app, "second@example.com", Some(token)).await;
    let body = expect_error(again, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    assert!(body["error"]["message"].as_str().unwrap().contains("used"));
    // Forged: well-formed but unknown, malformed, far too long.
    let forged = format!(
        "napiv_{}",
        &token["napiv_".len()..].chars().rev().collect::<String>()
    );
    for bad in [forged.as_str(), "napiv_short", &"x".repeat(5000)] {
        let response = register_with(&app, "third@example.com", Some(bad)).await;
        let body = expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
        assert_eq!(body["error"]["details"][0]["field"], "invitation", "{body}");
    }
    // Expired: the default lifetime is 7 days.
    let week = invite(&app, &admin, json!({})).await;
    app.clock.advance(7 * 86_400);
    let late = register_with(&app, "late@example.com", week["token"].as_str()).await;
    let body = expect_error(late, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    // Deleted: the token stops at once; a second delete and a made-up id are 404.
    let gone = invite(&app, &admin, json!({})).await;
    let path = format!("/v1/invitations/{}", gone["id"].as_str().unwrap());
    assert_eq!(
        app.delete(&path, &admin).await.status(),
        StatusCode::NO_CONTENT
    );
    expect_error(
        app.delete(&path, &admin).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        app.delete("/v1/invitations/nonsense", &admin).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    let response = register_with(&app, "deleted@example.com", gone["token"].as_str()).await;
    expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    // Bad lifetimes, roles and emails are 400.
    for body in [
        json!({ "expires_in": 31 * 86_400 }),
        json!({ "expires_in": 0 }),
        json!({ "role": "owner" }),
        json!({ "email": "not an email" }),
        json!({ "unknown": 1 }),
    ] {
        let response = app.post_json("/v1/invitations", &admin, body).await;
        expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    }
}

async fn one_invitation_registers_one_user_however_many_try_at_once(app: TestApp) {
    let admin = app.admin_key("root@example.com").await;
    let invitation = invite(&app, &admin, json!({})).await;
    let token = invitation["token"].as_str().unwrap().to_owned();
    let attempts = (0..6).map(|i| {
        let http = app.http.clone();
        let url = app.url("/v1/register");
        let token = token.clone();
        tokio::spawn(async move {
            http.post(url)
                .json(
                    &json!({ "email": format!("racer{i}@example.com"), "password": PASSWORD,
                               "name": "Racer", "invitation": token }),
                )
                .send()
                .await
                .unwrap()
                .status()
        })
    });
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap());
    }
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::BAD_REQUEST),
        "{statuses:?}"
    );
}

async fn closed_registration_refuses_everyone(app: TestApp) {
    let admin = app.admin_key("root@example.com").await;
    let response = register_with(&app, "ada@example.com", None).await;
    let body = expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("closed")
    );
    // Invitations can be made, but register no one while registration is closed.
    let invitation = invite(&app, &admin, json!({ "email": "ada@example.com" })).await;
    let response = register_with(&app, "ada@example.com", invitation["token"].as_str()).await;
    expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    let html = Browser::new()
        .get(&app, &app.url("/register"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Registration is closed"), "{html}");
    assert!(!html.contains("name=\"password\""), "{html}");
}

async fn open_registration_keeps_to_the_allowed_domains(app: TestApp) {
    let response = register_with(&app, "eve@elsewhere.org", None).await;
    let body = expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("email domain"),
        "{body}"
    );
    // A look-alike subdomain is another domain.
    let response = register_with(&app, "eve@mail.example.com", None).await;
    expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    assert_eq!(
        register_with(&app, "ada@Example.com", None).await.status(),
        StatusCode::CREATED
    );
}

async fn a_disabled_user_is_refused_everywhere_until_enabled(app: TestApp) {
    let admin = app.admin_key("root@example.com").await;
    let (user, key) = app.register("member@example.com").await;
    let key = key["key"].as_str().unwrap().to_owned();
    let id = user["id"].as_str().unwrap();
    let client = app
        .create_client(
            &key,
            json!({ "client_name": "svc", "grant_types": ["client_credentials"] }),
        )
        .await;
    let token = app.client_credentials_token(&client).await;
    let mut browser = Browser::new();
    sign_in_to_portal(&app, &mut browser, "member@example.com").await;
    for credential in [&key, &token] {
        assert_eq!(
            app.get("/v1/users/me", credential).await.status(),
            StatusCode::OK
        );
    }

    let patch = |disabled: bool| {
        app.http
            .patch(app.url(&format!("/v1/users/{id}")))
            .bearer_auth(&admin)
            .json(&json!({ "disabled": disabled }))
            .send()
    };
    let disabled: Value = patch(true).await.unwrap().json().await.unwrap();
    assert!(disabled["disabled_at"].is_string(), "{disabled}");
    // Key and token: 401 at once; the session is gone.
    for credential in [&key, &token] {
        expect_error(
            app.get("/v1/users/me", credential).await,
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
        )
        .await;
    }
    let portal = browser.get(&app, &app.url("/portal")).await;
    assert_ne!(portal.status(), StatusCode::OK);
    // Signing in with the right password says the account is disabled.
    let mut fresh = Browser::new();
    let page = fresh
        .get(&app, &app.url("/login"))
        .await
        .text()
        .await
        .unwrap();
    let refused = fresh
        .post(
            &app,
            "/login",
            &[
                ("email", "member@example.com"),
                ("password", PASSWORD),
                ("csrf_token", &hidden_field(&page, "csrf_token")),
                ("return_to", &hidden_field(&page, "return_to")),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.text().await.unwrap().contains("disabled"));
    // The admin still sees the user, disabled.
    let seen: Value = app
        .get(&format!("/v1/users/{id}"), &admin)
        .await
        .json()
        .await
        .unwrap();
    assert!(seen["disabled_at"].is_string(), "{seen}");

    // Enabled again: the key works (the session and the token's family stay ended).
    let enabled: Value = patch(false).await.unwrap().json().await.unwrap();
    assert!(enabled["disabled_at"].is_null(), "{enabled}");
    assert_eq!(app.get("/v1/users/me", &key).await.status(), StatusCode::OK);
}

async fn the_last_administrator_stays_one(app: TestApp) {
    let admin = app.admin_key("root@example.com").await;
    let me: Value = app.get("/v1/users/me", &admin).await.json().await.unwrap();
    let path = format!("/v1/users/{}", me["id"].as_str().unwrap());
    let demote = app
        .http
        .patch(app.url(&path))
        .bearer_auth(&admin)
        .json(&json!({ "role": "member" }))
        .send()
        .await
        .unwrap();
    let body = expect_error(demote, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("last administrator"),
        "{body}"
    );
    let deleted = app.delete(&path, &admin).await;
    expect_error(deleted, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    // Disabling oneself is refused outright.
    let disable = app
        .http
        .patch(app.url(&path))
        .bearer_auth(&admin)
        .json(&json!({ "disabled": true }))
        .send()
        .await
        .unwrap();
    expect_error(disable, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    assert_eq!(
        app.get("/v1/users/me", &admin).await.status(),
        StatusCode::OK
    );
}

async fn members_cannot_invite_or_disable(app: TestApp) {
    let member = app.member_key("member@example.com").await;
    let (other, _) = app.register("other@example.com").await;
    for response in [
        app.post_json("/v1/invitations", &member, json!({})).await,
        app.get("/v1/invitations", &member).await,
    ] {
        expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    }
    // Disabling: another user is not found, oneself is not allowed.
    let other_path = format!("/v1/users/{}", other["id"].as_str().unwrap());
    let response = app
        .http
        .patch(app.url(&other_path))
        .bearer_auth(&member)
        .json(&json!({ "disabled": true }))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    let response = app
        .http
        .patch(app.url("/v1/users/me"))
        .bearer_auth(&member)
        .json(&json!({ "disabled": true }))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
}
