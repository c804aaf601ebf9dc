//! `/device`: where a person types the user code of the device authorization grant (RFC 8628
//! §3.3), signed in, then approves or denies on the consent page.

use askama::Template;
use axum::Form;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use netapi_core::NetApi;
use netapi_core::model::{Session, User};
use netapi_core::service::{DeviceRequest, UserCodeError};
use serde::Deserialize;

use super::consent::{ConsentPage, scope_lines};
use super::error::{PageError, PageErrors};
use super::login::login_page;
use super::page::{Chrome, render};
use super::session::current_session;
use crate::extract::ClientIp;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage<'a> {
    chrome: Chrome<'a>,
    heading: &'a str,
    /// The form's error, if any.
    message: Option<&'a str>,
    /// What the code input holds.
    user_code: &'a str,
    csrf: &'a str,
    /// After a decision: what happened (no form).
    done: Option<&'a str>,
}

fn code_form(
    user: &User,
    session: &Session,
    user_code: &str,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    render(
        status,
        &DevicePage {
            chrome: Chrome::signed_in("Connect a device", user, session, true),
            heading: "Connect a device",
            message,
            user_code,
            csrf: &session.csrf_token,
            done: None,
        },
    )
}

fn done_page(user: &User, session: &Session, heading: &str, text: &str) -> Response {
    render(
        StatusCode::OK,
        &DevicePage {
            chrome: Chrome::signed_in("Connect a device", user, session, true),
            heading,
            message: None,
            user_code: "",
            csrf: &session.csrf_token,
            done: Some(text),
        },
    )
}

/// The code form again, saying why the code led nowhere; 429 with `Retry-After` when too
/// many wrong codes came lately.
fn refused(user: &User, session: &Session, typed: &str, error: UserCodeError) -> Response {
    let typed: String = typed.chars().take(32).collect();
    match error {
        UserCodeError::Malformed => code_form(
            user,
            session,
            &typed,
            Some("That is not a device code: codes are 8 letters, like BCDF-GHJK."),
            StatusCode::BAD_REQUEST,
        ),
        UserCodeError::Unknown => code_form(
            user,
            session,
            &typed,
            Some(
                "No device is waiting for this code: it is mistyped, has expired, or was \
                 already used. Check the code your device shows, or start again on the device.",
            ),
            StatusCode::BAD_REQUEST,
        ),
        UserCodeError::Locked { retry_after } => {
            let mut response = code_form(
                user,
                session,
                "",
                Some("Too many wrong codes; wait a minute and try again."),
                StatusCode::TOO_MANY_REQUESTS,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            response
        }
        UserCodeError::Failed(err) => PageError::Core(err).into_response(),
    }
}

fn device_consent(request: &DeviceRequest, user: &User, session: &Session) -> Response {
    render(
        StatusCode::OK,
        &ConsentPage {
            chrome: Chrome::signed_in("Authorize a device", user, session, true),
            client_name: &request.client.name,
            email: &user.email,
            resource: request
                .resource
                .as_ref()
                .map(|r| (r.name.as_str(), r.identifier.as_str())),
            scopes: scope_lines(
                request.scopes,
                request.resource.as_deref(),
                &request.resource_scopes,
            ),
            host: String::new(),
            user_code: Some(&request.user_code),
            csrf: &session.csrf_token,
            action: "/device",
            hidden: vec![("user_code", &request.user_code)],
        },
    )
}

/// Where to come back to after signing in: this page, with the code typed so far.
fn return_path(user_code: &str) -> String {
    if user_code.is_empty() {
        return "/device".to_owned();
    }
    let mut path = "/device?".to_owned();
    path.push_str(
        &url::form_urlencoded::Serializer::new(String::new())
            .append_pair("user_code", user_code)
            .finish(),
    );
    path
}

/// `GET /device`
#[utoipa::path(
    get,
    path = "/device",
    tag = "browser",
    operation_id = "deviceForm",
    params(("user_code" = Option<String>, Query, description = "Fills the code in (from `verification_uri_complete`); at most 32 characters are kept.")),
    responses(
        (status = 200, description = "The form that takes the device's code (signed in), or the sign-in page, which comes back here.", body = String, content_type = "text/html"),
        PageErrors,
    )
)]
pub async fn device_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let user_code: String = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(name, _)| name == "user_code")
        .last()
        .map(|(_, value)| value.chars().take(32).collect())
        .unwrap_or_default();
    let Some((session, user)) = current_session(&state.api, &headers).await else {
        return login_page(
            &state.api,
            &return_path(&user_code),
            Some("Sign in to connect your device."),
            StatusCode::OK,
        );
    };
    code_form(&user, &session, &user_code, None, StatusCode::OK)
}

/// The code form, and the consent form it leads to (with `decision`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct DeviceForm {
    csrf_token: String,
    /// The code the device shows, in any case, with or without the dash.
    user_code: String,
    /// `approve` or `deny` (the consent form); absent: show the consent page.
    #[serde(default)]
    decision: Option<String>,
}

/// `POST /device`: a typed code leads to the consent page; the consent page's `decision`
/// approves or denies the device's request, once.
#[utoipa::path(
    post,
    path = "/device",
    tag = "browser",
    operation_id = "deviceDecide",
    request_body(content = DeviceForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Without `decision`: the consent page naming the client, the resource and the scopes. With it: the page saying the device was connected (or not).", body = String, content_type = "text/html"),
        (status = 400, description = "The code form again, saying the code is malformed, or that no device waits for it (unknown, expired or already used); or an error page for a decision other than `approve` or `deny`.", body = String, content_type = "text/html"),
        (status = 401, description = "The sign-in page: no session (`netapi_session` cookie).", body = String, content_type = "text/html"),
        (status = 403, description = "An error page: the CSRF token does not match the session.", body = String, content_type = "text/html"),
        (status = 415, description = "The body is not `application/x-www-form-urlencoded`.", body = String, content_type = "text/plain"),
        (status = 422, description = "A form field is missing.", body = String, content_type = "text/plain"),
        (status = 429, description = "The code form: too many wrong codes from this address or account, or from everywhere, lately.", body = String, content_type = "text/html",
            headers(("Retry-After" = String, description = "Seconds to wait."))),
        (status = 500, description = "An error page.", body = String, content_type = "text/html"),
        (status = 503, description = "An error page: storage is not answering.", body = String, content_type = "text/html"),
    )
)]
pub async fn device_decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(form): Form<DeviceForm>,
) -> Response {
    let api = &state.api;
    let Some((session, user)) = current_session(api, &headers).await else {
        return login_page(
            api,
            &return_path(&form.user_code.chars().take(32).collect::<String>()),
            Some("Please sign in again."),
            StatusCode::UNAUTHORIZED,
        );
    };
    if !NetApi::csrf_matches(&session, &form.csrf_token) {
        return PageError::Forged(
            "The form expired or did not come from this site; go back and try again.",
        )
        .into_response();
    }
    let approve = match form.decision.as_deref() {
        None => {
            return match api.device_request(&form.user_code, &user.id, &ip).await {
                Ok(request) => device_consent(&request, &user, &session),
                Err(error) => refused(&user, &session, &form.user_code, error),
            };
        }
        Some("approve") => true,
        Some("deny") => false,
        Some(_) => {
            return PageError::Invalid("The decision must be approve or deny.").into_response();
        }
    };
    match api
        .decide_device(&session, &form.user_code, approve, &ip)
        .await
    {
        Ok(request) if approve => {
            tracing::info!(client_id = %request.client.id, user_id = %user.id, "device authorization approved");
            done_page(
                &user,
                &session,
                "Device connected",
                &format!(
                    "{} is now connected to your account. You can close this page and return \
                     to your device.",
                    request.client.name
                ),
            )
        }
        Ok(request) => done_page(
            &user,
            &session,
            "Request denied",
            &format!(
                "{} was not given access. You can close this page.",
                request.client.name
            ),
        ),
        Err(error) => refused(&user, &session, &form.user_code, error),
    }
}
