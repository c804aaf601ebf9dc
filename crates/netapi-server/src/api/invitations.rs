//! `/v1/invitations` (admins only): single-use invitations to register. Parse, call one
//! operation, render.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use netapi_core::scope::Role;
use netapi_core::service::NewInvitation;
use serde::Deserialize;
use utoipa::ToSchema;

use super::pagination::PageQuery;
use crate::dto::invitations::NewInvitationView;
use crate::dto::{InvitationList, NO_STORE, NoStore, fields};
use crate::error::{ApiError, ApiResult, AuthErrors, BodyErrors, InvalidErrors, NotFoundErrors};
use crate::extract::{ApiJson, ApiQuery, Auth, ClientIp};
use crate::state::AppState;

/// `POST /v1/invitations`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitationBody {
    #[schema(schema_with = fields::invitation_email)]
    email: Option<String>,
    #[schema(schema_with = fields::role_nullable)]
    role: Option<String>,
    /// Seconds until it expires: 60 to 2592000 (30 days); default 604800 (7 days).
    #[schema(minimum = 60, maximum = 2_592_000)]
    expires_in: Option<i64>,
}

/// Makes an invitation; its token is shown this once.
#[utoipa::path(
    post,
    path = "/v1/invitations",
    tag = "invitations",
    operation_id = "createInvitation",
    request_body = NewInvitationBody,
    security(("bearer" = ["admin", "users:write"]), ("oauth2" = ["admin", "users:write"])),
    responses(
        (status = 201, description = "The invitation with its token and registration link, shown this once. At most 1,000 may be outstanding (400 beyond).", body = NewInvitationView, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        BodyErrors,
        AuthErrors,
    )
)]
pub async fn create_invitation(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<NewInvitationBody>,
) -> ApiResult<(StatusCode, NoStore, Json<NewInvitationView>)> {
    let role = body
        .role
        .as_deref()
        .map(|r| Role::parse(r).ok_or_else(|| ApiError::invalid("role", "must be admin or member")))
        .transpose()?;
    let (invitation, token) = state
        .api
        .create_invitation(
            &caller,
            NewInvitation {
                email: body.email,
                role,
                expires_in: body.expires_in,
            },
            Some(&ip),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        NO_STORE,
        Json(NewInvitationView::new(
            invitation,
            &token,
            state.api.issuer(),
        )),
    ))
}

/// Lists invitations, used and expired ones too.
#[utoipa::path(
    get,
    path = "/v1/invitations",
    tag = "invitations",
    operation_id = "listInvitations",
    params(PageQuery),
    security(("bearer" = ["admin", "users:read"]), ("oauth2" = ["admin", "users:read"])),
    responses(
        (status = 200, description = "Invitations, oldest first; never their tokens.", body = InvitationList),
        InvalidErrors,
        AuthErrors,
    )
)]
pub async fn list_invitations(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<InvitationList>> {
    let page = state
        .api
        .list_invitations(&caller, query.request("inv")?)
        .await?;
    Ok(Json(page.into()))
}

/// Deletes an invitation: its token stops working at once.
#[utoipa::path(
    delete,
    path = "/v1/invitations/{id}",
    tag = "invitations",
    operation_id = "deleteInvitation",
    params(("id" = String, Path, description = "An invitation id (`inv_...`).")),
    security(("bearer" = ["admin", "users:write"]), ("oauth2" = ["admin", "users:write"])),
    responses(
        (status = 204, description = "Deleted."),
        NotFoundErrors,
        AuthErrors,
    )
)]
pub async fn delete_invitation(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.api.delete_invitation(&caller, &id, Some(&ip)).await?;
    Ok(StatusCode::NO_CONTENT)
}
