//! Resources: the operator's APIs that Net API guards besides its own (RFC 8707 "resource",
//! RFC 9728 "protected resource"), and the scopes administrators grant users on them.
//!
//! What a user holds on a resource is its self-service scopes and what an administrator
//! granted (administrators hold every scope of every resource). Credentials for a resource
//! carry scope names; at every use they are cut down to what their user holds then, through
//! caches that need no storage access on a hit.

use serde_json::json;
use std::sync::Arc;

use super::{NetApi, Page, PageRequest, Principal};
use crate::error::{Error, Result};
use crate::ids::new_id;
use crate::model::{Resource, ResourceGrant, ResourceScope};
use crate::scope::{Role, Scope};
use crate::store::{Invalidation, ResourceChanges};

/// Longest resource identifier.
pub const MAX_IDENTIFIER_LEN: usize = 255;
/// Most scopes one resource may have.
pub const MAX_RESOURCE_SCOPES: usize = 100;
/// Longest scope description, in characters.
pub const MAX_SCOPE_DESCRIPTION: usize = 500;
/// Shortest and longest access token lifetime a resource may set, seconds.
pub const TOKEN_TTL_RANGE: std::ops::RangeInclusive<u32> = 60..=86_400;
/// Largest API key metadata, bytes of compact JSON.
pub const MAX_METADATA_LEN: usize = 4096;

/// A resource to create.
#[derive(Debug, Clone, Default)]
pub struct NewResource {
    /// Absolute `https` URI (or `http` on a loopback host), no fragment.
    pub identifier: String,
    /// A name for people.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<ResourceScope>,
    /// Scopes every user holds; all of them when `None`.
    pub self_service_scopes: Option<Vec<String>>,
    /// Whether users may make API keys for it; yes when `None`.
    pub allow_api_keys: Option<bool>,
    /// Access token lifetime, seconds; the server's when `None`.
    pub access_token_ttl: Option<u32>,
}

/// A change to a resource; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct ResourceUpdate {
    /// New name.
    pub name: Option<String>,
    /// New scopes (replacing the list).
    pub scopes: Option<Vec<ResourceScope>>,
    /// New self-service scopes.
    pub self_service_scopes: Option<Vec<String>>,
    /// Whether API keys may be made for it.
    pub allow_api_keys: Option<bool>,
    /// Token lifetime (`Some(None)`: back to the server's).
    pub access_token_ttl: Option<Option<u32>>,
}

/// A page of resources.
pub type ResourcePage = Page<Resource>;

/// Whether `name` is a well-formed scope name: `^[a-z][a-z0-9_.:-]{0,63}$`.
pub fn well_formed_scope(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 64
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.:-".contains(&b))
}

/// Checks a resource identifier: an absolute `https` URI (or `http` on a loopback host) in
/// normal form, without fragment or user information, at most 255 characters, not the issuer.
pub fn validate_identifier(identifier: &str, issuer: &str) -> Result<()> {
    let invalid = |why: &str| Error::invalid("identifier", why.to_owned());
    if identifier.len() > MAX_IDENTIFIER_LEN {
        return Err(invalid(&format!(
            "must be at most {MAX_IDENTIFIER_LEN} characters"
        )));
    }
    let parsed = url::Url::parse(identifier).map_err(|_| invalid("must be an absolute URI"))?;
    if parsed.fragment().is_some() || identifier.contains('#') {
        return Err(invalid("must not have a fragment"));
    }
    if parsed.as_str() != identifier && parsed.as_str() != format!("{identifier}/") {
        // Identifiers are compared exactly (RFC 8707): only the normal form is taken.
        return Err(invalid("must be in normal form"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("must not contain user information"));
    }
    match (parsed.scheme(), parsed.host_str()) {
        ("https", Some(_)) => {}
        ("http", Some("127.0.0.1" | "[::1]" | "localhost")) => {}
        _ => {
            return Err(invalid(
                "must use https (http only on a loopback host: 127.0.0.1, [::1], localhost)",
            ));
        }
    }
    if identifier.trim_end_matches('/') == issuer.trim_end_matches('/') {
        return Err(invalid("is Net API's own identifier (the issuer)"));
    }
    Ok(())
}

fn validate_scopes(scopes: &[ResourceScope]) -> Result<()> {
    if scopes.len() > MAX_RESOURCE_SCOPES {
        return Err(Error::invalid(
            "scopes",
            format!("must list at most {MAX_RESOURCE_SCOPES} scopes"),
        ));
    }
    for (i, scope) in scopes.iter().enumerate() {
        if !well_formed_scope(&scope.name) {
            return Err(Error::invalid(
                "scopes",
                format!(
                    "'{}' is not a valid scope name (^[a-z][a-z0-9_.:-]{{0,63}}$)",
                    scope.name.escape_default()
                ),
            ));
        }
        if scopes[..i].iter().any(|s| s.name == scope.name) {
            return Err(Error::invalid(
                "scopes",
                format!("lists the scope '{}' twice", scope.name),
            ));
        }
        // The consent page shows descriptions: no character that reorders what it shows.
        if scope.description.chars().count() > MAX_SCOPE_DESCRIPTION
            || scope
                .description
                .chars()
                .any(|c| c.is_control() || super::users::is_bidi_control(c))
        {
            return Err(Error::invalid(
                "scopes",
                format!(
                    "the description of '{}' must be at most {MAX_SCOPE_DESCRIPTION} printable characters, with no bidirectional controls",
                    scope.name
                ),
            ));
        }
    }
    Ok(())
}

/// Checks that every name of `names` is a scope of `scopes`, once; returns them deduplicated.
fn names_within(field: &str, names: &[String], scopes: &[ResourceScope]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if !scopes.iter().any(|s| &s.name == name) {
            return Err(Error::invalid(
                field,
                format!(
                    "'{}' is not a scope of this resource",
                    name.chars().take(64).collect::<String>().escape_default()
                ),
            ));
        }
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    Ok(out)
}

fn validate_ttl(ttl: Option<u32>) -> Result<()> {
    match ttl {
        Some(ttl) if !TOKEN_TTL_RANGE.contains(&ttl) => Err(Error::invalid(
            "access_token_ttl",
            format!(
                "must be between {} and {} seconds",
                TOKEN_TTL_RANGE.start(),
                TOKEN_TTL_RANGE.end()
            ),
        )),
        _ => Ok(()),
    }
}

/// Checks API key metadata: a JSON object of at most 4 KiB; returns it as compact text.
pub fn validate_metadata(metadata: Option<&serde_json::Value>) -> Result<Option<String>> {
    let Some(value) = metadata else {
        return Ok(None);
    };
    if !value.is_object() {
        return Err(Error::invalid("metadata", "must be a JSON object"));
    }
    let text = value.to_string();
    if text.len() > MAX_METADATA_LEN {
        return Err(Error::invalid(
            "metadata",
            format!("must be at most {MAX_METADATA_LEN} bytes as JSON"),
        ));
    }
    // serde_json gives one object key a private meaning when it comes first (sqlx and axum
    // turn on its `raw_value` feature); an object using it would be stored but read back
    // as nothing. Refuse what would not come back as it went in.
    if serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .as_ref()
        != Some(value)
    {
        return Err(Error::invalid(
            "metadata",
            "uses a key reserved by the JSON library ($serde_json::...)",
        ));
    }
    Ok(Some(text))
}

/// Only administrators manage resources and grants.
fn require_admin(caller: &Principal, scope: Scope) -> Result<()> {
    caller.require(scope)?;
    if caller.is_admin() {
        Ok(())
    } else {
        Err(Error::missing_scope(Scope::Admin))
    }
}

impl NetApi {
    /// The resource with this identifier, deleted ones included (so that their credentials
    /// can be told revoked); `None` if there never was one. Cached, unknown ones too.
    pub(crate) async fn resource_by_identifier(
        &self,
        identifier: &str,
    ) -> Result<Option<Arc<Resource>>> {
        // Longer than any resource's (they are refused at creation): neither looked up nor
        // cached, so that a caller (forward auth asks before any credential is checked)
        // cannot fill the cache with keys of its own size.
        if identifier.len() > MAX_IDENTIFIER_LEN {
            return Ok(None);
        }
        let key = format!("uri:{identifier}");
        if let Some(found) = self.resources.get(&key) {
            return Ok(found);
        }
        let ticket = self.resources.ticket();
        let found = self
            .store
            .get_resource_by_identifier(identifier)
            .await?
            .map(Arc::new);
        self.resources.insert(key, found.clone(), ticket);
        Ok(found)
    }

    /// The resource with this id, deleted ones included. Cached.
    pub(crate) async fn resource_by_id(&self, id: &str) -> Result<Option<Arc<Resource>>> {
        let key = format!("id:{id}");
        if let Some(found) = self.resources.get(&key) {
            return Ok(found);
        }
        let ticket = self.resources.ticket();
        let found = self.store.get_resource(id).await?.map(Arc::new);
        self.resources.insert(key, found.clone(), ticket);
        Ok(found)
    }

    /// The live resource with this identifier, or `InvalidArgument` naming `field`.
    pub(crate) async fn live_resource(
        &self,
        field: &str,
        identifier: &str,
    ) -> Result<Arc<Resource>> {
        self.resource_by_identifier(identifier)
            .await?
            .filter(|r| r.deleted_at.is_none())
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    format!(
                        "'{}' is not a resource Net API guards",
                        identifier
                            .chars()
                            .take(255)
                            .collect::<String>()
                            .escape_default()
                    ),
                )
            })
    }

    async fn granted(&self, user_id: &str, resource_id: &str) -> Result<Arc<[String]>> {
        let key = (user_id.to_owned(), resource_id.to_owned());
        if let Some(found) = self.grants.get(&key) {
            return Ok(found);
        }
        let ticket = self.grants.ticket();
        let found: Arc<[String]> = self
            .store
            .get_resource_grant(user_id, resource_id)
            .await?
            .map_or_else(Vec::new, |g| g.scopes)
            .into();
        self.grants.insert(key, found.clone(), ticket);
        Ok(found)
    }

    /// The scopes of `resource` a user holds: every one for administrators, otherwise the
    /// self-service ones and those granted, in the resource's order.
    pub(crate) async fn held_scopes(
        &self,
        user_id: &str,
        role: Role,
        resource: &Resource,
    ) -> Result<Vec<String>> {
        let names = resource.scopes.iter().map(|s| &s.name);
        if role == Role::Admin {
            return Ok(names.cloned().collect());
        }
        let granted = self.granted(user_id, &resource.id).await?;
        Ok(names
            .filter(|n| resource.self_service_scopes.contains(n) || granted.contains(n))
            .cloned()
            .collect())
    }

    /// Defines a resource. Administrators only (`resources:write`).
    pub async fn create_resource(
        &self,
        caller: &Principal,
        new: NewResource,
        ip: Option<&str>,
    ) -> Result<Resource> {
        require_admin(caller, Scope::ResourcesWrite)?;
        validate_identifier(&new.identifier, &self.settings.issuer)?;
        let name = super::users::normalize_name("name", &new.name)?;
        validate_scopes(&new.scopes)?;
        let self_service = match &new.self_service_scopes {
            Some(names) => names_within("self_service_scopes", names, &new.scopes)?,
            None => new.scopes.iter().map(|s| s.name.clone()).collect(),
        };
        validate_ttl(new.access_token_ttl)?;
        if self
            .store
            .get_resource_by_identifier(&new.identifier)
            .await?
            .is_some()
        {
            return Err(identifier_taken());
        }
        let now = self.now();
        let resource = Resource {
            id: new_id("res"),
            identifier: new.identifier,
            name,
            scopes: new.scopes,
            self_service_scopes: self_service,
            allow_api_keys: new.allow_api_keys.unwrap_or(true),
            access_token_ttl: new.access_token_ttl,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        match self.store.insert_resource(&resource).await {
            Err(crate::StoreError::Conflict(_)) => return Err(identifier_taken()),
            other => other?,
        }
        // "No such identifier" may be cached, here and elsewhere.
        self.invalidate(Invalidation::Resource(resource.id.clone()))
            .await?;
        self.audit(
            Some(&caller.user_id)
                .filter(|u| !u.is_empty())
                .map(|u| u.as_str()),
            "resource.created",
            ip,
            json!({ "resource_id": resource.id, "identifier": resource.identifier }),
        )
        .await;
        Ok(resource)
    }

    /// Live resources, oldest first. Administrators only (`resources:read`).
    pub async fn list_resources(
        &self,
        caller: &Principal,
        page: PageRequest,
    ) -> Result<ResourcePage> {
        require_admin(caller, Scope::ResourcesRead)?;
        let items = self
            .store
            .list_resources(page.cursor.as_deref(), page.fetch_limit())
            .await?;
        Ok(page.page(items, |r| &r.id))
    }

    /// One live resource. Administrators only (`resources:read`).
    pub async fn get_resource(&self, caller: &Principal, id: &str) -> Result<Resource> {
        require_admin(caller, Scope::ResourcesRead)?;
        self.store
            .get_resource(id)
            .await?
            .filter(|r| r.deleted_at.is_none())
            .ok_or(Error::NotFound("resource"))
    }

    /// Changes a resource (never its identifier). Credentials already made keep only the
    /// scopes the resource still has and their users still hold, at their next use.
    pub async fn update_resource(
        &self,
        caller: &Principal,
        id: &str,
        update: ResourceUpdate,
        ip: Option<&str>,
    ) -> Result<Resource> {
        super::until_written(|| self.try_update_resource(caller, id, &update, ip)).await
    }

    /// One attempt of [`NetApi::update_resource`]: `None` if the self-service scopes it
    /// worked out from what it read changed meanwhile (nothing was written).
    async fn try_update_resource(
        &self,
        caller: &Principal,
        id: &str,
        update: &ResourceUpdate,
        ip: Option<&str>,
    ) -> Result<Option<Resource>> {
        let current = self.get_resource(caller, id).await?;
        require_admin(caller, Scope::ResourcesWrite)?;
        let mut changes = ResourceChanges::default();
        if let Some(name) = &update.name {
            changes.name = Some(super::users::normalize_name("name", name)?);
        }
        let scopes = match update.scopes.clone() {
            Some(scopes) => {
                validate_scopes(&scopes)?;
                changes.scopes = Some(scopes.clone());
                scopes
            }
            None => current.scopes.clone(),
        };
        match &update.self_service_scopes {
            Some(names) => {
                changes.self_service_scopes =
                    Some(names_within("self_service_scopes", names, &scopes)?);
            }
            // Scopes that went away stop being self-service; worked out from what was read,
            // so written only if that is still so (a withdrawal meanwhile is not undone).
            None if changes.scopes.is_some() => {
                changes.if_self_service_scopes = Some(current.self_service_scopes.clone());
                changes.self_service_scopes = Some(
                    current
                        .self_service_scopes
                        .iter()
                        .filter(|n| scopes.iter().any(|s| &s.name == *n))
                        .cloned()
                        .collect(),
                );
            }
            None => {}
        }
        changes.allow_api_keys = update.allow_api_keys;
        if let Some(ttl) = update.access_token_ttl {
            validate_ttl(ttl)?;
            changes.access_token_ttl = Some(ttl);
        }
        let Some(resource) = self.store.update_resource(id, &changes, self.now()).await? else {
            // Gone (deleted meanwhile: the next attempt says so), or changed under it.
            return Ok(None);
        };
        self.invalidate(Invalidation::Resource(resource.id.clone()))
            .await?;
        self.audit(
            Some(&caller.user_id)
                .filter(|u| !u.is_empty())
                .map(|u| u.as_str()),
            "resource.updated",
            ip,
            json!({ "resource_id": resource.id }),
        )
        .await;
        Ok(Some(resource))
    }

    /// Deletes a resource: its API keys and refresh tokens are revoked, and every credential
    /// for it stops working at once, here and (through the invalidation) everywhere. Its
    /// identifier is never taken again.
    pub async fn delete_resource(
        &self,
        caller: &Principal,
        id: &str,
        ip: Option<&str>,
    ) -> Result<()> {
        require_admin(caller, Scope::ResourcesWrite)?;
        let Some(deleted) = self.store.delete_resource(id, self.now()).await? else {
            return Err(Error::NotFound("resource"));
        };
        // The resource's tombstone refuses its keys and access tokens wherever it is read.
        self.invalidate(Invalidation::Resource(id.to_owned()))
            .await?;
        self.audit(
            Some(&caller.user_id)
                .filter(|u| !u.is_empty())
                .map(|u| u.as_str()),
            "resource.deleted",
            ip,
            json!({
                "resource_id": id,
                "api_keys_revoked": deleted.keys.len(),
                "token_families_revoked": deleted.families.len(),
            }),
        )
        .await;
        Ok(())
    }

    /// Replaces what `user_id` is granted on the resource `identifier` (no scopes: nothing).
    /// Administrators only; takes effect on the user's credentials at their next use.
    pub async fn set_grant(
        &self,
        caller: &Principal,
        user_id: &str,
        identifier: &str,
        scopes: &[String],
        ip: Option<&str>,
    ) -> Result<(Arc<Resource>, Vec<String>)> {
        require_admin(caller, Scope::ResourcesWrite)?;
        if self.store.get_user(user_id).await?.is_none() {
            return Err(Error::NotFound("user"));
        }
        let resource = self.live_resource("resource", identifier).await?;
        let scopes = names_within("scopes", scopes, &resource.scopes)?;
        self.store
            .set_resource_grant(&ResourceGrant {
                user_id: user_id.to_owned(),
                resource_id: resource.id.clone(),
                scopes: scopes.clone(),
                updated_at: self.now(),
            })
            .await?;
        self.invalidate(Invalidation::Grant {
            user_id: user_id.to_owned(),
            resource_id: resource.id.clone(),
        })
        .await?;
        self.audit(
            Some(user_id),
            "resource_grant.changed",
            ip,
            json!({ "resource_id": resource.id, "scopes": scopes, "by": caller.user_id }),
        )
        .await;
        Ok((resource, scopes))
    }

    /// The resources the caller may make API keys for, with the scopes it holds on each:
    /// live ones that allow keys and where it holds at least one scope, oldest first, at
    /// most `limit` (the portal's key form offers these).
    pub async fn key_resources(
        &self,
        caller: &Principal,
        limit: u32,
    ) -> Result<Vec<(Resource, Vec<String>)>> {
        caller.require(Scope::KeysWrite)?;
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        // Pages through them all: a member cannot list resources otherwise, and those it
        // holds nothing on are skipped, so a page alone could come back empty.
        loop {
            let page = self.store.list_resources(after.as_deref(), 100).await?;
            let Some(last) = page.last() else {
                return Ok(out);
            };
            after = Some(last.id.clone());
            for resource in page {
                if !resource.allow_api_keys || resource.deleted_at.is_some() {
                    continue;
                }
                let held = self
                    .held_scopes(&caller.user_id, caller.role, &resource)
                    .await?;
                if !held.is_empty() {
                    out.push((resource, held));
                    if out.len() >= limit as usize {
                        return Ok(out);
                    }
                }
            }
        }
    }

    /// What `user_id` was granted, on live resources. Administrators only.
    pub async fn list_grants(
        &self,
        caller: &Principal,
        user_id: &str,
    ) -> Result<Vec<(Arc<Resource>, Vec<String>)>> {
        require_admin(caller, Scope::ResourcesRead)?;
        if self.store.get_user(user_id).await?.is_none() {
            return Err(Error::NotFound("user"));
        }
        let mut out = Vec::new();
        for grant in self.store.list_resource_grants(user_id).await? {
            if let Some(resource) = self
                .resource_by_id(&grant.resource_id)
                .await?
                .filter(|r| r.deleted_at.is_none())
            {
                out.push((resource, grant.scopes));
            }
        }
        Ok(out)
    }
}

fn identifier_taken() -> Error {
    Error::AlreadyExists(
        "A resource with this identifier exists or existed: identifiers are never reused."
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://auth.example.com";

    #[test]
    fn scope_names_follow_the_contract_pattern() {
        for good in [
            "a",
            "orders:read",
            "x.y_z-1",
            &format!("a{}", "b".repeat(63)),
        ] {
            assert!(well_formed_scope(good), "{good}");
        }
        for bad in [
            "",
            "Orders",
            "1abc",
            "a b",
            "a/b",
            &format!("a{}", "b".repeat(64)),
        ] {
            assert!(!well_formed_scope(bad), "{bad}");
        }
    }

    #[test]
    fn identifiers_are_absolute_https_or_loopback_http() {
        for good in [
            "https://api.example.com",
            "https://api.example.com/v1",
            "http://127.0.0.1:9000",
            "http://localhost/orders",
        ] {
            assert!(validate_identifier(good, ISSUER).is_ok(), "{good}");
        }
        let long = format!("https://api.example.com/{}", "a".repeat(MAX_IDENTIFIER_LEN));
        for bad in [
            "api.example.com",
            "/orders",
            "https://api.example.com/#x",
            "http://api.example.com",
            "ftp://api.example.com",
            "https://user:pw@api.example.com",
            "https://API.example.com",
            "https://api.example.com/a/../b",
            ISSUER,
            "https://auth.example.com/",
            long.as_str(),
        ] {
            assert!(
                matches!(
                    validate_identifier(bad, ISSUER),
                    Err(Error::InvalidArgument { field: Some(f), .. }) if f == "identifier"
                ),
                "{bad}"
            );
        }
    }

    fn scope(name: &str, description: &str) -> ResourceScope {
        ResourceScope {
            name: name.to_owned(),
            description: description.to_owned(),
        }
    }

    #[test]
    fn scopes_are_well_formed_unique_and_bounded() {
        assert!(validate_scopes(&[scope("a", "A"), scope("b:c", ""), scope("d", "طلبات")]).is_ok());
        let too_many: Vec<ResourceScope> = (0..=MAX_RESOURCE_SCOPES)
            .map(|i| scope(&format!("s{i}"), ""))
            .collect();
        for bad in [
            vec![scope("a", ""), scope("a", "again")],
            vec![scope("A", "")],
            vec![scope("a", &"d".repeat(MAX_SCOPE_DESCRIPTION + 1))],
            vec![scope("a", "line\nbreak")],
            // Shown as "read your orders" on the consent page, stored reversed.
            vec![scope("a", "\u{202E}sredro ruoy daer")],
            vec![scope("a", "orders\u{2067}x")],
            vec![scope("a", "arabic letter mark \u{061C}")],
            too_many,
        ] {
            assert!(validate_scopes(&bad).is_err(), "{bad:?}");
        }
        let names = vec!["b".to_owned(), "a".to_owned(), "b".to_owned()];
        assert_eq!(
            names_within("x", &names, &[scope("a", ""), scope("b", "")]).ok(),
            Some(vec!["b".to_owned(), "a".to_owned()])
        );
        assert!(names_within("x", &["c".to_owned()], &[scope("a", "")]).is_err());
    }

    #[test]
    fn metadata_is_a_small_object() {
        assert_eq!(validate_metadata(None).ok(), Some(None));
        assert_eq!(
            validate_metadata(Some(&json!({"plan": "gold"}))).ok(),
            Some(Some(r#"{"plan":"gold"}"#.to_owned()))
        );
        let big = json!({ "x": "y".repeat(MAX_METADATA_LEN) });
        // Sorted first when stored, this key would make the stored text unreadable.
        let reserved = json!({"a": 1, "$serde_json::private::RawValue": "x"});
        for bad in [json!([1]), json!("text"), json!(null), big, reserved] {
            assert!(validate_metadata(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_lifetimes_are_bounded() {
        assert!(validate_ttl(None).is_ok());
        assert!(validate_ttl(Some(60)).is_ok());
        assert!(validate_ttl(Some(59)).is_err());
        assert!(validate_ttl(Some(86_401)).is_err());
    }
}
