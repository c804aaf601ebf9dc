//! SQLite: the embedded default. WAL so readers never wait for the writer; every write of
//! this process goes through one connection, so writers queue in order inside the process
//! instead of sleeping in SQLite's busy handler (which backs off up to 100 ms at a time:
//! 32 concurrent refreshes had a p99 of 200 ms that way); a busy timeout still covers other
//! processes (the admin CLI); `BEGIN IMMEDIATE` for every read-then-write transaction;
//! foreign keys on (SQLite's default is off).

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{Arg, Backend, Exec, RowType, arguments};
use crate::{StoreOptions, map_err, migrate};
use netapi_core::StoreError;
use netapi_core::store::StoreResult;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Readers.
    pub(crate) pool: SqlitePool,
    /// The one writing connection (the same pool as `pool` for an in-memory database,
    /// which exists per connection).
    writer: SqlitePool,
    /// Refresh-token rotations waiting for a group commit.
    pub(crate) rotations: Arc<crate::tables::refresh_tokens::RotationQueue>,
    /// Copies the WAL into the database (none for an in-memory database); stops with the
    /// last clone of the store.
    _checkpointer: Option<Arc<Checkpointer>>,
}

/// How often the WAL is copied into the database file. Between two checkpoints the WAL
/// grows by what is committed meanwhile: a few megabytes at thousands of writes a second.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Checkpoints the WAL from a reader connection, on a timer. Left to itself, SQLite does it
/// inside the commit that takes the WAL past 1,000 pages, on the one writer, and every write
/// queued in this process waits for it: refresh at 32 connections had a p99 of 14.8 ms with
/// that, 8.5 ms without (docs/benchmarks.md). A passive checkpoint copies what no reader
/// still needs and waits for nobody; the writer goes on committing meanwhile.
#[derive(Debug)]
struct Checkpointer(tokio::task::JoinHandle<()>);

impl Checkpointer {
    fn start(readers: SqlitePool) -> Self {
        Self(tokio::spawn(async move {
            let mut every = tokio::time::interval(CHECKPOINT_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                every.tick().await;
                match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&readers)
                    .await
                {
                    Ok(_) => failing = false,
                    // Once per run of failures (a read-only file, a full disk), not ten
                    // times a second.
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(target: "netapi::store", error = %e, "the SQLite WAL could not be checkpointed; it grows until this passes");
                    }
                    Err(_) => {}
                }
            }
        }))
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Refuses a database file whose directory does not exist, naming both (SQLite itself only
/// says "unable to open database file").
fn missing_directory(file: &std::path::Path) -> Result<(), StoreError> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
            Err(StoreError::Other(format!(
                "cannot open the SQLite database {}: the directory {} does not exist (create it, or choose another database_url)",
                file.display(),
                dir.display()
            )))
        }
        _ => Ok(()),
    }
}

impl SqliteStore {
    /// No channel: one process, whose own writes invalidate its caches (and polling covers
    /// the admin CLI).
    pub(crate) async fn follow_invalidations(
        &self,
        _notice: &(dyn Fn() + Send + Sync),
    ) -> StoreResult<bool> {
        Ok(false)
    }

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
        if !in_memory {
            missing_directory(connect.get_filename())?;
        }
        // An in-memory database exists per connection: keep exactly one, for everything.
        let pool_of = |connections: u32, connect: SqliteConnectOptions| {
            SqlitePoolOptions::new()
                .max_connections(if in_memory { 1 } else { connections })
                .min_connections(u32::from(in_memory))
                .idle_timeout((!in_memory).then_some(Duration::from_secs(600)))
                .max_lifetime((!in_memory).then_some(Duration::from_secs(3600)))
                .acquire_timeout(Duration::from_secs(10))
                // A connection to a file cannot be dropped by anyone: the ping sqlx sends
                // before handing one out is a round trip to its worker thread for nothing.
                .test_before_acquire(false)
                .connect_with(connect)
        };
        let pool = pool_of(options.max_connections.max(1), connect.clone())
            .await
            .map_err(map_err)?;
        let writer = if in_memory {
            pool.clone()
        } else {
            // The writer never checkpoints: see [`Checkpointer`].
            let connect = connect.clone().pragma("wal_autocheckpoint", "0");
            pool_of(1, connect).await.map_err(map_err)?
        };
        let checkpointer = (!in_memory).then(|| Arc::new(Checkpointer::start(pool.clone())));
        Ok(Self {
            pool,
            writer,
            _checkpointer: checkpointer,
            rotations: Arc::default(),
        })
    }

    /// Applies pending migrations (see [`crate::migrate`]).
    ///
    /// A migration that rebuilds a table (SQLite's only way to change a column) must not
    /// cascade the old table's `DROP` to the rows that reference it, so foreign keys are off
    /// while migrating (a transaction cannot turn them off) and checked before the commit.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = migrate::sqlite();
        let mut conn = self.writer.acquire().await.map_err(map_err)?;
        conn.execute("PRAGMA foreign_keys = OFF", &[]).await?;
        let migrated = async {
            let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE")
                .await
                .map_err(map_err)?;
            migrate::run(&mut *tx, &migrator, COUNT_TABLES).await?;
            let broken = sqlx::query("PRAGMA foreign_key_check")
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            if broken.is_some() {
                return Err(StoreError::Other(
                    "a migration left a reference to a missing row; nothing was changed".to_owned(),
                ));
            }
            tx.commit().await.map_err(map_err)
        }
        .await;
        let restored = conn.execute("PRAGMA foreign_keys = ON", &[]).await;
        migrated?;
        restored.map(|_| ())
    }
}

const COUNT_TABLES: &str = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1";

impl Backend for SqliteStore {
    type Db = Sqlite;

    fn read_pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn write_pool(&self) -> &SqlitePool {
        &self.writer
    }

    async fn begin_write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }

    /// Every write transaction holds the database's write lock: the topic needs no lock of
    /// its own.
    async fn begin_exclusive(&self, _topic: i64) -> StoreResult<Transaction<'static, Sqlite>> {
        self.begin_write().await
    }
}

impl Exec for SqliteConnection {
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<u64> {
        let done = sqlx::query_with(sql, arguments::<Sqlite>(args)?)
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
        sqlx::query_as_with(sql, arguments::<Sqlite>(args)?)
            .fetch_optional(self)
            .await
            .map_err(map_err)
    }

    async fn fetch_all<T: RowType>(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Vec<T>> {
        sqlx::query_as_with(sql, arguments::<Sqlite>(args)?)
            .fetch_all(self)
            .await
            .map_err(map_err)
    }
}

crate::store::forward_store!(SqliteStore);
