//! Fresh databases for tests, and dropping them again.

/// `prefix` and a lower-case random suffix: a name no other test run uses, for databases and
/// temporary files.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        netapi_core::secret::random_base62(12).to_lowercase()
    )
}

/// The URL of a new SQLite file in the temporary directory (made on first open).
pub fn fresh_sqlite_url() -> String {
    let path = std::env::temp_dir().join(format!("{}.db", unique_name("netapi-test-")));
    format!("sqlite://{}", path.display())
}

/// A fresh database URL for the backend; `None` (and a note that the test is skipped) when
/// PostgreSQL is not configured through `NETAPI_TEST_POSTGRES_URL`.
pub async fn fresh_database(backend: crate::Backend) -> Option<String> {
    match backend {
        crate::Backend::Sqlite => Some(fresh_sqlite_url()),
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

/// Drops a test's PostgreSQL database, connections and all, so that runs do not pile them up
/// on the machine (every CI run and session shares one server).
pub async fn drop_database(database_url: &str) {
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
