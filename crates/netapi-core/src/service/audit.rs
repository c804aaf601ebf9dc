//! Reading the audit log.

use super::{NetApi, Page, PageRequest, Principal};
use crate::error::Result;
use crate::model::AuditEvent;
use crate::scope::Scope;

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
}
