//! The authorization code flow through the login and consent pages, as a browser would do
//! it (cookies and forms by hand), then the exchange with the `oauth2` crate.

use crate::e2e;
use crate::helpers::{
    Browser, TestApp, approved_code, authorize_and_exchange, exchange_code, hidden_field,
    json_with, location_of, query_pairs, sign_in, unescape,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope as OAuthScope, TokenResponse, TokenUrl,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// The page shown instead of an error redirect to a client not marked trusted (RFC 9700
/// §4.11.2): 400, no `Location`, and a link back; returns the link.
pub(crate) async fn error_link(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        response.headers().get("location").is_none(),
        "redirected to {:?}",
        response.headers().get("location")
    );
    let html = response.text().await.unwrap();
    let marker = "id=\"return\" href=\"";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no link back in {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    unescape(&html[start..end])
}

/// Marks a client trusted with an administrator's credential.
pub(crate) async fn trust(app: &TestApp, client_id: &str) {
    let admin = app
        .admin_key(&format!(
            "root-{}@example.com",
            netapi_core::secret::random_base62(6).to_lowercase()
        ))
        .await;
    let response = app
        .http
        .patch(app.url(&format!("/v1/oauth-clients/{client_id}")))
        .bearer_auth(&admin)
        .json(&json!({ "trusted": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(json_with(response, StatusCode::OK).await["trusted"], true);
}

async fn web_client(app: &TestApp, owner_key: &str) -> (String, String) {
    let client = app
        .create_client(
            owner_key,
            json!({
                "client_name": "Photo Printer",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "openid profile email users:read",
            }),
        )
        .await;
    (
        client["client_id"].as_str().unwrap().to_owned(),
        client["client_secret"].as_str().unwrap().to_owned(),
    )
}

fn oauth_client(
    app: &TestApp,
    id: &str,
    secret: &str,
) -> oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
> {
    BasicClient::new(ClientId::new(id.to_owned()))
        .set_client_secret(ClientSecret::new(secret.to_owned()))
        .set_auth_uri(AuthUrl::new(app.url("/oauth/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(app.url("/oauth/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap())
}

async fn full_flow(app: TestApp) {
    let (user, key) = app.register("ada@example.com").await;
    let (client_id, secret) = web_client(&app, key["key"].as_str().unwrap()).await;
    let client = oauth_client(&app, &client_id, &secret);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(OAuthScope::new("openid".into()))
        .add_scope(OAuthScope::new("email".into()))
        .add_scope(OAuthScope::new("users:read".into()))
        .add_extra_param("nonce", "n-0S6_WzA2Mj")
        .set_pkce_challenge(challenge)
        .url();
    let mut browser = Browser::new();
    let consent = sign_in(&app, &mut browser, url.as_str(), "ada@example.com").await;
    assert!(consent.contains("Photo Printer") && consent.contains("See your email address"));
    let approved = browser
        .post(
            &app,
            "/oauth/authorize",
            &[
                ("csrf_token", &hidden_field(&consent, "csrf_token")),
                ("request", &hidden_field(&consent, "request")),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    let back = location_of(&approved);
    assert!(back.starts_with(REDIRECT));
    let params = query_pairs(&back);
    assert_eq!(params["state"], *state.secret());
    assert_eq!(params["iss"], app.base);
    let code = params["code"].clone();
    assert!(code.starts_with("napac_"));

    let http = oauth2::reqwest::ClientBuilder::new()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let access = tokens.access_token().secret().clone();
    assert!(tokens.refresh_token().is_some());
    let me = json_with(app.get("/v1/users/me", &access).await, StatusCode::OK).await;
    assert_eq!(me["id"], user["id"]);

    // A second use of the code fails and revokes what the first use issued.
    let replay = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new("a".repeat(43)))
        .request_async(&http)
        .await;
    assert!(replay.is_err());
    let refused = app.get("/v1/users/me", &access).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let refresh = client
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .request_async(&http)
        .await;
    assert!(refresh.is_err());

    // Consent is remembered: the next authorization redirects straight back with a code.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(OAuthScope::new("openid".into()))
        .add_scope(OAuthScope::new("email".into()))
        .add_extra_param("nonce", "n-0S6_WzA2Mj")
        .set_pkce_challenge(challenge)
        .url();
    let again = browser.get(&app, url.as_str()).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    let code = query_pairs(&location_of(&again))["code"].clone();
    // Exchanged by hand this time, to read the ID token the typed client drops.
    let raw = json_with(
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth(&client_id, Some(&secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier.secret()),
            ])
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let access = raw["access_token"].as_str().unwrap().to_owned();
    // The ID token: audience, nonce, at_hash, auth_time.
    let id_token = raw["id_token"].as_str().expect("id_token");
    let claims: Value =
        serde_json::from_slice(&B64.decode(id_token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["aud"], client_id.as_str());
    assert_eq!(claims["iss"], app.base);
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert!(claims["auth_time"].is_i64());
    // A new client's ID tokens are RS256: at_hash is the left half of SHA-256 (OpenID
    // Connect's rule).
    let header: Value =
        serde_json::from_slice(&B64.decode(id_token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    let digest = <sha2::Sha256 as sha2::Digest>::digest(access.as_bytes());
    assert_eq!(claims["at_hash"], B64.encode(&digest[..16]));

    // UserInfo answers with the email scope's claims.
    let info = json_with(app.get("/oauth/userinfo", &access).await, StatusCode::OK).await;
    assert_eq!(info["sub"], user["id"]);
    assert_eq!(info["email"], "ada@example.com");
    assert!(info.get("name").is_none());
}

async fn errors_and_denial(app: TestApp) {
    let key = app.member_key("bob@example.com").await;
    let (client_id, secret) = web_client(&app, &key).await;
    let client = oauth_client(&app, &client_id, &secret);
    // Unknown client and mismatched redirect URI: an error page, never a redirect.
    for query in [
        format!("response_type=code&client_id=cli_nope&redirect_uri={REDIRECT}"),
        format!("response_type=code&client_id={client_id}&redirect_uri=https://evil.example/cb"),
        format!("response_type=code&client_id={client_id}&redirect_uri={REDIRECT}/extra"),
        // Given twice (RFC 6749 §3.1), even with the same value: which one would be meant?
        format!(
            "response_type=code&client_id={client_id}&client_id={client_id}&redirect_uri={REDIRECT}"
        ),
        format!(
            "response_type=code&client_id={client_id}&redirect_uri={REDIRECT}&redirect_uri=https://evil.example/cb"
        ),
    ] {
        let response = app
            .http
            .get(app.url(&format!("/oauth/authorize?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        assert!(response.headers().get("location").is_none());
    }
    // Missing PKCE, bad response_type, bad scope: the client hears of it with error, state and
    // iss; as it is not marked trusted, on a page with a link rather than by a redirect.
    let cases = [
        (
            format!("response_type=code&client_id={client_id}&redirect_uri={REDIRECT}&state=xyz"),
            "invalid_request",
        ),
        (
            format!(
                "response_type=token&client_id={client_id}&redirect_uri={REDIRECT}&state=xyz&code_challenge={}&code_challenge_method=S256",
                "a".repeat(43)
            ),
            "unsupported_response_type",
        ),
        (
            format!(
                "response_type=code&client_id={client_id}&redirect_uri={REDIRECT}&state=xyz&scope=admin&code_challenge={}&code_challenge_method=S256",
                "a".repeat(43)
            ),
            "invalid_scope",
        ),
        (
            format!(
                "response_type=code&client_id={client_id}&redirect_uri={REDIRECT}&state=xyz&code_challenge={}&code_challenge_method=plain",
                "a".repeat(43)
            ),
            "invalid_request",
        ),
        (
            format!(
                "response_type=code&client_id={client_id}&redirect_uri={REDIRECT}&state=xyz&prompt=none&code_challenge={}&code_challenge_method=S256",
                "a".repeat(43)
            ),
            "login_required",
        ),
        (
            format!(
                "response_type=code&client_id={client_id}&redirect_uri={REDIRECT}&state=xyz&scope=users:read&scope=admin&code_challenge={}&code_challenge_method=S256",
                "a".repeat(43)
            ),
            "invalid_request",
        ),
    ];
    let mut links = Vec::new();
    for (query, error) in &cases {
        let response = app
            .http
            .get(app.url(&format!("/oauth/authorize?{query}")))
            .send()
            .await
            .unwrap();
        let link = error_link(response).await;
        assert!(link.starts_with(REDIRECT), "{link}");
        let params = query_pairs(&link);
        assert_eq!(params["error"], *error, "{query}");
        assert_eq!(params["state"], "xyz");
        assert_eq!(params["iss"], app.base);
        links.push(link);
    }
    // Once an administrator trusts the client, the same errors are redirects to the very
    // URLs the page linked to.
    trust(&app, &client_id).await;
    for ((query, _), link) in cases.iter().zip(&links) {
        let response = app
            .http
            .get(app.url(&format!("/oauth/authorize?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{query}");
        assert_eq!(location_of(&response), *link);
    }
    // Consent denied.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let mut browser = Browser::new();
    let consent = sign_in(&app, &mut browser, url.as_str(), "bob@example.com").await;
    // A forged form (wrong CSRF token) is refused.
    let forged = browser
        .post(
            &app,
            "/oauth/authorize",
            &[
                ("csrf_token", "forged"),
                ("request", &hidden_field(&consent, "request")),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let denied = browser
        .post(
            &app,
            "/oauth/authorize",
            &[
                ("csrf_token", &hidden_field(&consent, "csrf_token")),
                ("request", &hidden_field(&consent, "request")),
                ("decision", "deny"),
            ],
        )
        .await;
    assert_eq!(query_pairs(&location_of(&denied))["error"], "access_denied");
    // Wrong verifier: invalid_grant.
    let approved = browser
        .post(
            &app,
            "/oauth/authorize",
            &[
                ("csrf_token", &hidden_field(&consent, "csrf_token")),
                ("request", &hidden_field(&consent, "request")),
                ("decision", "approve"),
            ],
        )
        .await;
    let code = query_pairs(&location_of(&approved))["code"].clone();
    let http = oauth2::reqwest::ClientBuilder::new()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let wrong = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new("b".repeat(43)))
        .request_async(&http)
        .await;
    assert!(
        matches!(wrong, Err(oauth2::RequestTokenError::ServerResponse(ref e)) if e.error().as_ref() == "invalid_grant")
    );
    drop(verifier);
    // An expired code: invalid_grant.
    let approved = browser
        .post(
            &app,
            "/oauth/authorize",
            &[
                ("csrf_token", &hidden_field(&consent, "csrf_token")),
                ("request", &hidden_field(&consent, "request")),
                ("decision", "approve"),
            ],
        )
        .await;
    let code = query_pairs(&location_of(&approved))["code"].clone();
    app.clock.advance(61);
    let late = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new("c".repeat(43)))
        .request_async(&http)
        .await;
    assert!(late.is_err());
}

async fn wrong_password_and_no_enumeration(app: TestApp) {
    app.register("carol@example.com").await;
    let mut browser = Browser::new();
    let page = browser
        .get(&app, &app.url("/login"))
        .await
        .text()
        .await
        .unwrap();
    let csrf = hidden_field(&page, "csrf_token");
    let wrong = browser
        .post(
            &app,
            "/login",
            &[
                ("email", "carol@example.com"),
                ("password", "wrong password"),
                ("csrf_token", &csrf),
                ("return_to", "/portal"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong_text = wrong.text().await.unwrap();
    let page = browser
        .get(&app, &app.url("/login"))
        .await
        .text()
        .await
        .unwrap();
    let csrf = hidden_field(&page, "csrf_token");
    let unknown = browser
        .post(
            &app,
            "/login",
            &[
                ("email", "nobody@example.com"),
                ("password", "wrong password"),
                ("csrf_token", &csrf),
                ("return_to", "/portal"),
            ],
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong_text.contains("Invalid email or password.")
            && unknown
                .text()
                .await
                .unwrap()
                .contains("Invalid email or password.")
    );
    // Without the CSRF cookie the form is refused; an open redirect target is replaced.
    let mut fresh = Browser::new();
    let refused = fresh
        .post(
            &app,
            "/login",
            &[
                ("email", "carol@example.com"),
                ("password", "correct horse battery"),
                ("csrf_token", "x"),
                ("return_to", "/portal"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // Nor can a forger set both halves of the double-submit check to nothing.
    let empty = app
        .http
        .post(app.url("/login"))
        .header("cookie", "netapi_login_csrf=")
        .form(&[
            ("email", "carol@example.com"),
            ("password", "correct horse battery"),
            ("csrf_token", ""),
            ("return_to", "/portal"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), StatusCode::FORBIDDEN);
    let page = browser
        .get(&app, &app.url("/login"))
        .await
        .text()
        .await
        .unwrap();
    let csrf = hidden_field(&page, "csrf_token");
    let ok = browser
        .post(
            &app,
            "/login",
            &[
                ("email", "carol@example.com"),
                ("password", "correct horse battery"),
                ("csrf_token", &csrf),
                ("return_to", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(location_of(&ok), "/portal");
}

async fn portal_manages_keys_and_apps(app: TestApp) {
    let mut browser = Browser::new();
    let page = browser
        .get(&app, &app.url("/register"))
        .await
        .text()
        .await
        .unwrap();
    let csrf = hidden_field(&page, "csrf_token");
    let registered = browser
        .post(
            &app,
            "/register",
            &[
                ("csrf_token", &csrf),
                ("name", "Dora"),
                ("email", "dora@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(registered.status(), StatusCode::OK);
    assert_no_store(registered.headers());
    let html = registered.text().await.unwrap();
    let start = html.find("id=\"new-secret\">").unwrap() + "id=\"new-secret\">".len();
    let first_key = html[start..start + 43].to_owned();
    assert!(first_key.starts_with("napi_"));
    assert_eq!(
        app.get("/v1/users/me", &first_key).await.status(),
        StatusCode::OK
    );
    let csrf = hidden_field(&html, "csrf_token");
    let created = browser
        .submit(
            &app,
            "/portal/keys",
            &[
                ("csrf_token", &csrf),
                ("name", "CI key"),
                ("expires_in_days", ""),
                ("scope", "users:read"),
                ("scope", "keys:read"),
            ],
        )
        .await;
    assert_no_store(created.headers());
    let html = created.text().await.unwrap();
    assert!(html.contains("CI key"));
    let start = html.find("id=\"new-secret\">").unwrap() + "id=\"new-secret\">".len();
    let ci_key = html[start..start + 43].to_owned();
    assert_eq!(
        app.get("/v1/users/me", &ci_key).await.status(),
        StatusCode::OK
    );
    let keys = json_with(app.get("/v1/api-keys", &ci_key).await, StatusCode::OK).await;
    let ci_id = keys["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "CI key")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = browser
        .submit(
            &app,
            &format!("/portal/keys/{ci_id}/revoke"),
            &[("csrf_token", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(
        app.get("/v1/users/me", &ci_key).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let forged = browser
        .post(
            &app,
            "/portal/keys",
            &[("csrf_token", "nope"), ("name", "x")],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let app_created = browser
        .submit(
            &app,
            "/portal/clients",
            &[
                ("csrf_token", &csrf),
                ("name", "My App"),
                ("kind", "web"),
                ("redirect_uris", "https://app.example.com/cb"),
            ],
        )
        .await;
    assert_no_store(app_created.headers());
    let app_created = app_created.text().await.unwrap();
    assert!(app_created.contains("My App") && app_created.contains("napcs_"));
    let logout = browser
        .post(&app, "/logout", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    let after = browser.get(&app, &app.url("/portal")).await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
}

e2e!(
    full_flow,
    errors_and_denial,
    wrong_password_and_no_enumeration,
    portal_manages_keys_and_apps
);

async fn redirect_uri_may_be_left_out_only_for_a_single_registered_uri(app: TestApp) {
    let key = app.member_key("erin@example.com").await;
    let (client_id, secret) = web_client(&app, &key).await;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    // No redirect_uri in the request: the single registered one is used.
    let url = app.url(&format!(
        "/oauth/authorize?response_type=code&client_id={client_id}&code_challenge={}&code_challenge_method=S256",
        challenge.as_str()
    ));
    let mut browser = Browser::new();
    let code = approved_code(&app, &mut browser, &url, "erin@example.com").await;
    exchange_code(
        &app,
        &client_id,
        Some(&secret),
        &code,
        None,
        Some(verifier.secret()),
    )
    .await;
    // Userinfo answers access tokens only, never API keys.
    let info = app.get("/oauth/userinfo", &key).await;
    assert_eq!(info.status(), StatusCode::UNAUTHORIZED);
    assert!(
        info.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
}

async fn confidential_clients_may_skip_pkce_when_configured(app: TestApp) {
    let key = app.member_key("frank@example.com").await;
    let (client_id, secret) = web_client(&app, &key).await;
    let url = app.url(&format!(
        "/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri={REDIRECT}&state=s1"
    ));
    let mut browser = Browser::new();
    let code = approved_code(&app, &mut browser, &url, "frank@example.com").await;
    exchange_code(&app, &client_id, Some(&secret), &code, Some(REDIRECT), None).await;
    // A public client still needs PKCE.
    let public = app
        .create_client(&key, json!({"client_name": "cli", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}))
        .await;
    let refused = app
        .http
        .get(app.url(&format!(
            "/oauth/authorize?response_type=code&client_id={}&redirect_uri={REDIRECT}&state=s2",
            public["client_id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        query_pairs(&error_link(refused).await)["error"],
        "invalid_request"
    );
}

e2e!(
    settings = |s| s.require_pkce = false;
    confidential_clients_may_skip_pkce_when_configured
);

e2e!(
    redirect_uri_may_be_left_out_only_for_a_single_registered_uri,
    a_code_exchange_must_repeat_the_redirect_uri_the_request_named,
    only_administrators_mark_clients_trusted,
    errors_after_sign_in_redirect_even_for_untrusted_clients,
);

/// Pages and answers that show a secret may be kept by no cache.
pub(crate) fn assert_no_store(headers: &reqwest::header::HeaderMap) {
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
}

/// RFC 6749 §4.1.3: when the authorization request named `redirect_uri`, the token request
/// must repeat it, even for a client with a single registered URI.
async fn a_code_exchange_must_repeat_the_redirect_uri_the_request_named(app: TestApp) {
    let key = app.member_key("gina@example.com").await;
    let (client_id, secret) = web_client(&app, &key).await;
    let mut browser = Browser::new();
    let mut codes = Vec::new();
    for first in [true, false] {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let url = app.url(&format!(
            "/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri={REDIRECT}&code_challenge={}&code_challenge_method=S256",
            challenge.as_str()
        ));
        let code = if first {
            approved_code(&app, &mut browser, &url, "gina@example.com").await
        } else {
            // Signed in and approved already: straight back with a code.
            let again = browser.get(&app, &url).await;
            query_pairs(&location_of(&again))["code"].clone()
        };
        codes.push((code, verifier));
    }
    let exchange = |code: &str, verifier: &str, redirect: Option<&str>| {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("code_verifier", verifier.to_owned()),
        ];
        if let Some(uri) = redirect {
            form.push(("redirect_uri", uri.to_owned()));
        }
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth(&client_id, Some(&secret))
            .form(&form)
            .send()
    };
    let (code, verifier) = &codes[0];
    let refused = json_with(
        exchange(code, verifier.secret(), None).await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(refused["error"], "invalid_grant");
    let (code, verifier) = &codes[1];
    let tokens = json_with(
        exchange(code, verifier.secret(), Some(REDIRECT))
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(tokens["access_token"].is_string());
}

async fn only_administrators_mark_clients_trusted(app: TestApp) {
    let key = app.member_key("hal@example.com").await;
    let admin = app.admin_key("root@example.com").await;
    let body = json!({"client_name": "App", "redirect_uris": [REDIRECT], "trusted": true});
    let refused = app.post_json("/v1/oauth-clients", &key, body.clone()).await;
    crate::helpers::expect_error(refused, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    let client = app
        .create_client(
            &key,
            json!({"client_name": "App", "redirect_uris": [REDIRECT]}),
        )
        .await;
    assert_eq!(client["trusted"], false);
    let id = client["client_id"].as_str().unwrap();
    let patch = |bearer: &str, body: Value| {
        app.http
            .patch(app.url(&format!("/v1/oauth-clients/{id}")))
            .bearer_auth(bearer)
            .json(&body)
            .send()
    };
    let refused = patch(&key, json!({"trusted": true})).await.unwrap();
    crate::helpers::expect_error(refused, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    let trusted = patch(&admin, json!({"trusted": true})).await.unwrap();
    assert_eq!(json_with(trusted, StatusCode::OK).await["trusted"], true);
    // The owner may change everything else, and cannot take the mark away either.
    let renamed = patch(&key, json!({"client_name": "Renamed"}))
        .await
        .unwrap();
    assert_eq!(json_with(renamed, StatusCode::OK).await["trusted"], true);
    let refused = patch(&key, json!({"trusted": false})).await.unwrap();
    crate::helpers::expect_error(refused, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    let read = json_with(
        app.get(&format!("/v1/oauth-clients/{id}"), &key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read["trusted"], true);
    let made = app.post_json("/v1/oauth-clients", &admin, body).await;
    assert_eq!(json_with(made, StatusCode::CREATED).await["trusted"], true);
}

/// The page is for errors before the user has seen the request; a denial, or silent
/// authentication of a user who already approved, redirects as RFC 6749 says.
async fn errors_after_sign_in_redirect_even_for_untrusted_clients(app: TestApp) {
    let key = app.member_key("ivy@example.com").await;
    let (client_id, _) = web_client(&app, &key).await;
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let url = app.url(&format!(
        "/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri={REDIRECT}&state=st&code_challenge={}&code_challenge_method=S256",
        challenge.as_str()
    ));
    let mut browser = Browser::new();
    let consent = sign_in(&app, &mut browser, &url, "ivy@example.com").await;
    // Signed in but not yet approved: prompt=none cannot be answered, and the user has seen
    // nothing of this request, so an untrusted client gets the page.
    let silent = browser.get(&app, &format!("{url}&prompt=none")).await;
    assert_eq!(
        query_pairs(&error_link(silent).await)["error"],
        "consent_required"
    );
    let denied = browser
        .post(
            &app,
            "/oauth/authorize",
            &[
                ("csrf_token", &hidden_field(&consent, "csrf_token")),
                ("request", &hidden_field(&consent, "request")),
                ("decision", "deny"),
            ],
        )
        .await;
    assert_eq!(denied.status(), StatusCode::SEE_OTHER);
    let params = query_pairs(&location_of(&denied));
    assert_eq!(
        (params["error"].as_str(), params["state"].as_str()),
        ("access_denied", "st")
    );
    assert_eq!(params["iss"], app.base);
    let approved = browser
        .post(
            &app,
            "/oauth/authorize",
            &[
                ("csrf_token", &hidden_field(&consent, "csrf_token")),
                ("request", &hidden_field(&consent, "request")),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    // Approved before: silent authentication works as ever.
    let silent = browser.get(&app, &format!("{url}&prompt=none")).await;
    assert_eq!(silent.status(), StatusCode::SEE_OTHER);
    assert!(query_pairs(&location_of(&silent))["code"].starts_with("napac_"));
}

/// With `signing_algorithm = ES256`, tokens are ES256 JWTs that verify against the published
/// P-256 key with an independent implementation.
async fn es256_tokens_verify_against_the_published_key(app: TestApp) {
    use p256::ecdsa::signature::Verifier;
    let key = app.member_key("ec@example.com").await;
    let client = app
        .create_client(&key, json!({"client_name": "svc", "grant_types": ["client_credentials"], "scope": "users:read"}))
        .await;
    let access = &app.client_credentials_token(&client).await;
    let parts: Vec<&str> = access.split('.').collect();
    let header: Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let jwks = json_with(
        app.http
            .get(app.url("/oauth/jwks.json"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap()
        .clone();
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    let mut point = vec![4u8];
    point.extend(B64.decode(jwk["x"].as_str().unwrap()).unwrap());
    point.extend(B64.decode(jwk["y"].as_str().unwrap()).unwrap());
    let public = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
    let signature = p256::ecdsa::Signature::from_slice(&B64.decode(parts[2]).unwrap()).unwrap();
    public
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("independent ES256 verification");
    assert_eq!(
        app.get("/v1/users/me", access).await.status(),
        StatusCode::OK
    );
}

e2e!(
    settings = |s| s.signing_algorithm = netapi_core::model::SigningAlgorithm::Es256;
    es256_tokens_verify_against_the_published_key
);

// ---------------------------------------------------------------------------------------
// Issue 11: what an application made ends with its consent; a new password ends sign-ins.

/// Registers a web client of `owner_key` with `scope`, signs `email` in through `browser`,
/// approves and exchanges the code; returns `(client_id, client_secret, access token,
/// refresh token)`.
async fn app_tokens(
    app: &TestApp,
    browser: &mut Browser,
    owner_key: &str,
    email: &str,
    scope: &str,
) -> (String, String, String, String) {
    let client = app
        .create_client(
            owner_key,
            json!({
                "client_name": "Key Maker",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": scope,
            }),
        )
        .await;
    let tokens = authorize_and_exchange(app, browser, &client, REDIRECT, scope, email).await;
    (
        client["client_id"].as_str().unwrap().to_owned(),
        client["client_secret"].as_str().unwrap().to_owned(),
        tokens["access_token"].as_str().unwrap().to_owned(),
        tokens["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn keys_made_by_an_app_end_with_its_consent(app: TestApp) {
    let own = app.member_key("ada@example.com").await;
    let mut browser = Browser::new();
    let (client_id, _, access, _) = app_tokens(
        &app,
        &mut browser,
        &own,
        "ada@example.com",
        "users:read keys:read keys:write",
    )
    .await;
    // The app's access token may make keys; a rotation keeps what made the key.
    let made = json_with(
        app.post_json(
            "/v1/api-keys",
            &access,
            json!({ "name": "made by the app" }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let rotated = json_with(
        app.post_json(
            &format!("/v1/api-keys/{}/rotate", made["id"].as_str().unwrap()),
            &access,
            json!({}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let rotated = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/v1/users/me", &rotated).await.status(),
        StatusCode::OK
    );

    // Withdrawing the consent in the portal ends the app's tokens and the keys it made.
    let portal = browser
        .get(&app, &app.url("/portal"))
        .await
        .text()
        .await
        .unwrap();
    let withdrawn = browser
        .submit(
            &app,
            &format!("/portal/authorizations/{client_id}/withdraw"),
            &[("csrf_token", &hidden_field(&portal, "csrf_token"))],
        )
        .await;
    assert_eq!(withdrawn.status(), StatusCode::OK);
    for refused in [&rotated, &access] {
        assert_eq!(
            app.get("/v1/users/me", refused).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // The user's own key is not the app's.
    assert_eq!(app.get("/v1/users/me", &own).await.status(), StatusCode::OK);
}

async fn a_new_password_ends_sessions_and_refresh_tokens(app: TestApp) {
    let own = app.member_key("ada@example.com").await;
    let mut browser = Browser::new();
    let (client_id, secret, access, refresh) =
        app_tokens(&app, &mut browser, &own, "ada@example.com", "users:read").await;
    assert_eq!(
        browser.get(&app, &app.url("/portal")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/v1/users/me", &access).await.status(),
        StatusCode::OK
    );

    let changed = app
        .http
        .patch(app.url("/v1/users/me"))
        .bearer_auth(&own)
        .json(&json!({ "password": "a much longer passphrase", "current_password": "correct horse battery" }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);

    // The browser session is over, the access token refused, the refresh token dead.
    let portal = browser.get(&app, &app.url("/portal")).await;
    assert_eq!(portal.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.get("/v1/users/me", &access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let refreshed = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let error = json_with(refreshed, StatusCode::BAD_REQUEST).await;
    assert_eq!(error["error"], "invalid_grant");
    // API keys are not sign-ins: the key used for the change still works.
    assert_eq!(app.get("/v1/users/me", &own).await.status(), StatusCode::OK);
}

/// A portal session never holds `admin`: it cannot rotate a key that does, and so cannot
/// read out a new administrator key in the browser.
async fn portal_cannot_rotate_a_key_wider_than_the_session(app: TestApp) {
    let admin = app.admin_key("root@example.com").await;
    let keys = json_with(app.get("/v1/api-keys", &admin).await, StatusCode::OK).await;
    let key_id = keys["api_keys"][0]["id"].as_str().unwrap().to_owned();
    let mut browser = Browser::new();
    let login = browser
        .get(&app, &app.url("/login"))
        .await
        .text()
        .await
        .unwrap();
    let signed_in = browser
        .post(
            &app,
            "/login",
            &[
                ("email", "root@example.com"),
                ("password", "correct horse battery"),
                ("csrf_token", &hidden_field(&login, "csrf_token")),
                ("return_to", "/portal"),
            ],
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let portal = browser
        .get(&app, &app.url("/portal"))
        .await
        .text()
        .await
        .unwrap();
    let refused = browser
        .submit(
            &app,
            &format!("/portal/keys/{key_id}/rotate"),
            &[
                ("csrf_token", &hidden_field(&portal, "csrf_token")),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::OK);
    let html = refused.text().await.unwrap();
    assert!(
        html.contains("scope &#39;admin&#39;") || html.contains("scope 'admin'"),
        "{html}"
    );
    assert!(!html.contains("id=\"new-secret\""));
    // The key was not rotated.
    assert_eq!(app.get("/v1/users", &admin).await.status(), StatusCode::OK);
}

/// What people type (an application's name) reaches the pages as text, never as markup: the
/// templates escape it, on the consent page and in the portal.
async fn pages_escape_what_people_typed(app: TestApp) {
    let name = "<script>alert(\"hi\")</script> & 'Co'";
    let escaped = "&#60;script&#62;alert(&#34;hi&#34;)&#60;/script&#62; &#38; &#39;Co&#39;";
    let (_, key) = app.register("ada@example.com").await;
    let client = app
        .create_client(
            key["key"].as_str().unwrap(),
            json!({
                "client_name": name,
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code"],
                "scope": "openid",
            }),
        )
        .await;
    let client_id = client["client_id"].as_str().unwrap();
    let client = oauth_client(&app, client_id, client["client_secret"].as_str().unwrap());
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(OAuthScope::new("openid".into()))
        .set_pkce_challenge(challenge)
        .url();
    let mut browser = Browser::new();
    let consent = sign_in(&app, &mut browser, url.as_str(), "ada@example.com").await;
    assert!(
        consent.contains(&format!("Authorize {escaped}</h1>")),
        "{consent}"
    );
    assert!(!consent.contains("<script>"), "{consent}");
    // The request carried in the form comes back intact.
    assert_eq!(hidden_field(&consent, "request"), url.query().unwrap());

    let portal = browser.get(&app, &app.url("/portal")).await;
    assert_eq!(portal.status(), StatusCode::OK);
    let portal = portal.text().await.unwrap();
    assert!(portal.contains(&format!("<h2>{escaped}</h2>")), "{portal}");
    assert!(!portal.contains("<script>"));
}

/// A storage failure at UserInfo is the server's (5xx, the envelope), never the token's 401.
async fn userinfo_answers_a_storage_failure_as_the_servers(app: TestApp) {
    let own = app.member_key("ada@example.com").await;
    let mut browser = Browser::new();
    let (_, _, access, _) = app_tokens(
        &app,
        &mut browser,
        &own,
        "ada@example.com",
        "openid profile",
    )
    .await;
    json_with(app.get("/oauth/userinfo", &access).await, StatusCode::OK).await;
    let sql = "ALTER TABLE users RENAME TO users_gone";
    match app.backend {
        crate::helpers::Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
        crate::helpers::Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
    let answer = app.get("/oauth/userinfo", &access).await;
    let status = answer.status();
    assert!(status.is_server_error(), "{status}");
    let body: Value = answer.json().await.unwrap();
    assert!(
        ["INTERNAL", "UNAVAILABLE"].contains(&body["error"]["code"].as_str().unwrap_or_default()),
        "{body}"
    );
}

e2e!(
    userinfo_answers_a_storage_failure_as_the_servers,
    keys_made_by_an_app_end_with_its_consent,
    a_new_password_ends_sessions_and_refresh_tokens,
    portal_cannot_rotate_a_key_wider_than_the_session,
    pages_escape_what_people_typed
);
