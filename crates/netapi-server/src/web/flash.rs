//! One-time messages carried across redirect-after-POST: a portal form's handler acts, puts
//! its outcome in a cookie and answers `303`; the page's `GET` shows it and clears the cookie,
//! so it is shown once and a refresh repeats nothing. A new secret is shown this way, never
//! put in a URL.
//!
//! The cookie travels with the browser, so the `GET` may reach any instance behind a load
//! balancer. Its content is sealed (AES-GCM) under the secret key every instance shares, bound
//! to the browser's session: nobody can read it (it may carry a new secret), forge it, or
//! move it to another session. It is short-lived (its expiry is inside, by the server's
//! clock), `HttpOnly`, `SameSite=Lax`, `Secure` under an `https` issuer, and bounded in size.

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use netapi_core::NetApi;
use netapi_core::model::Session;
use serde::{Deserialize, Serialize};

use super::portal::Flash;
use super::session::{cookie, set_cookie};

/// The cookie that carries a message to its page.
const FLASH_COOKIE: &str = "netapi_flash";
/// Seconds a message waits for its page: long enough for the redirect, short enough that a
/// secret does not linger in the browser.
const FLASH_TTL: i64 = 300;
/// Bytes of each text a message keeps, so that the cookie stays far below browsers' 4 KiB
/// (secrets are much shorter; longer notices are cut).
const MAX_TEXT: usize = 600;
/// The longest cookie value opened; anything longer is not one this server made.
const MAX_COOKIE: usize = 4096;

/// What the cookie carries, sealed.
#[derive(Serialize, Deserialize)]
struct Sealed {
    /// The page that shows it (`portal`, `resources`, `webhooks`).
    page: String,
    /// Unix seconds after which it is not shown.
    expires_at: i64,
    flash: Flash,
}

/// The sealing context: the message opens only in the session it was made for.
fn context(session: &Session) -> Vec<u8> {
    let mut context = b"netapi portal flash v1\n".to_vec();
    context.extend_from_slice(&session.hash.0);
    context
}

/// `text` cut to at most [`MAX_TEXT`] bytes, at a character boundary.
fn bounded(mut text: String) -> String {
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

impl Flash {
    fn bounded(self) -> Self {
        match self {
            Self::Secret { title, value } => Self::Secret {
                title: bounded(title),
                value,
            },
            Self::Notice(text) => Self::Notice(bounded(text)),
            Self::Error(text) => Self::Error(bounded(text)),
        }
    }
}

/// Answers a form with `303` to `to`, leaving `flash` for the next view of `page` in
/// `session` (replacing one not yet shown).
pub(super) fn redirect_with(
    api: &NetApi,
    session: &Session,
    page: &str,
    to: &str,
    flash: Flash,
) -> Response {
    let sealed = Sealed {
        page: page.to_owned(),
        expires_at: api.now() + FLASH_TTL,
        flash: flash.bounded(),
    };
    let mut response = Redirect::to(to).into_response();
    match serde_json::to_vec(&sealed) {
        Ok(plain) => {
            let value =
                URL_SAFE_NO_PAD.encode(api.settings().secret_key.seal(&context(session), &plain));
            set_cookie(&mut response, api, FLASH_COOKIE, &value, FLASH_TTL);
        }
        Err(err) => tracing::warn!(error = %err, "a portal message could not be kept"),
    }
    response
}

/// What the browser's flash cookie holds for this session, if it holds anything readable.
fn opened(api: &NetApi, session: &Session, value: &str) -> Option<Sealed> {
    if value.len() > MAX_COOKIE {
        return None;
    }
    let sealed = URL_SAFE_NO_PAD.decode(value).ok()?;
    let plain = api.settings().secret_key.open(&context(session), &sealed)?;
    serde_json::from_slice(&plain).ok()
}

/// The message waiting for `page` in this browser, if any, and whether the answer must clear
/// the cookie (pass it to [`finish`]). A message for another page stays for that page; one that
/// cannot be opened (made for another session, altered) or has expired is cleared unseen.
pub(super) fn take(
    api: &NetApi,
    headers: &HeaderMap,
    session: &Session,
    page: &str,
) -> (Option<Flash>, bool) {
    let Some(value) = cookie(headers, FLASH_COOKIE) else {
        return (None, false);
    };
    match opened(api, session, &value) {
        Some(sealed) if sealed.page != page => (None, false),
        Some(sealed) if sealed.expires_at > api.now() => (Some(sealed.flash), true),
        _ => (None, true),
    }
}

/// `response`, clearing the flash cookie when [`take`] said so.
pub(super) fn finish(api: &NetApi, clear: bool, mut response: Response) -> Response {
    if clear {
        set_cookie(&mut response, api, FLASH_COOKIE, "", 0);
    }
    response
}

/// Renders `page` with the message waiting for it in this browser, if any, and clears the
/// cookie once it is shown (see [`take`]).
pub(super) async fn showing<F, Fut>(
    api: &NetApi,
    headers: &HeaderMap,
    session: &Session,
    page: &str,
    render: F,
) -> Response
where
    F: FnOnce(Option<Flash>) -> Fut,
    Fut: Future<Output = Response>,
{
    let (flash, clear) = take(api, headers, session, page);
    finish(api, clear, render(flash).await)
}
