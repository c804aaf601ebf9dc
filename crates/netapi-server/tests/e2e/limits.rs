//! Per-key and per-client request limits, with their headers.

use crate::e2e;
use crate::helpers::{
    Backend, PASSWORD, TestApp, behind_a_proxy, drop_database, expect_error, json_with,
};
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

e2e!(
    spawn = limited;
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
    drop_database(&app.database_url).await;
}

/// A request still unanswered after `request_timeout` (here: its body never comes) gets
/// `408 DEADLINE_EXCEEDED` in the envelope, with its request id; the timer is armed only
/// for a request that the first poll does not finish, and prompt requests are served.
#[tokio::test]
async fn a_request_not_answered_in_time_gets_deadline_exceeded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let options = netapi_server::HttpOptions {
        request_timeout: std::time::Duration::from_secs(1),
        ..netapi_server::HttpOptions::default()
    };
    let Some(app) = TestApp::spawn_with_http(Backend::Sqlite, |_| {}, options).await else {
        return;
    };
    let address = app.base.trim_start_matches("http://");
    let mut slow = tokio::net::TcpStream::connect(address).await.unwrap();
    slow.write_all(
        b"POST /v1/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 60\r\nConnection: close\r\n\r\n{\"email\":",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        slow.read_to_end(&mut answer),
    )
    .await
    .expect("the request was never cut off")
    .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let id = head
        .lines()
        .find_map(|line| line.strip_prefix("x-request-id: "))
        .expect("a request id");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error"]["code"], "DEADLINE_EXCEEDED", "{body}");
    assert_eq!(body["error"]["request_id"], id, "{body}");
    // Answered in the first poll, and after a wait: both served.
    let healthz = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), 200);
    // `/readyz` waits on the database.
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    drop_database(&app.database_url).await;
}

// ---------------------------------------------------------------------------------------------
// Failure limits: bounded, per surface, per (account or client, source)

/// The failed-authentication limit of the tests below.
const FAILURES: usize = 3;

async fn few_failures(backend: Backend) -> Option<TestApp> {
    behind_a_proxy(backend, |s| {
        s.auth_failure_limit = u32::try_from(FAILURES).unwrap();
    })
    .await
}

async fn two_registrations_an_hour(backend: Backend) -> Option<TestApp> {
    behind_a_proxy(backend, |s| s.registration_limit_per_hour = 2).await
}

async fn no_room_to_hash(backend: Backend) -> Option<TestApp> {
    behind_a_proxy(backend, |s| s.registration_hash_queue = 0).await
}

/// A `client_credentials` request with HTTP Basic, from the source `xff`.
async fn token_from(app: &TestApp, xff: &str, id: &str, secret: &str) -> reqwest::Response {
    app.http
        .post(app.url("/oauth/token"))
        .header("x-forwarded-for", xff)
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
}

/// Signs in on the login page from the source `xff`, as a browser there would.
async fn login_from(app: &TestApp, xff: &str, email: &str, password: &str) -> reqwest::Response {
    let page = app
        .http
        .get(app.url("/login"))
        .header("x-forwarded-for", xff)
        .send()
        .await
        .unwrap();
    let cookies: Vec<String> = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().unwrap().split(';').next().map(str::to_owned))
        .collect();
    let csrf = crate::helpers::hidden_field(&page.text().await.unwrap(), "csrf_token");
    app.http
        .post(app.url("/login"))
        .header("x-forwarded-for", xff)
        .header("cookie", cookies.join("; "))
        .form(&[
            ("email", email),
            ("password", password),
            ("csrf_token", csrf.as_str()),
            ("return_to", "/portal"),
        ])
        .send()
        .await
        .unwrap()
}

async fn service_client(app: &TestApp, key: &str) -> (String, String) {
    let client = app
        .create_client(
            key,
            json!({"client_name": "svc", "grant_types": ["client_credentials"], "scope": "users:read"}),
        )
        .await;
    (
        client["client_id"].as_str().unwrap().to_owned(),
        client["client_secret"].as_str().unwrap().to_owned(),
    )
}

e2e!(spawn = few_failures; long_identifiers_are_refused_before_they_are_counted);

async fn long_identifiers_are_refused_before_they_are_counted(app: TestApp) {
    let key = app.member_key("long@example.com").await;
    let (id, secret) = service_client(&app, &key).await;
    // A 300 KB client_id in HTTP Basic: invalid_client, never counted, recorded or kept.
    let huge = "c".repeat(300 * 1024);
    for _ in 0..FAILURES + 2 {
        let answer = token_from(&app, "192.0.2.1", &huge, "napcs_guess").await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
    }
    assert_eq!(
        token_from(&app, "192.0.2.1", &id, &secret).await.status(),
        StatusCode::OK
    );
    let events = app
        .api
        .store()
        .list_audit_events(None, None, 100)
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .all(|e| e.kind != "oauth_client.authentication_failed"),
        "{events:?}"
    );
    // An email longer than any address: the usual answer, not counted either.
    let long_email = format!("{}@example.com", "e".repeat(60 * 1024));
    for _ in 0..FAILURES + 2 {
        let answer = login_from(&app, "192.0.2.1", &long_email, PASSWORD).await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        assert!(
            answer
                .text()
                .await
                .unwrap()
                .contains("Invalid email or password")
        );
    }
    let signed_in = login_from(&app, "192.0.2.1", "long@example.com", PASSWORD).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
}

e2e!(spawn = few_failures; failures_from_one_source_never_refuse_another);

async fn failures_from_one_source_never_refuse_another(app: TestApp) {
    let key = app.member_key("amy@example.com").await;
    let (id, secret) = service_client(&app, &key).await;
    // Bad secrets from source A: A is slowed down, for this surface only.
    for _ in 0..FAILURES * 7 {
        let answer = token_from(&app, "192.0.2.1", &id, "napcs_wrong").await;
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(&answer.status())
        );
    }
    let refused = token_from(&app, "192.0.2.1", &id, &secret).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    // The real client, from source B, is served.
    assert_eq!(
        token_from(&app, "198.51.100.7", &id, &secret)
            .await
            .status(),
        StatusCode::OK
    );
    // And A's bearer credentials on /v1 and its sign-ins are counted apart.
    let me = app
        .http
        .get(app.url("/v1/users/me"))
        .header("x-forwarded-for", "192.0.2.1")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(
        login_from(&app, "192.0.2.1", "amy@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );

    // Bad passwords for amy from source C: C is refused even the right one, for the rest of
    // the window; amy from source D signs in.
    for n in 0..FAILURES * 7 {
        let answer = login_from(
            &app,
            "203.0.113.5",
            "amy@example.com",
            &format!("guess {n}"),
        )
        .await;
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(&answer.status())
        );
    }
    let refused = login_from(&app, "203.0.113.5", "amy@example.com", PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!((1..=60).contains(&header(&refused, "retry-after").parse::<u64>().unwrap()));
    assert_eq!(
        login_from(&app, "198.51.100.8", "amy@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    // The block lasts until the window ends, no longer.
    app.clock.advance(61);
    assert_eq!(
        login_from(&app, "203.0.113.5", "amy@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );

    // IPv6 sources count per /64: hopping addresses inside one does not help.
    for n in 1..=FAILURES {
        let answer = token_from(&app, &format!("2001:db8:1:2::{n}"), &id, "napcs_wrong").await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        token_from(&app, "2001:db8:1:2::ffff", &id, &secret)
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        token_from(&app, "2001:db8:1:3::1", &id, &secret)
            .await
            .status(),
        StatusCode::OK
    );
}

// ---------------------------------------------------------------------------------------------
// Registration

e2e!(spawn = two_registrations_an_hour; registrations_are_limited_per_source);

async fn registrations_are_limited_per_source(app: TestApp) {
    let register = async |xff: &str, email: &str| {
        app.http
            .post(app.url("/v1/register"))
            .header("x-forwarded-for", xff)
            .json(&json!({"email": email, "password": PASSWORD, "name": "Reg"}))
            .send()
            .await
            .unwrap()
    };
    assert_eq!(
        register("192.0.2.1", "r1@example.com").await.status(),
        StatusCode::CREATED
    );
    // A taken email counts too: the limit also slows probing for accounts.
    let taken = register("192.0.2.1", "r1@example.com").await;
    expect_error(taken, StatusCode::CONFLICT, "ALREADY_EXISTS").await;
    let refused = register("192.0.2.1", "r2@example.com").await;
    let retry_after: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    expect_error(refused, StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED").await;
    // Another source is not affected; the first one may register again after the hour.
    assert_eq!(
        register("198.51.100.7", "r3@example.com").await.status(),
        StatusCode::CREATED
    );
    app.clock.advance(3600);
    assert_eq!(
        register("192.0.2.1", "r2@example.com").await.status(),
        StatusCode::CREATED
    );
}

e2e!(spawn = no_room_to_hash; a_full_hashing_queue_answers_503_and_a_taken_email_409);

async fn a_full_hashing_queue_answers_503_and_a_taken_email_409(app: TestApp) {
    // Operator commands are not queued behind registrations from the network.
    app.admin_key("taken@example.com").await;
    let register = async |email: &str| {
        app.http
            .post(app.url("/v1/register"))
            .json(&json!({"email": email, "password": PASSWORD, "name": "Reg"}))
            .send()
            .await
            .unwrap()
    };
    // The email is checked before any hashing: a taken one is 409 although no hash could run.
    expect_error(
        register("Taken@example.com").await,
        StatusCode::CONFLICT,
        "ALREADY_EXISTS",
    )
    .await;
    let busy = register("new@example.com").await;
    assert_eq!(header(&busy, "retry-after"), "1");
    expect_error(busy, StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE").await;
    // Sign-ins do not wait for that queue.
    assert_eq!(
        login_from(&app, "192.0.2.1", "taken@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
}

// ---------------------------------------------------------------------------------------------
// Connections and readiness

/// One source cannot hold more than its share of connections; another source and a trusted
/// proxy still get through. (127.0.0.2 and 127.0.0.3 are other loopback sources on Linux.)
#[tokio::test]
async fn connections_per_source_are_capped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let options = netapi_server::HttpOptions {
        max_connections_per_ip: 2,
        trusted_proxies: netapi_server::proxy::TrustedProxies::parse("127.0.0.3").unwrap(),
        ..netapi_server::HttpOptions::default()
    };
    tokio::spawn(netapi_server::serve(
        listener,
        app.api.clone(),
        options,
        std::future::pending(),
    ));
    let connect_from = async |source: &str| {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        socket.connect(address).await.unwrap()
    };
    let served = async |stream: &mut tokio::net::TcpStream| {
        let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        if stream.write_all(request).await.is_err() {
            return false;
        }
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200")
    };
    // Two half-sent requests hold this source's places.
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut stream = connect_from("127.0.0.1").await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        idle.push(stream);
    }
    let mut third = connect_from("127.0.0.1").await;
    assert!(!served(&mut third).await, "a third connection was served");
    let mut elsewhere = connect_from("127.0.0.2").await;
    assert!(served(&mut elsewhere).await);
    // A trusted proxy carries many clients: it is not capped.
    let mut proxied = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from("127.0.0.3").await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        proxied.push(stream);
    }
    let mut proxy = connect_from("127.0.0.3").await;
    assert!(served(&mut proxy).await);
    // A place is given back when its connection closes.
    drop(idle.pop());
    let mut again = connect_from("127.0.0.1").await;
    let mut tries = 0;
    while !served(&mut again).await {
        // The server notices the close when it next reads that socket; until then the
        // place is still taken.
        tries += 1;
        assert!(tries < 1000, "the place was never given back");
        tokio::task::yield_now().await;
        again = connect_from("127.0.0.1").await;
    }
    drop_database(&app.database_url).await;
}

/// A database that answers but cannot be written is not ready. SQLite is opened read-only
/// with `mode=ro` in the URL: the file's mode bits would not stop a server running as root.
#[tokio::test]
async fn readyz_is_503_on_a_read_only_database() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let ready = async |base: &str| {
        app.http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(ready(&app.base).await, StatusCode::OK);
    let read_only = netapi_store::open(
        &netapi_store::StoreOptions::new(format!("{}?mode=ro", app.database_url)),
        false,
    )
    .await
    .unwrap();
    let api = std::sync::Arc::new(netapi_core::NetApi::new(
        read_only,
        app.clock.clone(),
        app.api.settings().clone(),
    ));
    api.start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(netapi_server::serve(
        listener,
        api,
        netapi_server::HttpOptions::default(),
        std::future::pending(),
    ));
    let healthz = app
        .http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), StatusCode::OK);
    assert_eq!(ready(&base).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready(&app.base).await, StatusCode::OK);
    drop_database(&app.database_url).await;
}
