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

/// Past this many frames (64 MiB of 4 KiB pages) the WAL is started over by the writer: see
/// [`Checkpointer`].
const RESTART_WAL_AT_FRAMES: i64 = 16384;

/// What SQLite leaves of the WAL file when it starts it over (bytes). Without a limit the
/// file keeps the largest size it ever reached.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// How long the writer's restart waits for readers still on the WAL before it gives up
/// until a later try. Every write waits that long at most: a reader holding a snapshot for
/// minutes (a backup, a long export) must not stop writes.
const RESTART_WAITS_FOR_READERS: Duration = Duration::from_millis(20);

/// Passive checkpoints run back to back before the writer's restart, each copying what was
/// committed during the one before: a few milliseconds' worth is left for the writer.
const CATCH_UP_PASSES: usize = 2;

/// After a restart that readers kept from finishing, the next one is tried after this long.
const RESTART_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The writer's usual busy timeout: other processes (the admin CLI) may hold the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Checkpoints the WAL from a reader connection, on a timer. Left to itself, SQLite does it
/// inside the commit that takes the WAL past 1,000 pages, on the one writer, and every write
/// queued in this process waits for it: refresh at 32 connections had a p99 of 14.8 ms with
/// that, 8.5 ms without (docs/benchmarks.md). A passive checkpoint copies what no reader
/// still needs and waits for nobody; the writer goes on committing meanwhile.
///
/// Passive checkpoints alone never let the WAL start over while writes go on: SQLite
/// restarts it only at a write that finds every frame copied, and under steady writes new
/// frames are committed while each checkpoint runs (a sustained refresh load grew the WAL by
/// about 50 MB a second, without end). So once the WAL holds [`RESTART_WAL_AT_FRAMES`], the
/// writer itself runs a `RESTART` checkpoint between two of its transactions: it copies the
/// little that the passive ones left, waits briefly for the readers, and the next write
/// starts the WAL over, cut back to [`WAL_SIZE_LIMIT`].
#[derive(Debug)]
struct Checkpointer(tokio::task::JoinHandle<()>);

impl Checkpointer {
    fn start(readers: SqlitePool, writer: SqlitePool) -> Self {
        Self(tokio::spawn(async move {
            let mut every = tokio::time::interval(CHECKPOINT_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            let mut next_restart = tokio::time::Instant::now();
            // The WAL's frames when the writer last restarted it: until a write starts it
            // over (and it holds fewer), there is nothing more to restart.
            let mut restarted_at: Option<i64> = None;
            loop {
                every.tick().await;
                let outcome = match checkpoint(&readers, "PASSIVE").await {
                    Ok(outcome) => {
                        failing = false;
                        outcome
                    }
                    // Once per run of failures (a read-only file, a full disk), not ten
                    // times a second.
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(target: "netapi::store", error = %e, "the SQLite WAL could not be checkpointed; it grows until this passes");
                        continue;
                    }
                    Err(_) => continue,
                };
                if restarted_at.is_some_and(|frames| outcome.frames < frames) {
                    restarted_at = None;
                }
                if outcome.frames < RESTART_WAL_AT_FRAMES
                    || restarted_at.is_some()
                    || tokio::time::Instant::now() < next_restart
                {
                    continue;
                }
                // Copy what was committed during that pass off the writer's path too, so
                // that the writer's own checkpoint has little left to do while writes wait.
                for _ in 0..CATCH_UP_PASSES {
                    if checkpoint(&readers, "PASSIVE").await.is_err() {
                        break;
                    }
                }
                match restart_wal(&writer).await {
                    Ok(outcome) if !outcome.readers_in_the_way => {
                        restarted_at = Some(outcome.frames);
                    }
                    Ok(_) => next_restart = tokio::time::Instant::now() + RESTART_RETRY_AFTER,
                    Err(e) => {
                        next_restart = tokio::time::Instant::now() + RESTART_RETRY_AFTER;
                        tracing::warn!(target: "netapi::store", error = %e, "the SQLite WAL could not be started over; it grows until this passes");
                    }
                }
            }
        }))
    }
}

/// What `PRAGMA wal_checkpoint` answered.
struct Checkpoint {
    /// Readers (or a writer) kept it from finishing.
    readers_in_the_way: bool,
    /// Frames in the WAL.
    frames: i64,
}

async fn checkpoint<'c>(
    on: impl sqlx::SqliteExecutor<'c>,
    mode: &str,
) -> Result<Checkpoint, sqlx::Error> {
    let (busy, frames, _copied): (i64, i64, i64) =
        sqlx::query_as(&format!("PRAGMA wal_checkpoint({mode})"))
            .fetch_one(on)
            .await?;
    Ok(Checkpoint {
        readers_in_the_way: busy != 0,
        frames,
    })
}

/// A `RESTART` checkpoint on the writer's connection, between two of its transactions. The
/// readers still on the WAL finish within a millisecond or so, but SQLite's busy handler
/// sleeps 1, 2, 5, then 10 ms between its looks (every queued write waited that long): so
/// SQLite is told not to wait, and the checkpoint is asked again at once until they are
/// gone, for at most [`RESTART_WAITS_FOR_READERS`].
async fn restart_wal(writer: &SqlitePool) -> Result<Checkpoint, sqlx::Error> {
    let mut conn = NotWaiting {
        conn: writer.acquire().await?,
        restored: false,
    };
    sqlx::query("PRAGMA busy_timeout = 0")
        .execute(&mut *conn.conn)
        .await?;
    let deadline = std::time::Instant::now() + RESTART_WAITS_FOR_READERS;
    let outcome = loop {
        match checkpoint(&mut *conn.conn, "RESTART").await {
            Ok(outcome) if outcome.readers_in_the_way && std::time::Instant::now() < deadline => {
                tokio::task::yield_now().await;
            }
            done => break done,
        }
    };
    let usual = format!("PRAGMA busy_timeout = {}", BUSY_TIMEOUT.as_millis());
    conn.restored = sqlx::query(&usual).execute(&mut *conn.conn).await.is_ok();
    outcome
}

/// The writer's connection while SQLite is told not to wait on it: closed rather than handed
/// back to the writes unless the usual timeout was restored (an error, or the task stopped
/// half-way).
struct NotWaiting {
    conn: sqlx::pool::PoolConnection<Sqlite>,
    restored: bool,
}

impl Drop for NotWaiting {
    fn drop(&mut self) {
        if !self.restored {
            self.conn.close_on_drop();
        }
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
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string())
            // Statement journals (a multi-row statement inside a transaction needs one, as
            // every batch of rotations is) and sorts in memory: in a file, each was a
            // temporary file created, unlinked and closed per write transaction.
            .pragma("temp_store", "memory");
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
        let checkpointer =
            (!in_memory).then(|| Arc::new(Checkpointer::start(pool.clone(), writer.clone())));
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
