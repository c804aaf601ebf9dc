//! `GET /v1/audit-events`: security events.

use axum::Json;
use axum::extract::State;

use super::pagination::PageQuery;
use crate::dto::AuditEventList;
use crate::error::{ApiResult, AuthErrors, InvalidErrors};
use crate::extract::{ApiQuery, Auth};
use crate::state::AppState;

/// `GET /v1/audit-events`
#[utoipa::path(
    get,
    path = "/v1/audit-events",
    tag = "audit",
    operation_id = "listAuditEvents",
    params(PageQuery),
    security(("bearer" = ["audit:read"]), ("oauth2" = ["audit:read"])),
    responses(
        (status = 200, description = "The caller's security events (administrators: all), newest first.", body = AuditEventList),
        InvalidErrors,
        AuthErrors,
    )
)]
pub async fn list_events(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<AuditEventList>> {
    let page = state
        .api
        .list_audit_events(&caller, query.request("evt")?)
        .await?;
    Ok(Json(page.into()))
}
