//! OpenTelemetry tracing (`otlp_endpoint`) as an operator turns it on: spans reach an
//! OTLP/HTTP collector (a small one started here) as children of the caller's `traceparent`,
//! with the route template, status and credential kind and no secret; a collector that is
//! away costs requests nothing and is counted.

use super::{BIN, Server, create_user};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::routing::post;
use netapi_server::listener;
use netapi_server::proxy::TrustedProxies;
use netapi_testkit::{Site, SqliteFile, client_credentials_token, create_client, free_port};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the collector was sent: each request's body, and whether it was declared protobuf.
type Received = Arc<Mutex<Vec<(bool, Vec<u8>)>>>;

/// An OTLP/HTTP collector on a free port: takes `POST /v1/traces` and keeps the bodies.
async fn collector() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (app, received) = collector_app();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// The same collector over TLS, with the certificate chain and key in `cert` and `key`.
async fn tls_collector(cert: &Path, key: &Path) -> (String, Received) {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", tcp.local_addr().unwrap());
    let tls = listener::tls_acceptor(cert, key).unwrap();
    let listener =
        listener::NetListener::new(tcp, Some(tls), 64, 0, TrustedProxies::default()).unwrap();
    let (app, received) = collector_app();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

fn collector_app() -> (axum::Router, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            post(
                async |State(received): State<Received>, headers: HeaderMap, body: Bytes| {
                    let protobuf = headers
                        .get(header::CONTENT_TYPE)
                        .is_some_and(|v| v == "application/x-protobuf");
                    received.lock().unwrap().push((protobuf, body.to_vec()));
                    // An empty ExportTraceServiceResponse: everything accepted.
                    (
                        [(header::CONTENT_TYPE, "application/x-protobuf")],
                        Vec::new(),
                    )
                },
            ),
        )
        .with_state(received.clone());
    (app, received)
}

/// Every span received so far.
fn spans(received: &Received) -> Vec<(Vec<KeyValue>, Span)> {
    let mut spans = Vec::new();
    for (protobuf, body) in received.lock().unwrap().iter() {
        assert!(protobuf, "spans are sent as protobuf");
        let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        for resource_spans in request.resource_spans {
            let resource = resource_spans.resource.unwrap_or_default().attributes;
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push((resource.clone(), span));
                }
            }
        }
    }
    spans
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Any> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text<'a>(attributes: &'a [KeyValue], key: &str) -> &'a str {
    match attribute(attributes, key) {
        Some(Any::StringValue(value)) => value,
        other => panic!("{key} is {other:?} in {attributes:?}"),
    }
}

fn number(attributes: &[KeyValue], key: &str) -> i64 {
    match attribute(attributes, key) {
        Some(Any::IntValue(value)) => *value,
        other => panic!("{key} is {other:?} in {attributes:?}"),
    }
}

/// The span of the trace `trace_id`, once the collector has it (30 seconds at most: the
/// server batches every 100 ms here, so this is a ceiling, not a timing).
async fn span_of(received: &Received, trace_id: &[u8]) -> (Vec<KeyValue>, Span) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = spans(received)
            .into_iter()
            .find(|(_, span)| span.trace_id == trace_id)
        {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no span of trace {} reached the collector; got {:?}",
            hex(trace_id),
            spans(received)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random trace (16 bytes) or span (8 bytes) id; never all zeros, which is invalid.
fn random_id(n: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
    bytes[0] |= 1;
    bytes
}

#[tokio::test]
async fn request_spans_reach_the_collector_as_children_of_the_callers_trace() {
    let (endpoint, received) = collector().await;
    let db = SqliteFile::new();
    let key = create_user(&db, "traced@example.com", false);
    let log_path = std::env::temp_dir().join(format!(
        "{}.log",
        netapi_testkit::unique_name("netapi-otel-")
    ));
    let log = std::fs::File::create(&log_path).unwrap();
    let server = Server::start_with(&db, |command| {
        command
            .args(["--log-format", "json"])
            .env("NETAPI_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .stderr(log);
    })
    .await;
    let http = server.http().clone();
    let me: serde_json::Value = http
        .get(server.url("/v1/users/me"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_id = me["id"].as_str().unwrap().to_owned();
    let client = create_client(
        &server,
        &key,
        json!({"client_name": "svc", "grant_types": ["client_credentials"], "scope": "users:read"}),
    )
    .await;
    let access = client_credentials_token(&server, &client).await;

    // With an API key, a caller's trace, and a query string that must go nowhere.
    let (trace, parent) = (random_id(16), random_id(8));
    let path = format!("/v1/users/{user_id}");
    let answer = http
        .get(server.url(&format!("{path}?note=query-secret-xyz")))
        .bearer_auth(&key)
        .header("traceparent", traceparent(&trace, &parent))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let request_id = answer.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let (resource, span) = span_of(&received, &trace).await;
    assert_eq!(hex(&span.parent_span_id), hex(&parent));
    assert_ne!(
        span.span_id, parent,
        "the server's span is a span of its own"
    );
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(span.name, "GET /v1/users/{id}");
    assert_eq!(text(&span.attributes, "http.request.method"), "GET");
    assert_eq!(text(&span.attributes, "http.route"), "/v1/users/{id}");
    assert_eq!(number(&span.attributes, "http.response.status_code"), 200);
    assert_eq!(text(&span.attributes, "netapi.credential_kind"), "api_key");
    assert_eq!(text(&span.attributes, "netapi.request_id"), request_id);
    assert_eq!(text(&resource, "service.name"), "netapi");

    // With an access token, another trace: its own status.
    let (trace, parent) = (random_id(16), random_id(8));
    let answer = http
        .get(server.url("/v1/users/usr_nobody"))
        .bearer_auth(&access)
        .header("traceparent", traceparent(&trace, &parent))
        .send()
        .await
        .unwrap();
    let status = i64::from(answer.status().as_u16());
    assert!(status >= 400, "{status}");
    let (_, span) = span_of(&received, &trace).await;
    assert_eq!(hex(&span.parent_span_id), hex(&parent));
    assert_eq!(
        text(&span.attributes, "netapi.credential_kind"),
        "access_token"
    );
    assert_eq!(
        number(&span.attributes, "http.response.status_code"),
        status
    );
    assert_eq!(text(&span.attributes, "http.route"), "/v1/users/{id}");

    // Without a credential or a traceparent, on no route: a trace of its own, no route.
    let answer = http.get(server.url("/no/such/path")).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 404);
    let request_id = answer.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let span = loop {
        let found = spans(&received).into_iter().find(|(_, span)| {
            attribute(&span.attributes, "netapi.request_id")
                == Some(&Any::StringValue(request_id.clone()))
        });
        if let Some((_, span)) = found {
            break span;
        }
        assert!(Instant::now() < deadline, "no span of the 404");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(span.parent_span_id.is_empty(), "{span:?}");
    assert_eq!(span.name, "GET");
    assert!(attribute(&span.attributes, "http.route").is_none());
    assert_eq!(text(&span.attributes, "netapi.credential_kind"), "none");
    assert_eq!(number(&span.attributes, "http.response.status_code"), 404);

    // Nothing secret and nothing from the path or the query left the server.
    let client_secret = client["client_secret"].as_str().unwrap();
    for (_, body) in received.lock().unwrap().iter() {
        let body = String::from_utf8_lossy(body);
        for secret in [
            key.as_str(),
            access.as_str(),
            client_secret,
            "query-secret-xyz",
            &path,
            "/no/such/path",
        ] {
            assert!(!body.contains(secret), "{secret} was exported");
        }
    }
    assert!(server.stop().success());

    // The log lines are those of a server without tracing: the request's span there is
    // still `request` (id, method, path), and the tracing span's fields are not in them.
    let text = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    let access = text
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|line| line["target"] == "netapi::access" && line["span"]["request_id"] == request_id)
        .unwrap_or_else(|| panic!("no access line of {request_id}: {text}"));
    assert_eq!(access["span"]["name"], "request", "{access}");
    assert_eq!(access["span"]["path"], "/no/such/path", "{access}");
    assert_eq!(access["status"], 404, "{access}");
    assert!(
        !text.contains("otel.") && !text.contains("http.route"),
        "{text}"
    );
}

/// Waits (30 seconds at most: a ceiling, not a timing) until `server` counts spans it could
/// not export.
async fn wait_for_failed_exports(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = server
            .http()
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let dropped: f64 = metrics
            .lines()
            .find(|line| {
                line.starts_with("netapi_otlp_spans_dropped_total{reason=\"export_failed\"}")
            })
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0);
        if dropped > 0.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no dropped span counted: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_collector_that_is_away_costs_requests_nothing_and_is_counted() {
    let db = SqliteFile::new();
    let key = create_user(&db, "untraced@example.com", false);
    // A port nobody listens on, set in the configuration file this time.
    let config = std::env::temp_dir().join(format!(
        "{}.toml",
        netapi_testkit::unique_name("netapi-otel-")
    ));
    std::fs::write(
        &config,
        format!("otlp_endpoint = \"http://127.0.0.1:{}\"\n", free_port()),
    )
    .unwrap();
    let log_path = std::env::temp_dir().join(format!(
        "{}.log",
        netapi_testkit::unique_name("netapi-otel-")
    ));
    let log = std::fs::File::create(&log_path).unwrap();
    let server = Server::start_with(&db, |command| {
        command
            .args(["--config", config.to_str().unwrap()])
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .stderr(log);
    })
    .await;
    let http = server.http().clone();
    for _ in 0..50 {
        let answer = http
            .get(server.url("/v1/users/me"))
            .bearer_auth(&key)
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 200);
    }
    wait_for_failed_exports(&server).await;
    assert!(server.stop().success());
    let text = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    let _ = std::fs::remove_file(&config);
    // Warned once while it stays away, not at every batch.
    assert_eq!(
        text.matches("cannot send spans to the OTLP collector")
            .count(),
        1,
        "{text}"
    );
    assert!(!text.contains(&key));
}

#[test]
fn a_ca_file_that_cannot_be_used_stops_the_start() {
    let dir = std::env::temp_dir().join(netapi_testkit::unique_name("netapi-otel-ca-"));
    std::fs::create_dir_all(&dir).unwrap();
    let no_certificate = dir.join("empty.pem");
    std::fs::write(&no_certificate, "not a certificate\n").unwrap();
    let broken = dir.join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let missing = dir.join("missing.pem");
    let https = "https://127.0.0.1:4318";
    for (endpoint, ca_file, expected) in [
        (Some(https), &missing, "otlp_ca_file: cannot read"),
        (
            Some(https),
            &no_certificate,
            "otlp_ca_file: holds no PEM certificate",
        ),
        (
            Some(https),
            &broken,
            "otlp_ca_file: not a PEM certificate file",
        ),
        (
            Some("http://127.0.0.1:4318"),
            &no_certificate,
            "otlp_ca_file: is for an https:// otlp_endpoint",
        ),
        (None, &no_certificate, "otlp_ca_file is for otlp_endpoint"),
    ] {
        let mut command = Command::new(BIN);
        command
            .args([
                "serve",
                "--database-url",
                "sqlite::memory:",
                "--otlp-ca-file",
            ])
            .arg(ca_file);
        if let Some(endpoint) = endpoint {
            command.args(["--otlp-endpoint", endpoint]);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success(), "{expected}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_endpoint_that_is_not_an_http_url_stops_the_start() {
    for endpoint in [
        "collector:4318",
        "ftp://collector/",
        "http://a:b@collector:4318",
    ] {
        let output = Command::new(BIN)
            .args([
                "serve",
                "--database-url",
                "sqlite::memory:",
                "--otlp-endpoint",
                endpoint,
            ])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{endpoint}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("otlp_endpoint"), "{endpoint}: {stderr}");
    }
}

/// The `traceparent` of each request a webhook receiver got (`None` without one).
type Traceparents = Arc<Mutex<Vec<Option<String>>>>;

/// A webhook receiver on a free port answering `answers` in turn, then 204.
async fn webhook_receiver(answers: &[u16]) -> (u16, Traceparents) {
    let got = Traceparents::default();
    let answers = Arc::new(Mutex::new(answers.to_vec()));
    let app = axum::Router::new()
        .route(
            "/hooks/{name}",
            post(
                async |State((got, answers)): State<(Traceparents, Arc<Mutex<Vec<u16>>>)>,
                       headers: HeaderMap| {
                    keep_traceparent(&got, &headers);
                    let mut answers = answers.lock().unwrap();
                    let status = if answers.is_empty() {
                        204
                    } else {
                        answers.remove(0)
                    };
                    axum::http::StatusCode::from_u16(status).unwrap()
                },
            ),
        )
        .with_state((got.clone(), answers));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, got)
}

/// Keeps the request's `traceparent` (`None` without one).
fn keep_traceparent(kept: &Traceparents, headers: &HeaderMap) {
    kept.lock().unwrap().push(
        headers
            .get("traceparent")
            .map(|v| v.to_str().unwrap().to_owned()),
    );
}

/// The sampled `traceparent` of span `parent` in trace `trace`.
fn traceparent(trace: &[u8], parent: &[u8]) -> String {
    format!("00-{}-{}-01", hex(trace), hex(parent))
}

/// `00-{trace}-{span}-{flags}` as its trace id, span id and flags.
fn parse_traceparent(value: &str) -> (Vec<u8>, Vec<u8>, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00", "{value}");
    let bytes = |hex: &str, len: usize| {
        assert_eq!(hex.len(), len * 2, "{value}");
        (0..len)
            .map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap())
            .collect::<Vec<u8>>()
    };
    (bytes(parts[1], 16), bytes(parts[2], 8), parts[3].to_owned())
}

#[tokio::test]
async fn each_webhook_attempt_is_a_client_span_whose_traceparent_the_receiver_gets() {
    let (endpoint, received) = collector().await;
    let (port, traceparents) = webhook_receiver(&[500]).await;
    let db = SqliteFile::new();
    let admin = create_user(&db, "hooks@example.com", true);
    let server = Server::start_with(&db, |command| {
        command
            .env("NETAPI_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("NETAPI_ALLOW_PRIVATE_TARGETS", "true")
            .env("NETAPI_WEBHOOK_RETRY_BASE", "1");
    })
    .await;
    let http = server.http().clone();
    // A URL whose path and query hold what a receiver may treat as a secret.
    let hook = format!("http://127.0.0.1:{port}/hooks/path-secret-xyz?token=query-secret-abc");
    let answer = http
        .post(server.url("/v1/webhooks"))
        .bearer_auth(&admin)
        .json(&json!({"url": hook, "events": ["api_key.created"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201);
    let webhook: serde_json::Value = answer.json().await.unwrap();
    let created: serde_json::Value = http
        .post(server.url("/v1/api-keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "traced"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // The first attempt is answered 500, the retry (a second later) 204.
    let deadline = Instant::now() + Duration::from_secs(30);
    while traceparents.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the delivery was not retried");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = traceparents.lock().unwrap().clone();
    let attempts: Vec<_> = got
        .iter()
        .map(|value| parse_traceparent(value.as_deref().expect("a traceparent")))
        .collect();
    assert_ne!(attempts[0].0, attempts[1].0, "each attempt is a trace");
    let webhook_id = webhook["id"].as_str().unwrap();
    let listed: serde_json::Value = http
        .get(server.url(&format!("/v1/webhooks/{webhook_id}/deliveries")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let delivery_id = listed["deliveries"][0]["id"].as_str().unwrap();
    for (((trace, span_id, flags), status), attempt) in attempts.iter().zip([500, 204]).zip(1..) {
        assert_eq!(flags, "01", "sampled");
        let (_, span) = span_of(&received, trace).await;
        assert_eq!(&span.span_id, span_id, "the receiver was named the span");
        assert!(span.parent_span_id.is_empty(), "a trace of its own");
        assert_eq!(span.kind, SpanKind::Client as i32);
        assert_eq!(span.name, "POST");
        assert_eq!(text(&span.attributes, "http.request.method"), "POST");
        assert_eq!(text(&span.attributes, "server.address"), "127.0.0.1");
        assert_eq!(number(&span.attributes, "server.port"), i64::from(port));
        assert_eq!(text(&span.attributes, "netapi.outgoing"), "webhook");
        // The delivery as the API lists it, and which attempt.
        assert_eq!(text(&span.attributes, "netapi.webhook.id"), webhook_id);
        assert_eq!(
            text(&span.attributes, "netapi.webhook.delivery_id"),
            delivery_id
        );
        assert!(text(&span.attributes, "netapi.webhook.event_id").starts_with("evt_"));
        assert_eq!(
            text(&span.attributes, "netapi.webhook.event_type"),
            "api_key.created"
        );
        assert_eq!(number(&span.attributes, "netapi.webhook.attempt"), attempt);
        assert_eq!(
            number(&span.attributes, "http.response.status_code"),
            status
        );
        let error = span.status.as_ref().map_or(0, |status| status.code);
        if status == 500 {
            assert_eq!(text(&span.attributes, "error.type"), "500");
            assert_eq!(error, StatusCode::Error as i32);
        } else {
            assert!(attribute(&span.attributes, "error.type").is_none());
            assert_ne!(error, StatusCode::Error as i32);
        }
    }
    // Neither the URL's path or query nor a secret left the server.
    for (_, body) in received.lock().unwrap().iter() {
        let body = String::from_utf8_lossy(body);
        for secret in [
            "path-secret-xyz",
            "query-secret-abc",
            webhook["secret"].as_str().unwrap(),
            created["key"].as_str().unwrap(),
            admin.as_str(),
        ] {
            assert!(!body.contains(secret), "{secret} was exported");
        }
    }
    assert!(server.stop().success());
}

/// A certificate authority and a certificate it issued for 127.0.0.1 (made by `openssl`),
/// removed when dropped.
struct TestPki {
    dir: PathBuf,
}

impl TestPki {
    /// `None` where `openssl` cannot make them.
    fn make() -> Option<Self> {
        let dir = std::env::temp_dir().join(netapi_testkit::unique_name("netapi-otel-pki-"));
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Self { dir };
        std::fs::write(
            pki.dir.join("leaf.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let run = |args: &[&str]| {
            Command::new("openssl")
                .args(args)
                .current_dir(&pki.dir)
                .output()
                .is_ok_and(|output| output.status.success())
        };
        let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        let made = run(&[
            &["req", "-x509", "-nodes", "-days", "1"][..],
            &curve,
            &[
                "-subj",
                "/CN=Net API test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat())
            && run(&[
                &["req", "-new", "-nodes"][..],
                &curve,
                &[
                    "-subj",
                    "/CN=127.0.0.1",
                    "-keyout",
                    "leaf.key",
                    "-out",
                    "leaf.csr",
                ],
            ]
            .concat())
            && run(&[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                "leaf.ext",
                "-out",
                "leaf.pem",
            ])
            // Another authority, which issued nothing the collector holds.
            && run(&[
                &["req", "-x509", "-nodes", "-days", "1"][..],
                &curve,
                &["-subj", "/CN=Another CA", "-keyout", "other.key", "-out", "other.pem"],
            ]
            .concat());
        made.then_some(pki)
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn an_https_collector_of_a_private_ca_is_trusted_through_otlp_ca_file_only() {
    let Some(pki) = TestPki::make() else {
        eprintln!("skipped: openssl cannot make a test certificate authority here");
        return;
    };
    let (endpoint, received) =
        tls_collector(&pki.dir.join("leaf.pem"), &pki.dir.join("leaf.key")).await;
    let start = |db: SqliteFile, ca_file: Option<PathBuf>, endpoint: String| async move {
        let key = create_user(&db, "tls@example.com", false);
        let server = Server::start_with(&db, |command| {
            command
                .env("NETAPI_OTLP_ENDPOINT", &endpoint)
                .env("OTEL_BSP_SCHEDULE_DELAY", "100");
            if let Some(ca_file) = ca_file {
                command.env("NETAPI_OTLP_CA_FILE", ca_file);
            }
        })
        .await;
        (db, key, server)
    };
    let traced = async |server: &Server, key: &str| {
        let (trace, parent) = (random_id(16), random_id(8));
        let answer = server
            .http()
            .get(server.url("/v1/users/me"))
            .bearer_auth(key)
            .header("traceparent", traceparent(&trace, &parent))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        trace
    };

    // Told of the private CA: its spans arrive over TLS.
    let (_db, key, trusting) = start(SqliteFile::new(), Some(pki.ca()), endpoint.clone()).await;
    let trace = traced(&trusting, &key).await;
    let (_, span) = span_of(&received, &trace).await;
    assert_eq!(span.name, "GET /v1/users/me");
    assert!(trusting.stop().success());

    // Not told, or told of another CA alone: the collector's certificate is not trusted, so
    // nothing is sent to it (and the failed exports are counted), while requests are
    // answered as ever.
    for ca_file in [None, Some(pki.dir.join("other.pem"))] {
        let (_other_db, key, distrusting) =
            start(SqliteFile::new(), ca_file.clone(), endpoint.clone()).await;
        let trace = traced(&distrusting, &key).await;
        wait_for_failed_exports(&distrusting).await;
        assert!(
            spans(&received)
                .iter()
                .all(|(_, span)| span.trace_id != trace),
            "with {ca_file:?}, a span went to a collector whose certificate is not trusted"
        );
        assert!(distrusting.stop().success());
    }
}

#[tokio::test]
async fn a_jwks_uri_fetch_is_a_client_span_inside_the_token_request_that_needs_it() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use ed25519_dalek::Signer as _;

    let (endpoint, received) = collector().await;
    // The client's key set, served on a free port; each fetch's traceparent is kept.
    let key = ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let jwks = json!({"keys": [{
        "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": "k1",
        "x": B64.encode(key.verifying_key().as_bytes()),
    }]});
    let fetched = Traceparents::default();
    let app = axum::Router::new()
        .route(
            "/keys/{name}",
            axum::routing::get(
                async |State((fetched, jwks)): State<(Traceparents, serde_json::Value)>,
                       headers: HeaderMap| {
                    keep_traceparent(&fetched, &headers);
                    axum::Json(jwks)
                },
            ),
        )
        .with_state((fetched.clone(), jwks));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let db = SqliteFile::new();
    let owner = create_user(&db, "keys@example.com", false);
    let server = Server::start_with(&db, |command| {
        command
            .env("NETAPI_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("NETAPI_ALLOW_PRIVATE_TARGETS", "true");
    })
    .await;
    let http = server.http().clone();
    let answer = http
        .post(server.url("/v1/oauth-clients"))
        .bearer_auth(&owner)
        .json(&json!({
            "client_name": "Keys by URI",
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": format!("http://127.0.0.1:{port}/keys/path-secret-xyz"),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201);
    let client: serde_json::Value = answer.json().await.unwrap();
    let client_id = client["client_id"].as_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signed = format!(
        "{}.{}",
        B64.encode(json!({"alg": "EdDSA", "kid": "k1", "typ": "JWT"}).to_string()),
        B64.encode(
            json!({
                "iss": client_id, "sub": client_id, "aud": "http://netapi.test/oauth/token",
                "iat": now, "exp": now + 60, "jti": hex(&random_id(16)),
            })
            .to_string()
        )
    );
    let assertion = format!(
        "{signed}.{}",
        B64.encode(key.sign(signed.as_bytes()).to_bytes())
    );
    let (trace, parent) = (random_id(16), random_id(8));
    let answer = http
        .post(server.url("/oauth/token"))
        .header("traceparent", traceparent(&trace, &parent))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status().as_u16(),
        200,
        "{}",
        answer.text().await.unwrap()
    );

    // The key set was fetched once, carrying the trace of the token request.
    let got = fetched.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    let (fetch_trace, fetch_span, _) = parse_traceparent(got[0].as_deref().expect("a traceparent"));
    assert_eq!(fetch_trace, trace, "the fetch is in the caller's trace");
    // Both spans reach the collector: the token request's (child of the caller's), and the
    // fetch's, a child of it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let in_trace = loop {
        let in_trace: Vec<Span> = spans(&received)
            .into_iter()
            .map(|(_, span)| span)
            .filter(|span| span.trace_id == trace)
            .collect();
        if in_trace.len() >= 2 {
            break in_trace;
        }
        assert!(
            Instant::now() < deadline,
            "spans of the trace: {in_trace:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let request = in_trace
        .iter()
        .find(|span| span.kind == SpanKind::Server as i32)
        .expect("the token request's span");
    assert_eq!(request.name, "POST /oauth/token");
    assert_eq!(request.parent_span_id, parent);
    let fetch = in_trace
        .iter()
        .find(|span| span.kind == SpanKind::Client as i32)
        .expect("the fetch's span");
    assert_eq!(
        fetch.span_id, fetch_span,
        "the key set's server was named the span"
    );
    assert_eq!(fetch.parent_span_id, request.span_id);
    assert_eq!(fetch.name, "GET");
    assert_eq!(text(&fetch.attributes, "http.request.method"), "GET");
    assert_eq!(text(&fetch.attributes, "netapi.outgoing"), "jwks");
    assert_eq!(number(&fetch.attributes, "server.port"), i64::from(port));
    assert_eq!(number(&fetch.attributes, "http.response.status_code"), 200);
    for (_, body) in received.lock().unwrap().iter() {
        let body = String::from_utf8_lossy(body);
        for secret in ["path-secret-xyz", assertion.as_str()] {
            assert!(!body.contains(secret), "{secret} was exported");
        }
    }
    assert!(server.stop().success());
}
