//! Issue 16: a relying party built with the `openidconnect` crate (a real OpenID Connect
//! client, not code of this project) against the server: discovery, the authorization code
//! flow with PKCE and a nonce, the exchange, the ID token checked by the crate's default
//! verifier (RS256 only, issuer, audience, expiry, nonce, signature against the published
//! keys), `at_hash`, UserInfo and a refresh, all through the crate.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use reqwest::StatusCode;
use serde_json::json;

use crate::e2e;
use crate::helpers::{Browser, TestApp, approve, location_of, query_pairs, sign_in};

const REDIRECT: &str = "https://rp.example.com/callback";

e2e!(the_openidconnect_crate_signs_in_verifies_and_refreshes);

fn http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn the_openidconnect_crate_signs_in_verifies_and_refreshes(app: TestApp) {
    let (user, key) = app.register("grace@example.com").await;
    // Registered without `id_token_signed_response_alg`: RS256, which the crate's default
    // verifier is limited to.
    let registered = app
        .create_client(
            key["key"].as_str().unwrap(),
            json!({
                "client_name": "OpenID Relying Party",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "openid email users:read",
            }),
        )
        .await;
    assert!(
        registered
            .get("id_token_signed_response_alg")
            .is_none_or(|a| a == "RS256")
    );
    let client_id = registered["client_id"].as_str().unwrap().to_owned();
    let secret = registered["client_secret"].as_str().unwrap().to_owned();

    // Discovery: the crate fetches the document and the key set, and checks that the
    // document's issuer is the one asked for.
    let http = http();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http)
            .await
            .expect("discovery through the openidconnect crate");
    assert_eq!(metadata.issuer().as_str(), app.base);
    assert!(!metadata.jwks().keys().is_empty());
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client_id.clone()),
        Some(ClientSecret::new(secret)),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap());

    // The authorization request as the crate builds it (scope openid, state, nonce, PKCE
    // S256), followed in a browser: sign in, approve.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".to_owned()))
        .add_scope(Scope::new("users:read".to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    let mut browser = Browser::new();
    let consent = sign_in(&app, &mut browser, url.as_str(), "grace@example.com").await;
    assert!(consent.contains("OpenID Relying Party"));
    let approved = approve(&app, &mut browser, &consent).await;
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    let back = location_of(&approved);
    assert!(back.starts_with(REDIRECT), "{back}");
    let params = query_pairs(&back);
    assert_eq!(params["state"], *state.secret());

    // The exchange by the crate (HTTP Basic, the PKCE verifier).
    let tokens = client
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .expect("a token endpoint was discovered")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange through the openidconnect crate");

    // The ID token through the crate's default verifier: signature (RS256 only) against
    // the discovered keys, issuer, audience, expiry, and the nonce of this request.
    let verifier = client.id_token_verifier();
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("the default verifier accepts the ID token");
    assert_eq!(claims.subject().as_str(), user["id"].as_str().unwrap());
    assert_eq!(
        claims.email().map(|e| e.as_str()),
        Some("grace@example.com")
    );
    assert_eq!(claims.nonce().map(|n| n.secret()), Some(nonce.secret()));
    assert_eq!(claims.issuer().as_str(), app.base);
    assert_eq!(claims.audiences().len(), 1);
    assert_eq!(claims.audiences()[0].as_str(), client_id);
    // at_hash, computed by the crate from the access token with the token's algorithm.
    let expected = claims.access_token_hash().expect("at_hash");
    let actual = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(&actual, expected);
    // Another nonce than the request's is refused by the same verifier.
    assert!(
        id_token
            .claims(&verifier, &Nonce::new("another".to_owned()))
            .is_err()
    );
    // The access token works at the API.
    let access = tokens.access_token().secret().clone();
    assert_eq!(
        app.get("/v1/users/me", &access).await.status(),
        StatusCode::OK
    );

    // UserInfo through the crate, for the ID token's subject.
    let info: CoreUserInfoClaims = client
        .user_info(
            tokens.access_token().to_owned(),
            Some(claims.subject().clone()),
        )
        .expect("a UserInfo endpoint was discovered")
        .request_async(&http)
        .await
        .expect("UserInfo through the openidconnect crate");
    assert_eq!(info.subject(), claims.subject());
    assert_eq!(info.email().map(|e| e.as_str()), Some("grace@example.com"));

    // A refresh through the crate: new tokens, and an ID token the default verifier accepts
    // (a refreshed ID token need not carry the nonce, OpenID Connect Core §12.2).
    let refresh = tokens.refresh_token().expect("a refresh token");
    let refreshed = client
        .exchange_refresh_token(refresh)
        .expect("a token endpoint was discovered")
        .request_async(&http)
        .await
        .expect("refresh through the openidconnect crate");
    assert_ne!(refreshed.access_token().secret(), &access);
    let new_refresh = refreshed.refresh_token().expect("a rotated refresh token");
    assert_ne!(new_refresh.secret(), refresh.secret());
    let refreshed_id = refreshed.id_token().expect("an ID token on refresh");
    let again = refreshed_id
        .claims(&verifier, |_: Option<&Nonce>| Ok(()))
        .expect("the default verifier accepts the refreshed ID token");
    assert_eq!(again.subject(), claims.subject());
    assert_eq!(again.audiences()[0].as_str(), client_id);
    assert_eq!(
        app.get("/v1/users/me", refreshed.access_token().secret())
            .await
            .status(),
        StatusCode::OK
    );
    // The old refresh token is spent: once the grace for two tabs refreshing at once is
    // over, the crate hears invalid_grant.
    app.clock
        .advance(app.api.settings().refresh_reuse_grace + 1);
    let reused = client
        .exchange_refresh_token(refresh)
        .unwrap()
        .request_async(&http)
        .await;
    assert!(
        matches!(reused, Err(openidconnect::RequestTokenError::ServerResponse(ref e)) if e.error().as_ref() == "invalid_grant"),
        "{reused:?}"
    );
}
