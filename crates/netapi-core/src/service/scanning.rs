//! Leaked keys revoke themselves: GitHub's secret scanning reports a batch of tokens found in
//! public places, and every real Net API key among them is revoked at once.
//!
//! The order is the cheap and safe one: the signature is checked over the raw body before
//! the body is parsed; each token's format and CRC32 checksum before it is hashed; the hash
//! is looked up through the same caches as the authentication hot path; and the revocation
//! is the one of `DELETE /v1/api-keys/{id}` (storage, then every process's cache).
//!
//! Each revoked key gets an `api_key.leaked` audit event in its owner's log, delivered with
//! it to the webhooks subscribed to `api_key.leaked`.

use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use super::NetApi;
use crate::error::{Error, Result};
use crate::scanning::{
    GithubKeys, Label, MAX_KEPT_SOURCE_LEN, MAX_KEPT_URL_LEN, MAX_KEY_IDENTIFIER_LEN,
    ReportedToken, ScanError, Verdict, bounded, decode_signature, parse_report,
};
use crate::secret::{SecretHash, SecretKind, check_format};

/// Shortest time between two readings of the key file prompted by an unknown identifier:
/// GitHub rotates its keys, but an invented identifier must not make every request read a
/// file.
const KEY_FILE_REREAD_INTERVAL: i64 = 60;

/// The key file named by `secret_scanning_github_keys`, and the keys last read from it.
#[derive(Debug)]
pub(crate) struct GithubKeySource {
    path: PathBuf,
    keys: RwLock<Arc<GithubKeys>>,
    read_at: AtomicI64,
}

impl GithubKeySource {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            keys: RwLock::new(Arc::new(GithubKeys::default())),
            read_at: AtomicI64::new(0),
        }
    }

    fn current(&self) -> Arc<GithubKeys> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, keys: GithubKeys) {
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
    }

    async fn read(&self) -> std::result::Result<GithubKeys, crate::scanning::KeyFileError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || GithubKeys::read(&path))
            .await
            .unwrap_or_else(|err| {
                Err(crate::scanning::KeyFileError::Read {
                    path: self.path.display().to_string(),
                    reason: err.to_string(),
                })
            })
    }
}

impl NetApi {
    /// Whether `POST /secret-scanning/github` is on (`secret_scanning_github_keys` is set).
    pub fn secret_scanning_enabled(&self) -> bool {
        self.github_keys.is_some()
    }

    /// Reads the key file at start: a file that is missing or wrong stops the start.
    pub(super) async fn load_github_keys(&self) -> Result<()> {
        let Some(source) = &self.github_keys else {
            return Ok(());
        };
        let keys = source.read().await.map_err(|err| {
            Error::Misconfigured(format!(
                "secret_scanning_github_keys ({}): {err}",
                source.path.display()
            ))
        })?;
        source.replace(keys);
        source.read_at.store(self.now(), Ordering::SeqCst);
        Ok(())
    }

    /// The keys, read again first when `identifier` is unknown and the file was last read
    /// long enough ago (one reader at a time); a file that fails then keeps the keys in force.
    async fn github_keys_for(&self, source: &GithubKeySource, identifier: &str) -> Arc<GithubKeys> {
        let keys = source.current();
        if keys.knows(identifier) {
            return keys;
        }
        let now = self.now();
        let last = source.read_at.load(Ordering::SeqCst);
        if now.saturating_sub(last) < KEY_FILE_REREAD_INTERVAL
            || source
                .read_at
                .compare_exchange(last, now, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            return keys;
        }
        match source.read().await {
            Ok(fresh) => {
                tracing::info!("secret scanning: GitHub's public keys read again");
                source.replace(fresh);
            }
            Err(err) => {
                tracing::warn!(error = %err, "secret scanning: cannot read the key file again; the keys read before stay");
            }
        }
        source.current()
    }

    /// Handles a report of GitHub's secret scanning: checks its signature over the raw
    /// `body`, then answers each token with its label, revoking every real key not yet
    /// revoked. A repeated report gets the same answer (GitHub signs only the body): a key
    /// it revoked before is still a true positive.
    pub async fn report_github_leaks(
        &self,
        identifier: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        ip: Option<&str>,
    ) -> std::result::Result<Vec<Verdict>, ScanError> {
        let source = self.github_keys.as_ref().ok_or(ScanError::NotConfigured)?;
        let (Some(identifier), Some(signature)) = (identifier, signature) else {
            return Err(ScanError::SignatureHeaders);
        };
        if identifier.is_empty() || identifier.len() > MAX_KEY_IDENTIFIER_LEN {
            return Err(ScanError::SignatureHeaders);
        }
        let signature = decode_signature(signature)?;
        self.github_keys_for(source, identifier)
            .await
            .verify(identifier, &signature, body)?;
        let reported = parse_report(body)?;
        let mut labels: HashMap<SecretHash, Label> = HashMap::new();
        let mut verdicts = Vec::with_capacity(reported.len());
        for token in reported {
            let label = if check_format(SecretKind::ApiKey, token.token.expose()).is_err() {
                Label::FalsePositive
            } else {
                let hash = self.hasher.hash(token.token.expose());
                match labels.get(&hash) {
                    Some(label) => *label,
                    None => {
                        let label = self.handle_leak(&hash, &token, ip).await?;
                        labels.insert(hash, label);
                        label
                    }
                }
            };
            verdicts.push(Verdict {
                token: token.token,
                token_type: token.token_type,
                label,
            });
        }
        Ok(verdicts)
    }

    /// A well-formed token: a true positive when a key is stored under its hash, revoked
    /// here (with an `api_key.leaked` event) unless it already was.
    async fn handle_leak(
        &self,
        hash: &SecretHash,
        token: &ReportedToken,
        ip: Option<&str>,
    ) -> Result<Label> {
        let Some(key) = self.key_by_hash(hash).await? else {
            return Ok(Label::FalsePositive);
        };
        if key.revoked_at.is_none() {
            let detail = json!({
                "api_key_id": key.id,
                "reported_by": "github_secret_scanning",
                "source": bounded(token.source.as_deref(), MAX_KEPT_SOURCE_LEN),
                "url": bounded(token.url.as_deref(), MAX_KEPT_URL_LEN),
            });
            if self.revoke_key(&key, "api_key.leaked", ip, detail).await? {
                tracing::warn!(api_key_id = %key.id, "API key revoked: GitHub found it in public");
            }
        }
        Ok(Label::TruePositive)
    }
}
