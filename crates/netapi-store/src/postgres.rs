//! PostgreSQL: for several `netapi serve` processes on one database. Write transactions
//! start with a conditional `UPDATE` (or take row locks through it), so READ COMMITTED is
//! enough and no serialization failure can reach a client.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;

use crate::backend::{Arg, Backend, Exec, RowType, arguments};
use crate::{StoreOptions, map_err, migrate};
use netapi_core::StoreError;
use netapi_core::store::StoreResult;

/// Lock id that serialises `netapi migrate` across processes.
const MIGRATION_LOCK: i64 = 0x6e65_7461_7069;

/// A pooled connection idle this long is pinged before it is used again.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    /// Refresh-token rotations waiting for a group commit.
    pub(crate) rotations: std::sync::Arc<crate::tables::refresh_tokens::RotationQueue>,
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
            // sqlx pings a connection when it comes back to the pool and, by default, again
            // before handing it out: a round trip on every acquire. Only a connection that
            // has sat idle for a while (long enough for a restart, a failover or a firewall
            // to have dropped it) is pinged before use.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_WHEN_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(connect)
            .await
            .map_err(map_err)?;
        Ok(Self {
            pool,
            rotations: std::sync::Arc::default(),
        })
    }

    /// Applies pending migrations (see [`crate::migrate`]); safe to run from several
    /// processes at once: they take turns on one advisory lock, which processes of earlier
    /// releases take too.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = migrate::postgres();
        let mut tx = self.begin_write().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        migrate::run(&mut *tx, &migrator, COUNT_TABLES).await?;
        tx.commit().await.map_err(map_err)
    }
}

/// The channel migration 0024's trigger announces every new invalidation on.
const INVALIDATION_CHANNEL: &str = "netapi_invalidations";

impl PgStore {
    /// LISTENs for new invalidations on a connection of its own (taken from the pool and
    /// kept), calling `notice` at the start, after every reconnection (notifications sent
    /// while the connection was down are lost: the caller reads the table then) and on each
    /// notification. Runs until reconnecting fails.
    pub(crate) async fn follow_invalidations(
        &self,
        notice: &(dyn Fn() + Send + Sync),
    ) -> StoreResult<bool> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool)
            .await
            .map_err(map_err)?;
        listener
            .listen(INVALIDATION_CHANNEL)
            .await
            .map_err(map_err)?;
        notice();
        loop {
            match listener.try_recv().await.map_err(map_err)? {
                Some(_) => notice(),
                None => {
                    // Lost and already reconnected (and listening again): catch up.
                    tracing::info!("invalidation listener reconnected");
                    notice();
                }
            }
        }
    }
}

const COUNT_TABLES: &str = "SELECT COUNT(*) FROM pg_catalog.pg_tables \
     WHERE schemaname = current_schema() AND tablename = $1";

/// PostgreSQL locks rows, not the database: writes share the pool.
impl Backend for PgStore {
    type Db = Postgres;

    fn read_pool(&self) -> &PgPool {
        &self.pool
    }

    fn write_pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin_write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(map_err)
    }

    async fn begin_exclusive(&self, topic: i64) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.begin_write().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(topic)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        Ok(tx)
    }
}

impl Exec for PgConnection {
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<u64> {
        let done = sqlx::query_with(sql, arguments::<Postgres>(args)?)
            .execute(self)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn fetch_optional<T: RowType>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> StoreResult<Option<T>> {
        sqlx::query_as_with(sql, arguments::<Postgres>(args)?)
            .fetch_optional(self)
            .await
            .map_err(map_err)
    }

    async fn fetch_all<T: RowType>(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Vec<T>> {
        sqlx::query_as_with(sql, arguments::<Postgres>(args)?)
            .fetch_all(self)
            .await
            .map_err(map_err)
    }
}

crate::store::forward_store!(PgStore);
