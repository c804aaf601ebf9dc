//! PostgreSQL: for several `netapi serve` processes on one database. Write transactions
//! start with a conditional `UPDATE` (or take row locks through it), so READ COMMITTED is
//! enough and no serialization failure can reach a client.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Transaction};
use std::str::FromStr;
use std::time::Duration;

use crate::{StoreOptions, migrate};
use netapi_core::StoreError;

type Db = sqlx::Postgres;

/// Lock id that serialises `netapi migrate` across processes.
const MIGRATION_LOCK: i64 = 0x6e65_7461_7069;

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
}

impl PgStore {
    /// Connects a pool to the database the URL names. Connections are made lazily, so a
    /// server starts (and reports not ready) while the database is down.
    pub async fn open(options: &StoreOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(&options.url)
            .map_err(|e| StoreError::Other(format!("bad PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(3))
            .idle_timeout(Some(Duration::from_secs(600)))
            .connect_with(connect)
            .await
            .map_err(map_err)?;
        Ok(Self { pool })
    }

    /// PostgreSQL locks rows, not the database: writes share the pool.
    fn writer(&self) -> &sqlx::PgPool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Db>, StoreError> {
        self.pool.begin().await.map_err(map_err)
    }

    /// Applies pending migrations; safe to run from several processes at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        apply_migrations(&mut tx, migrate::POSTGRES).await?;
        tx.commit().await.map_err(map_err)
    }
}

impl_store!(PgStore, sqlx::postgres::PgRow);
