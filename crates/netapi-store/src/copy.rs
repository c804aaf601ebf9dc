//! Moving a whole SQLite database into PostgreSQL (`netapi migrate-store`): every table,
//! row for row, in one PostgreSQL transaction, into a database that holds no users yet.

use sqlx::Row;

use crate::{PgStore, SqliteStore, map_err};
use netapi_core::StoreError;

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Blob,
    Bool,
}

use Kind::{Blob, Bool, Int, Text};

/// Tables in an order that satisfies foreign keys, with their columns.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "users",
        &[
            ("id", Text),
            ("email", Text),
            ("name", Text),
            ("role", Text),
            ("password_hash", Text),
            ("created_at", Int),
            ("updated_at", Int),
            ("email_verified", Bool),
            ("disabled_at", Int),
        ],
    ),
    (
        "invitations",
        &[
            ("id", Text),
            ("token_hash", Blob),
            ("email", Text),
            ("role", Text),
            ("created_by", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("used_at", Int),
            ("used_by", Text),
        ],
    ),
    (
        "resources",
        &[
            ("id", Text),
            ("identifier", Text),
            ("name", Text),
            ("scopes", Text),
            ("self_service_scopes", Text),
            ("allow_api_keys", Bool),
            ("access_token_ttl", Int),
            ("created_at", Int),
            ("updated_at", Int),
            ("deleted_at", Int),
        ],
    ),
    (
        "resource_grants",
        &[
            ("user_id", Text),
            ("resource_id", Text),
            ("scopes", Text),
            ("updated_at", Int),
        ],
    ),
    (
        "api_keys",
        &[
            ("id", Text),
            ("user_id", Text),
            ("name", Text),
            ("prefix", Text),
            ("last_four", Text),
            ("hash", Blob),
            ("scopes", Int),
            ("created_at", Int),
            ("last_used_at", Int),
            ("expires_at", Int),
            ("revoked_at", Int),
            ("rate_limit", Int),
            ("created_by_client", Text),
            ("resource_id", Text),
            ("resource_identifier", Text),
            ("resource_scopes", Text),
            ("metadata", Text),
        ],
    ),
    (
        "api_key_usage",
        &[
            ("key_id", Text),
            ("hour", Int),
            ("outcome", Text),
            ("count", Int),
        ],
    ),
    (
        "audit_events",
        &[
            ("id", Text),
            ("user_id", Text),
            ("kind", Text),
            ("ip", Text),
            ("detail", Text),
            ("created_at", Int),
        ],
    ),
    (
        "oauth_clients",
        &[
            ("id", Text),
            ("owner_id", Text),
            ("name", Text),
            ("redirect_uris", Text),
            ("grant_types", Text),
            ("scopes", Int),
            ("auth_method", Text),
            ("secret_hash", Blob),
            ("created_at", Int),
            ("updated_at", Int),
            ("rate_limit", Int),
            ("trusted", Bool),
            ("resources", Text),
            ("resource_scopes", Text),
            ("id_token_signed_response_alg", Text),
            ("token_exchange_resources", Text),
            ("post_logout_redirect_uris", Text),
            ("backchannel_logout_uri", Text),
            ("backchannel_logout_session_required", Bool),
            ("jwks", Text),
            ("jwks_uri", Text),
            ("require_par", Bool),
            ("dpop_bound_access_tokens", Bool),
        ],
    ),
    (
        "pushed_requests",
        &[
            ("hash", Blob),
            ("client_id", Text),
            ("params", Text),
            ("created_at", Int),
            ("expires_at", Int),
        ],
    ),
    (
        "client_assertion_jtis",
        &[("client_id", Text), ("jti_hash", Blob), ("expires_at", Int)],
    ),
    (
        "client_registrations",
        &[
            ("client_id", Text),
            ("token_hash", Blob),
            ("metadata", Text),
            ("created_at", Int),
        ],
    ),
    (
        "registration_tokens",
        &[
            ("id", Text),
            ("token_hash", Blob),
            ("created_by", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("used_at", Int),
        ],
    ),
    (
        "refresh_tokens",
        &[
            ("hash", Blob),
            ("family_id", Text),
            ("client_id", Text),
            ("user_id", Text),
            ("scopes", Int),
            ("issued_at", Int),
            ("expires_at", Int),
            ("family_expires_at", Int),
            ("auth_time", Int),
            ("rotated_at", Int),
            ("revoked_at", Int),
            ("successor_key", Blob),
            ("resource_id", Text),
            ("resource_scopes", Text),
            ("amr", Text),
            ("sid", Text),
            ("dpop_jkt", Text),
        ],
    ),
    (
        "authorization_codes",
        &[
            ("hash", Blob),
            ("client_id", Text),
            ("user_id", Text),
            ("redirect_uri", Text),
            ("scopes", Int),
            ("code_challenge", Text),
            ("nonce", Text),
            ("auth_time", Int),
            ("family_id", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("used_at", Int),
            ("redirect_uri_in_request", Bool),
            ("resource_id", Text),
            ("resource_scopes", Text),
            ("amr", Text),
            ("sid", Text),
            ("dpop_jkt", Text),
        ],
    ),
    (
        "consents",
        &[
            ("user_id", Text),
            ("client_id", Text),
            ("scopes", Int),
            ("granted_at", Int),
            ("resource_scopes", Text),
        ],
    ),
    (
        "device_authorizations",
        &[
            ("device_code_hash", Blob),
            ("user_code_hash", Blob),
            ("client_id", Text),
            ("scopes", Int),
            ("resource_id", Text),
            ("resource_scopes", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("poll_interval", Int),
            ("last_polled_at", Int),
            ("status", Text),
            ("user_id", Text),
            ("auth_time", Int),
            ("amr", Text),
            ("decided_at", Int),
            ("family_id", Text),
            ("redeemed_at", Int),
        ],
    ),
    (
        "sessions",
        &[
            ("hash", Blob),
            ("user_id", Text),
            ("auth_time", Int),
            ("csrf_token", Text),
            ("expires_at", Int),
            ("amr", Text),
            ("created_at", Int),
            ("last_seen_at", Int),
            ("user_agent", Text),
            ("source", Text),
            ("sid", Text),
        ],
    ),
    (
        "session_clients",
        &[
            ("sid", Text),
            ("client_id", Text),
            ("user_id", Text),
            ("created_at", Int),
        ],
    ),
    (
        "logout_deliveries",
        &[
            ("id", Text),
            ("client_id", Text),
            ("user_id", Text),
            ("sid", Text),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("created_at", Int),
        ],
    ),
    (
        "mfa_totp",
        &[
            ("user_id", Text),
            ("sealed_secret", Blob),
            ("created_at", Int),
            ("confirmed_at", Int),
            ("last_used_step", Int),
        ],
    ),
    (
        "mfa_recovery_codes",
        &[
            ("user_id", Text),
            ("hash", Blob),
            ("created_at", Int),
            ("used_at", Int),
        ],
    ),
    (
        "passkeys",
        &[
            ("id", Text),
            ("user_id", Text),
            ("credential_id", Text),
            ("name", Text),
            ("passkey", Text),
            ("created_at", Int),
            ("last_used_at", Int),
        ],
    ),
    (
        "webauthn_ceremonies",
        &[
            ("hash", Blob),
            ("purpose", Text),
            ("user_id", Text),
            ("state", Text),
            ("expires_at", Int),
        ],
    ),
    (
        "email_tokens",
        &[
            ("id", Text),
            ("purpose", Text),
            ("user_id", Text),
            ("email", Text),
            ("hash", Blob),
            ("created_at", Int),
            ("expires_at", Int),
            ("used_at", Int),
        ],
    ),
    (
        "invalidations",
        &[
            ("kind", Text),
            ("subject", Text),
            ("expires_at", Int),
            ("created_at", Int),
        ],
    ),
    (
        "signing_keys",
        &[
            ("kid", Text),
            ("alg", Text),
            ("private_key", Blob),
            ("created_at", Int),
            ("active_from", Int),
            ("retire_at", Int),
        ],
    ),
    (
        "secret_key_check",
        &[("id", Int), ("check_value", Blob), ("created_at", Int)],
    ),
    (
        "webhooks",
        &[
            ("id", Text),
            ("created_by", Text),
            ("url", Text),
            ("events", Text),
            ("secret", Blob),
            ("created_at", Int),
            ("disabled_at", Int),
            ("slot", Int),
        ],
    ),
    (
        "webhook_deliveries",
        &[
            ("id", Text),
            ("webhook_id", Text),
            ("event_id", Text),
            ("event_type", Text),
            ("payload", Text),
            ("status", Text),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("last_status_code", Int),
            ("last_error", Text),
            ("created_at", Int),
            ("delivered_at", Int),
            ("leased_until", Int),
            ("redeliver_at", Int),
        ],
    ),
];

/// Copies everything from `from` into `to`; returns `(table, rows)` for each table.
/// Refuses a destination that already has users, so nothing is mixed or lost.
pub async fn copy_sqlite_to_postgres(
    from: &SqliteStore,
    to: &PgStore,
) -> Result<Vec<(&'static str, u64)>, StoreError> {
    let existing: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users")
        .fetch_one(&to.pool)
        .await
        .map_err(map_err)?
        .try_get("n")
        .map_err(map_err)?;
    if existing > 0 {
        return Err(StoreError::Other(
            "the destination database already has users; move into an empty database".to_owned(),
        ));
    }
    let mut tx = to.pool.begin().await.map_err(map_err)?;
    // Keys made by `migrate` on the empty destination would sign tokens nobody can verify.
    sqlx::query("DELETE FROM signing_keys")
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    // Likewise the check value of a key file the destination was first started with: the
    // sealed signing keys that arrive open only with the source's key file.
    sqlx::query("DELETE FROM secret_key_check")
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    sqlx::query("DELETE FROM invalidations")
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    let mut report = Vec::with_capacity(TABLES.len());
    for (table, columns) in TABLES {
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let select = format!("SELECT {} FROM {table}", names.join(", "));
        let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
        let insert = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            names.join(", "),
            placeholders.join(", ")
        );
        let rows = sqlx::query(&select)
            .fetch_all(&from.pool)
            .await
            .map_err(map_err)?;
        for row in &rows {
            let mut query = sqlx::query(&insert);
            for (name, kind) in *columns {
                query = match kind {
                    Text => query.bind(row.try_get::<Option<String>, _>(*name).map_err(map_err)?),
                    Int => query.bind(row.try_get::<Option<i64>, _>(*name).map_err(map_err)?),
                    Blob => query.bind(row.try_get::<Option<Vec<u8>>, _>(*name).map_err(map_err)?),
                    Bool => query.bind(row.try_get::<Option<bool>, _>(*name).map_err(map_err)?),
                };
            }
            query.execute(&mut *tx).await.map_err(map_err)?;
        }
        report.push((*table, rows.len() as u64));
    }
    tx.commit().await.map_err(map_err)?;
    Ok(report)
}
