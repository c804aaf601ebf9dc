//! The portal's resources page, for administrators only: the operator's resources, a form to
//! define one, deletion, and a form to set what a user is granted on one. Members get the
//! not-found page, as for a page that does not exist.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use netapi_core::model::{ResourceScope, Session, User};
use netapi_core::service::{NewResource, PageRequest, Principal, ResourceUpdate};
use netapi_core::{Error, NetApi};
use serde::Deserialize;

use super::error::PageError;
use super::flash;
use super::page::{Chrome, render};
use super::portal::{Flash, Member, admin, flash_for, names, not_found};
use super::session::current_session;
use crate::extract::ClientIp;
use crate::state::AppState;

struct ResourceRow {
    id: String,
    identifier: String,
    name: String,
    /// `(name, description)`.
    scopes: Vec<(String, String)>,
    /// The scopes as the edit form takes them: one per line, the name, a space, the
    /// description.
    scope_lines: String,
    self_service: String,
    allow_api_keys: bool,
    token_lifetime: String,
    /// Seconds, or empty for the server's: the edit form's value.
    ttl_seconds: String,
}

/// What one user was granted, shown after a lookup.
struct GrantsView {
    email: String,
    /// `(resource identifier, scopes space-separated)`.
    grants: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "resources.html")]
struct ResourcesPage<'a> {
    chrome: Chrome<'a>,
    flash: Option<Flash>,
    csrf: &'a str,
    resources: Vec<ResourceRow>,
    lookup: Option<GrantsView>,
}

/// `?user=` of the resources page: whose grants to show.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GrantsLookup {
    /// A user's email or id.
    user: Option<String>,
}

/// The resources page's name for its one-time messages.
const RESOURCES: &str = "resources";

async fn resources_page(
    api: &NetApi,
    admin: &Principal,
    user: &User,
    session: &Session,
    flash: Option<Flash>,
    lookup: Option<GrantsView>,
) -> Response {
    let page = PageRequest {
        cursor: None,
        size: 100,
    };
    let resources = match api.list_resources(admin, page).await {
        Ok(page) => page.items,
        Err(err) => return PageError::Core(err).into_response(),
    };
    let resources = resources
        .into_iter()
        .map(|r| ResourceRow {
            scope_lines: r
                .scopes
                .iter()
                .map(|s| {
                    format!("{} {}", s.name, s.description)
                        .trim_end()
                        .to_owned()
                })
                .collect::<Vec<_>>()
                .join("\n"),
            ttl_seconds: r
                .access_token_ttl
                .map(|s| s.to_string())
                .unwrap_or_default(),
            scopes: r
                .scopes
                .into_iter()
                .map(|s| (s.name, s.description))
                .collect(),
            self_service: r.self_service_scopes.join(" "),
            allow_api_keys: r.allow_api_keys,
            token_lifetime: r
                .access_token_ttl
                .map_or_else(|| "server default".to_owned(), |s| format!("{s} s")),
            id: r.id,
            identifier: r.identifier,
            name: r.name,
        })
        .collect();
    render(
        StatusCode::OK,
        &ResourcesPage {
            chrome: Chrome::signed_in("Resources", user, session, false),
            flash,
            csrf: &session.csrf_token,
            resources,
            lookup,
        },
    )
}

/// `GET /portal/resources`
#[utoipa::path(
    get,
    path = "/portal/resources",
    tag = "browser",
    operation_id = "portalResources",
    params(
        GrantsLookup,
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    responses(
        (status = 200, description = "The resources page (administrators).", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/login?return_to=/portal`"))),
        (status = 404, description = "Not an administrator.", body = String, content_type = "text/html"),
        super::error::PageErrors,
    )
)]
pub async fn resources(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<GrantsLookup>,
) -> Response {
    let Some((session, user)) = current_session(&state.api, &headers).await else {
        return Redirect::to("/login?return_to=/portal").into_response();
    };
    let Some(admin) = NetApi::session_resource_admin(&user) else {
        return not_found();
    };
    let who = query.user.as_deref().map(str::trim).unwrap_or_default();
    let (refused, lookup) = if who.is_empty() {
        (None, None)
    } else {
        match grants_of(&state.api, &admin, who).await {
            Ok(view) => (None, Some(view)),
            Err(err) => match flash_for(Err(err)) {
                Ok(flash) => (Some(flash), None),
                Err(page) => return page.into_response(),
            },
        }
    };
    let api = &state.api;
    flash::showing(api, &headers, &session, RESOURCES, |waiting| {
        resources_page(api, &admin, &user, &session, refused.or(waiting), lookup)
    })
    .await
}

/// The user named by email or id.
async fn user_named(api: &NetApi, admin: &Principal, who: &str) -> Result<User, Error> {
    if who.contains('@') {
        api.get_user_by_email(admin, who).await
    } else {
        api.get_user(admin, who).await
    }
}

async fn grants_of(api: &NetApi, admin: &Principal, who: &str) -> Result<GrantsView, Error> {
    let user = user_named(api, admin, who).await?;
    let grants = api
        .list_grants(admin, &user.id)
        .await?
        .into_iter()
        .map(|(resource, scopes)| (resource.identifier.clone(), scopes.join(" ")))
        .collect();
    Ok(GrantsView {
        email: user.email,
        grants,
    })
}

/// Answers a form of the resources page: `303` back to it, which shows the outcome once;
/// failures of the service itself are error pages.
fn outcome(api: &NetApi, (me, _): &(Member, Principal), outcome: Result<Flash, Error>) -> Response {
    match flash_for(outcome) {
        Ok(flash) => flash::redirect_with(api, &me.session, RESOURCES, "/portal/resources", flash),
        Err(page) => page.into_response(),
    }
}

/// The form that defines a resource, or changes one (whose identifier is not read).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ResourceForm {
    csrf_token: String,
    /// The absolute URI credentials are made for.
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    name: String,
    /// One per line: the name, a space, the description.
    #[serde(default)]
    scopes: String,
    /// Names separated by spaces; empty: none (every other scope only by grant).
    #[serde(default)]
    self_service_scopes: String,
    /// Present (any value) when API keys may be made for it.
    #[serde(default)]
    allow_api_keys: Option<String>,
    /// Seconds, or empty for the server's.
    #[serde(default)]
    access_token_ttl: String,
}

/// `POST /portal/resources`: defines a resource.
#[utoipa::path(
    post,
    path = "/portal/resources",
    tag = "browser",
    operation_id = "portalCreateResource",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = ResourceForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        super::error::PortalFormErrors,
        (status = 303, description = "Done, or refused with a reason: to the resources page, which shows the outcome once. Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/portal/resources` or `/login?return_to=/portal`"))),
        (status = 404, description = "Not an administrator.", body = String, content_type = "text/html"),
    )
)]
pub async fn create_resource(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<ResourceForm>,
) -> Response {
    let me = match admin(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let result = async {
        let access_token_ttl = ttl_field(&form.access_token_ttl)?;
        let scopes = scope_lines(&form.scopes);
        let resource = state
            .api
            .create_resource(
                &me.1,
                NewResource {
                    identifier: form.identifier.trim().to_owned(),
                    name: form.name,
                    scopes,
                    self_service_scopes: Some(names(&form.self_service_scopes)),
                    allow_api_keys: Some(form.allow_api_keys.is_some()),
                    access_token_ttl,
                },
                Some(ip.as_str()),
            )
            .await?;
        Ok(Flash::Notice(format!(
            "\"{}\" ({}) is defined.",
            resource.name, resource.identifier
        )))
    }
    .await;
    outcome(&state.api, &me, result)
}

/// Seconds, or `None` (empty) for the server's lifetime.
fn ttl_field(text: &str) -> Result<Option<u32>, Error> {
    match text.trim() {
        "" => Ok(None),
        ttl => ttl
            .parse::<u32>()
            .map(Some)
            .map_err(|_| Error::invalid("access_token_ttl", "must be a number of seconds")),
    }
}

/// Scopes one per line: the name, a space, the description.
fn scope_lines(text: &str) -> Vec<ResourceScope> {
    super::portal::lines(text)
        .into_iter()
        .map(|line| match line.split_once(char::is_whitespace) {
            Some((name, description)) => ResourceScope {
                name: name.to_owned(),
                description: description.trim().to_owned(),
            },
            None => ResourceScope {
                name: line,
                description: String::new(),
            },
        })
        .collect()
}

/// `POST /portal/resources/{id}/edit`: changes a resource (never its identifier).
#[utoipa::path(
    post,
    path = "/portal/resources/{id}/edit",
    tag = "browser",
    operation_id = "portalEditResource",
    params(
        ("id" = String, Path, description = "The resource's id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = ResourceForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        super::error::PortalFormErrors,
        (status = 303, description = "Done, or refused with a reason: to the resources page, which shows the outcome once. Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/portal/resources` or `/login?return_to=/portal`"))),
        (status = 404, description = "Not an administrator.", body = String, content_type = "text/html"),
    )
)]
pub async fn edit_resource(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ResourceForm>,
) -> Response {
    let me = match admin(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let result = async {
        let update = ResourceUpdate {
            name: Some(form.name),
            scopes: Some(scope_lines(&form.scopes)),
            self_service_scopes: Some(names(&form.self_service_scopes)),
            allow_api_keys: Some(form.allow_api_keys.is_some()),
            access_token_ttl: Some(ttl_field(&form.access_token_ttl)?),
        };
        let resource = state
            .api
            .update_resource(&me.1, &id, update, Some(ip.as_str()))
            .await?;
        Ok(Flash::Notice(format!(
            "\"{}\" ({}) is changed; credentials already made keep only the scopes it still has.",
            resource.name, resource.identifier
        )))
    }
    .await;
    outcome(&state.api, &me, result)
}

/// The delete form: the word `delete` typed to confirm.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct DeleteResourceForm {
    csrf_token: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /portal/resources/{id}/delete`: deletes a resource; every credential for it stops.
#[utoipa::path(
    post,
    path = "/portal/resources/{id}/delete",
    tag = "browser",
    operation_id = "portalDeleteResource",
    params(
        ("id" = String, Path, description = "The resource's id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = DeleteResourceForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        super::error::PortalFormErrors,
        (status = 303, description = "Done, or refused with a reason: to the resources page, which shows the outcome once. Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/portal/resources` or `/login?return_to=/portal`"))),
        (status = 404, description = "Not an administrator.", body = String, content_type = "text/html"),
    )
)]
pub async fn delete_resource(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DeleteResourceForm>,
) -> Response {
    let me = match admin(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let result = if form.confirm.trim() == "delete" {
        state
            .api
            .delete_resource(&me.1, &id, Some(ip.as_str()))
            .await
            .map(|()| {
                Flash::Notice(
                    "The resource was deleted; its keys and tokens no longer work.".to_owned(),
                )
            })
    } else {
        Ok(Flash::Error(
            "Type the word delete to confirm; nothing was deleted.".to_owned(),
        ))
    };
    outcome(&state.api, &me, result)
}

/// The grant form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct GrantForm {
    csrf_token: String,
    /// The user's email or id.
    #[serde(default)]
    user: String,
    /// The resource's identifier.
    #[serde(default)]
    resource: String,
    /// Scope names separated by spaces; they replace the user's grant (empty: none).
    #[serde(default)]
    scopes: String,
}

/// `POST /portal/grants`: replaces what a user is granted on a resource.
#[utoipa::path(
    post,
    path = "/portal/grants",
    tag = "browser",
    operation_id = "portalSetGrant",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = GrantForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        super::error::PortalFormErrors,
        (status = 303, description = "Done, or refused with a reason: to the resources page, which shows the outcome once. Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/portal/resources` or `/login?return_to=/portal`"))),
        (status = 404, description = "Not an administrator.", body = String, content_type = "text/html"),
    )
)]
pub async fn set_grant(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<GrantForm>,
) -> Response {
    let me = match admin(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let result = async {
        let user = user_named(&state.api, &me.1, form.user.trim()).await?;
        let (resource, scopes) = state
            .api
            .set_grant(
                &me.1,
                &user.id,
                form.resource.trim(),
                &names(&form.scopes),
                Some(ip.as_str()),
            )
            .await?;
        Ok(Flash::Notice(if scopes.is_empty() {
            format!(
                "{} is granted nothing on {}.",
                user.email, resource.identifier
            )
        } else {
            format!(
                "{} is granted {} on {}.",
                user.email,
                scopes.join(" "),
                resource.identifier
            )
        }))
    }
    .await;
    outcome(&state.api, &me, result)
}
