//! The steps many tests take before the part they test: register, make a client, sign in
//! through the pages, approve, exchange a code. Each checks its own answers.

use crate::app::Site;
use crate::http::{Browser, Pkce, hidden_field, location_of, query_pairs, shown_secret};
use crate::json::json_with;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The password of every test user that does not choose its own.
pub const PASSWORD: &str = "correct horse battery";

/// Registers `email` through `POST /v1/register`; returns the answer (`user`, `api_key`).
pub async fn register(site: &impl Site, email: &str, password: &str) -> Value {
    let response = site
        .http()
        .post(site.url("/v1/register"))
        .json(&json!({ "email": email, "password": password, "name": "Test User" }))
        .send()
        .await
        .expect("register");
    json_with(response, StatusCode::CREATED).await
}

/// Creates an OAuth client through the API; returns the answer (with the secret).
pub async fn create_client(site: &impl Site, bearer: &str, body: Value) -> Value {
    let response = site
        .http()
        .post(site.url("/v1/oauth-clients"))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .expect("create client");
    json_with(response, StatusCode::CREATED).await
}

/// A `client_credentials` access token for `client` (an answer of [`create_client`]).
pub async fn client_credentials_token(site: &impl Site, client: &Value) -> String {
    client_credentials_token_for(site, client, None).await
}

/// A `client_credentials` access token for `client`, for `resource` (RFC 8707) when given,
/// else for Net API itself.
pub async fn client_credentials_token_for(
    site: &impl Site,
    client: &Value,
    resource: Option<&str>,
) -> String {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend(resource.map(|resource| ("resource", resource)));
    let response = site
        .http()
        .post(site.url("/oauth/token"))
        .basic_auth(
            client["client_id"].as_str().expect("client_id"),
            client["client_secret"].as_str(),
        )
        .form(&form)
        .send()
        .await
        .expect("token request");
    let body = json_with(response, StatusCode::OK).await;
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// Follows `authorize_url` to the login page and signs `email` in with [`PASSWORD`]; checks
/// the login page's headers and form; returns the consent page.
pub async fn sign_in(
    site: &impl Site,
    browser: &mut Browser,
    authorize_url: &str,
    email: &str,
) -> String {
    let login = browser.get(site, authorize_url).await;
    assert_eq!(login.status(), StatusCode::OK);
    let csp = login.headers()["content-security-policy"]
        .to_str()
        .expect("ASCII CSP")
        .to_owned();
    assert!(csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"));
    assert_eq!(login.headers()["x-frame-options"], "DENY");
    let html = login.text().await.expect("login page");
    assert!(html.contains("name=\"email\"") && html.contains("name=\"password\""));
    let csrf = hidden_field(&html, "csrf_token");
    let return_to = hidden_field(&html, "return_to");
    let signed_in = browser
        .post(
            site,
            "/login",
            &[
                ("email", email),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
                ("return_to", &return_to),
            ],
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let next = location_of(&signed_in);
    assert!(next.starts_with("/oauth/authorize?"));
    let consent = browser.get(site, &site.url(&next)).await;
    assert_eq!(consent.status(), StatusCode::OK);
    consent.text().await.expect("consent page")
}

/// Signs `email` in with [`PASSWORD`] through the login page; returns the portal's HTML.
pub async fn sign_in_to_portal(site: &impl Site, browser: &mut Browser, email: &str) -> String {
    let login = browser
        .get(site, &site.url("/login?return_to=/portal"))
        .await;
    let html = login.text().await.expect("login page");
    let signed_in = browser
        .post(
            site,
            "/login",
            &[
                ("email", email),
                ("password", PASSWORD),
                ("csrf_token", &hidden_field(&html, "csrf_token")),
                ("return_to", &hidden_field(&html, "return_to")),
            ],
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let portal = browser.get(site, &site.url("/portal")).await;
    assert_eq!(portal.status(), StatusCode::OK);
    portal.text().await.expect("portal")
}

/// Registers through the `/register` page; returns the first key, which the portal shows once.
pub async fn register_in_browser(
    site: &impl Site,
    browser: &mut Browser,
    name: &str,
    email: &str,
    password: &str,
) -> String {
    let page = browser.get(site, &site.url("/register")).await;
    let csrf = hidden_field(&page.text().await.expect("register page"), "csrf_token");
    let registered = browser
        .post(
            site,
            "/register",
            &[
                ("csrf_token", csrf.as_str()),
                ("name", name),
                ("email", email),
                ("password", password),
            ],
        )
        .await;
    assert_eq!(registered.status(), StatusCode::OK);
    shown_secret(&registered.text().await.expect("welcome page"))
}

/// Approves on the consent page `consent` (its HTML); returns the answer, a redirect.
pub async fn approve(site: &impl Site, browser: &mut Browser, consent: &str) -> reqwest::Response {
    browser
        .post(
            site,
            "/oauth/authorize",
            &[
                ("csrf_token", &hidden_field(consent, "csrf_token")),
                ("request", &hidden_field(consent, "request")),
                ("decision", "approve"),
            ],
        )
        .await
}

/// Signs `email` in through `authorize_url` and approves; returns the code.
pub async fn approved_code(
    site: &impl Site,
    browser: &mut Browser,
    authorize_url: &str,
    email: &str,
) -> String {
    let consent = sign_in(site, browser, authorize_url, email).await;
    let approved = approve(site, browser, &consent).await;
    query_pairs(&location_of(&approved))["code"].clone()
}

/// Exchanges an authorization code at `/oauth/token` (client secret by HTTP Basic, or
/// `client_id` in the form for a public client); checks for 200 and returns the tokens.
pub async fn exchange_code(
    site: &impl Site,
    client_id: &str,
    client_secret: Option<&str>,
    code: &str,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> Value {
    let mut form = vec![("grant_type", "authorization_code"), ("code", code)];
    form.extend(redirect_uri.map(|uri| ("redirect_uri", uri)));
    form.extend(verifier.map(|verifier| ("code_verifier", verifier)));
    let mut request = site.http().post(site.url("/oauth/token"));
    match client_secret {
        Some(secret) => request = request.basic_auth(client_id, Some(secret)),
        None => form.push(("client_id", client_id)),
    }
    let response = request.form(&form).send().await.expect("token request");
    json_with(response, StatusCode::OK).await
}

/// The whole authorization code flow with PKCE for `client` (an answer of [`create_client`]
/// with `redirect_uri` registered): `email` signs in and approves `scope`, and the code is
/// exchanged. Returns the tokens.
pub async fn authorize_and_exchange(
    site: &impl Site,
    browser: &mut Browser,
    client: &Value,
    redirect_uri: &str,
    scope: &str,
    email: &str,
) -> Value {
    let client_id = client["client_id"].as_str().expect("client_id");
    let pkce = Pkce::random();
    let mut url = url::Url::parse(&site.url("/oauth/authorize")).expect("authorize URL");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", "st4te")
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    let code = approved_code(site, browser, url.as_str(), email).await;
    exchange_code(
        site,
        client_id,
        client["client_secret"].as_str(),
        &code,
        Some(redirect_uri),
        Some(&pkce.verifier),
    )
    .await
}
