//! `netapi-bench-baseline`: the least an authenticating HTTP server can do, as the yardstick
//! of `bench/run.sh` (issues 13 and 18), on the same axum and tokio as Net API.
//!
//! - Any path: takes the bearer value, hashes it with SHA-256, looks the digest up in a
//!   `HashMap` and answers 200 (401 when it is not there). Forward auth does that and
//!   everything a real decision needs on top.
//! - `POST /oauth/token` (with `--client-id` and `--client-secret`): parses the form, checks
//!   the client's Basic credentials by SHA-256, and signs an access token with the claims and
//!   Ed25519 signature Net API's client-credentials grant uses.
//! - `POST /oauth/introspect`: the same client check, then the token's claims from a map by
//!   the token's SHA-256 (its signature verified on the first sight only, as Net API's cache
//!   does), its expiry, and the claims back as JSON with `active: true`.
//!
//! The ratio of a Net API row to its bare row is how much Net API's own work costs.

use anyhow::Context;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use clap::Parser;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(about = "Bare axum baseline for bench/run.sh")]
struct Args {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    /// A bearer value to accept (repeat for more)
    #[arg(long = "key", required = true)]
    keys: Vec<String>,
    /// The client that may call /oauth/token and /oauth/introspect
    #[arg(long, requires = "client_secret")]
    client_id: Option<String>,
    /// Its secret
    #[arg(long)]
    client_secret: Option<String>,
}

struct Bare {
    /// SHA-256 of each accepted bearer value, to its position on the command line.
    keys: HashMap<[u8; 32], usize>,
    /// The client's id and the SHA-256 of its secret.
    client: Option<(String, [u8; 32])>,
    signing: SigningKey,
    /// The claims of tokens whose signature was verified, by the token's SHA-256.
    verified: std::sync::RwLock<HashMap<[u8; 32], Arc<Claims>>>,
}

async fn check(State(bare): State<Arc<Bare>>, headers: HeaderMap) -> StatusCode {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        Some(value)
            if bare
                .keys
                .contains_key(&<[u8; 32]>::from(Sha256::digest(value))) =>
        {
            StatusCode::OK
        }
        _ => StatusCode::UNAUTHORIZED,
    }
}

/// The id of the client whose Basic credentials `headers` carry, if they are right.
fn client_of(bare: &Bare, headers: &HeaderMap) -> Option<String> {
    let (id, secret_hash) = bare.client.as_ref()?;
    let encoded = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
    let (given_id, given_secret) = decoded.split_once(':')?;
    (given_id == id && <[u8; 32]>::from(Sha256::digest(given_secret)) == *secret_hash)
        .then(|| id.clone())
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    scope: Option<String>,
}

/// The claims of Net API's client-credentials access token.
#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    client_id: String,
    scope: String,
    jti: String,
    iat: i64,
    exp: i64,
}

const TTL: i64 = 900;
const ISSUER: &str = "http://bare.bench";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

async fn token(
    State(bare): State<Arc<Bare>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let Some(client_id) = client_of(&bare, &headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    if form.grant_type != "client_credentials" {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let iat = now();
    let claims = Claims {
        iss: ISSUER.to_owned(),
        sub: client_id.clone(),
        aud: ISSUER.to_owned(),
        client_id,
        scope: form.scope.unwrap_or_else(|| "users:read".to_owned()),
        jti: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 15]>()),
        iat,
        exp: iat + TTL,
    };
    let header = serde_json::json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": "bare" });
    let (Ok(header), Ok(body)) = (serde_json::to_vec(&header), serde_json::to_vec(&claims)) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut jwt = URL_SAFE_NO_PAD.encode(header);
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(body));
    let signature = bare.signing.sign(jwt.as_bytes());
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(signature.to_bytes()));
    Json(serde_json::json!({
        "access_token": jwt,
        "token_type": "Bearer",
        "expires_in": TTL,
        "scope": claims.scope,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct IntrospectForm {
    token: String,
}

/// The claims of `jwt` if this server signed it and it has not expired.
fn verified(bare: &Bare, jwt: &str) -> Option<Arc<Claims>> {
    let digest: [u8; 32] = Sha256::digest(jwt).into();
    let known = bare
        .verified
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&digest)
        .cloned();
    let claims = match known {
        Some(claims) => claims,
        None => {
            let claims = Arc::new(signed_claims(bare, jwt)?);
            bare.verified
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(digest, Arc::clone(&claims));
            claims
        }
    };
    (claims.exp > now()).then_some(claims)
}

/// The claims of `jwt` if its signature is this server's.
fn signed_claims(bare: &Bare, jwt: &str) -> Option<Claims> {
    let (signed, signature) = jwt.rsplit_once('.')?;
    let (_, body) = signed.split_once('.')?;
    let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).ok()?).ok()?;
    bare.signing
        .verifying_key()
        .verify(signed.as_bytes(), &signature)
        .ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
}

async fn introspect(
    State(bare): State<Arc<Bare>>,
    headers: HeaderMap,
    Form(form): Form<IntrospectForm>,
) -> Response {
    if client_of(&bare, &headers).is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match verified(&bare, &form.token) {
        Some(claims) => Json(serde_json::json!({
            "active": true,
            "iss": claims.iss,
            "sub": claims.sub,
            "aud": claims.aud,
            "client_id": claims.client_id,
            "scope": claims.scope,
            "jti": claims.jti,
            "iat": claims.iat,
            "exp": claims.exp,
            "token_type": "Bearer",
        }))
        .into_response(),
        None => Json(serde_json::json!({ "active": false })).into_response(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bare = Arc::new(Bare {
        keys: args
            .keys
            .iter()
            .enumerate()
            .map(|(i, key)| (Sha256::digest(key).into(), i))
            .collect(),
        client: args
            .client_id
            .zip(args.client_secret)
            .map(|(id, secret)| (id, Sha256::digest(secret).into())),
        signing: SigningKey::generate(&mut rand::rngs::OsRng),
        verified: std::sync::RwLock::default(),
    });
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let app = Router::new()
        .route("/oauth/token", post(token))
        .route("/oauth/introspect", post(introspect))
        .fallback(check)
        .with_state(bare);
    axum::serve(listener, app).await?;
    Ok(())
}
