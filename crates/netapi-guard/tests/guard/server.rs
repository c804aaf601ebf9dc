//! The test kit's in-process Net API, with what every guard scenario starts from: an orders
//! resource, its administrator and an introspection client; and the orders example in front of
//! a guard for it, on the test's clock.

use std::ops::Deref;
use std::sync::Arc;

use netapi_core::ManualClock;
use netapi_core::model::SigningAlgorithm;
use netapi_guard::{Clock, Guard, GuardConfig};
use netapi_testkit::{Backend, TestApp, expect_error, json_with};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

#[path = "../../examples/orders-api/app.rs"]
mod orders_app;

/// The identifier of the orders API in these tests.
pub const ORDERS: &str = "https://orders.example.com";
/// Its access tokens live this long (seconds).
pub const ORDERS_TOKEN_TTL: i64 = 300;

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
    pub app: TestApp,
    pub admin_key: String,
    /// A confidential client of the administrator's, listing the orders resource (the answer
    /// that created it, with its secret).
    pub client: Value,
}

impl Deref for Server {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl AsRef<TestApp> for Server {
    fn as_ref(&self) -> &TestApp {
        &self.app
    }
}

/// Starts Net API (new signing keys sign at once) and defines the orders resource:
/// `orders:read` self-service, `orders:write` granted.
pub async fn start(backend: Backend) -> Option<Server> {
    start_signing_with(backend, SigningAlgorithm::EdDsa).await
}

/// The same, with access tokens signed with RS256.
pub async fn start_rs256(backend: Backend) -> Option<Server> {
    start_signing_with(backend, SigningAlgorithm::Rs256).await
}

async fn start_signing_with(backend: Backend, alg: SigningAlgorithm) -> Option<Server> {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.signing_key_publish_delay = 0;
        settings.signing_algorithm = alg;
    })
    .await?;
    let admin_key = app.admin_key("admin@example.com").await;
    let resource = app
        .post_json(
            "/v1/resources",
            &admin_key,
            json!({"identifier": ORDERS, "name": "Orders API",
                   "scopes": [{"name": "orders:read", "description": "See orders"},
                              {"name": "orders:write", "description": "Place orders"}],
                   "self_service_scopes": ["orders:read"],
                   "access_token_ttl": ORDERS_TOKEN_TTL}),
        )
        .await;
    json_with(resource, StatusCode::CREATED).await;
    let client = app
        .create_client(
            &admin_key,
            json!({"client_name": "Orders API", "grant_types": ["client_credentials"],
                   "resources": [ORDERS], "scope": "users:read orders:read orders:write"}),
        )
        .await;
    Some(Server {
        app,
        admin_key,
        client,
    })
}

impl Server {
    pub fn client_id(&self) -> &str {
        self.client["client_id"].as_str().expect("client_id")
    }

    pub fn client_secret(&self) -> &str {
        self.client["client_secret"]
            .as_str()
            .expect("client_secret")
    }

    /// POSTs JSON with a bearer credential and checks the status.
    pub async fn post(&self, path: &str, bearer: &str, body: Value, status: StatusCode) -> Value {
        json_with(self.post_json(path, bearer, body).await, status).await
    }

    /// A guard configuration for the orders resource on the test's clock.
    pub fn config(&self) -> GuardConfig {
        GuardConfig::new(&self.base, ORDERS).clock(Arc::new(TestClock(self.clock.clone())))
    }

    /// The same, checking API keys by introspection with the administrator's client.
    pub fn introspecting(&self) -> GuardConfig {
        self.config()
            .introspection(self.client_id(), self.client_secret())
    }

    /// Registers a member; returns its id and Net API key.
    pub async fn member(&self, email: &str) -> (String, String) {
        let (user, key) = self.register(email).await;
        (
            user["id"].as_str().expect("id").to_owned(),
            key["key"].as_str().expect("key").to_owned(),
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
        match resource {
            Some(resource) => {
                self.client_credentials_token_for(&self.client, resource)
                    .await
            }
            None => self.client_credentials_token(&self.client).await,
        }
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
    /// The absolute URL of `path` on the orders API.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

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

/// Checks Net API's error envelope and the guard's challenge; returns `(body, WWW-Authenticate)`.
pub async fn refusal(response: Response, status: StatusCode, code: &str) -> (Value, String) {
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    let body = expect_error(response, status, code).await;
    assert!(
        challenge.starts_with("Bearer realm=\"netapi\", resource_metadata=\""),
        "{challenge}"
    );
    (body, challenge)
}
