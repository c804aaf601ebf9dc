//! Server-rendered pages: login, consent, registration and the developer portal. They work
//! without JavaScript and load nothing from elsewhere. Every form carries a CSRF token.

use axum::Form;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use netapi_core::clock::format_rfc3339;
use netapi_core::model::{Session, User};
use netapi_core::secret::{Secret, random_base62};
use netapi_core::service::{
    AuthorizationRequest, AuthorizeError, ClientUpdate, NewApiKey, NewClient, NewUser, PageRequest,
    Principal,
};
use netapi_core::{Error, NetApi, Role, Scope};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt::Write;

use crate::AppState;
use crate::extract::ClientIp;

const SESSION_COOKIE: &str = "netapi_session";
const LOGIN_CSRF_COOKIE: &str = "netapi_login_csrf";
/// A login this recent satisfies `prompt=login`.
const FRESH_LOGIN: i64 = 30;

/// The stylesheet; served from here so pages load nothing from elsewhere.
#[utoipa::path(
    get,
    path = "/assets/style.css",
    tag = "browser",
    operation_id = "stylesheet",
    responses((status = 200, description = "The pages' stylesheet.", body = String, content_type = "text/css",
        headers(("Cache-Control" = String, description = "`public, max-age=3600`"))))
)]
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../assets/style.css"),
    )
        .into_response()
}

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn page(
    status: StatusCode,
    title: &str,
    user: Option<&User>,
    csrf: Option<&str>,
    body: &str,
    narrow: bool,
) -> Response {
    let account = match (user, csrf) {
        (Some(user), Some(csrf)) => format!(
            "<span class=\"muted\">{} &middot; <a href=\"/portal\">Portal</a></span> \
             <form class=\"inline\" method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf_token\" value=\"{}\">\
             <button class=\"link\" type=\"submit\">Sign out</button></form>",
            esc(&user.email),
            esc(csrf)
        ),
        _ => String::new(),
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} &middot; Net API</title><link rel=\"stylesheet\" href=\"/assets/style.css\"></head>\
         <body><header><a class=\"brand\" href=\"/portal\">Net API</a><div>{account}</div></header>\
         <main{}>{body}</main></body></html>",
        if narrow { " class=\"narrow\"" } else { "" },
        title = esc(title),
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Pages show new keys and secrets, and carry CSRF tokens: no cache may keep them.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    response
}

fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Something is wrong",
        None,
        None,
        &format!(
            "<section><h1>This request cannot continue</h1><p class=\"error\">{}</p></section>",
            esc(message)
        ),
        true,
    )
}

/// An authorization error for a client that is not trusted with automatic redirects (RFC 9700
/// §4.11.2): the user sees where the link leads and decides whether to follow it. The link is
/// exactly the redirect a trusted client would get.
fn error_link_page(url: &str) -> Response {
    let parsed = url::Url::parse(url).ok();
    let error = parsed
        .as_ref()
        .and_then(|u| u.query_pairs().find(|(name, _)| name == "error"))
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let host = parsed
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| url.to_owned());
    page(
        StatusCode::BAD_REQUEST,
        "Something is wrong",
        None,
        None,
        &format!(
            "<section><h1>This request cannot continue</h1>\
             <p class=\"error\">The application's sign-in request was refused ({error}).</p>\
             <p>You can go back to the application at <strong>{host}</strong>, \
             if you trust it: <a id=\"return\" href=\"{href}\">return to the application</a>.</p></section>",
            error = esc(&error),
            host = esc(&host),
            href = esc(url),
        ),
        true,
    )
}

fn authorize_error(err: AuthorizeError) -> Response {
    match err {
        AuthorizeError::Page(message) => error_page(StatusCode::BAD_REQUEST, &message),
        AuthorizeError::Redirect(url) => Redirect::to(&url).into_response(),
        AuthorizeError::Link(url) => error_link_page(&url),
        AuthorizeError::Failed(err) => error_response(err),
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(response: &mut Response, api: &NetApi, name: &str, value: &str, max_age: i64) {
    let secure = if api.issuer().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    if let Ok(value) = HeaderValue::from_str(&text) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

async fn current_session(api: &NetApi, headers: &HeaderMap) -> Option<(Session, User)> {
    let value = cookie(headers, SESSION_COOKIE)?;
    match api.find_session(&value).await {
        Ok(found) => found,
        Err(err) => {
            tracing::warn!(error = %err, "session lookup failed");
            None
        }
    }
}

fn parse_query(raw: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// Only local paths may be returned to after login: no open redirect. Browsers drop tabs and
/// newlines anywhere in a URL (so `/<TAB>/evil.example` is `//evil.example`) and read `\` as
/// `/`; control characters are refused altogether.
fn safe_return_to(path: &str) -> &str {
    if path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
    {
        path
    } else {
        "/portal"
    }
}

fn login_page(
    api: &NetApi,
    return_to: &str,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    let csrf = random_base62(32);
    let notice = message.map_or_else(String::new, |m| {
        format!("<p class=\"error\">{}</p>", esc(m))
    });
    let body = format!(
        "<section><h1>Sign in</h1>{notice}\
         <form method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"return_to\" value=\"{}\">\
         <label for=\"email\">Email</label><input id=\"email\" type=\"email\" name=\"email\" autocomplete=\"username\" required autofocus>\
         <label for=\"password\">Password</label><input id=\"password\" type=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <div class=\"actions\"><button type=\"submit\">Sign in</button></div></form>\
         <p class=\"muted\">No account? <a href=\"/register\">Create one</a>.</p></section>",
        esc(return_to)
    );
    let mut response = page(status, "Sign in", None, None, &body, true);
    set_cookie(&mut response, api, LOGIN_CSRF_COOKIE, &csrf, 3600);
    response
}

/// `GET /login`
#[utoipa::path(
    get,
    path = "/login",
    tag = "browser",
    operation_id = "loginForm",
    params(("return_to" = Option<String>, Query, description = "A local path to go to after signing in (default `/portal`).")),
    responses((status = 200, description = "The sign-in page; sets the `netapi_login_csrf` cookie.", body = String, content_type = "text/html"))
)]
pub async fn login_form(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let params = parse_query(query.as_deref());
    let return_to = params
        .get("return_to")
        .map_or("/portal", |r| safe_return_to(r));
    login_page(&state.api, return_to, None, StatusCode::OK)
}

/// The login form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginForm {
    email: String,
    #[schema(value_type = String)]
    password: Secret,
    csrf_token: String,
    #[serde(default)]
    return_to: String,
}

fn csrf_cookie_matches(headers: &HeaderMap, presented: &str) -> bool {
    use subtle_eq::eq;
    // An empty token would let a forger set both halves to nothing.
    cookie(headers, LOGIN_CSRF_COOKIE)
        .is_some_and(|expected| !expected.is_empty() && eq(&expected, presented))
}

mod subtle_eq {
    /// Constant-time string comparison.
    pub fn eq(a: &str, b: &str) -> bool {
        a.len() == b.len()
            && a.bytes()
                .zip(b.bytes())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0
    }
}

/// `POST /login`: checks the password, rotates the session, returns to where the user was.
#[utoipa::path(
    post,
    path = "/login",
    tag = "browser",
    operation_id = "login",
    params(("netapi_login_csrf" = Option<String>, Cookie, description = "The sign-in form's CSRF token, set with the form."), ("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: on to `return_to`, with a new `netapi_session` cookie.",
            headers(("Location" = String, description = "`return_to`, a local path."))),
        (status = 401, description = "The sign-in page again: wrong email or password.", body = String, content_type = "text/html"),
        (status = 403, description = "The sign-in page again: the form expired (CSRF token and cookie differ).", body = String, content_type = "text/html"),
        crate::openapi::PageErrors,
        crate::openapi::FormErrors,
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let return_to = safe_return_to(&form.return_to).to_owned();
    if !csrf_cookie_matches(&headers, &form.csrf_token) {
        return login_page(
            &state.api,
            &return_to,
            Some("Your sign-in form expired. Please try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let user = match state.api.login(&form.email, &form.password, &ip).await {
        Ok(user) => user,
        Err(Error::RateLimited { retry_after }) => {
            let mut response = login_page(
                &state.api,
                &return_to,
                Some(&format!(
                    "Too many failed sign-in attempts. Try again in {retry_after} seconds."
                )),
                StatusCode::TOO_MANY_REQUESTS,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            return response;
        }
        Err(Error::Unauthenticated(_)) => {
            return login_page(
                &state.api,
                &return_to,
                Some("Invalid email or password."),
                StatusCode::UNAUTHORIZED,
            );
        }
        Err(err) => return error_response(err),
    };
    start_session_response(
        &state.api,
        &headers,
        &user,
        Redirect::to(&return_to).into_response(),
    )
    .await
}

async fn start_session_response(
    api: &NetApi,
    headers: &HeaderMap,
    user: &User,
    mut response: Response,
) -> Response {
    if let Some(old) = cookie(headers, SESSION_COOKIE)
        && let Err(err) = api.end_session(&old).await
    {
        tracing::warn!(error = %err, "could not end the previous session");
    }
    let (secret, _) = match api.start_session(user).await {
        Ok(started) => started,
        Err(err) => return error_response(err),
    };
    set_cookie(
        &mut response,
        api,
        SESSION_COOKIE,
        secret.expose(),
        api.settings().session_ttl,
    );
    set_cookie(&mut response, api, LOGIN_CSRF_COOKIE, "", 0);
    response
}

fn with_retry_after(mut response: Response, seconds: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

fn error_response(err: Error) -> Response {
    match err {
        Error::Unavailable => error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is temporarily unavailable.",
        ),
        Error::Internal(detail) | Error::Misconfigured(detail) => {
            tracing::error!(error = %detail, "page failed");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side.",
            )
        }
        Error::RateLimited { retry_after } => with_retry_after(
            error_page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts; try again later.",
            ),
            retry_after,
        ),
        Error::Busy { retry_after } => with_retry_after(
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy; try again in a moment.",
            ),
            retry_after,
        ),
        other => error_page(StatusCode::BAD_REQUEST, &other.to_string()),
    }
}

/// The sign-out form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CsrfForm {
    csrf_token: String,
}

/// `POST /logout`
#[utoipa::path(
    post,
    path = "/logout",
    tag = "browser",
    operation_id = "logout",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed out (or not signed in): on to the sign-in page.",
            headers(("Location" = String, description = "`/login`"))),
        (status = 403, description = "An error page: the CSRF token does not match the session.", body = String, content_type = "text/html"),
        crate::openapi::PageErrors,
        crate::openapi::FormErrors,
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let Some((session, _)) = current_session(&state.api, &headers).await else {
        return Redirect::to("/login").into_response();
    };
    if !NetApi::csrf_matches(&session, &form.csrf_token) {
        return error_page(
            StatusCode::FORBIDDEN,
            "The form expired; go back and try again.",
        );
    }
    if let Some(value) = cookie(&headers, SESSION_COOKIE)
        && let Err(err) = state.api.end_session(&value).await
    {
        return error_response(err);
    }
    let mut response = Redirect::to("/login").into_response();
    set_cookie(&mut response, &state.api, SESSION_COOKIE, "", 0);
    response
}

fn consent_page(
    request: &AuthorizationRequest,
    raw_query: &str,
    user: &User,
    session: &Session,
) -> Response {
    let scopes: String = request
        .scopes
        .iter()
        .map(|s| {
            format!(
                "<li><strong>{}</strong> <span class=\"muted\">({})</span></li>",
                esc(s.description()),
                esc(s.as_str())
            )
        })
        .collect();
    let host = url::Url::parse(&request.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| request.redirect_uri.clone());
    let body = format!(
        "<section><h1>Authorize {name}</h1>\
         <p><strong>{name}</strong> wants to use your Net API account <strong>{email}</strong>. It will be able to:</p>\
         <ul class=\"scopes\">{scopes}</ul>\
         <p class=\"muted\">You will be sent back to {host}. You can withdraw this access at any time from your portal.</p>\
         <form method=\"post\" action=\"/oauth/authorize\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"request\" value=\"{query}\">\
         <div class=\"actions\"><button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button>\
         <button class=\"secondary\" type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></div></form></section>",
        name = esc(&request.client.name),
        email = esc(&user.email),
        host = esc(&host),
        csrf = esc(&session.csrf_token),
        query = esc(raw_query),
    );
    page(
        StatusCode::OK,
        "Authorize",
        Some(user),
        Some(&session.csrf_token),
        &body,
        true,
    )
}

/// Parses and validates the parameters of an authorization request (the query string, or
/// the consent form's copy of it). A parameter given twice is refused (RFC 6749 §3.1).
async fn validated(api: &NetApi, raw: &str) -> Result<AuthorizationRequest, Response> {
    let mut params = HashMap::new();
    let mut repeated = None;
    for (name, value) in url::form_urlencoded::parse(raw.as_bytes()).into_owned() {
        if params.contains_key(&name) {
            repeated.get_or_insert_with(|| name.clone());
        }
        params.insert(name, value);
    }
    api.validate_authorization(&params, repeated.as_deref())
        .await
        .map_err(authorize_error)
}

/// `GET /oauth/authorize`: sign in if needed, ask consent if needed, then redirect with a code.
#[utoipa::path(
    get,
    path = "/oauth/authorize",
    tag = "oauth",
    operation_id = "authorize",
    params(crate::openapi::AuthorizeQuery),
    responses(
        (status = 200, description = "The sign-in page, or the consent page for a signed-in user (`netapi_session` cookie).", body = String, content_type = "text/html"),
        (status = 303, description = "Back to the client's `redirect_uri` with `code`, `state` and `iss` (RFC 9207), or with `error`, `error_description`, `state` and `iss` (for errors before the user has seen the request, only to clients marked `trusted`).",
            headers(("Location" = String, description = "The client's redirect URI with the answer in its query."))),
        (status = 400, description = "An error page: an unknown `client_id` or a `redirect_uri` that does not match is never redirected to. For a client not marked `trusted`, an error found before the user has seen the request (a bad parameter, or `prompt=none` without a session or consent) is shown on a page whose link (`id=\"return\"`) is the redirect a trusted client would get (RFC 9700 §4.11.2).", body = String, content_type = "text/html"),
        (status = 429, description = "An error page: too many attempts.", body = String, content_type = "text/html"),
        (status = 500, description = "An error page.", body = String, content_type = "text/html"),
        (status = 503, description = "An error page: storage is not answering.", body = String, content_type = "text/html"),
    )
)]
pub async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let raw = query.unwrap_or_default();
    let request = match validated(&state.api, &raw).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    let api = &state.api;
    let issuer = api.issuer().to_owned();
    let session = current_session(api, &headers).await;
    let fresh = session
        .as_ref()
        .is_some_and(|(s, _)| api.now() - s.auth_time <= FRESH_LOGIN);
    let session = session.filter(|(s, _)| api.session_satisfies(&request, s, fresh));
    let Some((session, user)) = session else {
        if request.prompt_none {
            return authorize_error(request.early_error(
                &issuer,
                "login_required",
                "the user is not signed in",
            ));
        }
        return login_page(
            api,
            &format!("/oauth/authorize?{raw}"),
            None,
            StatusCode::OK,
        );
    };
    match api.has_consent(&user.id, &request).await {
        Ok(true) => match api.approve(&session, &request, false).await {
            Ok(url) => Redirect::to(&url).into_response(),
            Err(err) => error_response(err),
        },
        Ok(false) if request.prompt_none => authorize_error(request.early_error(
            &issuer,
            "consent_required",
            "the user has not approved this application",
        )),
        Ok(false) => consent_page(&request, &raw, &user, &session),
        Err(err) => error_response(err),
    }
}

/// The consent form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ConsentForm {
    csrf_token: String,
    request: String,
    decision: String,
}

/// `POST /oauth/authorize`: the user's decision.
#[utoipa::path(
    post,
    path = "/oauth/authorize",
    tag = "oauth",
    operation_id = "decide",
    request_body(content = ConsentForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Back to the client's `redirect_uri` with `code` (approved) or `error=access_denied` (denied), `state` and `iss`.",
            headers(("Location" = String, description = "The client's redirect URI with the answer in its query."))),
        (status = 400, description = "An error page: the request is not valid, or the decision is neither `approve` nor `deny`.", body = String, content_type = "text/html"),
        (status = 401, description = "The sign-in page: no session (`netapi_session` cookie).", body = String, content_type = "text/html"),
        (status = 403, description = "An error page: the CSRF token does not match the session.", body = String, content_type = "text/html"),
        (status = 415, description = "The body is not `application/x-www-form-urlencoded`.", body = String, content_type = "text/plain"),
        (status = 422, description = "A form field is missing.", body = String, content_type = "text/plain"),
        (status = 429, description = "An error page: too many attempts.", body = String, content_type = "text/html"),
        (status = 500, description = "An error page.", body = String, content_type = "text/html"),
        (status = 503, description = "An error page: storage is not answering.", body = String, content_type = "text/html"),
    )
)]
pub async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ConsentForm>,
) -> Response {
    let api = &state.api;
    let request = match validated(api, &form.request).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    let Some((session, user)) = current_session(api, &headers).await else {
        return login_page(
            api,
            &format!("/oauth/authorize?{}", form.request),
            Some("Please sign in again."),
            StatusCode::UNAUTHORIZED,
        );
    };
    if !NetApi::csrf_matches(&session, &form.csrf_token) {
        return error_page(
            StatusCode::FORBIDDEN,
            "The form expired or did not come from this site; go back and try again.",
        );
    }
    match form.decision.as_str() {
        "approve" => match api.approve(&session, &request, true).await {
            Ok(url) => {
                tracing::info!(client_id = %request.client.id, user_id = %user.id, "authorization approved");
                Redirect::to(&url).into_response()
            }
            Err(err) => error_response(err),
        },
        "deny" => Redirect::to(&request.error_redirect(
            api.issuer(),
            "access_denied",
            "the user denied the request",
        ))
        .into_response(),
        _ => error_page(
            StatusCode::BAD_REQUEST,
            "The decision must be approve or deny.",
        ),
    }
}

/// `GET /register`
#[utoipa::path(
    get,
    path = "/register",
    tag = "browser",
    operation_id = "registerForm",
    responses((status = 200, description = "The registration page; sets the `netapi_login_csrf` cookie.", body = String, content_type = "text/html"))
)]
pub async fn register_form(State(state): State<AppState>) -> Response {
    register_page(&state.api, None, StatusCode::OK)
}

fn register_page(api: &NetApi, message: Option<&str>, status: StatusCode) -> Response {
    let csrf = random_base62(32);
    let notice = message.map_or_else(String::new, |m| {
        format!("<p class=\"error\">{}</p>", esc(m))
    });
    let body = format!(
        "<section><h1>Create your account</h1>{notice}\
         <form method=\"post\" action=\"/register\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <label for=\"name\">Name</label><input id=\"name\" type=\"text\" name=\"name\" autocomplete=\"name\" required>\
         <label for=\"email\">Email</label><input id=\"email\" type=\"email\" name=\"email\" autocomplete=\"username\" required>\
         <label for=\"password\">Password</label><input id=\"password\" type=\"password\" name=\"password\" autocomplete=\"new-password\" minlength=\"8\" maxlength=\"128\" required>\
         <p class=\"muted\">8 to 128 characters.</p>\
         <div class=\"actions\"><button type=\"submit\">Create account</button></div></form>\
         <p class=\"muted\">Already registered? <a href=\"/login\">Sign in</a>.</p></section>"
    );
    let mut response = page(status, "Create your account", None, None, &body, true);
    set_cookie(&mut response, api, LOGIN_CSRF_COOKIE, &csrf, 3600);
    response
}

/// The registration form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RegisterForm {
    csrf_token: String,
    #[schema(schema_with = crate::openapi::name_schema)]
    name: String,
    #[schema(schema_with = crate::openapi::email_schema)]
    email: String,
    #[schema(schema_with = crate::openapi::password_schema)]
    password: Secret,
}

/// `POST /register`: creates the account, signs in, shows the first key once.
#[utoipa::path(
    post,
    path = "/register",
    tag = "browser",
    operation_id = "registerPage",
    params(("netapi_login_csrf" = Option<String>, Cookie, description = "The sign-in form's CSRF token, set with the form."), ("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = RegisterForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The portal, signed in, showing the first API key once.", body = String, content_type = "text/html"),
        (status = 403, description = "The registration page again: the form expired.", body = String, content_type = "text/html"),
        (status = 409, description = "The registration page again: the email is taken.", body = String, content_type = "text/html"),
        crate::openapi::PageErrors,
        crate::openapi::FormErrors,
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<RegisterForm>,
) -> Response {
    let api = &state.api;
    if !csrf_cookie_matches(&headers, &form.csrf_token) {
        return register_page(
            api,
            Some("Your form expired. Please try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let registered = api
        .register(
            NewUser {
                email: form.email,
                password: form.password,
                name: form.name,
                role: Role::Member,
            },
            Some(&ip),
        )
        .await;
    let (user, key, secret) = match registered {
        Ok(done) => done,
        Err(Error::InvalidArgument { message, field }) => {
            let text = format!("{} {message}.", field.unwrap_or_default());
            return register_page(api, Some(text.trim()), StatusCode::BAD_REQUEST);
        }
        Err(Error::AlreadyExists(message)) => {
            return register_page(api, Some(&message), StatusCode::CONFLICT);
        }
        Err(err) => return error_response(err),
    };
    let (session_secret, session) = match api.start_session(&user).await {
        Ok(started) => started,
        Err(err) => return error_response(err),
    };
    let flash = Flash::Secret {
        title: format!("Welcome! Your first API key, \"{}\"", key.name),
        value: secret.expose().to_owned(),
    };
    let mut response = portal_page(api, &user, &session, Some(flash)).await;
    set_cookie(
        &mut response,
        api,
        SESSION_COOKIE,
        session_secret.expose(),
        api.settings().session_ttl,
    );
    set_cookie(&mut response, api, LOGIN_CSRF_COOKIE, "", 0);
    response
}

/// A message shown once at the top of the portal.
enum Flash {
    Secret { title: String, value: String },
    Notice(String),
    Error(String),
}

fn when(ts: Option<i64>) -> String {
    ts.map_or_else(|| "never".to_owned(), format_rfc3339)
}

async fn portal_page(
    api: &NetApi,
    user: &User,
    session: &Session,
    flash: Option<Flash>,
) -> Response {
    let principal = NetApi::session_principal(user);
    let csrf = esc(&session.csrf_token);
    let mut body = String::from("<h1>Developer portal</h1>");
    match flash {
        Some(Flash::Secret { title, value }) => {
            let _ = write!(
                body,
                "<div class=\"notice\"><strong>{}</strong> &mdash; copy it now, it will not be shown again:<code class=\"secret\" id=\"new-secret\">{}</code></div>",
                esc(&title),
                esc(&value)
            );
        }
        Some(Flash::Notice(text)) => {
            let _ = write!(body, "<div class=\"notice\">{}</div>", esc(&text));
        }
        Some(Flash::Error(text)) => {
            let _ = write!(body, "<div class=\"error\">{}</div>", esc(&text));
        }
        None => {}
    }
    let keys = api
        .list_api_keys(
            &principal,
            PageRequest {
                cursor: None,
                size: 100,
            },
        )
        .await
        .map(|p| p.items)
        .unwrap_or_default();
    body.push_str("<section><h2>API keys</h2>");
    if keys.is_empty() {
        body.push_str("<p class=\"muted\">You have no API keys.</p>");
    } else {
        body.push_str("<table><tr><th>Name</th><th>Key</th><th>Created</th><th>Last used</th><th>Expires</th><th></th></tr>");
        for key in &keys {
            let _ = write!(
                body,
                "<tr><td>{name}</td><td><code>{prefix}&hellip;{last}</code></td><td>{created}</td><td>{used}</td><td>{expires}</td><td>\
                 <form class=\"inline\" method=\"post\" action=\"/portal/keys/{id}/rotate\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\"><button class=\"secondary\" type=\"submit\">Rotate</button></form> \
                 <form class=\"inline\" method=\"post\" action=\"/portal/keys/{id}/revoke\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\"><button class=\"danger\" type=\"submit\">Revoke</button></form></td></tr>",
                name = esc(&key.name),
                prefix = esc(&key.prefix),
                last = esc(&key.last_four),
                created = format_rfc3339(key.created_at),
                used = when(key.last_used_at),
                expires = when(key.expires_at),
                id = esc(&key.id),
            );
        }
        body.push_str("</table>");
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/portal/keys\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <label for=\"key-name\">New key name</label><input id=\"key-name\" type=\"text\" name=\"name\" required>\
         <label for=\"key-days\">Expires after (days, empty for never)</label><input id=\"key-days\" type=\"number\" name=\"expires_in_days\" min=\"1\" max=\"3650\">\
         <div class=\"actions\"><button type=\"submit\">Create API key</button></div></form></section>"
    );
    let clients = api
        .list_clients(
            &principal,
            PageRequest {
                cursor: None,
                size: 100,
            },
        )
        .await
        .map(|p| p.items)
        .unwrap_or_default();
    body.push_str("<section><h2>OAuth applications</h2>");
    if clients.is_empty() {
        body.push_str("<p class=\"muted\">You have registered no applications.</p>");
    }
    for client in &clients {
        let grants: Vec<&str> = client.grant_types.iter().map(|g| g.as_str()).collect();
        let _ = write!(
            body,
            "<div class=\"card\"><h2>{name}</h2><p class=\"muted\">client_id <code>{id}</code> &middot; {kind} &middot; {grants}</p>\
             <form method=\"post\" action=\"/portal/clients/{id}/redirect-uris\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
             <label>Redirect URIs (one per line)</label><textarea name=\"redirect_uris\">{uris}</textarea>\
             <div class=\"actions\"><button class=\"secondary\" type=\"submit\">Save redirect URIs</button></div></form>\
             <div class=\"actions\">{rotate}\
             <form class=\"inline\" method=\"post\" action=\"/portal/clients/{id}/delete\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\"><button class=\"danger\" type=\"submit\">Delete application</button></form></div></div>",
            name = esc(&client.name),
            id = esc(&client.id),
            kind = if client.is_public() {
                "public client"
            } else {
                "confidential client"
            },
            grants = esc(&grants.join(", ")),
            uris = esc(&client.redirect_uris.join("\n")),
            rotate = if client.is_public() {
                String::new()
            } else {
                format!(
                    "<form class=\"inline\" method=\"post\" action=\"/portal/clients/{}/rotate-secret\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\"><button class=\"secondary\" type=\"submit\">Rotate secret</button></form>",
                    esc(&client.id)
                )
            },
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/portal/clients\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <label for=\"client-name\">Application name</label><input id=\"client-name\" type=\"text\" name=\"name\" required>\
         <label for=\"client-kind\">Kind</label><select id=\"client-kind\" name=\"kind\">\
         <option value=\"web\">Web application (server side, with a secret)</option>\
         <option value=\"native\">Native or single-page app (public, PKCE)</option>\
         <option value=\"service\">Service (client credentials)</option></select>\
         <label for=\"client-uris\">Redirect URIs (one per line)</label><textarea id=\"client-uris\" name=\"redirect_uris\"></textarea>\
         <div class=\"actions\"><button type=\"submit\">Register application</button></div></form></section>"
    );
    let apps = api.authorized_apps(&user.id).await.unwrap_or_default();
    body.push_str("<section><h2>Applications you authorized</h2>");
    if apps.is_empty() {
        body.push_str("<p class=\"muted\">You have authorized no applications.</p>");
    } else {
        body.push_str("<table><tr><th>Application</th><th>Access</th><th>Since</th><th></th></tr>");
        for (consent, client) in &apps {
            let _ = write!(
                body,
                "<tr><td>{name}</td><td>{scopes}</td><td>{since}</td><td><form class=\"inline\" method=\"post\" action=\"/portal/authorizations/{id}/withdraw\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\"><button class=\"danger\" type=\"submit\">Withdraw</button></form></td></tr>",
                name = esc(client
                    .as_ref()
                    .map_or(consent.client_id.as_str(), |c| c.name.as_str())),
                scopes = esc(&consent.scopes.to_string()),
                since = format_rfc3339(consent.granted_at),
                id = esc(&consent.client_id),
            );
        }
        body.push_str("</table>");
    }
    body.push_str("</section>");
    page(
        StatusCode::OK,
        "Developer portal",
        Some(user),
        Some(&session.csrf_token),
        &body,
        false,
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

/// A portal form: the CSRF token and whatever fields the action takes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PortalForm {
    csrf_token: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires_in_days: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    redirect_uris: String,
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `POST /portal/{resource}/{id}/{action}` and `POST /portal/{resource}`.
#[utoipa::path(
    post,
    path = "/portal/{action}",
    tag = "browser",
    operation_id = "portalAction",
    params(
        ("action" = String, Path, description = "What the portal's form does: `keys`, `keys/{id}/rotate`, `keys/{id}/revoke`, `clients`, `clients/{id}/rotate-secret`, `clients/{id}/delete`, `clients/{id}/redirect-uris` or `authorizations/{client_id}/withdraw` (slashes percent-encoded here)."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = PortalForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The portal with the outcome (a new secret is shown once).", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/login?return_to=/portal`"))),
        (status = 403, description = "An error page: the CSRF token does not match the session.", body = String, content_type = "text/html"),
        (status = 404, description = "An error page: no such action.", body = String, content_type = "text/html"),
        crate::openapi::PageErrors,
        crate::openapi::FormErrors,
    )
)]
pub async fn portal_action(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(path): Path<String>,
    Form(form): Form<PortalForm>,
) -> Response {
    let api = &state.api;
    let Some((session, user)) = current_session(api, &headers).await else {
        return Redirect::to("/login?return_to=/portal").into_response();
    };
    if !NetApi::csrf_matches(&session, &form.csrf_token) {
        return error_page(
            StatusCode::FORBIDDEN,
            "The form expired or did not come from this site; reload the portal and try again.",
        );
    }
    let principal: Principal = NetApi::session_principal(&user);
    let ip = Some(ip.as_str());
    let segments: Vec<&str> = path.split('/').collect();
    let outcome: Result<Flash, Error> = match segments.as_slice() {
        ["keys"] => {
            let expires_at = match form.expires_in_days.trim() {
                "" => Ok(None),
                days => days
                    .parse::<i64>()
                    .ok()
                    .filter(|d| (1..=3650).contains(d))
                    .map(|d| Some(api.now() + d * 86_400))
                    .ok_or_else(|| {
                        Error::invalid("expires_in_days", "must be a number of days from 1 to 3650")
                    }),
            };
            match expires_at {
                Ok(expires_at) => api
                    .create_api_key(
                        &principal,
                        NewApiKey {
                            name: form.name.clone(),
                            scopes: None,
                            expires_at,
                            rate_limit: None,
                        },
                        ip,
                    )
                    .await
                    .map(|(key, secret)| Flash::Secret {
                        title: format!("Your new API key \"{}\"", key.name),
                        value: secret.expose().to_owned(),
                    }),
                Err(err) => Err(err),
            }
        }
        ["keys", id, "revoke"] => api
            .revoke_api_key(&principal, id, ip)
            .await
            .map(|()| Flash::Notice("The key was revoked; it no longer works.".to_owned())),
        ["keys", id, "rotate"] => {
            api.rotate_api_key(&principal, id, Some(0), ip)
                .await
                .map(|(key, secret)| Flash::Secret {
                    title: format!(
                        "The new value of \"{}\" (the old one no longer works)",
                        key.name
                    ),
                    value: secret.expose().to_owned(),
                })
        }
        ["clients"] => {
            let (grants, method) = match form.kind.as_str() {
                "native" => (vec!["authorization_code", "refresh_token"], "none"),
                "service" => (vec!["client_credentials"], "client_secret_basic"),
                _ => (
                    vec!["authorization_code", "refresh_token"],
                    "client_secret_basic",
                ),
            };
            api.create_client(
                &principal,
                NewClient {
                    name: form.name.clone(),
                    redirect_uris: lines(&form.redirect_uris),
                    grant_types: Some(grants.into_iter().map(str::to_owned).collect()),
                    scope: Some(principal.scopes.without(Scope::Admin).to_string()),
                    auth_method: Some(method.to_owned()),
                    rate_limit: None,
                    trusted: false,
                },
                ip,
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
        }
        ["clients", id, "rotate-secret"] => {
            api.rotate_client_secret(&principal, id, ip)
                .await
                .map(|(client, secret)| Flash::Secret {
                    title: format!(
                        "The new secret of \"{}\" (the old one no longer works)",
                        client.name
                    ),
                    value: secret.expose().to_owned(),
                })
        }
        ["clients", id, "delete"] => api.delete_client(&principal, id, ip).await.map(|()| {
            Flash::Notice("The application was deleted and its tokens revoked.".to_owned())
        }),
        ["clients", id, "redirect-uris"] => api
            .update_client(
                &principal,
                id,
                ClientUpdate {
                    redirect_uris: Some(lines(&form.redirect_uris)),
                    ..ClientUpdate::default()
                },
                ip,
            )
            .await
            .map(|_| Flash::Notice("Redirect URIs saved.".to_owned())),
        ["authorizations", client_id, "withdraw"] => api
            .withdraw_consent(&user.id, client_id, ip)
            .await
            .map(|()| {
                Flash::Notice(
                    "Access withdrawn; the application's tokens no longer work.".to_owned(),
                )
            }),
        _ => return error_page(StatusCode::NOT_FOUND, "No such page."),
    };
    let flash = match outcome {
        Ok(flash) => flash,
        Err(Error::Unavailable) | Err(Error::Internal(_)) | Err(Error::RateLimited { .. }) => {
            return error_response(outcome.err().unwrap_or(Error::Unavailable));
        }
        Err(Error::InvalidArgument { field, message }) => Flash::Error(
            format!("{} {message}.", field.unwrap_or_default())
                .trim()
                .to_owned(),
        ),
        Err(other) => Flash::Error(other.to_string()),
    };
    portal_page(api, &user, &session, Some(flash)).await
}

/// `GET /`
#[utoipa::path(
    get,
    path = "/",
    tag = "browser",
    operation_id = "home",
    responses((status = 303, description = "To the portal.", headers(("Location" = String, description = "`/portal`"))))
)]
pub async fn home() -> Redirect {
    Redirect::to("/portal")
}
