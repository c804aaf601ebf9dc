//! Reading the audit log.

use super::{NetApi, Page, PageRequest, Principal};
use crate::error::{Error, Result};
use crate::model::AuditEvent;
use crate::scope::Scope;
use crate::store::AuditFilter;

/// The longest event type a filter may name.
const MAX_KIND_LEN: usize = 100;

/// A page of events, newest first.
pub type AuditPage = Page<AuditEvent>;

impl NetApi {
    /// The caller's own events (admins: everyone's), newest first.
    pub async fn list_audit_events(
        &self,
        caller: &Principal,
        page: PageRequest,
    ) -> Result<AuditPage> {
        caller.require(Scope::AuditRead)?;
        let owner = (!caller.is_admin()).then_some(caller.user_id.as_str());
        let events = self
            .store
            .list_audit_events(owner, page.cursor.as_deref(), page.fetch_limit())
            .await?;
        Ok(page.page(events, |e| &e.id))
    }

    /// Events matching `filter` (every user's), newest first: administrators only.
    pub async fn search_audit_events(
        &self,
        caller: &Principal,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<AuditPage> {
        caller.require(Scope::AuditRead)?;
        caller.require_admin()?;
        if filter.kind.as_ref().is_some_and(|k| k.len() > MAX_KIND_LEN) {
            return Err(Error::invalid(
                "type",
                format!("must be at most {MAX_KIND_LEN} characters"),
            ));
        }
        let events = self
            .store
            .search_audit_events(filter, page.cursor.as_deref(), page.fetch_limit())
            .await?;
        Ok(page.page(events, |e| &e.id))
    }
}
