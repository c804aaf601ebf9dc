//! Logout: OpenID Connect RP-Initiated Logout 1.0 (`/oauth/logout`) and Back-Channel Logout
//! 1.0 (logout tokens POSTed to the clients that received ID tokens in a session that ended).
//!
//! A browser session has a random `sid`, which its ID tokens carry. The token endpoint
//! records which clients received an ID token in which session; when the session ends, for
//! whatever reason (signing out here or at `/logout`, a password change, an administrator),
//! each of those clients that registered a `backchannel_logout_uri` is sent a logout token.
//! Deliveries are stored (`logout_deliveries`) and made by a background task, never on the
//! request path: each attempt with a timeout and the outbound rules of webhooks, leased so
//! that one instance makes it, retried with backoff for about an hour when the client is
//! down or answers 5xx (after a restart too, by whichever instance is up). The token is not
//! stored: each attempt signs a fresh one (new `iat`, `exp`, `jti`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use url::Url;

use super::NetApi;
use crate::error::{Error, Result};
use crate::model::{ClientLogout, OAuthClient, PendingLogout, Session};
use crate::secret::random_base62;

/// The event of a logout token (Back-Channel Logout 1.0 §2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How long a logout token is good for, seconds.
pub const LOGOUT_TOKEN_TTL: i64 = 120;
/// Most `post_logout_redirect_uris` per client.
pub const MAX_POST_LOGOUT_REDIRECT_URIS: usize = 20;
/// Longest `post_logout_redirect_uri` and `backchannel_logout_uri`.
pub const MAX_LOGOUT_URI_LEN: usize = 2000;
/// Longest `id_token_hint` looked at.
pub const MAX_ID_TOKEN_HINT_LEN: usize = 8192;
/// Longest `state` passed back.
pub const MAX_LOGOUT_STATE_LEN: usize = 512;
/// Attempts per logout token: the first, then retries after 15 s, 30 s, 1 min, ... (each
/// wait twice the last), the last about an hour after the first.
pub const BACKCHANNEL_ATTEMPTS: u32 = 9;
/// The wait before the first retry, seconds; each next wait doubles.
pub const BACKCHANNEL_RETRY_BASE: i64 = 15;
/// Deliveries left over after this long (seconds) are deleted whatever their state.
pub const LOGOUT_DELIVERY_RETENTION: i64 = 86_400;
/// Deliveries claimed (and attempted at once) per step.
const CLAIM_BATCH: u32 = 16;
/// Longest a delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a claimed delivery is held, seconds: longer than an attempt can take, so that a
/// lease ends only if its holder died.
#[allow(clippy::cast_possible_wrap)]
const LEASE: i64 = DELIVERY_TIMEOUT.as_secs() as i64 * 2 + 30;

/// Wakes the delivery task when a session ends, so that the first attempt is not left to
/// the next tick.
#[derive(Default)]
pub(super) struct LogoutWake(tokio::sync::Notify);

/// Sends logout tokens: the HTTP client is the server's, so that core knows no HTTP.
#[async_trait::async_trait]
pub trait BackchannelClient: Send + Sync {
    /// POSTs `logout_token=<token>` (form-encoded) to `url`, connecting to `address` (the
    /// one checked), following no redirect, giving up after `timeout`; answers the status.
    async fn post_logout_token(
        &self,
        url: &Url,
        address: SocketAddr,
        token: &str,
        timeout: Duration,
    ) -> std::result::Result<u16, String>;
}

/// The parameters of a logout request (RP-Initiated Logout 1.0 §2), as received.
/// `logout_hint` and `ui_locales` are accepted and ignored.
#[derive(Debug, Clone, Default)]
pub struct LogoutParams {
    /// An ID token this server issued to the client (expired ones too).
    pub id_token_hint: Option<String>,
    /// The client asking.
    pub client_id: Option<String>,
    /// Where to send the browser afterwards: one of the client's registered URIs.
    pub post_logout_redirect_uri: Option<String>,
    /// Passed back to that URI.
    pub state: Option<String>,
}

/// A logout request that may go ahead.
#[derive(Debug, Clone, Default)]
pub struct CheckedLogout {
    /// The client named by `client_id` or the hint.
    pub client: Option<OAuthClient>,
    /// The redirect afterwards, `state` included, if one was asked for.
    pub redirect: Option<String>,
    /// The user and session the hint names, if it is valid.
    pub hint: Option<HintedSession>,
}

/// Whom a valid `id_token_hint` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HintedSession {
    /// `sub`.
    pub user_id: String,
    /// `sid`, if the token carries one.
    pub sid: Option<String>,
}

impl CheckedLogout {
    /// Whether the hint names this very session: it may then end without asking the user.
    pub fn hint_matches(&self, session: &Session) -> bool {
        self.hint.as_ref().is_some_and(|hint| {
            hint.user_id == session.user_id
                && !session.sid.is_empty()
                && hint.sid.as_deref() == Some(session.sid.as_str())
        })
    }
}

/// The claims of an ID token that matter here.
#[derive(serde::Deserialize)]
struct HintClaims {
    iss: String,
    sub: String,
    aud: serde_json::Value,
    #[serde(default)]
    sid: Option<String>,
}

fn invalid(message: &str) -> Error {
    Error::invalid("logout", message)
}

/// Checks a `backchannel_logout_uri`: bounded, absolute, `https` (or `http` where private
/// targets are allowed, as for webhooks), no credentials or fragment; an address literal
/// must be one outbound requests may reach. Names are resolved at each delivery.
fn check_backchannel_uri(uri: &str, allow_private: bool) -> Result<()> {
    let bad = |why: &str| Error::invalid("backchannel_logout_uri", why.to_owned());
    if uri.len() > MAX_LOGOUT_URI_LEN {
        return Err(bad("must be at most 2000 characters"));
    }
    let parsed = Url::parse(uri).map_err(|_| bad("must be an absolute URL"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(bad("must use https")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    if parsed.fragment().is_some() || uri.contains('#') {
        return Err(bad("must not have a fragment"));
    }
    let literal = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
        None => return Err(bad("must have a host")),
    };
    if !allow_private && literal.is_some_and(|ip| !super::is_public_address(ip)) {
        return Err(bad("must not be a loopback, private or link-local address"));
    }
    Ok(())
}

impl NetApi {
    /// Checks a client's logout metadata: each `post_logout_redirect_uris` entry as a
    /// redirect URI (exact, normal form, https or loopback http or an app's own scheme), and
    /// the `backchannel_logout_uri` as an outbound target.
    pub(super) fn check_client_logout(&self, logout: &ClientLogout) -> Result<()> {
        let field = "post_logout_redirect_uris";
        if logout.post_logout_redirect_uris.len() > MAX_POST_LOGOUT_REDIRECT_URIS {
            return Err(Error::invalid(
                field,
                format!("at most {MAX_POST_LOGOUT_REDIRECT_URIS} are allowed"),
            ));
        }
        for uri in &logout.post_logout_redirect_uris {
            super::clients::check_uri(field, uri)?;
        }
        if let Some(uri) = &logout.backchannel_logout_uri {
            check_backchannel_uri(uri, self.settings.allow_private_targets)?;
        }
        Ok(())
    }

    /// Checks an RP-initiated logout request. A hint must be an ID token this server
    /// signed (expired or not) for the client named, if one is; a redirect must be exactly
    /// one of that client's `post_logout_redirect_uris`. Every refusal is
    /// `INVALID_ARGUMENT`, to be shown on a page: a logout request never redirects anywhere
    /// that was not registered.
    pub async fn check_logout(&self, params: &LogoutParams) -> Result<CheckedLogout> {
        if params
            .id_token_hint
            .as_ref()
            .is_some_and(|h| h.len() > MAX_ID_TOKEN_HINT_LEN)
            || params.client_id.as_ref().is_some_and(|c| c.len() > 255)
            || params
                .post_logout_redirect_uri
                .as_ref()
                .is_some_and(|u| u.len() > MAX_LOGOUT_URI_LEN)
        {
            return Err(invalid("A parameter of the logout request is too long."));
        }
        if params
            .state
            .as_ref()
            .is_some_and(|s| s.len() > MAX_LOGOUT_STATE_LEN)
        {
            return Err(invalid("The state parameter is too long."));
        }
        let mut checked = CheckedLogout::default();
        let mut client_id = params.client_id.clone().filter(|c| !c.is_empty());
        if let Some(hint) = params.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
            let claims: HintClaims = self
                .key_ring()
                .verify(hint, "JWT")
                .map_err(|_| invalid("The id_token_hint is not an ID token this server issued."))?;
            let audience = match &claims.aud {
                serde_json::Value::String(aud) => Some(aud.clone()),
                serde_json::Value::Array(auds) if auds.len() == 1 => {
                    auds[0].as_str().map(str::to_owned)
                }
                _ => None,
            };
            let Some(audience) = audience.filter(|_| claims.iss == self.settings.issuer) else {
                return Err(invalid(
                    "The id_token_hint is not an ID token this server issued.",
                ));
            };
            if client_id.as_ref().is_some_and(|c| c != &audience) {
                return Err(invalid(
                    "The id_token_hint was issued to another client than client_id.",
                ));
            }
            client_id = Some(audience);
            checked.hint = Some(HintedSession {
                user_id: claims.sub,
                sid: claims.sid,
            });
        }
        if let Some(id) = &client_id {
            checked.client = self.store.get_client(id).await?;
            if checked.client.is_none() {
                return Err(invalid("The client_id is not that of a registered client."));
            }
        }
        if let Some(uri) = params
            .post_logout_redirect_uri
            .as_deref()
            .filter(|u| !u.is_empty())
        {
            let Some(client) = &checked.client else {
                return Err(invalid(
                    "A post_logout_redirect_uri needs client_id or id_token_hint, to know whose it is.",
                ));
            };
            if !client
                .logout
                .post_logout_redirect_uris
                .iter()
                .any(|registered| registered == uri)
            {
                return Err(invalid(
                    "The post_logout_redirect_uri is not one the client registered.",
                ));
            }
            let mut url = Url::parse(uri).map_err(|_| invalid("The redirect is invalid."))?;
            if let Some(state) = params.state.as_deref().filter(|s| !s.is_empty()) {
                url.query_pairs_mut().append_pair("state", state);
            }
            checked.redirect = Some(url.into());
        }
        Ok(checked)
    }

    /// Ends the browser session `cookie` names (if any) and tells its clients.
    pub async fn end_session(&self, cookie: &str) -> Result<()> {
        if crate::secret::check_format(crate::secret::SecretKind::Session, cookie).is_err() {
            return Ok(());
        }
        let hash = self.hasher().hash(cookie);
        match self.store.get_session(&hash).await? {
            Some(session) => self.end_sessions(vec![session]).await,
            None => Ok(()),
        }
    }

    /// Ends these sessions and sends a logout token to each client that received an ID
    /// token in one of them. The clients are taken before the session goes, so that no
    /// cleanup of ended sessions' records can come between.
    pub(super) async fn end_sessions(&self, sessions: Vec<Session>) -> Result<()> {
        for session in sessions {
            let clients = self.take_clients(&session).await?;
            self.store.delete_session(&session.hash).await?;
            self.send_logout_tokens(&session, &clients).await;
        }
        Ok(())
    }

    /// Ends every session of a user, telling their clients.
    pub(super) async fn end_user_sessions(&self, user_id: &str) -> Result<()> {
        let sessions = self.store.list_user_sessions(user_id).await?;
        let mut told = Vec::with_capacity(sessions.len());
        for session in sessions {
            let clients = self.take_clients(&session).await?;
            told.push((session, clients));
        }
        self.store.delete_user_sessions(user_id).await?;
        for (session, clients) in told {
            self.send_logout_tokens(&session, &clients).await;
        }
        Ok(())
    }

    async fn take_clients(&self, session: &Session) -> Result<Vec<String>> {
        if session.sid.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.store.take_session_clients(&session.sid).await?)
    }

    /// Records that `client` received an ID token in the session `sid` of `user_id`.
    pub(super) async fn record_id_token(
        &self,
        sid: &str,
        client: &OAuthClient,
        user_id: &str,
    ) -> Result<()> {
        self.store
            .record_session_client(sid, &client.id, user_id, self.now())
            .await?;
        Ok(())
    }

    /// Stores a logout delivery for each of `clients` that has a `backchannel_logout_uri`,
    /// and wakes the delivery task. Nothing here fails the logout: a delivery that cannot be
    /// stored is logged.
    async fn send_logout_tokens(&self, session: &Session, clients: &[String]) {
        let now = self.now();
        let mut deliveries = Vec::new();
        for client_id in clients {
            let client = match self.store.get_client(client_id).await {
                Ok(Some(client)) => client,
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(error = %err, client_id, "back-channel logout: client lookup failed");
                    continue;
                }
            };
            if client.logout.backchannel_logout_uri.is_none() {
                continue;
            }
            deliveries.push(PendingLogout {
                id: format!("lgd_{}", random_base62(22)),
                client_id: client.id,
                user_id: session.user_id.clone(),
                sid: session.sid.clone(),
                attempts: 0,
                next_attempt_at: now,
                created_at: now,
            });
        }
        if deliveries.is_empty() {
            return;
        }
        match self.store.insert_logout_deliveries(&deliveries).await {
            Ok(()) => self.logout_wake.0.notify_one(),
            Err(err) => {
                tracing::warn!(error = %err, count = deliveries.len(), "back-channel logout: deliveries could not be stored");
            }
        }
    }

    /// A logout token for `client` (Back-Channel Logout 1.0 §2.4), signed as its ID tokens:
    /// `typ` `logout+jwt`, `sub` and `sid` (when the session has one), no `nonce`.
    pub fn logout_token(&self, client: &OAuthClient, user_id: &str, sid: &str) -> Option<String> {
        let ring = self.key_ring();
        let alg = self.id_token_alg(client, &ring);
        let now = self.now();
        let mut claims = json!({
            "iss": self.settings.issuer,
            "sub": user_id,
            "aud": client.id,
            "iat": now,
            "exp": now + LOGOUT_TOKEN_TTL,
            "jti": random_base62(24),
            "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
        });
        if !sid.is_empty() {
            claims["sid"] = json!(sid);
        }
        ring.sign_with(alg, "logout+jwt", &claims)
    }

    /// Delivers logout tokens until the task is dropped: a step when woken by an ended
    /// session or every `interval`, and steps one after another while there is a backlog.
    /// Several instances may run it at once (claims are leased).
    pub async fn run_backchannel_logout(
        self: Arc<Self>,
        client: Arc<dyn BackchannelClient>,
        interval: Duration,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut steps = 0u32;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.logout_wake.0.notified() => {}
            }
            loop {
                match self.deliver_logouts(client.as_ref()).await {
                    Ok(n) if n >= CLAIM_BATCH as usize => continue,
                    Ok(_) => break,
                    Err(err) => {
                        tracing::warn!(error = %err, "could not deliver logout tokens");
                        break;
                    }
                }
            }
            // About once an hour with the server's one-second interval.
            steps = (steps + 1) % 3600;
            if steps == 1 {
                match self.prune_logout_deliveries().await {
                    Ok(0) => {}
                    Ok(pruned) => tracing::debug!(pruned, "old logout deliveries deleted"),
                    Err(err) => tracing::warn!(error = %err, "could not prune logout deliveries"),
                }
            }
        }
    }

    /// One step: claims the logout deliveries due now (leased, so that no other instance
    /// makes them too) and attempts them all at once, each with a freshly signed token.
    /// A delivery is over when the client answers 2xx, or 4xx (it will not take it), or is
    /// gone or no longer has a `backchannel_logout_uri`; otherwise (no answer, 5xx, a target
    /// the outbound rules refuse) it is retried with backoff, [`BACKCHANNEL_ATTEMPTS`] times
    /// in all. Answers how many were attempted.
    pub async fn deliver_logouts(&self, client: &dyn BackchannelClient) -> Result<usize> {
        let now = self.now();
        let lease_until = now.saturating_add(LEASE);
        let due = self
            .store
            .claim_logout_deliveries(now, lease_until, CLAIM_BATCH)
            .await?;
        let attempts = due
            .iter()
            .map(|delivery| self.attempt_logout(client, delivery, lease_until));
        for outcome in join_all(attempts).await {
            outcome?;
        }
        Ok(due.len())
    }

    /// Deletes the deliveries older than [`LOGOUT_DELIVERY_RETENTION`]; answers how many.
    pub async fn prune_logout_deliveries(&self) -> Result<u64> {
        let before = self.now().saturating_sub(LOGOUT_DELIVERY_RETENTION);
        Ok(self.store.prune_logout_deliveries(before).await?)
    }

    async fn attempt_logout(
        &self,
        client: &dyn BackchannelClient,
        delivery: &PendingLogout,
        lease_until: i64,
    ) -> Result<()> {
        let outcome = match self.store.get_client(&delivery.client_id).await? {
            None => Ok(None),
            Some(registered) => match registered.logout.backchannel_logout_uri.clone() {
                None => Ok(None),
                Some(uri) => self
                    .post_logout(client, &registered, &uri, delivery)
                    .await
                    .map(Some),
            },
        };
        let client_id = &delivery.client_id;
        let over = match outcome {
            Ok(None) => true,
            Ok(Some(status)) if (200..300).contains(&status) => {
                tracing::debug!(client_id, "back-channel logout delivered");
                true
            }
            Ok(Some(status)) if (400..500).contains(&status) => {
                tracing::warn!(
                    client_id,
                    status,
                    "back-channel logout refused by the client"
                );
                true
            }
            Ok(Some(status)) => {
                self.logout_failed(delivery, &format!("the client answered {status}"))
            }
            Err(why) => self.logout_failed(delivery, &why),
        };
        let held = if over {
            self.store
                .finish_logout_delivery(&delivery.id, lease_until)
                .await?
        } else {
            let wait = BACKCHANNEL_RETRY_BASE.saturating_mul(1 << delivery.attempts.min(20));
            self.store
                .retry_logout_delivery(&delivery.id, lease_until, self.now().saturating_add(wait))
                .await?
        };
        if !held {
            tracing::debug!(delivery = %delivery.id, "lease lost before the attempt was recorded");
        }
        Ok(())
    }

    /// Logs a failed attempt; answers whether it was the last.
    fn logout_failed(&self, delivery: &PendingLogout, why: &str) -> bool {
        let attempts = delivery.attempts.saturating_add(1);
        let last = attempts >= BACKCHANNEL_ATTEMPTS;
        if last {
            tracing::warn!(client_id = %delivery.client_id, reason = %why, attempts, "back-channel logout not delivered; given up");
        } else {
            tracing::info!(client_id = %delivery.client_id, reason = %why, attempts, "back-channel logout not delivered yet; will retry");
        }
        last
    }

    /// Signs a fresh logout token and POSTs it to `uri`, checked as webhooks' targets are
    /// (again at each attempt: what a name resolves to can change).
    async fn post_logout(
        &self,
        client: &dyn BackchannelClient,
        registered: &OAuthClient,
        uri: &str,
        delivery: &PendingLogout,
    ) -> std::result::Result<u16, String> {
        let url = Url::parse(uri).map_err(|_| "the URL is invalid".to_owned())?;
        let address = self.resolve_target(&url).await?;
        let token = self
            .logout_token(registered, &delivery.user_id, &delivery.sid)
            .ok_or_else(|| "no key to sign with".to_owned())?;
        client
            .post_logout_token(&url, address, &token, DELIVERY_TIMEOUT)
            .await
    }
}

/// Runs `futures` at once, answering their outputs in order (a join without a dependency).
async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backchannel_uris_follow_the_outbound_rules() {
        assert!(check_backchannel_uri("https://rp.example.com/logout", false).is_ok());
        assert!(check_backchannel_uri("https://rp.example.com/logout?x=1", false).is_ok());
        for bad in [
            "http://rp.example.com/logout",
            "https://rp.example.com/logout#f",
            "https://u:p@rp.example.com/logout",
            "https://127.0.0.1/logout",
            "https://[::1]/logout",
            "https://169.254.169.254/logout",
            "/logout",
        ] {
            assert!(check_backchannel_uri(bad, false).is_err(), "{bad} accepted");
        }
        assert!(check_backchannel_uri("http://127.0.0.1:9000/logout", true).is_ok());
    }
}
