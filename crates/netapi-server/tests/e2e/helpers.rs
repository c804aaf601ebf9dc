//! `TestApp`: spawn the server with a manual clock, register users, make requests.

use netapi_core::{Clock, ManualClock, NetApi, Settings, SystemClock};
use netapi_store::StoreOptions;
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

/// Which storage a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Makes two tests of one scenario: `sqlite` always, `postgres` when the variable is set.
/// The scenario is `async fn name(app: TestApp)`. With `settings = adjust;` first, the server
/// starts with its settings changed by `fn adjust(&mut Settings)` of the calling module.
#[macro_export]
macro_rules! e2e {
    (settings = $adjust:ident; $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    if let Some(app) = $crate::helpers::TestApp::spawn_with($crate::helpers::Backend::Sqlite, super::$adjust).await {
                        super::$name(app).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = $crate::helpers::TestApp::spawn_with($crate::helpers::Backend::Postgres, super::$adjust).await {
                        let database = app.database_url.clone();
                        super::$name(app).await;
                        $crate::helpers::drop_database(&database).await;
                    }
                }
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    if let Some(app) = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await {
                        super::$name(app).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Postgres).await {
                        let database = app.database_url.clone();
                        super::$name(app).await;
                        // Passed: its database goes (a failed test's stays, to be looked at).
                        $crate::helpers::drop_database(&database).await;
                    }
                }
            }
        )*
    };
}

/// A running server and what a test needs to drive it.
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

fn random_name(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        netapi_core::secret::random_base62(12).to_lowercase()
    )
}

/// A fresh database URL for the backend; `None` (and a note) when PostgreSQL is not configured.
pub async fn fresh_database(backend: Backend) -> Option<String> {
    match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir().join(format!("{}.db", random_name("netapi-e2e-")));
            Some(format!("sqlite://{}", path.display()))
        }
        Backend::Postgres => {
            let Ok(admin_url) = std::env::var("NETAPI_TEST_POSTGRES_URL") else {
                eprintln!("skipped: NETAPI_TEST_POSTGRES_URL is not set");
                return None;
            };
            let name = random_name("netapi_e2e_");
            let pool = sqlx::PgPool::connect(&admin_url)
                .await
                .expect("connect to PostgreSQL");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&pool)
                .await
                .expect("create database");
            pool.close().await;
            let mut url = url::Url::parse(&admin_url).expect("postgres URL");
            url.set_path(&format!("/{name}"));
            Some(url.to_string())
        }
    }
}

/// Drops a test's PostgreSQL database, connections and all, so that runs do not pile them up
/// on the machine (every CI run and session shares one server).
pub async fn drop_database(database_url: &str) {
    let (Ok(admin_url), Ok(url)) = (
        std::env::var("NETAPI_TEST_POSTGRES_URL"),
        url::Url::parse(database_url),
    ) else {
        return;
    };
    let name = url.path().trim_start_matches('/');
    let pool = sqlx::PgPool::connect(&admin_url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&pool)
        .await
        .expect("drop database");
    pool.close().await;
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

    /// Like [`TestApp::spawn_with`], with these HTTP options (trusted proxies, caps).
    pub async fn spawn_with_http(
        backend: Backend,
        adjust: impl FnOnce(&mut Settings),
        http: netapi_server::HttpOptions,
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
        let api = Arc::new(NetApi::new(store, clock.clone(), settings));
        api.start().await.expect("start");
        tokio::spawn(netapi_server::serve(
            listener,
            api.clone(),
            http,
            std::future::pending(),
        ));
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Some(Self {
            base,
            http,
            clock,
            api,
            database_url,
            backend,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers a member; returns `(user, api_key object with "key")`.
    pub async fn register(&self, email: &str) -> (Value, Value) {
        let response = self
            .http
            .post(self.url("/v1/register"))
            .json(&json!({ "email": email, "password": "correct horse battery", "name": "Test User" }))
            .send()
            .await
            .expect("register");
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("json");
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
                    password: netapi_core::secret::Secret::new("correct horse battery"),
                    name: "Admin".to_owned(),
                    role: netapi_core::Role::Admin,
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
        let response = self.post_json("/v1/oauth-clients", bearer, body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("json")
    }
}

/// Reads the body as JSON after checking the status.
pub async fn json_with(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Checks the contract's error envelope and returns it.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) -> Value {
    assert!(response.headers().contains_key("x-request-id"));
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body = json_with(response, status).await;
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(body["error"]["request_id"], request_id.as_str());
    body
}

impl TestApp {
    /// A `client_credentials` access token for a client made by [`TestApp::create_client`].
    pub async fn client_credentials_token(&self, client: &Value) -> String {
        let response = self
            .http
            .post(self.url("/oauth/token"))
            .basic_auth(
                client["client_id"].as_str().expect("client_id"),
                client["client_secret"].as_str(),
            )
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token request");
        let body = json_with(response, StatusCode::OK).await;
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }
}
