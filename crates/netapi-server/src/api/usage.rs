//! `/v1/api-keys/{id}/usage`: how a key's checks ended, per hour or day.

use axum::Json;
use axum::extract::{Path, State};
use netapi_core::service::UsageQuery;
use netapi_core::usage::Granularity;
use serde::Deserialize;

use crate::dto::usage::KeyUsageView;
use crate::error::{ApiError, ApiResult, AuthErrors, InvalidErrors, NotFoundErrors};
use crate::extract::{ApiQuery, Auth};
use crate::state::AppState;

/// `?from=&to=&granularity=`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UsageParams {
    /// RFC 3339; default: 24 hours (or 30 days) before `to`. Rounded down to a bucket's start.
    #[param(format = DateTime)]
    from: Option<String>,
    /// RFC 3339, exclusive; default: now.
    #[param(format = DateTime)]
    to: Option<String>,
    /// `hour` (default; at most 744 buckets) or `day` (at most 400; counts are kept 400 days).
    #[param(pattern = "^(hour|day)$")]
    granularity: Option<String>,
}

/// How a key's checks ended (`/v1` requests, forward auth, `/v1/keys/verify`, introspection),
/// per hour or day, oldest first, empty buckets included.
#[utoipa::path(
    get,
    path = "/v1/api-keys/{id}/usage",
    tag = "api-keys",
    operation_id = "getApiKeyUsage",
    params(("id" = String, Path, description = "An API key id (`key_...`)."), UsageParams),
    security(("bearer" = ["keys:read"]), ("oauth2" = ["keys:read"])),
    responses(
        (status = 200, description = "The key's checks by outcome. Counts are written about \
            once a minute by each instance; this instance's are current.", body = KeyUsageView),
        InvalidErrors,
        NotFoundErrors,
        AuthErrors,
    )
)]
pub async fn key_usage(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> ApiResult<Json<KeyUsageView>> {
    let granularity = params
        .granularity
        .as_deref()
        .map(|g| {
            Granularity::parse(g)
                .ok_or_else(|| ApiError::invalid("granularity", "must be 'hour' or 'day'"))
        })
        .transpose()?;
    let query = UsageQuery {
        from: super::rfc3339_field("from", params.from.as_deref())?,
        to: super::rfc3339_field("to", params.to.as_deref())?,
        granularity,
    };
    let usage = state.api.api_key_usage(&caller, &id, query).await?;
    Ok(Json(usage.into()))
}
