//! `TestApp`: the server in this process with a manual clock, and requests against it.

use crate::database::fresh_database;
use crate::flows;
use netapi_core::{Clock, ManualClock, NetApi, Settings, SystemClock};
use netapi_store::StoreOptions;
use reqwest::{Client, Response};
use serde_json::Value;
use std::sync::Arc;

/// Which storage a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A server the flows of this crate can drive: the in-process [`TestApp`] or a `netapi`
/// process that a test started.
pub trait Site {
    /// A client that keeps no cookies and follows no redirects.
    fn http(&self) -> &Client;

    /// The absolute URL of `path` (which starts with `/`).
    fn url(&self, path: &str) -> String;
}

/// A running server and what a test needs to drive it.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// A client that keeps no cookies and follows no redirects.
    pub http: Client,
    /// Move time with this.
    pub clock: Arc<ManualClock>,
    /// The service itself (for assertions that HTTP cannot make).
    pub api: Arc<NetApi>,
    /// The database URL (a second process may open it).
    pub database_url: String,
    pub backend: Backend,
}

impl Site for TestApp {
    fn http(&self) -> &Client {
        &self.http
    }

    fn url(&self, path: &str) -> String {
        TestApp::url(self, path)
    }
}

/// So that [`crate::run_scenario`] takes a `TestApp` as it takes a fixture around one.
impl AsRef<TestApp> for TestApp {
    fn as_ref(&self) -> &TestApp {
        self
    }
}

/// A client that keeps no cookies and follows no redirects, as the flows expect.
pub fn plain_client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

impl TestApp {
    /// Starts a server on a fresh database with test-friendly settings.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Like [`TestApp::spawn`], with settings changed by `adjust` first.
    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> Option<Self> {
        Self::spawn_with_http(backend, adjust, netapi_server::HttpOptions::default()).await
    }

    /// Like [`TestApp::spawn_with`], sending email through the SMTP server at `smtp_url`
    /// (an [`crate::SmtpSink`]'s, or one that is down) from `netapi@example.com`.
    pub async fn spawn_with_mail(
        backend: Backend,
        smtp_url: &str,
        adjust: impl FnOnce(&mut Settings),
    ) -> Option<Self> {
        let mailer = netapi_server::mail::SmtpMailer::new(&netapi_server::mail::SmtpSettings {
            url: netapi_core::secret::Secret::new(smtp_url),
            username: None,
            password: None,
            from: "Net API <netapi@example.com>".to_owned(),
        })
        .expect("SMTP settings");
        Self::spawn_full(
            backend,
            adjust,
            netapi_server::HttpOptions::default(),
            Some(Arc::new(mailer)),
        )
        .await
    }

    /// Like [`TestApp::spawn_with`], with these HTTP options (trusted proxies, caps).
    pub async fn spawn_with_http(
        backend: Backend,
        adjust: impl FnOnce(&mut Settings),
        http: netapi_server::HttpOptions,
    ) -> Option<Self> {
        Self::spawn_full(backend, adjust, http, None).await
    }

    async fn spawn_full(
        backend: Backend,
        adjust: impl FnOnce(&mut Settings),
        http: netapi_server::HttpOptions,
        mailer: Option<Arc<dyn netapi_core::service::Mailer>>,
    ) -> Option<Self> {
        let database_url = fresh_database(backend).await?;
        let store = netapi_store::open(&StoreOptions::new(&database_url), true)
            .await
            .expect("open store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        let mut settings = Settings {
            issuer: base.clone(),
            auth_failure_limit: 1000,
            // Tests register many users from one address; the limit's own tests set it.
            registration_limit_per_hour: 0,
            ..Settings::default()
        };
        adjust(&mut settings);
        let mut api = NetApi::new(store, clock.clone(), settings)
            .with_jwks_fetcher(Arc::new(netapi_server::jwks_fetch::HttpJwksFetcher));
        if let Some(mailer) = mailer {
            api = api.with_mailer(mailer);
        }
        let api = Arc::new(api);
        api.start().await.expect("start");
        tokio::spawn(netapi_server::serve(
            listener,
            api.clone(),
            http,
            std::future::pending(),
        ));
        Some(Self {
            base,
            http: plain_client(),
            clock,
            api,
            database_url,
            backend,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A second instance of this server, as behind a load balancer: its own process (caches,
    /// counters) on the same database, with the same settings, secret key and clock.
    pub async fn another_instance(&self) -> Self {
        let store = netapi_store::open(&StoreOptions::new(&self.database_url), false)
            .await
            .expect("open store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let api = Arc::new(NetApi::new(
            store,
            self.clock.clone(),
            self.api.settings().clone(),
        ));
        api.start().await.expect("start");
        tokio::spawn(netapi_server::serve(
            listener,
            api.clone(),
            netapi_server::HttpOptions::default(),
            std::future::pending(),
        ));
        Self {
            base,
            http: plain_client(),
            clock: self.clock.clone(),
            api,
            database_url: self.database_url.clone(),
            backend: self.backend,
        }
    }

    /// Registers a member with [`flows::PASSWORD`]; returns `(user, api_key object with "key")`.
    pub async fn register(&self, email: &str) -> (Value, Value) {
        let body = flows::register(self, email, flows::PASSWORD).await;
        (body["user"].clone(), body["api_key"].clone())
    }

    /// Registers a member and returns its API key.
    pub async fn member_key(&self, email: &str) -> String {
        let (_, key) = self.register(email).await;
        key["key"].as_str().expect("key").to_owned()
    }

    /// Creates an admin through the service (as `netapi admin create-user --admin` does) and
    /// returns its key, which carries the `admin` scope.
    pub async fn admin_key(&self, email: &str) -> String {
        let (_, _, secret) = self
            .api
            .register(
                netapi_core::service::NewUser {
                    email: email.to_owned(),
                    password: netapi_core::secret::Secret::new(flows::PASSWORD),
                    name: "Admin".to_owned(),
                    role: netapi_core::Role::Admin,
                    email_verified: true,
                    invitation: None,
                },
                None,
            )
            .await
            .expect("admin");
        secret.expose().to_owned()
    }

    pub async fn get(&self, path: &str, bearer: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_json(&self, path: &str, bearer: &str, body: Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(bearer)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str, bearer: &str) -> Response {
        self.http
            .delete(self.url(path))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("request")
    }

    /// Creates an OAuth client through the API; returns the response body (with the secret).
    pub async fn create_client(&self, bearer: &str, body: Value) -> Value {
        flows::create_client(self, bearer, body).await
    }

    /// A `client_credentials` access token for a client made by [`TestApp::create_client`].
    pub async fn client_credentials_token(&self, client: &Value) -> String {
        flows::client_credentials_token(self, client).await
    }

    /// The same, for `resource` (RFC 8707) instead of Net API itself.
    pub async fn client_credentials_token_for(&self, client: &Value, resource: &str) -> String {
        flows::client_credentials_token_for(self, client, Some(resource)).await
    }
}
