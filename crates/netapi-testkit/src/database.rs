//! Fresh databases for tests, and dropping them again.

/// `prefix` and a lower-case random suffix: a name no other test run uses, for databases and
/// temporary files.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        netapi_core::secret::random_base62(12).to_lowercase()
    )
}

/// A new SQLite file in the temporary directory (made on first open), removed with its `-wal`
/// and `-shm` files when this is dropped: one CI run made some 400 of them, half a megabyte
/// each. Derefs to the database URL. Keep it bound while a server uses the file.
#[must_use = "the file is removed when this is dropped"]
#[derive(Debug)]
pub struct SqliteFile {
    url: String,
}

impl SqliteFile {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("{}.db", unique_name("netapi-test-")));
        Self {
            url: format!("sqlite://{}", path.display()),
        }
    }

    /// The database URL, to keep after this is dropped (then drop it with [`drop_database`]).
    pub fn into_url(mut self) -> String {
        // Drop then finds no URL and removes nothing.
        std::mem::take(&mut self.url)
    }
}

impl Default for SqliteFile {
    fn default() -> Self {
        Self::new()
    }
}

impl std::ops::Deref for SqliteFile {
    type Target = str;

    fn deref(&self) -> &str {
        &self.url
    }
}

impl std::fmt::Display for SqliteFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        remove_sqlite_files(&self.url);
    }
}

/// Removes a SQLite database's file and its `-wal` and `-shm` files; those already gone are
/// no error.
fn remove_sqlite_files(database_url: &str) {
    let Some(path) = database_url.strip_prefix("sqlite://") else {
        return;
    };
    let path = path.split('?').next().unwrap_or(path);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
}

/// A fresh database URL for the backend; `None` (and a note that the test is skipped) when
/// PostgreSQL is not configured through `NETAPI_TEST_POSTGRES_URL`.
pub async fn fresh_database(backend: crate::Backend) -> Option<String> {
    match backend {
        crate::Backend::Sqlite => Some(SqliteFile::new().into_url()),
        crate::Backend::Postgres => {
            let Ok(admin_url) = std::env::var("NETAPI_TEST_POSTGRES_URL") else {
                eprintln!("skipped: NETAPI_TEST_POSTGRES_URL is not set");
                return None;
            };
            let name = unique_name("netapi_test_");
            let pool = sqlx::PgPool::connect(&admin_url)
                .await
                .expect("connect to PostgreSQL");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&pool)
                .await
                .expect("create database");
            pool.close().await;
            let mut url = url::Url::parse(&admin_url).expect("postgres URL");
            url.set_path(&format!("/{name}"));
            Some(url.to_string())
        }
    }
}

/// Drops a test's database so that runs do not pile them up on the machine: a SQLite file is
/// removed; a PostgreSQL database is dropped, connections and all (every CI run and session
/// shares one server).
pub async fn drop_database(database_url: &str) {
    if database_url.starts_with("sqlite:") {
        remove_sqlite_files(database_url);
        return;
    }
    let (Ok(admin_url), Ok(url)) = (
        std::env::var("NETAPI_TEST_POSTGRES_URL"),
        url::Url::parse(database_url),
    ) else {
        return;
    };
    let name = url.path().trim_start_matches('/');
    let pool = sqlx::PgPool::connect(&admin_url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&pool)
        .await
        .expect("drop database");
    pool.close().await;
}

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago, for a process to bind.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
