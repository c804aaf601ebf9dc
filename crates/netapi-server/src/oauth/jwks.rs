//! `GET /oauth/jwks.json` (RFC 7517).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::dto::oauth::Jwks;
use crate::state::AppState;

/// `GET /oauth/jwks.json`
#[utoipa::path(
    get,
    path = "/oauth/jwks.json",
    tag = "oauth",
    operation_id = "jwks",
    responses(
        (status = 200, description = "The public keys that verify access and ID tokens.", body = Jwks,
            headers(("Cache-Control" = String, description = "`public, max-age=300`"))),
    )
)]
pub async fn jwks(State(state): State<AppState>) -> Response {
    // The key ring publishes its set as JSON; read as the type, so that the answer is the
    // documented shape.
    match serde_json::from_value::<Jwks>(state.api.key_ring().jwks().clone()) {
        Ok(jwks) => ([(header::CACHE_CONTROL, "public, max-age=300")], Json(jwks)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "the published key set does not read as a JWKS");
            crate::error::ApiError::internal().into_response()
        }
    }
}
