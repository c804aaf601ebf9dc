//! `netapi-bench-baseline`: the least an authenticating HTTP server can do, as the yardstick
//! of `bench/run.sh`'s forward-auth rows (issue 13). It takes the bearer value, hashes it with
//! SHA-256, looks the digest up in a `HashMap` and answers 200 (401 when it is not there), on
//! the same axum and tokio as Net API. Forward auth does that and everything a real decision
//! needs on top; the ratio of the two is how much that costs.

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use clap::Parser;
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
}

/// SHA-256 of each accepted bearer value, to its position on the command line.
type Keys = Arc<HashMap<[u8; 32], usize>>;

async fn check(State(keys): State<Keys>, headers: HeaderMap) -> StatusCode {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        Some(value) if keys.contains_key(&<[u8; 32]>::from(Sha256::digest(value))) => {
            StatusCode::OK
        }
        _ => StatusCode::UNAUTHORIZED,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let keys: Keys = Arc::new(
        args.keys
            .iter()
            .enumerate()
            .map(|(i, key)| (Sha256::digest(key).into(), i))
            .collect(),
    );
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let app = Router::new().fallback(check).with_state(keys);
    axum::serve(listener, app).await?;
    Ok(())
}
