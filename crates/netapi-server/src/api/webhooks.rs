//! `/v1/webhooks` (admins only): endpoints that receive signed events, and their
//! deliveries. Parse, call one operation, render.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use netapi_core::service::NewWebhook;
use serde::Deserialize;
use utoipa::ToSchema;

use super::pagination::PageQuery;
use crate::dto::webhooks::{DeliveryList, DeliveryView, NewWebhookView, WebhookList, WebhookView};
use crate::dto::{NO_STORE, NoStore};
use crate::error::{ApiError, ApiResult, AuthErrors, BodyErrors, InvalidErrors, NotFoundErrors};
use crate::extract::{ApiJson, ApiQuery, Auth, ClientIp};
use crate::state::AppState;

/// `POST /v1/webhooks`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookBody {
    /// Where deliveries are POSTed: `https` (`http` only where the server allows private
    /// targets), at most 2048 characters, never to a loopback, private or link-local address.
    #[schema(max_length = 2048)]
    url: String,
    /// Event types, e.g. `api_key.revoked`; see the webhooks guide for the list.
    #[schema(min_items = 1, max_items = 10)]
    events: Vec<String>,
}

/// Registers a webhook; its signing secret is shown this once.
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    tag = "webhooks",
    operation_id = "createWebhook",
    request_body = NewWebhookBody,
    security(("bearer" = ["admin"]), ("oauth2" = ["admin"])),
    responses(
        (status = 201, description = "The webhook and its secret, shown this once.", body = NewWebhookView, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`")), links(("getWebhook" = (operation_id = "getWebhook", parameters(("id" = "$response.body#/id")))), ("listWebhookDeliveries" = (operation_id = "listWebhookDeliveries", parameters(("id" = "$response.body#/id")))), ("deleteWebhook" = (operation_id = "deleteWebhook", parameters(("id" = "$response.body#/id")))))),
        BodyErrors,
        AuthErrors,
    )
)]
pub async fn create_webhook(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<NewWebhookBody>,
) -> ApiResult<(StatusCode, NoStore, Json<NewWebhookView>)> {
    if body.events.len() > netapi_core::service::WEBHOOK_EVENTS.len() {
        return Err(ApiError::invalid("events", "lists too many event types"));
    }
    let (webhook, secret) = state
        .api
        .create_webhook(
            &caller,
            NewWebhook {
                url: body.url,
                events: body.events,
            },
            Some(&ip),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        NO_STORE,
        Json(NewWebhookView::new(&webhook, &secret)),
    ))
}

/// Lists the webhooks.
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "webhooks",
    operation_id = "listWebhooks",
    security(("bearer" = ["admin"]), ("oauth2" = ["admin"])),
    responses(
        (status = 200, description = "Live webhooks, oldest first.", body = WebhookList),
        AuthErrors,
    )
)]
pub async fn list_webhooks(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> ApiResult<Json<WebhookList>> {
    let webhooks = state.api.list_webhooks(&caller).await?;
    Ok(Json(WebhookList {
        webhooks: webhooks.iter().map(WebhookView::of).collect(),
    }))
}

/// One webhook.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    operation_id = "getWebhook",
    params(("id" = String, Path, description = "A webhook id (`whk_...`).")),
    security(("bearer" = ["admin"]), ("oauth2" = ["admin"])),
    responses(
        (status = 200, description = "The webhook.", body = WebhookView),
        NotFoundErrors,
        AuthErrors,
    )
)]
pub async fn get_webhook(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookView>> {
    let webhook = state.api.get_webhook(&caller, &id).await?;
    Ok(Json(WebhookView::of(&webhook)))
}

/// Deletes a webhook: nothing more is delivered to it.
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    operation_id = "deleteWebhook",
    params(("id" = String, Path, description = "A webhook id (`whk_...`).")),
    security(("bearer" = ["admin"]), ("oauth2" = ["admin"])),
    responses(
        (status = 204, description = "Deleted."),
        NotFoundErrors,
        AuthErrors,
    )
)]
pub async fn delete_webhook(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.api.delete_webhook(&caller, &id, Some(&ip)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A webhook's deliveries, newest first.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    operation_id = "listWebhookDeliveries",
    params(("id" = String, Path, description = "A webhook id (`whk_...`)."), PageQuery),
    security(("bearer" = ["admin"]), ("oauth2" = ["admin"])),
    responses(
        (status = 200, description = "Deliveries with status, response code and attempts.", body = DeliveryList),
        InvalidErrors,
        NotFoundErrors,
        AuthErrors,
    )
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<DeliveryList>> {
    let page = state
        .api
        .list_webhook_deliveries(&caller, &id, query.request("whd")?)
        .await?;
    Ok(Json(DeliveryList {
        deliveries: page.items.iter().map(DeliveryView::of).collect(),
        next_page_token: page.next_page_token,
    }))
}

/// Delivers an event again, soon, whatever became of it.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
    tag = "webhooks",
    operation_id = "redeliverWebhookDelivery",
    params(
        ("id" = String, Path, description = "A webhook id (`whk_...`)."),
        ("delivery_id" = String, Path, description = "A delivery id (`whd_...`)."),
    ),
    security(("bearer" = ["admin"]), ("oauth2" = ["admin"])),
    responses(
        (status = 202, description = "Pending again.", body = DeliveryView),
        NotFoundErrors,
        AuthErrors,
    )
)]
pub async fn redeliver(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<DeliveryView>)> {
    let delivery = state
        .api
        .redeliver_webhook_delivery(&caller, &id, &delivery_id)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::of(&delivery))))
}
