//! SQLite: the embedded default. WAL so readers never wait for the writer, a busy timeout
//! so writers queue instead of failing, `BEGIN IMMEDIATE` for every read-then-write
//! transaction, and foreign keys on (SQLite's default is off).

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqlitePool, Transaction};
use std::str::FromStr;
use std::time::Duration;

use crate::{StoreOptions, migrate};
use netapi_core::StoreError;

type Db = sqlx::Sqlite;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file the URL names.
    pub async fn open(options: &StoreOptions) -> Result<Self, StoreError> {
        let in_memory = options.url.contains(":memory:");
        let connect = SqliteConnectOptions::from_str(&options.url)
            .map_err(|e| StoreError::Other(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL under WAL: a committed transaction survives the process being killed;
            // only an operating-system crash or power loss may lose the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            // An in-memory database exists per connection: keep exactly one.
            .max_connections(if in_memory {
                1
            } else {
                options.max_connections.max(1)
            })
            .min_connections(usize::from(in_memory) as u32)
            .idle_timeout(if in_memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if in_memory {
                None
            } else {
                Some(Duration::from_secs(3600))
            })
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect)
            .await
            .map_err(map_err)?;
        Ok(Self { pool })
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Db>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        apply_migrations(&mut tx, migrate::SQLITE).await?;
        tx.commit().await.map_err(map_err)
    }
}

impl_store!(SqliteStore, sqlx::sqlite::SqliteRow);
