//! The developer portal: API keys, OAuth applications and the applications a user authorized.
//! Every action is its own route; each checks the session and its CSRF token, acts, and
//! redirects (303) to the portal, which shows the outcome once (redirect-after-POST: a
//! refresh repeats nothing). Actions that cannot be undone (revoke, rotate, delete) first
//! show a confirmation page; their form says `confirm=yes`.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use netapi_core::model::{ClientAuthMethod, GrantType, Session, User};
use netapi_core::service::{
    ClientUpdate, KeyUsage, NewApiKey, NewClient, PageRequest, Principal, UsageQuery,
};
use netapi_core::usage::{Granularity, UsageOutcome};
use netapi_core::{Error, NetApi, Role, Scope};
use serde::Deserialize;

use super::error::PageError;
use super::flash;
use super::login::CsrfForm;
use super::page::{Chrome, human_time, render};
use super::session::current_session;
use crate::extract::ClientIp;
use crate::state::AppState;

/// A message shown once at the top of a portal page. (No `Debug`: it may carry a secret.)
#[derive(Clone, serde::Serialize, serde::Deserialize)]
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
    /// The scopes the user holds there.
    scopes: Vec<String>,
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
    /// Only clients of the authorization-code grant redirect anywhere.
    redirects: bool,
    /// One per line, as the form takes them.
    post_logout_redirect_uris: String,
    /// Empty for none.
    backchannel_logout_uri: String,
    /// Resource identifiers, one per line (confidential clients only).
    token_exchange_resources: String,
    dpop_bound_access_tokens: bool,
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
    /// The user's address.
    email: &'a str,
    /// The address is not verified yet: the page offers to send the link again.
    unverified: bool,
    /// Whether a mail server is set up (else the page says links cannot be sent).
    email_on: bool,
    flash: Option<Flash>,
    csrf: &'a str,
    keys: Vec<KeyRow>,
    /// The Net API scopes the user holds, each a checkbox of the key form.
    own_scopes: Vec<&'static str>,
    /// Besides Net API's own.
    key_targets: Vec<KeyTarget>,
    clients: Vec<ClientCard>,
    apps: Vec<AppRow>,
}

fn when(ts: Option<i64>) -> String {
    ts.map_or_else(|| "never".to_owned(), human_time)
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
            created: human_time(key.created_at),
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
            scopes: held,
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
            redirects: client.grant_types.contains(&GrantType::AuthorizationCode),
            grants: client
                .grant_types
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            redirect_uris: client.redirect_uris.join("\n"),
            post_logout_redirect_uris: client.logout.post_logout_redirect_uris.join("\n"),
            backchannel_logout_uri: client.logout.backchannel_logout_uri.unwrap_or_default(),
            token_exchange_resources: client.token_exchange_resources.join("\n"),
            dpop_bound_access_tokens: client.dpop_bound_access_tokens,
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
            since: human_time(consent.granted_at),
            client_id: consent.client_id,
        })
        .collect();
    render(
        StatusCode::OK,
        &PortalPage {
            chrome: Chrome::signed_in("Developer portal", user, session, false),
            admin: user.role == Role::Admin,
            email: &user.email,
            unverified: !user.email_verified,
            email_on: api.email_enabled(),
            flash,
            csrf: &session.csrf_token,
            keys,
            own_scopes: principal.scopes.names(),
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
        Some((session, user)) => {
            let api = &state.api;
            flash::showing(api, &headers, &session, PORTAL, |flash| {
                portal_page(api, &user, &session, flash)
            })
            .await
        }
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

/// The portal's name for its one-time messages.
const PORTAL: &str = "portal";

/// Answers a portal form: leaves the outcome for the portal and redirects there (303);
/// failures of the service itself are error pages.
fn done(state: &AppState, member: &Member, outcome: Result<Flash, Error>) -> Response {
    match flash_for(outcome) {
        Ok(flash) => flash::redirect_with(&state.api, &member.session, PORTAL, "/portal", flash),
        Err(page) => page.into_response(),
    }
}

/// The label a form shows for a field that core names (`expires_in_days`), so that a
/// message speaks of what the person sees.
fn field_label(field: &str) -> String {
    match field {
        "name" => "Name".to_owned(),
        "expires_in_days" => "Expires after (days)".to_owned(),
        "expires_at" => "Expiry".to_owned(),
        "scopes" | "scope" => "Scopes".to_owned(),
        "resource" => "API".to_owned(),
        "redirect_uris" => "Redirect URIs".to_owned(),
        "grace_period_seconds" => "Keep the old value working".to_owned(),
        "client_name" => "Application name".to_owned(),
        "post_logout_redirect_uris" => "Sign-out redirect URIs".to_owned(),
        "backchannel_logout_uri" => "Back-channel logout URI".to_owned(),
        "token_exchange_resources" => "Token exchange APIs".to_owned(),
        other => {
            let words = other.replace('_', " ");
            let mut chars = words.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        }
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
        Err(Error::InvalidArgument { field, message }) => Flash::Error(match field {
            Some(field) => format!("{}: {message}.", field_label(&field)),
            None => format!("{message}."),
        }),
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

/// The new-key form. `scope` is repeated, one per ticked box: a Net API scope (`keys:read`),
/// or a resource's identifier and one of its scopes, separated by a space.
#[derive(Debug, Default, utoipa::ToSchema)]
pub struct KeyForm {
    csrf_token: String,
    name: String,
    /// Days from now, or empty for a key that does not expire.
    expires_in_days: String,
    /// The ticked scopes; all of one API. None ticked is answered with a message asking for
    /// one, so the field may be absent.
    #[schema(required = false)]
    scope: Vec<String>,
}

impl KeyForm {
    /// The form from its fields in the order they came (repeated `scope` included); a field
    /// left out counts as empty, and is then refused with a message like an empty one.
    fn from_fields(fields: Vec<(String, String)>) -> Self {
        let mut form = Self::default();
        for (name, value) in fields {
            match name.as_str() {
                "csrf_token" => form.csrf_token = value,
                "name" => form.name = value,
                "expires_in_days" => form.expires_in_days = value,
                "scope" => form.scope.push(value),
                _ => {}
            }
        }
        form
    }

    /// The expiry the form asks for.
    fn expires_at(&self, now: i64) -> Result<Option<i64>, Error> {
        match self.expires_in_days.trim() {
            "" => Ok(None),
            days => days
                .parse::<i64>()
                .ok()
                .filter(|d| (1..=3650).contains(d))
                .map(|d| Some(now + d * 86_400))
                .ok_or_else(|| {
                    Error::invalid("expires_in_days", "must be a number of days from 1 to 3650")
                }),
        }
    }

    /// The API the ticked scopes are of (`None`: Net API's own) and their names.
    fn target(&self) -> Result<(Option<String>, Vec<String>), Error> {
        let mut target: Option<Option<&str>> = None;
        let mut scopes: Vec<String> = Vec::new();
        for ticked in &self.scope {
            let (api, scope) = match ticked.trim().split_once(' ') {
                Some((api, scope)) => (Some(api.trim()), scope.trim()),
                None => (None, ticked.trim()),
            };
            if scope.is_empty() {
                continue;
            }
            match target {
                Some(chosen) if chosen != api => {
                    return Err(Error::invalid(
                        "scopes",
                        "a key is for one API: tick scopes of one API only",
                    ));
                }
                _ => target = Some(api),
            }
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
        match target {
            Some(api) => Ok((api.map(str::to_owned), scopes)),
            None => Err(Error::invalid(
                "scopes",
                "tick at least one scope (only those the key needs)",
            )),
        }
    }
}

/// `POST /portal/keys`: creates an API key with the ticked scopes and shows it once.
#[utoipa::path(
    post,
    path = "/portal/keys",
    tag = "browser",
    operation_id = "portalCreateKey",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = KeyForm, content_type = "application/x-www-form-urlencoded"),
    responses(super::error::PortalFormErrors, PortalOutcome)
)]
pub async fn create_key(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let form = KeyForm::from_fields(fields);
    let me = match member(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let outcome = async {
        let expires_at = form.expires_at(state.api.now())?;
        let (resource, scopes) = form.target()?;
        let (key, secret) = state
            .api
            .create_api_key(
                &me.principal,
                NewApiKey {
                    name: form.name,
                    expires_at,
                    resource,
                    scopes: Some(scopes),
                    ..NewApiKey::default()
                },
                Some(ip.as_str()),
            )
            .await?;
        Ok(Flash::Secret {
            title: format!("Your new API key \"{}\"", key.name),
            value: secret.expose().to_owned(),
        })
    }
    .await;
    done(&state, &me, outcome)
}

/// The portal's answer to a form it accepted.
pub struct PortalOutcome;

impl utoipa::IntoResponses for PortalOutcome {
    fn responses() -> std::collections::BTreeMap<
        String,
        utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
    > {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::response::ResponseBuilder;
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        std::collections::BTreeMap::from([(
            "303".to_owned(),
            ResponseBuilder::new()
                .description(
                    "Done, or refused with a reason: to the portal, which shows the outcome (a \
                     new secret included) once. Not signed in: to the sign-in page. Without \
                     `confirm=yes`, where an action asks for it: to its confirmation page.",
                )
                .header(
                    "Location",
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::String))
                        .description(Some(
                            "`/portal`, `/login?return_to=/portal` or the confirmation page",
                        ))
                        .build(),
                )
                .build()
                .into(),
        )])
    }
}

/// A confirmation: what an action will do, and the form that does it.
#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage<'a> {
    chrome: Chrome<'a>,
    heading: &'static str,
    question: String,
    action: String,
    button: &'static str,
    /// Offer a grace period for the old value (key rotation).
    grace: bool,
    csrf: &'a str,
}

/// What a confirmation page asks about.
struct Confirm {
    heading: &'static str,
    question: String,
    button: &'static str,
    grace: bool,
}

/// An id from a path, if it can be put back into a URL as it is (the ids Net API makes can).
fn plain_id(id: &str) -> Option<&str> {
    (!id.is_empty()
        && id.len() <= 200
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    .then_some(id)
}

/// The confirmation page of the action at `action`, for what `ask` finds; signed out, the
/// sign-in page; an unknown object (or one of someone else's), the not-found page.
async fn confirmation(
    state: &AppState,
    headers: &HeaderMap,
    action: String,
    ask: impl AsyncFnOnce(&Principal) -> Result<Confirm, Error>,
) -> Response {
    let Some((session, user)) = current_session(&state.api, headers).await else {
        return Redirect::to("/login?return_to=/portal").into_response();
    };
    let principal = NetApi::session_principal(&user);
    match ask(&principal).await {
        Ok(confirm) => render(
            StatusCode::OK,
            &ConfirmPage {
                chrome: Chrome::signed_in(confirm.heading, &user, &session, true),
                heading: confirm.heading,
                question: confirm.question,
                action,
                button: confirm.button,
                grace: confirm.grace,
                csrf: &session.csrf_token,
            },
        ),
        Err(Error::NotFound(what)) => {
            super::error::error_page(StatusCode::NOT_FOUND, &format!("{what} not found"))
        }
        Err(err) => PageError::Core(err).into_response(),
    }
}

/// The form of an action that asks for confirmation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ConfirmedForm {
    csrf_token: String,
    /// `yes` once the person confirmed; otherwise the answer is the confirmation page.
    #[serde(default)]
    confirm: String,
}

/// The key-rotation form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RotateKeyForm {
    csrf_token: String,
    /// `yes` once the person confirmed; otherwise the answer is the confirmation page.
    #[serde(default)]
    confirm: String,
    /// How long the old value keeps working: 0 (the default), 3600, 86400 or 604800 are
    /// offered; anything up to 30 days is accepted, as by `POST /v1/api-keys/{id}/rotate`.
    #[serde(default)]
    grace_period_seconds: String,
}

/// The unconfirmed form of the action at `action`: to its confirmation page, nothing done.
pub(super) fn unconfirmed(confirm: &str, action: &str) -> Option<Response> {
    (confirm != "yes").then(|| Redirect::to(action).into_response())
}

/// `GET /portal/keys/{id}/rotate`: asks to confirm, and how long the old value may last.
#[utoipa::path(
    get,
    path = "/portal/keys/{id}/rotate",
    tag = "browser",
    operation_id = "portalConfirmRotateKey",
    params(
        ("id" = String, Path, description = "The API key's id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    responses(
        (status = 200, description = "The confirmation, with the choice of a grace period.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/login?return_to=/portal`"))),
        (status = 404, description = "No such key of the user's.", body = String, content_type = "text/html"),
    )
)]
pub async fn confirm_rotate_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = plain_id(&id) else {
        return not_found();
    };
    confirmation(
        &state,
        &headers,
        format!("/portal/keys/{id}/rotate"),
        async |principal| {
            let key = state.api.get_api_key(principal, id).await?;
            Ok(Confirm {
                heading: "Rotate the API key",
                question: format!(
                    "\"{}\" ({}…{}) gets a new value, shown once. Until when should the old \
                     value keep working, so that whatever uses it can move to the new one?",
                    key.name, key.prefix, key.last_four
                ),
                button: "Rotate",
                grace: true,
            })
        },
    )
    .await
}

/// `POST /portal/keys/{id}/rotate`: a new value for a key; the old one keeps working for the
/// chosen grace period (none by default).
#[utoipa::path(
    post,
    path = "/portal/keys/{id}/rotate",
    tag = "browser",
    operation_id = "portalRotateKey",
    params(
        ("id" = String, Path, description = "The API key's id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = RotateKeyForm, content_type = "application/x-www-form-urlencoded"),
    responses(super::error::PortalFormErrors, PortalOutcome)
)]
pub async fn rotate_key(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RotateKeyForm>,
) -> Response {
    let me = match member(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let Some(id) = plain_id(&id) else {
        return not_found();
    };
    if let Some(ask) = unconfirmed(&form.confirm, &format!("/portal/keys/{id}/rotate")) {
        return ask;
    }
    let outcome = async {
        let grace = match form.grace_period_seconds.trim() {
            "" => 0,
            seconds => seconds.parse::<i64>().map_err(|_| {
                Error::invalid("grace_period_seconds", "must be one of the periods offered")
            })?,
        };
        let (key, secret) = state
            .api
            .rotate_api_key(&me.principal, id, Some(grace), Some(ip.as_str()))
            .await?;
        let old = if grace == 0 {
            "the old one no longer works".to_owned()
        } else {
            format!(
                "the old one works until {}",
                human_time(state.api.now() + grace)
            )
        };
        Ok(Flash::Secret {
            title: format!("The new value of \"{}\" ({old})", key.name),
            value: secret.expose().to_owned(),
        })
    }
    .await;
    done(&state, &me, outcome)
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

/// `GET /portal/keys/{id}/revoke`: asks to confirm.
#[utoipa::path(
    get,
    path = "/portal/keys/{id}/revoke",
    tag = "browser",
    operation_id = "portalConfirmRevokeKey",
    params(
        ("id" = String, Path, description = "The API key's id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    responses(
        (status = 200, description = "The confirmation.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/login?return_to=/portal`"))),
        (status = 404, description = "No such key of the user's.", body = String, content_type = "text/html"),
    )
)]
pub async fn confirm_revoke_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = plain_id(&id) else {
        return not_found();
    };
    confirmation(
        &state,
        &headers,
        format!("/portal/keys/{id}/revoke"),
        async |principal| {
            let key = state.api.get_api_key(principal, id).await?;
            Ok(Confirm {
                heading: "Revoke the API key",
                question: format!(
                    "\"{}\" ({}…{}) will stop working at once, for good. Whatever uses it will \
                     be refused.",
                    key.name, key.prefix, key.last_four
                ),
                button: "Revoke",
                grace: false,
            })
        },
    )
    .await
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
    request_body(content = ConfirmedForm, content_type = "application/x-www-form-urlencoded"),
    responses(super::error::PortalFormErrors, PortalOutcome)
)]
pub async fn revoke_key(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ConfirmedForm>,
) -> Response {
    let me = match member(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let Some(id) = plain_id(&id) else {
        return not_found();
    };
    if let Some(ask) = unconfirmed(&form.confirm, &format!("/portal/keys/{id}/revoke")) {
        return ask;
    }
    let outcome = state
        .api
        .revoke_api_key(&me.principal, id, Some(ip.as_str()))
        .await
        .map(|()| Flash::Notice("The key was revoked; it no longer works.".to_owned()));
    done(&state, &me, outcome)
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
    /// One per line; not for a service (client credentials), which redirects nowhere.
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
    responses(super::error::PortalFormErrors, PortalOutcome)
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
    let web_grants = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    let (grants, method, redirect_uris) = match form.kind.as_str() {
        "native" => (
            web_grants,
            ClientAuthMethod::None,
            lines(&form.redirect_uris),
        ),
        // The page hides the box for a service; what a browser sent from it anyway is not
        // used (client credentials redirect nowhere).
        "service" => (
            vec![GrantType::ClientCredentials],
            ClientAuthMethod::SecretBasic,
            Vec::new(),
        ),
        _ => (
            web_grants,
            ClientAuthMethod::SecretBasic,
            lines(&form.redirect_uris),
        ),
    };
    let outcome = state
        .api
        .create_client(
            &me.principal,
            NewClient {
                name: form.name,
                redirect_uris,
                grant_types: Some(grants),
                scope: Some(me.principal.scopes.without(Scope::Admin).to_string()),
                auth_method: Some(method),
                rate_limit: None,
                trusted: false,
                resources: None,
                id_token_signed_response_alg: None,
                token_exchange_resources: None,
                logout: Default::default(),
                jwks: None,
                jwks_uri: None,
                require_par: false,
                dpop_bound_access_tokens: false,
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
        });
    done(&state, &me, outcome)
}

/// `GET /portal/clients/{id}/rotate-secret`: asks to confirm.
#[utoipa::path(
    get,
    path = "/portal/clients/{id}/rotate-secret",
    tag = "browser",
    operation_id = "portalConfirmRotateClientSecret",
    params(
        ("id" = String, Path, description = "The application's client_id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    responses(
        (status = 200, description = "The confirmation.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/login?return_to=/portal`"))),
        (status = 404, description = "No such application of the user's.", body = String, content_type = "text/html"),
    )
)]
pub async fn confirm_rotate_client_secret(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = plain_id(&id) else {
        return not_found();
    };
    confirmation(
        &state,
        &headers,
        format!("/portal/clients/{id}/rotate-secret"),
        async |principal| {
            let client = state.api.get_client(principal, id).await?;
            Ok(Confirm {
                heading: "Rotate the client secret",
                question: format!(
                    "\"{}\" ({}) gets a new client secret, shown once; the old one stops \
                     working at once.",
                    client.name, client.id
                ),
                button: "Rotate secret",
                grace: false,
            })
        },
    )
    .await
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
    request_body(content = ConfirmedForm, content_type = "application/x-www-form-urlencoded"),
    responses(super::error::PortalFormErrors, PortalOutcome)
)]
pub async fn rotate_client_secret(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ConfirmedForm>,
) -> Response {
    let me = match member(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let Some(id) = plain_id(&id) else {
        return not_found();
    };
    if let Some(ask) = unconfirmed(
        &form.confirm,
        &format!("/portal/clients/{id}/rotate-secret"),
    ) {
        return ask;
    }
    let outcome = state
        .api
        .rotate_client_secret(&me.principal, id, Some(ip.as_str()))
        .await
        .map(|(client, secret)| Flash::Secret {
            title: format!(
                "The new secret of \"{}\" (the old one no longer works)",
                client.name
            ),
            value: secret.expose().to_owned(),
        });
    done(&state, &me, outcome)
}

/// `GET /portal/clients/{id}/delete`: asks to confirm.
#[utoipa::path(
    get,
    path = "/portal/clients/{id}/delete",
    tag = "browser",
    operation_id = "portalConfirmDeleteClient",
    params(
        ("id" = String, Path, description = "The application's client_id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    responses(
        (status = 200, description = "The confirmation.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/login?return_to=/portal`"))),
        (status = 404, description = "No such application of the user's.", body = String, content_type = "text/html"),
    )
)]
pub async fn confirm_delete_client(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = plain_id(&id) else {
        return not_found();
    };
    confirmation(
        &state,
        &headers,
        format!("/portal/clients/{id}/delete"),
        async |principal| {
            let client = state.api.get_client(principal, id).await?;
            Ok(Confirm {
                heading: "Delete the application",
                question: format!(
                    "\"{}\" ({}) will be deleted and every token it holds revoked, for good.",
                    client.name, client.id
                ),
                button: "Delete application",
                grace: false,
            })
        },
    )
    .await
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
    request_body(content = ConfirmedForm, content_type = "application/x-www-form-urlencoded"),
    responses(super::error::PortalFormErrors, PortalOutcome)
)]
pub async fn delete_client(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ConfirmedForm>,
) -> Response {
    let me = match member(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let Some(id) = plain_id(&id) else {
        return not_found();
    };
    if let Some(ask) = unconfirmed(&form.confirm, &format!("/portal/clients/{id}/delete")) {
        return ask;
    }
    let outcome = state
        .api
        .delete_client(&me.principal, id, Some(ip.as_str()))
        .await
        .map(|()| Flash::Notice("The application was deleted and its tokens revoked.".to_owned()));
    done(&state, &me, outcome)
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
    responses(super::error::PortalFormErrors, PortalOutcome)
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
    done(&state, &me, outcome)
}

/// The application settings form: logout, token exchange and DPoP.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ClientSettingsForm {
    csrf_token: String,
    /// One per line; they replace the application's.
    #[serde(default)]
    post_logout_redirect_uris: String,
    /// Empty for none.
    #[serde(default)]
    backchannel_logout_uri: String,
    /// Resource identifiers, one per line (confidential applications only); each must be
    /// Net API's own or a resource the user holds a scope on, as at `/v1/oauth-clients`.
    #[serde(default)]
    token_exchange_resources: String,
    /// `on` when ticked (a checkbox sends nothing when it is not).
    #[serde(default)]
    dpop_bound_access_tokens: Option<String>,
}

/// `POST /portal/clients/{id}/settings`: the application's logout URIs, token exchange
/// resources and DPoP requirement, with the rules of `PATCH /v1/oauth-clients/{id}`. Only
/// what differs from the stored application is sent as a change (so that an unchanged list
/// is not checked again); a refusal changes nothing.
#[utoipa::path(
    post,
    path = "/portal/clients/{id}/settings",
    tag = "browser",
    operation_id = "portalSetClientSettings",
    params(
        ("id" = String, Path, description = "The application's client_id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = ClientSettingsForm, content_type = "application/x-www-form-urlencoded"),
    responses(super::error::PortalFormErrors, PortalOutcome)
)]
pub async fn set_client_settings(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ClientSettingsForm>,
) -> Response {
    let me = match member(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let outcome = async {
        let client = state.api.get_client(&me.principal, &id).await?;
        let post_logout = lines(&form.post_logout_redirect_uris);
        let backchannel = Some(form.backchannel_logout_uri.trim())
            .filter(|uri| !uri.is_empty())
            .map(str::to_owned);
        let exchange = lines(&form.token_exchange_resources);
        let dpop = form.dpop_bound_access_tokens.is_some();
        let update = ClientUpdate {
            post_logout_redirect_uris: (post_logout != client.logout.post_logout_redirect_uris)
                .then_some(post_logout),
            backchannel_logout_uri: (backchannel != client.logout.backchannel_logout_uri)
                .then_some(backchannel),
            token_exchange_resources: (exchange != client.token_exchange_resources)
                .then_some(exchange),
            dpop_bound_access_tokens: (dpop != client.dpop_bound_access_tokens).then_some(dpop),
            ..ClientUpdate::default()
        };
        state
            .api
            .update_client(&me.principal, &id, update, Some(ip.as_str()))
            .await
            .map(|_| Flash::Notice("Application settings saved.".to_owned()))
    }
    .await;
    done(&state, &me, outcome)
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
    responses(super::error::PortalFormErrors, PortalOutcome)
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
    done(&state, &me, outcome)
}

/// `POST /portal/email-verification`: mails a new verification link to the user's address.
/// The email limits apply (per source and per recipient); past them nothing is sent and the
/// answer is the same.
#[utoipa::path(
    post,
    path = "/portal/email-verification",
    tag = "browser",
    operation_id = "portalResendVerification",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(super::error::PortalFormErrors, PortalOutcome)
)]
pub async fn resend_verification(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let me = match member(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let outcome = state
        .api
        .request_email_verification(&me.principal, Some(ip.as_str()))
        .await
        .map(|()| {
            Flash::Notice(format!(
                "A new verification link is on its way to {}; it works for 24 hours.",
                me.user.email
            ))
        });
    done(&state, &me, outcome)
}
