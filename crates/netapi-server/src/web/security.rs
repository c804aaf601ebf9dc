//! The portal's security page: the second factor (TOTP enrolment with a QR code drawn here,
//! recovery codes, turning it off) and the user's browser sessions.

use askama::Template;
use axum::Form;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use netapi_core::clock::format_rfc3339;
use netapi_core::model::{PasskeyCredential, Session, User};
use netapi_core::secret::Secret;
use netapi_core::service::{MAX_PASSKEYS, MfaStatus, SessionSummary};
use netapi_core::{Error, NetApi};
use serde::Deserialize;

use super::error::PageError;
use super::login::safe_return_to;
use super::page::{Chrome, render};
use super::portal::{Flash, flash_for};
use super::session::{SESSION_COOKIE, set_cookie, signed_in, signed_in_recently};
use crate::extract::ClientIp;
use crate::state::AppState;

struct SessionRow {
    id: String,
    device: String,
    source: String,
    created: String,
    last_seen: String,
    second_factor: bool,
    current: bool,
}

impl From<SessionSummary> for SessionRow {
    fn from(s: SessionSummary) -> Self {
        Self {
            id: s.id,
            device: s.device,
            source: s.source,
            created: format_rfc3339(s.created_at),
            last_seen: format_rfc3339(s.last_seen_at),
            second_factor: s.amr.multi_factor(),
            current: s.current,
        }
    }
}

/// A passkey as the page lists it.
struct PasskeyRow {
    id: String,
    name: String,
    created: String,
    last_used: String,
}

impl From<PasskeyCredential> for PasskeyRow {
    fn from(p: PasskeyCredential) -> Self {
        Self {
            id: p.id,
            name: p.name,
            created: format_rfc3339(p.created_at),
            last_used: p.last_used_at.map(format_rfc3339).unwrap_or_default(),
        }
    }
}

/// An enrolment waiting for its first code.
struct Pending {
    secret: String,
    /// The QR code of the `otpauth://` URI, an SVG drawn here.
    qr_svg: String,
}

#[derive(Template)]
#[template(path = "security.html")]
struct SecurityPage<'a> {
    chrome: Chrome<'a>,
    flash: Option<Flash>,
    csrf: &'a str,
    return_to: &'a str,
    /// Policy wants a second factor this user does not have yet.
    required: bool,
    /// Passkeys can be used here (the issuer's host is a domain name).
    passkeys_enabled: bool,
    passkeys: Vec<PasskeyRow>,
    /// The user has the most passkeys allowed.
    passkeys_full: bool,
    enabled: bool,
    enabled_at: String,
    recovery_left: u64,
    pending: Option<Pending>,
    /// Shown once, after confirming or regenerating.
    recovery_codes: Vec<String>,
    sessions: Vec<SessionRow>,
}

/// The QR code of `text` as an SVG, or nothing if it does not fit one.
fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
        Err(err) => {
            tracing::warn!(error = %err, "no QR code for a TOTP enrolment");
            String::new()
        }
    }
}

/// What a page about `user` shows, with the outcome of an action.
struct Outcome {
    flash: Option<Flash>,
    recovery_codes: Vec<String>,
}

async fn security_page(
    api: &NetApi,
    user: &User,
    session: &Session,
    return_to: &str,
    outcome: Outcome,
) -> Response {
    let status = match api.mfa_status(user).await {
        Ok(status) => status,
        Err(err) => return PageError::Core(err).into_response(),
    };
    let passkeys: Vec<PasskeyRow> = match api.list_passkeys(&user.id).await {
        Ok(list) => list.into_iter().map(PasskeyRow::from).collect(),
        Err(err) => return PageError::Core(err).into_response(),
    };
    let sessions = match api.list_sessions(&user.id, &session.hash).await {
        Ok(list) => list.into_iter().map(SessionRow::from).collect(),
        Err(err) => return PageError::Core(err).into_response(),
    };
    let MfaStatus {
        enabled,
        enabled_at,
        recovery_codes_left,
        pending,
    } = status;
    render(
        StatusCode::OK,
        &SecurityPage {
            chrome: Chrome::signed_in("Security", user, session, false),
            flash: outcome.flash,
            csrf: &session.csrf_token,
            return_to,
            required: api.mfa_required_for(user) && !enabled && passkeys.is_empty(),
            passkeys_enabled: api.passkeys_enabled(),
            passkeys_full: passkeys.len() as u64 >= MAX_PASSKEYS,
            passkeys,
            enabled,
            enabled_at: enabled_at.map(format_rfc3339).unwrap_or_default(),
            recovery_left: recovery_codes_left,
            pending: pending.map(|p| Pending {
                qr_svg: qr_svg(&p.uri),
                secret: p.secret_base32,
            }),
            recovery_codes: outcome.recovery_codes,
            sessions,
        },
    )
}

/// `GET /portal/security`
#[utoipa::path(
    get,
    path = "/portal/security",
    tag = "browser",
    operation_id = "portalSecurity",
    params(
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
        ("return_to" = Option<String>, Query, description = "A local path to continue to once a required second factor is set up."),
    ),
    responses(
        (status = 200, description = "The security page: second factor and sessions.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/login?return_to=/portal/security`"))),
    )
)]
pub async fn security(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some((session, user)) = signed_in(&state.api, &headers).await else {
        return Redirect::to("/login?return_to=/portal/security").into_response();
    };
    let return_to = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "return_to")
        .last()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let return_to = if return_to.is_empty() {
        "/portal"
    } else {
        safe_return_to(&return_to)
    };
    security_page(
        &state.api,
        &user,
        &session,
        return_to,
        Outcome {
            flash: None,
            recovery_codes: Vec::new(),
        },
    )
    .await
}

/// `GET /portal/mfa`: the enrolment address of CONTRACT.md. The security page, with an
/// authenticator's enrolment started for a user who has none (a pending one is shown again,
/// not replaced), so that the key and its QR code are on the page. Nothing is active until
/// the first code confirms it.
#[utoipa::path(
    get,
    path = "/portal/mfa",
    tag = "browser",
    operation_id = "portalMfa",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    responses(
        (status = 200, description = "The security page; for a user without an authenticator app, its enrolment already started: the key as base32 text and a QR code, and a form whose `code` input confirms it.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/login?return_to=/portal/mfa`"))),
    )
)]
pub async fn mfa(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let api = &state.api;
    let Some((session, user)) = signed_in(api, &headers).await else {
        return Redirect::to("/login?return_to=/portal/mfa").into_response();
    };
    let status = match api.mfa_status(&user).await {
        Ok(status) => status,
        Err(err) => return PageError::Core(err).into_response(),
    };
    if !status.enabled
        && status.pending.is_none()
        && let Err(err) = api.start_totp_enrolment(&user).await
    {
        return PageError::Core(err).into_response();
    }
    security_page(
        api,
        &user,
        &session,
        "/portal",
        Outcome {
            flash: None,
            recovery_codes: Vec::new(),
        },
    )
    .await
}

/// A security form: its CSRF token, where to continue to, and what it carries.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SecurityForm {
    csrf_token: String,
    #[serde(default)]
    return_to: String,
    /// A code from the authenticator (confirming enrolment), or a current code or the
    /// password (regenerating recovery codes, turning the second factor off).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    code: Option<Secret>,
}

impl SecurityForm {
    fn code(&self) -> Secret {
        self.code.clone().unwrap_or_else(|| Secret::new(""))
    }
}

/// The session behind a security form whose CSRF token matches, whatever policy still asks.
async fn member(
    api: &NetApi,
    headers: &HeaderMap,
    csrf_token: &str,
) -> Result<(Session, User), Response> {
    let Some((session, user)) = signed_in(api, headers).await else {
        return Err(Redirect::to("/login?return_to=/portal/security").into_response());
    };
    if !NetApi::csrf_matches(&session, csrf_token) {
        return Err(PageError::Forged(
            "The form expired or did not come from this site; reload the page and try again.",
        )
        .into_response());
    }
    Ok((session, user))
}

/// `None` when the session signed in recently enough to add a second factor; otherwise the
/// sign-in page, which says why and comes back to the enrolment page (nothing is done: the
/// step is taken again after). Else a stolen session could bind its thief's authenticator,
/// which then outlives a change of password.
fn stale_for_enrolment(api: &NetApi, session: &Session) -> Option<Response> {
    (!signed_in_recently(api, session))
        .then(|| Redirect::to("/login?reauth=1&return_to=%2Fportal%2Fmfa").into_response())
}

/// The page with an action's outcome; failures of the service itself are error pages.
async fn after(
    api: &NetApi,
    user: &User,
    session: &Session,
    form_return_to: &str,
    outcome: Result<(Flash, Vec<Secret>), Error>,
) -> Response {
    let return_to = if form_return_to.is_empty() {
        "/portal"
    } else {
        safe_return_to(form_return_to)
    };
    let (flash, codes) = match outcome {
        Ok((flash, codes)) => (Ok(flash), codes),
        Err(err) => (Err(err), Vec::new()),
    };
    match flash_for(flash) {
        Ok(flash) => {
            security_page(
                api,
                user,
                session,
                return_to,
                Outcome {
                    flash: Some(flash),
                    recovery_codes: codes.iter().map(|c| c.expose().to_owned()).collect(),
                },
            )
            .await
        }
        Err(page) => page.into_response(),
    }
}

/// `POST /portal/security/totp`: starts (or restarts) setting up an authenticator.
#[utoipa::path(
    post,
    path = "/portal/security/totp",
    tag = "browser",
    operation_id = "portalStartTotp",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = SecurityForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The security page with the new secret (base32 and QR code), waiting for its first code.", body = String, content_type = "text/html"),
        super::error::PortalFormErrors,
    )
)]
pub async fn start_totp(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SecurityForm>,
) -> Response {
    let api = &state.api;
    let (session, user) = match member(api, &headers, &form.csrf_token).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if let Some(again) = stale_for_enrolment(api, &session) {
        return again;
    }
    let outcome = api.start_totp_enrolment(&user).await.map(|_| {
        (
            Flash::Notice(
                "Scan the QR code with your authenticator app, then enter the code it shows."
                    .to_owned(),
            ),
            Vec::new(),
        )
    });
    after(api, &user, &session, &form.return_to, outcome).await
}

/// `POST /portal/security/totp/confirm`: the first code turns the authenticator on.
#[utoipa::path(
    post,
    path = "/portal/security/totp/confirm",
    tag = "browser",
    operation_id = "portalConfirmTotp",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = SecurityForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The security page showing the recovery codes once, or why the code was refused.", body = String, content_type = "text/html"),
        super::error::PortalFormErrors,
    )
)]
pub async fn confirm_totp(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<SecurityForm>,
) -> Response {
    let api = &state.api;
    let (session, user) = match member(api, &headers, &form.csrf_token).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if let Some(again) = stale_for_enrolment(api, &session) {
        return again;
    }
    let outcome = api
        .confirm_totp_enrolment(&user, form.code().expose(), &ip, &session.hash)
        .await
        .map(|codes| {
            (
                Flash::Notice(
                    "Two-step sign-in is on, and your other sessions were signed out. Keep these \
                     recovery codes somewhere safe: each works once, and they will not be shown \
                     again."
                        .to_owned(),
                ),
                codes,
            )
        });
    after(api, &user, &session, &form.return_to, outcome).await
}

/// `POST /portal/security/recovery-codes`: new recovery codes (a current code or the
/// password proves presence); the old ones stop working.
#[utoipa::path(
    post,
    path = "/portal/security/recovery-codes",
    tag = "browser",
    operation_id = "portalRegenerateRecoveryCodes",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = SecurityForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The security page showing the new recovery codes once, or why it was refused.", body = String, content_type = "text/html"),
        super::error::PortalFormErrors,
    )
)]
pub async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<SecurityForm>,
) -> Response {
    let api = &state.api;
    let (session, user) = match member(api, &headers, &form.csrf_token).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let outcome = api
        .regenerate_recovery_codes(&user, &form.code(), &ip)
        .await
        .map(|codes| {
            (
                Flash::Notice(
                    "New recovery codes: the old ones no longer work. They will not be shown \
                     again."
                        .to_owned(),
                ),
                codes,
            )
        });
    after(api, &user, &session, &form.return_to, outcome).await
}

/// `POST /portal/security/totp/disable`: turns the second factor off (a current code or the
/// password proves presence).
#[utoipa::path(
    post,
    path = "/portal/security/totp/disable",
    tag = "browser",
    operation_id = "portalDisableTotp",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = SecurityForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The security page: turned off, or why it was refused.", body = String, content_type = "text/html"),
        super::error::PortalFormErrors,
    )
)]
pub async fn disable_totp(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<SecurityForm>,
) -> Response {
    let api = &state.api;
    let (session, user) = match member(api, &headers, &form.csrf_token).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let outcome = api.disable_mfa(&user, &form.code(), &ip).await.map(|()| {
        (
            Flash::Notice("Two-step sign-in is off.".to_owned()),
            Vec::new(),
        )
    });
    after(api, &user, &session, &form.return_to, outcome).await
}

/// `POST /portal/security/sessions/{id}/end`: ends one of the user's sessions at once.
#[utoipa::path(
    post,
    path = "/portal/security/sessions/{id}/end",
    tag = "browser",
    operation_id = "portalEndSession",
    params(
        ("id" = String, Path, description = "The session's id, as the list shows it."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = SecurityForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The security page: ended, or not found (another user's, or already over).", body = String, content_type = "text/html"),
        (status = 303, description = "The session was this browser's own: signed out, to the sign-in page.",
            headers(("Location" = String, description = "`/login`"))),
        super::error::PortalFormErrors,
    )
)]
pub async fn end_session(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<SecurityForm>,
) -> Response {
    let api = &state.api;
    let (session, user) = match member(api, &headers, &form.csrf_token).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if id.len() > 64 {
        return after(
            api,
            &user,
            &session,
            &form.return_to,
            Err(Error::NotFound("session")),
        )
        .await;
    }
    let own = api
        .list_sessions(&user.id, &session.hash)
        .await
        .is_ok_and(|list| list.iter().any(|s| s.current && s.id == id));
    let ended = api.end_session_by_id(&user.id, &id, &ip).await;
    if own && ended.is_ok() {
        // This browser's own session: it is signed out.
        let mut response = Redirect::to("/login").into_response();
        set_cookie(&mut response, api, SESSION_COOKIE, "", 0);
        return response;
    }
    let outcome = ended.map(|()| {
        (
            Flash::Notice("The session was ended.".to_owned()),
            Vec::new(),
        )
    });
    after(api, &user, &session, &form.return_to, outcome).await
}

/// `POST /portal/security/sessions/end-others`: ends every session of the user but this one.
#[utoipa::path(
    post,
    path = "/portal/security/sessions/end-others",
    tag = "browser",
    operation_id = "portalEndOtherSessions",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = SecurityForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The security page: how many sessions were ended.", body = String, content_type = "text/html"),
        super::error::PortalFormErrors,
    )
)]
pub async fn end_other_sessions(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<SecurityForm>,
) -> Response {
    let api = &state.api;
    let (session, user) = match member(api, &headers, &form.csrf_token).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let outcome = api
        .end_other_sessions(&user.id, &session.hash, &ip)
        .await
        .map(|n| {
            let text = match n {
                0 => "There were no other sessions.".to_owned(),
                1 => "1 other session was ended.".to_owned(),
                n => format!("{n} other sessions were ended."),
            };
            (Flash::Notice(text), Vec::new())
        });
    after(api, &user, &session, &form.return_to, outcome).await
}

/// `POST /portal/security/passkeys/{id}/remove`: removes one of the user's passkeys (a
/// current code or the password proves presence).
#[utoipa::path(
    post,
    path = "/portal/security/passkeys/{id}/remove",
    tag = "browser",
    operation_id = "portalRemovePasskey",
    params(
        ("id" = String, Path, description = "The passkey's id, as the list shows it."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = SecurityForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The security page: removed, or why not (wrong proof, not found, the last second factor where one is required).", body = String, content_type = "text/html"),
        super::error::PortalFormErrors,
    )
)]
pub async fn remove_passkey(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<SecurityForm>,
) -> Response {
    let api = &state.api;
    let (session, user) = match member(api, &headers, &form.csrf_token).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let outcome = if id.len() > 64 {
        Err(Error::NotFound("passkey"))
    } else {
        api.remove_passkey(&user, &id, &form.code(), &ip).await
    };
    let outcome = outcome.map(|()| {
        (
            Flash::Notice("The passkey was removed.".to_owned()),
            Vec::new(),
        )
    });
    after(api, &user, &session, &form.return_to, outcome).await
}
