//! JavaScript clients from npm (`tests/clients/node`, exact versions in its lock file):
//! `openid-client` for OpenID Connect (code flow with PKCE, RS256 ID tokens, UserInfo,
//! refresh, PAR) and `oauth4webapi` for the device grant with DPoP. Skipped with a message
//! where `node` or the packages are missing; `.ci/run` installs them (`npm ci`).
//!
//! Each script talks to the test over a line protocol (`tests/clients/node/protocol.mjs`):
//! it prints `AUTHORIZE <url>` or `USER_CODE <code>` when a person must act, and the test
//! answers with the URL the browser was sent back to, or `APPROVED`; `DONE <json>` ends it.

use crate::{Server, create_user};
use netapi_testkit::device::approve_code;
use netapi_testkit::{
    Browser, Site, SqliteFile, approve, create_client, free_port, location_of, sign_in,
};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const EMAIL: &str = "ada@example.com";
const REDIRECT_URI: &str = "https://app.example.com/callback";

/// The scripts' directory, or `None` (after saying why) when they cannot run here.
fn scripts(package: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients/node");
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|output| output.status.success()) {
        eprintln!("skipped: needs `node` on the PATH");
        return None;
    }
    if !dir.join("node_modules").join(package).exists() {
        eprintln!("skipped: needs `npm ci` in tests/clients/node (for {package})");
        return None;
    }
    Some(dir)
}

/// A server whose issuer is its own address, as the libraries require: each compares the
/// discovered `issuer` with the one it was given and then uses the discovered endpoints. Its
/// database file is removed when the returned [`SqliteFile`] is dropped: keep it bound.
async fn server(adjust: impl FnOnce(&mut Command)) -> (Server, String, String, SqliteFile) {
    let db = SqliteFile::new();
    let admin_key = create_user(&db, EMAIL, true);
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let server = Server::start_as(&db, port, &issuer, adjust).await;
    (server, issuer, admin_key, db)
}

/// Runs `script` of `dir` with `env`, answering its requests with `person(kind, value)`;
/// checks that it passed and returns what its `DONE` line reported.
async fn run(
    dir: &std::path::Path,
    script: &str,
    env: &[(&str, &str)],
    mut person: impl AsyncFnMut(&str, &str) -> String,
) -> Value {
    let mut child = Command::new("node")
        .arg(dir.join(script))
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut stdin = child.stdin.take().unwrap();
    let mut requests = Vec::new();
    let mut found = None;
    // The script waits on the server, never on this test, while this blocks on its output;
    // it gives up by itself after two minutes (protocol.mjs), so this cannot hang.
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let (kind, value) = line.split_once(' ').unwrap_or((&line, ""));
        match kind {
            "AUTHORIZE" | "USER_CODE" => {
                requests.push(kind.to_owned());
                let answer = person(kind, value).await;
                writeln!(stdin, "{answer}").unwrap();
            }
            "DONE" => found = Some(serde_json::from_str::<Value>(value).unwrap()),
            _ => panic!("{script} printed an unexpected line: {line}"),
        }
    }
    let status = child.wait().unwrap();
    let errors = errors.join().unwrap();
    assert!(
        status.success(),
        "{script} failed ({status}) after {requests:?}:\n{errors}"
    );
    let found = found.unwrap_or_else(|| panic!("{script} ended without DONE:\n{errors}"));
    eprintln!("{script} passed: {found}");
    found
}

/// The id of the user that `key` belongs to.
async fn user_id(server: &Server, key: &str) -> String {
    let me: Value = server
        .http()
        .get(server.url("/v1/users/me"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    me["id"].as_str().unwrap().to_owned()
}

/// `openid-client` v6: discovery; the authorization code flow with PKCE, its RS256 ID token
/// (the client registered no `id_token_signed_response_alg`) verified by the library
/// against the JWKS, claims included; UserInfo; refresh; introspection and revocation; a
/// pushed authorization request (`buildAuthorizationUrlWithPAR`); and the library refusing
/// an ID token with another nonce or a broken signature. The person signs in and approves
/// once.
#[tokio::test]
async fn openid_client_code_flow_par_rs256_id_token_userinfo_and_refresh() {
    let Some(dir) = scripts("openid-client") else {
        return;
    };
    let (server, issuer, admin_key, _database) = server(|_| {}).await;
    let client = create_client(
        &server,
        &admin_key,
        json!({
            "client_name": "openid-client app",
            "redirect_uris": [REDIRECT_URI],
            "scope": "openid profile email users:read",
        }),
    )
    .await;
    let client_id = client["client_id"].as_str().unwrap();
    // One person in one browser: the first request signs in and consents; the later ones
    // (same client, same scopes) come straight back with a code, as a signed-in person's do.
    let mut browser = Browser::new();
    let mut signed_in = false;
    let found = run(
        &dir,
        "openid-client.mjs",
        &[
            ("ISSUER", &issuer),
            ("CLIENT_ID", client_id),
            ("CLIENT_SECRET", client["client_secret"].as_str().unwrap()),
            ("REDIRECT_URI", REDIRECT_URI),
            ("EMAIL", EMAIL),
        ],
        async |kind, url| {
            assert_eq!(kind, "AUTHORIZE");
            assert!(
                url.starts_with(&format!("{issuer}/oauth/authorize?")),
                "{url}"
            );
            let back = if signed_in {
                browser.get(&server, url).await
            } else {
                signed_in = true;
                let consent = sign_in(&server, &mut browser, url, EMAIL).await;
                assert!(consent.contains("openid-client app"), "{consent}");
                approve(&server, &mut browser, &consent).await
            };
            assert_eq!(back.status(), reqwest::StatusCode::SEE_OTHER);
            let callback = location_of(&back);
            assert!(
                callback.starts_with(&format!("{REDIRECT_URI}?")),
                "{callback}"
            );
            callback
        },
    )
    .await;
    assert_eq!(found["sub"], user_id(&server, &admin_key).await);
    assert_eq!(found["id_token_alg"], "RS256");
    assert_eq!(found["email"], EMAIL);
    assert_eq!(found["nonce_error"], "OAUTH_JWT_CLAIM_COMPARISON_FAILED");
    assert!(
        found["signature_error"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{found}"
    );
    assert!(server.stop().success());
}

/// `oauth4webapi`: the device grant with a DPoP key, on a server started with `flags`:
/// `authorization_pending` before the person approves at `/device`, then DPoP-bound tokens
/// (and an RS256 ID token the library validates); `/v1/users/me` through the library's
/// protected-resource request with `Authorization: DPoP` and a proof, and refused as a
/// plain bearer token; a refresh refused without a proof or with another key's, and then
/// done with a proof of the key. Returns what the script reported.
async fn device_flow_with_dpop(dir: &std::path::Path, flags: &[&str], expect_nonce: bool) -> Value {
    let (server, issuer, admin_key, _database) = server(|command| {
        command.args(flags);
    })
    .await;
    let client = create_client(
        &server,
        &admin_key,
        json!({
            "client_name": "oauth4webapi CLI",
            "token_endpoint_auth_method": "none",
            "grant_types": [DEVICE_GRANT, "refresh_token"],
            "scope": "openid users:read",
        }),
    )
    .await;
    let found = run(
        dir,
        "oauth4webapi.mjs",
        &[
            ("ISSUER", &issuer),
            ("CLIENT_ID", client["client_id"].as_str().unwrap()),
            ("EMAIL", EMAIL),
            ("EXPECT_NONCE", if expect_nonce { "1" } else { "0" }),
        ],
        async |kind, code| {
            assert_eq!(kind, "USER_CODE");
            let page = approve_code(&server, EMAIL, code, "approve").await;
            assert!(page.contains("is now connected"), "{page}");
            "APPROVED".to_owned()
        },
    )
    .await;
    assert_eq!(found["token_type"], "dpop");
    assert_eq!(found["user"], user_id(&server, &admin_key).await);
    assert_eq!(found["bearer_error"], "invalid_token");
    assert!(server.stop().success());
    found
}

#[tokio::test]
async fn oauth4webapi_device_flow_with_dpop_bound_tokens() {
    let Some(dir) = scripts("oauth4webapi") else {
        return;
    };
    let found = device_flow_with_dpop(&dir, &[], false).await;
    assert_eq!(found["nonce_challenges"], 0);
    assert_eq!(found["resource_nonce"], false);
}

/// As above with `require_dpop_nonce`: the library meets `use_dpop_nonce` wherever its DPoP
/// handle has no nonce yet (a 400 at the token endpoint, a 401 challenge at `/v1`), keeps the
/// `DPoP-Nonce` the server sent, and the script retries once, as the library's documentation
/// says a client should (`isDPoPNonceError`).
#[tokio::test]
async fn oauth4webapi_device_flow_with_dpop_and_server_nonces() {
    let Some(dir) = scripts("oauth4webapi") else {
        return;
    };
    let found = device_flow_with_dpop(&dir, &["--require-dpop-nonce", "true"], true).await;
    // The first poll, the new handle's request to /v1, the other key's refresh.
    assert_eq!(found["nonce_challenges"], 3);
    assert_eq!(found["resource_nonce"], true);
}
