//! What `/v1/invitations` answers with.

use netapi_core::clock::format_rfc3339;
use netapi_core::model::Invitation;
use netapi_core::secret::Secret;
use serde::Serialize;
use utoipa::ToSchema;

use super::{RoleName, fields, time};

/// An invitation to register; never its token.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Invitation)]
pub(crate) struct InvitationView {
    /// `inv_...`
    #[schema(schema_with = fields::invitation_id)]
    id: String,
    /// The only email that may register with it (`null`: any, within the allowed domains).
    email: Option<String>,
    #[schema(inline)]
    role: RoleName,
    /// The administrator who made it (empty: the operator's command line).
    created_by: String,
    #[schema(schema_with = fields::date_time_utc)]
    created_at: String,
    #[schema(schema_with = fields::date_time_utc)]
    expires_at: String,
    /// When a registration used it (`null`: not yet).
    #[schema(schema_with = fields::date_time_nullable)]
    used_at: Option<String>,
    /// The user that registration made.
    #[schema(schema_with = fields::user_id_nullable)]
    used_by: Option<String>,
}

impl From<Invitation> for InvitationView {
    fn from(invitation: Invitation) -> Self {
        Self {
            id: invitation.id,
            email: invitation.email,
            role: invitation.role.into(),
            created_by: invitation.created_by,
            created_at: format_rfc3339(invitation.created_at),
            expires_at: format_rfc3339(invitation.expires_at),
            used_at: time(invitation.used_at),
            used_by: invitation.used_by,
        }
    }
}

/// A new invitation with its token, shown this once. Its fields are written out rather than
/// flattened from [`InvitationView`]: both schemas are closed, and a closed schema cannot be
/// extended through `allOf`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewInvitation)]
pub(crate) struct NewInvitationView {
    /// `inv_...`
    #[schema(schema_with = fields::invitation_id)]
    id: String,
    /// The only email that may register with it (`null`: any, within the allowed domains).
    email: Option<String>,
    #[schema(inline)]
    role: RoleName,
    /// The administrator who made it (empty: the operator's command line).
    created_by: String,
    #[schema(schema_with = fields::date_time_utc)]
    created_at: String,
    #[schema(schema_with = fields::date_time_utc)]
    expires_at: String,
    /// Always `null`: a new invitation is unused.
    #[schema(schema_with = fields::date_time_nullable)]
    used_at: Option<String>,
    /// Always `null`: a new invitation is unused.
    #[schema(schema_with = fields::user_id_nullable)]
    used_by: Option<String>,
    /// The single-use token (`napiv_...`); shown this once. `POST /v1/register` takes it as
    /// `invitation`.
    token: String,
    /// The registration page with the token filled in, to send to the invitee.
    url: String,
}

impl NewInvitationView {
    pub(crate) fn new(invitation: Invitation, token: &Secret, issuer: &str) -> Self {
        let InvitationView {
            id,
            email,
            role,
            created_by,
            created_at,
            expires_at,
            used_at,
            used_by,
        } = invitation.into();
        Self {
            id,
            email,
            role,
            created_by,
            created_at,
            expires_at,
            used_at,
            used_by,
            url: format!(
                "{}/register?invitation={}",
                issuer.trim_end_matches('/'),
                token.expose()
            ),
            token: token.expose().to_owned(),
        }
    }
}
