//! Cookies, the browser session and CSRF checks.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use netapi_core::NetApi;
use netapi_core::model::{Session, User};
use netapi_core::secret::constant_time_eq;
use netapi_core::service::SessionOrigin;

pub(super) const SESSION_COOKIE: &str = "netapi_session";
/// The CSRF token of the sign-in and registration forms, which come before any session.
pub(super) const LOGIN_CSRF_COOKIE: &str = "netapi_login_csrf";
/// A sign-in whose password was right and whose second factor is awaited (a signed ticket,
/// bound to the sign-in form's CSRF cookie).
pub(super) const SECOND_FACTOR_COOKIE: &str = "netapi_second_factor";

pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

pub(super) fn set_cookie(
    response: &mut Response,
    api: &NetApi,
    name: &str,
    value: &str,
    max_age: i64,
) {
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

/// How recent a sign-in (password, second factor or passkey) must be for a sensitive change
/// (SECURITY-CHECKLIST: proof of presence): an administrator's change of a role, a disable, a
/// delete, an invitation for an administrator, and adding a second factor to one's own
/// account. A session left open on a shared machine, or a stolen cookie, cannot hand out
/// admin rights or bind a factor of someone else's to the account.
pub(super) const FRESH_SIGN_IN: i64 = 15 * 60;

/// Whether the session signed in within [`FRESH_SIGN_IN`].
pub(super) fn signed_in_recently(api: &NetApi, session: &Session) -> bool {
    session.auth_time >= api.now() - FRESH_SIGN_IN
}

/// The signed-in user, unless policy wants a second factor set up first (then only the
/// security page, through [`signed_in`], and signing out are open to the session).
pub(super) async fn current_session(api: &NetApi, headers: &HeaderMap) -> Option<(Session, User)> {
    let (session, user) = signed_in(api, headers).await?;
    match api.mfa_enrolment_due(&user).await {
        Ok(false) => Some((session, user)),
        Ok(true) => None,
        Err(err) => {
            tracing::warn!(error = %err, "second factor lookup failed");
            None
        }
    }
}

/// What the browser says it is and where it comes from, for the session list.
pub(super) fn session_origin<'a>(headers: &'a HeaderMap, ip: &'a str) -> SessionOrigin<'a> {
    SessionOrigin {
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
        source: Some(ip),
    }
}

/// The session a cookie names, whatever policy still asks of it.
pub(super) async fn signed_in(api: &NetApi, headers: &HeaderMap) -> Option<(Session, User)> {
    let value = cookie(headers, SESSION_COOKIE)?;
    match api.find_session(&value).await {
        Ok(found) => found,
        Err(err) => {
            tracing::warn!(error = %err, "session lookup failed");
            None
        }
    }
}

/// The sign-in and registration forms' token against their cookie (double submit).
pub(super) fn csrf_cookie_matches(headers: &HeaderMap, presented: &str) -> bool {
    // An empty token would let a forger set both halves to nothing.
    cookie(headers, LOGIN_CSRF_COOKIE)
        .is_some_and(|expected| !expected.is_empty() && constant_time_eq(&expected, presented))
}

/// Sets the session cookie and clears the sign-in form's.
pub(super) fn set_session_cookies(response: &mut Response, api: &NetApi, secret: &str) {
    set_cookie(
        response,
        api,
        SESSION_COOKIE,
        secret,
        api.settings().session_ttl,
    );
    set_cookie(response, api, LOGIN_CSRF_COOKIE, "", 0);
    set_cookie(response, api, SECOND_FACTOR_COOKIE, "", 0);
}
