//! `POST /v1/keys/verify`: a trusted service asks whether an API key presented to it may
//! be used.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use crate::dto::{NO_STORE, NoStore, VerificationView};
use crate::error::{ApiResult, AuthErrors, BodyErrors};
use crate::extract::{ApiJson, Auth};
use crate::state::AppState;

/// `POST /v1/keys/verify`
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyKeyBody {
    /// The API key presented to your service; anything that is not one is `NOT_FOUND`.
    /// Never echoed back.
    key: String,
    /// The identifier (an absolute URI, no fragment) of the resource the key must be for;
    /// `null` or absent: the key's own.
    #[schema(max_length = 2048, nullable = true)]
    resource: Option<String>,
    /// Scopes the key must all hold (at most 64, each `^[a-z][a-z0-9_.:-]{0,63}$`, no
    /// repeats); `null` or absent: none.
    #[schema(max_items = 64, nullable = true)]
    scopes: Option<Vec<String>>,
}

impl std::fmt::Debug for VerifyKeyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKeyBody")
            .field("key", &"[redacted]")
            .field("resource", &self.resource)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// Verifies an API key presented to one of your services: always 200 with an answer code
/// for a well-formed request.
#[utoipa::path(
    post,
    path = "/v1/keys/verify",
    tag = "api-keys",
    operation_id = "verifyApiKey",
    request_body = VerifyKeyBody,
    security(("bearer" = ["keys:verify"]), ("oauth2" = ["keys:verify"])),
    responses(
        (status = 200, description = "The verdict. `valid` is true only with `VALID`; the \
            key's facts are present once the key is known to be live (`VALID`, \
            `WRONG_RESOURCE`, `INSUFFICIENT_SCOPE`, `RATE_LIMITED`), `ratelimit` where the \
            key's per-minute limit was counted (`VALID`, `RATE_LIMITED`). The verified key's \
            failures never count against the caller's address.",
            body = VerificationView),
        BodyErrors,
        AuthErrors,
    )
)]
pub async fn verify_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<VerifyKeyBody>,
) -> ApiResult<(NoStore, Json<VerificationView>)> {
    let verification = state
        .api
        .verify_key(
            &caller,
            &body.key,
            body.resource.as_deref(),
            body.scopes.as_deref().unwrap_or_default(),
        )
        .await?;
    Ok((NO_STORE, Json(verification.into())))
}
