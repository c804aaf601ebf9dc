//! The portal as a new user meets it (issue 15, "portal and operator friction"): forms answer
//! with a redirect and a secret is shown once; keys get the scopes ticked, no more than the
//! user holds; rotation offers a grace period; what cannot be undone asks first; messages
//! name fields as the form does and dates as people write them; a service client has no
//! redirect URIs box; a credential sent without `Bearer` is told so.

use crate::e2e;
use crate::helpers::{
    Browser, TestApp, hidden_field, json_with, location_of, shown_secret, sign_in_to_portal,
};
use reqwest::StatusCode;
use serde_json::json;

e2e!(
    forms_redirect_and_a_new_secret_is_shown_once,
    a_key_gets_only_the_ticked_scopes_and_never_more_than_the_user_holds,
    rotation_in_the_portal_asks_first_and_offers_a_grace_period,
    revoke_rotate_secret_and_delete_ask_for_confirmation,
    messages_name_form_fields_and_dates_as_people_read_them,
    a_service_client_shows_no_redirect_uris,
    a_credential_without_the_bearer_scheme_gets_a_hint,
);

/// A member signed in to the portal: its API key, and the portal's CSRF token.
async fn member_in_portal(app: &TestApp, browser: &mut Browser, email: &str) -> (String, String) {
    let key = app.member_key(email).await;
    let portal = sign_in_to_portal(app, browser, email).await;
    (key, hidden_field(&portal, "csrf_token"))
}

async fn portal_text(app: &TestApp, browser: &mut Browser) -> String {
    let page = browser.get(app, &app.url("/portal")).await;
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.unwrap()
}

async fn key_names(app: &TestApp, key: &str) -> Vec<String> {
    let keys = json_with(app.get("/v1/api-keys", key).await, StatusCode::OK).await;
    keys["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The id of the user's key named `name`.
async fn key_id(app: &TestApp, key: &str, name: &str) -> String {
    let keys = json_with(app.get("/v1/api-keys", key).await, StatusCode::OK).await;
    keys["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == name)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The id of the user's key whose value is `secret` (by its last four characters).
async fn id_of_secret(app: &TestApp, key: &str, secret: &str) -> String {
    let keys = json_with(app.get("/v1/api-keys", key).await, StatusCode::OK).await;
    keys["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| secret.ends_with(k["last_four"].as_str().unwrap()))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Creates a key through the portal's form; returns the secret it shows.
async fn key_in_portal(
    app: &TestApp,
    browser: &mut Browser,
    csrf: &str,
    name: &str,
    scopes: &[&str],
) -> String {
    let mut form = vec![("csrf_token", csrf), ("name", name)];
    form.extend(scopes.iter().map(|s| ("scope", *s)));
    let page = browser.submit(app, "/portal/keys", &form).await;
    assert_eq!(page.status(), StatusCode::OK);
    shown_secret(&page.text().await.unwrap())
}

async fn forms_redirect_and_a_new_secret_is_shown_once(app: TestApp) {
    let mut browser = Browser::new();
    let (own, csrf) = member_in_portal(&app, &mut browser, "prg@example.com").await;
    let created = browser
        .post(
            &app,
            "/portal/keys",
            &[
                ("csrf_token", csrf.as_str()),
                ("name", "deploy"),
                ("scope", "users:read"),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    // The secret is never in the URL.
    assert_eq!(location_of(&created), "/portal");
    assert!(created.text().await.unwrap().is_empty());
    let page = portal_text(&app, &mut browser).await;
    let secret = shown_secret(&page);
    assert!(secret.starts_with("napi_"), "{page}");
    assert_eq!(
        app.get("/v1/users/me", &secret).await.status(),
        StatusCode::OK
    );
    // A refresh (the redirect's GET again) shows no secret and makes no second key.
    let again = portal_text(&app, &mut browser).await;
    assert!(!again.contains("id=\"new-secret\""), "{again}");
    assert!(!again.contains(&secret));
    let names = key_names(&app, &own).await;
    assert_eq!(
        names.iter().filter(|n| *n == "deploy").count(),
        1,
        "{names:?}"
    );

    // Every portal form answers with a redirect: applications, redirect URIs, withdrawal.
    let app_created = browser
        .post(
            &app,
            "/portal/clients",
            &[
                ("csrf_token", csrf.as_str()),
                ("name", "Web"),
                ("kind", "web"),
                ("redirect_uris", "https://app.example.com/cb"),
            ],
        )
        .await;
    assert_eq!(app_created.status(), StatusCode::SEE_OTHER);
    let page = portal_text(&app, &mut browser).await;
    assert!(shown_secret(&page).starts_with("napcs_"), "{page}");
    let clients = json_with(app.get("/v1/oauth-clients", &own).await, StatusCode::OK).await;
    let client_id = clients["oauth_clients"][0]["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let saved = browser
        .post(
            &app,
            &format!("/portal/clients/{client_id}/redirect-uris"),
            &[
                ("csrf_token", csrf.as_str()),
                ("redirect_uris", "https://app.example.com/cb2"),
            ],
        )
        .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    assert!(
        portal_text(&app, &mut browser)
            .await
            .contains("Redirect URIs saved.")
    );
    let withdrawn = browser
        .post(
            &app,
            &format!("/portal/authorizations/{client_id}/withdraw"),
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(withdrawn.status(), StatusCode::SEE_OTHER);

    // A refused form redirects too, and tells why once.
    let refused = browser
        .post(
            &app,
            "/portal/keys",
            &[("csrf_token", csrf.as_str()), ("name", "none")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::SEE_OTHER);
    let page = portal_text(&app, &mut browser).await;
    assert!(page.contains("class=\"error\""), "{page}");
    assert!(
        !portal_text(&app, &mut browser)
            .await
            .contains("class=\"error\"")
    );

    // The one-time message belongs to the session: another session of the same user does not
    // see it.
    let mut other = Browser::new();
    sign_in_to_portal(&app, &mut other, "prg@example.com").await;
    browser
        .post(
            &app,
            "/portal/keys",
            &[
                ("csrf_token", csrf.as_str()),
                ("name", "second"),
                ("scope", "users:read"),
            ],
        )
        .await;
    assert!(
        !portal_text(&app, &mut other)
            .await
            .contains("id=\"new-secret\"")
    );
    assert!(
        portal_text(&app, &mut browser)
            .await
            .contains("id=\"new-secret\"")
    );
}

async fn a_key_gets_only_the_ticked_scopes_and_never_more_than_the_user_holds(app: TestApp) {
    let mut browser = Browser::new();
    let (own, csrf) = member_in_portal(&app, &mut browser, "picker@example.com").await;
    // The form offers the user's scopes as checkboxes, none ticked; none of an admin's.
    let page = portal_text(&app, &mut browser).await;
    for scope in ["users:read", "keys:read", "keys:write", "clients:write"] {
        assert!(
            page.contains(&format!(
                "<input type=\"checkbox\" name=\"scope\" value=\"{scope}\">"
            )),
            "{page}"
        );
    }
    assert!(!page.contains("checked"), "{page}");
    assert!(!page.contains("value=\"keys:verify\""));
    assert!(!page.contains("value=\"admin\""));

    let reader = key_in_portal(&app, &mut browser, &csrf, "reader", &["users:read"]).await;
    assert_eq!(
        app.get("/v1/users/me", &reader).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/v1/api-keys", &reader).await.status(),
        StatusCode::FORBIDDEN
    );
    let two = key_in_portal(
        &app,
        &mut browser,
        &csrf,
        "two",
        &["users:read", "keys:read"],
    )
    .await;
    assert_eq!(app.get("/v1/api-keys", &two).await.status(), StatusCode::OK);

    // A forged form with a scope the user does not hold is refused, and makes no key.
    let before = key_names(&app, &own).await.len();
    for forged in [
        vec!["keys:verify"],
        vec!["users:read", "admin"],
        vec!["resources:write"],
    ] {
        let mut form = vec![("csrf_token", csrf.as_str()), ("name", "forged")];
        form.extend(forged.iter().map(|s| ("scope", *s)));
        let page = browser.submit(&app, "/portal/keys", &form).await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(
            html.contains("class=\"error\"") && !html.contains("id=\"new-secret\""),
            "{forged:?}: {html}"
        );
    }
    // No scope ticked, or scopes of two APIs: refused with a reason.
    let none = browser
        .submit(
            &app,
            "/portal/keys",
            &[("csrf_token", &csrf), ("name", "none")],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(none.contains("Scopes: tick at least one scope"), "{none}");
    let mixed = browser
        .submit(
            &app,
            "/portal/keys",
            &[
                ("csrf_token", &csrf),
                ("name", "mixed"),
                ("scope", "users:read"),
                ("scope", "https://orders.example.com orders:read"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(mixed.contains("a key is for one API"), "{mixed}");
    assert_eq!(key_names(&app, &own).await.len(), before);

    // An expiry, in days.
    let expiring = key_in_portal(&app, &mut browser, &csrf, "week", &["users:read"]).await;
    assert_eq!(
        app.get("/v1/users/me", &expiring).await.status(),
        StatusCode::OK
    );
    let page = browser
        .submit(
            &app,
            "/portal/keys",
            &[
                ("csrf_token", &csrf),
                ("name", "short"),
                ("scope", "users:read"),
                ("expires_in_days", "2"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    let short = shown_secret(&page);
    app.clock.advance(2 * 86_400 + 1);
    assert_eq!(
        app.get("/v1/users/me", &short).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/v1/users/me", &expiring).await.status(),
        StatusCode::OK
    );
}

async fn rotation_in_the_portal_asks_first_and_offers_a_grace_period(app: TestApp) {
    let mut browser = Browser::new();
    let (own, csrf) = member_in_portal(&app, &mut browser, "rotor@example.com").await;
    let old = key_in_portal(&app, &mut browser, &csrf, "rotated", &["users:read"]).await;
    let id = key_id(&app, &own, "rotated").await;
    let path = format!("/portal/keys/{id}/rotate");

    // The portal links to a confirmation; a POST without `confirm=yes` goes there too.
    assert!(
        portal_text(&app, &mut browser)
            .await
            .contains(&format!("href=\"{path}\""))
    );
    let unconfirmed = browser
        .post(&app, &path, &[("csrf_token", csrf.as_str())])
        .await;
    assert_eq!(unconfirmed.status(), StatusCode::SEE_OTHER);
    assert_eq!(location_of(&unconfirmed), path);
    let ask = browser.get(&app, &app.url(&path)).await;
    assert_eq!(ask.status(), StatusCode::OK);
    let ask = ask.text().await.unwrap();
    assert!(ask.contains("rotated") && ask.contains(&csrf), "{ask}");
    for (seconds, label) in [
        ("0", "No: it stops working now"),
        ("3600", "For 1 hour"),
        ("86400", "For 24 hours"),
        ("604800", "For 7 days"),
    ] {
        assert!(
            ask.contains(&format!("<option value=\"{seconds}\"")) && ask.contains(label),
            "{ask}"
        );
    }
    assert_eq!(key_names(&app, &own).await.len(), 2, "nothing rotated yet");

    // More than /v1 accepts (30 days): refused with the form's words.
    let too_long = browser
        .submit(
            &app,
            &path,
            &[
                ("csrf_token", csrf.as_str()),
                ("confirm", "yes"),
                ("grace_period_seconds", "2592001"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        too_long.contains("Keep the old value working:") && !too_long.contains("id=\"new-secret\""),
        "{too_long}"
    );

    let rotated = browser
        .submit(
            &app,
            &path,
            &[
                ("csrf_token", csrf.as_str()),
                ("confirm", "yes"),
                ("grace_period_seconds", "3600"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    let new = shown_secret(&rotated);
    assert_ne!(new, old);
    assert!(rotated.contains("the old one works until"), "{rotated}");
    for key in [&old, &new] {
        assert_eq!(app.get("/v1/users/me", key).await.status(), StatusCode::OK);
    }
    app.clock.advance(3601);
    assert_eq!(
        app.get("/v1/users/me", &old).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get("/v1/users/me", &new).await.status(), StatusCode::OK);

    // "Now" ends the old value at once.
    let id = id_of_secret(&app, &own, &new).await;
    let now = browser
        .submit(
            &app,
            &format!("/portal/keys/{id}/rotate"),
            &[
                ("csrf_token", csrf.as_str()),
                ("confirm", "yes"),
                ("grace_period_seconds", "0"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    let newest = shown_secret(&now);
    assert!(now.contains("the old one no longer works"), "{now}");
    assert_eq!(
        app.get("/v1/users/me", &new).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/v1/users/me", &newest).await.status(),
        StatusCode::OK
    );
}

async fn revoke_rotate_secret_and_delete_ask_for_confirmation(app: TestApp) {
    let mut browser = Browser::new();
    let (own, csrf) = member_in_portal(&app, &mut browser, "careful@example.com").await;
    let doomed = key_in_portal(&app, &mut browser, &csrf, "doomed", &["users:read"]).await;
    let id = key_id(&app, &own, "doomed").await;
    let revoke = format!("/portal/keys/{id}/revoke");
    // One click (the old form, without confirm) does nothing but ask.
    let asked = browser
        .post(&app, &revoke, &[("csrf_token", csrf.as_str())])
        .await;
    assert_eq!(asked.status(), StatusCode::SEE_OTHER);
    assert_eq!(location_of(&asked), revoke);
    assert_eq!(
        app.get("/v1/users/me", &doomed).await.status(),
        StatusCode::OK
    );
    let page = browser
        .get(&app, &app.url(&revoke))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("doomed") && page.contains("name=\"confirm\" value=\"yes\""),
        "{page}"
    );
    let done = browser
        .submit(
            &app,
            &revoke,
            &[("csrf_token", csrf.as_str()), ("confirm", "yes")],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(done.contains("The key was revoked"), "{done}");
    assert_eq!(
        app.get("/v1/users/me", &doomed).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let client = app
        .create_client(
            &own,
            json!({
                "client_name": "Careful App",
                "redirect_uris": ["https://careful.example.com/cb"],
                "grant_types": ["authorization_code"],
                "scope": "openid",
            }),
        )
        .await;
    let client_id = client["client_id"].as_str().unwrap();
    let secret = client["client_secret"].as_str().unwrap();
    let rotate = format!("/portal/clients/{client_id}/rotate-secret");
    let delete = format!("/portal/clients/{client_id}/delete");
    for path in [&rotate, &delete] {
        let asked = browser
            .post(&app, path, &[("csrf_token", csrf.as_str())])
            .await;
        assert_eq!(asked.status(), StatusCode::SEE_OTHER);
        assert_eq!(&location_of(&asked), path);
        let page = browser.get(&app, &app.url(path)).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.unwrap().contains("Careful App"));
    }
    let fetched = app
        .get(&format!("/v1/oauth-clients/{client_id}"), &own)
        .await;
    assert_eq!(fetched.status(), StatusCode::OK, "not deleted by one click");
    let introspect = |secret: String| {
        let app = &app;
        let client_id = client_id.to_owned();
        async move {
            app.http
                .post(app.url("/oauth/token"))
                .basic_auth(client_id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // Not rotated by one click: the old secret still authenticates (the grant is refused as
    // unauthorized for this client, not the client as unknown).
    let before = introspect(secret.to_owned()).await;
    assert_ne!(before, StatusCode::UNAUTHORIZED);
    let rotated = browser
        .submit(
            &app,
            &rotate,
            &[("csrf_token", csrf.as_str()), ("confirm", "yes")],
        )
        .await
        .text()
        .await
        .unwrap();
    let new_secret = shown_secret(&rotated);
    assert_eq!(
        introspect(secret.to_owned()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(introspect(new_secret).await, before);
    let deleted = browser
        .submit(
            &app,
            &delete,
            &[("csrf_token", csrf.as_str()), ("confirm", "yes")],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(deleted.contains("The application was deleted"), "{deleted}");
    assert_eq!(
        app.get(&format!("/v1/oauth-clients/{client_id}"), &own)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // Someone else's key or application: not found, confirmation page or action alike.
    let stranger_key = app.member_key("stranger@example.com").await;
    let theirs = key_id(&app, &stranger_key, "Default key").await;
    for path in [
        format!("/portal/keys/{theirs}/revoke"),
        format!("/portal/keys/{theirs}/rotate"),
        "/portal/clients/cli_nothing/delete".to_owned(),
        "/portal/keys/not%0Aa-plain-id/revoke".to_owned(),
    ] {
        let page = browser.get(&app, &app.url(&path)).await;
        assert_eq!(page.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let refused = browser
        .submit(
            &app,
            &format!("/portal/keys/{theirs}/revoke"),
            &[("csrf_token", csrf.as_str()), ("confirm", "yes")],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(refused.contains("class=\"error\""), "{refused}");
    assert_eq!(
        app.get("/v1/users/me", &stranger_key).await.status(),
        StatusCode::OK
    );
    // A forged CSRF token on the confirmed form is refused.
    let forged = browser
        .post(&app, &revoke, &[("csrf_token", "nope"), ("confirm", "yes")])
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}

async fn messages_name_form_fields_and_dates_as_people_read_them(app: TestApp) {
    let mut browser = Browser::new();
    let (_, csrf) = member_in_portal(&app, &mut browser, "words@example.com").await;
    let page = browser
        .submit(
            &app,
            "/portal/keys",
            &[
                ("csrf_token", csrf.as_str()),
                ("name", "bad expiry"),
                ("scope", "users:read"),
                ("expires_in_days", "0"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Expires after (days): must be a number of days from 1 to 3650."),
        "{page}"
    );
    assert!(!page.contains("expires_in_days must"), "{page}");

    let now = app.api.now();
    browser
        .submit(
            &app,
            "/portal/keys",
            &[
                ("csrf_token", csrf.as_str()),
                ("name", "dated"),
                ("scope", "users:read"),
                ("expires_in_days", "3"),
            ],
        )
        .await;
    let page = portal_text(&app, &mut browser).await;
    let human = |ts: i64| {
        let format = time::macros::format_description!(
            "[day padding:none] [month repr:short] [year], [hour]:[minute] UTC"
        );
        time::OffsetDateTime::from_unix_timestamp(ts)
            .unwrap()
            .format(&format)
            .unwrap()
    };
    assert!(page.contains(&format!("<td>{}</td>", human(now))), "{page}");
    assert!(
        page.contains(&format!("<td>{}</td>", human(now + 3 * 86_400))),
        "{page}"
    );
    // No RFC 3339 time anywhere on the page.
    let rfc3339 = netapi_core::clock::format_rfc3339(now);
    assert!(!page.contains(&rfc3339[..13]), "{page}");
}

async fn a_service_client_shows_no_redirect_uris(app: TestApp) {
    let mut browser = Browser::new();
    let (own, csrf) = member_in_portal(&app, &mut browser, "svc@example.com").await;
    // What the page's hidden box may still send is not used for a service.
    let made = browser
        .submit(
            &app,
            "/portal/clients",
            &[
                ("csrf_token", csrf.as_str()),
                ("name", "Nightly job"),
                ("kind", "service"),
                ("redirect_uris", "https://ignored.example.com/cb"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(shown_secret(&made).starts_with("napcs_"), "{made}");
    browser
        .submit(
            &app,
            "/portal/clients",
            &[
                ("csrf_token", csrf.as_str()),
                ("name", "Web front"),
                ("kind", "web"),
                ("redirect_uris", "https://front.example.com/cb"),
            ],
        )
        .await;
    let clients = json_with(app.get("/v1/oauth-clients", &own).await, StatusCode::OK).await;
    let id_of = |name: &str| {
        clients["oauth_clients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["client_name"] == name)
            .unwrap()
            .clone()
    };
    let service = id_of("Nightly job");
    assert_eq!(service["redirect_uris"], json!([]), "{service}");
    let web = id_of("Web front");
    let page = portal_text(&app, &mut browser).await;
    let service_id = service["client_id"].as_str().unwrap();
    let web_id = web["client_id"].as_str().unwrap();
    assert!(
        !page.contains(&format!("/portal/clients/{service_id}/redirect-uris")),
        "{page}"
    );
    assert!(
        page.contains(&format!("/portal/clients/{web_id}/redirect-uris")),
        "{page}"
    );
    // The new-application form hides its box when "Service" is chosen, with no script: a CSS
    // rule on the form's own state.
    assert!(page.contains("<div class=\"redirect-uris\">"), "{page}");
    let css = app
        .http
        .get(app.url("/assets/style.css"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        css.contains(
            "form.new-client:has(#client-kind option[value=\"service\"]:checked) .redirect-uris { display: none; }"
        ),
        "{css}"
    );
}

async fn a_credential_without_the_bearer_scheme_gets_a_hint(app: TestApp) {
    let key = app.member_key("scheme@example.com").await;
    let bare = app
        .http
        .get(app.url("/v1/users/me"))
        .header("authorization", &key)
        .send()
        .await
        .unwrap();
    let body = json_with(bare, StatusCode::UNAUTHORIZED).await["error"].clone();
    assert_eq!(body["code"], "UNAUTHENTICATED", "{body}");
    assert_eq!(
        body["message"],
        "Authentication failed. Please check your API key or token."
    );
    assert_eq!(
        body["details"][0]["description"],
        "The Authorization header has no scheme: use the Bearer scheme, Authorization: Bearer <key>",
        "{body}"
    );
    // With the scheme, an unknown key gets no such hint.
    let wrong = app
        .get(
            "/v1/users/me",
            "napi_000000000000000000000000000000000000000",
        )
        .await;
    let body = json_with(wrong, StatusCode::UNAUTHORIZED).await;
    assert!(body["error"].get("details").is_none(), "{body}");
    // And with it, the key works.
    assert_eq!(app.get("/v1/users/me", &key).await.status(), StatusCode::OK);
}
