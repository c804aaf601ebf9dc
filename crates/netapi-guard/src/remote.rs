//! Asking the issuer: documents (metadata, JWKS) and the answer about one credential,
//! by introspection (RFC 7662) or `POST /v1/keys/verify`.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::guard::split_scopes;
use crate::principal::{CredentialKind, Principal};
use crate::token::{EXPIRED, MALFORMED, WRONG_RESOURCE};

/// The most bytes read from any answer of the issuer.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
const NOT_ACTIVE: &str = "The credential is unknown, revoked or expired.";
const KEY_EXPIRED: &str = "The API key has expired.";

/// What the issuer said about a credential.
#[derive(Debug)]
pub(crate) enum Answer {
    Valid(Found),
    /// Not good (cached like a valid answer).
    Invalid(&'static str),
    /// Over its per-minute limit (never cached).
    RateLimited {
        retry_after: u64,
    },
    /// The issuer could not be asked, or refused the guard itself (never cached).
    Unavailable,
}

/// An active credential as the issuer describes it.
#[derive(Debug, Default)]
pub(crate) struct Found {
    kind: Option<CredentialKind>,
    refresh_token: bool,
    audiences: Vec<String>,
    subject: Option<String>,
    key_id: Option<String>,
    client_id: Option<String>,
    scopes: Vec<String>,
    metadata: Option<Value>,
    expires_at: Option<i64>,
    actor: Option<Value>,
}

impl Found {
    /// The principal, when the credential is of the kind presented and for `resource`.
    pub(crate) fn into_principal(
        self,
        presented: CredentialKind,
        resource: &str,
        now: i64,
        challenge: Arc<str>,
    ) -> Result<Principal, &'static str> {
        if self.refresh_token || self.kind != Some(presented) {
            return Err(MALFORMED);
        }
        if !self.audiences.iter().any(|aud| aud == resource) {
            return Err(WRONG_RESOURCE);
        }
        if self.expires_at.is_some_and(|exp| now >= exp) {
            return Err(if presented == CredentialKind::ApiKey {
                KEY_EXPIRED
            } else {
                EXPIRED
            });
        }
        let subject = self.subject.filter(|s| !s.is_empty()).ok_or(NOT_ACTIVE)?;
        Ok(Principal {
            subject,
            credential: presented,
            key_id: self.key_id,
            client_id: self.client_id,
            scopes: self.scopes,
            metadata: self.metadata,
            expires_at: self.expires_at,
            actor: self.actor,
            challenge,
        })
    }
}

/// RFC 7662's answer, with Net API's fields for API keys.
#[derive(Deserialize)]
struct Introspection {
    active: bool,
    token_type: Option<String>,
    aud: Option<Value>,
    sub: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    key_id: Option<String>,
    metadata: Option<Value>,
    exp: Option<i64>,
    act: Option<Value>,
}

/// Asks `endpoint` about `credential` as the client `(id, secret)` (`client_secret_basic`:
/// both form-urlencoded before base64, RFC 6749 §2.3.1).
pub(crate) async fn introspect(
    http: &reqwest::Client,
    endpoint: &str,
    (client_id, client_secret): (&str, &str),
    credential: &str,
) -> Answer {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = STANDARD.encode(format!("{}:{}", encode(client_id), encode(client_secret)));
    let request = http
        .post(endpoint)
        .header(reqwest::header::AUTHORIZATION, format!("Basic {basic}"))
        .form(&[("token", credential)]);
    let answer: Introspection = match send(request, "introspection").await {
        Ok(answer) => answer,
        Err(answer) => return answer,
    };
    if !answer.active {
        return Answer::Invalid(NOT_ACTIVE);
    }
    let audiences = match answer.aud {
        Some(Value::String(aud)) => vec![aud],
        Some(Value::Array(auds)) => auds
            .into_iter()
            .filter_map(|aud| aud.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let token_type = answer.token_type.as_deref();
    let kind = if answer.key_id.is_some() || token_type == Some("api_key") {
        CredentialKind::ApiKey
    } else {
        CredentialKind::AccessToken
    };
    Answer::Valid(Found {
        kind: Some(kind),
        refresh_token: token_type == Some("refresh_token"),
        audiences,
        subject: answer.sub,
        key_id: answer.key_id,
        client_id: answer.client_id,
        scopes: split_scopes(answer.scope.as_deref()),
        metadata: answer.metadata,
        expires_at: answer.exp,
        actor: answer.act.filter(Value::is_object),
    })
}

/// The answer of `POST /v1/keys/verify`.
#[derive(Deserialize)]
struct Verification {
    valid: bool,
    code: String,
    key_id: Option<String>,
    subject: Option<String>,
    resource: Option<String>,
    scopes: Option<Vec<String>>,
    metadata: Option<Value>,
    /// RFC 3339; `null` for a key that never expires.
    expires_at: Option<String>,
    ratelimit: Option<RateLimit>,
}

/// Seconds since the epoch of an RFC 3339 time; `Err` when it is not one.
fn parse_time(text: &str) -> Result<i64, ()> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(time::OffsetDateTime::unix_timestamp)
        .map_err(|_| ())
}

#[derive(Deserialize)]
struct RateLimit {
    reset: u64,
}

/// Asks `POST /v1/keys/verify` about the API key `credential` for `resource`.
pub(crate) async fn verify(
    http: &reqwest::Client,
    endpoint: &str,
    verifier_key: &str,
    credential: &str,
    resource: &str,
) -> Answer {
    let request = http
        .post(endpoint)
        .bearer_auth(verifier_key)
        .json(&json!({ "key": credential, "resource": resource }));
    let answer: Verification = match send(request, "key verification").await {
        Ok(answer) => answer,
        Err(answer) => return answer,
    };
    // The key's expiry bounds how long the answer is good (and cached); one that cannot be
    // read is no answer.
    let Ok(expires_at) = answer.expires_at.as_deref().map(parse_time).transpose() else {
        tracing::warn!("the issuer's verification has an expires_at that is not RFC 3339");
        return Answer::Unavailable;
    };
    match answer.code.as_str() {
        "VALID" if answer.valid => Answer::Valid(Found {
            kind: Some(CredentialKind::ApiKey),
            audiences: answer.resource.into_iter().collect(),
            subject: answer.subject,
            key_id: answer.key_id,
            scopes: answer.scopes.unwrap_or_default(),
            metadata: answer.metadata.filter(|m| !m.is_null()),
            expires_at,
            ..Found::default()
        }),
        "RATE_LIMITED" => Answer::RateLimited {
            retry_after: answer.ratelimit.map_or(60, |rate| rate.reset.max(1)),
        },
        "EXPIRED" => Answer::Invalid(KEY_EXPIRED),
        "WRONG_RESOURCE" => Answer::Invalid(WRONG_RESOURCE),
        _ => Answer::Invalid(NOT_ACTIVE),
    }
}

/// Sends a request to the issuer and reads its JSON answer; anything but a 200 with JSON
/// is [`Answer::Unavailable`] (and logged: a refused client or verifier key is the
/// guard's configuration at fault).
async fn send<T: DeserializeOwned>(
    request: reqwest::RequestBuilder,
    what: &'static str,
) -> Result<T, Answer> {
    let response = request.send().await.map_err(|err| {
        tracing::warn!(error = %err.without_url(), what, "the issuer could not be asked");
        Answer::Unavailable
    })?;
    let status = response.status();
    if status != StatusCode::OK {
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            tracing::error!(%status, what, "the issuer refused the guard's own credentials");
        } else {
            tracing::warn!(%status, what, "the issuer answered with an error");
        }
        return Err(Answer::Unavailable);
    }
    let body = read_bounded(response).await.map_err(|reason| {
        tracing::warn!(%reason, what, "the issuer's answer could not be read");
        Answer::Unavailable
    })?;
    serde_json::from_slice(&body).map_err(|err| {
        tracing::warn!(error = %err, what, "the issuer's answer is not what was expected");
        Answer::Unavailable
    })
}

/// GETs a document (at most 64 KiB), which must come with 200.
pub(crate) async fn get_bytes(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|err| err.without_url().to_string())?;
    if response.status() != StatusCode::OK {
        return Err(format!("status {}", response.status()));
    }
    read_bounded(response).await
}

/// GETs a JSON document.
pub(crate) async fn get_json<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, String> {
    let body = get_bytes(http, url).await?;
    serde_json::from_slice(&body).map_err(|err| err.to_string())
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| err.without_url().to_string())?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!("longer than {MAX_ANSWER_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found() -> Found {
        Found {
            kind: Some(CredentialKind::ApiKey),
            audiences: vec!["https://orders.example.com".to_owned()],
            subject: Some("usr_1".to_owned()),
            expires_at: Some(2000),
            ..Found::default()
        }
    }

    fn principal(found: Found, kind: CredentialKind, now: i64) -> Result<Principal, &'static str> {
        found.into_principal(kind, "https://orders.example.com", now, Arc::from("Bearer"))
    }

    #[test]
    fn expiry_times_are_read_as_rfc_3339() {
        assert_eq!(parse_time("1970-01-01T00:16:40Z"), Ok(1000));
        assert_eq!(parse_time("2026-12-03T16:00:00+01:00"), Ok(1_796_310_000));
        assert!(parse_time("tomorrow").is_err());
        assert!(parse_time("1700000000").is_err());
    }

    #[test]
    fn an_answer_counts_only_for_its_resource_kind_and_lifetime() {
        assert!(principal(found(), CredentialKind::ApiKey, 1999).is_ok());
        assert_eq!(
            principal(found(), CredentialKind::ApiKey, 2000).err(),
            Some(KEY_EXPIRED)
        );
        assert_eq!(
            principal(found(), CredentialKind::AccessToken, 1000).err(),
            Some(MALFORMED),
            "an API key presented where a token was checked"
        );
        let other = Found {
            audiences: vec!["https://other.example.com".to_owned()],
            ..found()
        };
        assert_eq!(
            principal(other, CredentialKind::ApiKey, 1000).err(),
            Some(WRONG_RESOURCE)
        );
        let refresh = Found {
            kind: Some(CredentialKind::AccessToken),
            refresh_token: true,
            ..found()
        };
        assert_eq!(
            principal(refresh, CredentialKind::AccessToken, 1000).err(),
            Some(MALFORMED)
        );
    }
}
