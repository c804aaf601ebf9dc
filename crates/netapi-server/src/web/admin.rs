//! The admin console (`/admin`), for administrators: users (search, role, disable, delete,
//! password-reset mail, their keys and applications), invitations and the audit log; the
//! resources and webhooks pages are linked from its navigation.
//!
//! It is the portal's machinery with an administrator's principal: the same session, CSRF
//! check, pages and one-time messages. Signed out, a page sends to the sign-in page and back;
//! a member gets 403. Every form is checked for its CSRF token, acts through the same core
//! operation as the API (which writes the same audit event) and answers 303 to a page that
//! shows the outcome once, so a refresh repeats nothing. Deletion and revocation first show
//! a confirmation page, whose form says `confirm=yes`.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use netapi_core::clock::format_rfc3339;
use netapi_core::model::{Session, User};
use netapi_core::service::{NewInvitation, PageRequest, Principal, UserUpdate};
use netapi_core::store::AuditFilter;
use netapi_core::{Error, NetApi, Role, Timestamp};
use serde::Deserialize;

use super::error::{PageError, error_page};
use super::flash;
use super::page::{Chrome, human_time, render};
use super::portal::{Flash, flash_for, unconfirmed};
use super::session::current_session;
use crate::extract::ClientIp;
use crate::state::AppState;

/// The console's name for its one-time messages (one slot: each form redirects to one page).
const ADMIN: &str = "admin";
/// Rows per page of the users, invitations and audit lists.
const ROWS: u32 = 50;
/// The longest user id or email the audit filter takes.
const MAX_USER_FILTER_LEN: usize = 254;

/// A signed-in administrator on a console page.
struct Admin {
    session: Session,
    user: User,
    principal: Principal,
}

/// The sign-in page, then back to `path` (a console path, which is local).
fn sign_in_first(path: &str) -> Response {
    Redirect::to(&format!("/login?return_to={}", encoded(path))).into_response()
}

/// `None` when the administrator signed in recently enough ([`super::session::FRESH_SIGN_IN`]);
/// otherwise the sign-in page, which says why and comes back to `back` (nothing is done: the
/// change is made again after).
fn stale_sign_in(api: &NetApi, admin: &Admin, back: &str) -> Option<Response> {
    (!super::session::signed_in_recently(api, &admin.session)).then(|| {
        Redirect::to(&format!("/login?reauth=1&return_to={}", encoded(back))).into_response()
    })
}

fn not_an_admin() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "This page is for administrators only.",
    )
}

/// The administrator viewing a console page at `path`. A second factor that policy requires
/// (`mfa_required_for_admins` included) must be set up first, as for the portal.
async fn viewer(api: &NetApi, headers: &HeaderMap, path: &str) -> Result<Admin, Response> {
    let Some((session, user)) = current_session(api, headers).await else {
        return Err(sign_in_first(path));
    };
    let Some(principal) = NetApi::session_admin(&user) else {
        return Err(not_an_admin());
    };
    Ok(Admin {
        session,
        user,
        principal,
    })
}

/// The administrator behind a console form whose CSRF token matches the session.
async fn actor(api: &NetApi, headers: &HeaderMap, csrf_token: &str) -> Result<Admin, Response> {
    let Some((session, user)) = current_session(api, headers).await else {
        return Err(sign_in_first("/admin"));
    };
    if !NetApi::csrf_matches(&session, csrf_token) {
        return Err(PageError::Forged(
            "The form expired or did not come from this site; reload the page and try again.",
        )
        .into_response());
    }
    let Some(principal) = NetApi::session_admin(&user) else {
        return Err(not_an_admin());
    };
    Ok(Admin {
        session,
        user,
        principal,
    })
}

/// Answers a console form: leaves the outcome for the page at `to` and redirects there
/// (303); failures of the service itself are error pages.
fn done(state: &AppState, admin: &Admin, to: &str, outcome: Result<Flash, Error>) -> Response {
    match flash_for(outcome) {
        Ok(flash) => flash::redirect_with(&state.api, &admin.session, ADMIN, to, flash),
        Err(page) => page.into_response(),
    }
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

fn encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn when(ts: Option<i64>) -> String {
    ts.map_or_else(|| "never".to_owned(), human_time)
}

/// A page of a console list: `page` is the token of the previous page's last row.
fn page_request(prefix: &str, token: Option<&str>) -> Result<PageRequest, Error> {
    PageRequest::parse(prefix, Some(ROWS), token)
}

// ------------------------------------------------------------------------------------------
// Users
// ------------------------------------------------------------------------------------------

struct UserRow {
    id: String,
    email: String,
    name: String,
    role: &'static str,
    disabled: bool,
    created: String,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage<'a> {
    chrome: Chrome<'a>,
    flash: Option<Flash>,
    query: String,
    users: Vec<UserRow>,
    /// The link to the next page, if there is one.
    next: Option<String>,
}

/// `?q=&page=` of the users list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserSearch {
    /// Part of an email address (at most 254 characters); empty: every user.
    q: Option<String>,
    /// The page token of the "Next" link.
    page: Option<String>,
}

/// `GET /admin`: the users, searched by part of their email.
#[utoipa::path(
    get,
    path = "/admin",
    tag = "browser",
    operation_id = "adminUsers",
    params(
        UserSearch,
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    responses(
        (status = 200, description = "The admin console's users page.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/login?return_to=%2Fadmin`"))),
        (status = 403, description = "Not an administrator.", body = String, content_type = "text/html"),
        super::error::PageErrors,
    )
)]
pub async fn users(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(search): Query<UserSearch>,
) -> Response {
    let me = match viewer(&state.api, &headers, "/admin").await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let (mut flash, clear) = flash::take(&state.api, &headers, &me.session, ADMIN);
    let query = search.q.unwrap_or_default().trim().to_owned();
    let found = async {
        let page = page_request("usr", search.page.as_deref())?;
        state.api.find_users(&me.principal, &query, page).await
    }
    .await;
    let (users, next) = match found {
        Ok(page) => (
            page.items,
            page.next_page_token
                .map(|token| format!("/admin?q={}&page={}", encoded(&query), encoded(&token))),
        ),
        Err(err) => match flash_for(Err(err)) {
            Ok(refused) => {
                flash = Some(refused);
                (Vec::new(), None)
            }
            Err(page) => return page.into_response(),
        },
    };
    let users = users
        .into_iter()
        .map(|u| UserRow {
            role: u.role.as_str(),
            disabled: u.disabled_at.is_some(),
            created: human_time(u.created_at),
            id: u.id,
            email: u.email,
            name: u.name,
        })
        .collect();
    let page = render(
        StatusCode::OK,
        &UsersPage {
            chrome: Chrome::signed_in("Admin: users", &me.user, &me.session, false),
            flash,
            query,
            users,
            next,
        },
    );
    flash::finish(&state.api, clear, page)
}

struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    last_four: String,
    scopes: String,
    created: String,
    used: String,
    expires: String,
}

struct ClientRow {
    id: String,
    name: String,
    grants: String,
}

#[derive(Template)]
#[template(path = "admin_user.html")]
struct UserPage<'a> {
    chrome: Chrome<'a>,
    flash: Option<Flash>,
    csrf: &'a str,
    subject: UserRow,
    verified: bool,
    /// Whether a reset link can be mailed (email is on).
    email_on: bool,
    keys: Vec<KeyRow>,
    clients: Vec<ClientRow>,
}

/// `GET /admin/users/{id}`: one user, what can be done to it, its keys and applications.
#[utoipa::path(
    get,
    path = "/admin/users/{id}",
    tag = "browser",
    operation_id = "adminUser",
    params(
        ("id" = String, Path, description = "The user's id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    responses(
        (status = 200, description = "The user's page.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/login?return_to=...`"))),
        (status = 403, description = "Not an administrator.", body = String, content_type = "text/html"),
        (status = 404, description = "No such user.", body = String, content_type = "text/html"),
        super::error::PageErrors,
    )
)]
pub async fn user(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = plain_id(&id) else {
        return not_found("user");
    };
    let me = match viewer(&state.api, &headers, &format!("/admin/users/{id}")).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let first = || PageRequest {
        cursor: None,
        size: 100,
    };
    let found = async {
        let subject = state.api.get_user(&me.principal, id).await?;
        let keys = state
            .api
            .list_user_api_keys(&me.principal, id, first())
            .await?
            .items;
        let clients = state
            .api
            .list_user_clients(&me.principal, id, first())
            .await?
            .items;
        Ok::<_, Error>((subject, keys, clients))
    }
    .await;
    let (subject, keys, clients) = match found {
        Ok(found) => found,
        Err(Error::NotFound(what)) => return not_found(what),
        Err(err) => return PageError::Core(err).into_response(),
    };
    let (flash, clear) = flash::take(&state.api, &headers, &me.session, ADMIN);
    let keys = keys
        .into_iter()
        .map(|key| KeyRow {
            scopes: match &key.resource {
                Some(resource) => format!(
                    "{} on {}",
                    key.resource_scopes.join(" "),
                    resource.identifier
                ),
                None => key.scopes.to_string(),
            },
            created: human_time(key.created_at),
            used: when(key.last_used_at),
            expires: when(key.expires_at),
            id: key.id,
            name: key.name,
            prefix: key.prefix,
            last_four: key.last_four,
        })
        .collect();
    let clients = clients
        .into_iter()
        .map(|client| ClientRow {
            grants: client
                .grant_types
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            id: client.id,
            name: client.name,
        })
        .collect();
    let page = render(
        StatusCode::OK,
        &UserPage {
            chrome: Chrome::signed_in("Admin: user", &me.user, &me.session, false),
            flash,
            csrf: &me.session.csrf_token,
            verified: subject.email_verified,
            subject: UserRow {
                role: subject.role.as_str(),
                disabled: subject.disabled_at.is_some(),
                created: human_time(subject.created_at),
                id: subject.id,
                email: subject.email,
                name: subject.name,
            },
            email_on: state.api.email_enabled(),
            keys,
            clients,
        },
    );
    flash::finish(&state.api, clear, page)
}

fn not_found(what: &str) -> Response {
    error_page(StatusCode::NOT_FOUND, &format!("{what} not found"))
}

/// The role form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RoleForm {
    csrf_token: String,
    /// `admin` or `member`.
    #[serde(default)]
    role: String,
}

/// `POST /admin/users/{id}/role`: makes the user an administrator or a member.
#[utoipa::path(
    post,
    path = "/admin/users/{id}/role",
    tag = "browser",
    operation_id = "adminSetRole",
    params(
        ("id" = String, Path, description = "The user's id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = RoleForm, content_type = "application/x-www-form-urlencoded"),
    responses(super::error::PortalFormErrors, AdminOutcome)
)]
pub async fn set_role(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RoleForm>,
) -> Response {
    let me = match actor(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let Some(id) = plain_id(&id) else {
        return not_found("user");
    };
    if let Some(again) = stale_sign_in(&state.api, &me, &format!("/admin/users/{id}")) {
        return again;
    }
    let outcome = async {
        let role = Role::parse(form.role.trim())
            .ok_or_else(|| Error::invalid("role", "must be admin or member"))?;
        let user = state
            .api
            .update_user(
                &me.principal,
                id,
                UserUpdate {
                    role: Some(role),
                    ..UserUpdate::default()
                },
                Some(ip.as_str()),
            )
            .await?;
        Ok(Flash::Notice(format!(
            "{} is now {}.",
            user.email,
            match user.role {
                Role::Admin => "an administrator",
                Role::Member => "a member",
            }
        )))
    }
    .await;
    done(&state, &me, &format!("/admin/users/{id}"), outcome)
}

/// The disable/enable form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct DisableForm {
    csrf_token: String,
    /// `yes` to disable the account, `no` to enable it.
    #[serde(default)]
    disabled: String,
}

/// `POST /admin/users/{id}/disabled`: disables the account (its keys, tokens and sessions stop
/// at once) or enables it again.
#[utoipa::path(
    post,
    path = "/admin/users/{id}/disabled",
    tag = "browser",
    operation_id = "adminSetDisabled",
    params(
        ("id" = String, Path, description = "The user's id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = DisableForm, content_type = "application/x-www-form-urlencoded"),
    responses(super::error::PortalFormErrors, AdminOutcome)
)]
pub async fn set_disabled(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DisableForm>,
) -> Response {
    let me = match actor(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let Some(id) = plain_id(&id) else {
        return not_found("user");
    };
    if let Some(again) = stale_sign_in(&state.api, &me, &format!("/admin/users/{id}")) {
        return again;
    }
    let outcome = async {
        let disabled = match form.disabled.as_str() {
            "yes" => true,
            "no" => false,
            _ => return Err(Error::invalid("disabled", "must be yes or no")),
        };
        let user = state
            .api
            .update_user(
                &me.principal,
                id,
                UserUpdate {
                    disabled: Some(disabled),
                    ..UserUpdate::default()
                },
                Some(ip.as_str()),
            )
            .await?;
        Ok(Flash::Notice(if disabled {
            format!(
                "{} is disabled: its keys, tokens and sessions no longer work.",
                user.email
            )
        } else {
            format!("{} is enabled again.", user.email)
        }))
    }
    .await;
    done(&state, &me, &format!("/admin/users/{id}"), outcome)
}

/// `POST /admin/users/{id}/password-reset`: mails the user a password-reset link.
#[utoipa::path(
    post,
    path = "/admin/users/{id}/password-reset",
    tag = "browser",
    operation_id = "adminSendPasswordReset",
    params(
        ("id" = String, Path, description = "The user's id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = super::login::CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(super::error::PortalFormErrors, AdminOutcome)
)]
pub async fn send_password_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<super::login::CsrfForm>,
) -> Response {
    let me = match actor(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let Some(id) = plain_id(&id) else {
        return not_found("user");
    };
    let outcome = state
        .api
        .send_password_reset(&me.principal, id, Some(ip.as_str()))
        .await
        .map(|user| {
            Flash::Notice(format!(
                "A password-reset link is on its way to {}.",
                user.email
            ))
        });
    done(&state, &me, &format!("/admin/users/{id}"), outcome)
}

// ------------------------------------------------------------------------------------------
// Confirmations: deleting a user, revoking a key, deleting an application
// ------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "admin_confirm.html")]
struct ConfirmPage<'a> {
    chrome: Chrome<'a>,
    heading: &'static str,
    question: String,
    action: String,
    button: &'static str,
    /// Where "Cancel" leads.
    cancel: String,
    csrf: &'a str,
}

/// What a confirmation page asks.
struct Confirm {
    heading: &'static str,
    question: String,
    button: &'static str,
    cancel: String,
}

/// The confirmation page of the action at `action`, for what `ask` finds.
async fn confirmation(
    state: &AppState,
    headers: &HeaderMap,
    action: String,
    ask: impl AsyncFnOnce(&Principal) -> Result<Confirm, Error>,
) -> Response {
    let me = match viewer(&state.api, headers, &action).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    match ask(&me.principal).await {
        Ok(confirm) => render(
            StatusCode::OK,
            &ConfirmPage {
                chrome: Chrome::signed_in(confirm.heading, &me.user, &me.session, true),
                heading: confirm.heading,
                question: confirm.question,
                action,
                button: confirm.button,
                cancel: confirm.cancel,
                csrf: &me.session.csrf_token,
            },
        ),
        Err(Error::NotFound(what)) => not_found(what),
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

/// `GET /admin/users/{id}/delete`: asks to confirm.
#[utoipa::path(
    get,
    path = "/admin/users/{id}/delete",
    tag = "browser",
    operation_id = "adminConfirmDeleteUser",
    params(
        ("id" = String, Path, description = "The user's id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    responses(
        (status = 200, description = "The confirmation.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/login?return_to=...`"))),
        (status = 403, description = "Not an administrator.", body = String, content_type = "text/html"),
        (status = 404, description = "No such user.", body = String, content_type = "text/html"),
        super::error::PageErrors,
    )
)]
pub async fn confirm_delete_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = plain_id(&id) else {
        return not_found("user");
    };
    confirmation(
        &state,
        &headers,
        format!("/admin/users/{id}/delete"),
        async |principal| {
            let user = state.api.get_user(principal, id).await?;
            Ok(Confirm {
                heading: "Delete the user",
                question: format!(
                    "{} will be deleted with every key, application and grant it holds, for \
                     good. Their keys and tokens stop working at once.",
                    user.email
                ),
                button: "Delete user",
                cancel: format!("/admin/users/{id}"),
            })
        },
    )
    .await
}

/// `POST /admin/users/{id}/delete`: deletes the user with everything it holds.
#[utoipa::path(
    post,
    path = "/admin/users/{id}/delete",
    tag = "browser",
    operation_id = "adminDeleteUser",
    params(
        ("id" = String, Path, description = "The user's id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = ConfirmedForm, content_type = "application/x-www-form-urlencoded"),
    responses(super::error::PortalFormErrors, AdminOutcome)
)]
pub async fn delete_user(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ConfirmedForm>,
) -> Response {
    let me = match actor(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let Some(id) = plain_id(&id) else {
        return not_found("user");
    };
    if let Some(ask) = unconfirmed(&form.confirm, &format!("/admin/users/{id}/delete")) {
        return ask;
    }
    if let Some(again) = stale_sign_in(&state.api, &me, &format!("/admin/users/{id}")) {
        return again;
    }
    match state
        .api
        .delete_user(&me.principal, id, Some(ip.as_str()))
        .await
    {
        Ok(()) => done(
            &state,
            &me,
            "/admin",
            Ok(Flash::Notice(
                "The user was deleted; their keys and tokens no longer work.".to_owned(),
            )),
        ),
        // Refused (the last administrator): told on the user's page.
        Err(err) => done(&state, &me, &format!("/admin/users/{id}"), Err(err)),
    }
}

/// `GET /admin/keys/{id}/revoke`: asks to confirm.
#[utoipa::path(
    get,
    path = "/admin/keys/{id}/revoke",
    tag = "browser",
    operation_id = "adminConfirmRevokeKey",
    params(
        ("id" = String, Path, description = "The API key's id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    responses(
        (status = 200, description = "The confirmation.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/login?return_to=...`"))),
        (status = 403, description = "Not an administrator.", body = String, content_type = "text/html"),
        (status = 404, description = "No such live key.", body = String, content_type = "text/html"),
        super::error::PageErrors,
    )
)]
pub async fn confirm_revoke_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = plain_id(&id) else {
        return not_found("API key");
    };
    confirmation(
        &state,
        &headers,
        format!("/admin/keys/{id}/revoke"),
        async |principal| {
            let key = state.api.get_api_key(principal, id).await?;
            Ok(Confirm {
                heading: "Revoke the API key",
                question: format!(
                    "\"{}\" ({}…{}) will stop working at once, for good.",
                    key.name, key.prefix, key.last_four
                ),
                button: "Revoke",
                cancel: format!("/admin/users/{}", key.user_id),
            })
        },
    )
    .await
}

/// `POST /admin/keys/{id}/revoke`: revokes anyone's key.
#[utoipa::path(
    post,
    path = "/admin/keys/{id}/revoke",
    tag = "browser",
    operation_id = "adminRevokeKey",
    params(
        ("id" = String, Path, description = "The API key's id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = ConfirmedForm, content_type = "application/x-www-form-urlencoded"),
    responses(super::error::PortalFormErrors, AdminOutcome)
)]
pub async fn revoke_key(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ConfirmedForm>,
) -> Response {
    let me = match actor(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let Some(id) = plain_id(&id) else {
        return not_found("API key");
    };
    if let Some(ask) = unconfirmed(&form.confirm, &format!("/admin/keys/{id}/revoke")) {
        return ask;
    }
    let key = match state.api.get_api_key(&me.principal, id).await {
        Ok(key) => key,
        Err(err) => return done(&state, &me, "/admin", Err(err)),
    };
    let outcome = state
        .api
        .revoke_api_key(&me.principal, id, Some(ip.as_str()))
        .await
        .map(|()| Flash::Notice(format!("\"{}\" was revoked; it no longer works.", key.name)));
    done(
        &state,
        &me,
        &format!("/admin/users/{}", key.user_id),
        outcome,
    )
}

/// `GET /admin/clients/{id}/delete`: asks to confirm.
#[utoipa::path(
    get,
    path = "/admin/clients/{id}/delete",
    tag = "browser",
    operation_id = "adminConfirmDeleteClient",
    params(
        ("id" = String, Path, description = "The application's client_id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    responses(
        (status = 200, description = "The confirmation.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/login?return_to=...`"))),
        (status = 403, description = "Not an administrator.", body = String, content_type = "text/html"),
        (status = 404, description = "No such application.", body = String, content_type = "text/html"),
        super::error::PageErrors,
    )
)]
pub async fn confirm_delete_client(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = plain_id(&id) else {
        return not_found("OAuth client");
    };
    confirmation(
        &state,
        &headers,
        format!("/admin/clients/{id}/delete"),
        async |principal| {
            let client = state.api.get_client(principal, id).await?;
            Ok(Confirm {
                heading: "Delete the application",
                question: format!(
                    "\"{}\" ({}) will be deleted and every token it holds revoked, for good.",
                    client.name, client.id
                ),
                button: "Delete application",
                cancel: client.owner_id.map_or_else(
                    || "/admin".to_owned(),
                    |owner| format!("/admin/users/{owner}"),
                ),
            })
        },
    )
    .await
}

/// `POST /admin/clients/{id}/delete`: deletes anyone's application and revokes its tokens.
#[utoipa::path(
    post,
    path = "/admin/clients/{id}/delete",
    tag = "browser",
    operation_id = "adminDeleteClient",
    params(
        ("id" = String, Path, description = "The application's client_id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = ConfirmedForm, content_type = "application/x-www-form-urlencoded"),
    responses(super::error::PortalFormErrors, AdminOutcome)
)]
pub async fn delete_client(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ConfirmedForm>,
) -> Response {
    let me = match actor(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let Some(id) = plain_id(&id) else {
        return not_found("OAuth client");
    };
    if let Some(ask) = unconfirmed(&form.confirm, &format!("/admin/clients/{id}/delete")) {
        return ask;
    }
    let client = match state.api.get_client(&me.principal, id).await {
        Ok(client) => client,
        Err(err) => return done(&state, &me, "/admin", Err(err)),
    };
    let outcome = state
        .api
        .delete_client(&me.principal, id, Some(ip.as_str()))
        .await
        .map(|()| {
            Flash::Notice(format!(
                "\"{}\" was deleted and its tokens revoked.",
                client.name
            ))
        });
    done(
        &state,
        &me,
        &client.owner_id.map_or_else(
            || "/admin".to_owned(),
            |owner| format!("/admin/users/{owner}"),
        ),
        outcome,
    )
}

// ------------------------------------------------------------------------------------------
// Invitations
// ------------------------------------------------------------------------------------------

struct InvitationRow {
    id: String,
    email: String,
    role: &'static str,
    created: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "admin_invitations.html")]
struct InvitationsPage<'a> {
    chrome: Chrome<'a>,
    flash: Option<Flash>,
    csrf: &'a str,
    invitations: Vec<InvitationRow>,
    next: Option<String>,
}

/// `?page=` of the invitations list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvitationsQuery {
    /// The page token of the "Next" link.
    page: Option<String>,
}

/// `GET /admin/invitations`: the pending invitations and a form to make one.
#[utoipa::path(
    get,
    path = "/admin/invitations",
    tag = "browser",
    operation_id = "adminInvitations",
    params(
        InvitationsQuery,
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    responses(
        (status = 200, description = "The invitations page.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/login?return_to=%2Fadmin%2Finvitations`"))),
        (status = 403, description = "Not an administrator.", body = String, content_type = "text/html"),
        super::error::PageErrors,
    )
)]
pub async fn invitations(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<InvitationsQuery>,
) -> Response {
    let me = match viewer(&state.api, &headers, "/admin/invitations").await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let (mut flash, clear) = flash::take(&state.api, &headers, &me.session, ADMIN);
    let listed = async {
        let page = page_request("inv", query.page.as_deref())?;
        state.api.list_invitations(&me.principal, page).await
    }
    .await;
    let now = state.api.now();
    let (invitations, next) = match listed {
        Ok(page) => (
            page.items,
            page.next_page_token
                .map(|token| format!("/admin/invitations?page={}", encoded(&token))),
        ),
        Err(err) => match flash_for(Err(err)) {
            Ok(refused) => {
                flash = Some(refused);
                (Vec::new(), None)
            }
            Err(page) => return page.into_response(),
        },
    };
    // Used and expired ones are kept until housekeeping; only the pending are of interest.
    let invitations = invitations
        .into_iter()
        .filter(|i| i.used_at.is_none() && i.expires_at > now)
        .map(|i| InvitationRow {
            email: i.email.unwrap_or_else(|| "anyone".to_owned()),
            role: i.role.as_str(),
            created: human_time(i.created_at),
            expires: human_time(i.expires_at),
            id: i.id,
        })
        .collect();
    let page = render(
        StatusCode::OK,
        &InvitationsPage {
            chrome: Chrome::signed_in("Admin: invitations", &me.user, &me.session, false),
            flash,
            csrf: &me.session.csrf_token,
            invitations,
            next,
        },
    );
    flash::finish(&state.api, clear, page)
}

/// The new-invitation form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct InvitationForm {
    csrf_token: String,
    /// The only email that may use it; empty: anyone.
    #[serde(default)]
    email: String,
    /// `member` (the default) or `admin`.
    #[serde(default)]
    role: String,
    /// Days until it expires: 1 to 30 (default 7).
    #[serde(default)]
    expires_in_days: String,
}

/// `POST /admin/invitations`: makes an invitation and shows its link once.
#[utoipa::path(
    post,
    path = "/admin/invitations",
    tag = "browser",
    operation_id = "adminCreateInvitation",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = InvitationForm, content_type = "application/x-www-form-urlencoded"),
    responses(super::error::PortalFormErrors, AdminOutcome)
)]
pub async fn create_invitation(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<InvitationForm>,
) -> Response {
    let me = match actor(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    // An invitation to be an administrator makes one, as a change of role does.
    if form.role.trim() == Role::Admin.as_str()
        && let Some(again) = stale_sign_in(&state.api, &me, "/admin/invitations")
    {
        return again;
    }
    let outcome = async {
        let role = match form.role.trim() {
            "" => None,
            role => Some(
                Role::parse(role)
                    .ok_or_else(|| Error::invalid("role", "must be admin or member"))?,
            ),
        };
        let expires_in = match form.expires_in_days.trim() {
            "" => None,
            days => Some(
                days.parse::<i64>()
                    .ok()
                    .filter(|d| (1..=30).contains(d))
                    .ok_or_else(|| {
                        Error::invalid("expires_in_days", "must be a number of days from 1 to 30")
                    })?
                    * 86_400,
            ),
        };
        let email = Some(form.email.trim().to_owned()).filter(|e| !e.is_empty());
        let (invitation, token) = state
            .api
            .create_invitation(
                &me.principal,
                NewInvitation {
                    email,
                    role,
                    expires_in,
                },
                Some(ip.as_str()),
            )
            .await?;
        Ok(Flash::Secret {
            title: format!(
                "The invitation for {} (as {}, until {})",
                invitation.email.as_deref().unwrap_or("anyone"),
                invitation.role.as_str(),
                human_time(invitation.expires_at)
            ),
            value: format!(
                "{}/register?invitation={}",
                state.api.issuer().trim_end_matches('/'),
                token.expose()
            ),
        })
    }
    .await;
    done(&state, &me, "/admin/invitations", outcome)
}

/// `POST /admin/invitations/{id}/delete`: revokes an invitation; its link stops working.
#[utoipa::path(
    post,
    path = "/admin/invitations/{id}/delete",
    tag = "browser",
    operation_id = "adminDeleteInvitation",
    params(
        ("id" = String, Path, description = "The invitation's id."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = super::login::CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(super::error::PortalFormErrors, AdminOutcome)
)]
pub async fn delete_invitation(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<super::login::CsrfForm>,
) -> Response {
    let me = match actor(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let outcome = state
        .api
        .delete_invitation(&me.principal, &id, Some(ip.as_str()))
        .await
        .map(|()| {
            Flash::Notice("The invitation was revoked; its link no longer works.".to_owned())
        });
    done(&state, &me, "/admin/invitations", outcome)
}

// ------------------------------------------------------------------------------------------
// Audit log
// ------------------------------------------------------------------------------------------

struct EventRow {
    at: String,
    kind: String,
    user_id: String,
    ip: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage<'a> {
    chrome: Chrome<'a>,
    flash: Option<Flash>,
    filters: AuditQuery,
    events: Vec<EventRow>,
    next: Option<String>,
}

/// `?user=&type=&from=&to=&page=` of the audit log; empty fields filter nothing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// The user concerned: an id or an email address.
    #[serde(default)]
    user: String,
    /// The event type, e.g. `user.updated`.
    #[serde(default, rename = "type")]
    kind: String,
    /// From this time on (UTC): `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM`.
    #[serde(default)]
    from: String,
    /// Before this time (UTC): `YYYY-MM-DDTHH:MM`, or `YYYY-MM-DD` for up to the end of
    /// that day.
    #[serde(default)]
    to: String,
    /// The page token of the "Next" link.
    #[serde(default)]
    page: String,
}

/// A time typed in a filter (UTC): a day, or a day and a time as a `datetime-local` field
/// sends it. A day alone counts from its start, or (`end_of_day`) up to its end.
fn filter_time(field: &str, text: &str, end_of_day: bool) -> Result<Option<Timestamp>, Error> {
    use time::macros::format_description;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let refused = || {
        Error::invalid(
            field,
            "must be a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM), in UTC",
        )
    };
    if text.len() > 32 {
        return Err(refused());
    }
    let minutes = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let seconds = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    if let Ok(at) = time::PrimitiveDateTime::parse(text, minutes)
        .or_else(|_| time::PrimitiveDateTime::parse(text, seconds))
    {
        return Ok(Some(at.assume_utc().unix_timestamp()));
    }
    let day = time::Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map_err(|_| refused())?;
    let start = day.midnight().assume_utc().unix_timestamp();
    Ok(Some(if end_of_day { start + 86_400 } else { start }))
}

/// The filter the query asks for; `None` when the user named exists nowhere (no events).
async fn audit_filter(
    api: &NetApi,
    admin: &Principal,
    query: &AuditQuery,
) -> Result<Option<AuditFilter>, Error> {
    let who = query.user.trim();
    if who.len() > MAX_USER_FILTER_LEN {
        return Err(Error::invalid(
            "user",
            format!("must be at most {MAX_USER_FILTER_LEN} characters"),
        ));
    }
    let user_id = if who.is_empty() {
        None
    } else if who.contains('@') {
        match api.get_user_by_email(admin, who).await {
            Ok(user) => Some(user.id),
            Err(Error::NotFound(_) | Error::InvalidArgument { .. }) => return Ok(None),
            Err(err) => return Err(err),
        }
    } else {
        // An id of a deleted user still finds its events.
        Some(who.to_owned())
    };
    let kind = Some(query.kind.trim().to_owned()).filter(|k| !k.is_empty());
    Ok(Some(AuditFilter {
        user_id,
        kind,
        from: filter_time("from", &query.from, false)?,
        to: filter_time("to", &query.to, true)?,
    }))
}

/// `GET /admin/audit`: the audit log, newest first, filtered by user, type and time.
#[utoipa::path(
    get,
    path = "/admin/audit",
    tag = "browser",
    operation_id = "adminAudit",
    params(
        AuditQuery,
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    responses(
        (status = 200, description = "The audit log page.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/login?return_to=%2Fadmin%2Faudit`"))),
        (status = 403, description = "Not an administrator.", body = String, content_type = "text/html"),
        super::error::PageErrors,
    )
)]
pub async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Response {
    let me = match viewer(&state.api, &headers, "/admin/audit").await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let (mut flash, clear) = flash::take(&state.api, &headers, &me.session, ADMIN);
    let found = async {
        let page = page_request("evt", Some(query.page.as_str()))?;
        match audit_filter(&state.api, &me.principal, &query).await? {
            Some(filter) => {
                state
                    .api
                    .search_audit_events(&me.principal, &filter, page)
                    .await
            }
            None => Ok(netapi_core::service::AuditPage {
                items: Vec::new(),
                next_page_token: None,
            }),
        }
    }
    .await;
    let (events, next) = match found {
        Ok(page) => (
            page.items,
            page.next_page_token.map(|token| {
                format!(
                    "/admin/audit?user={}&type={}&from={}&to={}&page={}",
                    encoded(query.user.trim()),
                    encoded(query.kind.trim()),
                    encoded(query.from.trim()),
                    encoded(query.to.trim()),
                    encoded(&token)
                )
            }),
        ),
        Err(err) => match flash_for(Err(err)) {
            Ok(refused) => {
                flash = Some(refused);
                (Vec::new(), None)
            }
            Err(page) => return page.into_response(),
        },
    };
    let events = events
        .into_iter()
        .map(|e| EventRow {
            at: format_rfc3339(e.created_at),
            kind: e.kind,
            user_id: e.user_id.unwrap_or_default(),
            ip: e.ip.unwrap_or_default(),
            detail: e.detail,
        })
        .collect();
    let page = render(
        StatusCode::OK,
        &AuditPage {
            chrome: Chrome::signed_in("Admin: audit log", &me.user, &me.session, false),
            flash,
            filters: query,
            events,
            next,
        },
    );
    flash::finish(&state.api, clear, page)
}

/// The console's answer to a form it accepted.
pub struct AdminOutcome;

impl utoipa::IntoResponses for AdminOutcome {
    fn responses() -> std::collections::BTreeMap<
        String,
        utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
    > {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::response::ResponseBuilder;
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        std::collections::BTreeMap::from([
            (
                "303".to_owned(),
                ResponseBuilder::new()
                    .description(
                        "Done, or refused with a reason: to the console page that shows the \
                         outcome (an invitation's link included) once. Not signed in: to the \
                         sign-in page. Without `confirm=yes`, where an action asks for it: to \
                         its confirmation page.",
                    )
                    .header(
                        "Location",
                        HeaderBuilder::new()
                            .schema(ObjectBuilder::new().schema_type(Type::String))
                            .description(Some(
                                "A page under `/admin`, the sign-in page or the confirmation page",
                            ))
                            .build(),
                    )
                    .build()
                    .into(),
            ),
            (
                "404".to_owned(),
                super::error::page_response(
                    "An error page: no such user, key or application.",
                    "text/html",
                ),
            ),
        ])
    }
}
