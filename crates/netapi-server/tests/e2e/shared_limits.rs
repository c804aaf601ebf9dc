//! Limits shared by two instances through Redis (issue 18): one limit for both, failure
//! counters shared, and Redis killed, restarted and flushed under them without an error.
//! DPoP proofs (issue 17) are single use across both instances through the same Redis, and
//! per instance while it is down.
//!
//! Each scenario starts a private `redis-server` on a free port (or uses
//! `NETAPI_TEST_REDIS_URL`, where the scenarios that kill or flush Redis say they are
//! skipped), and is skipped with a message when neither is there.

use netapi_core::limiter::SharedCounters;
use netapi_core::sealing::SecretKey;
use netapi_core::{Clock, ManualClock, NetApi, Settings, SystemClock};
use netapi_server::shared_limits::RedisCounters;
use netapi_store::StoreOptions;
use netapi_testkit::{Backend, TestApp, fresh_database, json_with, plain_client};
use reqwest::StatusCode;
use serde_json::json;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

crate::e2e!(
    spawn = start;
    two_instances_enforce_one_request_limit,
    failure_counters_are_shared,
    requests_are_answered_while_redis_is_down_and_shared_again_after,
    a_flushed_redis_is_no_error,
    a_dpop_proof_is_accepted_once_across_instances,
    dpop_proofs_are_checked_per_instance_while_redis_is_down,
);

/// Requests per minute per key, and failures per minute per source, in these scenarios.
const RATE: u32 = 5;
const FAILURES: u32 = 3;

/// A `redis-server` of this test alone, or the one of `NETAPI_TEST_REDIS_URL`.
#[derive(Debug)]
struct Redis {
    url: String,
    /// `None` for an outside server (never killed, restarted or flushed here).
    private: Option<(u16, Option<Child>)>,
}

impl Redis {
    fn start() -> Option<Self> {
        if let Ok(url) = std::env::var("NETAPI_TEST_REDIS_URL") {
            return Some(Self { url, private: None });
        }
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !found {
            eprintln!("skipped: neither NETAPI_TEST_REDIS_URL nor redis-server");
            return None;
        }
        let port = netapi_testkit::free_port();
        let mut redis = Self {
            url: format!("redis://127.0.0.1:{port}"),
            private: Some((port, None)),
        };
        redis.run();
        Some(redis)
    }

    /// Starts the private server (again, on the same port) and waits until it answers.
    fn run(&mut self) {
        let Some((port, child)) = &mut self.private else {
            return;
        };
        let port = *port;
        *child = Some(
            Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .spawn()
                .expect("start redis-server"),
        );
        let started = Instant::now();
        while self.command("PING").as_deref() != Some("+PONG") {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the private server (and waits until it is gone).
    fn kill(&mut self) {
        if let Some((_, child)) = &mut self.private
            && let Some(mut child) = child.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One inline command to the private server; its first answer line.
    fn command(&self, command: &str) -> Option<String> {
        let (port, _) = self.private.as_ref()?;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", *port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream.write_all(format!("{command}\r\n").as_bytes()).ok()?;
        let mut answer = [0u8; 64];
        let read = stream.read(&mut answer).ok()?;
        let text = String::from_utf8_lossy(&answer[..read]);
        Some(text.lines().next().unwrap_or_default().to_owned())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Two instances on one database and one Redis.
#[derive(Debug)]
struct Pair {
    a: TestApp,
    b: TestApp,
    counters: [Arc<RedisCounters>; 2],
    redis: Redis,
}

impl AsRef<TestApp> for Pair {
    fn as_ref(&self) -> &TestApp {
        &self.a
    }
}

async fn instance(
    database_url: &str,
    migrate: bool,
    clock: Arc<ManualClock>,
    settings: impl FnOnce(&str) -> Settings,
    counters: Arc<RedisCounters>,
    backend: Backend,
) -> TestApp {
    let store = netapi_store::open(&StoreOptions::new(database_url), migrate)
        .await
        .expect("open store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let api =
        Arc::new(NetApi::new(store, clock.clone(), settings(&base)).with_shared_counters(counters));
    api.start().await.expect("start");
    tokio::spawn(netapi_server::serve(
        listener,
        api.clone(),
        netapi_server::HttpOptions::default(),
        std::future::pending(),
    ));
    TestApp {
        base,
        http: plain_client(),
        clock,
        api,
        database_url: database_url.to_owned(),
        backend,
    }
}

async fn start(backend: Backend) -> Option<Pair> {
    let redis = Redis::start()?;
    let database_url = fresh_database(backend).await?;
    // A key of this test: subjects (the source address of every test is the same) never
    // meet another test's in a Redis they share.
    let secret_key = SecretKey::generate();
    let settings = |issuer: &str| Settings {
        issuer: issuer.to_owned(),
        auth_failure_limit: FAILURES,
        rate_limit_per_minute: RATE,
        registration_limit_per_hour: 0,
        secret_key: secret_key.clone(),
        ..Settings::default()
    };
    // Generous for a loaded test machine; operations keep the default of 50 ms.
    let timeout = Duration::from_secs(2);
    let counters = [
        RedisCounters::connect(&redis.url, timeout).expect("Redis URL"),
        RedisCounters::connect(&redis.url, timeout).expect("Redis URL"),
    ];
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let a = instance(
        &database_url,
        true,
        clock.clone(),
        settings,
        counters[0].clone(),
        backend,
    )
    .await;
    let issuer = a.base.clone();
    let b = instance(
        &database_url,
        false,
        clock,
        |_| settings(&issuer),
        counters[1].clone(),
        backend,
    )
    .await;
    let pair = Pair {
        a,
        b,
        counters,
        redis,
    };
    shared_again(&pair).await;
    Some(pair)
}

/// Waits until both instances' counters answer (after a start or a restart of Redis).
async fn shared_again(pair: &Pair) {
    let started = Instant::now();
    for counters in &pair.counters {
        while counters
            .add(&["netapi:test:probe".to_owned()], 0, 1000)
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "Redis never answered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn status(app: &TestApp, key: &str) -> StatusCode {
    app.get("/v1/users/me", key).await.status()
}

/// `RATE` requests with `key` spread over both instances pass; the next fails on each.
async fn one_limit_for_both(pair: &Pair, key: &str) {
    for n in 0..RATE {
        let app = if n % 2 == 0 { &pair.a } else { &pair.b };
        assert_eq!(status(app, key).await, StatusCode::OK, "request {n}");
    }
    assert_eq!(status(&pair.a, key).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(status(&pair.b, key).await, StatusCode::TOO_MANY_REQUESTS);
}

async fn two_instances_enforce_one_request_limit(pair: Pair) {
    let key = pair.a.member_key("ada@example.com").await;
    one_limit_for_both(&pair, &key).await;
    // The headers count the shared window.
    let other = pair.a.member_key("bob@example.com").await;
    let response = pair.b.get("/v1/users/me", &other).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = pair.a.get("/v1/users/me", &other).await;
    assert_eq!(response.headers()["ratelimit-remaining"], "3");
}

async fn failure_counters_are_shared(pair: Pair) {
    // Client authentication at the token endpoint: FAILURES wrong secrets in all, spread
    // over both instances.
    let owner = pair.a.admin_key("root@example.com").await;
    let client = pair
        .a
        .create_client(
            &owner,
            json!({ "client_name": "svc", "grant_types": ["client_credentials"] }),
        )
        .await;
    let id = client["client_id"].as_str().expect("client_id");
    let wrong = |app: &TestApp| {
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth(id, Some("wrong-secret"))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    for app in [&pair.b, &pair.a, &pair.b] {
        let response = wrong(app).await.expect("token request");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // The next is refused by either, as by one instance alone.
    for app in [&pair.a, &pair.b] {
        let response = wrong(app).await.expect("token request");
        let body = json_with(response, StatusCode::TOO_MANY_REQUESTS).await;
        assert!(body["error"].is_string(), "{body}");
    }

    // Invented API keys from one source, likewise (last: the source is then refused).
    let invented = "nak_invented0000000000000000000000000000";
    for app in [&pair.a, &pair.b, &pair.a] {
        assert_eq!(status(app, invented).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        status(&pair.a, invented).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        status(&pair.b, invented).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(status(&pair.b, &owner).await, StatusCode::TOO_MANY_REQUESTS);
}

async fn requests_are_answered_while_redis_is_down_and_shared_again_after(mut pair: Pair) {
    if pair.redis.private.is_none() {
        eprintln!("skipped: Redis of NETAPI_TEST_REDIS_URL is not ours to kill");
        return;
    }
    let key = pair.a.member_key("ada@example.com").await;
    assert_eq!(status(&pair.a, &key).await, StatusCode::OK);
    pair.redis.kill();
    // Each instance counts alone meanwhile: every request is answered, none with a 500.
    for n in 0..RATE {
        for app in [&pair.a, &pair.b] {
            let status = status(app, &key).await;
            assert!(
                status == StatusCode::OK || status == StatusCode::TOO_MANY_REQUESTS,
                "request {n}: {status}"
            );
        }
    }
    let metrics = pair
        .a
        .http
        .get(pair.a.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("netapi_shared_limit_fallbacks_total"),
        "no fallback counted"
    );
    // Redis back (empty): the instances reconnect by themselves and share again.
    pair.redis.run();
    shared_again(&pair).await;
    let fresh = pair.a.member_key("bob@example.com").await;
    one_limit_for_both(&pair, &fresh).await;
}

async fn a_flushed_redis_is_no_error(pair: Pair) {
    if pair.redis.private.is_none() {
        eprintln!("skipped: Redis of NETAPI_TEST_REDIS_URL is not ours to flush");
        return;
    }
    let key = pair.a.member_key("ada@example.com").await;
    for app in [&pair.a, &pair.b, &pair.a] {
        assert_eq!(status(app, &key).await, StatusCode::OK);
    }
    assert_eq!(pair.redis.command("FLUSHALL").as_deref(), Some("+OK"));
    // Counting starts again from nothing: a whole window's worth, then refused.
    one_limit_for_both(&pair, &key).await;
}

/// A client of `pair` that may use `client_credentials`.
async fn dpop_client(pair: &Pair) -> serde_json::Value {
    let owner = pair.a.member_key("dpop-owner@example.com").await;
    pair.a
        .create_client(
            &owner,
            json!({ "client_name": "svc", "grant_types": ["client_credentials"], "scope": "users:read" }),
        )
        .await
}

async fn with_proof(app: &TestApp, client: &serde_json::Value, proof: &str) -> reqwest::Response {
    crate::dpop::token_request(
        app,
        client,
        vec![("grant_type", "client_credentials".to_owned())],
        Some(proof),
    )
    .await
}

async fn replayed(response: reqwest::Response) {
    let body = json_with(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .expect("description")
            .contains("used before"),
        "{body}"
    );
}

async fn a_dpop_proof_is_accepted_once_across_instances(pair: Pair) {
    let client = dpop_client(&pair).await;
    let key = crate::dpop::DpopKey::new();
    // Both instances have the same issuer: the proof names the one token endpoint.
    let token_url = pair.a.url("/oauth/token");
    let proof = key.proof(&pair.a, "POST", &token_url, None);
    let tokens = json_with(with_proof(&pair.a, &client, &proof).await, StatusCode::OK).await;
    assert_eq!(tokens["token_type"], "DPoP");
    // Replayed at the other instance, which never saw it: refused.
    replayed(with_proof(&pair.b, &client, &proof).await).await;
    // And the other way round.
    let proof = key.proof(&pair.a, "POST", &token_url, None);
    json_with(with_proof(&pair.b, &client, &proof).await, StatusCode::OK).await;
    replayed(with_proof(&pair.a, &client, &proof).await).await;

    // At a resource too: a proof for /v1/users/me used at A is refused at B.
    let access = tokens["access_token"].as_str().expect("token");
    let me = pair.a.url("/v1/users/me");
    let proof = key.proof(&pair.a, "GET", &me, Some(access));
    let response = crate::dpop::me_with(&pair.a, access, Some(&proof)).await;
    assert_eq!(response.status(), StatusCode::OK);
    // B checks proofs against the issuer's URLs, as A does.
    let response = crate::dpop::me_with(&pair.b, access, Some(&proof)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");
    assert!(challenge.contains("used before"), "{challenge}");
}

async fn dpop_proofs_are_checked_per_instance_while_redis_is_down(mut pair: Pair) {
    if pair.redis.private.is_none() {
        eprintln!("skipped: Redis of NETAPI_TEST_REDIS_URL is not ours to kill");
        return;
    }
    let client = dpop_client(&pair).await;
    let key = crate::dpop::DpopKey::new();
    let token_url = pair.a.url("/oauth/token");
    pair.redis.kill();
    // Accepted (no 500), and still refused the second time by the same instance.
    let proof = key.proof(&pair.a, "POST", &token_url, None);
    let tokens = json_with(with_proof(&pair.a, &client, &proof).await, StatusCode::OK).await;
    assert_eq!(tokens["token_type"], "DPoP");
    replayed(with_proof(&pair.a, &client, &proof).await).await;
    let metrics = pair
        .a
        .http
        .get(pair.a.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("netapi_dpop_replay_fallbacks_total"),
        "no fallback counted"
    );
    // Redis back: shared again.
    pair.redis.run();
    shared_again(&pair).await;
    let proof = key.proof(&pair.a, "POST", &token_url, None);
    json_with(with_proof(&pair.b, &client, &proof).await, StatusCode::OK).await;
    replayed(with_proof(&pair.a, &client, &proof).await).await;
}
