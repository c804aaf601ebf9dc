//! Python's Authlib, real and unmodified (the version pinned in
//! tests/clients/python/requirements.txt), against the real `netapi` binary: private_key_jwt
//! client authentication (RFC 7523), dynamic client registration (RFC 7591, RFC 7592) and token
//! exchange (RFC 8693). Each test prepares what its script needs (users, clients, resources, a
//! user's token through the pages) and runs the script, which prints `... passed` or fails
//! with its reason. On SQLite, and on PostgreSQL too when `NETAPI_TEST_POSTGRES_URL` is set.
//! Skipped, with a message, when `python3` cannot import the libraries (`pip install -r
//! tests/clients/python/requirements.txt`).

use super::{Server, admin, create_user};
use netapi_testkit::{
    Backend, Browser, Pkce, approved_code, create_client, drop_database, exchange_code, free_port,
    fresh_database,
};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;

fn script_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients/python")
}

/// Whether `python3` has the libraries; says why not when it has not.
fn python_ready() -> bool {
    let imports = Command::new("python3")
        .args(["-c", "import authlib, joserfc, requests"])
        .output();
    match imports {
        Ok(output) if output.status.success() => true,
        _ => {
            eprintln!(
                "skipped: python3 cannot import authlib, joserfc and requests \
                 (pip install -r tests/clients/python/requirements.txt)"
            );
            false
        }
    }
}

/// A fresh SQLite database, and a fresh PostgreSQL one when configured.
async fn databases() -> Vec<String> {
    let mut out = vec![fresh_database(Backend::Sqlite).await.unwrap()];
    out.extend(fresh_database(Backend::Postgres).await);
    out
}

/// A server whose issuer is its own address, as a client reaching it sees it (assertions
/// name the endpoint they are sent to).
async fn start(db: &str) -> Server {
    start_with(db, |_| {}).await
}

async fn start_with(db: &str, adjust: impl FnOnce(&mut Command)) -> Server {
    let port = free_port();
    Server::start_as(db, port, &format!("http://127.0.0.1:{port}"), adjust).await
}

/// Runs `script` with `BASE` and `env`; fails the test with the script's output unless it
/// exits 0 and says it passed.
fn run_script(script: &str, server: &Server, env: &[(&str, &str)]) {
    let output = Command::new("python3")
        .arg(script_dir().join(script))
        .current_dir(script_dir())
        .env("BASE", &server.base)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.lines().any(|line| line.ends_with(" passed")),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn finish(db: &str, server: Server) {
    drop(server);
    drop_database(db).await;
}

#[tokio::test]
async fn python_authlib_authenticates_with_private_key_jwt() {
    if !python_ready() {
        return;
    }
    for db in databases().await {
        let key = create_user(&db, "service-owner@example.com", false);
        let server = start(&db).await;
        run_script("private_key_jwt.py", &server, &[("USER_KEY", &key)]);
        finish(&db, server).await;
    }
}

#[tokio::test]
async fn python_registers_reads_updates_and_deletes_a_client() {
    if !python_ready() {
        return;
    }
    for db in databases().await {
        let key = create_user(&db, "developer@example.com", false);
        let server = start(&db).await;
        run_script("registration.py", &server, &[("USER_KEY", &key)]);
        finish(&db, server).await;
    }
}

#[tokio::test]
async fn python_registers_clients_without_owner_in_admin_and_open_modes() {
    if !python_ready() {
        return;
    }
    for db in databases().await {
        create_user(&db, "ops@example.com", true);
        let made = admin(&db, &["create-registration-token"]);
        let initial_token = made.lines().last().unwrap();
        for mode in ["admin", "open"] {
            let server = start_with(&db, |command| {
                command.env("NETAPI_CLIENT_REGISTRATION", mode);
            })
            .await;
            run_script(
                "registration.py",
                &server,
                &[("MODE", mode), ("INITIAL_TOKEN", initial_token)],
            );
            drop(server);
        }
        drop_database(&db).await;
    }
}

async fn post_json(server: &Server, bearer: &str, path: &str, body: Value) -> Value {
    let response = server
        .http
        .post(format!("{}{path}", server.base))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

#[tokio::test]
async fn python_authlib_exchanges_a_users_token() {
    if !python_ready() {
        return;
    }
    const ORDERS: &str = "https://orders.example.com";
    const INVOICES: &str = "https://invoices.example.com";
    const VAULT: &str = "https://vault.example.com";
    const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
    for db in databases().await {
        let admin_key = create_user(&db, "ops@example.com", true);
        let ada_key = create_user(&db, "ada@example.com", false);
        let server = start(&db).await;
        for (identifier, scopes) in [
            (ORDERS, vec!["orders:read", "invoices:read"]),
            (INVOICES, vec!["invoices:read", "invoices:write"]),
            (VAULT, vec!["invoices:read"]),
        ] {
            let scopes: Vec<Value> = scopes
                .into_iter()
                .map(|name| json!({"name": name, "description": name}))
                .collect();
            post_json(
                &server,
                &admin_key,
                "/v1/resources",
                json!({"identifier": identifier, "name": identifier, "scopes": scopes,
                       "access_token_ttl": 300}),
            )
            .await;
        }
        let service = create_client(
            &server,
            &admin_key,
            json!({"client_name": "Orders service", "grant_types": [GRANT],
                   "resources": [ORDERS], "scope": "",
                   "token_exchange_resources": [INVOICES]}),
        )
        .await;
        let reader = create_client(
            &server,
            &admin_key,
            json!({"client_name": "Invoices API", "grant_types": ["client_credentials"],
                   "resources": [INVOICES], "scope": ""}),
        )
        .await;

        // Ada signs in to her shop app, which asks for a token for the Orders API.
        let redirect_uri = "http://127.0.0.1/callback";
        let app = create_client(
            &server,
            &ada_key,
            json!({"client_name": "Ada's shop app", "redirect_uris": [redirect_uri],
                   "resources": [ORDERS], "scope": "orders:read invoices:read"}),
        )
        .await;
        let app_id = app["client_id"].as_str().unwrap();
        let pkce = Pkce::random();
        let mut authorize =
            reqwest::Url::parse(&format!("{}/oauth/authorize", server.base)).unwrap();
        authorize
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", app_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "orders:read invoices:read")
            .append_pair("resource", ORDERS)
            .append_pair("state", "st4te")
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256");
        let mut browser = Browser::new();
        let code =
            approved_code(&server, &mut browser, authorize.as_str(), "ada@example.com").await;
        let tokens = exchange_code(
            &server,
            app_id,
            app["client_secret"].as_str(),
            &code,
            Some(redirect_uri),
            Some(&pkce.verifier),
        )
        .await;
        let me: Value = server
            .http
            .get(format!("{}/v1/users/me", server.base))
            .bearer_auth(&ada_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();

        run_script(
            "token_exchange.py",
            &server,
            &[
                ("SERVICE_ID", service["client_id"].as_str().unwrap()),
                ("SERVICE_SECRET", service["client_secret"].as_str().unwrap()),
                ("READER_ID", reader["client_id"].as_str().unwrap()),
                ("READER_SECRET", reader["client_secret"].as_str().unwrap()),
                ("SUBJECT_TOKEN", tokens["access_token"].as_str().unwrap()),
                ("USER_ID", me["id"].as_str().unwrap()),
                ("ORDERS", ORDERS),
                ("INVOICES", INVOICES),
                ("VAULT", VAULT),
            ],
        );
        finish(&db, server).await;
    }
}
