//! What `/v1/resources` and `/v1/users/{id}/grants` answer with.

use netapi_core::clock::format_rfc3339;
use netapi_core::model::Resource;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::fields::scope_names;

/// One scope of a resource.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScopeView {
    /// Unique within the resource.
    #[schema(pattern = "^[a-z][a-z0-9_.:-]{0,63}$")]
    pub(crate) name: String,
    /// What it allows, shown on the consent page: at most 500 printable characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub(crate) description: String,
}

/// A resource: an API of the operator's that Net API guards.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Resource)]
pub(crate) struct ResourceView {
    #[schema(pattern = "^res_[0-9A-Za-z]{20}$")]
    id: String,
    /// What credentials are made for (RFC 8707 `resource`, a token's `aud`); never changes.
    identifier: String,
    name: String,
    scopes: Vec<ScopeView>,
    /// Scopes every user holds; the others only where an administrator grants them.
    #[schema(schema_with = scope_names)]
    self_service_scopes: Vec<String>,
    /// Whether users may make API keys for it.
    allow_api_keys: bool,
    /// Its access tokens' lifetime in seconds; `null`: the server's.
    #[schema(minimum = 60, maximum = 86400, required = true)]
    access_token_ttl: Option<u32>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl ResourceView {
    pub(crate) fn of(resource: &Resource) -> Self {
        Self {
            id: resource.id.clone(),
            identifier: resource.identifier.clone(),
            name: resource.name.clone(),
            scopes: resource
                .scopes
                .iter()
                .map(|s| ScopeView {
                    name: s.name.clone(),
                    description: s.description.clone(),
                })
                .collect(),
            self_service_scopes: resource.self_service_scopes.clone(),
            allow_api_keys: resource.allow_api_keys,
            access_token_ttl: resource.access_token_ttl,
            created_at: format_rfc3339(resource.created_at),
            updated_at: format_rfc3339(resource.updated_at),
        }
    }
}

/// A page of resources.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResourceList {
    pub(crate) resources: Vec<ResourceView>,
    #[schema(schema_with = super::fields::next_page_token, required = true)]
    pub(crate) next_page_token: Option<String>,
}

/// What a user was granted on one resource.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantView {
    /// The resource's identifier.
    pub(crate) resource: String,
    #[schema(schema_with = scope_names)]
    pub(crate) scopes: Vec<String>,
}

/// Everything a user was granted, by resource.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantList {
    pub(crate) grants: Vec<GrantView>,
}
