//! Embedded migrations. Each backend has its own SQL files, applied in order, each in one
//! transaction, recorded in `schema_migrations`.

/// `(version, sql)` for SQLite.
pub(crate) const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../migrations/sqlite/0002_rate_limits.sql")),
    (3, include_str!("../migrations/sqlite/0003_key_creator.sql")),
    (
        4,
        include_str!("../migrations/sqlite/0004_oauth_hardening.sql"),
    ),
    (
        5,
        include_str!("../migrations/sqlite/0005_secret_key_check.sql"),
    ),
    (6, include_str!("../migrations/sqlite/0006_resources.sql")),
    (
        7,
        include_str!("../migrations/sqlite/0007_api_key_usage.sql"),
    ),
];

/// `(version, sql)` for PostgreSQL.
pub(crate) const POSTGRES: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../migrations/postgres/0002_rate_limits.sql"),
    ),
    (
        3,
        include_str!("../migrations/postgres/0003_key_creator.sql"),
    ),
    (
        4,
        include_str!("../migrations/postgres/0004_oauth_hardening.sql"),
    ),
    (
        5,
        include_str!("../migrations/postgres/0005_secret_key_check.sql"),
    ),
    (6, include_str!("../migrations/postgres/0006_resources.sql")),
    (
        7,
        include_str!("../migrations/postgres/0007_api_key_usage.sql"),
    ),
];

/// Splits a migration file into statements (our files have no `;` inside literals).
pub(crate) fn statements(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(';').map(str::trim).filter(|s| !s.is_empty())
}
