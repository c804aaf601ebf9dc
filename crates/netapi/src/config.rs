//! Configuration: flags, then `NETAPI_*` variables (clap reads both), then the TOML file,
//! then defaults. Unknown keys in the file are an error.

use anyhow::{Context, bail};
use clap::Args;
use netapi_core::sealing::SecretKey;
use netapi_core::service::{ClientRegistrationPolicy, RegistrationPolicy};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The settings of `netapi serve`; each is also `NETAPI_<NAME>` and a key of the file.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, global = true, env = "NETAPI_LISTEN")]
    pub listen: Option<String>,
    /// sqlite://file, sqlite:///abs/path or postgres://... [default: sqlite://netapi.db]
    #[arg(long, global = true, env = "NETAPI_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Most database connections per process [default: 16]
    #[arg(long, global = true, env = "NETAPI_DATABASE_MAX_CONNECTIONS")]
    pub database_max_connections: Option<u32>,
    /// The issuer URL of tokens and metadata [default: http://<listen>]
    #[arg(long, global = true, env = "NETAPI_ISSUER")]
    pub issuer: Option<String>,
    /// Access token lifetime in seconds [default: 900]
    #[arg(long, global = true, env = "NETAPI_ACCESS_TOKEN_TTL")]
    pub access_token_ttl: Option<i64>,
    /// Refresh token idle lifetime in seconds [default: 2592000]
    #[arg(long, global = true, env = "NETAPI_REFRESH_TOKEN_TTL")]
    pub refresh_token_ttl: Option<i64>,
    /// Refresh token absolute lifetime in seconds [default: 7776000]
    #[arg(long, global = true, env = "NETAPI_REFRESH_TOKEN_MAX_TTL")]
    pub refresh_token_max_ttl: Option<i64>,
    /// Seconds a rotated refresh token may still be used (concurrent refreshes) [default: 10]
    #[arg(long, global = true, env = "NETAPI_REFRESH_REUSE_GRACE")]
    pub refresh_reuse_grace: Option<i64>,
    /// Authorization code lifetime in seconds [default: 60]
    #[arg(long, global = true, env = "NETAPI_AUTHORIZATION_CODE_TTL")]
    pub authorization_code_ttl: Option<i64>,
    /// Browser session lifetime in seconds [default: 43200]
    #[arg(long, global = true, env = "NETAPI_SESSION_TTL")]
    pub session_ttl: Option<i64>,
    /// Failed authentications per minute per address, account or client before 429 [default: 20]
    #[arg(long, global = true, env = "NETAPI_AUTH_FAILURE_LIMIT")]
    pub auth_failure_limit: Option<u32>,
    /// Seconds a new signing key is published before it signs [default: 300]
    #[arg(long, global = true, env = "NETAPI_SIGNING_KEY_PUBLISH_DELAY")]
    pub signing_key_publish_delay: Option<i64>,
    /// Secret key of the HMAC that stores API keys, tokens and secrets; changing it
    /// invalidates every one of them [default: none]
    #[arg(long, global = true, env = "NETAPI_PEPPER", hide_env_values = true)]
    pub pepper: Option<String>,
    /// File with the key that seals signing keys in the database (64 hex digits), made with
    /// mode 0600 on the first start of a database when absent; every instance on one
    /// database needs the same file [default: netapi.key beside the SQLite file, or in the
    /// working directory with PostgreSQL]
    #[arg(long, global = true, env = "NETAPI_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// Largest request body in bytes [default: 65536]
    #[arg(long, global = true, env = "NETAPI_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// Requests per minute per API key or OAuth client, unless set on the key or client; 0 means no limit [default: 0]
    #[arg(long, global = true, env = "NETAPI_RATE_LIMIT_PER_MINUTE")]
    pub rate_limit_per_minute: Option<u32>,
    /// Comma-separated proxies (addresses or CIDR networks) whose X-Forwarded-For is believed [default: none]
    #[arg(long, global = true, env = "NETAPI_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Require PKCE from confidential clients too (public clients always need it) [default: true]
    #[arg(long, global = true, env = "NETAPI_REQUIRE_PKCE")]
    pub require_pkce: Option<bool>,
    /// Algorithm of new token signing keys: EdDSA or ES256 (switch with `netapi admin rotate-signing-key`) [default: EdDSA]
    #[arg(long, global = true, env = "NETAPI_SIGNING_ALGORITHM")]
    pub signing_algorithm: Option<String>,
    /// Most open client connections [default: 10000]
    #[arg(long, global = true, env = "NETAPI_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most open connections from one address (IPv6: per /64); trusted_proxies are exempt; 0 means no limit [default: 64]
    #[arg(long, global = true, env = "NETAPI_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// Registrations per hour from one address (IPv6: per /64); 0 means no limit [default: 20]
    #[arg(long, global = true, env = "NETAPI_REGISTRATION_LIMIT_PER_HOUR")]
    pub registration_limit_per_hour: Option<u32>,
    /// Registrations hashing their password or waiting to, at once; past it 503 [default: 32]
    #[arg(long, global = true, env = "NETAPI_REGISTRATION_HASH_QUEUE")]
    pub registration_hash_queue: Option<usize>,
    /// Longest a request may take, in seconds, reading its body included [default: 30]
    #[arg(long, global = true, env = "NETAPI_REQUEST_TIMEOUT")]
    pub request_timeout: Option<u64>,
    /// Entries in the credential caches [default: 100000]
    #[arg(long, global = true, env = "NETAPI_CACHE_CAPACITY")]
    pub cache_capacity: Option<u64>,
    /// TLS certificate chain (PEM) [default: none, plain HTTP]
    #[arg(long, global = true, env = "NETAPI_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) [default: none]
    #[arg(long, global = true, env = "NETAPI_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Log format: text or json [default: text]
    #[arg(long, global = true, env = "NETAPI_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Log one line per request (the `netapi::access` target); off saves about a fifth of
    /// the CPU of a forward-auth check [default: true]
    #[arg(long, global = true, env = "NETAPI_ACCESS_LOG")]
    pub access_log: Option<bool>,
    /// GitHub's secret scanning public keys, the JSON of
    /// https://api.github.com/meta/public_keys/secret_scanning, read at start; turns on
    /// POST /secret-scanning/github [default: none, the endpoint answers 404]
    #[arg(long, global = true, env = "NETAPI_SECRET_SCANNING_GITHUB_KEYS")]
    pub secret_scanning_github_keys: Option<PathBuf>,
    /// Longest a webhook delivery may take, in seconds [default: 10]
    #[arg(long, global = true, env = "NETAPI_WEBHOOK_TIMEOUT")]
    pub webhook_timeout: Option<i64>,
    /// Seconds before the first retry of a failed webhook delivery, doubling at each next
    /// one (12 attempts in all) [default: 5]
    #[arg(long, global = true, env = "NETAPI_WEBHOOK_RETRY_BASE")]
    pub webhook_retry_base: Option<i64>,
    /// Let outbound requests (webhooks) reach loopback, private and link-local addresses,
    /// and http URLs [default: false]
    #[arg(long, global = true, env = "NETAPI_ALLOW_PRIVATE_TARGETS")]
    pub allow_private_targets: Option<bool>,
    /// Mail server for verification and password-reset links: smtp://host[:25],
    /// smtps://host[:465] (TLS) or smtp+starttls://host[:587], with user:password@ if need be
    /// [default: none, email is off]
    #[arg(long, global = true, env = "NETAPI_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<Hidden>,
    /// SMTP user name, when it is not in smtp_url [default: none]
    #[arg(long, global = true, env = "NETAPI_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    /// SMTP password, when it is not in smtp_url [default: none]
    #[arg(
        long,
        global = true,
        env = "NETAPI_SMTP_PASSWORD",
        hide_env_values = true
    )]
    pub smtp_password: Option<Hidden>,
    /// The From of every message, `address` or `Name <address>`; required with smtp_url
    /// [default: none]
    #[arg(long, global = true, env = "NETAPI_EMAIL_FROM")]
    pub email_from: Option<String>,
    /// Refuse sign-in until the user has verified their email address; needs smtp_url
    /// [default: false]
    #[arg(long, global = true, env = "NETAPI_REQUIRE_VERIFIED_EMAIL")]
    pub require_verified_email: Option<bool>,
    /// Messages per recipient address per hour; 0 means no limit [default: 5]
    #[arg(long, global = true, env = "NETAPI_EMAIL_RECIPIENT_LIMIT_PER_HOUR")]
    pub email_recipient_limit_per_hour: Option<u32>,
    /// Requests for mail (reset, verification) per source address (IPv6: per /64) per hour;
    /// 0 means no limit [default: 20]
    #[arg(long, global = true, env = "NETAPI_EMAIL_SOURCE_LIMIT_PER_HOUR")]
    pub email_source_limit_per_hour: Option<u32>,
    /// Administrators must set up a second factor (TOTP): one without is sent to set it up
    /// after signing in, before anything else [default: false]
    #[arg(long, global = true, env = "NETAPI_MFA_REQUIRED_FOR_ADMINS")]
    pub mfa_required_for_admins: Option<bool>,
    /// Every user must set up a second factor [default: false]
    #[arg(long, global = true, env = "NETAPI_MFA_REQUIRED")]
    pub mfa_required: Option<bool>,
    /// Who may register over HTTP: open (anyone), invite (only with an invitation an
    /// administrator made) or closed (no one; `netapi admin create-user` still works)
    /// [default: open]
    #[arg(long, global = true, env = "NETAPI_REGISTRATION")]
    pub registration: Option<String>,
    /// Comma-separated email domains registration is open to (exact matches; an invitation
    /// bound to an email is exempt) [default: any]
    #[arg(
        long,
        global = true,
        env = "NETAPI_REGISTRATION_EMAIL_DOMAINS",
        value_delimiter = ','
    )]
    pub registration_email_domains: Option<Vec<String>>,
    /// Who may register OAuth clients at /oauth/register (RFC 7591): admin (with an
    /// initial access token from `netapi admin create-registration-token`), authenticated
    /// (any user credential with clients:write; the user owns the client) or open
    /// (anonymous, limited per address by registration_limit_per_hour; such clients have no
    /// owner and never use client_credentials) [default: authenticated]
    #[arg(long, global = true, env = "NETAPI_CLIENT_REGISTRATION")]
    pub client_registration: Option<String>,
    /// Take authorization requests only through /oauth/par (RFC 9126): /oauth/authorize
    /// refuses any without a request_uri, for every client (a client can also require it
    /// for itself) [default: false]
    #[arg(
        long,
        global = true,
        env = "NETAPI_REQUIRE_PUSHED_AUTHORIZATION_REQUESTS"
    )]
    pub require_pushed_authorization_requests: Option<bool>,
    /// DPoP proofs (RFC 9449) must carry a nonce this server handed out (`DPoP-Nonce`,
    /// `use_dpop_nonce`), at the token endpoint and wherever DPoP-bound tokens are checked
    /// [default: false]
    #[arg(long, global = true, env = "NETAPI_REQUIRE_DPOP_NONCE")]
    pub require_dpop_nonce: Option<bool>,
    /// Redis shared by every instance, redis://[user:password@]host[:port][/db]: request
    /// limits and failure counters then hold across instances (per process while it does
    /// not answer) [default: none, limits are per process]
    #[arg(long, global = true, env = "NETAPI_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Hidden>,
    /// Longest a limiter waits for Redis, in milliseconds, before counting in the process
    /// [default: 50]
    #[arg(long, global = true, env = "NETAPI_REDIS_TIMEOUT_MS")]
    pub redis_timeout_ms: Option<u64>,
    /// How often other instances' revocations are read from the database, in milliseconds
    /// (with PostgreSQL they also arrive at once by LISTEN/NOTIFY) [default: 250]
    #[arg(long, global = true, env = "NETAPI_INVALIDATION_POLL_MS")]
    pub invalidation_poll_ms: Option<u64>,
    /// Days audit events are kept; 0 keeps them for ever [default: 365]
    #[arg(long, global = true, env = "NETAPI_AUDIT_RETENTION_DAYS")]
    pub audit_retention_days: Option<u32>,
    /// Days hourly API key usage counts are kept; 0 keeps them for ever [default: 400]
    #[arg(long, global = true, env = "NETAPI_USAGE_RETENTION_DAYS")]
    pub usage_retention_days: Option<u32>,
    /// Days webhook deliveries that are over (delivered, failed) are kept after their event;
    /// 0 keeps them for ever [default: 30]
    #[arg(long, global = true, env = "NETAPI_WEBHOOK_DELIVERY_RETENTION_DAYS")]
    pub webhook_delivery_retention_days: Option<u32>,
    /// OpenTelemetry collector to send one span per request to, over OTLP/HTTP (protobuf):
    /// its base URL (http://collector:4318, /v1/traces is added) or the full URL of its
    /// traces endpoint [default: none, no tracing]
    #[arg(long, global = true, env = "NETAPI_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Certificate authorities (PEM) that an https:// otlp_endpoint's certificate is checked
    /// against, in place of the public ones: for a collector with a private CA [default:
    /// none, the public (webpki) roots]
    #[arg(long, global = true, env = "NETAPI_OTLP_CA_FILE")]
    pub otlp_ca_file: Option<PathBuf>,
}

/// A setting that may hold a secret (a password, or a URL with one): its `Debug` shows
/// nothing of it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Hidden(String);

impl Hidden {
    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Hidden {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self(value.to_owned()))
    }
}

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[hidden]")
    }
}

macro_rules! fill_from {
    ($into:ident, $from:ident, $($field:ident),* $(,)?) => {
        // Destructured without `..`: a new setting that is not listed here does not compile.
        let Settings { $($field),* } = $from;
        $( if $into.$field.is_none() { $into.$field = $field; } )*
    };
}

impl Settings {
    /// Fills what flags and environment left unset from the file at `path`.
    pub fn with_file(mut self, path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        let file: Self = toml::from_str(&text)
            .with_context(|| format!("invalid configuration file {}", path.display()))?;
        fill_from!(
            self,
            file,
            listen,
            database_url,
            database_max_connections,
            issuer,
            access_token_ttl,
            refresh_token_ttl,
            refresh_token_max_ttl,
            refresh_reuse_grace,
            authorization_code_ttl,
            session_ttl,
            auth_failure_limit,
            signing_key_publish_delay,
            pepper,
            secret_key_file,
            body_limit,
            rate_limit_per_minute,
            trusted_proxies,
            require_pkce,
            signing_algorithm,
            max_connections,
            max_connections_per_ip,
            registration_limit_per_hour,
            registration_hash_queue,
            request_timeout,
            cache_capacity,
            tls_cert,
            tls_key,
            log_format,
            access_log,
            secret_scanning_github_keys,
            webhook_timeout,
            webhook_retry_base,
            allow_private_targets,
            smtp_url,
            smtp_username,
            smtp_password,
            email_from,
            require_verified_email,
            email_recipient_limit_per_hour,
            email_source_limit_per_hour,
            mfa_required_for_admins,
            mfa_required,
            registration,
            registration_email_domains,
            client_registration,
            require_pushed_authorization_requests,
            require_dpop_nonce,
            redis_url,
            redis_timeout_ms,
            invalidation_poll_ms,
            audit_retention_days,
            usage_retention_days,
            webhook_delivery_retention_days,
            otlp_endpoint,
            otlp_ca_file,
        );
        Ok(self)
    }

    /// The address to listen on.
    pub fn listen(&self) -> &str {
        self.listen.as_deref().unwrap_or("127.0.0.1:8080")
    }

    /// The database URL.
    pub fn database_url(&self) -> &str {
        self.database_url.as_deref().unwrap_or("sqlite://netapi.db")
    }

    /// The secret key file; `None` for an in-memory SQLite database, whose key lives and dies
    /// with the process like the data it protects.
    pub fn secret_key_file(&self) -> Option<PathBuf> {
        if let Some(path) = &self.secret_key_file {
            return Some(path.clone());
        }
        let url = self.database_url();
        let Some(rest) = url.strip_prefix("sqlite:") else {
            return Some(PathBuf::from("netapi.key"));
        };
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let database = rest.split('?').next().unwrap_or_default();
        if database.is_empty() || database == ":memory:" || url.contains("mode=memory") {
            return None;
        }
        Some(Path::new(database).with_file_name("netapi.key"))
    }

    /// The mail server, when `smtp_url` is set; an error names the setting that is wrong.
    pub fn smtp(&self) -> anyhow::Result<Option<netapi_server::mail::SmtpSettings>> {
        let Some(url) = &self.smtp_url else {
            if self.smtp_username.is_some()
                || self.smtp_password.is_some()
                || self.email_from.is_some()
            {
                bail!("smtp_username, smtp_password and email_from need smtp_url");
            }
            return Ok(None);
        };
        let Some(from) = &self.email_from else {
            bail!("smtp_url needs email_from, the From address of the messages");
        };
        Ok(Some(netapi_server::mail::SmtpSettings {
            url: netapi_core::secret::Secret::new(url.expose()),
            username: self.smtp_username.clone(),
            password: self
                .smtp_password
                .as_ref()
                .map(|p| netapi_core::secret::Secret::new(p.expose())),
            from: from.clone(),
        }))
    }

    /// The shared counters at `redis_url`, when it is set (connected in the background).
    pub fn shared_counters(
        &self,
    ) -> anyhow::Result<Option<Arc<netapi_server::shared_limits::RedisCounters>>> {
        let Some(url) = &self.redis_url else {
            if self.redis_timeout_ms.is_some() {
                bail!("redis_timeout_ms needs redis_url");
            }
            return Ok(None);
        };
        let timeout = match self.redis_timeout_ms.unwrap_or(50) {
            0 => bail!("redis_timeout_ms must be a positive number of milliseconds"),
            ms => std::time::Duration::from_millis(ms),
        };
        netapi_server::shared_limits::RedisCounters::connect(url.expose(), timeout)
            .map(Some)
            .map_err(anyhow::Error::msg)
    }

    /// Checks ranges and builds the core's settings, with the secret key read from its file.
    pub fn core(&self, secret_key: SecretKey) -> anyhow::Result<netapi_core::Settings> {
        let defaults = netapi_core::Settings::default();
        let positive = |name: &str, value: Option<i64>, default: i64| -> anyhow::Result<i64> {
            let value = value.unwrap_or(default);
            if value <= 0 {
                bail!("{name} must be a positive number of seconds");
            }
            Ok(value)
        };
        let issuer = self.issuer.clone().unwrap_or_else(|| {
            let scheme = if self.tls_cert.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{}", self.listen())
        });
        url::Url::parse(&issuer).context("issuer must be an absolute URL")?;
        let refresh_reuse_grace = self
            .refresh_reuse_grace
            .unwrap_or(defaults.refresh_reuse_grace);
        if refresh_reuse_grace < 0 {
            bail!("refresh_reuse_grace must not be negative");
        }
        // Zero would answer 408 to every request not finished in its first poll.
        if self.request_timeout == Some(0) {
            bail!("request_timeout must be a positive number of seconds");
        }
        if let Some(path) = &self.secret_scanning_github_keys {
            // Read here too, so that a wrong file is named before any database is opened.
            netapi_core::scanning::GithubKeys::read(path).with_context(|| {
                format!(
                    "secret_scanning_github_keys: GitHub's public keys in {} cannot be used",
                    path.display()
                )
            })?;
        }
        let registration = match self.registration.as_deref() {
            None => defaults.registration,
            Some(name) => RegistrationPolicy::parse(name).with_context(|| {
                format!("registration must be open, invite or closed, not '{name}'")
            })?,
        };
        let registration_email_domains = self
            .registration_email_domains
            .iter()
            .flatten()
            .map(|domain| {
                let domain = domain.trim().trim_start_matches('@').to_lowercase();
                let valid = !domain.is_empty()
                    && domain.len() <= 253
                    && domain.contains('.')
                    && domain
                        .split('.')
                        .all(|label| !label.is_empty() && !label.contains(['@', ' ', '/']));
                if valid {
                    Ok(domain)
                } else {
                    bail!("registration_email_domains: '{domain}' is not a domain like example.com")
                }
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let client_registration = match self.client_registration.as_deref() {
            None => defaults.client_registration,
            Some(name) => ClientRegistrationPolicy::parse(name).with_context(|| {
                format!("client_registration must be admin, authenticated or open, not '{name}'")
            })?,
        };
        Ok(netapi_core::Settings {
            require_dpop_nonce: self
                .require_dpop_nonce
                .unwrap_or(defaults.require_dpop_nonce),
            registration,
            registration_email_domains,
            client_registration,
            issuer,
            access_token_ttl: positive(
                "access_token_ttl",
                self.access_token_ttl,
                defaults.access_token_ttl,
            )?,
            refresh_token_ttl: positive(
                "refresh_token_ttl",
                self.refresh_token_ttl,
                defaults.refresh_token_ttl,
            )?,
            refresh_token_max_ttl: positive(
                "refresh_token_max_ttl",
                self.refresh_token_max_ttl,
                defaults.refresh_token_max_ttl,
            )?,
            refresh_reuse_grace,
            authorization_code_ttl: positive(
                "authorization_code_ttl",
                self.authorization_code_ttl,
                defaults.authorization_code_ttl,
            )?,
            session_ttl: positive("session_ttl", self.session_ttl, defaults.session_ttl)?,
            auth_failure_limit: self
                .auth_failure_limit
                .unwrap_or(defaults.auth_failure_limit),
            signing_key_publish_delay: self
                .signing_key_publish_delay
                .unwrap_or(defaults.signing_key_publish_delay)
                .max(0),
            pepper: self.pepper.clone().unwrap_or_default().into_bytes(),
            cache_capacity: self.cache_capacity.unwrap_or(defaults.cache_capacity),
            rate_limit_per_minute: self
                .rate_limit_per_minute
                .unwrap_or(defaults.rate_limit_per_minute),
            require_pkce: self.require_pkce.unwrap_or(defaults.require_pkce),
            secret_key,
            registration_limit_per_hour: self
                .registration_limit_per_hour
                .unwrap_or(defaults.registration_limit_per_hour),
            registration_hash_queue: self
                .registration_hash_queue
                .unwrap_or(defaults.registration_hash_queue),
            secret_scanning_github_keys: self.secret_scanning_github_keys.clone(),
            webhook_timeout: std::time::Duration::from_secs(
                positive(
                    "webhook_timeout",
                    self.webhook_timeout,
                    i64::try_from(defaults.webhook_timeout.as_secs()).unwrap_or(10),
                )?
                .unsigned_abs(),
            ),
            webhook_retry_base: positive(
                "webhook_retry_base",
                self.webhook_retry_base,
                defaults.webhook_retry_base,
            )?,
            allow_private_targets: self
                .allow_private_targets
                .unwrap_or(defaults.allow_private_targets),
            require_verified_email: {
                let required = self
                    .require_verified_email
                    .unwrap_or(defaults.require_verified_email);
                if required && self.smtp_url.is_none() {
                    bail!(
                        "require_verified_email needs smtp_url: without email nobody could \
                         verify an address, and nobody could sign in"
                    );
                }
                required
            },
            email_recipient_limit_per_hour: self
                .email_recipient_limit_per_hour
                .unwrap_or(defaults.email_recipient_limit_per_hour),
            email_source_limit_per_hour: self
                .email_source_limit_per_hour
                .unwrap_or(defaults.email_source_limit_per_hour),
            mfa_required_for_admins: self
                .mfa_required_for_admins
                .unwrap_or(defaults.mfa_required_for_admins),
            mfa_required: self.mfa_required.unwrap_or(defaults.mfa_required),
            require_pushed_authorization_requests: self
                .require_pushed_authorization_requests
                .unwrap_or(defaults.require_pushed_authorization_requests),
            audit_retention_days: self
                .audit_retention_days
                .unwrap_or(defaults.audit_retention_days),
            usage_retention_days: self
                .usage_retention_days
                .unwrap_or(defaults.usage_retention_days),
            webhook_delivery_retention_days: self
                .webhook_delivery_retention_days
                .unwrap_or(defaults.webhook_delivery_retention_days),
            invalidation_poll_interval: match self.invalidation_poll_ms {
                None => defaults.invalidation_poll_interval,
                Some(0) => bail!("invalidation_poll_ms must be a positive number"),
                Some(ms) => std::time::Duration::from_millis(ms),
            },
            signing_algorithm: match self.signing_algorithm.as_deref() {
                None => defaults.signing_algorithm,
                Some(name) => {
                    netapi_core::model::SigningAlgorithm::parse(name).with_context(|| {
                        format!("signing_algorithm must be EdDSA or ES256, not '{name}'")
                    })?
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_settings_are_checked_and_never_shown() {
        let file: Settings = toml::from_str(
            "smtp_url = \"smtp+starttls://user:urlsecret@mail.example.com\"\n\
             email_from = \"Net API <netapi@example.com>\"\n\
             require_verified_email = true\n",
        )
        .unwrap_or_default();
        assert!(!format!("{file:?}").contains("urlsecret"));
        assert!(file.smtp().is_ok_and(|smtp| smtp.is_some()));
        assert!(
            file.core(SecretKey::insecure_for_tests())
                .is_ok_and(|core| core.require_verified_email)
        );
        let separate = Settings {
            smtp_url: Some(Hidden("smtps://mail.example.com".to_owned())),
            smtp_username: Some("user".to_owned()),
            smtp_password: Some(Hidden("flagsecret".to_owned())),
            ..Settings::default()
        };
        assert!(!format!("{separate:?}").contains("flagsecret"));
        // No From address, or no server: refused with the setting's name.
        assert!(
            separate
                .smtp()
                .is_err_and(|e| e.to_string().contains("email_from"))
        );
        let no_server = Settings {
            require_verified_email: Some(true),
            ..Settings::default()
        };
        assert!(
            no_server
                .core(SecretKey::insecure_for_tests())
                .is_err_and(|e| e.to_string().contains("smtp_url"))
        );
    }

    #[test]
    fn retention_settings_default_and_zero_keeps_for_ever() {
        let defaults = Settings::default()
            .core(SecretKey::insecure_for_tests())
            .expect("defaults");
        assert_eq!(
            (
                defaults.audit_retention_days,
                defaults.usage_retention_days,
                defaults.webhook_delivery_retention_days
            ),
            (365, 400, 30)
        );
        let file: Settings = toml::from_str(
            "audit_retention_days = 0\nusage_retention_days = 90\n\
             webhook_delivery_retention_days = 7\n",
        )
        .expect("file");
        let core = file.core(SecretKey::insecure_for_tests()).expect("core");
        assert_eq!(
            (
                core.audit_retention_days,
                core.usage_retention_days,
                core.webhook_delivery_retention_days
            ),
            (0, 90, 7)
        );
        assert!(toml::from_str::<Settings>("audit_retention_days = -1\n").is_err());
    }

    #[test]
    fn a_request_timeout_of_zero_is_refused() {
        let file: Settings = toml::from_str("request_timeout = 0\n").expect("file");
        let refused = file
            .core(SecretKey::insecure_for_tests())
            .expect_err("zero refused");
        assert_eq!(
            refused.to_string(),
            "request_timeout must be a positive number of seconds"
        );
        let file: Settings = toml::from_str("request_timeout = 5\n").expect("file");
        assert!(file.core(SecretKey::insecure_for_tests()).is_ok());
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let err = toml::from_str::<Settings>("listen = \"0.0.0.0:1\"\nlisen = 1\n");
        assert!(err.is_err_and(|e| e.to_string().contains("lisen")));
    }

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_the_rest() {
        let dir = std::env::temp_dir().join(format!("netapi-config-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("netapi.toml");
        let _ = std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\naccess_token_ttl = 60\n",
        );
        let flags = Settings {
            access_token_ttl: Some(120),
            ..Settings::default()
        };
        let merged = flags.with_file(Some(&path)).unwrap_or_default();
        assert_eq!(merged.listen(), "127.0.0.1:9000");
        assert_eq!(merged.access_token_ttl, Some(120));
        let core = merged
            .core(SecretKey::insecure_for_tests())
            .unwrap_or_default();
        assert_eq!(core.issuer, "http://127.0.0.1:9000");
        assert_eq!(core.refresh_reuse_grace, 10);
    }

    #[test]
    fn registration_settings_are_checked() {
        let with = |policy: Option<&str>, domains: &[&str]| Settings {
            registration: policy.map(str::to_owned),
            registration_email_domains: Some(domains.iter().map(|d| (*d).to_owned()).collect()),
            ..Settings::default()
        };
        let core = with(Some("invite"), &["Example.COM", "@corp.example.org"])
            .core(SecretKey::insecure_for_tests())
            .unwrap_or_default();
        assert_eq!(core.registration, RegistrationPolicy::Invite);
        assert_eq!(
            core.registration_email_domains,
            ["example.com", "corp.example.org"]
        );
        let err = |settings: Settings| {
            settings
                .core(SecretKey::insecure_for_tests())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(with(Some("public"), &[])).contains("open, invite or closed"));
        assert!(err(with(None, &["localhost"])).contains("registration_email_domains"));
        assert!(err(with(None, &["a b.com"])).contains("registration_email_domains"));
        let parsed: Settings = toml::from_str(
            "registration = \"closed\"\nregistration_email_domains = [\"example.com\"]\n",
        )
        .unwrap_or_default();
        assert_eq!(parsed.registration.as_deref(), Some("closed"));
    }

    #[test]
    fn a_secret_scanning_key_file_that_cannot_be_used_stops_the_start() {
        let settings = Settings {
            secret_scanning_github_keys: Some("/nonexistent/github-keys.json".into()),
            ..Settings::default()
        };
        let err = settings
            .core(SecretKey::insecure_for_tests())
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(
            err.contains("secret_scanning_github_keys")
                && err.contains("/nonexistent/github-keys.json"),
            "{err}"
        );
    }

    #[test]
    fn the_secret_key_file_sits_beside_the_sqlite_file_unless_set() {
        let with_url = |url: &str| Settings {
            database_url: Some(url.to_owned()),
            ..Settings::default()
        };
        let path = |url: &str| with_url(url).secret_key_file();
        assert_eq!(
            Settings::default().secret_key_file(),
            Some("netapi.key".into())
        );
        assert_eq!(
            path("sqlite:///var/lib/netapi/netapi.db"),
            Some("/var/lib/netapi/netapi.key".into())
        );
        assert_eq!(
            path("sqlite://data/x.db?mode=rwc"),
            Some("data/netapi.key".into())
        );
        assert_eq!(path("sqlite::memory:"), None);
        assert_eq!(path("postgres://db/netapi"), Some("netapi.key".into()));
        let explicit = Settings {
            secret_key_file: Some("/etc/netapi/key".into()),
            ..with_url("postgres://db/netapi")
        };
        assert_eq!(explicit.secret_key_file(), Some("/etc/netapi/key".into()));
    }
}
