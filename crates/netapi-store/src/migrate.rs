//! Schema migrations: `sqlx::migrate!` with one folder per backend (`migrations/sqlite`,
//! `migrations/postgres`), recorded by sqlx in `_sqlx_migrations`. Each backend runs them
//! in one write transaction that it began holding the lock that keeps two processes from
//! migrating at once (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a transaction-scoped advisory
//! lock), so sqlx's own lock is turned off: ours also covers the steps below and is released
//! with the transaction whatever happens.
//!
//! Databases made by earlier releases were migrated by Net API's own runner, which recorded
//! versions in `schema_migrations`. When that table exists and `_sqlx_migrations` does not,
//! the versions it lists are recorded in `_sqlx_migrations` first, with the checksums sqlx
//! computes for the same files, so sqlx applies only what is new. `schema_migrations` stays
//! and receives every version sqlx applied, for instances of earlier releases, which read it
//! when they start (they know no migration after 0007).

use sqlx::migrate::{Migrate, MigrateError, Migrator};

use crate::backend::Exec;
use crate::map_err;
use netapi_core::StoreError;
use netapi_core::store::StoreResult;

/// The migrations of `migrations/sqlite`.
pub(crate) fn sqlite() -> Migrator {
    configured(sqlx::migrate!("./migrations/sqlite"))
}

/// The migrations of `migrations/postgres`.
pub(crate) fn postgres() -> Migrator {
    configured(sqlx::migrate!("./migrations/postgres"))
}

/// Without sqlx's lock (the backend holds its own), and accepting versions this build does
/// not know: an instance of this release still starts after a later one migrated, as with
/// the old runner (every migration adds before it removes).
fn configured(mut migrator: Migrator) -> Migrator {
    migrator.set_locking(false);
    migrator.set_ignore_missing(true);
    migrator
}

const LIST_OLD_RUNNER_VERSIONS: &str = "SELECT version FROM schema_migrations ORDER BY version";

/// `execution_time` -1: not measured (sqlx writes the same until it has measured).
const RECORD_APPLIED: &str = "INSERT INTO _sqlx_migrations \
     (version, description, success, checksum, execution_time) VALUES ($1, $2, TRUE, $3, -1)";

/// The old runner's table, as it made it.
const CREATE_OLD_RUNNER_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations \
     (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)";

/// (SQLite needs the `WHERE` of an `INSERT ... SELECT ... ON CONFLICT`.)
const COPY_VERSIONS_TO_OLD_RUNNER_TABLE: &str = "INSERT INTO schema_migrations \
     (version, applied_at) SELECT version, $1 FROM _sqlx_migrations WHERE success \
     ON CONFLICT (version) DO NOTHING";

/// Runs `migrator` on `conn`, a connection inside the caller's locked transaction:
/// first the old runner's versions (when sqlx has recorded none yet), last every version
/// into the old runner's table. `count_tables` is the backend's statement that counts the
/// tables named `$1`.
pub(crate) async fn run<C>(conn: &mut C, migrator: &Migrator, count_tables: &str) -> StoreResult<()>
where
    C: Exec + Migrate,
{
    let exists = async |conn: &mut C, table: &str| {
        conn.fetch_one::<(i64,)>(count_tables, &[table.into()])
            .await
            .map(|(n,)| n > 0)
    };
    if exists(conn, "schema_migrations").await? && !exists(conn, "_sqlx_migrations").await? {
        record_old_runner_versions(conn, migrator).await?;
    }
    // `run_direct` is `run` on a connection; `run(&mut *tx)` cannot be proven `Send` in
    // an async Store method (sqlx's own note: "Acquire is not general enough").
    migrator.run_direct(conn).await.map_err(migration_failed)?;
    conn.execute(CREATE_OLD_RUNNER_TABLE, &[]).await?;
    conn.execute(COPY_VERSIONS_TO_OLD_RUNNER_TABLE, &[unix_now().into()])
        .await?;
    Ok(())
}

async fn record_old_runner_versions<C>(conn: &mut C, migrator: &Migrator) -> StoreResult<()>
where
    C: Exec + Migrate,
{
    conn.ensure_migrations_table()
        .await
        .map_err(migration_failed)?;
    let applied: Vec<(i64,)> = conn.fetch_all(LIST_OLD_RUNNER_VERSIONS, &[]).await?;
    for migration in migrator.iter() {
        if applied.contains(&(migration.version,)) {
            conn.execute(
                RECORD_APPLIED,
                &[
                    migration.version.into(),
                    migration.description.as_ref().into(),
                    migration.checksum.as_ref().into(),
                ],
            )
            .await?;
        }
    }
    Ok(())
}

fn migration_failed(err: MigrateError) -> StoreError {
    match err {
        MigrateError::Execute(err) => map_err(err),
        other => StoreError::Other(format!("migration failed: {other}")),
    }
}

/// The wall clock, as the old runner wrote it (`schema_migrations.applied_at` is for people).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
