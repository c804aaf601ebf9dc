//! The developer portal: API keys, OAuth applications and the applications a user authorized.
//! Every action is its own route; each checks the session and its CSRF token, then shows the
//! portal with the outcome.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use netapi_core::clock::format_rfc3339;
use netapi_core::model::{ClientAuthMethod, GrantType, Session, User};
use netapi_core::service::{
    ClientUpdate, KeyUsage, NewApiKey, NewClient, PageRequest, Principal, UsageQuery,
};
use netapi_core::usage::{Granularity, UsageOutcome};
use netapi_core::{Error, NetApi, Role, Scope};
use serde::Deserialize;

use super::error::PageError;
use super::login::CsrfForm;
use super::page::{Chrome, render};
use super::session::current_session;
use crate::extract::ClientIp;
use crate::state::AppState;

/// A message shown once at the top of the portal.
pub(super) enum Flash {
    Secret { title: String, value: String },
    Notice(String),
    Error(String),
}

struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    last_four: String,
    /// The identifier of the resource it is for; empty for Net API's own.
    resource: String,
    scopes: String,
    created: String,
    used: String,
    expires: String,
}

/// A resource the user may make keys for, in the key form's choice.
struct KeyTarget {
    identifier: String,
    name: String,
    /// The scopes the user holds there, space-separated.
    scopes: String,
}

struct ClientCard {
    id: String,
    name: String,
    kind: &'static str,
    grants: String,
    /// One per line, as the form takes them.
    redirect_uris: String,
    /// Only confidential clients have a secret to rotate.
    confidential: bool,
}

struct AppRow {
    client_id: String,
    name: String,
    scopes: String,
    since: String,
}

#[derive(Template)]
#[template(path = "portal.html")]
struct PortalPage<'a> {
    chrome: Chrome<'a>,
    /// Administrators get a link to the resources page.
    admin: bool,
    flash: Option<Flash>,
    csrf: &'a str,
    keys: Vec<KeyRow>,
    /// Besides Net API's own.
    key_targets: Vec<KeyTarget>,
    clients: Vec<ClientCard>,
    apps: Vec<AppRow>,
}

fn when(ts: Option<i64>) -> String {
    ts.map_or_else(|| "never".to_owned(), format_rfc3339)
}

pub(super) async fn portal_page(
    api: &NetApi,
    user: &User,
    session: &Session,
    flash: Option<Flash>,
) -> Response {
    let principal = NetApi::session_principal(user);
    let first_page = || PageRequest {
        cursor: None,
        size: 100,
    };
    let keys = api
        .list_api_keys(&principal, first_page())
        .await
        .map(|p| p.items)
        .unwrap_or_default()
        .into_iter()
        .map(|key| KeyRow {
            scopes: match &key.resource {
                Some(_) => key.resource_scopes.join(" "),
                None => key.scopes.to_string(),
            },
            resource: key.resource.map(|r| r.identifier).unwrap_or_default(),
            created: format_rfc3339(key.created_at),
            used: when(key.last_used_at),
            expires: when(key.expires_at),
            id: key.id,
            name: key.name,
            prefix: key.prefix,
            last_four: key.last_four,
        })
        .collect();
    let key_targets = api
        .key_resources(&principal, 100)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(resource, held)| KeyTarget {
            identifier: resource.identifier,
            name: resource.name,
            scopes: held.join(" "),
        })
        .collect();
    let clients = api
        .list_clients(&principal, first_page())
        .await
        .map(|p| p.items)
        .unwrap_or_default()
        .into_iter()
        .map(|client| ClientCard {
            kind: if client.is_public() {
                "public client"
            } else {
                "confidential client"
            },
            confidential: !client.is_public(),
            grants: client
                .grant_types
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            redirect_uris: client.redirect_uris.join("\n"),
            id: client.id,
            name: client.name,
        })
        .collect();
    let apps = api
        .authorized_apps(&user.id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(consent, client)| AppRow {
            name: client.map_or_else(|| consent.client_id.clone(), |c| c.name),
            scopes: consent.scopes.to_string(),
            since: format_rfc3339(consent.granted_at),
            client_id: consent.client_id,
        })
        .collect();
    render(
        StatusCode::OK,
        &PortalPage {
            chrome: Chrome::signed_in("Developer portal", user, session, false),
            admin: user.role == Role::Admin,
            flash,
            csrf: &session.csrf_token,
            keys,
            key_targets,
            clients,
            apps,
        },
    )
}

/// `GET /portal`
#[utoipa::path(
    get,
    path = "/portal",
    tag = "browser",
    operation_id = "portal",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    responses(
        (status = 200, description = "The developer portal.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/login?return_to=/portal`"))),
    )
)]
pub async fn portal(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match current_session(&state.api, &headers).await {
        Some((session, user)) => portal_page(&state.api, &user, &session, None).await,
        None => Redirect::to("/login?return_to=/portal").into_response(),
    }
}

/// Names separated by spaces, commas or new lines.
pub(super) fn names(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The page an administrators' page shows to anyone else: as for a page that does not exist.
pub(super) fn not_found() -> Response {
    super::error::error_page(StatusCode::NOT_FOUND, "page not found")
}

/// The administrator behind a form of an administrators' page (CSRF checked), with admin
/// powers over resources and webhooks; a member gets the not-found page.
pub(super) async fn admin(
    api: &NetApi,
    headers: &HeaderMap,
    csrf_token: &str,
) -> Result<(Member, Principal), Response> {
    let me = member(api, headers, csrf_token).await?;
    match NetApi::session_resource_admin(&me.user) {
        Some(admin) => Ok((me, admin)),
        None => Err(not_found()),
    }
}

/// The signed-in user behind a portal form whose CSRF token matches the session.
pub(super) struct Member {
    pub(super) session: Session,
    pub(super) user: User,
    pub(super) principal: Principal,
}

pub(super) async fn member(
    api: &NetApi,
    headers: &HeaderMap,
    csrf_token: &str,
) -> Result<Member, Response> {
    let Some((session, user)) = current_session(api, headers).await else {
        return Err(Redirect::to("/login?return_to=/portal").into_response());
    };
    if !NetApi::csrf_matches(&session, csrf_token) {
        return Err(PageError::Forged(
            "The form expired or did not come from this site; reload the portal and try again.",
        )
        .into_response());
    }
    let principal = NetApi::session_principal(&user);
    Ok(Member {
        session,
        user,
        principal,
    })
}

/// The portal with an action's outcome; failures of the service itself are error pages.
async fn outcome_page(api: &NetApi, member: &Member, outcome: Result<Flash, Error>) -> Response {
    match flash_for(outcome) {
        Ok(flash) => portal_page(api, &member.user, &member.session, Some(flash)).await,
        Err(page) => page.into_response(),
    }
}

/// The flash telling an action's outcome, or the error page of a failure of the service.
pub(super) fn flash_for(outcome: Result<Flash, Error>) -> Result<Flash, PageError> {
    Ok(match outcome {
        Ok(flash) => flash,
        // Storage and server failures (and their operator-only text) are error pages, never
        // a message on a 200 page; each kind is named so that a new one is a decision.
        Err(
            err @ (Error::Unavailable
            | Error::Internal(_)
            | Error::Misconfigured(_)
            | Error::Busy { .. }
            | Error::RateLimited { .. }),
        ) => {
            return Err(PageError::Core(err));
        }
        Err(Error::InvalidArgument { field, message }) => Flash::Error(
            format!("{} {message}.", field.unwrap_or_default())
                .trim()
                .to_owned(),
        ),
        Err(
            refused @ (Error::Unauthenticated(_)
            | Error::PermissionDenied { .. }
            | Error::InsufficientScope { .. }
            | Error::NotFound(_)
            | Error::AlreadyExists(_)
            | Error::EmailOff
            | Error::EmailNotVerified
            | Error::RequestRateLimited(_)),
        ) => Flash::Error(refused.to_string()),
    })
}

pub(super) fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The new-key form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct KeyForm {
    csrf_token: String,
    #[serde(default)]
    name: String,
    /// Days from now, or empty for a key that does not expire.
    #[serde(default)]
    expires_in_days: String,
    /// The identifier of the resource the key is for; empty for Net API's own.
    #[serde(default)]
    resource: String,
    /// Scope names separated by spaces; empty for every scope held there.
    #[serde(default)]
    scopes: String,
}

/// `POST /portal/keys`: creates an API key and shows it once.
#[utoipa::path(
    post,
    path = "/portal/keys",
    tag = "browser",
    operation_id = "portalCreateKey",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = KeyForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The portal showing the new key once, or what was wrong with the form.", body = String, content_type = "text/html"),
        super::error::PortalFormErrors,
    )
)]
pub async fn create_key(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<KeyForm>,
) -> Response {
    let me = match member(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let outcome = {
        let expires_at = match form.expires_in_days.trim() {
            "" => Ok(None),
            days => days
                .parse::<i64>()
                .ok()
                .filter(|d| (1..=3650).contains(d))
                .map(|d| Some(state.api.now() + d * 86_400))
                .ok_or_else(|| {
                    Error::invalid("expires_in_days", "must be a number of days from 1 to 3650")
                }),
        };
        match expires_at {
            Ok(expires_at) => state
                .api
                .create_api_key(
                    &me.principal,
                    NewApiKey {
                        name: form.name,
                        expires_at,
                        resource: Some(form.resource.trim())
                            .filter(|r| !r.is_empty())
                            .map(str::to_owned),
                        scopes: Some(names(&form.scopes)).filter(|n| !n.is_empty()),
                        ..NewApiKey::default()
                    },
                    Some(ip.as_str()),
                )
                .await
                .map(|(key, secret)| Flash::Secret {
                    title: format!("Your new API key \"{}\"", key.name),
                    value: secret.expose().to_owned(),
                }),
            Err(err) => Err(err),
        }
    };
    outcome_page(&state.api, &me, outcome).await
}

/// `POST /portal/keys/{id}/rotate`: a new value for a key; the old one stops working at once.
#[utoipa::path(
    post,
    path = "/portal/keys/{id}/rotate",
    tag = "browser",
    operation_id = "portalRotateKey",
    params(
        ("id" = String, Path, description = "The API key's id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The portal showing the new value once, or why it could not be rotated.", body = String, content_type = "text/html"),
        super::error::PortalFormErrors,
    )
)]
pub async fn rotate_key(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let me = match member(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let outcome = {
        state
            .api
            .rotate_api_key(&me.principal, &id, Some(0), Some(ip.as_str()))
            .await
            .map(|(key, secret)| Flash::Secret {
                title: format!(
                    "The new value of \"{}\" (the old one no longer works)",
                    key.name
                ),
                value: secret.expose().to_owned(),
            })
    };
    outcome_page(&state.api, &me, outcome).await
}

#[derive(Template)]
#[template(path = "key_usage.html")]
struct KeyUsagePage<'a> {
    chrome: Chrome<'a>,
    name: String,
    hours_total: u64,
    hours_summary: String,
    hours_chart: String,
    days_total: u64,
    days_summary: String,
    days_chart: String,
}

/// The total and a "valid: 3, expired: 1" summary of a usage answer.
fn summary(usage: &KeyUsage) -> (u64, String) {
    let mut sums = [0u64; UsageOutcome::ALL.len()];
    for bucket in &usage.buckets {
        for (sum, count) in sums.iter_mut().zip(bucket.counts) {
            *sum += count;
        }
    }
    let parts: Vec<String> = UsageOutcome::ALL
        .iter()
        .zip(sums)
        .filter(|(_, n)| *n > 0)
        .map(|(outcome, n)| format!("{}: {n}", outcome.as_str()))
        .collect();
    (sums.iter().sum(), parts.join(", "))
}

/// `GET /portal/keys/{id}/usage`
#[utoipa::path(
    get,
    path = "/portal/keys/{id}/usage",
    tag = "browser",
    operation_id = "portalKeyUsage",
    params(
        ("id" = String, Path, description = "The API key's id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    responses(
        (status = 200, description = "Charts of the key's checks by hour and by day (SVG drawn by the server).", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/login?return_to=/portal`"))),
        (status = 404, description = "No such key of the user's.", body = String, content_type = "text/html"),
    )
)]
pub async fn key_usage(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some((session, user)) = current_session(&state.api, &headers).await else {
        return Redirect::to("/login?return_to=/portal").into_response();
    };
    let principal = NetApi::session_principal(&user);
    let ask = |granularity| UsageQuery {
        from: None,
        to: None,
        granularity: Some(granularity),
    };
    let (hours, days) = match async {
        let hours = state
            .api
            .api_key_usage(&principal, &id, ask(Granularity::Hour))
            .await?;
        let days = state
            .api
            .api_key_usage(&principal, &id, ask(Granularity::Day))
            .await?;
        Ok::<_, Error>((hours, days))
    }
    .await
    {
        Ok(found) => found,
        Err(Error::NotFound(what)) => {
            return super::error::error_page(StatusCode::NOT_FOUND, &format!("{what} not found"));
        }
        Err(err) => return PageError::Core(err).into_response(),
    };
    let (hours_total, hours_summary) = summary(&hours);
    let (days_total, days_summary) = summary(&days);
    render(
        StatusCode::OK,
        &KeyUsagePage {
            chrome: Chrome::signed_in("Key usage", &user, &session, false),
            name: hours.key_name.clone(),
            hours_total,
            hours_summary,
            hours_chart: super::usage_chart::render(&hours.buckets, Granularity::Hour),
            days_total,
            days_summary,
            days_chart: super::usage_chart::render(&days.buckets, Granularity::Day),
        },
    )
}

/// `POST /portal/keys/{id}/revoke`
#[utoipa::path(
    post,
    path = "/portal/keys/{id}/revoke",
    tag = "browser",
    operation_id = "portalRevokeKey",
    params(
        ("id" = String, Path, description = "The API key's id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The portal with the outcome.", body = String, content_type = "text/html"),
        super::error::PortalFormErrors,
    )
)]
pub async fn revoke_key(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let me = match member(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let outcome = {
        state
            .api
            .revoke_api_key(&me.principal, &id, Some(ip.as_str()))
            .await
            .map(|()| Flash::Notice("The key was revoked; it no longer works.".to_owned()))
    };
    outcome_page(&state.api, &me, outcome).await
}

/// The new-application form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ClientForm {
    csrf_token: String,
    #[serde(default)]
    name: String,
    /// `web` (the default), `native` or `service`.
    #[serde(default)]
    kind: String,
    /// One per line.
    #[serde(default)]
    redirect_uris: String,
}

/// `POST /portal/clients`: registers an OAuth application and shows its secret once.
#[utoipa::path(
    post,
    path = "/portal/clients",
    tag = "browser",
    operation_id = "portalCreateClient",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = ClientForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The portal showing the client secret once, or what was wrong with the form.", body = String, content_type = "text/html"),
        super::error::PortalFormErrors,
    )
)]
pub async fn create_client(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<ClientForm>,
) -> Response {
    let me = match member(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let outcome = {
        let web_grants = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
        let (grants, method) = match form.kind.as_str() {
            "native" => (web_grants, ClientAuthMethod::None),
            "service" => (
                vec![GrantType::ClientCredentials],
                ClientAuthMethod::SecretBasic,
            ),
            _ => (web_grants, ClientAuthMethod::SecretBasic),
        };
        state
            .api
            .create_client(
                &me.principal,
                NewClient {
                    name: form.name,
                    redirect_uris: lines(&form.redirect_uris),
                    grant_types: Some(grants),
                    scope: Some(me.principal.scopes.without(Scope::Admin).to_string()),
                    auth_method: Some(method),
                    rate_limit: None,
                    trusted: false,
                    resources: None,
                },
                Some(ip.as_str()),
            )
            .await
            .map(|(client, secret)| match secret {
                Some(secret) => Flash::Secret {
                    title: format!(
                        "\"{}\" is registered as {}. Its client secret",
                        client.name, client.id
                    ),
                    value: secret.expose().to_owned(),
                },
                None => Flash::Notice(format!(
                    "\"{}\" is registered as {} (a public client: no secret).",
                    client.name, client.id
                )),
            })
    };
    outcome_page(&state.api, &me, outcome).await
}

/// `POST /portal/clients/{id}/rotate-secret`
#[utoipa::path(
    post,
    path = "/portal/clients/{id}/rotate-secret",
    tag = "browser",
    operation_id = "portalRotateClientSecret",
    params(
        ("id" = String, Path, description = "The application's client_id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The portal showing the new secret once, or why it could not be rotated.", body = String, content_type = "text/html"),
        super::error::PortalFormErrors,
    )
)]
pub async fn rotate_client_secret(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let me = match member(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let outcome = {
        state
            .api
            .rotate_client_secret(&me.principal, &id, Some(ip.as_str()))
            .await
            .map(|(client, secret)| Flash::Secret {
                title: format!(
                    "The new secret of \"{}\" (the old one no longer works)",
                    client.name
                ),
                value: secret.expose().to_owned(),
            })
    };
    outcome_page(&state.api, &me, outcome).await
}

/// `POST /portal/clients/{id}/delete`: deletes the application and revokes its tokens.
#[utoipa::path(
    post,
    path = "/portal/clients/{id}/delete",
    tag = "browser",
    operation_id = "portalDeleteClient",
    params(
        ("id" = String, Path, description = "The application's client_id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The portal with the outcome.", body = String, content_type = "text/html"),
        super::error::PortalFormErrors,
    )
)]
pub async fn delete_client(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let me = match member(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let outcome = {
        state
            .api
            .delete_client(&me.principal, &id, Some(ip.as_str()))
            .await
            .map(|()| {
                Flash::Notice("The application was deleted and its tokens revoked.".to_owned())
            })
    };
    outcome_page(&state.api, &me, outcome).await
}

/// The redirect URIs form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RedirectUrisForm {
    csrf_token: String,
    /// One per line; they replace the application's.
    #[serde(default)]
    redirect_uris: String,
}

/// `POST /portal/clients/{id}/redirect-uris`: replaces the application's redirect URIs.
#[utoipa::path(
    post,
    path = "/portal/clients/{id}/redirect-uris",
    tag = "browser",
    operation_id = "portalSetRedirectUris",
    params(
        ("id" = String, Path, description = "The application's client_id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = RedirectUrisForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The portal with the outcome.", body = String, content_type = "text/html"),
        super::error::PortalFormErrors,
    )
)]
pub async fn set_redirect_uris(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RedirectUrisForm>,
) -> Response {
    let me = match member(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let outcome = {
        state
            .api
            .update_client(
                &me.principal,
                &id,
                ClientUpdate {
                    redirect_uris: Some(lines(&form.redirect_uris)),
                    ..ClientUpdate::default()
                },
                Some(ip.as_str()),
            )
            .await
            .map(|_| Flash::Notice("Redirect URIs saved.".to_owned()))
    };
    outcome_page(&state.api, &me, outcome).await
}

/// `POST /portal/authorizations/{client_id}/withdraw`: withdraws the user's consent.
#[utoipa::path(
    post,
    path = "/portal/authorizations/{client_id}/withdraw",
    tag = "browser",
    operation_id = "portalWithdrawAuthorization",
    params(
        ("client_id" = String, Path, description = "The authorized application's client_id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The portal with the outcome.", body = String, content_type = "text/html"),
        super::error::PortalFormErrors,
    )
)]
pub async fn withdraw_authorization(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(client_id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let me = match member(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let outcome = {
        state
            .api
            .withdraw_consent(&me.user.id, &client_id, Some(ip.as_str()))
            .await
            .map(|()| {
                Flash::Notice(
                    "Access withdrawn; the application's tokens no longer work.".to_owned(),
                )
            })
    };
    outcome_page(&state.api, &me, outcome).await
}
