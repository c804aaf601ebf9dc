//! API key management.

use serde_json::json;

use super::{NetApi, Page, PageRequest, Principal};
use crate::error::{Error, Result};
use crate::model::ApiKey;
use crate::scope::{Scope, Scopes};
use crate::secret::Secret;
use crate::store::Invalidation;

/// A key to create.
#[derive(Debug, Clone, Default)]
pub struct NewApiKey {
    /// Label.
    pub name: String,
    /// The identifier of the resource it is for; Net API's own when `None`.
    pub resource: Option<String>,
    /// Scope names of that resource: for Net API's own, the caller's own when `None`; for
    /// another, every scope the caller holds there.
    pub scopes: Option<Vec<String>>,
    /// A JSON object of at most 4 KiB, returned wherever the key is verified.
    pub metadata: Option<serde_json::Value>,
    /// Expiry, if any; must be in the future.
    pub expires_at: Option<i64>,
    /// Requests per minute, overriding the default (raising it needs an administrator).
    pub rate_limit: Option<u32>,
}

/// A page of keys.
pub type KeyPage = Page<ApiKey>;

/// Longest grace period of a rotation: 30 days.
pub const MAX_ROTATION_GRACE: i64 = 30 * 86_400;

impl NetApi {
    /// Creates a key for the caller; it can carry no scope the caller does not have.
    pub async fn create_api_key(
        &self,
        caller: &Principal,
        new: NewApiKey,
        ip: Option<&str>,
    ) -> Result<(ApiKey, Secret)> {
        caller.require(Scope::KeysWrite)?;
        let name = super::users::normalize_name("name", &new.name)?;
        let metadata = super::resources::validate_metadata(new.metadata.as_ref())?;
        let target = match new.resource.as_deref() {
            Some(identifier) if identifier != self.settings.issuer => {
                let resource = self.live_resource("resource", identifier).await?;
                if !resource.allow_api_keys {
                    return Err(Error::invalid(
                        "resource",
                        "does not allow API keys (allow_api_keys is false)",
                    ));
                }
                Some(resource)
            }
            _ => None,
        };
        let (scopes, resource_scopes) = match &target {
            None => {
                let scopes = match &new.scopes {
                    Some(names) => Scopes::parse_list(names).map_err(|name| {
                        Error::invalid(
                            "scopes",
                            format!(
                                "contains the unknown scope '{}'",
                                name.chars().take(64).collect::<String>().escape_default()
                            ),
                        )
                    })?,
                    None => caller.scopes,
                };
                caller.require_all(scopes, |missing| {
                    format!("A key cannot carry the scope '{missing}', which you do not have.")
                })?;
                (scopes, Vec::new())
            }
            Some(resource) => (
                Scopes::EMPTY,
                self.resource_scopes_held(caller, resource, new.scopes.as_deref())
                    .await?,
            ),
        };
        if let Some(expires_at) = new.expires_at
            && expires_at <= self.now()
        {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        self.validate_rate_limit(caller, "rate_limit_per_minute", new.rate_limit)?;
        let (mut key, secret) = self.mint_api_key(&caller.user_id, name, scopes, new.expires_at);
        key.rate_limit = new.rate_limit;
        key.created_by_client = caller.client_id().map(str::to_owned);
        key.resource = target.map(|r| r.reference());
        key.resource_scopes = resource_scopes;
        key.metadata = metadata;
        self.store.insert_api_key(&key).await?;
        self.audit(
            Some(&caller.user_id),
            "api_key.created",
            ip,
            json!({ "api_key_id": key.id }),
        )
        .await;
        Ok((key, secret))
    }

    /// The scopes of `resource` a key asks for (`None`: every one the caller's user holds
    /// there), each a scope of the resource (`InvalidArgument`) that the user holds
    /// (`PermissionDenied`): the no-escalation rule, counting self-service scopes and grants.
    async fn resource_scopes_held(
        &self,
        caller: &Principal,
        resource: &crate::model::Resource,
        wanted: Option<&[String]>,
    ) -> Result<Vec<String>> {
        let held = self
            .held_scopes(&caller.user_id, caller.role, resource)
            .await?;
        let Some(wanted) = wanted else {
            return Ok(held);
        };
        let mut scopes: Vec<String> = Vec::with_capacity(wanted.len());
        for name in wanted {
            if !resource.has_scope(name) {
                return Err(Error::invalid(
                    "scopes",
                    format!(
                        "'{}' is not a scope of the resource {}",
                        name.chars().take(64).collect::<String>().escape_default(),
                        resource.identifier
                    ),
                ));
            }
            if !held.contains(name) {
                return Err(Error::PermissionDenied {
                    scope: None,
                    message: format!(
                        "A key cannot carry the scope '{name}' of {}, which you do not hold there.",
                        resource.identifier
                    ),
                });
            }
            if !scopes.contains(name) {
                scopes.push(name.clone());
            }
        }
        Ok(scopes)
    }

    /// The caller's live keys.
    pub async fn list_api_keys(&self, caller: &Principal, page: PageRequest) -> Result<KeyPage> {
        caller.require(Scope::KeysRead)?;
        let keys = self
            .store
            .list_api_keys(&caller.user_id, page.cursor.as_deref(), page.fetch_limit())
            .await?;
        Ok(page.page(keys, |k| &k.id))
    }

    /// The live keys of `user_id`: the caller's own, or anyone's for an administrator.
    pub async fn list_user_api_keys(
        &self,
        caller: &Principal,
        user_id: &str,
        page: PageRequest,
    ) -> Result<KeyPage> {
        caller.require(Scope::KeysRead)?;
        if !caller.may_act_on(user_id) {
            return Err(Error::NotFound("user"));
        }
        let keys = self
            .store
            .list_api_keys(user_id, page.cursor.as_deref(), page.fetch_limit())
            .await?;
        Ok(page.page(keys, |k| &k.id))
    }

    /// A key of the caller's (admins: anyone's); revoked keys are not found.
    pub async fn get_api_key(&self, caller: &Principal, id: &str) -> Result<ApiKey> {
        caller.require(Scope::KeysRead)?;
        self.visible_key(caller, id).await
    }

    async fn visible_key(&self, caller: &Principal, id: &str) -> Result<ApiKey> {
        self.store
            .get_api_key(id)
            .await?
            .filter(|key| key.revoked_at.is_none() && caller.may_act_on(&key.user_id))
            .ok_or(Error::NotFound("API key"))
    }

    /// Revokes a key; it stops working at once.
    pub async fn revoke_api_key(
        &self,
        caller: &Principal,
        id: &str,
        ip: Option<&str>,
    ) -> Result<()> {
        caller.require(Scope::KeysWrite)?;
        let key = self.visible_key(caller, id).await?;
        let detail = json!({ "api_key_id": key.id });
        if !self.revoke_key(&key, "api_key.revoked", ip, detail).await? {
            return Err(Error::NotFound("API key"));
        }
        Ok(())
    }

    /// The one way a single key is revoked: in storage, then in every process's cache (so it
    /// stops working at once), then recorded as `kind` with `detail`. False, and nothing
    /// recorded, when storage had it revoked already.
    pub(super) async fn revoke_key(
        &self,
        key: &ApiKey,
        kind: &str,
        ip: Option<&str>,
        detail: serde_json::Value,
    ) -> Result<bool> {
        if !self.store.revoke_api_key(&key.id, self.now()).await? {
            return Ok(false);
        }
        self.invalidate(Invalidation::ApiKey(key.hash)).await?;
        self.audit(Some(&key.user_id), kind, ip, detail).await;
        Ok(true)
    }

    /// Replaces a key with a new one of the same name, scopes and expiry; the old key keeps
    /// working for `grace` seconds (default 0, at most 30 days).
    pub async fn rotate_api_key(
        &self,
        caller: &Principal,
        id: &str,
        grace: Option<i64>,
        ip: Option<&str>,
    ) -> Result<(ApiKey, Secret)> {
        caller.require(Scope::KeysWrite)?;
        let grace = grace.unwrap_or(0);
        if !(0..=MAX_ROTATION_GRACE).contains(&grace) {
            return Err(Error::invalid(
                "grace_period_seconds",
                format!("must be between 0 and {MAX_ROTATION_GRACE}"),
            ));
        }
        let old = self.visible_key(caller, id).await?;
        // The new value is handed to the caller: it must already hold all the key can do.
        caller.require_all(old.scopes, |missing| {
            format!(
                "You cannot rotate a key that carries the scope '{missing}', which you do not have."
            )
        })?;
        if let Some(reference) = &old.resource {
            let resource = self
                .resource_by_id(&reference.id)
                .await?
                .filter(|r| r.deleted_at.is_none())
                .ok_or(Error::NotFound("API key"))?;
            self.resource_scopes_held(caller, &resource, Some(&old.resource_scopes))
                .await?;
        }
        let now = self.now();
        if old.expires_at.is_some_and(|exp| exp <= now) {
            return Err(Error::invalid("id", "an expired key cannot be rotated"));
        }
        let old_expires_at = old
            .expires_at
            .map_or(now + grace, |exp| exp.min(now + grace));
        let (mut new_key, secret) =
            self.mint_api_key(&old.user_id, old.name.clone(), old.scopes, old.expires_at);
        new_key.rate_limit = old.rate_limit;
        new_key.created_by_client = old.created_by_client.clone();
        new_key.resource = old.resource.clone();
        new_key.resource_scopes = old.resource_scopes.clone();
        new_key.metadata = old.metadata.clone();
        if !self
            .store
            .rotate_api_key(&old.id, old_expires_at, &new_key)
            .await?
        {
            return Err(Error::NotFound("API key"));
        }
        self.invalidate(Invalidation::ApiKey(old.hash)).await?;
        self.audit(
            Some(&old.user_id),
            "api_key.rotated",
            ip,
            json!({ "api_key_id": old.id, "new_api_key_id": new_key.id, "grace_period_seconds": grace }),
        )
        .await;
        Ok((new_key, secret))
    }
}
