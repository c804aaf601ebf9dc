//! A real Net API server in this process, on a free port, with a clock the test moves; and
//! the orders example in front of a guard for it.
//!
//! A small copy of what the server's end-to-end helpers do, until a shared test kit exists.

use std::sync::Arc;

use netapi_core::{Clock as _, ManualClock, NetApi, Settings, SystemClock};
use netapi_guard::{Clock, Guard, GuardConfig};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

#[path = "../../examples/orders-api/app.rs"]
mod orders_app;

/// The identifier of the orders API in these tests.
pub const ORDERS: &str = "https://orders.example.com";
/// Its access tokens live this long (seconds).
pub const ORDERS_TOKEN_TTL: i64 = 300;

/// Which storage the server runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each scenario `async fn name(server: Server)` on SQLite, and on PostgreSQL when
/// `NETAPI_TEST_POSTGRES_URL` is set.
#[macro_export]
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    if let Some(server) = $crate::server::Server::spawn($crate::server::Backend::Sqlite).await {
                        super::$name(server).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(server) = $crate::server::Server::spawn($crate::server::Backend::Postgres).await {
                        let database = server.database_url.clone();
                        super::$name(server).await;
                        $crate::server::drop_database(&database).await;
                    }
                }
            }
        )*
    };
}

/// The test's clock, shared by the server and the guard.
#[derive(Debug)]
pub struct TestClock(pub Arc<ManualClock>);

impl Clock for TestClock {
    fn now(&self) -> i64 {
        netapi_core::Clock::now(&*self.0)
    }
}

/// A running Net API with an orders resource, its administrator and an introspection client.
pub struct Server {
    pub base: String,
    pub http: Client,
    pub clock: Arc<ManualClock>,
    pub api: Arc<NetApi>,
    pub database_url: String,
    pub admin_key: String,
    /// A confidential client of the administrator's, listing the orders resource.
    pub client_id: String,
    pub client_secret: String,
}

fn random_name(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        netapi_core::secret::random_base62(12).to_lowercase()
    )
}

async fn fresh_database(backend: Backend) -> Option<String> {
    match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir().join(format!("{}.db", random_name("netapi-guard-")));
            Some(format!("sqlite://{}", path.display()))
        }
        Backend::Postgres => {
            let Ok(admin_url) = std::env::var("NETAPI_TEST_POSTGRES_URL") else {
                eprintln!("skipped: NETAPI_TEST_POSTGRES_URL is not set");
                return None;
            };
            let name = random_name("netapi_guard_");
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

/// Drops a passed test's PostgreSQL database.
pub async fn drop_database(database_url: &str) {
    let (Ok(admin_url), Ok(url)) = (
        std::env::var("NETAPI_TEST_POSTGRES_URL"),
        url::Url::parse(database_url),
    ) else {
        return;
    };
    if url.scheme() != "postgres" {
        return;
    }
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

impl Server {
    /// Starts Net API (new signing keys sign at once) and defines the orders resource:
    /// `orders:read` self-service, `orders:write` granted.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        let database_url = fresh_database(backend).await?;
        let store = netapi_store::open(&netapi_store::StoreOptions::new(&database_url), true)
            .await
            .expect("open store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        let settings = Settings {
            issuer: base.clone(),
            auth_failure_limit: 1000,
            registration_limit_per_hour: 0,
            signing_key_publish_delay: 0,
            ..Settings::default()
        };
        let api = Arc::new(NetApi::new(store, clock.clone(), settings));
        api.start().await.expect("start");
        tokio::spawn(netapi_server::serve(
            listener,
            api.clone(),
            netapi_server::HttpOptions::default(),
            std::future::pending(),
        ));
        let (_, _, secret) = api
            .register(
                netapi_core::service::NewUser {
                    email: "admin@example.com".to_owned(),
                    password: netapi_core::secret::Secret::new("correct horse battery"),
                    name: "Admin".to_owned(),
                    role: netapi_core::Role::Admin,
                },
                None,
            )
            .await
            .expect("admin");
        let mut server = Self {
            base,
            http: Client::new(),
            clock,
            api,
            database_url,
            admin_key: secret.expose().to_owned(),
            client_id: String::new(),
            client_secret: String::new(),
        };
        let admin = server.admin_key.clone();
        server
            .post(
                "/v1/resources",
                &admin,
                json!({"identifier": ORDERS, "name": "Orders API",
                       "scopes": [{"name": "orders:read", "description": "See orders"},
                                  {"name": "orders:write", "description": "Place orders"}],
                       "self_service_scopes": ["orders:read"],
                       "access_token_ttl": ORDERS_TOKEN_TTL}),
                StatusCode::CREATED,
            )
            .await;
        let client = server
            .post(
                "/v1/oauth-clients",
                &admin,
                json!({"client_name": "Orders API", "grant_types": ["client_credentials"],
                       "resources": [ORDERS], "scope": "users:read orders:read orders:write"}),
                StatusCode::CREATED,
            )
            .await;
        server.client_id = client["client_id"].as_str().expect("id").to_owned();
        server.client_secret = client["client_secret"].as_str().expect("secret").to_owned();
        Some(server)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs JSON with a bearer credential and checks the status.
    pub async fn post(&self, path: &str, bearer: &str, body: Value, status: StatusCode) -> Value {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(bearer)
            .json(&body)
            .send()
            .await
            .expect("request");
        json_with(response, status).await
    }

    /// A guard configuration for the orders resource on the test's clock.
    pub fn config(&self) -> GuardConfig {
        GuardConfig::new(&self.base, ORDERS).clock(Arc::new(TestClock(self.clock.clone())))
    }

    /// The same, checking API keys by introspection with the administrator's client.
    pub fn introspecting(&self) -> GuardConfig {
        self.config()
            .introspection(&self.client_id, &self.client_secret)
    }

    /// Registers a member; returns its id and Net API key.
    pub async fn member(&self, email: &str) -> (String, String) {
        let response = self
            .http
            .post(self.url("/v1/register"))
            .json(&json!({"email": email, "password": "correct horse battery", "name": "Member"}))
            .send()
            .await
            .expect("register");
        let body = json_with(response, StatusCode::CREATED).await;
        (
            body["user"]["id"].as_str().expect("id").to_owned(),
            body["api_key"]["key"].as_str().expect("key").to_owned(),
        )
    }

    /// Makes an API key for the orders resource with `owner`'s credential; returns the key
    /// object (with `key`).
    pub async fn orders_key(&self, owner: &str, extra: Value) -> Value {
        let mut body = json!({"name": "orders", "resource": ORDERS});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        self.post("/v1/api-keys", owner, body, StatusCode::CREATED)
            .await
    }

    /// A `client_credentials` token of the administrator's client, for `resource` (or Net
    /// API's own).
    pub async fn token(&self, resource: Option<&str>) -> String {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(resource) = resource {
            form.push(("resource", resource));
        }
        let response = self
            .http
            .post(self.url("/oauth/token"))
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&form)
            .send()
            .await
            .expect("token");
        let body = json_with(response, StatusCode::OK).await;
        body["access_token"].as_str().expect("token").to_owned()
    }

    /// Starts the orders example behind a guard made from `config`; returns its address.
    pub async fn orders_api(&self, config: GuardConfig) -> OrdersApi {
        let guard = Guard::discover(config).await.expect("the guard starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            axum::serve(listener, orders_app::router(guard))
                .await
                .expect("orders api");
        });
        OrdersApi {
            base,
            http: self.http.clone(),
        }
    }
}

/// The orders example, running.
pub struct OrdersApi {
    base: String,
    http: Client,
}

impl OrdersApi {
    pub async fn get(&self, bearer: Option<&str>) -> Response {
        let mut request = self.http.get(format!("{}/orders", self.base));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        request.send().await.expect("GET /orders")
    }

    pub async fn post(&self, bearer: &str) -> Response {
        self.http
            .post(format!("{}/orders", self.base))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("POST /orders")
    }
}

/// Reads the body as JSON after checking the status.
pub async fn json_with(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Checks Net API's error envelope and challenge; returns `(body, WWW-Authenticate)`.
pub async fn refusal(response: Response, status: StatusCode, code: &str) -> (Value, String) {
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body = json_with(response, status).await;
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert_eq!(body["error"]["request_id"], request_id.as_str());
    assert!(
        challenge.starts_with("Bearer realm=\"netapi\", resource_metadata=\""),
        "{challenge}"
    );
    (body, challenge)
}
