//! What a backend gives the SQL written once in [`crate::tables`]: connections that run a
//! statement ([`Exec`]), a pool of readers, a writer and write transactions ([`Backend`]).
//!
//! One dialect for both backends: every statement is the common subset of SQLite and
//! PostgreSQL. Placeholders are `$1`, `$2`, ...: PostgreSQL's own, and SQLite reads `$N` as
//! the N-th argument (sqlx binds by position), so one number may appear twice in a statement
//! (the conformance suite runs such statements on both). Upserts are
//! `INSERT ... ON CONFLICT (...) DO UPDATE SET x = excluded.x` (or `DO NOTHING`); writes
//! that answer with the row use `RETURNING`. There is no `FOR UPDATE` (SQLite has none): a
//! read-then-write transaction starts with a conditional `UPDATE`, which takes the row lock
//! on PostgreSQL, and SQLite begins it `IMMEDIATE` (see [`Backend::begin_write`]).

use std::borrow::Cow;

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Arguments, Database, Encode, FromRow, Pool, Transaction, Type};

use crate::map_err;
use netapi_core::StoreError;
use netapi_core::store::StoreResult;

/// One argument of a statement, in one of the four column types both backends store. (No
/// `Debug`: arguments carry hashes.)
pub(crate) enum Arg<'a> {
    Text(Option<Cow<'a, str>>),
    Int(Option<i64>),
    Bytes(Option<&'a [u8]>),
    Bool(Option<bool>),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(text: &'a str) -> Self {
        Self::Text(Some(Cow::Borrowed(text)))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(text: &'a String) -> Self {
        Self::Text(Some(Cow::Borrowed(text)))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(text: Option<&'a str>) -> Self {
        Self::Text(text.map(Cow::Borrowed))
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(text: &'a Option<String>) -> Self {
        Self::Text(text.as_deref().map(Cow::Borrowed))
    }
}

impl From<String> for Arg<'_> {
    fn from(text: String) -> Self {
        Self::Text(Some(Cow::Owned(text)))
    }
}

impl From<Option<String>> for Arg<'_> {
    fn from(text: Option<String>) -> Self {
        Self::Text(text.map(Cow::Owned))
    }
}

impl From<i64> for Arg<'_> {
    fn from(number: i64) -> Self {
        Self::Int(Some(number))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(number: Option<i64>) -> Self {
        Self::Int(number)
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        Self::Bytes(Some(bytes))
    }
}

impl<'a> From<Option<&'a [u8]>> for Arg<'a> {
    fn from(bytes: Option<&'a [u8]>) -> Self {
        Self::Bytes(bytes)
    }
}

impl From<bool> for Arg<'_> {
    fn from(flag: bool) -> Self {
        Self::Bool(Some(flag))
    }
}

impl From<Option<bool>> for Arg<'_> {
    fn from(flag: Option<bool>) -> Self {
        Self::Bool(flag)
    }
}

/// The driver's argument list for `args`.
pub(crate) fn arguments<'q, DB: Database>(args: &'q [Arg<'_>]) -> StoreResult<DB::Arguments<'q>>
where
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<&'q [u8]>: Encode<'q, DB> + Type<DB>,
    Option<bool>: Encode<'q, DB> + Type<DB>,
{
    let mut out = DB::Arguments::default();
    for arg in args {
        match arg {
            Arg::Text(text) => out.add(text.as_deref()),
            Arg::Int(number) => out.add(*number),
            Arg::Bytes(bytes) => out.add(*bytes),
            Arg::Bool(flag) => out.add(*flag),
        }
        .map_err(|e| StoreError::Other(format!("cannot encode an argument: {e}")))?;
    }
    Ok(out)
}

/// A row type both backends decode: the row structs of [`crate::tables`] and tuples such as
/// `(i64,)`.
pub(crate) trait RowType:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> RowType for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// A connection that runs one statement (a pooled connection, or one inside a transaction).
pub(crate) trait Exec {
    /// Runs `sql`; answers the number of rows it changed.
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<u64>;

    async fn fetch_optional<T: RowType>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> StoreResult<Option<T>>;

    async fn fetch_all<T: RowType>(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Vec<T>>;

    async fn fetch_one<T: RowType>(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<T> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or_else(|| map_err(sqlx::Error::RowNotFound))
    }
}

/// A storage backend: where reads and writes go, and how a write transaction begins.
pub(crate) trait Backend: Send + Sync {
    type Db: Database<Connection: Exec>;

    /// The pool reads use.
    fn read_pool(&self) -> &Pool<Self::Db>;

    /// The pool single-statement writes use.
    fn write_pool(&self) -> &Pool<Self::Db>;

    /// A transaction that holds the write lock before it reads (SQLite) or that relies on
    /// row locks its first conditional `UPDATE` takes (PostgreSQL).
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Self::Db>>;

    /// A write transaction that also waits for every other one begun with the same `topic`
    /// to end: for a cap checked by counting rows before an insert, which no row lock
    /// guards (SQLite's write transactions exclude each other already; PostgreSQL takes a
    /// transaction-scoped advisory lock).
    async fn begin_exclusive(&self, topic: i64) -> StoreResult<Transaction<'static, Self::Db>>;

    /// A connection for reading.
    async fn reader(&self) -> StoreResult<PoolConnection<Self::Db>> {
        self.read_pool().acquire().await.map_err(map_err)
    }

    /// A connection for one write outside a transaction.
    async fn writer(&self) -> StoreResult<PoolConnection<Self::Db>> {
        self.write_pool().acquire().await.map_err(map_err)
    }
}
