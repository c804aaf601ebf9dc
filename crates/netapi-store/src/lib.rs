//! The [`Store`] of Net API on SQLite (embedded, the default) and PostgreSQL (several
//! instances). Both run the same SQL, written once in [`tables`] (one file per table) over
//! the small [`backend`] interface; what differs (connecting, where writes go, how a write
//! transaction begins, migrating) lives in [`sqlite`] and [`postgres`], and [`store`]
//! forwards the [`Store`] trait to the functions of [`tables`].

mod backend;
mod codec;
mod copy;
mod migrate;
mod postgres;
mod sqlite;
mod store;
mod tables;

pub use copy::copy_sqlite_to_postgres;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use netapi_core::StoreError;
use netapi_core::store::Store;
use std::sync::Arc;

/// How to open storage.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://path`, `sqlite:///abs/path`, `sqlite::memory:` or `postgres://...`.
    pub url: String,
    /// Most connections in the pool.
    pub max_connections: u32,
}

impl StoreOptions {
    /// Options with a default pool size.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
        }
    }
}

/// Opens (and migrates, when `migrate` is set) the store the URL names.
pub async fn open(options: &StoreOptions, migrate: bool) -> Result<Arc<dyn Store>, StoreError> {
    let url = options.url.as_str();
    if url.starts_with("sqlite:") {
        let store = SqliteStore::open(options).await?;
        if migrate {
            store.migrate().await?;
        }
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PgStore::open(options).await?;
        if migrate {
            store.migrate().await?;
        }
        Ok(Arc::new(store))
    } else {
        Err(StoreError::Other(unknown_scheme(url)))
    }
}

/// What is wrong with a `database_url` of neither backend: a plain file path gets the
/// `sqlite:` URL that names it (any other URL is not echoed, as it may carry a password).
fn unknown_scheme(url: &str) -> String {
    const MUST: &str = "database_url must start with sqlite: or postgres://";
    let path = url.trim();
    if path.is_empty() || path.contains("://") || path.contains('@') {
        return format!("{MUST}.");
    }
    let suggestion = if path.starts_with('/') {
        format!("sqlite://{path}")
    } else {
        format!("sqlite://{}", path.trim_start_matches("./"))
    };
    format!("{MUST}; for a SQLite database in the file {path}, use database_url = \"{suggestion}\"")
}

/// Maps a driver error: unique violations to `Conflict`, connection trouble to
/// `Unavailable`, the rest to `Other`.
pub(crate) fn map_err(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            // PostgreSQL names the constraint; SQLite names the column in its message.
            let violated = db
                .constraint()
                .or_else(|| db.message().strip_prefix("UNIQUE constraint failed: "));
            match violated {
                Some("users_email_key" | "users.email") => StoreError::Conflict("email"),
                Some("resources_identifier_key" | "resources.identifier") => {
                    StoreError::Conflict("identifier")
                }
                _ => StoreError::Conflict("record"),
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.to_string()),
        sqlx::Error::Database(db)
            if db
                .code()
                .is_some_and(|c| c.starts_with("08") || c == "57P01" || c == "57P03") =>
        {
            StoreError::Unavailable(err.to_string())
        }
        // PostgreSQL serialization failure and deadlock; SQLite busy and locked.
        sqlx::Error::Database(db)
            if db
                .code()
                .is_some_and(|c| matches!(c.as_ref(), "40001" | "40P01" | "5" | "6" | "517")) =>
        {
            StoreError::Contention(err.to_string())
        }
        _ => StoreError::Other(err.to_string()),
    }
}

/// Runs a transaction again (up to four more times, with a short growing pause) when it lost
/// to a concurrent one; any other outcome is returned as it is.
pub(crate) async fn retry_contention<T, F, Fut>(mut transaction: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0u32;
    loop {
        match transaction().await {
            Err(StoreError::Contention(reason)) if attempt < 4 => {
                attempt += 1;
                tracing::debug!(attempt, %reason, "transaction retried after contention");
                tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
            }
            outcome => return outcome,
        }
    }
}
