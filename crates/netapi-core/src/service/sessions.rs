//! A user's browser sessions as the portal lists them, and ending them.

use super::NetApi;
use crate::error::{Error, Result};
use crate::model::{Amr, Session};
use crate::secret::SecretHash;
use sha2::Digest;

/// Where a session starts: what the browser said it is and the address it came from.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionOrigin<'a> {
    /// The `User-Agent` header.
    pub user_agent: Option<&'a str>,
    /// The client's address.
    pub source: Option<&'a str>,
}

/// A session as its user sees it in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// An identifier for ending it (derived from its hash, which is not shown).
    pub id: String,
    /// The browser and system, shortened from the `User-Agent`.
    pub device: String,
    /// The address it started from.
    pub source: String,
    /// When it started.
    pub created_at: i64,
    /// When it was last used (to the minute).
    pub last_seen_at: i64,
    /// How its user signed in.
    pub amr: Amr,
    /// The session the list is shown in.
    pub current: bool,
}

/// The identifier the list shows for a session.
fn public_id(hash: &SecretHash) -> String {
    let digest = sha2::Sha256::digest([b"netapi session id\n".as_slice(), &hash.0].concat());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// A short name for the browser and system a `User-Agent` names ("Firefox on Linux").
pub fn device_of(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent.filter(|ua| !ua.trim().is_empty()) else {
        return "Unknown device".to_owned();
    };
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(marker, _)| ua.contains(marker))
    .map(|(_, name)| *name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(marker, _)| ua.contains(marker))
    .map(|(_, name)| *name);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_owned(),
        (None, Some(s)) => format!("A browser on {s}"),
        (None, None) => {
            let short: String = ua.chars().filter(|c| !c.is_control()).take(40).collect();
            if ua.chars().count() > 40 {
                format!("{short}…")
            } else {
                short
            }
        }
    }
}

impl NetApi {
    /// The user's live sessions, newest first; `current` marks the one asking.
    pub async fn list_sessions(
        &self,
        user_id: &str,
        current: &SecretHash,
    ) -> Result<Vec<SessionSummary>> {
        let now = self.now();
        Ok(self
            .store
            .list_user_sessions(user_id)
            .await?
            .into_iter()
            .filter(|s| s.expires_at > now)
            .map(|s: Session| SessionSummary {
                id: public_id(&s.hash),
                device: device_of(s.user_agent.as_deref()),
                source: s.source.unwrap_or_else(|| "unknown".to_owned()),
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                amr: s.amr,
                current: &s.hash == current,
            })
            .collect())
    }

    /// Ends one of the user's sessions, named by its listed id (another user's: not found).
    pub async fn end_session_by_id(&self, user_id: &str, id: &str, ip: &str) -> Result<()> {
        let found = self
            .store
            .list_user_sessions(user_id)
            .await?
            .into_iter()
            .find(|s| crate::secret::constant_time_eq(&public_id(&s.hash), id))
            .ok_or(Error::NotFound("session"))?;
        self.end_sessions(vec![found]).await?;
        self.audit(
            Some(user_id),
            "session.ended",
            Some(ip),
            serde_json::json!({ "session": id }),
        )
        .await;
        Ok(())
    }

    /// Ends every session of the user but `keep`; answers how many ended.
    pub async fn end_other_sessions(
        &self,
        user_id: &str,
        keep: &SecretHash,
        ip: &str,
    ) -> Result<u64> {
        let others: Vec<Session> = self
            .store
            .list_user_sessions(user_id)
            .await?
            .into_iter()
            .filter(|s| &s.hash != keep)
            .collect();
        let ended = others.len() as u64;
        self.end_sessions(others).await?;
        self.audit(
            Some(user_id),
            "session.ended_others",
            Some(ip),
            serde_json::json!({ "count": ended }),
        )
        .await;
        Ok(ended)
    }
}

#[cfg(test)]
mod tests {
    use super::device_of;

    #[test]
    fn devices_are_named_shortly() {
        assert_eq!(
            device_of(Some(
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
            )),
            "Firefox on Linux"
        );
        assert_eq!(
            device_of(Some(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
            )),
            "Edge on Windows"
        );
        assert_eq!(device_of(None), "Unknown device");
        assert_eq!(
            device_of(Some("x".repeat(100).as_str())).chars().count(),
            41
        );
    }
}
