//! The portal's one-time messages travel in a sealed cookie: the page a form redirects to
//! shows its outcome once, whichever instance behind a load balancer serves it, and only in
//! the session that posted the form.

use reqwest::StatusCode;

use crate::e2e;
use crate::helpers::{
    Browser, TestApp, hidden_field, location_of, shown_secret, sign_in_to_portal,
};

e2e!(
    a_message_is_shown_once_by_another_instance,
    a_message_opens_only_in_its_session_and_only_for_a_while,
);

const FLASH: &str = "netapi_flash";

/// Creates a key through the portal's form on `app`; answers the `303` itself.
async fn create_key(app: &TestApp, browser: &mut Browser, name: &str) -> reqwest::Response {
    let portal = browser.get(app, &app.url("/portal")).await;
    let csrf = hidden_field(&portal.text().await.unwrap(), "csrf_token");
    browser
        .post(
            app,
            "/portal/keys",
            &[
                ("csrf_token", csrf.as_str()),
                ("name", name),
                ("expires_in_days", ""),
                ("scope", "keys:read"),
            ],
        )
        .await
}

async fn a_message_is_shown_once_by_another_instance(app: TestApp) {
    let other = app.another_instance().await;
    app.register("lb@example.com").await;
    let mut browser = Browser::new();
    sign_in_to_portal(&app, &mut browser, "lb@example.com").await;
    let created = create_key(&app, &mut browser, "deploy").await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    assert_eq!(location_of(&created), "/portal");
    let set_cookie = created
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("netapi_flash="))
        .expect("the message's cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=300"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(set_cookie.len() < 4096, "{set_cookie}");
    let sealed = browser.cookies[FLASH].clone();

    // The redirected GET lands on the other instance: the new key is shown there, once.
    let page = browser.get(&other, &other.url("/portal")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let secret = shown_secret(&page.text().await.unwrap());
    assert!(
        !sealed.contains(&secret),
        "the cookie carries the key sealed"
    );
    assert!(!browser.cookies.contains_key(FLASH), "cleared once shown");
    let key_works = app.get("/v1/api-keys", &secret).await;
    assert_eq!(key_works.status(), StatusCode::OK);
    for site in [&app, &other] {
        let again = browser.get(site, &site.url("/portal")).await;
        assert!(!again.text().await.unwrap().contains("id=\"new-secret\""));
    }
}

async fn a_message_opens_only_in_its_session_and_only_for_a_while(app: TestApp) {
    app.admin_key("ann@example.com").await;
    app.register("bob@example.com").await;
    let mut ann = Browser::new();
    sign_in_to_portal(&app, &mut ann, "ann@example.com").await;
    let mut bob = Browser::new();
    sign_in_to_portal(&app, &mut bob, "bob@example.com").await;

    // Ann's message, carried to Bob's session, opens nothing there (and is cleared).
    create_key(&app, &mut ann, "ann's").await;
    bob.cookies
        .insert(FLASH.to_owned(), ann.cookies[FLASH].clone());
    let page = bob.get(&app, &app.url("/portal")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(!page.text().await.unwrap().contains("id=\"new-secret\""));
    assert!(!bob.cookies.contains_key(FLASH));

    // Altered, it opens nothing either, and is no error.
    let mut altered = ann.cookies[FLASH].clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    ann.cookies.insert(FLASH.to_owned(), altered);
    let page = ann.get(&app, &app.url("/portal")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(!page.text().await.unwrap().contains("id=\"new-secret\""));

    // One left unread past its five minutes is not shown.
    create_key(&app, &mut ann, "late").await;
    app.clock.advance(301);
    let page = ann.get(&app, &app.url("/portal")).await;
    assert!(!page.text().await.unwrap().contains("id=\"new-secret\""));
    assert!(!ann.cookies.contains_key(FLASH));

    // A message for another page waits for that page.
    create_key(&app, &mut ann, "kept").await;
    let elsewhere = ann.get(&app, &app.url("/portal/resources")).await;
    assert_eq!(elsewhere.status(), StatusCode::OK);
    assert!(ann.cookies.contains_key(FLASH));
    let page = ann.get(&app, &app.url("/portal")).await;
    assert!(page.text().await.unwrap().contains("id=\"new-secret\""));
}
