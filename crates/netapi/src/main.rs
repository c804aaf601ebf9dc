//! `netapi`: the server, migrations and operator commands.

mod config;
mod logging;
mod secret_key;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use netapi_core::model::ClientAuthMethod;
use netapi_core::service::{
    ClientUpdate, NewClient, NewInvitation, NewUser, PageRequest, Principal, UserUpdate,
    parse_grant_types,
};
use netapi_core::{NetApi, Role, SystemClock};
use netapi_store::StoreOptions;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Settings;

/// mimalloc: each request allocates a few dozen small buffers (headers, ids, log lines), and
/// mimalloc serves them in fewer instructions than the system allocator (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Net API: API keys and OAuth 2.0 for your API.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Optional TOML configuration file (flags and NETAPI_* variables win over it)
    #[arg(long, global = true, env = "NETAPI_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server
    Serve(Box<Settings>),
    /// Apply database migrations and exit
    Migrate(Box<Settings>),
    /// Move every record from a SQLite database into an empty PostgreSQL database
    MigrateStore {
        /// The SQLite database, e.g. sqlite://netapi.db
        #[arg(long)]
        from: String,
        /// The PostgreSQL database, e.g. postgres://user@host/netapi
        #[arg(long)]
        to: String,
    },
    /// Operator commands that need no HTTP (they read the same settings as `serve`, so the
    /// pepper and lifetimes agree)
    Admin {
        #[command(flatten)]
        settings: Box<Settings>,
        /// Create the SQLite database if it does not exist (otherwise an admin command refuses
        /// a database file that is not there)
        #[arg(long, global = true)]
        create: bool,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// A user named by email or by id.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct UserRef {
    /// The user's email
    #[arg(long)]
    email: Option<String>,
    /// The user's id (usr_...)
    #[arg(long)]
    id: Option<String>,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create a user and print one API key for it on the last line
    CreateUser {
        /// Email address
        #[arg(long)]
        email: String,
        /// Display name [default: the part of the email before @]
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Make the user an administrator (its key then carries the admin scope)
        #[arg(long)]
        admin: bool,
    },
    /// List a user's API keys
    ListKeys {
        /// The user's email
        #[arg(long)]
        email: String,
    },
    /// Revoke an API key by id
    RevokeKey {
        /// The key id (key_...)
        #[arg(long)]
        id: String,
    },
    /// Register an OAuth client for a user and print its id and secret
    CreateClient {
        /// Owner's email
        #[arg(long)]
        owner_email: String,
        /// Client name
        #[arg(long)]
        name: String,
        /// Redirect URI (repeatable)
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Grant type (repeatable) [default: by redirect URIs]
        #[arg(long = "grant-type")]
        grant_types: Vec<String>,
        /// Space-separated scopes [default: the owner's]
        #[arg(long)]
        scope: Option<String>,
        /// A public client (no secret; PKCE only)
        #[arg(long)]
        public: bool,
        /// Trust the client with automatic error redirects from /oauth/authorize
        #[arg(long)]
        trusted: bool,
    },
    /// Mark a client trusted (errors at /oauth/authorize redirect at once) or not (errors
    /// before the user has seen the request are shown on a page with a link)
    SetClientTrusted {
        /// The client_id (cli_...)
        #[arg(long)]
        id: String,
        /// true or false
        #[arg(long, action = clap::ArgAction::Set)]
        trusted: bool,
    },
    /// Publish a new token signing key; it signs after the publish delay
    RotateSigningKey,
    /// List OAuth clients (all, or one owner's)
    ListClients {
        /// Only this owner's clients
        #[arg(long)]
        owner_email: Option<String>,
    },
    /// Print a new secret for a confidential client; the old one stops working at once
    RotateClientSecret {
        /// The client_id (cli_...)
        #[arg(long)]
        id: String,
    },
    /// Delete an OAuth client; its tokens stop working at once
    DeleteClient {
        /// The client_id (cli_...)
        #[arg(long)]
        id: String,
    },
    /// List users: id, email, role, state (active or disabled), name
    ListUsers {
        /// One JSON object per line instead of tab-separated columns
        #[arg(long)]
        json: bool,
    },
    /// Make a user an administrator or a member (the last administrator stays one)
    SetRole {
        #[command(flatten)]
        user: UserRef,
        /// admin or member
        #[arg(long)]
        role: String,
    },
    /// Disable a user: its keys, tokens and sessions stop at once, on every instance
    DisableUser {
        #[command(flatten)]
        user: UserRef,
    },
    /// Enable a disabled user again (its sessions and refresh tokens stay ended)
    EnableUser {
        #[command(flatten)]
        user: UserRef,
    },
    /// Set a user's password, read from standard input; ends its sessions and refresh tokens
    ResetPassword {
        #[command(flatten)]
        user: UserRef,
        /// Read the password from standard input (the only way)
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user with its keys, clients, tokens and sessions
    DeleteUser {
        #[command(flatten)]
        user: UserRef,
    },
    /// Make a single-use invitation to register and print its link (shown once)
    CreateInvite {
        /// The only email that may use it [default: any]
        #[arg(long)]
        email: Option<String>,
        /// admin or member [default: member]
        #[arg(long)]
        role: Option<String>,
        /// Lifetime: seconds, or a number with s, m, h or d; at most 30d [default: 7d]
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// Makes an initial access token for one client registration at /oauth/register
    /// (client_registration = admin); prints it once, alone on the last line
    CreateRegistrationToken {
        /// Lifetime in days, at most 90 [default: 7]
        #[arg(long)]
        expires_in_days: Option<i64>,
    },
}

/// `90`, `90s`, `15m`, `12h`, `7d` as seconds.
fn parse_duration(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((at, 's')) => (&text[..at], 1),
        Some((at, 'm')) => (&text[..at], 60),
        Some((at, 'h')) => (&text[..at], 3600),
        Some((at, 'd')) => (&text[..at], 86_400),
        _ => (text, 1),
    };
    number
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .with_context(|| format!("--expires-in must be like 3600, 12h or 7d, not '{text}'"))
}

/// The file of a SQLite URL, `None` for an in-memory database or another backend.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let file = rest.split('?').next().unwrap_or_default();
    if file.is_empty() || file == ":memory:" || url.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(file))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(flags) => {
            let settings = flags.with_file(cli.config.as_deref())?;
            let telemetry = match (&settings.otlp_endpoint, &settings.otlp_ca_file) {
                (Some(endpoint), ca_file) => Some(netapi_server::telemetry::Telemetry::start(
                    endpoint,
                    ca_file.as_deref(),
                )?),
                (None, Some(_)) => bail!("otlp_ca_file is for otlp_endpoint, which is not set"),
                (None, None) => None,
            };
            let _log = logging::init(
                settings.log_format.as_deref().unwrap_or("text"),
                settings.access_log.unwrap_or(true),
                telemetry.as_ref(),
            )?;
            let served = serve(settings).await;
            if let Some(telemetry) = telemetry {
                // Blocking (it sends the last batch): off the runtime's threads.
                let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
            }
            served
        }
        Command::Migrate(flags) => {
            let settings = flags.with_file(cli.config.as_deref())?;
            let _log = logging::init("text", true, None)?;
            netapi_store::open(&StoreOptions::new(settings.database_url()), true)
                .await
                .context("migration failed")?;
            println!(
                "migrations applied to {}",
                redact_url(settings.database_url())
            );
            Ok(())
        }
        Command::MigrateStore { from, to } => {
            let _log = logging::init("text", true, None)?;
            if !from.starts_with("sqlite:") || !to.starts_with("postgres") {
                bail!("migrate-store moves a sqlite: database into a postgres:// database");
            }
            let source = netapi_store::SqliteStore::open(&StoreOptions::new(&from))
                .await
                .context("cannot open the source")?;
            source
                .migrate()
                .await
                .context("cannot migrate the source")?;
            let destination = netapi_store::PgStore::open(&StoreOptions::new(&to))
                .await
                .context("cannot open the destination")?;
            destination
                .migrate()
                .await
                .context("cannot migrate the destination")?;
            let report = netapi_store::copy_sqlite_to_postgres(&source, &destination)
                .await
                .context("the move failed; the destination was left unchanged")?;
            for (table, rows) in report {
                println!("{table}: {rows} rows");
            }
            println!("moved {} to {}", redact_url(&from), redact_url(&to));
            Ok(())
        }
        Command::Admin {
            settings,
            create,
            command,
        } => {
            let settings = settings.with_file(cli.config.as_deref())?;
            let url = settings.database_url();
            if let Some(file) = sqlite_file(url)
                && !create
                && !file.exists()
            {
                bail!(
                    "the database {} does not exist (file {}); check --database-url, or pass \
                     --create to make a new one",
                    redact_url(url),
                    file.display()
                );
            }
            eprintln!("database: {}", redact_url(url));
            admin(settings, command).await
        }
    }
}

/// The URL without any password in it, for logs.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

async fn open_api(settings: &Settings) -> anyhow::Result<Arc<NetApi>> {
    let (secret_key, key_source) =
        secret_key::load_or_create(settings.secret_key_file().as_deref())?;
    let core = settings.core(secret_key)?;
    let mailer: Option<Arc<dyn netapi_core::service::Mailer>> = match settings.smtp()? {
        Some(smtp) => Some(Arc::new(
            netapi_server::mail::SmtpMailer::new(&smtp).map_err(anyhow::Error::msg)?,
        )),
        None => None,
    };
    let shared_counters = settings.shared_counters()?;
    let mut options = StoreOptions::new(settings.database_url());
    if let Some(max) = settings.database_max_connections {
        options.max_connections = max;
    }
    let database = redact_url(settings.database_url());
    let mut delay = std::time::Duration::from_millis(500);
    // A database that is not up yet is waited for (a server may start before it); any other
    // failure (a bad URL, a failed migration) ends the program.
    let api = loop {
        let started = async {
            let store = netapi_store::open(&options, true).await?;
            let mut api = NetApi::new(store, Arc::new(SystemClock), core.clone())
                .with_jwks_fetcher(Arc::new(netapi_server::jwks_fetch::HttpJwksFetcher));
            if let Some(mailer) = &mailer {
                api = api.with_mailer(Arc::clone(mailer));
            }
            if let Some(counters) = &shared_counters {
                api = api.with_shared_counters(counters.clone());
            }
            let api = Arc::new(api);
            api.start().await.map_err(|e| match e {
                netapi_core::Error::Unavailable => StartError::Store(
                    netapi_core::StoreError::Unavailable("storage unavailable".to_owned()),
                ),
                netapi_core::Error::Misconfigured(reason) => StartError::WrongKey(reason),
                other => StartError::Store(netapi_core::StoreError::Other(other.to_string())),
            })?;
            Ok::<_, StartError>(api)
        }
        .await;
        match started {
            Ok(api) => break api,
            Err(StartError::WrongKey(reason)) => {
                return Err(secret_key::mismatch(&key_source, &reason));
            }
            Err(StartError::Store(netapi_core::StoreError::Unavailable(reason))) => {
                tracing::warn!(%database, %reason, "waiting for the database");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(10));
            }
            Err(StartError::Store(err)) => {
                return Err(anyhow::anyhow!(
                    "cannot open the database {database}: {err}"
                ));
            }
        }
    };
    Ok(api)
}

/// Why the service did not start: storage (retried while unavailable), or a secret key
/// that is not this database's (never retried).
#[derive(Debug)]
enum StartError {
    Store(netapi_core::StoreError),
    WrongKey(String),
}

impl From<netapi_core::StoreError> for StartError {
    fn from(err: netapi_core::StoreError) -> Self {
        Self::Store(err)
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let tls = match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => Some(netapi_server::listener::tls_acceptor(cert, key)?),
        (None, None) => None,
        _ => bail!("tls_cert and tls_key go together: set both or neither"),
    };
    let api = open_api(&settings).await?;
    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(settings.listen())
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen()))?;
    let address = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    for warning in startup_warnings(&settings, &api.settings().issuer, address, tls.is_some()) {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        listen = %address,
        database = %redact_url(settings.database_url()),
        issuer = %api.settings().issuer,
        "Net API listening on {scheme}://{address} with database {}",
        redact_url(settings.database_url())
    );
    let defaults = netapi_server::HttpOptions::default();
    let options = netapi_server::HttpOptions {
        body_limit: settings.body_limit.unwrap_or(defaults.body_limit),
        max_connections: settings.max_connections.unwrap_or(defaults.max_connections),
        max_connections_per_ip: settings
            .max_connections_per_ip
            .unwrap_or(defaults.max_connections_per_ip),
        request_timeout: settings
            .request_timeout
            .map_or(defaults.request_timeout, std::time::Duration::from_secs),
        header_read_timeout: defaults.header_read_timeout,
        tls,
        trusted_proxies: netapi_server::proxy::TrustedProxies::parse(
            settings.trusted_proxies.as_deref().unwrap_or_default(),
        )
        .map_err(|e| anyhow::anyhow!("trusted_proxies: {e}"))?,
        trace_requests: settings.otlp_endpoint.is_some(),
    };
    netapi_server::serve(listener, api, options, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Set-ups that run but that an operator most likely did not mean, each with what to do.
fn startup_warnings(
    settings: &Settings,
    issuer: &str,
    address: std::net::SocketAddr,
    tls: bool,
) -> Vec<String> {
    let public = !address.ip().is_loopback();
    let mut warnings = Vec::new();
    match settings.pepper.as_deref() {
        Some("") => warnings.push(
            "pepper is set but empty: stored key, token and secret hashes are unkeyed; set \
             pepper to a long random secret (before issuing credentials: changing it later \
             invalidates them)"
                .to_owned(),
        ),
        None if public => warnings.push(format!(
            "no pepper is set while listening on {address}: stored key, token and secret \
             hashes are unkeyed; set pepper to a long random secret (before issuing \
             credentials: changing it later invalidates them)"
        )),
        _ => {}
    }
    let unspecified_host = url::Url::parse(issuer)
        .ok()
        .is_some_and(|url| match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_unspecified(),
            Some(url::Host::Ipv6(ip)) => ip.is_unspecified(),
            _ => false,
        });
    if unspecified_host {
        warnings.push(format!(
            "the issuer {issuer} names an unspecified address, which no client can reach and \
             every token carries; set issuer to the public URL of this server"
        ));
    }
    if !tls && public {
        warnings.push(format!(
            "serving plain HTTP on {address}, beyond loopback: keys, tokens and passwords \
             cross the network in clear unless a TLS-terminating proxy is in front; set \
             tls_cert and tls_key, or listen on 127.0.0.1 behind the proxy"
        ));
    }
    warnings
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed here, before the port opens:
/// a signal that arrives once clients can connect must stop the server gracefully, not
/// meet the default action and kill it mid-request.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let (mut interrupt, mut terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        )
    };
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down: finishing requests in flight");
    })
}

async fn admin(settings: Settings, command: AdminCommand) -> anyhow::Result<()> {
    let api = open_api(&settings).await?;
    let operator = Principal::operator();
    match command {
        AdminCommand::CreateUser {
            email,
            name,
            password_stdin: _,
            admin,
        } => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            let name = name.unwrap_or_else(|| email.split('@').next().unwrap_or("user").to_owned());
            let role = if admin { Role::Admin } else { Role::Member };
            let (user, key, secret) = api
                .register(
                    NewUser {
                        email,
                        password: netapi_core::secret::Secret::new(password),
                        name,
                        role,
                        // The operator vouches for the address of a user made here.
                        email_verified: true,
                        invitation: None,
                    },
                    None,
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "created {} user {} ({})",
                role.as_str(),
                user.email,
                user.id
            );
            println!("API key {} (shown once; store it safely):", key.id);
            println!("{}", secret.expose());
        }
        AdminCommand::ListKeys { email } => {
            let user = user_by_email(&api, &email).await?;
            let as_user = Principal {
                user_id: user.id.clone(),
                ..operator
            };
            let mut page =
                PageRequest::parse("key", Some(100), None).map_err(|e| anyhow::anyhow!("{e}"))?;
            loop {
                let keys = api
                    .list_api_keys(&as_user, page.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                for key in &keys.items {
                    println!(
                        "{}\t{}...{}\t{}\t{}",
                        key.id, key.prefix, key.last_four, key.name, key.scopes
                    );
                }
                match keys.next_page_token {
                    Some(token) => {
                        page = PageRequest::parse("key", Some(100), Some(&token))
                            .map_err(|e| anyhow::anyhow!("{e}"))?;
                    }
                    None => break,
                }
            }
        }
        AdminCommand::RevokeKey { id } => {
            api.revoke_api_key(&operator, &id, None)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("revoked {id}");
        }
        AdminCommand::CreateClient {
            owner_email,
            name,
            redirect_uris,
            grant_types,
            scope,
            public,
            trusted,
        } => {
            let owner = user_by_email(&api, &owner_email).await?;
            let as_owner = Principal {
                user_id: owner.id.clone(),
                role: owner.role,
                scopes: owner.role.max_scopes(),
                ..operator
            };
            let (client, secret) = api
                .create_client(
                    &as_owner,
                    NewClient {
                        name,
                        redirect_uris,
                        grant_types: match grant_types.as_slice() {
                            [] => None,
                            names => {
                                Some(parse_grant_types(names).map_err(|e| anyhow::anyhow!("{e}"))?)
                            }
                        },
                        scope,
                        auth_method: public.then_some(ClientAuthMethod::None),
                        rate_limit: None,
                        trusted,
                        resources: None,
                        id_token_signed_response_alg: None,
                        token_exchange_resources: None,
                        logout: Default::default(),
                        jwks: None,
                        jwks_uri: None,
                        require_par: false,
                        dpop_bound_access_tokens: false,
                    },
                    None,
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("client_id {}", client.id);
            if let Some(secret) = secret {
                println!("client_secret (shown once):");
                println!("{}", secret.expose());
            }
        }
        AdminCommand::ListClients { owner_email } => {
            let caller = match owner_email {
                Some(email) => {
                    let owner = user_by_email(&api, &email).await?;
                    Principal {
                        user_id: owner.id,
                        role: Role::Member,
                        ..Principal::operator()
                    }
                }
                None => Principal::operator(),
            };
            let mut token: Option<String> = None;
            loop {
                let page = PageRequest::parse("cli", Some(100), token.as_deref())
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let clients = api
                    .list_clients(&caller, page)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                for client in &clients.items {
                    let grants: Vec<&str> = client.grant_types.iter().map(|g| g.as_str()).collect();
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        client.id,
                        client.name,
                        client.auth_method.as_str(),
                        grants.join(","),
                        client.owner_id.as_deref().unwrap_or("-")
                    );
                }
                match clients.next_page_token {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
        }
        AdminCommand::SetClientTrusted { id, trusted } => {
            let client = api
                .update_client(
                    &operator,
                    &id,
                    ClientUpdate {
                        trusted: Some(trusted),
                        ..ClientUpdate::default()
                    },
                    None,
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{} trusted {}", client.id, client.trusted);
        }
        AdminCommand::RotateClientSecret { id } => {
            let (client, secret) = api
                .rotate_client_secret(&operator, &id, None)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("new client_secret for {} (shown once):", client.id);
            println!("{}", secret.expose());
        }
        AdminCommand::DeleteClient { id } => {
            api.delete_client(&operator, &id, None)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("deleted {id}");
        }
        AdminCommand::RotateSigningKey => {
            let keys = api
                .rotate_signing_keys()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for key in keys {
                println!(
                    "published signing key {} ({}); it signs from {}",
                    key.kid,
                    key.alg.as_str(),
                    netapi_core::clock::format_rfc3339(key.active_from)
                );
            }
        }
        AdminCommand::ListUsers { json } => {
            let mut token: Option<String> = None;
            loop {
                let page = PageRequest::parse("usr", Some(100), token.as_deref())
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let users = api
                    .list_users(&operator, page)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                for user in &users.items {
                    let state = if user.disabled_at.is_some() {
                        "disabled"
                    } else {
                        "active"
                    };
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({
                                "id": user.id,
                                "email": user.email,
                                "name": user.name,
                                "role": user.role.as_str(),
                                "disabled": user.disabled_at.is_some(),
                                "created_at": netapi_core::clock::format_rfc3339(user.created_at),
                            })
                        );
                    } else {
                        println!(
                            "{}\t{}\t{}\t{}\t{}",
                            user.id,
                            user.email,
                            user.role.as_str(),
                            state,
                            user.name
                        );
                    }
                }
                match users.next_page_token {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
        }
        AdminCommand::SetRole { user, role } => {
            let role = Role::parse(&role)
                .with_context(|| format!("--role must be admin or member, not '{role}'"))?;
            let user = find_user(&api, &user).await?;
            let user = change_user(
                &api,
                &user.id,
                UserUpdate {
                    role: Some(role),
                    ..UserUpdate::default()
                },
            )
            .await?;
            println!("{} is now {}", user.email, user.role.as_str());
        }
        AdminCommand::DisableUser { user } => {
            let user = find_user(&api, &user).await?;
            let user = change_user(
                &api,
                &user.id,
                UserUpdate {
                    disabled: Some(true),
                    ..UserUpdate::default()
                },
            )
            .await?;
            println!(
                "disabled {} ({}): its keys, tokens and sessions are refused",
                user.email, user.id
            );
        }
        AdminCommand::EnableUser { user } => {
            let user = find_user(&api, &user).await?;
            let user = change_user(
                &api,
                &user.id,
                UserUpdate {
                    disabled: Some(false),
                    ..UserUpdate::default()
                },
            )
            .await?;
            println!("enabled {} ({})", user.email, user.id);
        }
        AdminCommand::ResetPassword {
            user,
            password_stdin,
        } => {
            if !password_stdin {
                bail!(
                    "reset-password reads the new password from standard input: pass --password-stdin"
                );
            }
            let user = find_user(&api, &user).await?;
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            let user = change_user(
                &api,
                &user.id,
                UserUpdate {
                    password: Some(netapi_core::secret::Secret::new(password)),
                    ..UserUpdate::default()
                },
            )
            .await?;
            println!(
                "password of {} set; its sessions and refresh tokens are ended",
                user.email
            );
        }
        AdminCommand::DeleteUser { user } => {
            let user = find_user(&api, &user).await?;
            api.delete_user(&operator, &user.id, None)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("deleted {} ({})", user.email, user.id);
        }
        AdminCommand::CreateInvite {
            email,
            role,
            expires_in,
        } => {
            let role = role
                .map(|name| {
                    Role::parse(&name)
                        .with_context(|| format!("--role must be admin or member, not '{name}'"))
                })
                .transpose()?;
            let expires_in = expires_in.as_deref().map(parse_duration).transpose()?;
            let (invitation, token) = api
                .create_invitation(
                    &operator,
                    NewInvitation {
                        email,
                        role,
                        expires_in,
                    },
                    None,
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "invitation {} for {} as {}, valid until {}",
                invitation.id,
                invitation.email.as_deref().unwrap_or("any email"),
                invitation.role.as_str(),
                netapi_core::clock::format_rfc3339(invitation.expires_at)
            );
            println!("link (shown once; send it to the invitee):");
            println!(
                "{}/register?invitation={}",
                api.settings().issuer.trim_end_matches('/'),
                token.expose()
            );
        }
        AdminCommand::CreateRegistrationToken { expires_in_days } => {
            let expires_in = expires_in_days
                .map(|days| {
                    days.checked_mul(86_400)
                        .filter(|_| days > 0)
                        .context("--expires-in-days must be a positive number of days")
                })
                .transpose()?;
            let (token, secret) = api
                .create_registration_token(&operator, expires_in, None)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "registration token {} for one registration at {}/oauth/register, valid until {}",
                token.id,
                api.settings().issuer.trim_end_matches('/'),
                netapi_core::clock::format_rfc3339(token.expires_at)
            );
            println!("token (shown once; send it as Authorization: Bearer <token>):");
            println!("{}", secret.expose());
        }
    }
    Ok(())
}

async fn find_user(api: &NetApi, user: &UserRef) -> anyhow::Result<netapi_core::model::User> {
    match (&user.email, &user.id) {
        (Some(email), _) => user_by_email(api, email).await,
        (None, Some(id)) => api
            .store()
            .get_user(id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .with_context(|| format!("no user with the id {id}")),
        (None, None) => bail!("name the user with --email or --id"),
    }
}

async fn change_user(
    api: &NetApi,
    id: &str,
    update: UserUpdate,
) -> anyhow::Result<netapi_core::model::User> {
    api.update_user(&Principal::operator(), id, update, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

async fn user_by_email(api: &NetApi, email: &str) -> anyhow::Result<netapi_core::model::User> {
    api.store()
        .get_user_by_email(&email.trim().to_lowercase())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_context(|| format!("no user with the email {email}"))
}
