//! The person's part of the device authorization grant (RFC 8628) at `/device`, as a browser
//! does it: sign in, type the user code, allow or deny.

use crate::app::Site;
use crate::flows::PASSWORD;
use crate::http::{Browser, hidden_field, location_of};
use reqwest::StatusCode;

/// Signs `email` in from `/device?user_code=...` (the login page comes first and returns
/// there); answers the code form's HTML, the code filled in.
pub async fn sign_in_at_device(
    site: &impl Site,
    browser: &mut Browser,
    url: &str,
    email: &str,
) -> String {
    let login = browser.get(site, url).await;
    assert_eq!(login.status(), StatusCode::OK);
    let html = login.text().await.expect("page");
    assert!(html.contains("name=\"password\""), "{html}");
    let return_to = hidden_field(&html, "return_to");
    assert!(return_to.starts_with("/device"), "{return_to}");
    let signed_in = browser
        .post(
            site,
            "/login",
            &[
                ("email", email),
                ("password", PASSWORD),
                ("csrf_token", &hidden_field(&html, "csrf_token")),
                ("return_to", &return_to),
            ],
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let back = location_of(&signed_in);
    assert_eq!(back, return_to);
    let form = browser.get(site, &site.url(&back)).await;
    assert_eq!(form.status(), StatusCode::OK);
    form.text().await.expect("page")
}

/// Types `code` into the form of `page` (its CSRF token); answers the response.
pub async fn enter_code(
    site: &impl Site,
    browser: &mut Browser,
    page: &str,
    code: &str,
) -> reqwest::Response {
    browser
        .post(
            site,
            "/device",
            &[
                ("csrf_token", &hidden_field(page, "csrf_token")),
                ("user_code", code),
            ],
        )
        .await
}

/// Decides on the consent page `consent`.
pub async fn decide(
    site: &impl Site,
    browser: &mut Browser,
    consent: &str,
    decision: &str,
) -> reqwest::Response {
    browser
        .post(
            site,
            "/device",
            &[
                ("csrf_token", &hidden_field(consent, "csrf_token")),
                ("user_code", &hidden_field(consent, "user_code")),
                ("decision", decision),
            ],
        )
        .await
}

/// Signs `email` in, types `code` and decides; answers the final page's HTML.
pub async fn approve_code(site: &impl Site, email: &str, code: &str, decision: &str) -> String {
    let mut browser = Browser::new();
    let page = sign_in_at_device(site, &mut browser, &site.url("/device"), email).await;
    let consent = enter_code(site, &mut browser, &page, code).await;
    assert_eq!(consent.status(), StatusCode::OK);
    let consent = consent.text().await.expect("page");
    let done = decide(site, &mut browser, &consent, decision).await;
    assert_eq!(done.status(), StatusCode::OK);
    done.text().await.expect("page")
}
