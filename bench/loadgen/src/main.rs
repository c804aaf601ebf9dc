//! `netapi-loadgen`: the load generator of `bench/run.sh`, and the seeder of its scale run.
//!
//! `run` keeps N HTTP/1.1 keep-alive connections busy for a fixed time (a closed loop: each
//! connection sends its next request when the previous answer is in), checks every answer,
//! and prints requests/s and exact p50/p99 from every recorded latency. `seed-keys` inserts
//! API keys straight through the `Store`, as the scale run of issue 6 asks.

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::{Parser, Subcommand, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use netapi_core::secret::{SecretHasher, SecretKind, display_prefix, generate, last_four};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "Net API load generator and scale-run seeder")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive one scenario against a running server and print one result line
    Run(Box<RunArgs>),
    /// Insert API keys for an existing user straight through the Store
    SeedKeys(SeedArgs),
    /// Revoke keys through one instance and time until another refuses them
    Propagation(PropagationArgs),
}

/// Two instances on one database: keys are made and revoked through `--writer`; the reader
/// has each key cached (answered 200) when it is revoked, and is asked again and again
/// until it answers 401.
#[derive(Debug, clap::Args)]
struct PropagationArgs {
    /// Base URL of the instance that revokes (http://host:port)
    #[arg(long)]
    writer: String,
    /// Base URL of the instance that must see the revocation
    #[arg(long)]
    reader: String,
    /// An API key with keys:write and users:read (the benchmark's administrator)
    #[arg(long)]
    key: String,
    /// How many keys to revoke, one after the other
    #[arg(long, default_value_t = 50)]
    samples: usize,
    /// Give up on one key after this many milliseconds
    #[arg(long, default_value_t = 5000)]
    give_up_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// GET /healthz: no authentication (the ceiling)
    Healthz,
    /// GET /v1/users/me with an API key (a cache hit after the first request)
    UsersMeApikey,
    /// GET /v1/users/me with an access token
    UsersMeToken,
    /// POST /oauth/token, client_credentials, HTTP Basic
    ClientCredentials,
    /// POST /oauth/token, refresh_token: each connection rotates its own token
    Refresh,
    /// POST /oauth/introspect of an access token, HTTP Basic
    Introspect,
    /// POST /v1/register with unique emails (argon2-bound)
    Register,
    /// GET /v1/users/me with a different API key on every request (cache misses)
    UsersMeApikeyMiss,
    /// GET /auth/forward?resource=...&scope=users:read with an API key (the bare baseline
    /// answers the same request)
    ForwardAuthApikey,
    /// GET /auth/forward?resource=...&scope=users:read with an access token
    ForwardAuthToken,
    /// POST /v1/keys/verify of --verify-key, with a keys:verify key as --api-key
    Verify,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Base URL of the server
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// What to send
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Concurrent keep-alive connections
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Measured seconds
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts (not recorded)
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Runtime threads of the load generator (1: a single-threaded runtime)
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// API key (users-me-apikey)
    #[arg(long)]
    api_key: Option<String>,
    /// Access token (users-me-token, introspect)
    #[arg(long)]
    token: Option<String>,
    /// OAuth client id (client-credentials, refresh, introspect)
    #[arg(long)]
    client_id: Option<String>,
    /// OAuth client secret
    #[arg(long)]
    client_secret: Option<String>,
    /// File with one refresh token per line, at least one per connection (refresh)
    #[arg(long)]
    refresh_tokens: Option<PathBuf>,
    /// File with one API key per line, each sent once (users-me-apikey-miss)
    #[arg(long)]
    keys_file: Option<PathBuf>,
    /// The resource identifier forward auth is asked about (forward-auth-*); without it, none
    /// is sent (Net API's own)
    #[arg(long)]
    resource: Option<String>,
    /// The scope forward auth requires (forward-auth-*)
    #[arg(long, default_value = "users:read")]
    scope: String,
    /// The API key to verify (verify)
    #[arg(long)]
    verify_key: Option<String>,
}

#[derive(Debug, clap::Args)]
struct SeedArgs {
    /// Database URL (sqlite:// or postgres://)
    #[arg(long)]
    database_url: String,
    /// Email of the user who owns the keys
    #[arg(long)]
    email: String,
    /// How many keys to insert
    #[arg(long)]
    count: usize,
    /// The server's pepper (NETAPI_PEPPER), if it has one
    #[arg(long, default_value = "")]
    pepper: String,
    /// Concurrent inserting tasks [default: 1 on SQLite, 16 on PostgreSQL]
    #[arg(long)]
    concurrency: Option<usize>,
    /// Write the first --secrets-count keys to this file, one per line
    #[arg(long)]
    secrets_out: Option<PathBuf>,
    /// How many keys to write to --secrets-out
    #[arg(long, default_value_t = 0)]
    secrets_count: usize,
    /// Spread the keys over this many resources, `https://api-<i>.bench.example` (each made
    /// if missing, with the self-service scopes bench:read and bench:write): key i is for
    /// resource i mod N, with bench:read. 0: every key is for Net API's own API
    #[arg(long, default_value_t = 0)]
    resources: usize,
}

/// The identifier of the `i`th resource of `seed-keys --resources`.
fn bench_resource(i: usize) -> String {
    format!("https://api-{i}.bench.example")
}

/// The resources of `seed-keys --resources`, made where missing.
async fn seed_resources(
    store: &Arc<dyn netapi_core::Store>,
    count: usize,
) -> anyhow::Result<Vec<netapi_core::model::ResourceRef>> {
    use netapi_core::model::{Resource, ResourceScope};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut refs = Vec::with_capacity(count);
    for i in 0..count {
        let identifier = bench_resource(i);
        let found = store
            .get_resource_by_identifier(&identifier)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let resource = match found {
            Some(resource) => resource,
            None => {
                let scope = |name: &str| ResourceScope {
                    name: name.to_owned(),
                    description: format!("{name} of bench API {i}"),
                };
                let resource = Resource {
                    id: netapi_core::ids::new_id("res"),
                    identifier,
                    name: format!("Bench API {i}"),
                    scopes: vec![scope("bench:read"), scope("bench:write")],
                    self_service_scopes: vec!["bench:read".to_owned(), "bench:write".to_owned()],
                    allow_api_keys: true,
                    access_token_ttl: None,
                    created_at: now,
                    updated_at: now,
                    deleted_at: None,
                };
                store
                    .insert_resource(&resource)
                    .await
                    .map_err(|e| anyhow::anyhow!("insert resource: {e}"))?;
                resource
            }
        };
        refs.push(resource.reference());
    }
    Ok(refs)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            let mut builder = if args.threads <= 1 {
                tokio::runtime::Builder::new_current_thread()
            } else {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(args.threads);
                b
            };
            builder.enable_all().build()?.block_on(run(*args))
        }
        Command::SeedKeys(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(seed_keys(args)),
        Command::Propagation(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(propagation(args)),
    }
}

/// One keep-alive connection to an instance.
struct Instance {
    host: String,
    sender: SendRequest<Full<Bytes>>,
}

impl Instance {
    async fn connect(base: &str) -> anyhow::Result<Self> {
        let (host, addr) = resolve(base).await?;
        let sender = open(addr).await?;
        Ok(Self { host, sender })
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        bearer: &str,
        json: Option<String>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.host.as_str())
            .header(header::AUTHORIZATION, format!("Bearer {bearer}"));
        if json.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(Bytes::from(json.unwrap_or_default())))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

async fn propagation(args: PropagationArgs) -> anyhow::Result<()> {
    let mut writer = Instance::connect(&args.writer).await?;
    let mut reader = Instance::connect(&args.reader).await?;
    let give_up = Duration::from_millis(args.give_up_ms);
    let mut latencies = Vec::with_capacity(args.samples);
    let mut asked = 0u64;
    for sample in 0..args.samples {
        let body = format!(r#"{{"name":"propagation {sample}"}}"#);
        let (status, answer) = writer
            .send(Method::POST, "/v1/api-keys", &args.key, Some(body))
            .await?;
        if status != StatusCode::CREATED {
            bail!("POST /v1/api-keys answered {status}");
        }
        let answer: serde_json::Value = serde_json::from_slice(&answer)?;
        let (Some(id), Some(key)) = (answer["id"].as_str(), answer["key"].as_str()) else {
            bail!("POST /v1/api-keys answered no id or key");
        };
        // Twice: the reader has looked the key up and holds it in its cache.
        for _ in 0..2 {
            let (status, _) = reader.send(Method::GET, "/v1/users/me", key, None).await?;
            if status != StatusCode::OK {
                bail!("the reader answered {status} to a new key");
            }
        }
        let (status, _) = writer
            .send(
                Method::DELETE,
                &format!("/v1/api-keys/{id}"),
                &args.key,
                None,
            )
            .await?;
        if status != StatusCode::NO_CONTENT {
            bail!("DELETE /v1/api-keys/{{id}} answered {status}");
        }
        let revoked = Instant::now();
        loop {
            asked += 1;
            let (status, _) = reader.send(Method::GET, "/v1/users/me", key, None).await?;
            match status {
                StatusCode::UNAUTHORIZED => break,
                StatusCode::OK if revoked.elapsed() < give_up => {}
                StatusCode::OK => bail!("the reader still took a revoked key after {give_up:?}"),
                other => bail!("the reader answered {other}"),
            }
        }
        latencies.push(u64::try_from(revoked.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    latencies.sort_unstable();
    let at = |q: f64| {
        let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(index).copied().unwrap_or(0) as f64 / 1000.0
    };
    // PROPAGATION samples p50-ms p99-ms max-ms min-ms reader-requests
    println!(
        "PROPAGATION\t{}\t{:.2}\t{:.2}\t{:.2}\t{:.2}\t{asked}",
        latencies.len(),
        at(0.5),
        at(0.99),
        at(1.0),
        at(0.0)
    );
    Ok(())
}

/// What every connection shares.
struct Shared {
    scenario: Scenario,
    addr: SocketAddr,
    host: String,
    bearer: Option<String>,
    basic: Option<String>,
    token: Option<String>,
    miss_keys: Vec<String>,
    next_miss: AtomicUsize,
    /// The forward-auth request's path and query.
    forward_path: String,
    /// The verify request's body.
    verify_body: String,
    measure_from: Instant,
    end: Instant,
    tag: String,
}

/// What one connection measured.
#[derive(Default)]
struct Tally {
    latencies_ns: Vec<u64>,
    ok: u64,
    errors: u64,
    /// Every completed request, warm-up included (to relate to the server's CPU time).
    all: u64,
    last_done: Option<Instant>,
    first_error: Option<String>,
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let (authority, addr) = resolve(&args.url).await?;
    let basic = match (&args.client_id, &args.client_secret) {
        (Some(id), Some(secret)) => Some(format!(
            "Basic {}",
            STANDARD.encode(format!("{id}:{secret}"))
        )),
        _ => None,
    };
    let need = |what: Option<&String>, flag: &str| -> anyhow::Result<()> {
        if what.is_none() {
            bail!("scenario {:?} needs {flag}", args.scenario);
        }
        Ok(())
    };
    match args.scenario {
        Scenario::UsersMeApikey | Scenario::ForwardAuthApikey => {
            need(args.api_key.as_ref(), "--api-key")?;
        }
        Scenario::UsersMeToken | Scenario::ForwardAuthToken => {
            need(args.token.as_ref(), "--token")?;
        }
        Scenario::Verify => {
            need(args.api_key.as_ref(), "--api-key")?;
            need(args.verify_key.as_ref(), "--verify-key")?;
        }
        Scenario::ClientCredentials | Scenario::Refresh => {
            need(basic.as_ref(), "--client-id and --client-secret")?;
        }
        Scenario::Introspect => {
            need(basic.as_ref(), "--client-id and --client-secret")?;
            need(args.token.as_ref(), "--token")?;
        }
        Scenario::Healthz | Scenario::Register | Scenario::UsersMeApikeyMiss => {}
    }
    let mut refresh_tokens = Vec::new();
    if args.scenario == Scenario::Refresh {
        let path = args
            .refresh_tokens
            .as_ref()
            .context("scenario refresh needs --refresh-tokens FILE")?;
        refresh_tokens = read_lines(path)?;
        if refresh_tokens.len() < args.connections {
            bail!(
                "{} refresh tokens for {} connections: each connection needs its own",
                refresh_tokens.len(),
                args.connections
            );
        }
    }
    let miss_keys = if args.scenario == Scenario::UsersMeApikeyMiss {
        let path = args
            .keys_file
            .as_ref()
            .context("scenario users-me-apikey-miss needs --keys-file FILE")?;
        read_lines(path)?
    } else {
        Vec::new()
    };
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup.max(0.0));
    let shared = Arc::new(Shared {
        scenario: args.scenario,
        addr,
        host: authority,
        bearer: match args.scenario {
            Scenario::UsersMeApikey | Scenario::ForwardAuthApikey | Scenario::Verify => {
                args.api_key.clone()
            }
            Scenario::UsersMeToken | Scenario::ForwardAuthToken => args.token.clone(),
            _ => None,
        },
        forward_path: {
            let mut query = format!("scope={}", form_encode(&args.scope));
            if let Some(resource) = &args.resource {
                query = format!("resource={}&{query}", form_encode(resource));
            }
            format!("/auth/forward?{query}")
        },
        verify_body: serde_json::json!({
            "key": args.verify_key.as_deref().unwrap_or_default(),
            "scopes": ["users:read"],
        })
        .to_string(),
        basic,
        token: args.token.clone(),
        miss_keys,
        next_miss: AtomicUsize::new(0),
        measure_from,
        end: measure_from + Duration::from_secs_f64(args.duration.max(0.1)),
        tag: format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        ),
    });
    let cpu_before = cpu_seconds();
    let mut tasks = tokio::task::JoinSet::new();
    for conn in 0..args.connections {
        let refresh = refresh_tokens.get(conn).cloned();
        tasks.spawn(worker(shared.clone(), conn, refresh));
    }
    let mut total = Tally::default();
    while let Some(tally) = tasks.join_next().await {
        let tally = tally?;
        total.latencies_ns.extend(tally.latencies_ns);
        total.ok += tally.ok;
        total.errors += tally.errors;
        total.all += tally.all;
        total.last_done = total.last_done.max(tally.last_done);
        if total.first_error.is_none() {
            total.first_error = tally.first_error;
        }
    }
    let cpu = cpu_seconds() - cpu_before;
    let wall = start.elapsed().as_secs_f64();
    let measured = total.last_done.map_or(0.0, |t| {
        t.saturating_duration_since(measure_from).as_secs_f64()
    });
    total.latencies_ns.sort_unstable();
    let pct = |p: f64| -> f64 {
        let v = &total.latencies_ns;
        if v.is_empty() {
            return f64::NAN;
        }
        // Nearest rank: the smallest value with at least p of the samples at or below it.
        let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1] as f64 / 1e6
    };
    let rps = if measured > 0.0 {
        total.ok as f64 / measured
    } else {
        0.0
    };
    let (p50, p99) = (pct(0.50), pct(0.99));
    let name = args
        .scenario
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_owned());
    eprintln!(
        "{name}: {} ok, {} errors in {measured:.2} s: {rps:.0} req/s, p50 {p50:.3} ms, p99 {p99:.3} ms; load generator CPU {:.0} %",
        total.ok,
        total.errors,
        100.0 * cpu / wall
    );
    if let Some(first) = &total.first_error {
        eprintln!("{name}: first error: {first}");
    }
    // The line bench/run.sh reads.
    println!(
        "RESULT\t{name}\t{}\t{rps:.1}\t{p50:.3}\t{p99:.3}\t{}\t{:.0}\t{}",
        total.ok,
        total.errors,
        100.0 * cpu / wall,
        total.all
    );
    Ok(())
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn read_lines(path: &PathBuf) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// User plus system CPU seconds of this process so far (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after ')'.
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => 0.0,
    }
}

/// The `host:port` of an `http://` base URL, and its address.
async fn resolve(base: &str) -> anyhow::Result<(String, SocketAddr)> {
    let authority = base
        .strip_prefix("http://")
        .with_context(|| format!("{base} must start with http://"))?
        .trim_end_matches('/')
        .to_owned();
    let addr = tokio::net::lookup_host(&authority)
        .await?
        .next()
        .with_context(|| format!("the host of {base} does not resolve"))?;
    Ok((authority, addr))
}

/// One HTTP/1.1 keep-alive connection, without Nagle's delay.
async fn open(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

// One value per request, moved at once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Next {
    Send(Request<Full<Bytes>>),
    Done,
}

fn build(
    shared: &Shared,
    method: Method,
    path: &str,
    authorization: Option<&str>,
    form: Option<String>,
    json: Option<String>,
) -> anyhow::Result<Request<Full<Bytes>>> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, shared.host.as_str());
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let body = if let Some(form) = form {
        request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        Bytes::from(form)
    } else if let Some(json) = json {
        request = request.header(header::CONTENT_TYPE, "application/json");
        Bytes::from(json)
    } else {
        Bytes::new()
    };
    Ok(request.body(Full::new(body))?)
}

fn next_request(
    shared: &Shared,
    conn: usize,
    seq: u64,
    refresh: Option<&str>,
) -> anyhow::Result<Next> {
    let bearer = shared.bearer.as_ref().map(|b| format!("Bearer {b}"));
    let request = match shared.scenario {
        Scenario::Healthz => build(shared, Method::GET, "/healthz", None, None, None)?,
        Scenario::UsersMeApikey | Scenario::UsersMeToken => build(
            shared,
            Method::GET,
            "/v1/users/me",
            bearer.as_deref(),
            None,
            None,
        )?,
        Scenario::UsersMeApikeyMiss => {
            let index = shared.next_miss.fetch_add(1, Ordering::Relaxed);
            let Some(key) = shared.miss_keys.get(index) else {
                return Ok(Next::Done);
            };
            build(
                shared,
                Method::GET,
                "/v1/users/me",
                Some(&format!("Bearer {key}")),
                None,
                None,
            )?
        }
        Scenario::ForwardAuthApikey | Scenario::ForwardAuthToken => build(
            shared,
            Method::GET,
            &shared.forward_path,
            bearer.as_deref(),
            None,
            None,
        )?,
        Scenario::Verify => build(
            shared,
            Method::POST,
            "/v1/keys/verify",
            bearer.as_deref(),
            None,
            Some(shared.verify_body.clone()),
        )?,
        Scenario::ClientCredentials => build(
            shared,
            Method::POST,
            "/oauth/token",
            shared.basic.as_deref(),
            Some("grant_type=client_credentials".to_owned()),
            None,
        )?,
        Scenario::Refresh => {
            let Some(token) = refresh else {
                return Ok(Next::Done);
            };
            build(
                shared,
                Method::POST,
                "/oauth/token",
                shared.basic.as_deref(),
                Some(format!("grant_type=refresh_token&refresh_token={token}")),
                None,
            )?
        }
        Scenario::Introspect => build(
            shared,
            Method::POST,
            "/oauth/introspect",
            shared.basic.as_deref(),
            Some(format!(
                "token={}&token_type_hint=access_token",
                shared.token.as_deref().unwrap_or_default()
            )),
            None,
        )?,
        Scenario::Register => build(
            shared,
            Method::POST,
            "/v1/register",
            None,
            None,
            Some(
                serde_json::json!({
                    "email": format!("bench-{}-{conn}-{seq}@example.com", shared.tag),
                    "password": "bench-password-1234",
                    "name": "Bench User",
                })
                .to_string(),
            ),
        )?,
    };
    Ok(Next::Send(request))
}

/// Checks an answer; for a refresh, returns the successor token.
fn check(scenario: Scenario, status: StatusCode, body: &[u8]) -> Result<Option<String>, String> {
    let expected = if scenario == Scenario::Register {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let show = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if status != expected {
        return Err(format!("status {status}: {}", show()));
    }
    match scenario {
        Scenario::Refresh | Scenario::ClientCredentials => {
            let value: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| format!("bad JSON ({e}): {}", show()))?;
            if value["access_token"].as_str().is_none() {
                return Err(format!("no access_token: {}", show()));
            }
            if scenario == Scenario::Refresh {
                return value["refresh_token"]
                    .as_str()
                    .map(|t| Some(t.to_owned()))
                    .ok_or_else(|| format!("no refresh_token: {}", show()));
            }
            Ok(None)
        }
        Scenario::Introspect | Scenario::Verify => {
            let value: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| format!("bad JSON ({e}): {}", show()))?;
            let field = if scenario == Scenario::Verify {
                "valid"
            } else {
                "active"
            };
            if value[field] == serde_json::Value::Bool(true) {
                Ok(None)
            } else {
                Err(format!("not {field}: {}", show()))
            }
        }
        _ => Ok(None),
    }
}

fn fail(tally: &mut Tally, recording: bool, why: String) {
    if recording {
        tally.errors += 1;
    }
    if tally.first_error.is_none() {
        tally.first_error = Some(why);
    }
}

async fn worker(shared: Arc<Shared>, conn: usize, mut refresh: Option<String>) -> Tally {
    let mut tally = Tally {
        latencies_ns: Vec::with_capacity(64 * 1024),
        ..Tally::default()
    };
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut seq = 0u64;
    loop {
        let now = Instant::now();
        if now >= shared.end {
            break;
        }
        let recording = now >= shared.measure_from;
        seq += 1;
        let request = match next_request(&shared, conn, seq, refresh.as_deref()) {
            Ok(Next::Send(request)) => request,
            Ok(Next::Done) => break,
            Err(err) => {
                fail(
                    &mut tally,
                    recording,
                    format!("cannot build request: {err}"),
                );
                break;
            }
        };
        if sender.as_ref().is_none_or(SendRequest::is_closed) {
            match open(shared.addr).await {
                Ok(s) => sender = Some(s),
                Err(err) => {
                    fail(&mut tally, recording, format!("connect: {err}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        if s.ready().await.is_err() {
            sender = None;
            continue;
        }
        let started = Instant::now();
        let outcome = match s.send_request(request).await {
            Ok(response) => {
                let status = response.status();
                match response.into_body().collect().await {
                    Ok(body) => Ok((status, body.to_bytes())),
                    Err(err) => Err(format!("reading the body: {err}")),
                }
            }
            Err(err) => Err(format!("request: {err}")),
        };
        let done = Instant::now();
        let elapsed = done.duration_since(started);
        tally.all += 1;
        match outcome {
            Ok((status, body)) => match check(shared.scenario, status, &body) {
                Ok(successor) => {
                    if let Some(successor) = successor {
                        refresh = Some(successor);
                    }
                    if recording {
                        tally.ok += 1;
                        tally.latencies_ns.push(elapsed.as_nanos() as u64);
                        tally.last_done = Some(done);
                    }
                }
                Err(why) => {
                    fail(&mut tally, recording, why);
                    if recording {
                        tally.latencies_ns.push(elapsed.as_nanos() as u64);
                        tally.last_done = Some(done);
                    }
                    if shared.scenario == Scenario::Refresh {
                        // The chain is broken: this connection has no valid token left.
                        break;
                    }
                }
            },
            Err(why) => {
                fail(&mut tally, recording, why);
                sender = None;
                if shared.scenario == Scenario::Refresh {
                    break;
                }
            }
        }
    }
    tally
}

async fn seed_keys(args: SeedArgs) -> anyhow::Result<()> {
    let options = netapi_store::StoreOptions::new(&args.database_url);
    let store = netapi_store::open(&options, true)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the store: {e}"))?;
    let user = store
        .get_user_by_email(&args.email.to_lowercase())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_context(|| format!("no user with the email {}", args.email))?;
    let hasher = SecretHasher::new(args.pepper.as_bytes());
    let resources = Arc::new(seed_resources(&store, args.resources).await?);
    let concurrency = args
        .concurrency
        .unwrap_or(if args.database_url.starts_with("sqlite:") {
            1
        } else {
            16
        })
        .max(1);
    let mut secrets_out = match &args.secrets_out {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => None,
    };
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let (secret_tx, mut secret_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for _ in 0..concurrency {
        let store = store.clone();
        let hasher = hasher.clone();
        let next = next.clone();
        let user_id = user.id.clone();
        let scopes = user.role.max_scopes();
        let count = args.count;
        let keep = args.secrets_count;
        let secret_tx = secret_tx.clone();
        let resources = resources.clone();
        tasks.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return Ok::<(), anyhow::Error>(());
                }
                let secret = generate(SecretKind::ApiKey);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                let key = netapi_core::model::ApiKey {
                    rate_limit: None,
                    created_by_client: None,
                    id: netapi_core::ids::new_id("key"),
                    user_id: user_id.clone(),
                    name: format!("bench {index}"),
                    prefix: display_prefix(SecretKind::ApiKey, &secret),
                    last_four: last_four(&secret),
                    hash: hasher.hash(secret.expose()),
                    scopes,
                    created_at: now,
                    last_used_at: None,
                    expires_at: None,
                    revoked_at: None,
                    resource: None,
                    resource_scopes: Vec::new(),
                    metadata: None,
                };
                let key = match resources.get(index % resources.len().max(1)) {
                    Some(resource) => netapi_core::model::ApiKey {
                        scopes: netapi_core::Scopes::EMPTY,
                        resource: Some(resource.clone()),
                        resource_scopes: vec!["bench:read".to_owned()],
                        ..key
                    },
                    None => key,
                };
                store
                    .insert_api_key(&key)
                    .await
                    .map_err(|e| anyhow::anyhow!("insert: {e}"))?;
                if index < keep {
                    let _ = secret_tx.send(secret.expose().to_owned());
                }
                if (index + 1).is_multiple_of(100_000) {
                    eprintln!(
                        "seeded {} keys ({:.1} s)",
                        index + 1,
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        });
    }
    drop(secret_tx);
    while let Some(secret) = secret_rx.recv().await {
        if let Some(out) = secrets_out.as_mut() {
            writeln!(out, "{secret}")?;
        }
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    if let Some(mut out) = secrets_out {
        out.flush()?;
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "seeded {} keys in {seconds:.1} s ({:.0} keys/s) with {concurrency} task(s)",
        args.count,
        args.count as f64 / seconds
    );
    println!("SEEDED\t{}\t{seconds:.1}", args.count);
    Ok(())
}
