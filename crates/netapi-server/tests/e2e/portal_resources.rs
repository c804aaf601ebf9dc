//! The portal's resources page: administrators define and delete resources and set grants
//! through forms (CSRF checked, errors as messages); members get neither page nor actions.

use crate::e2e;
use crate::helpers::{
    Browser, TestApp, hidden_field, json_with, location_of, shown_secret, sign_in_to_portal,
};
use crate::resources::{ORDERS, define, forward, orders_api};
use reqwest::StatusCode;
use serde_json::json;

e2e!(
    an_admin_defines_a_resource_through_the_portal,
    a_bad_resource_form_shows_an_error_and_creates_nothing,
    members_get_no_resources_page_nor_its_actions,
    a_forged_csrf_token_is_refused_on_the_resources_page,
    deleting_through_the_portal_stops_a_key_for_the_resource,
    a_grant_through_the_portal_lets_a_member_make_a_key,
    an_admin_edits_a_resource_through_the_portal,
);

/// An administrator signed in on the resources page; returns its key and the page's CSRF token.
async fn admin_on_the_page(app: &TestApp, browser: &mut Browser, email: &str) -> (String, String) {
    let key = app.admin_key(email).await;
    let portal = sign_in_to_portal(app, browser, email).await;
    assert!(portal.contains("href=\"/portal/resources\""), "{portal}");
    let page = browser.get(app, &app.url("/portal/resources")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = hidden_field(&page.text().await.unwrap(), "csrf_token");
    (key, csrf)
}

/// Posts the new-resource form for `identifier`; returns the status and the page (the one
/// the form redirects to, when it does).
async fn define_in_portal(
    app: &TestApp,
    browser: &mut Browser,
    csrf: &str,
    identifier: &str,
) -> (StatusCode, String) {
    let answer = browser
        .post(
            app,
            "/portal/resources",
            &[
                ("csrf_token", csrf),
                ("identifier", identifier),
                ("name", "Orders API"),
                (
                    "scopes",
                    "orders:read See your orders\r\norders:write Place and cancel orders\r\n",
                ),
                ("self_service_scopes", "orders:read"),
                ("allow_api_keys", "on"),
                ("access_token_ttl", "600"),
            ],
        )
        .await;
    if answer.status() != StatusCode::SEE_OTHER {
        return (answer.status(), answer.text().await.unwrap());
    }
    // Redirect-after-POST: the outcome is shown by the page it redirects to, once.
    assert_eq!(location_of(&answer), "/portal/resources");
    let page = browser.get(app, &app.url("/portal/resources")).await;
    let shown = (page.status(), page.text().await.unwrap());
    let again = page_text(app, browser, "/portal/resources").await;
    assert!(!again.contains("class=\"notice\"") && !again.contains("class=\"error\""));
    shown
}

/// Posts the grant form; returns the page (always a 200).
async fn grant_in_portal(
    app: &TestApp,
    browser: &mut Browser,
    csrf: &str,
    user: &str,
    scopes: &str,
) -> String {
    let answer = browser
        .submit(
            app,
            "/portal/grants",
            &[
                ("csrf_token", csrf),
                ("user", user),
                ("resource", ORDERS),
                ("scopes", scopes),
            ],
        )
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    answer.text().await.unwrap()
}

/// A page's HTML (a 200).
async fn page_text(app: &TestApp, browser: &mut Browser, path: &str) -> String {
    let page = browser.get(app, &app.url(path)).await;
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.unwrap()
}

/// Posts a form; returns the page it answers with, or lands on after a redirect (a 200).
async fn post_text(
    app: &TestApp,
    browser: &mut Browser,
    path: &str,
    form: &[(&str, String)],
) -> String {
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = browser.submit(app, path, &form).await;
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.unwrap()
}

async fn resources_of(app: &TestApp, admin: &str) -> serde_json::Value {
    json_with(app.get("/v1/resources", admin).await, StatusCode::OK).await["resources"].clone()
}

async fn an_admin_defines_a_resource_through_the_portal(app: TestApp) {
    let mut browser = Browser::new();
    let (admin, csrf) = admin_on_the_page(&app, &mut browser, "page-admin@example.com").await;
    let (status, html) = define_in_portal(&app, &mut browser, &csrf, ORDERS).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("is defined"), "{html}");
    assert!(html.contains("Place and cancel orders"), "{html}");
    let listed = resources_of(&app, &admin).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["identifier"], ORDERS);
    assert_eq!(listed[0]["self_service_scopes"], json!(["orders:read"]));
    assert_eq!(listed[0]["scopes"][1]["name"], "orders:write");
    assert_eq!(
        listed[0]["scopes"][1]["description"],
        "Place and cancel orders"
    );
    assert_eq!(listed[0]["allow_api_keys"], true);
    assert_eq!(listed[0]["access_token_ttl"], 600);

    // The same identifier again: a message, not an error page.
    let (status, html) = define_in_portal(&app, &mut browser, &csrf, ORDERS).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("class=\"error\""), "{html}");
    assert!(html.contains("never reused"), "{html}");
    assert_eq!(
        resources_of(&app, &admin).await.as_array().unwrap().len(),
        1
    );
}

async fn a_bad_resource_form_shows_an_error_and_creates_nothing(app: TestApp) {
    let mut browser = Browser::new();
    let (admin, csrf) = admin_on_the_page(&app, &mut browser, "bad-form@example.com").await;
    for (identifier, why) in [
        ("not a uri", "must be an absolute URI"),
        ("http://orders.example.com", "must use https"),
        ("https://orders.example.com/#x", "fragment"),
    ] {
        let (status, html) = define_in_portal(&app, &mut browser, &csrf, identifier).await;
        assert_eq!(status, StatusCode::OK, "{identifier}");
        assert!(html.contains("class=\"error\""), "{identifier}: {html}");
        assert!(html.contains(why), "{identifier}: {html}");
    }
    let bad_ttl = browser
        .submit(
            &app,
            "/portal/resources",
            &[
                ("csrf_token", csrf.as_str()),
                ("identifier", ORDERS),
                ("name", "Orders"),
                ("scopes", "Orders:Read bad name"),
                ("access_token_ttl", "soon"),
            ],
        )
        .await;
    assert_eq!(bad_ttl.status(), StatusCode::OK);
    assert!(bad_ttl.text().await.unwrap().contains("class=\"error\""));
    assert_eq!(resources_of(&app, &admin).await, json!([]));
}

async fn members_get_no_resources_page_nor_its_actions(app: TestApp) {
    let admin = app.admin_key("owner@example.com").await;
    let orders = define(&app, &admin, orders_api(ORDERS)).await;
    let (member, _) = app.register("plain@example.com").await;
    let mut browser = Browser::new();
    let portal = sign_in_to_portal(&app, &mut browser, "plain@example.com").await;
    assert!(!portal.contains("/portal/resources"), "{portal}");
    let csrf = hidden_field(&portal, "csrf_token");

    let page = browser.get(&app, &app.url("/portal/resources")).await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(!page.text().await.unwrap().contains(ORDERS));
    let created = browser
        .submit(
            &app,
            "/portal/resources",
            &[
                ("csrf_token", csrf.as_str()),
                ("identifier", "https://mine.example.com"),
                ("name", "Mine"),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::NOT_FOUND);
    let deleted = browser
        .submit(
            &app,
            &format!(
                "/portal/resources/{}/delete",
                orders["id"].as_str().unwrap()
            ),
            &[("csrf_token", csrf.as_str()), ("confirm", "delete")],
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NOT_FOUND);
    let edited = browser
        .submit(
            &app,
            &format!("/portal/resources/{}/edit", orders["id"].as_str().unwrap()),
            &[
                ("csrf_token", csrf.as_str()),
                ("name", "Mine now"),
                ("scopes", "orders:read"),
                ("self_service_scopes", "orders:read"),
            ],
        )
        .await;
    assert_eq!(edited.status(), StatusCode::NOT_FOUND);
    let looked_up = browser
        .get(
            &app,
            &app.url(&format!(
                "/portal/resources?user={}",
                member["id"].as_str().unwrap()
            )),
        )
        .await;
    assert_eq!(looked_up.status(), StatusCode::NOT_FOUND);
    let granted = browser
        .submit(
            &app,
            "/portal/grants",
            &[
                ("csrf_token", csrf.as_str()),
                ("user", member["id"].as_str().unwrap()),
                ("resource", ORDERS),
                ("scopes", "orders:write"),
            ],
        )
        .await;
    assert_eq!(granted.status(), StatusCode::NOT_FOUND);

    let listed = resources_of(&app, &admin).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["name"], "Orders API", "{listed}");
    let grants = json_with(
        app.get(
            &format!("/v1/users/{}/grants", member["id"].as_str().unwrap()),
            &admin,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(!grants.to_string().contains("orders:write"), "{grants}");
    // Not signed in at all: to the sign-in page.
    let anonymous = app
        .http
        .get(app.url("/portal/resources"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
}

async fn a_forged_csrf_token_is_refused_on_the_resources_page(app: TestApp) {
    let mut browser = Browser::new();
    let (admin, _) = admin_on_the_page(&app, &mut browser, "csrf-admin@example.com").await;
    let (status, _) = define_in_portal(&app, &mut browser, "forged", ORDERS).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(resources_of(&app, &admin).await, json!([]));
    let orders = define(&app, &admin, orders_api(ORDERS)).await;
    let deleted = browser
        .submit(
            &app,
            &format!(
                "/portal/resources/{}/delete",
                orders["id"].as_str().unwrap()
            ),
            &[("csrf_token", "forged"), ("confirm", "delete")],
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::FORBIDDEN);
    let granted = browser
        .submit(
            &app,
            "/portal/grants",
            &[
                ("csrf_token", "forged"),
                ("user", "csrf-admin@example.com"),
                ("resource", ORDERS),
                ("scopes", "orders:write"),
            ],
        )
        .await;
    assert_eq!(granted.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        resources_of(&app, &admin).await.as_array().unwrap().len(),
        1
    );
}

async fn deleting_through_the_portal_stops_a_key_for_the_resource(app: TestApp) {
    let mut browser = Browser::new();
    let (admin, csrf) = admin_on_the_page(&app, &mut browser, "del-page@example.com").await;
    let orders = define(&app, &admin, orders_api(ORDERS)).await;
    let member = app.member_key("del-page-member@example.com").await;
    let key = json_with(
        app.post_json(
            "/v1/api-keys",
            &member,
            json!({"name": "orders", "resource": ORDERS}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let secret = key["key"].as_str().unwrap();
    assert_eq!(
        forward(&app, secret, ORDERS, "orders:read").await.status(),
        StatusCode::OK
    );
    let path = format!(
        "/portal/resources/{}/delete",
        orders["id"].as_str().unwrap()
    );

    // Without the confirmation word nothing happens.
    let unconfirmed = browser
        .submit(
            &app,
            &path,
            &[("csrf_token", csrf.as_str()), ("confirm", "")],
        )
        .await;
    assert_eq!(unconfirmed.status(), StatusCode::OK);
    assert!(
        unconfirmed
            .text()
            .await
            .unwrap()
            .contains("nothing was deleted")
    );
    assert_eq!(
        forward(&app, secret, ORDERS, "orders:read").await.status(),
        StatusCode::OK
    );

    let deleted = browser
        .submit(
            &app,
            &path,
            &[("csrf_token", csrf.as_str()), ("confirm", "delete")],
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::OK);
    let html = deleted.text().await.unwrap();
    assert!(html.contains("was deleted"), "{html}");
    assert!(!html.contains(&format!("<code>{ORDERS}</code>")), "{html}");
    assert_eq!(
        forward(&app, secret, ORDERS, "orders:read").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(resources_of(&app, &admin).await, json!([]));
    // Again: no longer there, said as a message.
    let again = browser
        .submit(
            &app,
            &path,
            &[("csrf_token", csrf.as_str()), ("confirm", "delete")],
        )
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    assert!(again.text().await.unwrap().contains("resource not found"));
}

async fn a_grant_through_the_portal_lets_a_member_make_a_key(app: TestApp) {
    let mut browser = Browser::new();
    let (admin, csrf) = admin_on_the_page(&app, &mut browser, "grant-page@example.com").await;
    define(&app, &admin, orders_api(ORDERS)).await;
    let (_, member_key) = app.register("grantee@example.com").await;
    let member_key = member_key["key"].as_str().unwrap();
    let writer = json!({"name": "writer", "resource": ORDERS, "scopes": ["orders:write"]});
    let refused = app
        .post_json("/v1/api-keys", member_key, writer.clone())
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    for (user, scopes, expected) in [
        ("nobody@example.com", "orders:write", "user not found"),
        (
            "grantee@example.com",
            "orders:fly",
            "is not a scope of this resource",
        ),
    ] {
        let html = grant_in_portal(&app, &mut browser, &csrf, user, scopes).await;
        assert!(
            html.contains("class=\"error\"") && html.contains(expected),
            "{html}"
        );
    }
    let html = grant_in_portal(
        &app,
        &mut browser,
        &csrf,
        "Grantee@Example.com",
        "orders:write",
    )
    .await;
    assert!(html.contains("is granted orders:write on"), "{html}");

    let key = json_with(
        app.post_json("/v1/api-keys", member_key, writer).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(key["scopes"], json!(["orders:write"]));
    assert_eq!(
        forward(&app, key["key"].as_str().unwrap(), ORDERS, "orders:write")
            .await
            .status(),
        StatusCode::OK
    );

    // The member's portal shows the key's resource and scopes.
    let mut member_browser = Browser::new();
    let portal = sign_in_to_portal(&app, &mut member_browser, "grantee@example.com").await;
    assert!(
        portal.contains(&format!("<code>{ORDERS}</code>")),
        "{portal}"
    );
    assert!(portal.contains("<td>orders:write</td>"), "{portal}");

    // The administrator looks the grant up.
    let shown = page_text(
        &app,
        &mut browser,
        "/portal/resources?user=grantee%40example.com",
    )
    .await;
    assert!(
        shown.contains("What <strong>grantee@example.com</strong> was granted"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "<td><code>{ORDERS}</code></td><td>orders:write</td>"
        )),
        "{shown}"
    );
    let unknown = page_text(
        &app,
        &mut browser,
        "/portal/resources?user=nobody%40example.com",
    )
    .await;
    assert!(
        unknown.contains("class=\"error\"") && unknown.contains("user not found"),
        "{unknown}"
    );

    // The member makes a key for the resource in the portal: the form offers it, with the
    // scopes the member holds there.
    for scope in ["orders:read", "orders:write"] {
        assert!(
            portal.contains(&format!(
                "<input type=\"checkbox\" name=\"scope\" value=\"{ORDERS} {scope}\">"
            )),
            "{portal}"
        );
    }
    let csrf = hidden_field(&portal, "csrf_token");
    let key_form = |scope: &'static str| {
        [
            ("csrf_token", csrf.clone()),
            ("name", "orders writer".to_owned()),
            ("scope", format!("{ORDERS} {scope}")),
        ]
    };
    let refused = post_text(
        &app,
        &mut member_browser,
        "/portal/keys",
        &key_form("orders:fly"),
    )
    .await;
    assert!(
        refused.contains("class=\"error\"") && !refused.contains("id=\"new-secret\""),
        "{refused}"
    );
    let made = post_text(
        &app,
        &mut member_browser,
        "/portal/keys",
        &key_form("orders:write"),
    )
    .await;
    let secret = shown_secret(&made);
    let secret = secret.as_str();
    assert_eq!(
        forward(&app, secret, ORDERS, "orders:write").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        forward(&app, secret, ORDERS, "orders:read").await.status(),
        StatusCode::FORBIDDEN,
        "made with orders:write only"
    );
}

async fn an_admin_edits_a_resource_through_the_portal(app: TestApp) {
    let mut browser = Browser::new();
    let (admin, csrf) = admin_on_the_page(&app, &mut browser, "edit-page@example.com").await;
    let orders = define(&app, &admin, orders_api(ORDERS)).await;
    let path = format!("/portal/resources/{}/edit", orders["id"].as_str().unwrap());
    let html = page_text(&app, &mut browser, "/portal/resources").await;
    // The form is filled with what the resource is now.
    assert!(
        html.contains(
            "orders:read See your orders\norders:write Place and cancel orders</textarea>"
        ),
        "{html}"
    );
    let form = |fields: &[(&'static str, &'static str)]| {
        let mut form = vec![("csrf_token", csrf.clone())];
        form.extend(fields.iter().map(|(k, v)| (*k, (*v).to_owned())));
        form
    };
    // A bad scope name: a message, and nothing changed.
    let bad = post_text(
        &app,
        &mut browser,
        &path,
        &form(&[
            ("name", "Orders"),
            ("scopes", "Orders Read"),
            ("self_service_scopes", ""),
        ]),
    )
    .await;
    assert!(bad.contains("class=\"error\""), "{bad}");
    let listed = resources_of(&app, &admin).await;
    assert_eq!(listed[0]["name"], "Orders API");
    assert_eq!(listed[0]["scopes"].as_array().unwrap().len(), 2);

    let changed = post_text(
        &app,
        &mut browser,
        &path,
        &form(&[
            ("name", "Orders v2"),
            (
                "scopes",
                "orders:read See your orders\r\norders:refund Refund an order",
            ),
            ("self_service_scopes", "orders:read orders:refund"),
            ("access_token_ttl", "300"),
        ]),
    )
    .await;
    assert!(changed.contains("is changed"), "{changed}");
    let listed = resources_of(&app, &admin).await;
    assert_eq!(listed[0]["identifier"], ORDERS);
    assert_eq!(listed[0]["name"], "Orders v2");
    assert_eq!(
        listed[0]["scopes"],
        json!([
            {"name": "orders:read", "description": "See your orders"},
            {"name": "orders:refund", "description": "Refund an order"},
        ])
    );
    assert_eq!(
        listed[0]["self_service_scopes"],
        json!(["orders:read", "orders:refund"])
    );
    assert_eq!(listed[0]["allow_api_keys"], false, "the box was not ticked");
    assert_eq!(listed[0]["access_token_ttl"], 300);
    // Emptied, the lifetime goes back to the server's.
    post_text(
        &app,
        &mut browser,
        &path,
        &form(&[
            ("name", "Orders v2"),
            ("scopes", "orders:read See your orders"),
            ("allow_api_keys", "on"),
            ("access_token_ttl", ""),
        ]),
    )
    .await;
    let listed = resources_of(&app, &admin).await;
    assert!(listed[0]["access_token_ttl"].is_null(), "{listed}");
    assert_eq!(listed[0]["allow_api_keys"], true);
}
