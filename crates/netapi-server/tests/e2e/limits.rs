//! Per-key and per-client request limits, with their headers.

use crate::helpers::{Backend, TestApp, expect_error, json_with};
use reqwest::StatusCode;
use serde_json::json;

async fn limited(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, |s| s.rate_limit_per_minute = 3).await
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn default_limit_counts_down_then_429(app: TestApp) {
    let key = app.member_key("rl@example.com").await;
    for remaining in ["2", "1", "0"] {
        let response = app.get("/v1/users/me", &key).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "ratelimit-limit"), "3");
        assert_eq!(header(&response, "ratelimit-remaining"), remaining);
        assert!(header(&response, "ratelimit-reset").parse::<u64>().unwrap() <= 60);
    }
    let refused = app.get("/v1/users/me", &key).await;
    let retry_after: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(header(&refused, "ratelimit-remaining"), "0");
    expect_error(refused, StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED").await;
    // Another key of the same user has its own budget.
    let other = json_with(
        app.post_json(
            "/v1/api-keys",
            &app.member_key("rl2@example.com").await,
            json!({"name": "x"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        app.get("/v1/users/me", other["key"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
    app.clock.advance(60);
    assert_eq!(app.get("/v1/users/me", &key).await.status(), StatusCode::OK);
}

async fn overrides_per_key_need_an_admin_to_raise(app: TestApp) {
    let key = app.member_key("owner@example.com").await;
    let lower = json_with(
        app.post_json(
            "/v1/api-keys",
            &key,
            json!({"name": "slow", "rate_limit_per_minute": 1}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(lower["rate_limit_per_minute"], 1);
    let slow = lower["key"].as_str().unwrap();
    assert_eq!(app.get("/v1/users/me", slow).await.status(), StatusCode::OK);
    assert_eq!(
        app.get("/v1/users/me", slow).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let raise = app
        .post_json(
            "/v1/api-keys",
            &key,
            json!({"name": "fast", "rate_limit_per_minute": 100}),
        )
        .await;
    expect_error(raise, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    let admin = app.admin_key("root@example.com").await;
    let fast = json_with(
        app.post_json(
            "/v1/api-keys",
            &admin,
            json!({"name": "fast", "rate_limit_per_minute": 100}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let fast = fast["key"].as_str().unwrap();
    for _ in 0..5 {
        let response = app.get("/v1/users/me", fast).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "ratelimit-limit"), "100");
    }
}

async fn access_tokens_count_against_their_client(app: TestApp) {
    let admin = app.admin_key("svc-owner@example.com").await;
    let client = app
        .create_client(&admin, json!({"client_name": "svc", "grant_types": ["client_credentials"], "scope": "users:read", "rate_limit_per_minute": 2}))
        .await;
    assert_eq!(client["rate_limit_per_minute"], 2);
    let access = &app.client_credentials_token(&client).await;
    assert_eq!(
        app.get("/v1/users/me", access).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/v1/users/me", access).await.status(),
        StatusCode::OK
    );
    expect_error(
        app.get("/v1/users/me", access).await,
        StatusCode::TOO_MANY_REQUESTS,
        "RESOURCE_EXHAUSTED",
    )
    .await;
}

macro_rules! limited_tests {
    ($($name:ident),*) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    if let Some(app) = super::limited(crate::helpers::Backend::Sqlite).await {
                        super::$name(app).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = super::limited(crate::helpers::Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            }
        )*
    };
}

limited_tests!(
    default_limit_counts_down_then_429,
    overrides_per_key_need_an_admin_to_raise,
    access_tokens_count_against_their_client
);

/// A client that never finishes its headers is disconnected after `header_read_timeout`
/// (real time: hyper's timer is not the injected clock; the wait is bounded).
#[tokio::test]
async fn slow_headers_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let options = netapi_server::HttpOptions {
        header_read_timeout: std::time::Duration::from_millis(300),
        ..netapi_server::HttpOptions::default()
    };
    tokio::spawn(netapi_server::serve(
        listener,
        app.api.clone(),
        options,
        std::future::pending(),
    ));
    let mut slow = tokio::net::TcpStream::connect(address).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        slow.read_to_end(&mut answer),
    )
    .await;
    assert!(
        read.is_ok(),
        "the server kept a connection with unfinished headers open"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    // A client that sends its headers in time is served as usual.
    let mut prompt = tokio::net::TcpStream::connect(address).await.unwrap();
    prompt
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    prompt.read_to_end(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
}
