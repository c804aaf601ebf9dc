//! The portal's webhooks page, for administrators only: the webhooks, their latest
//! deliveries with a redelivery button, a form to register one (its secret shown once) and
//! deletion. Members get the not-found page, as for a page that does not exist.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use netapi_core::clock::format_rfc3339;
use netapi_core::model::{Session, User};
use netapi_core::service::{NewWebhook, PageRequest, Principal, WEBHOOK_EVENTS};
use netapi_core::{Error, NetApi};
use serde::Deserialize;

use super::error::PageError;
use super::flash;
use super::login::CsrfForm;
use super::page::{Chrome, render};
use super::portal::{Flash, Member, admin, flash_for, not_found};
use super::session::current_session;
use crate::extract::ClientIp;
use crate::state::AppState;

/// Deliveries shown per webhook.
const RECENT_DELIVERIES: u32 = 10;

struct DeliveryRow {
    id: String,
    event_type: String,
    status: &'static str,
    attempts: u32,
    response: String,
    created_at: String,
}

struct WebhookRow {
    id: String,
    url: String,
    events: String,
    deliveries: Vec<DeliveryRow>,
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage<'a> {
    chrome: Chrome<'a>,
    flash: Option<Flash>,
    csrf: &'a str,
    webhooks: Vec<WebhookRow>,
    events: &'static [&'static str],
}

async fn webhooks_page(
    api: &NetApi,
    admin: &Principal,
    user: &User,
    session: &Session,
    flash: Option<Flash>,
) -> Response {
    let webhooks = match api.list_webhooks(admin).await {
        Ok(webhooks) => webhooks,
        Err(err) => return PageError::Core(err).into_response(),
    };
    let mut rows = Vec::with_capacity(webhooks.len());
    for webhook in webhooks {
        let deliveries = match api
            .list_webhook_deliveries(
                admin,
                &webhook.id,
                PageRequest {
                    cursor: None,
                    size: RECENT_DELIVERIES,
                },
            )
            .await
        {
            Ok(page) => page.items,
            Err(err) => return PageError::Core(err).into_response(),
        };
        rows.push(WebhookRow {
            deliveries: deliveries
                .into_iter()
                .map(|d| DeliveryRow {
                    response: match (d.last_status_code, d.last_error) {
                        (Some(code), _) => code.to_string(),
                        (None, Some(error)) => error,
                        (None, None) => String::new(),
                    },
                    id: d.id,
                    event_type: d.event_type,
                    status: d.status.as_str(),
                    attempts: d.attempts,
                    created_at: format_rfc3339(d.created_at),
                })
                .collect(),
            events: webhook.events.join(", "),
            id: webhook.id,
            url: webhook.url,
        });
    }
    render(
        StatusCode::OK,
        &WebhooksPage {
            chrome: Chrome::signed_in("Webhooks", user, session, false),
            flash,
            csrf: &session.csrf_token,
            webhooks: rows,
            events: WEBHOOK_EVENTS,
        },
    )
}

/// `GET /portal/webhooks`
#[utoipa::path(
    get,
    path = "/portal/webhooks",
    tag = "browser",
    operation_id = "portalWebhooks",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    responses(
        (status = 200, description = "The webhooks page (administrators).", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/login?return_to=/portal`"))),
        (status = 404, description = "Not an administrator.", body = String, content_type = "text/html"),
        super::error::PageErrors,
    )
)]
pub async fn webhooks(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some((session, user)) = current_session(&state.api, &headers).await else {
        return Redirect::to("/login?return_to=/portal").into_response();
    };
    let Some(admin) = NetApi::session_resource_admin(&user) else {
        return not_found();
    };
    let api = &state.api;
    flash::showing(api, &headers, &session, WEBHOOKS, |flash| {
        webhooks_page(api, &admin, &user, &session, flash)
    })
    .await
}

/// The webhooks page's name for its one-time messages.
const WEBHOOKS: &str = "webhooks";

/// Answers a form of the webhooks page: `303` back to it, which shows the outcome (a new
/// secret included) once; failures of the service itself are error pages.
fn outcome(api: &NetApi, (me, _): &(Member, Principal), outcome: Result<Flash, Error>) -> Response {
    match flash_for(outcome) {
        Ok(flash) => flash::redirect_with(api, &me.session, WEBHOOKS, "/portal/webhooks", flash),
        Err(page) => page.into_response(),
    }
}

/// The form that registers a webhook.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct WebhookForm {
    csrf_token: String,
    #[serde(default)]
    url: String,
    /// Event types separated by spaces or commas.
    #[serde(default)]
    events: String,
}

/// `POST /portal/webhooks`: registers a webhook and shows its secret once.
#[utoipa::path(
    post,
    path = "/portal/webhooks",
    tag = "browser",
    operation_id = "portalCreateWebhook",
    params(("netapi_session" = Option<String>, Cookie, description = "The browser session.")),
    request_body(content = WebhookForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        super::error::PortalFormErrors,
        (status = 303, description = "Done, or refused with a reason: to the webhooks page, which shows the outcome (a new secret included) once. Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/portal/webhooks` or `/login?return_to=/portal`"))),
        (status = 404, description = "Not an administrator.", body = String, content_type = "text/html"),
    )
)]
pub async fn create_webhook(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<WebhookForm>,
) -> Response {
    let me = match admin(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let result = async {
        let (webhook, secret) = state
            .api
            .create_webhook(
                &me.1,
                NewWebhook {
                    url: form.url.trim().to_owned(),
                    events: super::portal::names(&form.events),
                },
                Some(ip.as_str()),
            )
            .await?;
        Ok(Flash::Secret {
            title: format!("Webhook {} registered; its signing secret", webhook.id),
            value: secret.expose().to_owned(),
        })
    }
    .await;
    outcome(&state.api, &me, result)
}

/// `POST /portal/webhooks/{id}/delete`
#[utoipa::path(
    post,
    path = "/portal/webhooks/{id}/delete",
    tag = "browser",
    operation_id = "portalDeleteWebhook",
    params(
        ("id" = String, Path, description = "A webhook id (`whk_...`)."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        super::error::PortalFormErrors,
        (status = 303, description = "Done, or refused with a reason: to the webhooks page, which shows the outcome (a new secret included) once. Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/portal/webhooks` or `/login?return_to=/portal`"))),
        (status = 404, description = "Not an administrator.", body = String, content_type = "text/html"),
    )
)]
pub async fn delete_webhook(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let me = match admin(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let result = state
        .api
        .delete_webhook(&me.1, &id, Some(ip.as_str()))
        .await
        .map(|()| Flash::Notice(format!("Webhook {id} deleted.")));
    outcome(&state.api, &me, result)
}

/// `POST /portal/webhooks/{id}/deliveries/{delivery_id}/redeliver`
#[utoipa::path(
    post,
    path = "/portal/webhooks/{id}/deliveries/{delivery_id}/redeliver",
    tag = "browser",
    operation_id = "portalRedeliverWebhook",
    params(
        ("id" = String, Path, description = "A webhook id (`whk_...`)."),
        ("delivery_id" = String, Path, description = "A delivery id (`whd_...`)."),
        ("netapi_session" = Option<String>, Cookie, description = "The browser session."),
    ),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        super::error::PortalFormErrors,
        (status = 303, description = "Done, or refused with a reason: to the webhooks page, which shows the outcome (a new secret included) once. Not signed in: to the sign-in page.",
            headers(("Location" = String, description = "`/portal/webhooks` or `/login?return_to=/portal`"))),
        (status = 404, description = "Not an administrator.", body = String, content_type = "text/html"),
    )
)]
pub async fn redeliver(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, delivery_id)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let me = match admin(&state.api, &headers, &form.csrf_token).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let result = state
        .api
        .redeliver_webhook_delivery(&me.1, &id, &delivery_id)
        .await
        .map(|d| Flash::Notice(format!("Delivery {} will be attempted again.", d.id)));
    outcome(&state.api, &me, result)
}
