//! API key management.

use serde_json::json;

use super::{NetApi, Page, PageRequest, Principal};
use crate::error::{Error, Result};
use crate::model::ApiKey;
use crate::scope::{Scope, Scopes};
use crate::secret::Secret;
use crate::store::Invalidation;

/// A key to create.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// Label.
    pub name: String,
    /// Scopes; the caller's own when `None`.
    pub scopes: Option<Scopes>,
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
        let scopes = new.scopes.unwrap_or(caller.scopes);
        caller.require_all(scopes, |missing| {
            format!("A key cannot carry the scope '{missing}', which you do not have.")
        })?;
        if let Some(expires_at) = new.expires_at
            && expires_at <= self.now()
        {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        self.validate_rate_limit(caller, "rate_limit_per_minute", new.rate_limit)?;
        let (mut key, secret) = self.mint_api_key(&caller.user_id, name, scopes, new.expires_at);
        key.rate_limit = new.rate_limit;
        key.created_by_client = caller.client_id().map(str::to_owned);
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

    /// The caller's live keys.
    pub async fn list_api_keys(&self, caller: &Principal, page: PageRequest) -> Result<KeyPage> {
        caller.require(Scope::KeysRead)?;
        let keys = self
            .store
            .list_api_keys(&caller.user_id, page.cursor.as_deref(), page.fetch_limit())
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
        if !self.store.revoke_api_key(id, self.now()).await? {
            return Err(Error::NotFound("API key"));
        }
        self.invalidate(Invalidation::ApiKey(key.hash)).await?;
        self.audit(
            Some(&key.user_id),
            "api_key.revoked",
            ip,
            json!({ "api_key_id": key.id }),
        )
        .await;
        Ok(())
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
