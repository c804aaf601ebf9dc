//! `GET /healthz` and `GET /readyz`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, Code, UnavailableErrors};
use crate::state::AppState;

/// Liveness.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    responses((status = 200, description = "The process runs.", body = String, content_type = "text/plain", example = "ok"))
)]
pub async fn healthz() -> &'static str {
    "ok"
}

// Storage must answer and take writes: a read-only database is not ready.
/// Readiness.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Storage answers.", body = String, content_type = "text/plain", example = "ready"),
        UnavailableErrors,
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.api.store().ping_write().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "storage is not answering or not writable");
            ApiError::new(
                Code::Unavailable,
                "Storage is not answering or not writable.",
            )
            .into_response()
        }
    }
}
