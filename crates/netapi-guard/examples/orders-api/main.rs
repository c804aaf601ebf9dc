//! A small API protected by netapi-guard:
//!
//! ```sh
//! cargo run --release -p netapi-guard --example orders-api -- \
//!   --issuer http://127.0.0.1:8080 --resource https://orders.example.com \
//!   --listen 127.0.0.1:3000 --client-id cli_... --client-secret napcs_...
//! ```
//!
//! Without `--client-id` and `--client-secret` it accepts access tokens only.

mod app;

use clap::Parser;
use netapi_guard::{Guard, GuardConfig};

/// Serves `GET /orders` (orders:read) and `POST /orders` (orders:write) behind Net API.
#[derive(Debug, Parser)]
struct Args {
    /// The Net API server's issuer, e.g. `https://auth.example.com`.
    #[arg(long)]
    issuer: String,
    /// The resource identifier of this API in Net API.
    #[arg(long)]
    resource: String,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
    /// An OAuth client listing the resource, to introspect API keys.
    #[arg(long, requires = "client_secret")]
    client_id: Option<String>,
    /// Its secret (also read from `ORDERS_CLIENT_SECRET`).
    #[arg(
        long,
        env = "ORDERS_CLIENT_SECRET",
        requires = "client_id",
        hide_env_values = true
    )]
    client_secret: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut config = GuardConfig::new(args.issuer, args.resource);
    if let (Some(id), Some(secret)) = (args.client_id, args.client_secret) {
        config = config.introspection(id, secret);
    }
    let guard = Guard::discover(config).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("orders-api listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app::router(guard)).await?;
    Ok(())
}
