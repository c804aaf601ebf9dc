//! Store conformance suite: every scenario runs against SQLite, and against PostgreSQL when
//! `NETAPI_TEST_POSTGRES_URL` names a server (an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/postgres`). Each test gets a fresh database: a new
//! temporary SQLite file, or a new `netapi_test_<random>` PostgreSQL database that is dropped
//! afterwards.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use netapi_core::ids::new_id;
use netapi_core::model::PendingLogout;
use netapi_core::model::{
    ApiKey, AuditEvent, AuthorizationCode, ClientAuthMethod, Consent, DeliveryAttempt,
    DeliveryStatus, EmailPurpose, EmailToken, GrantType, Invitation, OAuthClient, OutboxEvent,
    RefreshToken, Resource, ResourceGrant, ResourceScope, RotateOutcome, Session, SigningAlgorithm,
    SigningKey, User, Webhook, WebhookDelivery,
};
use netapi_core::model::{ClientLogout, ClientMetadata, ClientRegistration, RegistrationToken};
use netapi_core::model::{DeviceAuthorization, DeviceDecision, DeviceStatus};
use netapi_core::retention::{self, Expired, RetentionSettings};
use netapi_core::secret::SecretHash;
use netapi_core::store::{
    AuditFilter, ClientChanges, Invalidation, ResourceChanges, ResourceDeletion, Store, UserChanges,
};
use netapi_core::usage::{UsageCount, UsageOutcome};
use netapi_core::{Role, Scope, Scopes, StoreError, Timestamp};
use netapi_store::StoreOptions;
use sqlx::Connection;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The "current time" of every scenario.
const NOW: Timestamp = 1_700_000_000;

const PG_ENV: &str = "NETAPI_TEST_POSTGRES_URL";

// ------------------------------------------------------------------------------------------
// Harness
// ------------------------------------------------------------------------------------------

fn random_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn sqlite_path() -> String {
    std::env::temp_dir()
        .join(format!("netapi_test_{}.db", random_suffix()))
        .to_string_lossy()
        .into_owned()
}

fn remove_sqlite_files(path: &str) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
}

/// `url` with its database (path) part replaced by `database`; query parameters are kept.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(q) => url.split_at(q),
        None => (url, ""),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{database}{query}", &base[..authority_end])
}

/// Runs the scenario on its own task so that a failed assertion still lets us clean up, then
/// re-raises the panic.
async fn run_isolated<Fut>(scenario: Fut) -> Result<(), Box<dyn std::any::Any + Send>>
where
    Fut: Future<Output = ()> + Send + 'static,
{
    match tokio::spawn(scenario).await {
        Ok(()) => Ok(()),
        Err(err) if err.is_panic() => Err(err.into_panic()),
        Err(err) => panic!("scenario task failed: {err}"),
    }
}

/// Runs `scenario` on the path of a new SQLite file (see [`run_isolated`]), then removes the
/// file and its companions, whether the scenario passed or not.
async fn in_sqlite_file<F, Fut>(scenario: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let path = sqlite_path();
    let result = run_isolated(scenario(path.clone())).await;
    remove_sqlite_files(&path);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

async fn on_sqlite<F, Fut>(scenario: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    in_sqlite_file(|path| async move {
        let store = netapi_store::open(&StoreOptions::new(format!("sqlite://{path}")), true)
            .await
            .expect("open SQLite store");
        scenario(store).await;
    })
    .await;
}

/// A throw-away PostgreSQL database, or `None` (after saying so) when no server is configured.
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    async fn create(test: &str) -> Option<Self> {
        let Ok(admin_url) = std::env::var(PG_ENV) else {
            println!("{test}: skipped, {PG_ENV} is not set");
            return None;
        };
        let name = format!("netapi_test_{}", random_suffix());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to the PostgreSQL admin URL");
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        Some(Self {
            admin_url,
            name,
            url,
        })
    }

    /// Best effort: a leftover database is harmless.
    async fn drop_database(self) {
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            if let Err(err) = sqlx::raw_sql(&sql).execute(&mut admin).await {
                eprintln!("could not drop {}: {err}", self.name);
            }
            let _ = admin.close().await;
        }
    }
}

async fn on_postgres<F, Fut>(test: &str, scenario: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(db) = PgDatabase::create(test).await else {
        return;
    };
    let store = netapi_store::open(&StoreOptions::new(db.url.clone()), true)
        .await
        .expect("open PostgreSQL store");
    let result = run_isolated(scenario(store)).await;
    db.drop_database().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// One `#[tokio::test]` per backend for each scenario: `scenario => sqlite_test, pg_test;`.
macro_rules! conformance {
    ($($scenario:ident => $sqlite:ident, $postgres:ident;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $sqlite() {
                on_sqlite($scenario).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn $postgres() {
                on_postgres(stringify!($postgres), $scenario).await;
            }
        )*
    };
}

conformance! {
    users_crud => sqlite_users_crud, postgres_users_crud;
    users_disable_and_last_admin =>
        sqlite_users_disable_and_last_admin, postgres_users_disable_and_last_admin;
    users_concurrent_demotions_leave_an_admin =>
        sqlite_users_concurrent_demotions_leave_an_admin,
        postgres_users_concurrent_demotions_leave_an_admin;
    invitations_crud_and_bound =>
        sqlite_invitations_crud_and_bound, postgres_invitations_crud_and_bound;
    invitations_single_use_under_concurrency =>
        sqlite_invitations_single_use_under_concurrency,
        postgres_invitations_single_use_under_concurrency;
    invitations_bound_holds_under_concurrency =>
        sqlite_invitations_bound_holds_under_concurrency,
        postgres_invitations_bound_holds_under_concurrency;
    registered_clients_without_owner_and_their_registrations =>
        sqlite_registered_clients_without_owner_and_their_registrations,
        postgres_registered_clients_without_owner_and_their_registrations;
    registration_tokens_are_single_use_under_concurrency =>
        sqlite_registration_tokens_are_single_use_under_concurrency,
        postgres_registration_tokens_are_single_use_under_concurrency;
    api_key_usage_adds_up => sqlite_api_key_usage_adds_up, postgres_api_key_usage_adds_up;
    users_duplicate_email => sqlite_users_duplicate_email, postgres_users_duplicate_email;
    users_list_pagination => sqlite_users_list_pagination, postgres_users_list_pagination;
    users_search_by_email_part =>
        sqlite_users_search_by_email_part, postgres_users_search_by_email_part;
    users_concurrent_create => sqlite_users_concurrent_create, postgres_users_concurrent_create;
    users_delete_cascades => sqlite_users_delete_cascades, postgres_users_delete_cascades;
    users_stale_update_keeps_role =>
        sqlite_users_stale_update_keeps_role, postgres_users_stale_update_keeps_role;
    api_keys_of_client => sqlite_api_keys_of_client, postgres_api_keys_of_client;
    clients_stale_update_keeps_secret =>
        sqlite_clients_stale_update_keeps_secret, postgres_clients_stale_update_keeps_secret;
    refresh_revoke_for_user => sqlite_refresh_revoke_for_user, postgres_refresh_revoke_for_user;
    sessions_of_user => sqlite_sessions_of_user, postgres_sessions_of_user;
    email_links_verify_once => sqlite_email_links_verify_once, postgres_email_links_verify_once;
    email_links_reset_once => sqlite_email_links_reset_once, postgres_email_links_reset_once;
    reset_links_end_with_the_address_or_password_they_were_for => sqlite_reset_links_end_with_the_address_or_password_they_were_for, postgres_reset_links_end_with_the_address_or_password_they_were_for;
    api_keys_crud => sqlite_api_keys_crud, postgres_api_keys_crud;
    api_keys_rotate => sqlite_api_keys_rotate, postgres_api_keys_rotate;
    api_keys_record_use => sqlite_api_keys_record_use, postgres_api_keys_record_use;
    audit_events => sqlite_audit_events, postgres_audit_events;
    audit_events_filtered => sqlite_audit_events_filtered, postgres_audit_events_filtered;
    clients_crud => sqlite_clients_crud, postgres_clients_crud;
    clients_delete_cascades => sqlite_clients_delete_cascades, postgres_clients_delete_cascades;
    clients_trusted => sqlite_clients_trusted, postgres_clients_trusted;
    clients_token_exchange_resources => sqlite_clients_token_exchange_resources, postgres_clients_token_exchange_resources;
    refresh_rotation => sqlite_refresh_rotation, postgres_refresh_rotation;
    refresh_invalid => sqlite_refresh_invalid, postgres_refresh_invalid;
    refresh_grace_same_successor =>
        sqlite_refresh_grace_same_successor, postgres_refresh_grace_same_successor;
    refresh_concurrent_rotation =>
        sqlite_refresh_concurrent_rotation, postgres_refresh_concurrent_rotation;
    refresh_group_commit => sqlite_refresh_group_commit, postgres_refresh_group_commit;
    refresh_group_commit_judges_each_rotation =>
        sqlite_refresh_group_commit_judges_each_rotation,
        postgres_refresh_group_commit_judges_each_rotation;
    refresh_revoke_family => sqlite_refresh_revoke_family, postgres_refresh_revoke_family;
    refresh_revoke_for_client =>
        sqlite_refresh_revoke_for_client, postgres_refresh_revoke_for_client;
    authorization_codes => sqlite_authorization_codes, postgres_authorization_codes;
    authorization_codes_concurrent =>
        sqlite_authorization_codes_concurrent, postgres_authorization_codes_concurrent;
    consents => sqlite_consents, postgres_consents;
    device_authorizations =>
        sqlite_device_authorizations, postgres_device_authorizations;
    device_decisions_and_redemptions_are_single_use_under_concurrency =>
        sqlite_device_decisions_and_redemptions_are_single_use_under_concurrency,
        postgres_device_decisions_and_redemptions_are_single_use_under_concurrency;
    resources_crud => sqlite_resources_crud, postgres_resources_crud;
    resources_delete_revokes => sqlite_resources_delete_revokes, postgres_resources_delete_revokes;
    resource_grants => sqlite_resource_grants, postgres_resource_grants;
    sessions => sqlite_sessions, postgres_sessions;
    logout_session_clients => sqlite_logout_session_clients, postgres_logout_session_clients;
    logout_deliveries_are_leased_retried_and_pruned =>
        sqlite_logout_deliveries_are_leased_retried_and_pruned,
        postgres_logout_deliveries_are_leased_retried_and_pruned;
    second_factors => sqlite_second_factors, postgres_second_factors;
    passkeys => sqlite_passkeys, postgres_passkeys;
    webauthn_ceremonies_single_use =>
        sqlite_webauthn_ceremonies_single_use, postgres_webauthn_ceremonies_single_use;
    clients_keep_their_keys_and_par_setting =>
        sqlite_clients_keep_their_keys_and_par_setting,
        postgres_clients_keep_their_keys_and_par_setting;
    assertion_jtis_are_single_use =>
        sqlite_assertion_jtis_are_single_use, postgres_assertion_jtis_are_single_use;
    pushed_requests_are_single_use =>
        sqlite_pushed_requests_are_single_use, postgres_pushed_requests_are_single_use;
    invalidations => sqlite_invalidations, postgres_invalidations;
    denylist => sqlite_denylist, postgres_denylist;
    signing_keys => sqlite_signing_keys, postgres_signing_keys;
    signing_keys_reseal => sqlite_signing_keys_reseal, postgres_signing_keys_reseal;
    secret_key_check => sqlite_secret_key_check, postgres_secret_key_check;
    delete_expired => sqlite_delete_expired, postgres_delete_expired;
    webhooks_crud => sqlite_webhooks_crud, postgres_webhooks_crud;
    webhooks_outbox => sqlite_webhooks_outbox, postgres_webhooks_outbox;
    webhooks_outbox_is_atomic =>
        sqlite_webhooks_outbox_is_atomic, postgres_webhooks_outbox_is_atomic;
    webhook_deliveries_claim_and_attempts =>
        sqlite_webhook_deliveries_claim_and_attempts,
        postgres_webhook_deliveries_claim_and_attempts;
    webhook_deliveries_concurrent_claims =>
        sqlite_webhook_deliveries_concurrent_claims,
        postgres_webhook_deliveries_concurrent_claims;
    webhooks_cap_holds_under_concurrent_creations =>
        sqlite_webhooks_cap_holds_under_concurrent_creations,
        postgres_webhooks_cap_holds_under_concurrent_creations;
    webhook_deliveries_are_pruned_when_over =>
        sqlite_webhook_deliveries_are_pruned_when_over,
        postgres_webhook_deliveries_are_pruned_when_over;
    webhook_redelivery_waits_for_the_attempt_in_flight =>
        sqlite_webhook_redelivery_waits_for_the_attempt_in_flight,
        postgres_webhook_redelivery_waits_for_the_attempt_in_flight;
    retention_deletes_exactly_what_is_over =>
        sqlite_retention_deletes_exactly_what_is_over,
        postgres_retention_deletes_exactly_what_is_over;
    retention_of_zero_days_keeps_for_ever =>
        sqlite_retention_of_zero_days_keeps_for_ever,
        postgres_retention_of_zero_days_keeps_for_ever;
    retention_sweeps_at_once_delete_each_row_once =>
        sqlite_retention_sweeps_at_once_delete_each_row_once,
        postgres_retention_sweeps_at_once_delete_each_row_once;
}

// Migrating needs the URL, not just a store, so it is written out for each backend.

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_migrate_twice() {
    in_sqlite_file(|path| async move {
        let url = format!("sqlite://{path}");
        migrate_twice(url.clone()).await;
        let mut conn = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("connect");
        let versions: (i64, i64) = sqlx::query_as(COUNT_VERSIONS)
            .fetch_one(&mut conn)
            .await
            .expect("count versions");
        assert_eq!(versions, ALL_VERSIONS);
        // A later release's migration recorded: this release still opens the database.
        sqlx::query(RECORD_LATER_VERSION)
            .bind(b"checksum".as_slice())
            .execute(&mut conn)
            .await
            .expect("record a later version");
        netapi_store::open(&StoreOptions::new(url.clone()), true)
            .await
            .expect("opens after a later release migrated");
    })
    .await;
}

/// The writer never checkpoints the WAL itself (that stalled every queued write); the
/// store's own checkpointer copies it into the database file while the store is open. Read
/// with `immutable`, SQLite sees the file alone, without the WAL: the users appear there only
/// once a checkpoint has copied them.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_checkpoints_the_wal_while_open() {
    in_sqlite_file(|path| async move {
        let url = format!("sqlite://{path}");
        let file_alone = format!("sqlite://{path}?immutable=true");
        let store = netapi_store::open(&StoreOptions::new(url), true)
            .await
            .expect("open");
        let users = 40;
        for n in 0..users {
            add_user(&store, &format!("user{n}@example.com")).await;
        }
        let mut in_file = 0;
        for _ in 0..600 {
            // A fresh connection each time: an immutable one trusts its cache forever. A
            // checkpoint caught half-way may read as a damaged file: that is "not yet".
            if let Ok(mut conn) = sqlx::SqliteConnection::connect(&file_alone).await {
                in_file = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap_or(0);
            }
            if in_file == users {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(
            in_file, users,
            "every committed user reaches the database file while the store is open"
        );
        drop(store);
    })
    .await;
}

/// Under steady writes, passive checkpoints alone never let SQLite start the WAL over (a
/// refresh load grew it by about 50 MB a second, without end): the store's checkpointer then
/// has the writer restart it, and SQLite cuts the file back to its size limit. Writes go on
/// one after another and a reader keeps reading until the WAL file is seen to shrink, which
/// a WAL that is never started over (or never cut back) does not do.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_wal_is_started_over_and_cut_back_while_writes_go_on() {
    in_sqlite_file(|path| async move {
        let url = format!("sqlite://{path}");
        let wal = format!("{path}-wal");
        let store = netapi_store::open(&StoreOptions::new(url.clone()), true)
            .await
            .expect("open");
        let first = add_user(&store, "reader@example.com").await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = tokio::spawn({
            let (store, stop) = (store.clone(), stop.clone());
            async move {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let found = store.get_user(&first.id).await.expect("read");
                    assert!(found.is_some(), "the first user is there throughout");
                    reads += 1;
                }
                reads
            }
        });
        // Each user is a transaction of a few pages; this many make several times the
        // 64 MiB at which the WAL is started over.
        let most = 10_000;
        let (mut largest, mut written, mut shrank) = (0, 1, false);
        for n in 0..most {
            add_user(&store, &format!("user{n}@example.com")).await;
            written += 1;
            let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
            if size < largest {
                shrank = true;
                break;
            }
            largest = size;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(
            reader.await.expect("reader") > 0,
            "the reader read meanwhile"
        );
        assert!(
            shrank,
            "the WAL was cut back while writes went on ({written} users, largest {largest} bytes)"
        );
        let mut conn = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("connect");
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&mut conn)
            .await
            .expect("count");
        assert_eq!(users, written, "every write survived the restart");
        drop(store);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_migrate_twice() {
    let Some(db) = PgDatabase::create("postgres_migrate_twice").await else {
        return;
    };
    let url = db.url.clone();
    let result = run_isolated(async move {
        migrate_twice(url.clone()).await;
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
        let versions: (i64, i64) = sqlx::query_as(COUNT_VERSIONS)
            .fetch_one(&mut conn)
            .await
            .expect("count versions");
        assert_eq!(versions, ALL_VERSIONS);
        // A later release's migration recorded: this release still opens the database.
        sqlx::query(RECORD_LATER_VERSION)
            .bind(b"checksum".as_slice())
            .execute(&mut conn)
            .await
            .expect("record a later version");
        netapi_store::open(&StoreOptions::new(url.clone()), true)
            .await
            .expect("opens after a later release migrated");
    })
    .await;
    db.drop_database().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// What a later release's migration 0099 leaves in sqlx's table.
const RECORD_LATER_VERSION: &str = "INSERT INTO _sqlx_migrations \
     (version, description, success, checksum, execution_time) VALUES (99, 'later', TRUE, $1, 0)";

// Databases made by earlier releases, whose own migration runner recorded versions in
// `schema_migrations` (and split each file on `;`), open with sqlx's migrator, data kept.

const OLD_SQLITE_MIGRATIONS: [&str; 7] = [
    include_str!("../migrations/sqlite/0001_init.sql"),
    include_str!("../migrations/sqlite/0002_rate_limits.sql"),
    include_str!("../migrations/sqlite/0003_key_creator.sql"),
    include_str!("../migrations/sqlite/0004_oauth_hardening.sql"),
    include_str!("../migrations/sqlite/0005_secret_key_check.sql"),
    include_str!("../migrations/sqlite/0006_resources.sql"),
    include_str!("../migrations/sqlite/0007_api_key_usage.sql"),
];

const OLD_POSTGRES_MIGRATIONS: [&str; 7] = [
    include_str!("../migrations/postgres/0001_init.sql"),
    include_str!("../migrations/postgres/0002_rate_limits.sql"),
    include_str!("../migrations/postgres/0003_key_creator.sql"),
    include_str!("../migrations/postgres/0004_oauth_hardening.sql"),
    include_str!("../migrations/postgres/0005_secret_key_check.sql"),
    include_str!("../migrations/postgres/0006_resources.sql"),
    include_str!("../migrations/postgres/0007_api_key_usage.sql"),
];

/// How many migrations there are (0001 to 0013, 0016 to 0019, 0021 to 0027), as sqlx and
/// the old runner's table count them.
const ALL_VERSIONS: (i64, i64) = (24, 24);

/// What the runner of earlier releases did to an empty database, then a user written
/// by an instance of that release.
fn old_runner_script(files: &[&str], alice: &User) -> Vec<String> {
    let mut script = vec![
        "CREATE TABLE IF NOT EXISTS schema_migrations \
         (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)"
            .to_owned(),
    ];
    for (version, sql) in (1..).zip(files) {
        script.extend(
            sql.split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        script.push(format!(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ({version}, {NOW})"
        ));
    }
    script.push(format!(
        "INSERT INTO users (id, email, name, role, password_hash, created_at, updated_at) \
         VALUES ('{}', '{}', '{}', '{}', '{}', {}, {})",
        alice.id,
        alice.email,
        alice.name,
        alice.role.as_str(),
        alice.password_hash,
        alice.created_at,
        alice.updated_at
    ));
    // A client of hers (of that release: no `id_token_signed_response_alg`) with her consent: the rebuild of `oauth_clients` (0017) keeps both.
    script.push(format!(
        "INSERT INTO oauth_clients (id, owner_id, name, redirect_uris, grant_types, scopes, \
         auth_method, created_at, updated_at) VALUES ('{OLD_CLIENT}', '{}', 'old', \
         'https://old.example.com/cb', 'authorization_code', 1, 'none', {NOW}, {NOW})",
        alice.id
    ));
    script.push(format!(
        "INSERT INTO consents (user_id, client_id, scopes, granted_at) \
         VALUES ('{}', '{OLD_CLIENT}', 1, {NOW})",
        alice.id
    ));
    script
}

/// The client [`old_runner_script`] writes.
const OLD_CLIENT: &str = "cli_0ld0000000000000000000";

/// Runs [`old_runner_script`] on `conn`, then closes it.
async fn run_old_runner<C: Connection>(mut conn: C, files: &[&str], alice: &User)
where
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
{
    for statement in old_runner_script(files, alice) {
        sqlx::raw_sql(&statement)
            .execute(&mut conn)
            .await
            .expect(&statement);
    }
    conn.close().await.expect("close");
}

/// `(versions sqlx recorded, versions in the old runner's table)`: instances of earlier
/// releases, which read the latter, find nothing to apply.
const COUNT_VERSIONS: &str = "SELECT (SELECT COUNT(*) FROM _sqlx_migrations WHERE success), \
     (SELECT COUNT(*) FROM schema_migrations)";

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_opens_a_database_of_the_old_migration_runner() {
    // Not through `in_sqlite_file`: rustc cannot prove the generic old runner's future Send
    // (for every lifetime of its executor), as a spawned scenario must be.
    let path = sqlite_path();
    let url = format!("sqlite://{path}");
    let alice = user("alice@example.com");
    run_old_runner(
        sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
            .await
            .expect("create the database"),
        &OLD_SQLITE_MIGRATIONS,
        &alice,
    )
    .await;
    let result = run_isolated(async move {
        reopen_with_data(url.clone(), alice).await;
        let mut conn = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("connect");
        let versions: (i64, i64) = sqlx::query_as(COUNT_VERSIONS)
            .fetch_one(&mut conn)
            .await
            .expect("count versions");
        assert_eq!(versions, ALL_VERSIONS);
    })
    .await;
    remove_sqlite_files(&path);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_opens_a_database_of_the_old_migration_runner() {
    let Some(db) =
        PgDatabase::create("postgres_opens_a_database_of_the_old_migration_runner").await
    else {
        return;
    };
    let url = db.url.clone();
    let alice = user("alice@example.com");
    run_old_runner(
        sqlx::PgConnection::connect(&url).await.expect("connect"),
        &OLD_POSTGRES_MIGRATIONS,
        &alice,
    )
    .await;
    let result = run_isolated(async move {
        reopen_with_data(url.clone(), alice).await;
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
        let versions: (i64, i64) = sqlx::query_as(COUNT_VERSIONS)
            .fetch_one(&mut conn)
            .await
            .expect("count versions");
        assert_eq!(versions, ALL_VERSIONS);
    })
    .await;
    db.drop_database().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Opens (migrating) the database an earlier release made, where `alice` was stored.
async fn reopen_with_data(url: String, alice: User) {
    let options = StoreOptions::new(url);
    let store = netapi_store::open(&options, true)
        .await
        .expect("the database of an earlier release opens");
    assert_eq!(
        store.get_user(&alice.id).await.expect("get"),
        Some(alice.clone())
    );
    // Its ID tokens keep the server's algorithm: migration 0016 pins it to none of its own.
    let old_client = store
        .get_client(OLD_CLIENT)
        .await
        .expect("get client")
        .expect("the old client");
    assert_eq!(old_client.id_token_signed_response_alg, None);
    assert_eq!(old_client.owner_id, Some(alice.id.clone()));
    assert!(
        store
            .get_consent(&alice.id, OLD_CLIENT)
            .await
            .expect("get consent")
            .is_some(),
        "the consent survives the rebuild of oauth_clients"
    );
    // Every table of the latest migration is there: a key with usage counted.
    let bob = user("bob@example.com");
    let key = api_key(&bob.id, 1);
    store
        .create_user(
            &bob,
            Some(&key),
            &event(Some(&bob.id), "user.created"),
            None,
        )
        .await
        .expect("create user");
    store
        .add_api_key_usage(&[UsageCount {
            key_id: key.id.clone(),
            hour: NOW - NOW % 3600,
            outcome: UsageOutcome::Valid,
            count: 2,
        }])
        .await
        .expect("count usage");
    drop(store);
    let again = netapi_store::open(&options, true)
        .await
        .expect("migrating again is a no-op");
    assert_eq!(again.get_user(&alice.id).await.expect("get"), Some(alice));
    assert_eq!(
        again.find_api_key(&key.hash).await.expect("find"),
        Some(key)
    );
}

// Writability needs a second, read-only way into the same database, so it is written out
// for each backend too: SQLite opened with `mode=ro` (a file's mode bits do not stop root),
// PostgreSQL sessions with `default_transaction_read_only` (as on a hot standby).

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_ping_write_refuses_a_read_only_database() {
    in_sqlite_file(|path| {
        let url = format!("sqlite://{path}");
        ping_write(url.clone(), format!("{url}?mode=ro"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_ping_write_refuses_a_read_only_database() {
    let Some(db) = PgDatabase::create("postgres_ping_write_refuses_a_read_only_database").await
    else {
        return;
    };
    let separator = if db.url.contains('?') { '&' } else { '?' };
    let read_only = format!(
        "{}{separator}options=-c%20default_transaction_read_only%3Don",
        db.url
    );
    let result = run_isolated(ping_write(db.url.clone(), read_only)).await;
    db.drop_database().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

async fn ping_write(url: String, read_only_url: String) {
    let store = netapi_store::open(&StoreOptions::new(url), true)
        .await
        .expect("open and migrate");
    store.ping().await.expect("ping");
    store.ping_write().await.expect("a writable database");
    let read_only = netapi_store::open(&StoreOptions::new(read_only_url), false)
        .await
        .expect("open read-only");
    read_only
        .ping()
        .await
        .expect("a read-only database still answers");
    assert!(read_only.ping_write().await.is_err());
    // Probing leaves nothing behind, and the writable store is still writable.
    for _ in 0..100 {
        store.ping_write().await.expect("again");
    }
    let alice = user("alice@example.com");
    store
        .create_user(&alice, None, &event(Some(&alice.id), "user.created"), None)
        .await
        .expect("a write after probing");
}

async fn migrate_twice(url: String) {
    let options = StoreOptions::new(url);
    let first = netapi_store::open(&options, true)
        .await
        .expect("first open and migrate");
    let alice = user("alice@example.com");
    first
        .create_user(&alice, None, &event(Some(&alice.id), "user.created"), None)
        .await
        .expect("create user");
    drop(first);

    let second = netapi_store::open(&options, true)
        .await
        .expect("second migrate is a no-op");
    assert_eq!(
        second.get_user(&alice.id).await.expect("get"),
        Some(alice.clone())
    );
    second.ping().await.expect("ping");

    let third = netapi_store::open(&options, false)
        .await
        .expect("open without migrating");
    assert_eq!(third.get_user(&alice.id).await.expect("get"), Some(alice));
}

// ------------------------------------------------------------------------------------------
// Fixtures
// ------------------------------------------------------------------------------------------

fn h(n: u8) -> SecretHash {
    SecretHash([n; 32])
}

/// Ids are ordered by their millisecond prefix; waiting a little keeps creation order.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

fn user(email: &str) -> User {
    User {
        id: new_id("usr"),
        email: email.to_owned(),
        name: format!("User {email}"),
        role: Role::Member,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        email_verified: false,
        created_at: NOW,
        updated_at: NOW,
        disabled_at: None,
    }
}

fn event(user_id: Option<&str>, kind: &str) -> AuditEvent {
    AuditEvent {
        id: new_id("evt"),
        user_id: user_id.map(str::to_owned),
        kind: kind.to_owned(),
        ip: Some("192.0.2.1".to_owned()),
        detail: format!(r#"{{"kind":"{kind}"}}"#),
        created_at: NOW,
    }
}

fn api_key(user_id: &str, n: u8) -> ApiKey {
    ApiKey {
        id: new_id("key"),
        user_id: user_id.to_owned(),
        name: format!("key {n}"),
        prefix: format!("napi_{n:04}"),
        last_four: format!("{n:04}"),
        hash: h(n),
        scopes: Scopes::EMPTY.with(Scope::KeysRead).with(Scope::UsersRead),
        created_at: NOW,
        last_used_at: None,
        expires_at: None,
        revoked_at: None,
        rate_limit: Some(u32::from(n) * 10),
        created_by_client: None,
        resource: None,
        resource_scopes: Vec::new(),
        metadata: None,
    }
}

fn client(owner_id: &str, n: u8) -> OAuthClient {
    OAuthClient {
        id: new_id("cli"),
        owner_id: Some(owner_id.to_owned()),
        name: format!("client {n}"),
        redirect_uris: vec![
            format!("https://app{n}.example.com/callback"),
            "http://127.0.0.1:8080/cb".to_owned(),
        ],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: Scopes::all().without(Scope::Admin),
        auth_method: ClientAuthMethod::SecretBasic,
        secret_hash: Some(h(n)),
        created_at: NOW,
        updated_at: NOW,
        rate_limit: Some(u32::from(n) + 100),
        trusted: false,
        resources: Vec::new(),
        resource_scopes: Vec::new(),
        id_token_signed_response_alg: Some(SigningAlgorithm::Rs256),
        token_exchange_resources: Vec::new(),
        logout: ClientLogout {
            post_logout_redirect_uris: vec![format!("https://app{n}.example.com/signed-out")],
            backchannel_logout_uri: Some(format!("https://app{n}.example.com/logout")),
            backchannel_logout_session_required: true,
        },
        jwks: None,
        jwks_uri: None,
        require_par: false,
        dpop_bound_access_tokens: false,
    }
}

fn public_client(owner_id: &str, n: u8) -> OAuthClient {
    OAuthClient {
        auth_method: ClientAuthMethod::None,
        secret_hash: None,
        // As a client registered before the column existed.
        id_token_signed_response_alg: None,
        grant_types: vec![GrantType::AuthorizationCode],
        ..client(owner_id, n)
    }
}

fn refresh(user_id: &str, client_id: &str, family_id: &str, n: u8) -> RefreshToken {
    RefreshToken {
        hash: h(n),
        family_id: family_id.to_owned(),
        client_id: client_id.to_owned(),
        user_id: user_id.to_owned(),
        scopes: Scopes::EMPTY.with(Scope::OpenId).with(Scope::Email),
        issued_at: NOW,
        expires_at: NOW + 3600,
        family_expires_at: NOW + 86_400,
        auth_time: NOW - 60,
        amr: netapi_core::model::Amr::Password,
        rotated_at: None,
        revoked_at: None,
        successor_key: Some(netapi_core::secret::DerivationKey([n; 32])),
        resource_id: None,
        resource_scopes: Vec::new(),
        sid: Some(format!("sid_{n}")),
        dpop_jkt: None,
    }
}

fn code(user_id: &str, client_id: &str, n: u8) -> AuthorizationCode {
    AuthorizationCode {
        hash: h(n),
        client_id: client_id.to_owned(),
        user_id: user_id.to_owned(),
        redirect_uri: "https://app.example.com/callback".to_owned(),
        redirect_uri_in_request: true,
        scopes: Scopes::EMPTY.with(Scope::OpenId).with(Scope::Profile),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned()),
        nonce: Some(format!("nonce-{n}")),
        auth_time: NOW - 5,
        amr: netapi_core::model::Amr::Password,
        family_id: new_id("fam"),
        created_at: NOW,
        expires_at: NOW + 60,
        used_at: None,
        resource_id: None,
        resource_scopes: Vec::new(),
        sid: Some(format!("sid_{n}")),
        // Odd codes are bound to a DPoP key (RFC 9449 §10), even ones are not.
        dpop_jkt: (n % 2 == 1).then(|| "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".to_owned()),
    }
}

fn session(user_id: &str, n: u8, expires_at: Timestamp) -> Session {
    Session {
        hash: h(n),
        sid: format!("sid_{n}"),
        user_id: user_id.to_owned(),
        auth_time: NOW,
        amr: netapi_core::model::Amr::Password,
        csrf_token: format!("csrf-{n}"),
        expires_at,
        created_at: NOW - i64::from(n),
        last_seen_at: NOW - i64::from(n),
        user_agent: Some(format!("agent {n}")),
        source: Some("192.0.2.1".to_owned()),
    }
}

fn signing_key(kid: &str, active_from: Timestamp, retire_at: Option<Timestamp>) -> SigningKey {
    SigningKey {
        kid: kid.to_owned(),
        alg: SigningAlgorithm::EdDsa,
        private_key: kid.bytes().chain(0..32u8).collect(),
        created_at: active_from - 10,
        active_from,
        retire_at,
    }
}

async fn add_user(store: &Arc<dyn Store>, email: &str) -> User {
    let u = user(email);
    store
        .create_user(&u, None, &event(Some(&u.id), "user.created"), None)
        .await
        .expect("create user");
    u
}

async fn add_client(store: &Arc<dyn Store>, owner_id: &str, n: u8) -> OAuthClient {
    let c = client(owner_id, n);
    store.insert_client(&c).await.expect("insert client");
    c
}

fn sorted_ids<'a>(ids: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut ids: Vec<String> = ids.into_iter().cloned().collect();
    ids.sort();
    ids
}

fn expect_rotated(outcome: RotateOutcome) -> RefreshToken {
    match outcome {
        RotateOutcome::Rotated(token) => token,
        other => panic!("expected Rotated, got {other:?}"),
    }
}

// ------------------------------------------------------------------------------------------
// Users
// ------------------------------------------------------------------------------------------

async fn users_crud(store: Arc<dyn Store>) {
    store.ping().await.expect("ping");
    let alice = user("alice@example.com");
    let key = api_key(&alice.id, 1);
    let created = event(Some(&alice.id), "user.created");
    store
        .create_user(&alice, Some(&key), &created, None)
        .await
        .expect("create user");

    assert_eq!(
        store.get_user(&alice.id).await.expect("get"),
        Some(alice.clone())
    );
    assert_eq!(
        store
            .get_user_by_email("alice@example.com")
            .await
            .expect("by email"),
        Some(alice.clone())
    );
    assert_eq!(
        store.get_user("usr_unknown").await.expect("get unknown"),
        None
    );
    assert_eq!(
        store
            .get_user_by_email("nobody@example.com")
            .await
            .expect("by email"),
        None
    );
    // The first key and the event were written with the user.
    assert_eq!(store.get_api_key(&key.id).await.expect("key"), Some(key));
    assert_eq!(
        store
            .list_audit_events(Some(&alice.id), None, 10)
            .await
            .expect("events"),
        vec![created]
    );

    let mut changed = alice.clone();
    changed.email = "alice@new.example.com".to_owned();
    changed.name = "Alice Liddell".to_owned();
    changed.role = Role::Admin;
    changed.password_hash = "$argon2id$v=19$other".to_owned();
    changed.updated_at = NOW + 30;
    let changes = UserChanges {
        name: Some(changed.name.clone()),
        email: Some(changed.email.clone()),
        password_hash: Some(changed.password_hash.clone()),
        role: Some(changed.role),
        disabled_at: None,
    };
    assert_eq!(
        store
            .update_user(&alice.id, &changes, NOW + 30)
            .await
            .expect("update"),
        Some(changed.clone())
    );
    assert_eq!(
        store.get_user(&alice.id).await.expect("get"),
        Some(changed.clone())
    );
    assert_eq!(
        store
            .get_user_by_email("alice@new.example.com")
            .await
            .expect("by email"),
        Some(changed.clone())
    );
    assert_eq!(
        store
            .get_user_by_email("alice@example.com")
            .await
            .expect("by email"),
        None
    );

    let ghost = user("ghost@example.com");
    assert_eq!(
        store
            .update_user(&ghost.id, &changes, NOW + 30)
            .await
            .expect("update unknown"),
        None
    );
    assert_eq!(store.get_user(&ghost.id).await.expect("get"), None);
}

async fn users_duplicate_email(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;

    // On create: nothing of the second user is written.
    let imposter = user("alice@example.com");
    let imposter_key = api_key(&imposter.id, 2);
    let imposter_event = event(Some(&imposter.id), "user.created");
    let err = store
        .create_user(&imposter, Some(&imposter_key), &imposter_event, None)
        .await
        .expect_err("duplicate email on create");
    assert!(matches!(err, StoreError::Conflict("email")), "{err:?}");
    assert_eq!(store.get_user(&imposter.id).await.expect("get"), None);
    assert_eq!(
        store.get_api_key(&imposter_key.id).await.expect("key"),
        None
    );
    assert_eq!(store.find_api_key(&h(2)).await.expect("find"), None);
    assert!(
        store
            .list_audit_events(Some(&imposter.id), None, 10)
            .await
            .expect("events")
            .is_empty()
    );
    assert_eq!(
        store
            .get_user_by_email("alice@example.com")
            .await
            .expect("by email"),
        Some(alice.clone())
    );

    // On update.
    let bob = add_user(&store, "bob@example.com").await;
    let stolen = UserChanges {
        email: Some(alice.email.clone()),
        name: Some("Bob renamed".to_owned()),
        ..UserChanges::default()
    };
    let err = store
        .update_user(&bob.id, &stolen, NOW + 30)
        .await
        .expect_err("duplicate email on update");
    assert!(matches!(err, StoreError::Conflict("email")), "{err:?}");
    assert_eq!(store.get_user(&bob.id).await.expect("get"), Some(bob));
    assert_eq!(store.get_user(&alice.id).await.expect("get"), Some(alice));
}

async fn users_list_pagination(store: Arc<dyn Store>) {
    assert!(
        store
            .list_users(None, 10)
            .await
            .expect("empty list")
            .is_empty()
    );
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(add_user(&store, &format!("user{i}@example.com")).await);
    }
    let expected = sorted_ids(users.iter().map(|u| &u.id));

    let all = store.list_users(None, 100).await.expect("list all");
    assert_eq!(
        all.iter().map(|u| u.id.clone()).collect::<Vec<_>>(),
        expected
    );
    for listed in &all {
        let original = users
            .iter()
            .find(|u| u.id == listed.id)
            .expect("known user");
        assert_eq!(listed, original);
    }

    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_users(after.as_deref(), 2)
            .await
            .expect("list page");
        assert!(page.len() <= 2);
        if page.is_empty() {
            break;
        }
        after = Some(page.last().expect("non-empty").id.clone());
        pages.push(page.into_iter().map(|u| u.id).collect::<Vec<_>>());
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(pages.concat(), expected);
    assert_eq!(pages[0], expected[0..2]);
    assert_eq!(pages[2], expected[4..5]);

    let after_third = store
        .list_users(Some(&expected[2]), 10)
        .await
        .expect("after third");
    assert_eq!(
        after_third.into_iter().map(|u| u.id).collect::<Vec<_>>(),
        expected[3..]
    );
}

async fn users_search_by_email_part(store: Arc<dyn Store>) {
    let mut users = Vec::new();
    for email in [
        "ann@example.com",
        "bob@example.org",
        "annette@example.org",
        "a_b@example.com",
        "axb@example.com",
        "100%@example.com",
    ] {
        users.push(add_user(&store, email).await);
    }
    let found = |part: &'static str, after: Option<String>, limit: u32| {
        let store = Arc::clone(&store);
        async move {
            store
                .search_users(part, after.as_deref(), limit)
                .await
                .expect("search")
                .into_iter()
                .map(|u| u.email)
                .collect::<Vec<_>>()
        }
    };
    let emails_of = |wanted: &[&str]| {
        let mut matching: Vec<&User> = users
            .iter()
            .filter(|u| wanted.contains(&u.email.as_str()))
            .collect();
        matching.sort_by(|a, b| a.id.cmp(&b.id));
        matching
            .into_iter()
            .map(|u| u.email.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        found("ann", None, 10).await,
        emails_of(&["ann@example.com", "annette@example.org"])
    );
    assert_eq!(
        found(".org", None, 10).await,
        emails_of(&["bob@example.org", "annette@example.org"])
    );
    // Wildcards in the text are matched as written.
    assert_eq!(
        found("a_b", None, 10).await,
        emails_of(&["a_b@example.com"])
    );
    assert_eq!(
        found("0%@", None, 10).await,
        emails_of(&["100%@example.com"])
    );
    assert!(found("nobody", None, 10).await.is_empty());
    assert_eq!(found("", None, 10).await.len(), users.len());
    // Pages by id.
    let all = emails_of(&["ann@example.com", "annette@example.org"]);
    let first = found("ann", None, 1).await;
    assert_eq!(first, all[..1]);
    let first_id = users
        .iter()
        .find(|u| u.email == first[0])
        .expect("listed")
        .id
        .clone();
    assert_eq!(found("ann", Some(first_id), 10).await, all[1..]);
}

async fn users_concurrent_create(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..10u8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let u = user("race@example.com");
            let key = api_key(&u.id, 10 + i);
            let result = store
                .create_user(&u, Some(&key), &event(Some(&u.id), "user.created"), None)
                .await;
            (u, result)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (u, result) = task.await.expect("task");
        match result {
            Ok(()) => winners.push(u),
            Err(StoreError::Conflict("email")) => {}
            Err(err) => panic!("unexpected error: {err:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create succeeds");
    let winner = winners.pop().expect("one winner");
    assert_eq!(
        store
            .get_user_by_email("race@example.com")
            .await
            .expect("by email"),
        Some(winner.clone())
    );
    assert_eq!(
        store.list_users(None, 100).await.expect("list"),
        vec![winner.clone()]
    );
    assert_eq!(
        store
            .list_api_keys(&winner.id, None, 100)
            .await
            .expect("keys")
            .len(),
        1
    );
    assert_eq!(
        store
            .list_audit_events(None, None, 100)
            .await
            .expect("events")
            .len(),
        1
    );
}

async fn users_delete_cascades(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let bob = add_user(&store, "bob@example.com").await;
    let alice_client = add_client(&store, &alice.id, 1).await;
    let bob_client = add_client(&store, &bob.id, 2).await;

    let key = api_key(&alice.id, 3);
    store.insert_api_key(&key).await.expect("key");
    let bob_key = api_key(&bob.id, 4);
    store.insert_api_key(&bob_key).await.expect("bob key");

    // Alice's token at Bob's client, and Bob's token at Alice's client: both go.
    let alice_token = refresh(&alice.id, &bob_client.id, "fam_a", 5);
    let bob_token_at_alice = refresh(&bob.id, &alice_client.id, "fam_b", 6);
    let bob_token = refresh(&bob.id, &bob_client.id, "fam_c", 7);
    for t in [&alice_token, &bob_token_at_alice, &bob_token] {
        store.insert_refresh_token(t).await.expect("refresh");
    }
    let alice_code = code(&alice.id, &bob_client.id, 8);
    store
        .insert_authorization_code(&alice_code)
        .await
        .expect("code");
    let consent = Consent {
        user_id: alice.id.clone(),
        client_id: bob_client.id.clone(),
        scopes: Scopes::EMPTY.with(Scope::OpenId),
        resource_scopes: Vec::new(),
        granted_at: NOW,
    };
    store.upsert_consent(&consent).await.expect("consent");
    let bob_consent = Consent {
        user_id: bob.id.clone(),
        ..consent.clone()
    };
    store.upsert_consent(&bob_consent).await.expect("consent");
    store
        .insert_session(&session(&alice.id, 9, NOW + 600))
        .await
        .expect("session");
    store
        .insert_session(&session(&bob.id, 10, NOW + 600))
        .await
        .expect("session");

    assert!(store.delete_user(&alice.id).await.expect("delete"));
    assert!(!store.delete_user(&alice.id).await.expect("delete again"));
    assert!(
        !store
            .delete_user("usr_unknown")
            .await
            .expect("delete unknown")
    );

    assert_eq!(store.get_user(&alice.id).await.expect("user"), None);
    assert_eq!(store.get_api_key(&key.id).await.expect("key"), None);
    assert_eq!(store.find_api_key(&key.hash).await.expect("key"), None);
    assert_eq!(
        store.get_client(&alice_client.id).await.expect("client"),
        None
    );
    assert_eq!(store.get_refresh_token(&h(5)).await.expect("token"), None);
    assert_eq!(store.get_refresh_token(&h(6)).await.expect("token"), None);
    assert_eq!(
        store
            .consume_authorization_code(&h(8), NOW)
            .await
            .expect("code"),
        None
    );
    assert_eq!(
        store
            .get_consent(&alice.id, &bob_client.id)
            .await
            .expect("consent"),
        None
    );
    assert!(
        store
            .list_consents(&alice.id)
            .await
            .expect("consents")
            .is_empty()
    );
    assert_eq!(store.get_session(&h(9)).await.expect("session"), None);
    assert!(
        store
            .list_api_keys(&alice.id, None, 10)
            .await
            .expect("keys")
            .is_empty()
    );
    assert!(
        store
            .list_clients(Some(&alice.id), None, 10)
            .await
            .expect("clients")
            .is_empty()
    );

    // Bob keeps everything of his own.
    assert_eq!(
        store.get_user(&bob.id).await.expect("bob"),
        Some(bob.clone())
    );
    assert_eq!(
        store.get_api_key(&bob_key.id).await.expect("key"),
        Some(bob_key)
    );
    assert_eq!(
        store.get_client(&bob_client.id).await.expect("client"),
        Some(bob_client.clone())
    );
    assert_eq!(
        store.get_refresh_token(&h(7)).await.expect("token"),
        Some(bob_token)
    );
    assert_eq!(
        store
            .get_consent(&bob.id, &bob_client.id)
            .await
            .expect("consent"),
        Some(bob_consent)
    );
    assert!(store.get_session(&h(10)).await.expect("session").is_some());
}

// ------------------------------------------------------------------------------------------
// API keys
// ------------------------------------------------------------------------------------------

async fn api_keys_crud(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let bob = add_user(&store, "bob@example.com").await;
    let mut keys = Vec::new();
    for n in 1..=3 {
        let mut key = api_key(&alice.id, n);
        if n == 3 {
            key.expires_at = Some(NOW + 1000);
            key.last_used_at = Some(NOW - 1);
            key.scopes = Scopes::all();
        }
        store.insert_api_key(&key).await.expect("insert key");
        keys.push(key);
    }
    let bob_key = api_key(&bob.id, 4);
    store.insert_api_key(&bob_key).await.expect("insert key");

    for key in &keys {
        assert_eq!(
            store.get_api_key(&key.id).await.expect("get"),
            Some(key.clone())
        );
        assert_eq!(
            store.find_api_key(&key.hash).await.expect("find"),
            Some(key.clone())
        );
    }
    assert_eq!(store.get_api_key("key_unknown").await.expect("get"), None);
    assert_eq!(store.find_api_key(&h(99)).await.expect("find"), None);

    // The hash is unique.
    let clash = api_key(&alice.id, 1);
    let err = store
        .insert_api_key(&clash)
        .await
        .expect_err("duplicate hash");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    let expected = sorted_ids(keys.iter().map(|k| &k.id));
    let listed = store
        .list_api_keys(&alice.id, None, 10)
        .await
        .expect("list");
    assert_eq!(
        listed.iter().map(|k| k.id.clone()).collect::<Vec<_>>(),
        expected
    );
    let first_page = store.list_api_keys(&alice.id, None, 2).await.expect("page");
    assert_eq!(
        first_page.iter().map(|k| k.id.clone()).collect::<Vec<_>>(),
        expected[..2]
    );
    let second_page = store
        .list_api_keys(&alice.id, Some(&expected[1]), 2)
        .await
        .expect("page");
    assert_eq!(
        second_page.iter().map(|k| k.id.clone()).collect::<Vec<_>>(),
        expected[2..]
    );
    assert_eq!(
        store.list_api_keys(&bob.id, None, 10).await.expect("bob's"),
        vec![bob_key]
    );

    // Revoke.
    assert!(
        store
            .revoke_api_key(&keys[1].id, NOW + 5)
            .await
            .expect("revoke")
    );
    assert!(
        !store
            .revoke_api_key(&keys[1].id, NOW + 6)
            .await
            .expect("revoke again")
    );
    assert!(
        !store
            .revoke_api_key("key_unknown", NOW)
            .await
            .expect("revoke unknown")
    );
    let revoked = store
        .get_api_key(&keys[1].id)
        .await
        .expect("get")
        .expect("still stored");
    assert_eq!(revoked.revoked_at, Some(NOW + 5));
    assert_eq!(
        store.find_api_key(&keys[1].hash).await.expect("find"),
        Some(revoked)
    );
    let listed = store
        .list_api_keys(&alice.id, None, 10)
        .await
        .expect("list");
    let mut live = vec![keys[0].id.clone(), keys[2].id.clone()];
    live.sort();
    assert_eq!(
        listed.iter().map(|k| k.id.clone()).collect::<Vec<_>>(),
        live
    );
}

async fn api_keys_rotate(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let old = api_key(&alice.id, 1);
    store.insert_api_key(&old).await.expect("insert");

    let new = api_key(&alice.id, 2);
    assert!(
        store
            .rotate_api_key(&old.id, NOW + 100, &new)
            .await
            .expect("rotate")
    );
    let old_now = store.get_api_key(&old.id).await.expect("get").expect("old");
    assert_eq!(old_now.expires_at, Some(NOW + 100));
    assert_eq!(old_now.revoked_at, None);
    assert_eq!(
        old_now,
        ApiKey {
            expires_at: Some(NOW + 100),
            ..old.clone()
        }
    );
    assert_eq!(
        store.get_api_key(&new.id).await.expect("get"),
        Some(new.clone())
    );
    assert_eq!(
        store.find_api_key(&new.hash).await.expect("find"),
        Some(new.clone())
    );

    // A revoked key cannot be rotated, and nothing is written.
    let revoked = api_key(&alice.id, 3);
    store.insert_api_key(&revoked).await.expect("insert");
    assert!(
        store
            .revoke_api_key(&revoked.id, NOW + 1)
            .await
            .expect("revoke")
    );
    let refused = api_key(&alice.id, 4);
    assert!(
        !store
            .rotate_api_key(&revoked.id, NOW + 100, &refused)
            .await
            .expect("rotate revoked")
    );
    assert_eq!(store.get_api_key(&refused.id).await.expect("get"), None);
    assert_eq!(store.find_api_key(&refused.hash).await.expect("find"), None);
    let still = store
        .get_api_key(&revoked.id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(still.expires_at, None);
    assert_eq!(still.revoked_at, Some(NOW + 1));

    // Unknown key: false, nothing written.
    let orphan = api_key(&alice.id, 5);
    assert!(
        !store
            .rotate_api_key("key_unknown", NOW + 100, &orphan)
            .await
            .expect("rotate unknown")
    );
    assert_eq!(store.get_api_key(&orphan.id).await.expect("get"), None);

    // A rotated key can be rotated again (its successor too).
    let newer = api_key(&alice.id, 6);
    assert!(
        store
            .rotate_api_key(&new.id, NOW + 200, &newer)
            .await
            .expect("rotate successor")
    );
    assert_eq!(
        store
            .get_api_key(&new.id)
            .await
            .expect("get")
            .expect("new")
            .expires_at,
        Some(NOW + 200)
    );
    assert_eq!(
        store.get_api_key(&newer.id).await.expect("get"),
        Some(newer)
    );
}

async fn api_keys_record_use(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let k1 = api_key(&alice.id, 1);
    let k2 = api_key(&alice.id, 2);
    store.insert_api_key(&k1).await.expect("insert");
    store.insert_api_key(&k2).await.expect("insert");

    let last_used = |key: ApiKey| {
        let store = Arc::clone(&store);
        async move {
            store
                .get_api_key(&key.id)
                .await
                .expect("get")
                .expect("key")
                .last_used_at
        }
    };

    store
        .record_api_key_use(&[(k1.id.clone(), NOW + 10), (k2.id.clone(), NOW + 20)])
        .await
        .expect("record");
    assert_eq!(last_used(k1.clone()).await, Some(NOW + 10));
    assert_eq!(last_used(k2.clone()).await, Some(NOW + 20));

    // Never backwards; unknown ids are ignored.
    store
        .record_api_key_use(&[
            (k1.id.clone(), NOW + 5),
            (k2.id.clone(), NOW + 20),
            ("key_unknown".to_owned(), NOW + 50),
        ])
        .await
        .expect("record older");
    assert_eq!(last_used(k1.clone()).await, Some(NOW + 10));
    assert_eq!(last_used(k2.clone()).await, Some(NOW + 20));

    store
        .record_api_key_use(&[(k1.id.clone(), NOW + 30)])
        .await
        .expect("record newer");
    assert_eq!(last_used(k1.clone()).await, Some(NOW + 30));
    assert_eq!(last_used(k2.clone()).await, Some(NOW + 20));

    store.record_api_key_use(&[]).await.expect("empty batch");
    assert_eq!(last_used(k1).await, Some(NOW + 30));
}

async fn api_key_usage_adds_up(store: Arc<dyn Store>) {
    use netapi_core::usage::{HOUR, UsageCount, UsageOutcome};
    let alice = add_user(&store, "alice@example.com").await;
    let key = api_key(&alice.id, 1);
    store.insert_api_key(&key).await.expect("insert");
    let hour = NOW - NOW.rem_euclid(HOUR);
    let count = |key_id: &str, hour, outcome, count| UsageCount {
        key_id: key_id.to_owned(),
        hour,
        outcome,
        count,
    };
    store
        .add_api_key_usage(&[
            count(&key.id, hour, UsageOutcome::Valid, 3),
            count(&key.id, hour, UsageOutcome::Expired, 1),
            count(&key.id, hour - HOUR, UsageOutcome::Valid, 5),
            // A key that no longer exists is dropped, not an error that would keep the batch.
            count("key_gone", hour, UsageOutcome::Valid, 7),
        ])
        .await
        .expect("add");
    // A second batch adds to the first.
    store
        .add_api_key_usage(&[count(&key.id, hour, UsageOutcome::Valid, 2)])
        .await
        .expect("add again");
    let mut rows = store
        .api_key_usage(&key.id, hour - HOUR, hour + HOUR)
        .await
        .expect("read");
    rows.sort_by_key(|r| (r.hour, r.outcome.as_str()));
    assert_eq!(
        rows,
        vec![
            count(&key.id, hour - HOUR, UsageOutcome::Valid, 5),
            count(&key.id, hour, UsageOutcome::Expired, 1),
            count(&key.id, hour, UsageOutcome::Valid, 5),
        ]
    );
    assert!(
        store
            .api_key_usage("key_gone", hour - HOUR, hour + HOUR)
            .await
            .expect("read")
            .is_empty()
    );
    // The range is half-open and old hours can be forgotten.
    assert_eq!(
        store
            .api_key_usage(&key.id, hour, hour + HOUR)
            .await
            .expect("read")
            .len(),
        2
    );
    assert_eq!(
        store
            .delete_expired_batch(Expired::ApiKeyUsage, hour, 10)
            .await
            .expect("forget"),
        1
    );
    assert_eq!(
        store
            .api_key_usage(&key.id, hour - HOUR, hour + HOUR)
            .await
            .expect("read")
            .len(),
        2
    );
    // Deleting the user takes its keys' counts with them.
    store.delete_user(&alice.id).await.expect("delete user");
    assert!(
        store
            .api_key_usage(&key.id, hour - HOUR, hour + HOUR)
            .await
            .expect("read")
            .is_empty()
    );
}

// ------------------------------------------------------------------------------------------
// Audit events
// ------------------------------------------------------------------------------------------

async fn audit_events_filtered(store: Arc<dyn Store>) {
    let alice = user("alice@example.com");
    let bob = user("bob@example.com");
    let mut events = Vec::new();
    for (i, (who, kind)) in [
        (Some(&alice.id), "user.updated"),
        (Some(&bob.id), "user.updated"),
        (None, "invitation.created"),
        (Some(&alice.id), "api_key.revoked"),
        (Some(&alice.id), "user.updated"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = event(who.map(String::as_str), kind);
        e.created_at = NOW + 10 * i64::try_from(i).expect("small");
        store.insert_audit_event(&e).await.expect("insert event");
        events.push(e);
        tick().await;
    }
    let search = |filter: AuditFilter, before: Option<String>, limit: u32| {
        let store = Arc::clone(&store);
        async move {
            store
                .search_audit_events(&filter, before.as_deref(), limit)
                .await
                .expect("search")
        }
    };
    let picked = |indexes: &[usize]| -> Vec<AuditEvent> {
        indexes.iter().map(|&i| events[i].clone()).collect()
    };
    assert_eq!(
        search(AuditFilter::default(), None, 100).await,
        picked(&[4, 3, 2, 1, 0])
    );
    let alices = AuditFilter {
        user_id: Some(alice.id.clone()),
        ..AuditFilter::default()
    };
    assert_eq!(search(alices.clone(), None, 100).await, picked(&[4, 3, 0]));
    let updates = AuditFilter {
        kind: Some("user.updated".to_owned()),
        ..AuditFilter::default()
    };
    assert_eq!(search(updates.clone(), None, 100).await, picked(&[4, 1, 0]));
    let alices_updates = AuditFilter {
        kind: Some("user.updated".to_owned()),
        ..alices
    };
    assert_eq!(search(alices_updates, None, 100).await, picked(&[4, 0]));
    // From is inclusive, to exclusive.
    let window = AuditFilter {
        from: Some(NOW + 10),
        to: Some(NOW + 30),
        ..AuditFilter::default()
    };
    assert_eq!(search(window, None, 100).await, picked(&[2, 1]));
    // Pages with `before`.
    assert_eq!(search(updates.clone(), None, 2).await, picked(&[4, 1]));
    assert_eq!(
        search(updates, Some(events[1].id.clone()), 2).await,
        picked(&[0])
    );
    let nobody = AuditFilter {
        user_id: Some("usr_nobody".to_owned()),
        ..AuditFilter::default()
    };
    assert!(search(nobody, None, 100).await.is_empty());
}

async fn audit_events(store: Arc<dyn Store>) {
    let alice = user("alice@example.com");
    let bob = user("bob@example.com");
    // Events need no user row; a user id may outlive its user.
    let mut events = Vec::new();
    for (i, who) in [
        Some(&alice.id),
        Some(&bob.id),
        None,
        Some(&alice.id),
        Some(&alice.id),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = event(who.map(String::as_str), &format!("kind.{i}"));
        e.created_at = NOW + i64::try_from(i).expect("small");
        if i == 2 {
            e.ip = None;
        }
        store.insert_audit_event(&e).await.expect("insert event");
        events.push(e);
        tick().await;
    }
    let newest_first: Vec<AuditEvent> = events.iter().rev().cloned().collect();

    assert_eq!(
        store.list_audit_events(None, None, 100).await.expect("all"),
        newest_first
    );

    // Paging with `before`.
    let page1 = store
        .list_audit_events(None, None, 2)
        .await
        .expect("page 1");
    assert_eq!(page1, newest_first[0..2]);
    let page2 = store
        .list_audit_events(None, Some(&page1[1].id), 2)
        .await
        .expect("page 2");
    assert_eq!(page2, newest_first[2..4]);
    let page3 = store
        .list_audit_events(None, Some(&page2[1].id), 2)
        .await
        .expect("page 3");
    assert_eq!(page3, newest_first[4..5]);
    assert!(
        store
            .list_audit_events(None, Some(&page3[0].id), 2)
            .await
            .expect("past the end")
            .is_empty()
    );

    // Per user.
    let alices: Vec<AuditEvent> = newest_first
        .iter()
        .filter(|e| e.user_id.as_deref() == Some(alice.id.as_str()))
        .cloned()
        .collect();
    assert_eq!(alices.len(), 3);
    assert_eq!(
        store
            .list_audit_events(Some(&alice.id), None, 100)
            .await
            .expect("alice's"),
        alices
    );
    assert_eq!(
        store
            .list_audit_events(Some(&alice.id), Some(&alices[0].id), 100)
            .await
            .expect("alice's before the newest"),
        alices[1..]
    );
    assert_eq!(
        store
            .list_audit_events(Some(&alice.id), Some(&alices[0].id), 1)
            .await
            .expect("alice's, one"),
        alices[1..2]
    );
    assert_eq!(
        store
            .list_audit_events(Some(&bob.id), None, 100)
            .await
            .expect("bob's"),
        vec![events[1].clone()]
    );
    assert!(
        store
            .list_audit_events(Some("usr_nobody"), None, 100)
            .await
            .expect("nobody's")
            .is_empty()
    );
}

// ------------------------------------------------------------------------------------------
// OAuth clients
// ------------------------------------------------------------------------------------------

/// Only `set_client_trusted` changes the mark: a PATCH written from an older read leaves it.
/// A client's `token_exchange_resources` and the token-exchange grant type come back as
/// written, change only when a change names them, and are replaced as a whole.
async fn clients_token_exchange_resources(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let exchanging = OAuthClient {
        grant_types: vec![GrantType::ClientCredentials, GrantType::TokenExchange],
        token_exchange_resources: vec![
            "https://billing.example.com".to_owned(),
            "https://netapi.example.com".to_owned(),
        ],
        ..client(&alice.id, 1)
    };
    store.insert_client(&exchanging).await.expect("insert");
    assert_eq!(
        store.get_client(&exchanging.id).await.expect("get"),
        Some(exchanging.clone())
    );
    let rename = ClientChanges {
        name: Some("renamed".to_owned()),
        ..ClientChanges::default()
    };
    let renamed = store
        .update_client(&exchanging.id, &rename, NOW + 1)
        .await
        .expect("update")
        .expect("known");
    assert_eq!(
        renamed.token_exchange_resources,
        exchanging.token_exchange_resources
    );
    assert_eq!(renamed.grant_types, exchanging.grant_types);
    let narrowed = ClientChanges {
        token_exchange_resources: Some(vec!["https://billing.example.com".to_owned()]),
        ..ClientChanges::default()
    };
    let changed = store
        .update_client(&exchanging.id, &narrowed, NOW + 2)
        .await
        .expect("update")
        .expect("known");
    assert_eq!(
        changed.token_exchange_resources,
        vec!["https://billing.example.com".to_owned()]
    );
    assert_eq!(changed.name, "renamed");
    let cleared = ClientChanges {
        token_exchange_resources: Some(Vec::new()),
        ..ClientChanges::default()
    };
    store
        .update_client(&exchanging.id, &cleared, NOW + 3)
        .await
        .expect("update")
        .expect("known");
    let read = store
        .get_client(&exchanging.id)
        .await
        .expect("get")
        .expect("known");
    assert!(read.token_exchange_resources.is_empty());
}

async fn clients_trusted(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let c1 = add_client(&store, &alice.id, 1).await;
    assert!(!c1.trusted);
    assert!(store.set_client_trusted(&c1.id, true).await.expect("trust"));
    let trusted = store.get_client(&c1.id).await.expect("get").expect("known");
    assert!(trusted.trusted);
    let rename = ClientChanges {
        name: Some("renamed".to_owned()),
        ..ClientChanges::default()
    };
    let renamed = store
        .update_client(&c1.id, &rename, NOW + 1)
        .await
        .expect("update")
        .expect("known");
    assert!(renamed.trusted);
    let read = store.get_client(&c1.id).await.expect("get").expect("known");
    assert_eq!((read.name.as_str(), read.trusted), ("renamed", true));
    assert!(
        store
            .set_client_trusted(&c1.id, false)
            .await
            .expect("untrust")
    );
    assert!(
        !store
            .get_client(&c1.id)
            .await
            .expect("get")
            .expect("known")
            .trusted
    );
    assert!(
        !store
            .set_client_trusted("cli_unknown", true)
            .await
            .expect("unknown")
    );
    let c2 = OAuthClient {
        trusted: true,
        ..client(&alice.id, 2)
    };
    store.insert_client(&c2).await.expect("insert trusted");
    assert_eq!(store.get_client(&c2.id).await.expect("get"), Some(c2));
}

async fn clients_crud(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let bob = add_user(&store, "bob@example.com").await;
    let c1 = add_client(&store, &alice.id, 1).await;
    let c2 = public_client(&alice.id, 2);
    store.insert_client(&c2).await.expect("insert public");
    let c3 = add_client(&store, &bob.id, 3).await;

    assert_eq!(
        store.get_client(&c1.id).await.expect("get"),
        Some(c1.clone())
    );
    assert_eq!(
        store.get_client(&c2.id).await.expect("get"),
        Some(c2.clone())
    );
    assert_eq!(store.get_client("cli_unknown").await.expect("get"), None);

    let ids = |clients: Vec<OAuthClient>| clients.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let alices = sorted_ids([&c1.id, &c2.id]);
    let everyone = sorted_ids([&c1.id, &c2.id, &c3.id]);
    assert_eq!(
        ids(store
            .list_clients(Some(&alice.id), None, 10)
            .await
            .expect("alice's")),
        alices
    );
    assert_eq!(
        store
            .list_clients(Some(&bob.id), None, 10)
            .await
            .expect("bob's"),
        vec![c3.clone()]
    );
    assert_eq!(
        ids(store.list_clients(None, None, 10).await.expect("all")),
        everyone
    );
    assert_eq!(
        ids(store.list_clients(None, None, 2).await.expect("page 1")),
        everyone[..2]
    );
    assert_eq!(
        ids(store
            .list_clients(None, Some(&everyone[1]), 2)
            .await
            .expect("page 2")),
        everyone[2..]
    );
    assert_eq!(
        ids(store
            .list_clients(Some(&alice.id), Some(&alices[0]), 10)
            .await
            .expect("alice's page 2")),
        alices[1..]
    );

    // Update, then a new secret hash.
    let mut changed = c1.clone();
    changed.name = "renamed".to_owned();
    changed.redirect_uris = vec!["https://new.example.com/cb".to_owned()];
    changed.grant_types = vec![
        GrantType::AuthorizationCode,
        GrantType::ClientCredentials,
        GrantType::RefreshToken,
    ];
    changed.scopes = Scopes::EMPTY.with(Scope::OpenId).with(Scope::UsersRead);
    changed.rate_limit = None;
    changed.updated_at = NOW + 60;
    changed.resources = vec!["https://orders.example.com".to_owned()];
    changed.resource_scopes = vec!["orders:read".to_owned(), "orders:write".to_owned()];
    changed.id_token_signed_response_alg = Some(SigningAlgorithm::EdDsa);
    changed.token_exchange_resources = vec!["https://billing.example.com".to_owned()];
    changed.jwks_uri = Some("https://app.example.com/jwks.json".to_owned());
    changed.require_par = true;
    changed.dpop_bound_access_tokens = true;
    let changes = ClientChanges {
        name: Some(changed.name.clone()),
        redirect_uris: Some(changed.redirect_uris.clone()),
        grant_types: Some(changed.grant_types.clone()),
        scopes: Some(changed.scopes),
        rate_limit: Some(None),
        resources: Some(changed.resources.clone()),
        resource_scopes: Some(changed.resource_scopes.clone()),
        id_token_signed_response_alg: changed.id_token_signed_response_alg,
        token_exchange_resources: Some(changed.token_exchange_resources.clone()),
        logout: None,
        keys: Some((None, changed.jwks_uri.clone())),
        require_par: Some(true),
        dpop_bound_access_tokens: Some(true),
    };
    assert_eq!(
        store
            .update_client(&c1.id, &changes, NOW + 60)
            .await
            .expect("update"),
        Some(changed.clone())
    );
    changed.secret_hash = Some(h(42));
    changed.updated_at = NOW + 70;
    assert!(
        store
            .set_client_secret(&c1.id, &h(42), NOW + 70)
            .await
            .expect("new secret")
    );
    assert_eq!(
        store.get_client(&c1.id).await.expect("get"),
        Some(changed.clone())
    );
    let ghost = client(&alice.id, 7);
    assert_eq!(
        store
            .update_client(&ghost.id, &changes, NOW + 60)
            .await
            .expect("update unknown"),
        None
    );
    assert!(
        !store
            .set_client_secret(&ghost.id, &h(43), NOW + 60)
            .await
            .expect("secret of unknown")
    );
    assert_eq!(store.get_client(&ghost.id).await.expect("get"), None);

    // Delete.
    assert!(store.delete_client(&c2.id).await.expect("delete"));
    assert!(!store.delete_client(&c2.id).await.expect("delete again"));
    assert_eq!(store.get_client(&c2.id).await.expect("get"), None);
    assert_eq!(
        store
            .list_clients(Some(&alice.id), None, 10)
            .await
            .expect("alice's"),
        vec![changed]
    );
}

async fn clients_delete_cascades(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let bob = add_user(&store, "bob@example.com").await;
    let doomed = add_client(&store, &bob.id, 1).await;
    let kept = add_client(&store, &bob.id, 2).await;

    store
        .insert_refresh_token(&refresh(&alice.id, &doomed.id, "fam_1", 10))
        .await
        .expect("token");
    let kept_token = refresh(&alice.id, &kept.id, "fam_2", 11);
    store
        .insert_refresh_token(&kept_token)
        .await
        .expect("token");
    store
        .insert_authorization_code(&code(&alice.id, &doomed.id, 12))
        .await
        .expect("code");
    for c in [&doomed, &kept] {
        store
            .upsert_consent(&Consent {
                user_id: alice.id.clone(),
                client_id: c.id.clone(),
                scopes: Scopes::EMPTY.with(Scope::OpenId),
                resource_scopes: Vec::new(),
                granted_at: NOW,
            })
            .await
            .expect("consent");
    }

    assert!(store.delete_client(&doomed.id).await.expect("delete"));
    assert_eq!(store.get_refresh_token(&h(10)).await.expect("token"), None);
    assert_eq!(
        store
            .consume_authorization_code(&h(12), NOW)
            .await
            .expect("code"),
        None
    );
    assert_eq!(
        store
            .get_consent(&alice.id, &doomed.id)
            .await
            .expect("consent"),
        None
    );
    assert_eq!(
        store.get_refresh_token(&h(11)).await.expect("token"),
        Some(kept_token)
    );
    assert!(
        store
            .get_consent(&alice.id, &kept.id)
            .await
            .expect("consent")
            .is_some()
    );
    assert_eq!(store.get_user(&bob.id).await.expect("owner"), Some(bob));
}

// ------------------------------------------------------------------------------------------
// Refresh tokens
// ------------------------------------------------------------------------------------------

async fn refresh_rotation(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;
    let grace = 30;

    let first = refresh(&alice.id, &app.id, "fam_main", 1);
    store.insert_refresh_token(&first).await.expect("insert");
    assert_eq!(
        store.get_refresh_token(&first.hash).await.expect("get"),
        Some(first.clone())
    );
    assert_eq!(store.get_refresh_token(&h(99)).await.expect("get"), None);
    // Another family, which reuse detection must not touch.
    let bystander = refresh(&alice.id, &app.id, "fam_other", 50);
    store
        .insert_refresh_token(&bystander)
        .await
        .expect("insert");

    // First rotation.
    let successor1 = RefreshToken {
        issued_at: NOW + 10,
        expires_at: NOW + 3610,
        ..refresh(&alice.id, &app.id, "fam_main", 2)
    };
    let exchanged = expect_rotated(
        store
            .rotate_refresh_token(&first.hash, NOW + 10, grace, &successor1)
            .await
            .expect("rotate"),
    );
    let first_rotated = RefreshToken {
        rotated_at: Some(NOW + 10),
        ..first.clone()
    };
    assert_eq!(exchanged, first_rotated);
    assert_eq!(
        store.get_refresh_token(&first.hash).await.expect("get"),
        Some(first_rotated.clone())
    );
    assert_eq!(
        store
            .get_refresh_token(&successor1.hash)
            .await
            .expect("get"),
        Some(successor1.clone())
    );

    // Used again within the grace period: another successor.
    let successor2 = RefreshToken {
        issued_at: NOW + 20,
        ..refresh(&alice.id, &app.id, "fam_main", 3)
    };
    let again = expect_rotated(
        store
            .rotate_refresh_token(&first.hash, NOW + 20, grace, &successor2)
            .await
            .expect("rotate within grace"),
    );
    assert_eq!(again, first_rotated);
    assert_eq!(
        store
            .get_refresh_token(&successor2.hash)
            .await
            .expect("get"),
        Some(successor2.clone())
    );
    assert_eq!(
        store.get_refresh_token(&first.hash).await.expect("get"),
        Some(first_rotated.clone()),
        "the first rotation time is kept"
    );

    // The successor rotates normally.
    let grandchild = refresh(&alice.id, &app.id, "fam_main", 4);
    let exchanged = expect_rotated(
        store
            .rotate_refresh_token(&successor1.hash, NOW + 25, grace, &grandchild)
            .await
            .expect("rotate successor"),
    );
    assert_eq!(exchanged.hash, successor1.hash);
    assert_eq!(exchanged.rotated_at, Some(NOW + 25));

    // Used after the grace period: reuse, and the whole family is revoked.
    let refused = refresh(&alice.id, &app.id, "fam_main", 5);
    // Exactly `grace` seconds after the rotation is no longer "less than `grace` seconds ago".
    let reuse_at = NOW + 10 + grace;
    match store
        .rotate_refresh_token(&first.hash, reuse_at, grace, &refused)
        .await
        .expect("rotate after grace")
    {
        RotateOutcome::ReuseDetected(token) => assert_eq!(token, first_rotated),
        other => panic!("expected ReuseDetected, got {other:?}"),
    }
    assert_eq!(
        store.get_refresh_token(&refused.hash).await.expect("get"),
        None
    );
    for hash in [
        first.hash,
        successor1.hash,
        successor2.hash,
        grandchild.hash,
    ] {
        let token = store
            .get_refresh_token(&hash)
            .await
            .expect("get")
            .expect("still stored");
        assert_eq!(
            token.revoked_at,
            Some(reuse_at),
            "every family member revoked"
        );
    }
    assert_eq!(
        store.get_refresh_token(&bystander.hash).await.expect("get"),
        Some(bystander),
        "other families untouched"
    );

    // A revoked token is simply invalid from now on, even the live-looking successor.
    for hash in [first.hash, successor2.hash] {
        let late = refresh(&alice.id, &app.id, "fam_main", 6);
        assert_eq!(
            store
                .rotate_refresh_token(&hash, reuse_at + 1, grace, &late)
                .await
                .expect("rotate revoked"),
            RotateOutcome::Invalid
        );
        assert_eq!(
            store.get_refresh_token(&late.hash).await.expect("get"),
            None
        );
    }
}

/// Within the grace period a token is exchanged again for the same successor, stored once;
/// once that successor has been used itself, the old token is a replay and the family dies.
async fn refresh_grace_same_successor(store: Arc<dyn Store>) {
    let grace = 30;
    let alice = add_user(&store, "alice@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;
    let first = refresh(&alice.id, &app.id, "fam_main", 1);
    store.insert_refresh_token(&first).await.expect("insert");
    let successor = RefreshToken {
        issued_at: NOW + 10,
        ..refresh(&alice.id, &app.id, "fam_main", 2)
    };
    expect_rotated(
        store
            .rotate_refresh_token(&first.hash, NOW + 10, grace, &successor)
            .await
            .expect("rotate"),
    );
    // Again within the grace period, with the same successor (as computed later): the stored
    // one is kept as it was, not written twice.
    let recomputed = RefreshToken {
        issued_at: NOW + 15,
        expires_at: NOW + 3615,
        ..successor.clone()
    };
    let again = expect_rotated(
        store
            .rotate_refresh_token(&first.hash, NOW + 15, grace, &recomputed)
            .await
            .expect("rotate within grace"),
    );
    assert_eq!(again.rotated_at, Some(NOW + 10));
    assert_eq!(
        store.get_refresh_token(&successor.hash).await.expect("get"),
        Some(successor.clone())
    );
    // The successor is used; then the old token comes back, still within its grace period.
    let grandchild = refresh(&alice.id, &app.id, "fam_main", 3);
    expect_rotated(
        store
            .rotate_refresh_token(&successor.hash, NOW + 16, grace, &grandchild)
            .await
            .expect("rotate the successor"),
    );
    match store
        .rotate_refresh_token(&first.hash, NOW + 17, grace, &recomputed)
        .await
        .expect("replay")
    {
        RotateOutcome::ReuseDetected(token) => assert_eq!(token.hash, first.hash),
        other => panic!("expected ReuseDetected, got {other:?}"),
    }
    for hash in [first.hash, successor.hash, grandchild.hash] {
        let token = store
            .get_refresh_token(&hash)
            .await
            .expect("get")
            .expect("still stored");
        assert_eq!(
            token.revoked_at,
            Some(NOW + 17),
            "every family member revoked"
        );
    }
}

async fn refresh_invalid(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;

    // Unknown.
    let successor = refresh(&alice.id, &app.id, "fam_x", 2);
    assert_eq!(
        store
            .rotate_refresh_token(&h(1), NOW, 30, &successor)
            .await
            .expect("rotate unknown"),
        RotateOutcome::Invalid
    );
    assert_eq!(
        store.get_refresh_token(&successor.hash).await.expect("get"),
        None
    );

    // Idle-expired.
    let expired = RefreshToken {
        expires_at: NOW + 50,
        ..refresh(&alice.id, &app.id, "fam_expired", 3)
    };
    store.insert_refresh_token(&expired).await.expect("insert");
    for at in [NOW + 50, NOW + 60] {
        assert_eq!(
            store
                .rotate_refresh_token(&expired.hash, at, 30, &successor)
                .await
                .expect("rotate expired"),
            RotateOutcome::Invalid
        );
    }
    assert_eq!(
        store.get_refresh_token(&successor.hash).await.expect("get"),
        None
    );
    assert_eq!(
        store.get_refresh_token(&expired.hash).await.expect("get"),
        Some(expired),
        "an expired token is left as it was"
    );

    // Revoked.
    let revoked = RefreshToken {
        revoked_at: Some(NOW - 1),
        ..refresh(&alice.id, &app.id, "fam_revoked", 4)
    };
    store.insert_refresh_token(&revoked).await.expect("insert");
    assert_eq!(
        store
            .rotate_refresh_token(&revoked.hash, NOW, 30, &successor)
            .await
            .expect("rotate revoked"),
        RotateOutcome::Invalid
    );

    // Rotated and then its family expired: invalid, not reuse.
    let old = RefreshToken {
        family_expires_at: NOW + 100,
        ..refresh(&alice.id, &app.id, "fam_old", 5)
    };
    store.insert_refresh_token(&old).await.expect("insert");
    let next = RefreshToken {
        family_expires_at: NOW + 100,
        ..refresh(&alice.id, &app.id, "fam_old", 6)
    };
    expect_rotated(
        store
            .rotate_refresh_token(&old.hash, NOW + 10, 30, &next)
            .await
            .expect("rotate"),
    );
    assert_eq!(
        store
            .rotate_refresh_token(&old.hash, NOW + 200, 30, &successor)
            .await
            .expect("rotate after family expiry"),
        RotateOutcome::Invalid
    );
    assert_eq!(
        store
            .get_refresh_token(&next.hash)
            .await
            .expect("get")
            .expect("next")
            .revoked_at,
        None
    );
    assert_eq!(
        store.get_refresh_token(&successor.hash).await.expect("get"),
        None
    );
}

async fn refresh_concurrent_rotation(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;
    let token = refresh(&alice.id, &app.id, "fam_race", 1);
    store.insert_refresh_token(&token).await.expect("insert");

    let mut tasks = Vec::new();
    for i in 0..20u8 {
        let store = Arc::clone(&store);
        let successor = refresh(&alice.id, &app.id, "fam_race", 100 + i);
        let hash = token.hash;
        tasks.push(tokio::spawn(async move {
            let outcome = store
                .rotate_refresh_token(&hash, NOW + 10, 0, &successor)
                .await;
            (successor.hash, outcome)
        }));
    }
    let (mut rotated, mut reused, mut invalid) = (Vec::new(), 0, 0);
    for task in tasks {
        let (successor, outcome) = task.await.expect("task");
        match outcome.expect("rotation never fails") {
            RotateOutcome::Rotated(old) => {
                assert_eq!(old.hash, token.hash);
                rotated.push(successor);
            }
            RotateOutcome::ReuseDetected(old) => {
                assert_eq!(old.hash, token.hash);
                reused += 1;
            }
            RotateOutcome::Invalid => invalid += 1,
        }
    }
    assert_eq!(rotated.len(), 1, "exactly one rotation wins");
    assert_eq!(reused + invalid, 19);
    assert!(reused >= 1, "the first loser detects the reuse");

    // Only the winner's successor was stored, and the family is revoked by the reuse.
    for i in 0..20u8 {
        let stored = store.get_refresh_token(&h(100 + i)).await.expect("get");
        if h(100 + i) == rotated[0] {
            let stored = stored.expect("winner's successor stored");
            assert!(stored.revoked_at.is_some());
        } else {
            assert_eq!(stored, None, "a loser's successor is not stored");
        }
    }
    let old = store
        .get_refresh_token(&token.hash)
        .await
        .expect("get")
        .expect("old");
    assert_eq!(old.rotated_at, Some(NOW + 10));
    assert_eq!(old.revoked_at, Some(NOW + 10));
}

/// Concurrent rotations of many families (more than one group commit holds) all rotate,
/// and one that fails (its successor's hash is taken) fails alone: the others of its batch
/// are still rotated.
async fn refresh_group_commit(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;
    let hash = |family: u8, generation: u8| {
        SecretHash([
            family, generation, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
            7, 7, 7, 7, 7, 7, 7, 7,
        ])
    };
    let families = 150u8;
    for f in 0..families {
        let mut token = refresh(&alice.id, &app.id, &format!("fam_group_{f}"), 1);
        token.hash = hash(f, 0);
        store.insert_refresh_token(&token).await.expect("insert");
    }
    // The successor of family 0 takes the hash of family 1's stored token.
    let clashing = 0u8;
    let mut tasks = Vec::new();
    for f in 0..families {
        let store = Arc::clone(&store);
        let mut successor = refresh(&alice.id, &app.id, &format!("fam_group_{f}"), 2);
        successor.hash = if f == clashing {
            hash(1, 0)
        } else {
            hash(f, 1)
        };
        tasks.push(tokio::spawn(async move {
            let outcome = store
                .rotate_refresh_token(&hash(f, 0), NOW + 10, 0, &successor)
                .await;
            (f, outcome)
        }));
    }
    for task in tasks {
        let (f, outcome) = task.await.expect("task");
        if f == clashing {
            assert!(
                outcome.is_err(),
                "a successor whose hash is taken is refused"
            );
            let old = store
                .get_refresh_token(&hash(f, 0))
                .await
                .expect("get")
                .expect("old");
            assert_eq!(
                old.rotated_at, None,
                "the failed rotation left its token as it was"
            );
            continue;
        }
        match outcome.expect("rotation") {
            RotateOutcome::Rotated(old) => assert_eq!(old.hash, hash(f, 0)),
            other => panic!("family {f}: {other:?}"),
        }
        let stored = store.get_refresh_token(&hash(f, 1)).await.expect("get");
        assert_eq!(
            stored.expect("successor stored").family_id,
            format!("fam_group_{f}")
        );
    }
}

/// Rotations that share a batch are each judged as if alone: a token claimed twice at once,
/// expired, revoked or reused, and clock readings that differ within the batch.
async fn refresh_group_commit_judges_each_rotation(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;
    let hash = |family: u8, generation: u8| {
        let mut bytes = [9u8; 32];
        bytes[0] = family;
        bytes[1] = generation;
        SecretHash(bytes)
    };
    let grace = 30;
    let families = 96u8;
    for f in 0..families {
        let mut token = refresh(&alice.id, &app.id, &format!("fam_mixed_{f}"), 1);
        token.hash = hash(f, 0);
        match f % 6 {
            2 => token.expires_at = NOW + 5,
            3 => token.revoked_at = Some(NOW - 1),
            4 => token.rotated_at = Some(NOW - 100),
            _ => {}
        }
        store.insert_refresh_token(&token).await.expect("insert");
    }
    let mut tasks = Vec::new();
    for f in 0..families {
        // Case 1 claims its token twice, with the same successor (a retried request).
        let claims = if f % 6 == 1 { 2 } else { 1 };
        for _ in 0..claims {
            let store = Arc::clone(&store);
            let mut successor = refresh(&alice.id, &app.id, &format!("fam_mixed_{f}"), 2);
            successor.hash = hash(f, 1);
            let now = if f % 6 == 5 { NOW + 11 } else { NOW + 10 };
            tasks.push(tokio::spawn(async move {
                let outcome = store
                    .rotate_refresh_token(&hash(f, 0), now, grace, &successor)
                    .await;
                (f, outcome)
            }));
        }
    }
    for task in tasks {
        let (f, outcome) = task.await.expect("task");
        let outcome = outcome.expect("rotation");
        match (f % 6, &outcome) {
            (0 | 1 | 5, RotateOutcome::Rotated(old)) => assert_eq!(old.hash, hash(f, 0)),
            (2 | 3, RotateOutcome::Invalid) => {}
            (4, RotateOutcome::ReuseDetected(old)) => assert_eq!(old.hash, hash(f, 0)),
            _ => panic!("family {f}: {outcome:?}"),
        }
    }
    for f in 0..families {
        let old = store
            .get_refresh_token(&hash(f, 0))
            .await
            .expect("get")
            .expect("old");
        let successor = store.get_refresh_token(&hash(f, 1)).await.expect("get");
        match f % 6 {
            0 | 1 => assert_eq!(old.rotated_at, Some(NOW + 10), "family {f}"),
            5 => assert_eq!(old.rotated_at, Some(NOW + 11), "family {f}"),
            2 | 3 => assert_eq!(old.rotated_at, None, "family {f}"),
            _ => assert!(
                old.revoked_at.is_some(),
                "family {f}: a reuse revokes the family"
            ),
        }
        assert_eq!(
            successor.is_some(),
            matches!(f % 6, 0 | 1 | 5),
            "family {f}: a successor is stored exactly when the rotation won"
        );
    }
}

async fn refresh_revoke_family(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;
    let t1 = refresh(&alice.id, &app.id, "fam_a", 1);
    let t2 = RefreshToken {
        rotated_at: Some(NOW),
        ..refresh(&alice.id, &app.id, "fam_a", 2)
    };
    let t3 = RefreshToken {
        revoked_at: Some(NOW - 100),
        ..refresh(&alice.id, &app.id, "fam_a", 3)
    };
    let other = refresh(&alice.id, &app.id, "fam_b", 4);
    for t in [&t1, &t2, &t3, &other] {
        store.insert_refresh_token(t).await.expect("insert");
    }

    assert_eq!(
        store
            .revoke_refresh_family("fam_a", NOW + 5)
            .await
            .expect("revoke"),
        2
    );
    assert_eq!(
        store
            .revoke_refresh_family("fam_a", NOW + 6)
            .await
            .expect("again"),
        0
    );
    assert_eq!(
        store
            .revoke_refresh_family("fam_none", NOW)
            .await
            .expect("unknown"),
        0
    );
    let revoked_at = |n: u8| {
        let store = Arc::clone(&store);
        async move {
            store
                .get_refresh_token(&h(n))
                .await
                .expect("get")
                .expect("token")
                .revoked_at
        }
    };
    assert_eq!(revoked_at(1).await, Some(NOW + 5));
    assert_eq!(revoked_at(2).await, Some(NOW + 5));
    assert_eq!(
        revoked_at(3).await,
        Some(NOW - 100),
        "earlier revocation kept"
    );
    assert_eq!(revoked_at(4).await, None);
    assert_eq!(
        store
            .rotate_refresh_token(
                &t1.hash,
                NOW + 7,
                30,
                &refresh(&alice.id, &app.id, "fam_a", 9)
            )
            .await
            .expect("rotate"),
        RotateOutcome::Invalid
    );
}

async fn refresh_revoke_for_client(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let bob = add_user(&store, "bob@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;
    let other_app = add_client(&store, &alice.id, 2).await;

    let tokens = [
        refresh(&alice.id, &app.id, "fam_b", 1),
        refresh(&alice.id, &app.id, "fam_b", 2),
        refresh(&alice.id, &app.id, "fam_a", 3),
        RefreshToken {
            revoked_at: Some(NOW - 1),
            ..refresh(&alice.id, &app.id, "fam_c", 4)
        },
        refresh(&alice.id, &other_app.id, "fam_d", 5),
        refresh(&bob.id, &app.id, "fam_e", 6),
    ];
    for t in &tokens {
        store.insert_refresh_token(t).await.expect("insert");
    }

    let families = store
        .revoke_refresh_for_client(&alice.id, &app.id, NOW + 5)
        .await
        .expect("revoke");
    assert_eq!(families, vec!["fam_a".to_owned(), "fam_b".to_owned()]);
    let expected = [
        Some(NOW + 5),
        Some(NOW + 5),
        Some(NOW + 5),
        Some(NOW - 1),
        None,
        None,
    ];
    for (t, want) in tokens.iter().zip(expected) {
        let got = store
            .get_refresh_token(&t.hash)
            .await
            .expect("get")
            .expect("token");
        assert_eq!(got.revoked_at, want, "token of {}", t.family_id);
    }
    assert!(
        store
            .revoke_refresh_for_client(&alice.id, &app.id, NOW + 6)
            .await
            .expect("again")
            .is_empty()
    );
}

// ------------------------------------------------------------------------------------------
// Authorization codes
// ------------------------------------------------------------------------------------------

async fn authorization_codes(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;
    let c = code(&alice.id, &app.id, 1);
    store.insert_authorization_code(&c).await.expect("insert");
    let plain = AuthorizationCode {
        code_challenge: None,
        nonce: None,
        redirect_uri_in_request: false,
        ..code(&alice.id, &app.id, 2)
    };
    store
        .insert_authorization_code(&plain)
        .await
        .expect("insert");

    let first = store
        .consume_authorization_code(&c.hash, NOW + 5)
        .await
        .expect("consume")
        .expect("known code");
    assert_eq!(first, c, "first use sees the code unused");

    let second = store
        .consume_authorization_code(&c.hash, NOW + 7)
        .await
        .expect("consume again")
        .expect("known code");
    assert_eq!(
        second,
        AuthorizationCode {
            used_at: Some(NOW + 5),
            ..c.clone()
        }
    );

    assert_eq!(
        store
            .consume_authorization_code(&h(99), NOW)
            .await
            .expect("consume unknown"),
        None
    );
    assert_eq!(
        store
            .consume_authorization_code(&plain.hash, NOW + 1)
            .await
            .expect("consume")
            .expect("known"),
        plain
    );
}

async fn authorization_codes_concurrent(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;
    let c = code(&alice.id, &app.id, 1);
    store.insert_authorization_code(&c).await.expect("insert");

    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = Arc::clone(&store);
        let hash = c.hash;
        tasks.push(tokio::spawn(async move {
            store.consume_authorization_code(&hash, NOW + 10 + i).await
        }));
    }
    let mut fresh = 0;
    let mut used_at = Vec::new();
    for task in tasks {
        let got = task
            .await
            .expect("task")
            .expect("consume never fails")
            .expect("known code");
        assert_eq!(got.hash, c.hash);
        match got.used_at {
            None => fresh += 1,
            Some(at) => used_at.push(at),
        }
    }
    assert_eq!(fresh, 1, "exactly one consumer sees the code unused");
    assert_eq!(used_at.len(), 9);
    // Everyone else sees the one time it was used.
    assert!(used_at.windows(2).all(|w| w[0] == w[1]), "{used_at:?}");
    assert!((NOW + 10..NOW + 20).contains(&used_at[0]));
}

// ------------------------------------------------------------------------------------------
// Device authorizations (RFC 8628)
// ------------------------------------------------------------------------------------------

fn device(client_id: &str, n: u8) -> DeviceAuthorization {
    DeviceAuthorization {
        device_code_hash: h(n),
        user_code_hash: h(n.wrapping_add(100)),
        client_id: client_id.to_owned(),
        scopes: Scopes::EMPTY.with(Scope::OpenId).with(Scope::UsersRead),
        resource_id: None,
        resource_scopes: Vec::new(),
        created_at: NOW,
        expires_at: NOW + 600,
        interval: 5,
        last_polled_at: None,
        status: DeviceStatus::Pending,
        user_id: None,
        auth_time: None,
        amr: None,
        decided_at: None,
        family_id: new_id("fam"),
        redeemed_at: None,
    }
}

fn approval(user_id: &str) -> DeviceDecision {
    DeviceDecision {
        user_id: user_id.to_owned(),
        status: DeviceStatus::Approved,
        auth_time: NOW - 30,
        amr: netapi_core::model::Amr::PasswordOtp,
    }
}

async fn device_authorizations(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;
    let other = add_client(&store, &alice.id, 2).await;
    let d = device(&app.id, 1);
    store.insert_device_authorization(&d).await.expect("insert");
    // A user code (or device code) taken is a conflict, and nothing is written.
    let same_user_code = DeviceAuthorization {
        device_code_hash: h(50),
        ..device(&app.id, 1)
    };
    assert!(matches!(
        store.insert_device_authorization(&same_user_code).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .get_device_authorization_by_user_code(&d.user_code_hash)
            .await
            .expect("get"),
        Some(d.clone())
    );
    assert_eq!(
        store
            .get_device_authorization_by_user_code(&h(99))
            .await
            .expect("get unknown"),
        None
    );

    // Polls: the first is on time; one sooner than the interval slows the device down by
    // the step, and the next must wait the longer interval.
    let poll = |at: Timestamp, client: String| {
        let store = Arc::clone(&store);
        async move {
            store
                .poll_device_authorization(&h(1), &client, at, 5)
                .await
                .expect("poll")
        }
    };
    let first = poll(NOW + 1, app.id.clone()).await.expect("known");
    assert!(!first.too_fast);
    assert_eq!(first.authorization.last_polled_at, Some(NOW + 1));
    assert_eq!(first.authorization.interval, 5);
    let fast = poll(NOW + 3, app.id.clone()).await.expect("known");
    assert!(fast.too_fast);
    assert_eq!(fast.authorization.interval, 10);
    let still_fast = poll(NOW + 12, app.id.clone()).await.expect("known");
    assert!(
        still_fast.too_fast,
        "9 seconds is less than the new interval"
    );
    assert_eq!(still_fast.authorization.interval, 15);
    let on_time = poll(NOW + 27, app.id.clone()).await.expect("known");
    assert!(!on_time.too_fast);
    assert_eq!(on_time.authorization.interval, 15);
    // Another client's poll finds nothing and changes nothing.
    assert_eq!(poll(NOW + 28, other.id.clone()).await, None);
    assert_eq!(
        store
            .poll_device_authorization(&h(77), &app.id, NOW, 5)
            .await
            .expect("unknown"),
        None
    );
    let stored = store
        .get_device_authorization_by_user_code(&d.user_code_hash)
        .await
        .expect("get")
        .expect("known");
    assert_eq!(stored.last_polled_at, Some(NOW + 27));
    assert_eq!(stored.interval, 15);

    // Not approved: nothing to redeem.
    assert!(
        !store
            .redeem_device_authorization(&h(1), NOW + 30)
            .await
            .expect("redeem")
    );
    // Decided once.
    assert!(
        store
            .decide_device_authorization(&d.user_code_hash, &approval(&alice.id), NOW + 30)
            .await
            .expect("decide")
    );
    let denial = DeviceDecision {
        status: DeviceStatus::Denied,
        ..approval(&alice.id)
    };
    assert!(
        !store
            .decide_device_authorization(&d.user_code_hash, &denial, NOW + 31)
            .await
            .expect("decide again")
    );
    let approved = store
        .get_device_authorization_by_user_code(&d.user_code_hash)
        .await
        .expect("get")
        .expect("known");
    assert_eq!(
        approved,
        DeviceAuthorization {
            status: DeviceStatus::Approved,
            user_id: Some(alice.id.clone()),
            auth_time: Some(NOW - 30),
            amr: Some(netapi_core::model::Amr::PasswordOtp),
            decided_at: Some(NOW + 30),
            ..stored
        }
    );
    // Redeemed once.
    assert!(
        store
            .redeem_device_authorization(&h(1), NOW + 40)
            .await
            .expect("redeem")
    );
    assert!(
        !store
            .redeem_device_authorization(&h(1), NOW + 41)
            .await
            .expect("again")
    );
    let redeemed = poll(NOW + 60, app.id.clone()).await.expect("known");
    assert_eq!(redeemed.authorization.redeemed_at, Some(NOW + 40));

    // An expired request cannot be decided.
    let late = device(&app.id, 2);
    store
        .insert_device_authorization(&late)
        .await
        .expect("insert");
    assert!(
        !store
            .decide_device_authorization(&late.user_code_hash, &approval(&alice.id), NOW + 600)
            .await
            .expect("decide")
    );
    // A denial is stored as such, and is not redeemable.
    let denied = device(&app.id, 3);
    store
        .insert_device_authorization(&denied)
        .await
        .expect("insert");
    assert!(
        store
            .decide_device_authorization(&denied.user_code_hash, &denial, NOW + 1)
            .await
            .expect("deny")
    );
    assert!(
        !store
            .redeem_device_authorization(&h(3), NOW + 2)
            .await
            .expect("redeem")
    );
    assert_eq!(
        store
            .get_device_authorization_by_user_code(&denied.user_code_hash)
            .await
            .expect("get")
            .expect("known")
            .status,
        DeviceStatus::Denied
    );

    // Kept an hour past expiry (a late poll is told it expired), then cleaned up.
    store.delete_expired(NOW + 600 + 3599).await.expect("sweep");
    assert!(
        store
            .get_device_authorization_by_user_code(&d.user_code_hash)
            .await
            .expect("get")
            .is_some()
    );
    store.delete_expired(NOW + 600 + 3601).await.expect("sweep");
    assert!(
        store
            .get_device_authorization_by_user_code(&d.user_code_hash)
            .await
            .expect("get")
            .is_none()
    );

    // Deleting the client takes its requests along.
    let kept = device(&other.id, 4);
    store
        .insert_device_authorization(&kept)
        .await
        .expect("insert");
    assert!(store.delete_client(&other.id).await.expect("delete client"));
    assert!(
        store
            .get_device_authorization_by_user_code(&kept.user_code_hash)
            .await
            .expect("get")
            .is_none()
    );
}

async fn device_decisions_and_redemptions_are_single_use_under_concurrency(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let bob = add_user(&store, "bob@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;
    let d = device(&app.id, 1);
    store.insert_device_authorization(&d).await.expect("insert");
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = Arc::clone(&store);
        let user_id = if i % 2 == 0 {
            alice.id.clone()
        } else {
            bob.id.clone()
        };
        tasks.push(tokio::spawn(async move {
            store
                .decide_device_authorization(&h(101), &approval(&user_id), NOW + 10)
                .await
        }));
    }
    let mut won = 0;
    for task in tasks {
        if task.await.expect("task").expect("decide never fails") {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one decision is recorded");

    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = Arc::clone(&store);
        let client_id = app.id.clone();
        tasks.push(tokio::spawn(async move {
            let polled = store
                .poll_device_authorization(&h(1), &client_id, NOW + 20 + i, 5)
                .await
                .expect("poll never fails");
            let redeemed = store
                .redeem_device_authorization(&h(1), NOW + 20 + i)
                .await
                .expect("redeem never fails");
            (polled.is_some(), redeemed)
        }));
    }
    let mut redeemed = 0;
    for task in tasks {
        let (polled, won) = task.await.expect("task");
        assert!(polled);
        redeemed += usize::from(won);
    }
    assert_eq!(redeemed, 1, "exactly one redemption wins");
}

// ------------------------------------------------------------------------------------------
// Consents and sessions
// ------------------------------------------------------------------------------------------

async fn consents(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let bob = add_user(&store, "bob@example.com").await;
    let app = add_client(&store, &bob.id, 1).await;
    let other = add_client(&store, &bob.id, 2).await;

    let narrow = Consent {
        user_id: alice.id.clone(),
        client_id: app.id.clone(),
        scopes: Scopes::EMPTY.with(Scope::OpenId),
        resource_scopes: Vec::new(),
        granted_at: NOW,
    };
    store.upsert_consent(&narrow).await.expect("upsert");
    assert_eq!(
        store.get_consent(&alice.id, &app.id).await.expect("get"),
        Some(narrow.clone())
    );
    assert_eq!(
        store.get_consent(&bob.id, &app.id).await.expect("get"),
        None
    );

    let wide = Consent {
        scopes: Scopes::EMPTY
            .with(Scope::OpenId)
            .with(Scope::Email)
            .with(Scope::Profile),
        resource_scopes: vec![
            ("res_1".to_owned(), "orders:read".to_owned()),
            ("res_2".to_owned(), "a.b_c-d".to_owned()),
        ],
        granted_at: NOW + 100,
        ..narrow.clone()
    };
    store.upsert_consent(&wide).await.expect("upsert again");
    assert_eq!(
        store.get_consent(&alice.id, &app.id).await.expect("get"),
        Some(wide.clone())
    );

    let second = Consent {
        client_id: other.id.clone(),
        ..narrow.clone()
    };
    store.upsert_consent(&second).await.expect("upsert other");
    let mut expected = vec![wide.clone(), second.clone()];
    expected.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    assert_eq!(
        store.list_consents(&alice.id).await.expect("list"),
        expected
    );
    assert!(store.list_consents(&bob.id).await.expect("list").is_empty());

    assert!(
        store
            .delete_consent(&alice.id, &app.id)
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_consent(&alice.id, &app.id)
            .await
            .expect("delete again")
    );
    assert_eq!(
        store.get_consent(&alice.id, &app.id).await.expect("get"),
        None
    );
    assert_eq!(
        store.list_consents(&alice.id).await.expect("list"),
        vec![second]
    );
}

async fn sessions(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let s1 = session(&alice.id, 1, NOW + 600);
    let s2 = session(&alice.id, 2, NOW + 1200);
    store.insert_session(&s1).await.expect("insert");
    store.insert_session(&s2).await.expect("insert");

    assert_eq!(
        store.get_session(&s1.hash).await.expect("get"),
        Some(s1.clone())
    );
    assert_eq!(
        store.get_session(&s2.hash).await.expect("get"),
        Some(s2.clone())
    );
    assert_eq!(store.get_session(&h(99)).await.expect("get unknown"), None);

    store.delete_session(&s1.hash).await.expect("delete");
    assert_eq!(store.get_session(&s1.hash).await.expect("get"), None);
    store.delete_session(&s1.hash).await.expect("delete again");
    store.delete_session(&h(99)).await.expect("delete unknown");
    assert_eq!(
        store.get_session(&s2.hash).await.expect("get"),
        Some(s2.clone())
    );

    // Listed newest first, with how each was signed in; touching moves last_seen_at forward
    // only.
    let s3 = Session {
        amr: netapi_core::model::Amr::PasswordOtp,
        user_agent: None,
        source: None,
        ..session(&alice.id, 3, NOW + 600)
    };
    store.insert_session(&s3).await.expect("insert");
    let bob = add_user(&store, "bob@example.com").await;
    store
        .insert_session(&session(&bob.id, 4, NOW + 600))
        .await
        .expect("insert");
    let listed = store.list_user_sessions(&alice.id).await.expect("list");
    assert_eq!(listed, vec![s2.clone(), s3.clone()]);
    store
        .touch_session(&s3.hash, NOW + 60)
        .await
        .expect("touch");
    store
        .touch_session(&s3.hash, NOW + 30)
        .await
        .expect("touch back");
    let touched = store.get_session(&s3.hash).await.expect("get").expect("s3");
    assert_eq!(touched.last_seen_at, NOW + 60);
    assert_eq!(touched.amr, netapi_core::model::Amr::PasswordOtp);
}

/// Logout (migration 0018): a client's logout metadata, the `sid` of sessions, codes and
/// refresh tokens, and which clients received ID tokens in which session.
async fn logout_session_clients(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let c1 = client(&alice.id, 1);
    let c2 = client(&alice.id, 2);
    store.insert_client(&c1).await.expect("insert c1");
    store.insert_client(&c2).await.expect("insert c2");
    assert_eq!(
        store.get_client(&c1.id).await.expect("get"),
        Some(c1.clone())
    );
    // A change without logout metadata keeps it; one with it replaces it whole.
    let renamed = ClientChanges {
        name: Some("renamed".to_owned()),
        ..ClientChanges::default()
    };
    let kept = store
        .update_client(&c1.id, &renamed, NOW + 1)
        .await
        .expect("update")
        .expect("c1");
    assert_eq!(kept.logout, c1.logout);
    let cleared = ClientChanges {
        logout: Some(ClientLogout::default()),
        ..ClientChanges::default()
    };
    let changed = store
        .update_client(&c1.id, &cleared, NOW + 2)
        .await
        .expect("update")
        .expect("c1");
    assert_eq!(changed.logout, ClientLogout::default());
    let set = ClientChanges {
        logout: Some(c2.logout.clone()),
        ..ClientChanges::default()
    };
    let changed = store
        .update_client(&c1.id, &set, NOW + 3)
        .await
        .expect("update")
        .expect("c1");
    assert_eq!(changed.logout, c2.logout);

    // Sessions, codes and refresh tokens keep their sid.
    let live = session(&alice.id, 1, NOW + 600);
    store.insert_session(&live).await.expect("insert session");
    assert_eq!(
        store
            .get_session(&live.hash)
            .await
            .expect("get")
            .map(|s| s.sid),
        Some(live.sid.clone())
    );
    let no_sid = Session {
        sid: String::new(),
        ..session(&alice.id, 2, NOW + 600)
    };
    store.insert_session(&no_sid).await.expect("insert session");
    assert_eq!(
        store.get_session(&no_sid.hash).await.expect("get"),
        Some(no_sid.clone())
    );
    let issued = code(&alice.id, &c1.id, 3);
    store
        .insert_authorization_code(&issued)
        .await
        .expect("code");
    let used = store
        .consume_authorization_code(&issued.hash, NOW)
        .await
        .expect("consume")
        .expect("code");
    assert_eq!(used.sid, issued.sid);
    let token = refresh(&alice.id, &c1.id, "fam_logout", 4);
    store.insert_refresh_token(&token).await.expect("refresh");
    assert_eq!(
        store
            .get_refresh_token(&token.hash)
            .await
            .expect("get")
            .and_then(|t| t.sid),
        token.sid
    );

    // Recorded once per (session, client); taken once, sorted.
    for client_id in [&c2.id, &c1.id, &c2.id] {
        store
            .record_session_client(&live.sid, client_id, &alice.id, NOW)
            .await
            .expect("record");
    }
    let mut both = vec![c1.id.clone(), c2.id.clone()];
    both.sort();
    assert_eq!(
        store.take_session_clients(&live.sid).await.expect("take"),
        both
    );
    assert!(
        store
            .take_session_clients(&live.sid)
            .await
            .expect("take again")
            .is_empty()
    );

    // Of two takers at once, each client goes to one.
    for client_id in [&c1.id, &c2.id] {
        store
            .record_session_client(&live.sid, client_id, &alice.id, NOW)
            .await
            .expect("record");
    }
    let (one, two) = tokio::join!(
        store.take_session_clients(&live.sid),
        store.take_session_clients(&live.sid)
    );
    let mut taken = [one.expect("take"), two.expect("take")].concat();
    taken.sort();
    assert_eq!(taken, both);

    // Deleting a client forgets it.
    store
        .record_session_client(&live.sid, &c2.id, &alice.id, NOW)
        .await
        .expect("record");
    assert!(store.delete_client(&c2.id).await.expect("delete"));
    assert!(
        store
            .take_session_clients(&live.sid)
            .await
            .expect("take")
            .is_empty()
    );

    // Housekeeping forgets records of sessions that are gone, and keeps the others.
    store
        .record_session_client(&live.sid, &c1.id, &alice.id, NOW)
        .await
        .expect("record");
    store
        .record_session_client("sid_gone", &c1.id, &alice.id, NOW)
        .await
        .expect("record");
    store.delete_expired(NOW).await.expect("housekeeping");
    assert!(
        store
            .take_session_clients("sid_gone")
            .await
            .expect("take")
            .is_empty()
    );
    assert_eq!(
        store.take_session_clients(&live.sid).await.expect("take"),
        vec![c1.id.clone()]
    );
}

async fn second_factors(store: Arc<dyn Store>) {
    use netapi_core::model::TotpFactor;
    let alice = add_user(&store, "alice@example.com").await;
    assert_eq!(store.get_totp(&alice.id).await.expect("get"), None);
    let pending = TotpFactor {
        user_id: alice.id.clone(),
        sealed_secret: vec![1, 2, 3],
        created_at: NOW,
        confirmed_at: None,
        last_used_step: None,
    };
    assert!(store.put_pending_totp(&pending).await.expect("put"));
    // A pending one may be replaced.
    let replaced = TotpFactor {
        sealed_secret: vec![4, 5, 6],
        created_at: NOW + 1,
        ..pending.clone()
    };
    assert!(store.put_pending_totp(&replaced).await.expect("replace"));
    assert_eq!(
        store.get_totp(&alice.id).await.expect("get"),
        Some(replaced.clone())
    );
    // Steps count only once confirmed.
    assert!(
        !store
            .use_totp_step(&alice.id, 5)
            .await
            .expect("unconfirmed")
    );
    assert!(
        store
            .confirm_totp(&alice.id, 10, NOW + 2)
            .await
            .expect("confirm")
    );
    assert!(
        !store
            .confirm_totp(&alice.id, 11, NOW + 3)
            .await
            .expect("again")
    );
    // A confirmed one is never replaced.
    assert!(!store.put_pending_totp(&pending).await.expect("refused"));
    let confirmed = store
        .get_totp(&alice.id)
        .await
        .expect("get")
        .expect("factor");
    assert_eq!(confirmed.sealed_secret, vec![4, 5, 6]);
    assert_eq!(confirmed.confirmed_at, Some(NOW + 2));
    assert_eq!(confirmed.last_used_step, Some(10));
    // Each step once, and never an earlier one.
    assert!(!store.use_totp_step(&alice.id, 10).await.expect("same step"));
    assert!(store.use_totp_step(&alice.id, 11).await.expect("next step"));
    assert!(!store.use_totp_step(&alice.id, 11).await.expect("replay"));
    assert!(!store.use_totp_step(&alice.id, 9).await.expect("earlier"));

    // Recovery codes: replaced as a set, each used once.
    store
        .replace_recovery_codes(&alice.id, &[h(1), h(2), h(3)], NOW)
        .await
        .expect("codes");
    assert_eq!(
        store.count_recovery_codes(&alice.id).await.expect("count"),
        3
    );
    assert!(
        store
            .use_recovery_code(&alice.id, &h(2), NOW)
            .await
            .expect("use")
    );
    assert!(
        !store
            .use_recovery_code(&alice.id, &h(2), NOW)
            .await
            .expect("reuse")
    );
    let bob = add_user(&store, "bob@example.com").await;
    assert!(
        !store
            .use_recovery_code(&bob.id, &h(1), NOW)
            .await
            .expect("not bob's")
    );
    assert_eq!(
        store.count_recovery_codes(&alice.id).await.expect("count"),
        2
    );
    store
        .replace_recovery_codes(&alice.id, &[h(7)], NOW)
        .await
        .expect("new codes");
    assert!(
        !store
            .use_recovery_code(&alice.id, &h(1), NOW)
            .await
            .expect("old")
    );
    assert_eq!(
        store.count_recovery_codes(&alice.id).await.expect("count"),
        1
    );

    // Removing the authenticator removes the codes.
    assert!(store.delete_totp(&alice.id).await.expect("delete"));
    assert!(!store.delete_totp(&alice.id).await.expect("delete again"));
    assert_eq!(store.get_totp(&alice.id).await.expect("get"), None);
    assert_eq!(
        store.count_recovery_codes(&alice.id).await.expect("count"),
        0
    );
}

fn passkey(id: &str, user_id: &str, credential_id: &str) -> netapi_core::model::PasskeyCredential {
    netapi_core::model::PasskeyCredential {
        id: id.to_owned(),
        user_id: user_id.to_owned(),
        credential_id: credential_id.to_owned(),
        name: format!("key {id}"),
        passkey: format!("{{\"cred\":\"{id}\"}}"),
        created_at: NOW,
        last_used_at: None,
    }
}

async fn passkeys(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let bob = add_user(&store, "bob@example.com").await;
    assert!(
        store
            .list_passkeys(&alice.id)
            .await
            .expect("list")
            .is_empty()
    );
    let first = passkey("pk_1", &alice.id, "cred-1");
    assert!(store.insert_passkey(&first, 2).await.expect("insert"));
    assert!(
        store
            .insert_passkey(&passkey("pk_2", &alice.id, "cred-2"), 2)
            .await
            .expect("insert")
    );
    // The cap: a third is refused, and nothing is written.
    assert!(
        !store
            .insert_passkey(&passkey("pk_3", &alice.id, "cred-3"), 2)
            .await
            .expect("capped")
    );
    assert_eq!(store.list_passkeys(&alice.id).await.expect("list").len(), 2);
    // Eight adds at once under a cap of three: exactly three are stored.
    let carol = add_user(&store, "carol@example.com").await;
    let mut tasks = Vec::new();
    for n in 0..8 {
        let (store, carol) = (Arc::clone(&store), carol.id.clone());
        tasks.push(tokio::spawn(async move {
            store
                .insert_passkey(
                    &passkey(&format!("pk_c{n}"), &carol, &format!("cred-c{n}")),
                    3,
                )
                .await
                .expect("insert")
        }));
    }
    let mut stored = 0;
    for task in tasks {
        stored += usize::from(task.await.expect("task"));
    }
    assert_eq!(stored, 3);
    assert_eq!(store.list_passkeys(&carol.id).await.expect("list").len(), 3);
    // A credential id is unique across users.
    assert!(matches!(
        store
            .insert_passkey(&passkey("pk_4", &bob.id, "cred-1"), 2)
            .await,
        Err(netapi_core::StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .get_passkey_by_credential("cred-1")
            .await
            .expect("get"),
        Some(first.clone())
    );
    assert_eq!(
        store
            .get_passkey_by_credential("cred-9")
            .await
            .expect("get"),
        None
    );
    store
        .record_passkey_use("pk_1", "{\"cred\":\"counted\"}", NOW + 5)
        .await
        .expect("use");
    let used = store
        .get_passkey_by_credential("cred-1")
        .await
        .expect("get")
        .expect("pk_1");
    assert_eq!(used.last_used_at, Some(NOW + 5));
    assert_eq!(used.passkey, "{\"cred\":\"counted\"}");
    // Only its owner removes it.
    assert!(
        !store
            .delete_passkey(&bob.id, "pk_1")
            .await
            .expect("not bob's")
    );
    assert!(
        store
            .delete_passkey(&alice.id, "pk_1")
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_passkey(&alice.id, "pk_1")
            .await
            .expect("again")
    );
    // Deleting the user removes the rest.
    assert!(store.delete_user(&alice.id).await.expect("delete user"));
    assert_eq!(
        store
            .get_passkey_by_credential("cred-2")
            .await
            .expect("get"),
        None
    );
}

async fn webauthn_ceremonies_single_use(store: Arc<dyn Store>) {
    use netapi_core::model::WebauthnCeremony;
    let alice = add_user(&store, "alice@example.com").await;
    let ceremony = |hash: u8, user: Option<&str>, expires_at| WebauthnCeremony {
        hash: h(hash),
        purpose: "register".to_owned(),
        user_id: user.map(str::to_owned),
        state: format!("{{\"n\":{hash}}}"),
        expires_at,
    };
    let mine = ceremony(1, Some(&alice.id), NOW + 300);
    assert!(
        store
            .put_webauthn_ceremony(&mine, 1, NOW)
            .await
            .expect("put")
    );
    // A new one under the same hash replaces it.
    let replaced = WebauthnCeremony {
        state: "{\"n\":2}".to_owned(),
        ..mine.clone()
    };
    assert!(
        store
            .put_webauthn_ceremony(&replaced, 1, NOW)
            .await
            .expect("replace")
    );
    // Taken once, concurrently on several connections: exactly one gets it.
    let takers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.take_webauthn_ceremony(&h(1), NOW + 1).await })
        })
        .collect();
    let mut got = Vec::new();
    for taker in takers {
        if let Some(taken) = taker.await.expect("join").expect("take") {
            got.push(taken);
        }
    }
    assert_eq!(got, vec![replaced]);
    // Expired ones are not handed out.
    assert!(
        store
            .put_webauthn_ceremony(&ceremony(3, Some(&alice.id), NOW + 10), 1, NOW)
            .await
            .expect("put")
    );
    assert_eq!(
        store
            .take_webauthn_ceremony(&h(3), NOW + 10)
            .await
            .expect("take"),
        None
    );
    // Anonymous ones are bounded; expired ones make room as they are dropped.
    assert!(
        store
            .put_webauthn_ceremony(&ceremony(4, None, NOW + 10), 1, NOW)
            .await
            .expect("put")
    );
    assert!(
        !store
            .put_webauthn_ceremony(&ceremony(5, None, NOW + 10), 1, NOW)
            .await
            .expect("full")
    );
    assert!(
        store
            .put_webauthn_ceremony(&ceremony(5, None, NOW + 30), 1, NOW + 20)
            .await
            .expect("room again")
    );
    assert!(
        store
            .take_webauthn_ceremony(&h(5), NOW + 21)
            .await
            .expect("take")
            .is_some()
    );
}

// ------------------------------------------------------------------------------------------
// private_key_jwt and pushed authorization requests
// ------------------------------------------------------------------------------------------

async fn clients_keep_their_keys_and_par_setting(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let keyed = OAuthClient {
        auth_method: netapi_core::model::ClientAuthMethod::PrivateKeyJwt,
        secret_hash: None,
        jwks: Some("{\"keys\":[]}".to_owned()),
        require_par: true,
        dpop_bound_access_tokens: true,
        ..client(&alice.id, 1)
    };
    store.insert_client(&keyed).await.expect("insert");
    let read = store
        .get_client(&keyed.id)
        .await
        .expect("get")
        .expect("some");
    assert_eq!(read, keyed);
    // A change of other columns leaves keys and setting alone.
    let renamed = store
        .update_client(
            &keyed.id,
            &ClientChanges {
                name: Some("renamed".to_owned()),
                ..ClientChanges::default()
            },
            NOW + 1,
        )
        .await
        .expect("update")
        .expect("some");
    assert_eq!(renamed.jwks, keyed.jwks);
    assert!(renamed.require_par);
    assert!(renamed.dpop_bound_access_tokens);
    // Keys are replaced together: jwks_uri in, jwks out.
    let moved = store
        .update_client(
            &keyed.id,
            &ClientChanges {
                keys: Some((None, Some("https://app.example.com/jwks.json".to_owned()))),
                require_par: Some(false),
                dpop_bound_access_tokens: Some(false),
                ..ClientChanges::default()
            },
            NOW + 2,
        )
        .await
        .expect("update")
        .expect("some");
    assert_eq!(moved.jwks, None);
    assert_eq!(
        moved.jwks_uri.as_deref(),
        Some("https://app.example.com/jwks.json")
    );
    assert!(!moved.require_par);
    assert!(!moved.dpop_bound_access_tokens);
    // And back, alone.
    let bound = store
        .update_client(
            &keyed.id,
            &ClientChanges {
                dpop_bound_access_tokens: Some(true),
                ..ClientChanges::default()
            },
            NOW + 3,
        )
        .await
        .expect("update")
        .expect("some");
    assert!(bound.dpop_bound_access_tokens);
    assert!(!bound.require_par);
    assert_eq!(bound.jwks_uri, moved.jwks_uri);
}

async fn assertion_jtis_are_single_use(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let c = client(&alice.id, 1);
    store.insert_client(&c).await.expect("insert");
    let other = client(&alice.id, 2);
    store.insert_client(&other).await.expect("insert");
    // Of concurrent uses of one jti, exactly one succeeds.
    let users: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            let id = c.id.clone();
            tokio::spawn(async move { store.use_assertion_jti(&id, b"jti-1", NOW + 60, NOW).await })
        })
        .collect();
    let mut fresh = 0;
    for user in users {
        if user.await.expect("join").expect("use") {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1);
    // Another client's jti of the same value is its own.
    assert!(
        store
            .use_assertion_jti(&other.id, b"jti-1", NOW + 60, NOW)
            .await
            .expect("use")
    );
    // Still refused until the record expires, then usable again.
    assert!(
        !store
            .use_assertion_jti(&c.id, b"jti-1", NOW + 120, NOW + 59)
            .await
            .expect("use")
    );
    assert!(
        store
            .use_assertion_jti(&c.id, b"jti-1", NOW + 120, NOW + 60)
            .await
            .expect("use")
    );
    // Expired records are cleaned up.
    assert!(store.delete_expired(NOW + 1000).await.expect("delete") >= 2);
    assert!(
        store
            .use_assertion_jti(&other.id, b"jti-1", NOW + 1060, NOW + 1000)
            .await
            .expect("use")
    );
}

async fn pushed_requests_are_single_use(store: Arc<dyn Store>) {
    use netapi_core::model::PushedRequest;
    let alice = add_user(&store, "alice@example.com").await;
    let c = client(&alice.id, 1);
    store.insert_client(&c).await.expect("insert");
    let pushed = PushedRequest {
        hash: h(1),
        client_id: c.id.clone(),
        params: "[[\"response_type\",\"code\"]]".to_owned(),
        created_at: NOW,
        expires_at: NOW + 60,
    };
    store.insert_pushed_request(&pushed).await.expect("insert");
    assert_eq!(
        store
            .get_pushed_request(&h(1), NOW + 59)
            .await
            .expect("get"),
        Some(pushed.clone())
    );
    assert_eq!(
        store
            .get_pushed_request(&h(1), NOW + 60)
            .await
            .expect("get"),
        None,
        "expired"
    );
    assert_eq!(
        store.get_pushed_request(&h(2), NOW).await.expect("get"),
        None
    );
    // Another client cannot take it.
    assert!(
        !store
            .take_pushed_request(&h(1), "cli_other", NOW + 1)
            .await
            .expect("take")
    );
    // Of concurrent takes, exactly one succeeds.
    let takers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            let id = c.id.clone();
            tokio::spawn(async move { store.take_pushed_request(&h(1), &id, NOW + 1).await })
        })
        .collect();
    let mut taken = 0;
    for taker in takers {
        if taker.await.expect("join").expect("take") {
            taken += 1;
        }
    }
    assert_eq!(taken, 1);
    assert_eq!(
        store.get_pushed_request(&h(1), NOW + 1).await.expect("get"),
        None
    );
    // An expired one cannot be taken, and is cleaned up.
    let late = PushedRequest {
        hash: h(3),
        expires_at: NOW + 10,
        ..pushed
    };
    store.insert_pushed_request(&late).await.expect("insert");
    assert!(
        !store
            .take_pushed_request(&h(3), &c.id, NOW + 10)
            .await
            .expect("take")
    );
    assert!(store.delete_expired(NOW + 10).await.expect("delete") >= 1);
    // Deleting the client deletes its pushed requests.
    let again = PushedRequest {
        hash: h(4),
        expires_at: NOW + 100,
        ..late
    };
    store.insert_pushed_request(&again).await.expect("insert");
    assert!(store.delete_client(&c.id).await.expect("delete"));
    assert_eq!(
        store.get_pushed_request(&h(4), NOW).await.expect("get"),
        None
    );
}

// ------------------------------------------------------------------------------------------
// Invalidations and denylist
// ------------------------------------------------------------------------------------------

async fn invalidations(store: Arc<dyn Store>) {
    assert_eq!(store.latest_invalidation().await.expect("latest"), 0);
    assert!(
        store
            .invalidations_since(0)
            .await
            .expect("since")
            .is_empty()
    );

    let all = vec![
        Invalidation::ApiKey(h(7)),
        Invalidation::User("usr_1".to_owned()),
        Invalidation::Client("cli_1".to_owned()),
        Invalidation::AccessToken {
            jti: "at_1".to_owned(),
            expires_at: NOW + 300,
        },
        Invalidation::Family {
            family_id: "fam_1".to_owned(),
            expires_at: NOW + 600,
        },
        Invalidation::SigningKeys,
    ];
    let mut seqs = Vec::new();
    for inv in &all {
        let seq = store.publish_invalidation(inv, NOW).await.expect("publish");
        seqs.push(seq);
    }
    assert!(seqs[0] > 0);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "increasing: {seqs:?}");
    assert_eq!(store.latest_invalidation().await.expect("latest"), seqs[5]);

    let since_start = store.invalidations_since(0).await.expect("since 0");
    assert_eq!(
        since_start,
        seqs.iter()
            .copied()
            .zip(all.iter().cloned())
            .collect::<Vec<_>>()
    );
    let since_third = store.invalidations_since(seqs[2]).await.expect("since");
    assert_eq!(
        since_third,
        seqs[3..]
            .iter()
            .copied()
            .zip(all[3..].iter().cloned())
            .collect::<Vec<_>>()
    );
    assert!(
        store
            .invalidations_since(seqs[5])
            .await
            .expect("since latest")
            .is_empty()
    );

    let next = store
        .publish_invalidation(&Invalidation::User("usr_2".to_owned()), NOW + 1)
        .await
        .expect("publish");
    assert!(next > seqs[5]);
    assert_eq!(
        store.invalidations_since(seqs[5]).await.expect("since"),
        vec![(next, Invalidation::User("usr_2".to_owned()))]
    );
    assert_eq!(store.latest_invalidation().await.expect("latest"), next);
}

async fn denylist(store: Arc<dyn Store>) {
    let live_token = Invalidation::AccessToken {
        jti: "at_live".to_owned(),
        expires_at: NOW + 60,
    };
    let dead_token = Invalidation::AccessToken {
        jti: "at_dead".to_owned(),
        expires_at: NOW - 1,
    };
    let live_family = Invalidation::Family {
        family_id: "fam_live".to_owned(),
        expires_at: NOW + 600,
    };
    let dead_family = Invalidation::Family {
        family_id: "fam_dead".to_owned(),
        expires_at: NOW,
    };
    for inv in [
        &live_token,
        &dead_token,
        &Invalidation::ApiKey(h(1)),
        &live_family,
        &dead_family,
        &Invalidation::User("usr_1".to_owned()),
        &Invalidation::Client("cli_1".to_owned()),
        &Invalidation::SigningKeys,
    ] {
        store
            .publish_invalidation(inv, NOW - 10)
            .await
            .expect("publish");
    }

    let mut active = store.active_denylist(NOW).await.expect("denylist");
    active.sort_by_key(|inv| format!("{inv:?}"));
    let mut expected = vec![live_token.clone(), live_family.clone()];
    expected.sort_by_key(|inv| format!("{inv:?}"));
    assert_eq!(active, expected);

    assert_eq!(
        store.active_denylist(NOW + 60).await.expect("later"),
        vec![live_family]
    );
    assert!(
        store
            .active_denylist(NOW + 600)
            .await
            .expect("much later")
            .is_empty()
    );
    assert_eq!(
        store.active_denylist(NOW - 5).await.expect("earlier").len(),
        4
    );
}

// ------------------------------------------------------------------------------------------
// Signing keys
// ------------------------------------------------------------------------------------------

async fn signing_keys_reseal(store: Arc<dyn Store>) {
    let key = signing_key("kid-1", NOW, None);
    store.insert_signing_key(&key).await.expect("insert");
    let sealed = vec![9; 64];
    // Only while the row still holds what the caller read: a second sealer changes nothing.
    assert!(
        store
            .reseal_signing_key("kid-1", &key.private_key, &sealed)
            .await
            .expect("reseal")
    );
    assert!(
        !store
            .reseal_signing_key("kid-1", &key.private_key, &[7; 64])
            .await
            .expect("stale reseal")
    );
    assert!(
        !store
            .reseal_signing_key("kid-unknown", &sealed, &[7; 64])
            .await
            .expect("unknown")
    );
    assert_eq!(
        store.list_signing_keys(NOW).await.expect("list"),
        vec![SigningKey {
            private_key: sealed,
            ..key
        }]
    );
}

async fn secret_key_check(store: Arc<dyn Store>) {
    // Several instances starting at once on an empty database agree on one value.
    let racers: Vec<_> = (0..8u8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.init_secret_key_check(&[i; 32], NOW).await })
        })
        .collect();
    let mut recorded = Vec::new();
    for racer in racers {
        recorded.push(racer.await.expect("task").expect("init"));
    }
    let first = recorded[0].clone();
    assert!((0..8u8).any(|i| first == vec![i; 32]));
    assert!(recorded.iter().all(|value| *value == first));
    // The value recorded stays; later callers are told what it is.
    assert_eq!(
        store
            .init_secret_key_check(b"another", NOW + 1)
            .await
            .expect("again"),
        first
    );
}

async fn signing_keys(store: Arc<dyn Store>) {
    assert!(
        store
            .list_signing_keys(NOW)
            .await
            .expect("empty")
            .is_empty()
    );
    let k1 = signing_key("kid-1", NOW - 100, None);
    let k2 = signing_key("kid-2", NOW, None);
    let k0 = signing_key("kid-0", NOW - 1000, Some(NOW - 1));
    // Made in the same rotation as kid-2, for the other algorithm.
    let k2_rsa = SigningKey {
        alg: SigningAlgorithm::Rs256,
        ..signing_key("kid-2r", NOW, None)
    };
    for k in [&k2, &k0, &k1, &k2_rsa] {
        store.insert_signing_key(k).await.expect("insert");
    }

    // Retired ones are left out; ordered by activation.
    assert_eq!(
        store.list_signing_keys(NOW).await.expect("list"),
        vec![k1.clone(), k2.clone(), k2_rsa.clone()]
    );
    assert_eq!(
        store
            .list_signing_keys(NOW - 2)
            .await
            .expect("list earlier"),
        vec![k0.clone(), k1.clone(), k2.clone(), k2_rsa.clone()]
    );

    store
        .retire_signing_keys("kid-2", NOW + 50)
        .await
        .expect("retire");
    let k1_retiring = SigningKey {
        retire_at: Some(NOW + 50),
        ..k1.clone()
    };
    assert_eq!(
        store.list_signing_keys(NOW).await.expect("list"),
        vec![k1_retiring.clone(), k2.clone(), k2_rsa.clone()]
    );
    assert_eq!(
        store
            .list_signing_keys(NOW + 50)
            .await
            .expect("list at retirement"),
        vec![k2.clone(), k2_rsa.clone()]
    );
    // A key that already had a retirement time keeps it.
    assert_eq!(
        store
            .list_signing_keys(NOW - 2)
            .await
            .expect("list earlier"),
        vec![k0, k1_retiring.clone(), k2.clone(), k2_rsa.clone()]
    );

    // Retiring again keeps the first retirement time; the kept key, and the one made with it,
    // stay unretired.
    store
        .retire_signing_keys("kid-2", NOW + 500)
        .await
        .expect("retire again");
    assert_eq!(
        store.list_signing_keys(NOW).await.expect("list"),
        vec![k1_retiring, k2, k2_rsa]
    );

    // A key that begins in the same second as the one kept, with an earlier kid, comes
    // before it in signing order and retires too.
    let k3 = signing_key("kid-3", NOW + 900, None);
    let k4 = signing_key("kid-4", NOW + 900, None);
    for k in [&k4, &k3] {
        store.insert_signing_key(k).await.expect("insert");
    }
    store
        .retire_signing_keys("kid-4", NOW + 950)
        .await
        .expect("retire in the same second");
    assert_eq!(
        store.list_signing_keys(NOW + 950).await.expect("list"),
        vec![k4]
    );
}

// ------------------------------------------------------------------------------------------
// Housekeeping
// ------------------------------------------------------------------------------------------

async fn delete_expired(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;

    // Codes.
    let dead_code = AuthorizationCode {
        expires_at: NOW - 1,
        ..code(&alice.id, &app.id, 1)
    };
    let live_code = code(&alice.id, &app.id, 2);
    store
        .insert_authorization_code(&dead_code)
        .await
        .expect("code");
    store
        .insert_authorization_code(&live_code)
        .await
        .expect("code");

    // Sessions.
    store
        .insert_session(&session(&alice.id, 3, NOW - 1))
        .await
        .expect("session");
    let live_session = session(&alice.id, 4, NOW + 60);
    store.insert_session(&live_session).await.expect("session");

    // Refresh tokens: idle-expired, family-expired, live (also one at exactly `now`).
    let idle = RefreshToken {
        expires_at: NOW - 1,
        ..refresh(&alice.id, &app.id, "fam_1", 5)
    };
    let family_over = RefreshToken {
        family_expires_at: NOW - 1,
        ..refresh(&alice.id, &app.id, "fam_2", 6)
    };
    let live_token = refresh(&alice.id, &app.id, "fam_3", 7);
    for t in [&idle, &family_over, &live_token] {
        store.insert_refresh_token(t).await.expect("refresh");
    }

    // Denylist entries and plain invalidations.
    let live_at = Invalidation::AccessToken {
        jti: "at_live".to_owned(),
        expires_at: NOW + 60,
    };
    let live_family = Invalidation::Family {
        family_id: "fam_live".to_owned(),
        expires_at: NOW + 60,
    };
    let recent_user = Invalidation::User("usr_recent".to_owned());
    store
        .publish_invalidation(
            &Invalidation::AccessToken {
                jti: "at_dead".to_owned(),
                expires_at: NOW - 1,
            },
            NOW - 100,
        )
        .await
        .expect("publish");
    let live_at_seq = store
        .publish_invalidation(&live_at, NOW - 100)
        .await
        .expect("publish");
    store
        .publish_invalidation(
            &Invalidation::Family {
                family_id: "fam_dead".to_owned(),
                expires_at: NOW - 1,
            },
            NOW - 100,
        )
        .await
        .expect("publish");
    let live_family_seq = store
        .publish_invalidation(&live_family, NOW - 100)
        .await
        .expect("publish");
    store
        .publish_invalidation(&Invalidation::User("usr_old".to_owned()), NOW - 7200)
        .await
        .expect("publish");
    let recent_user_seq = store
        .publish_invalidation(&recent_user, NOW - 60)
        .await
        .expect("publish");

    // Signing keys: long retired goes, recently retired stays.
    store
        .insert_signing_key(&signing_key("kid-old", NOW - 200_000, Some(NOW - 100_000)))
        .await
        .expect("key");
    let recent_key = signing_key("kid-recent", NOW - 1000, Some(NOW - 10));
    store.insert_signing_key(&recent_key).await.expect("key");

    // API keys: revoked long ago goes; recently revoked and live stay.
    let ancient = ApiKey {
        revoked_at: Some(NOW - 8_000_000),
        ..api_key(&alice.id, 8)
    };
    let recently_revoked = ApiKey {
        revoked_at: Some(NOW - 10),
        ..api_key(&alice.id, 9)
    };
    let live_key = api_key(&alice.id, 10);
    for k in [&ancient, &recently_revoked, &live_key] {
        store.insert_api_key(k).await.expect("api key");
    }

    // 1 code + 1 session + 2 refresh tokens + 3 invalidations + 1 signing key + 1 API key.
    assert_eq!(store.delete_expired(NOW).await.expect("delete expired"), 9);
    assert_eq!(store.delete_expired(NOW).await.expect("again"), 0);

    assert_eq!(
        store
            .consume_authorization_code(&dead_code.hash, NOW)
            .await
            .expect("code"),
        None
    );
    assert_eq!(
        store
            .consume_authorization_code(&live_code.hash, NOW)
            .await
            .expect("code"),
        Some(live_code)
    );
    assert_eq!(store.get_session(&h(3)).await.expect("session"), None);
    assert_eq!(
        store
            .get_session(&live_session.hash)
            .await
            .expect("session"),
        Some(live_session)
    );
    assert_eq!(
        store.get_refresh_token(&idle.hash).await.expect("token"),
        None
    );
    assert_eq!(
        store
            .get_refresh_token(&family_over.hash)
            .await
            .expect("token"),
        None
    );
    assert_eq!(
        store
            .get_refresh_token(&live_token.hash)
            .await
            .expect("token"),
        Some(live_token)
    );
    assert_eq!(
        store.invalidations_since(0).await.expect("since"),
        vec![
            (live_at_seq, live_at.clone()),
            (live_family_seq, live_family.clone()),
            (recent_user_seq, recent_user),
        ]
    );
    // Even asked about the distant past, only live entries are left in the denylist.
    let mut denylist = store.active_denylist(NOW - 10_000).await.expect("denylist");
    denylist.sort_by_key(|inv| format!("{inv:?}"));
    assert_eq!(denylist, vec![live_at, live_family]);
    assert_eq!(
        store.list_signing_keys(NOW - 300_000).await.expect("keys"),
        vec![recent_key]
    );
    assert_eq!(store.get_api_key(&ancient.id).await.expect("key"), None);
    assert_eq!(
        store.get_api_key(&recently_revoked.id).await.expect("key"),
        Some(recently_revoked)
    );
    assert_eq!(
        store.get_api_key(&live_key.id).await.expect("key"),
        Some(live_key)
    );
    assert_eq!(store.get_user(&alice.id).await.expect("user"), Some(alice));
}

// ------------------------------------------------------------------------------------------
// Lost updates, key creators, ending a user's sign-ins (issue 11)
// ------------------------------------------------------------------------------------------

/// A PATCH that read the user before a demotion writes only what it changes: the demotion
/// (and a password change made meanwhile) stays.
async fn users_stale_update_keeps_role(store: Arc<dyn Store>) {
    let mut admin = user("ada@example.com");
    admin.role = Role::Admin;
    store
        .create_user(&admin, None, &event(Some(&admin.id), "user.created"), None)
        .await
        .expect("create");
    let stale = store.get_user(&admin.id).await.expect("get").expect("user");
    // Another administrator, so that the demotion is allowed (the last one stays).
    add_admin(&store, "other-admin@example.com").await;

    let demotion = UserChanges {
        role: Some(Role::Member),
        password_hash: Some("$argon2id$v=19$reset".to_owned()),
        ..UserChanges::default()
    };
    store
        .update_user(&admin.id, &demotion, NOW + 1)
        .await
        .expect("demote");

    let rename = UserChanges {
        name: Some(format!("{} (renamed)", stale.name)),
        ..UserChanges::default()
    };
    let after = store
        .update_user(&stale.id, &rename, NOW + 2)
        .await
        .expect("rename")
        .expect("user");
    assert_eq!(after.role, Role::Member);
    assert_eq!(after.password_hash, "$argon2id$v=19$reset");
    assert_eq!(after.name, "User ada@example.com (renamed)");
    assert_eq!(after.email, admin.email);
    assert_eq!(after.updated_at, NOW + 2);
    assert_eq!(store.get_user(&admin.id).await.expect("get"), Some(after));
}

/// A PATCH that read the client before a secret rotation never writes the old secret back.
async fn clients_stale_update_keeps_secret(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;
    let stale = store
        .get_client(&app.id)
        .await
        .expect("get")
        .expect("client");
    assert_eq!(stale.secret_hash, Some(h(1)));

    assert!(
        store
            .set_client_secret(&app.id, &h(77), NOW + 1)
            .await
            .expect("rotate")
    );
    let after = store
        .update_client(
            &stale.id,
            &ClientChanges {
                name: Some("renamed".to_owned()),
                ..ClientChanges::default()
            },
            NOW + 2,
        )
        .await
        .expect("rename")
        .expect("client");
    assert_eq!(after.secret_hash, Some(h(77)));
    assert_eq!(after.name, "renamed");
    assert_eq!(after.redirect_uris, app.redirect_uris);
    assert_eq!(after.grant_types, app.grant_types);
    assert_eq!(after.scopes, app.scopes);
    assert_eq!(after.rate_limit, app.rate_limit);
    assert_eq!(store.get_client(&app.id).await.expect("get"), Some(after));
}

/// Keys remember the client whose token made them; they are revoked per (client, user) when
/// consent is withdrawn, and per client when it is deleted.
async fn api_keys_of_client(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let bob = add_user(&store, "bob@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;
    let other = add_client(&store, &alice.id, 2).await;
    let made_by = |key: ApiKey, client: &OAuthClient| ApiKey {
        created_by_client: Some(client.id.clone()),
        ..key
    };
    let alice_via_app = made_by(api_key(&alice.id, 1), &app);
    let alice_via_app_revoked = ApiKey {
        revoked_at: Some(NOW - 1),
        ..made_by(api_key(&alice.id, 2), &app)
    };
    let alice_via_other = made_by(api_key(&alice.id, 3), &other);
    let alice_direct = api_key(&alice.id, 4);
    let bob_via_app = made_by(api_key(&bob.id, 5), &app);
    for key in [
        &alice_via_app,
        &alice_via_app_revoked,
        &alice_via_other,
        &alice_direct,
        &bob_via_app,
    ] {
        store.insert_api_key(key).await.expect("insert");
    }
    assert_eq!(
        store.get_api_key(&alice_via_app.id).await.expect("get"),
        Some(alice_via_app.clone())
    );

    // Alice withdraws her consent for `app`: her live key made through it, nothing else.
    let revoked = store
        .revoke_api_keys_of_client(&app.id, Some(&alice.id), NOW + 5)
        .await
        .expect("revoke alice's");
    assert_eq!(revoked, vec![alice_via_app.hash]);
    let revoked_at = |key: &ApiKey| {
        let store = store.clone();
        let id = key.id.clone();
        async move {
            store
                .get_api_key(&id)
                .await
                .expect("get")
                .expect("key")
                .revoked_at
        }
    };
    assert_eq!(revoked_at(&alice_via_app).await, Some(NOW + 5));
    assert_eq!(revoked_at(&alice_via_app_revoked).await, Some(NOW - 1));
    assert_eq!(revoked_at(&alice_via_other).await, None);
    assert_eq!(revoked_at(&alice_direct).await, None);
    assert_eq!(revoked_at(&bob_via_app).await, None);

    // `app` is deleted: every user's keys made through it.
    let revoked = store
        .revoke_api_keys_of_client(&app.id, None, NOW + 6)
        .await
        .expect("revoke all");
    assert_eq!(revoked, vec![bob_via_app.hash]);
    assert_eq!(revoked_at(&bob_via_app).await, Some(NOW + 6));
    assert_eq!(revoked_at(&alice_via_other).await, None);
    assert!(
        store
            .revoke_api_keys_of_client(&app.id, None, NOW + 7)
            .await
            .expect("again")
            .is_empty()
    );
}

async fn refresh_revoke_for_user(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let bob = add_user(&store, "bob@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;
    let other_app = add_client(&store, &bob.id, 2).await;
    let tokens = [
        refresh(&alice.id, &app.id, "fam_b", 1),
        refresh(&alice.id, &app.id, "fam_b", 2),
        refresh(&alice.id, &other_app.id, "fam_a", 3),
        RefreshToken {
            revoked_at: Some(NOW - 1),
            ..refresh(&alice.id, &app.id, "fam_c", 4)
        },
        refresh(&bob.id, &app.id, "fam_d", 5),
    ];
    for t in &tokens {
        store.insert_refresh_token(t).await.expect("insert");
    }
    let families = store
        .revoke_refresh_for_user(&alice.id, NOW + 5)
        .await
        .expect("revoke");
    assert_eq!(families, vec!["fam_a".to_owned(), "fam_b".to_owned()]);
    let expected = [
        Some(NOW + 5),
        Some(NOW + 5),
        Some(NOW + 5),
        Some(NOW - 1),
        None,
    ];
    for (t, want) in tokens.iter().zip(expected) {
        let got = store
            .get_refresh_token(&t.hash)
            .await
            .expect("get")
            .expect("token");
        assert_eq!(got.revoked_at, want, "token of {}", t.family_id);
    }
    assert!(
        store
            .revoke_refresh_for_user(&alice.id, NOW + 6)
            .await
            .expect("again")
            .is_empty()
    );
}

fn email_link(purpose: EmailPurpose, user: &User, n: u8, expires_at: Timestamp) -> EmailToken {
    EmailToken {
        id: new_id("eml"),
        purpose,
        user_id: user.id.clone(),
        email: user.email.clone(),
        hash: h(n),
        created_at: NOW,
        expires_at,
        used_at: None,
    }
}

async fn email_links_verify_once(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    assert!(!alice.email_verified);
    let link = email_link(EmailPurpose::VerifyEmail, &alice, 1, NOW + 600);
    store.insert_email_token(&link).await.expect("insert");
    assert_eq!(store.get_email_token(&h(1)).await.expect("get"), Some(link));
    // A reset link is no verification link; an expired one verifies nothing.
    store
        .insert_email_token(&email_link(
            EmailPurpose::ResetPassword,
            &alice,
            2,
            NOW + 600,
        ))
        .await
        .expect("insert");
    store
        .insert_email_token(&email_link(EmailPurpose::VerifyEmail, &alice, 3, NOW - 1))
        .await
        .expect("insert");
    for n in [2, 3, 9] {
        assert_eq!(
            store
                .verify_email_with_token(&h(n), NOW)
                .await
                .expect("verify"),
            None
        );
    }
    // Twice at once: once.
    let one = h(1);
    let (a, b) = tokio::join!(
        store.verify_email_with_token(&one, NOW),
        store.verify_email_with_token(&one, NOW)
    );
    let verified: Vec<User> = [a.expect("a"), b.expect("b")]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(verified.len(), 1);
    assert!(verified[0].email_verified);
    assert_eq!(
        store
            .get_email_token(&h(1))
            .await
            .expect("get")
            .and_then(|l| l.used_at),
        Some(NOW)
    );
    // A new address is unverified, and a link sent to the old one does not verify it.
    store
        .insert_email_token(&email_link(EmailPurpose::VerifyEmail, &alice, 4, NOW + 600))
        .await
        .expect("insert");
    let changes = UserChanges {
        email: Some("alice@new.example".to_owned()),
        ..UserChanges::default()
    };
    let moved = store
        .update_user(&alice.id, &changes, NOW)
        .await
        .expect("update")
        .expect("user");
    assert!(!moved.email_verified);
    assert_eq!(
        store
            .verify_email_with_token(&h(4), NOW)
            .await
            .expect("verify"),
        None
    );
    assert!(
        !store
            .get_user(&alice.id)
            .await
            .expect("get")
            .expect("user")
            .email_verified
    );
    // Expired links go with the housekeeping.
    store.delete_expired(NOW + 601).await.expect("clean");
    assert_eq!(store.get_email_token(&h(1)).await.expect("get"), None);
}

async fn email_links_reset_once(store: Arc<dyn Store>) {
    let bob = add_user(&store, "bob@example.com").await;
    for n in [1, 2] {
        store
            .insert_email_token(&email_link(
                EmailPurpose::ResetPassword,
                &bob,
                n,
                NOW + 1800,
            ))
            .await
            .expect("insert");
    }
    store
        .insert_email_token(&email_link(EmailPurpose::VerifyEmail, &bob, 3, NOW + 1800))
        .await
        .expect("insert");
    assert_eq!(
        store
            .reset_password_with_token(&h(3), "$argon2id$v=19$new", NOW)
            .await
            .expect("reset"),
        None
    );
    assert_eq!(
        store
            .reset_password_with_token(&h(1), "$argon2id$v=19$new", NOW + 1800)
            .await
            .expect("reset"),
        None,
        "expired"
    );
    let one = h(1);
    let (a, b) = tokio::join!(
        store.reset_password_with_token(&one, "$argon2id$v=19$a", NOW),
        store.reset_password_with_token(&one, "$argon2id$v=19$b", NOW)
    );
    let reset: Vec<User> = [a.expect("a"), b.expect("b")]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(reset.len(), 1);
    let stored = store.get_user(&bob.id).await.expect("get").expect("user");
    assert_eq!(stored.password_hash, reset[0].password_hash);
    // The other reset link of the user ended with it; the verification link did not.
    assert_eq!(
        store
            .reset_password_with_token(&h(2), "$argon2id$v=19$c", NOW)
            .await
            .expect("reset"),
        None
    );
    assert!(
        store
            .verify_email_with_token(&h(3), NOW)
            .await
            .expect("verify")
            .is_some()
    );
}

async fn reset_links_end_with_the_address_or_password_they_were_for(store: Arc<dyn Store>) {
    let carol = add_user(&store, "carol@example.com").await;
    let link = |n| email_link(EmailPurpose::ResetPassword, &carol, n, NOW + 1800);
    let reset = |n| {
        let store = store.clone();
        async move {
            store
                .reset_password_with_token(&h(n), "$argon2id$v=19$taken-over", NOW)
                .await
                .expect("reset")
        }
    };
    let password_of = || {
        let store = store.clone();
        let id = carol.id.clone();
        async move {
            store
                .get_user(&id)
                .await
                .expect("get")
                .expect("user")
                .password_hash
        }
    };
    // A change of address ends the reset links mailed to the old one.
    store.insert_email_token(&link(1)).await.expect("insert");
    let moved = UserChanges {
        email: Some("carol@new.example".to_owned()),
        ..UserChanges::default()
    };
    store
        .update_user(&carol.id, &moved, NOW)
        .await
        .expect("update")
        .expect("user");
    let before = password_of().await;
    assert_eq!(reset(1).await, None);
    assert_eq!(
        store
            .get_email_token(&h(1))
            .await
            .expect("get")
            .and_then(|l| l.used_at),
        Some(NOW),
        "ended by the change"
    );
    // One mailed to the old address and stored only after the change (a reset asked for
    // just before it, racing it) sets no password either, and is used up.
    store.insert_email_token(&link(4)).await.expect("insert");
    assert_eq!(reset(4).await, None);
    assert_eq!(password_of().await, before);
    assert!(
        store
            .get_email_token(&h(4))
            .await
            .expect("get")
            .is_some_and(|l| l.used_at.is_some())
    );
    // A new password ends the reset links mailed before it.
    let again = UserChanges {
        email: Some("carol@example.com".to_owned()),
        ..UserChanges::default()
    };
    store
        .update_user(&carol.id, &again, NOW)
        .await
        .expect("update")
        .expect("user");
    store.insert_email_token(&link(2)).await.expect("insert");
    let renamed = UserChanges {
        name: Some("Carol".to_owned()),
        ..UserChanges::default()
    };
    store
        .update_user(&carol.id, &renamed, NOW)
        .await
        .expect("update")
        .expect("user");
    assert!(
        store
            .get_email_token(&h(2))
            .await
            .expect("get")
            .is_some_and(|l| l.used_at.is_none()),
        "a change of name leaves it"
    );
    let new_password = UserChanges {
        password_hash: Some("$argon2id$v=19$chosen".to_owned()),
        ..UserChanges::default()
    };
    store
        .update_user(&carol.id, &new_password, NOW)
        .await
        .expect("update")
        .expect("user");
    assert_eq!(reset(2).await, None);
    assert_eq!(password_of().await, "$argon2id$v=19$chosen");
    // A link mailed after the change works.
    store.insert_email_token(&link(3)).await.expect("insert");
    assert!(reset(3).await.is_some());
    assert_eq!(password_of().await, "$argon2id$v=19$taken-over");
}

async fn sessions_of_user(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let bob = add_user(&store, "bob@example.com").await;
    let sessions = [
        session(&alice.id, 1, NOW + 600),
        session(&alice.id, 2, NOW + 1200),
        session(&bob.id, 3, NOW + 600),
    ];
    for s in &sessions {
        store.insert_session(s).await.expect("insert");
    }
    assert_eq!(store.delete_user_sessions(&alice.id).await.expect("end"), 2);
    assert_eq!(store.get_session(&h(1)).await.expect("get"), None);
    assert_eq!(store.get_session(&h(2)).await.expect("get"), None);
    assert_eq!(
        store.get_session(&h(3)).await.expect("get"),
        Some(sessions[2].clone())
    );
    assert_eq!(
        store.delete_user_sessions(&alice.id).await.expect("again"),
        0
    );
}

// ------------------------------------------------------------------------------------------
// Resources
// ------------------------------------------------------------------------------------------

fn resource(identifier: &str) -> Resource {
    Resource {
        id: new_id("res"),
        identifier: identifier.to_owned(),
        name: format!("API at {identifier}"),
        scopes: vec![
            ResourceScope {
                name: "orders:read".to_owned(),
                description: "Read your orders".to_owned(),
            },
            ResourceScope {
                name: "orders:write".to_owned(),
                description: String::new(),
            },
        ],
        self_service_scopes: vec!["orders:read".to_owned()],
        allow_api_keys: true,
        access_token_ttl: Some(300),
        created_at: NOW,
        updated_at: NOW,
        deleted_at: None,
    }
}

async fn resources_crud(store: Arc<dyn Store>) {
    let orders = resource("https://orders.example.com");
    store.insert_resource(&orders).await.expect("insert");
    tick().await;
    let billing = Resource {
        allow_api_keys: false,
        access_token_ttl: None,
        self_service_scopes: Vec::new(),
        ..resource("http://127.0.0.1:9000/billing")
    };
    store.insert_resource(&billing).await.expect("insert");
    assert_eq!(
        store.get_resource(&orders.id).await.expect("get"),
        Some(orders.clone())
    );
    assert_eq!(
        store
            .get_resource_by_identifier(&billing.identifier)
            .await
            .expect("by identifier"),
        Some(billing.clone())
    );
    assert_eq!(
        store
            .get_resource_by_identifier("https://nowhere.example.com")
            .await
            .expect("unknown"),
        None
    );
    let taken = Resource {
        id: new_id("res"),
        ..orders.clone()
    };
    assert!(matches!(
        store.insert_resource(&taken).await,
        Err(StoreError::Conflict("identifier"))
    ));
    let page = store.list_resources(None, 1).await.expect("list");
    assert_eq!(page, vec![orders.clone()]);
    let rest = store
        .list_resources(Some(&orders.id), 10)
        .await
        .expect("list");
    assert_eq!(rest, vec![billing.clone()]);

    let changes = ResourceChanges {
        name: Some("Orders".to_owned()),
        self_service_scopes: Some(Vec::new()),
        access_token_ttl: Some(None),
        ..ResourceChanges::default()
    };
    let changed = store
        .update_resource(&orders.id, &changes, NOW + 5)
        .await
        .expect("update")
        .expect("live");
    assert_eq!(
        changed,
        Resource {
            name: "Orders".to_owned(),
            self_service_scopes: Vec::new(),
            access_token_ttl: None,
            updated_at: NOW + 5,
            ..orders.clone()
        }
    );
    // A change conditioned on the self-service scopes it read writes nothing once they are
    // no longer those (a withdrawal came first), and goes through while they are.
    let stale = ResourceChanges {
        self_service_scopes: Some(orders.self_service_scopes.clone()),
        if_self_service_scopes: Some(orders.self_service_scopes.clone()),
        ..ResourceChanges::default()
    };
    assert_ne!(orders.self_service_scopes, changed.self_service_scopes);
    assert_eq!(
        store
            .update_resource(&orders.id, &stale, NOW + 6)
            .await
            .expect("update"),
        None
    );
    assert_eq!(
        store
            .get_resource(&orders.id)
            .await
            .expect("get")
            .expect("found"),
        changed
    );
    let current = ResourceChanges {
        name: Some("Orders API".to_owned()),
        if_self_service_scopes: Some(changed.self_service_scopes.clone()),
        ..ResourceChanges::default()
    };
    let renamed = store
        .update_resource(&orders.id, &current, NOW + 7)
        .await
        .expect("update")
        .expect("live");
    assert_eq!(renamed.name, "Orders API");

    // Deleted: a tombstone that keeps its identifier taken and takes no more changes.
    assert_eq!(
        store
            .delete_resource(&orders.id, NOW + 10)
            .await
            .expect("delete"),
        Some(ResourceDeletion::default())
    );
    assert_eq!(
        store
            .delete_resource(&orders.id, NOW + 11)
            .await
            .expect("again"),
        None
    );
    assert_eq!(
        store
            .delete_resource("res_unknown", NOW)
            .await
            .expect("unknown"),
        None
    );
    let tombstone = store
        .get_resource(&orders.id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(tombstone.deleted_at, Some(NOW + 10));
    assert_eq!(
        store.list_resources(None, 10).await.expect("list"),
        vec![billing.clone()]
    );
    assert!(matches!(
        store.insert_resource(&taken).await,
        Err(StoreError::Conflict("identifier"))
    ));
    assert_eq!(
        store
            .update_resource(&orders.id, &changes, NOW + 12)
            .await
            .expect("update"),
        None
    );
}

async fn resources_delete_revokes(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;
    let orders = resource("https://orders.example.com");
    let billing = resource("https://billing.example.com");
    for r in [&orders, &billing] {
        store.insert_resource(r).await.expect("insert");
    }
    let for_orders = |key: ApiKey| ApiKey {
        scopes: Scopes::EMPTY,
        resource: Some(orders.reference()),
        resource_scopes: vec!["orders:read".to_owned()],
        metadata: Some(r#"{"plan":"gold"}"#.to_owned()),
        ..key
    };
    let orders_key = for_orders(api_key(&alice.id, 1));
    let own_key = api_key(&alice.id, 2);
    let billing_key = ApiKey {
        resource: Some(billing.reference()),
        ..api_key(&alice.id, 3)
    };
    for key in [&orders_key, &own_key, &billing_key] {
        store.insert_api_key(key).await.expect("key");
    }
    assert_eq!(
        store.get_api_key(&orders_key.id).await.expect("get"),
        Some(orders_key.clone()),
        "the resource, its scopes and the metadata round-trip"
    );
    let orders_token = RefreshToken {
        resource_id: Some(orders.id.clone()),
        resource_scopes: vec!["orders:write".to_owned()],
        ..refresh(&alice.id, &app.id, "fam_orders", 4)
    };
    let own_token = refresh(&alice.id, &app.id, "fam_own", 5);
    for t in [&orders_token, &own_token] {
        store.insert_refresh_token(t).await.expect("refresh");
    }
    assert_eq!(
        store.get_refresh_token(&h(4)).await.expect("get"),
        Some(orders_token.clone())
    );
    let orders_code = AuthorizationCode {
        resource_id: Some(orders.id.clone()),
        resource_scopes: vec!["orders:read".to_owned(), "orders:write".to_owned()],
        ..code(&alice.id, &app.id, 6)
    };
    store
        .insert_authorization_code(&orders_code)
        .await
        .expect("code");
    let own_code = code(&alice.id, &app.id, 7);
    store
        .insert_authorization_code(&own_code)
        .await
        .expect("code");
    let grant = ResourceGrant {
        user_id: alice.id.clone(),
        resource_id: orders.id.clone(),
        scopes: vec!["orders:write".to_owned()],
        updated_at: NOW,
    };
    store.set_resource_grant(&grant).await.expect("grant");

    let deleted = store
        .delete_resource(&orders.id, NOW + 1)
        .await
        .expect("delete")
        .expect("was live");
    assert_eq!(
        deleted,
        ResourceDeletion {
            keys: vec![orders_key.hash],
            families: vec!["fam_orders".to_owned()],
        }
    );
    let revoked = store
        .get_api_key(&orders_key.id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(revoked.revoked_at, Some(NOW + 1));
    for untouched in [&own_key, &billing_key] {
        assert_eq!(
            store
                .get_api_key(&untouched.id)
                .await
                .expect("get")
                .as_ref(),
            Some(untouched)
        );
    }
    let token = store
        .get_refresh_token(&h(4))
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(token.revoked_at, Some(NOW + 1));
    assert_eq!(
        store.get_refresh_token(&h(5)).await.expect("get"),
        Some(own_token)
    );
    assert_eq!(
        store
            .consume_authorization_code(&h(6), NOW + 2)
            .await
            .expect("code"),
        None,
        "its codes are gone"
    );
    let mut own = store
        .consume_authorization_code(&h(7), NOW + 2)
        .await
        .expect("code")
        .expect("kept");
    own.used_at = None;
    assert_eq!(own, own_code);
    assert_eq!(
        store
            .get_resource_grant(&alice.id, &orders.id)
            .await
            .expect("grant"),
        None
    );
}

async fn resource_grants(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let bob = add_user(&store, "bob@example.com").await;
    let orders = resource("https://orders.example.com");
    let billing = resource("https://billing.example.com");
    for r in [&orders, &billing] {
        store.insert_resource(r).await.expect("insert");
    }
    let grant = |user: &User, r: &Resource, scopes: &[&str], at| ResourceGrant {
        user_id: user.id.clone(),
        resource_id: r.id.clone(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        updated_at: at,
    };
    let first = grant(&alice, &orders, &["orders:write"], NOW);
    store.set_resource_grant(&first).await.expect("set");
    let replaced = grant(&alice, &orders, &["orders:read", "orders:write"], NOW + 1);
    store.set_resource_grant(&replaced).await.expect("replace");
    let other = grant(&alice, &billing, &["orders:read"], NOW);
    store.set_resource_grant(&other).await.expect("set");
    let bobs = grant(&bob, &orders, &["orders:write"], NOW);
    store.set_resource_grant(&bobs).await.expect("set");
    assert_eq!(
        store
            .get_resource_grant(&alice.id, &orders.id)
            .await
            .expect("get"),
        Some(replaced.clone())
    );
    let mut expected = vec![replaced.clone(), other.clone()];
    expected.sort_by(|a, b| a.resource_id.cmp(&b.resource_id));
    assert_eq!(
        store.list_resource_grants(&alice.id).await.expect("list"),
        expected
    );
    // No scopes: the grant goes.
    store
        .set_resource_grant(&grant(&alice, &billing, &[], NOW + 2))
        .await
        .expect("clear");
    assert_eq!(
        store.list_resource_grants(&alice.id).await.expect("list"),
        vec![replaced]
    );
    // A deleted user's grants go with it; others stay.
    assert!(store.delete_user(&alice.id).await.expect("delete"));
    assert!(
        store
            .list_resource_grants(&alice.id)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        store.list_resource_grants(&bob.id).await.expect("list"),
        vec![bobs]
    );
}

// ------------------------------------------------------------------------------------------
// Webhooks
// ------------------------------------------------------------------------------------------

fn webhook(events: &[&str]) -> Webhook {
    Webhook {
        id: new_id("whk"),
        created_by: new_id("usr"),
        url: "https://hooks.example.com/netapi".to_owned(),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        sealed_secret: vec![7; 60],
        created_at: NOW,
        disabled_at: None,
    }
}

fn outbox(event_type: &str) -> OutboxEvent {
    OutboxEvent {
        event_type: event_type.to_owned(),
        payload: format!(r#"{{"type":"{event_type}"}}"#),
    }
}

/// Records an event of `kind` for webhooks; answers it.
async fn record(store: &Arc<dyn Store>, kind: &str) -> AuditEvent {
    let e = event(None, kind);
    store
        .record_event(&e, Some(&outbox(kind)))
        .await
        .expect("record event");
    e
}

async fn webhooks_crud(store: Arc<dyn Store>) {
    let first = webhook(&["user.created", "api_key.revoked"]);
    assert!(store.insert_webhook(&first, 20).await.expect("insert"));
    tick().await;
    let second = webhook(&["login.locked"]);
    assert!(store.insert_webhook(&second, 20).await.expect("insert"));

    assert_eq!(
        store.get_webhook(&first.id).await.expect("get"),
        Some(first.clone())
    );
    assert_eq!(store.get_webhook("whk_unknown").await.expect("get"), None);
    assert_eq!(
        store.list_webhooks(None, 10).await.expect("list"),
        vec![first.clone(), second.clone()]
    );
    assert_eq!(
        store
            .list_webhooks(Some(&first.id), 10)
            .await
            .expect("page"),
        vec![second.clone()]
    );
    assert_eq!(
        store.list_webhooks(None, 1).await.expect("limit"),
        vec![first.clone()]
    );

    assert!(
        store
            .disable_webhook(&first.id, NOW + 5)
            .await
            .expect("disable")
    );
    assert!(
        !store
            .disable_webhook(&first.id, NOW + 6)
            .await
            .expect("again"),
        "disabling twice changes nothing"
    );
    assert!(
        !store
            .disable_webhook("whk_unknown", NOW)
            .await
            .expect("unknown")
    );
    let disabled = store
        .get_webhook(&first.id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(disabled.disabled_at, Some(NOW + 5));
    assert_eq!(
        store.list_webhooks(None, 10).await.expect("list"),
        vec![second],
        "disabled webhooks are not listed"
    );
}

async fn webhooks_outbox(store: Arc<dyn Store>) {
    let users = webhook(&["user.created", "user.deleted"]);
    let keys = webhook(&["api_key.created"]);
    let gone = webhook(&["user.created"]);
    for w in [&users, &keys, &gone] {
        assert!(store.insert_webhook(w, 20).await.expect("insert"));
    }
    store.disable_webhook(&gone.id, NOW).await.expect("disable");

    let created = record(&store, "user.created").await;
    // An event no one subscribed to, and one recorded without an outbox entry.
    record(&store, "login.locked").await;
    let plain = event(None, "user.created");
    store.record_event(&plain, None).await.expect("plain event");

    let events = store
        .list_audit_events(None, None, 10)
        .await
        .expect("events");
    assert_eq!(events.len(), 3, "every event is recorded");

    let to_users = store
        .list_webhook_deliveries(&users.id, None, 10)
        .await
        .expect("deliveries");
    assert_eq!(to_users.len(), 1, "{to_users:?}");
    let delivery = &to_users[0];
    assert!(delivery.id.starts_with("whd_"));
    assert_eq!(delivery.webhook_id, users.id);
    assert_eq!(delivery.event_id, created.id);
    assert_eq!(delivery.event_type, "user.created");
    assert_eq!(delivery.payload, outbox("user.created").payload);
    assert_eq!(delivery.status, DeliveryStatus::Pending);
    assert_eq!(delivery.attempts, 0);
    assert_eq!(delivery.next_attempt_at, created.created_at);
    assert_eq!(delivery.last_status_code, None);
    assert_eq!(delivery.delivered_at, None);
    assert_eq!(
        store
            .get_webhook_delivery(&users.id, &delivery.id)
            .await
            .expect("get"),
        Some(delivery.clone())
    );
    assert_eq!(
        store
            .get_webhook_delivery(&keys.id, &delivery.id)
            .await
            .expect("get"),
        None,
        "a delivery is found only under its own webhook"
    );
    for other in [&keys, &gone] {
        assert!(
            store
                .list_webhook_deliveries(&other.id, None, 10)
                .await
                .expect("deliveries")
                .is_empty(),
            "nothing for unsubscribed or disabled webhooks"
        );
    }

    // Newest first, paged with `before`.
    tick().await;
    record(&store, "user.deleted").await;
    let all = store
        .list_webhook_deliveries(&users.id, None, 10)
        .await
        .expect("all");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].event_type, "user.deleted");
    let next = store
        .list_webhook_deliveries(&users.id, Some(&all[0].id), 10)
        .await
        .expect("page");
    assert_eq!(next, all[1..]);

    // A user created with its event writes the event's deliveries in the same transaction.
    let carol = user("carol@example.com");
    let carol_created = event(Some(&carol.id), "user.created");
    store
        .create_user(&carol, None, &carol_created, Some(&outbox("user.created")))
        .await
        .expect("create user");
    let newest = store
        .list_webhook_deliveries(&users.id, None, 1)
        .await
        .expect("deliveries");
    assert_eq!(newest[0].event_id, carol_created.id);
}

async fn webhooks_outbox_is_atomic(store: Arc<dyn Store>) {
    let w = webhook(&["user.created"]);
    assert!(store.insert_webhook(&w, 20).await.expect("insert"));
    let first = record(&store, "user.created").await;
    // The same event id again: the event is refused, and so is its delivery.
    let again = store
        .record_event(&first, Some(&outbox("user.created")))
        .await;
    assert!(again.is_err(), "a duplicate event id is refused");
    let deliveries = store
        .list_webhook_deliveries(&w.id, None, 10)
        .await
        .expect("deliveries");
    assert_eq!(deliveries.len(), 1, "no delivery without its event");
}

async fn webhook_deliveries_claim_and_attempts(store: Arc<dyn Store>) {
    let w = webhook(&["user.created"]);
    assert!(store.insert_webhook(&w, 20).await.expect("insert"));
    let e = record(&store, "user.created").await;
    let lease = NOW + 60;

    assert!(
        store
            .claim_webhook_deliveries(NOW - 1, lease, 10)
            .await
            .expect("claim")
            .is_empty(),
        "not due before its time"
    );
    let claimed = store
        .claim_webhook_deliveries(NOW, lease, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].delivery.event_id, e.id);
    assert_eq!(
        claimed[0].delivery.next_attempt_at, lease,
        "held until the lease ends"
    );
    assert_eq!(claimed[0].url, w.url, "with its webhook's URL");
    assert_eq!(claimed[0].sealed_secret, w.sealed_secret, "and secret");
    assert!(
        store
            .claim_webhook_deliveries(NOW + 1, NOW + 61, 10)
            .await
            .expect("claim")
            .is_empty(),
        "a leased delivery is not claimed again"
    );

    // A failed attempt, to be retried.
    let failed = DeliveryAttempt {
        status: DeliveryStatus::Pending,
        next_attempt_at: NOW + 10,
        status_code: Some(500),
        error: Some("HTTP 500".to_owned()),
        at: NOW + 1,
    };
    let id = claimed[0].delivery.id.clone();
    assert!(
        !store
            .record_webhook_attempt(&id, NOW + 61, &failed)
            .await
            .expect("record"),
        "only the holder of the lease records"
    );
    assert!(
        store
            .record_webhook_attempt(&id, lease, &failed)
            .await
            .expect("record")
    );
    let stored = get_delivery(&store, &w, &id).await;
    assert_eq!(stored.attempts, 1);
    assert_eq!(stored.status, DeliveryStatus::Pending);
    assert_eq!(stored.next_attempt_at, NOW + 10);
    assert_eq!(stored.last_status_code, Some(500));
    assert_eq!(stored.last_error.as_deref(), Some("HTTP 500"));

    // The retry is claimed when due, and succeeds.
    let lease = NOW + 70;
    let retry = store
        .claim_webhook_deliveries(NOW + 10, lease, 10)
        .await
        .expect("claim");
    assert_eq!(retry.len(), 1);
    let delivered = DeliveryAttempt {
        status: DeliveryStatus::Delivered,
        next_attempt_at: lease,
        status_code: Some(204),
        error: None,
        at: NOW + 11,
    };
    assert!(
        store
            .record_webhook_attempt(&id, lease, &delivered)
            .await
            .expect("record")
    );
    let stored = get_delivery(&store, &w, &id).await;
    assert_eq!(stored.attempts, 2);
    assert_eq!(stored.status, DeliveryStatus::Delivered);
    assert_eq!(stored.last_status_code, Some(204));
    assert_eq!(stored.last_error, None);
    assert_eq!(stored.delivered_at, Some(NOW + 11));
    assert!(
        store
            .claim_webhook_deliveries(NOW + 1000, NOW + 1060, 10)
            .await
            .expect("claim")
            .is_empty(),
        "a delivered one is never claimed"
    );

    // Redelivery on demand makes it pending again.
    assert!(
        store
            .redeliver_webhook_delivery(&w.id, &id, NOW + 2000)
            .await
            .expect("redeliver")
    );
    assert!(
        !store
            .redeliver_webhook_delivery("whk_other", &id, NOW + 2000)
            .await
            .expect("redeliver"),
        "only under its own webhook"
    );
    let again = store
        .claim_webhook_deliveries(NOW + 2000, NOW + 2060, 10)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery.status, DeliveryStatus::Pending);

    // Deliveries of a disabled webhook are no longer claimed.
    record(&store, "user.created").await;
    store.disable_webhook(&w.id, NOW).await.expect("disable");
    assert!(
        store
            .claim_webhook_deliveries(NOW + 5000, NOW + 5060, 10)
            .await
            .expect("claim")
            .is_empty()
    );
}

async fn get_delivery(store: &Arc<dyn Store>, w: &Webhook, id: &str) -> WebhookDelivery {
    store
        .get_webhook_delivery(&w.id, id)
        .await
        .expect("get")
        .expect("exists")
}

async fn webhook_deliveries_concurrent_claims(store: Arc<dyn Store>) {
    let w = webhook(&["user.created"]);
    assert!(store.insert_webhook(&w, 20).await.expect("insert"));
    for _ in 0..30 {
        record(&store, "user.created").await;
    }
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .claim_webhook_deliveries(NOW, NOW + 60, 5)
                .await
                .expect("claim")
        }));
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.expect("task").into_iter().map(|c| c.delivery.id));
    }
    let total = claimed.len();
    claimed.sort();
    claimed.dedup();
    assert_eq!(claimed.len(), total, "no delivery is claimed twice");
    assert!(total > 0, "some are claimed");
    // Whatever was not claimed is still there for the next round, once each.
    let rest = store
        .claim_webhook_deliveries(NOW, NOW + 60, 100)
        .await
        .expect("claim");
    assert_eq!(total + rest.len(), 30);
}

async fn webhooks_cap_holds_under_concurrent_creations(store: Arc<dyn Store>) {
    // Two live already, and one disabled (whose slot is free again).
    let gone = webhook(&["user.created"]);
    assert!(store.insert_webhook(&gone, 5).await.expect("insert"));
    store.disable_webhook(&gone.id, NOW).await.expect("disable");
    for _ in 0..2 {
        assert!(
            store
                .insert_webhook(&webhook(&["user.created"]), 5)
                .await
                .expect("insert")
        );
    }
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .insert_webhook(&webhook(&["user.created"]), 5)
                .await
                .expect("insert or refusal, never an error")
        }));
    }
    let mut created = 0;
    for task in tasks {
        if task.await.expect("task") {
            created += 1;
        }
    }
    assert_eq!(created, 3, "exactly the free places were taken");
    assert_eq!(store.list_webhooks(None, 100).await.expect("list").len(), 5);
    assert!(
        !store
            .insert_webhook(&webhook(&["user.created"]), 5)
            .await
            .expect("insert"),
        "full"
    );
    // Disabling one frees a place.
    let live = store.list_webhooks(None, 100).await.expect("list");
    store
        .disable_webhook(&live[0].id, NOW)
        .await
        .expect("disable");
    assert!(
        store
            .insert_webhook(&webhook(&["user.created"]), 5)
            .await
            .expect("insert")
    );
}

async fn webhook_redelivery_waits_for_the_attempt_in_flight(store: Arc<dyn Store>) {
    let w = webhook(&["user.created"]);
    assert!(store.insert_webhook(&w, 20).await.expect("insert"));
    record(&store, "user.created").await;
    let lease = NOW + 60;
    let claimed = store
        .claim_webhook_deliveries(NOW, lease, 10)
        .await
        .expect("claim");
    let id = claimed[0].delivery.id.clone();

    // Asked for while the attempt is in flight: nothing another instance could claim now.
    assert!(
        store
            .redeliver_webhook_delivery(&w.id, &id, NOW + 1)
            .await
            .expect("redeliver")
    );
    assert!(
        store
            .claim_webhook_deliveries(NOW + 1, NOW + 61, 10)
            .await
            .expect("claim")
            .is_empty(),
        "the attempt in flight keeps its lease"
    );
    let delivered = DeliveryAttempt {
        status: DeliveryStatus::Delivered,
        next_attempt_at: lease,
        status_code: Some(204),
        error: None,
        at: NOW + 2,
    };
    assert!(
        store
            .record_webhook_attempt(&id, lease, &delivered)
            .await
            .expect("record"),
        "the holder still records its attempt"
    );
    let stored = get_delivery(&store, &w, &id).await;
    assert_eq!(stored.attempts, 1);
    assert_eq!(stored.delivered_at, Some(NOW + 2));
    assert_eq!(stored.status, DeliveryStatus::Pending, "to be sent again");
    assert_eq!(
        stored.next_attempt_at,
        NOW + 1,
        "due since it was asked for"
    );
    let again = store
        .claim_webhook_deliveries(NOW + 3, NOW + 63, 10)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1, "the redelivery, once");
    assert!(
        store
            .record_webhook_attempt(&id, NOW + 63, &delivered)
            .await
            .expect("record")
    );
    let stored = get_delivery(&store, &w, &id).await;
    assert_eq!(stored.attempts, 2);
    assert_eq!(stored.status, DeliveryStatus::Delivered, "once only");

    // A lease whose holder died (expired) is no reason to wait: due at once.
    assert!(
        store
            .redeliver_webhook_delivery(&w.id, &id, NOW + 10)
            .await
            .expect("redeliver")
    );
    let claimed = store
        .claim_webhook_deliveries(NOW + 10, NOW + 70, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert!(
        store
            .redeliver_webhook_delivery(&w.id, &id, NOW + 100)
            .await
            .expect("redeliver")
    );
    assert_eq!(
        store
            .claim_webhook_deliveries(NOW + 100, NOW + 160, 10)
            .await
            .expect("claim")
            .len(),
        1,
        "due at once after the lease ran out"
    );
}

async fn webhook_deliveries_are_pruned_when_over(store: Arc<dyn Store>) {
    let w = webhook(&["user.created"]);
    assert!(store.insert_webhook(&w, 20).await.expect("insert"));
    for _ in 0..3 {
        record(&store, "user.created").await;
    }
    // One delivered, one failed, one still pending.
    let claimed = store
        .claim_webhook_deliveries(NOW, NOW + 60, 2)
        .await
        .expect("claim");
    for (claimed, status) in claimed
        .iter()
        .zip([DeliveryStatus::Delivered, DeliveryStatus::Failed])
    {
        let attempt = DeliveryAttempt {
            status,
            next_attempt_at: NOW + 1,
            status_code: Some(500),
            error: None,
            at: NOW + 1,
        };
        assert!(
            store
                .record_webhook_attempt(&claimed.delivery.id, NOW + 60, &attempt)
                .await
                .expect("record")
        );
    }
    assert_eq!(
        store
            .delete_expired_batch(Expired::WebhookDeliveries, NOW, 10)
            .await
            .expect("prune"),
        0,
        "none created before"
    );
    assert_eq!(
        store
            .delete_expired_batch(Expired::WebhookDeliveries, NOW + 1, 10)
            .await
            .expect("prune"),
        2
    );
    let left = store
        .list_webhook_deliveries(&w.id, None, 10)
        .await
        .expect("deliveries");
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0].status,
        DeliveryStatus::Pending,
        "a pending one stays"
    );
    // ...unless its webhook is deleted: then it will never be attempted.
    store.disable_webhook(&w.id, NOW).await.expect("disable");
    assert_eq!(
        store
            .delete_expired_batch(Expired::WebhookDeliveries, NOW + 1, 10)
            .await
            .expect("prune"),
        1
    );
}

// ------------------------------------------------------------------------------------------
// Accounts: disabled users, the last administrator, invitations (issue 15)
// ------------------------------------------------------------------------------------------

async fn add_admin(store: &Arc<dyn Store>, email: &str) -> User {
    let admin = User {
        role: Role::Admin,
        ..user(email)
    };
    store
        .create_user(&admin, None, &event(Some(&admin.id), "user.created"), None)
        .await
        .expect("create admin");
    admin
}

async fn users_disable_and_last_admin(store: Arc<dyn Store>) {
    let root = add_admin(&store, "root@example.com").await;
    let member = add_user(&store, "member@example.com").await;
    let disable = UserChanges {
        disabled_at: Some(Some(NOW + 5)),
        ..UserChanges::default()
    };
    let changed = store
        .update_user(&member.id, &disable, NOW + 5)
        .await
        .expect("disable")
        .expect("found");
    assert_eq!(changed.disabled_at, Some(NOW + 5));
    assert_eq!(changed.name, member.name, "other columns kept");
    // A change that does not name `disabled_at` keeps it.
    let renamed = store
        .update_user(
            &member.id,
            &UserChanges {
                name: Some("Renamed".to_owned()),
                ..UserChanges::default()
            },
            NOW + 6,
        )
        .await
        .expect("rename")
        .expect("found");
    assert_eq!(renamed.disabled_at, Some(NOW + 5));
    let enabled = store
        .update_user(
            &member.id,
            &UserChanges {
                disabled_at: Some(None),
                ..UserChanges::default()
            },
            NOW + 7,
        )
        .await
        .expect("enable")
        .expect("found");
    assert_eq!(enabled.disabled_at, None);

    // The only administrator cannot be demoted, disabled or deleted.
    let demote = UserChanges {
        role: Some(Role::Member),
        ..UserChanges::default()
    };
    for changes in [&demote, &disable] {
        let err = store
            .update_user(&root.id, changes, NOW + 8)
            .await
            .expect_err("last admin");
        assert!(matches!(err, StoreError::Conflict("last_admin")), "{err:?}");
    }
    let err = store.delete_user(&root.id).await.expect_err("last admin");
    assert!(matches!(err, StoreError::Conflict("last_admin")), "{err:?}");
    let kept = store.get_user(&root.id).await.expect("get").expect("kept");
    assert_eq!((kept.role, kept.disabled_at), (Role::Admin, None));
    // Unknown users are still "not found".
    assert_eq!(
        store
            .update_user("usr_unknown", &demote, NOW)
            .await
            .expect("update"),
        None
    );
    assert!(!store.delete_user("usr_unknown").await.expect("delete"));
    // A renamed last administrator is fine, and with a second one the first may go.
    store
        .update_user(
            &root.id,
            &UserChanges {
                name: Some("Root".to_owned()),
                ..UserChanges::default()
            },
            NOW + 9,
        )
        .await
        .expect("rename admin")
        .expect("found");
    let second = add_admin(&store, "second@example.com").await;
    let demoted = store
        .update_user(&root.id, &demote, NOW + 10)
        .await
        .expect("demote")
        .expect("found");
    assert_eq!(demoted.role, Role::Member);
    // The second is now the only active administrator.
    let err = store
        .delete_user(&second.id)
        .await
        .expect_err("second is now the last");
    assert!(matches!(err, StoreError::Conflict("last_admin")), "{err:?}");
    assert!(store.delete_user(&member.id).await.expect("delete member"));
}

async fn users_concurrent_demotions_leave_an_admin(store: Arc<dyn Store>) {
    let a = add_admin(&store, "a@example.com").await;
    let b = add_admin(&store, "b@example.com").await;
    let demote = UserChanges {
        role: Some(Role::Member),
        ..UserChanges::default()
    };
    let disable = UserChanges {
        disabled_at: Some(Some(NOW)),
        ..UserChanges::default()
    };
    let (first, second) = tokio::join!(
        store.update_user(&a.id, &demote, NOW),
        store.update_user(&b.id, &disable, NOW)
    );
    let ok = [&first, &second]
        .into_iter()
        .filter(|r| matches!(r, Ok(Some(_))))
        .count();
    assert_eq!(ok, 1, "one of two must be refused: {first:?} {second:?}");
    let active_admins = store
        .list_users(None, 100)
        .await
        .expect("list")
        .into_iter()
        .filter(|u| u.role == Role::Admin && u.disabled_at.is_none())
        .count();
    assert_eq!(active_admins, 1);
}

fn invitation(n: u8, email: Option<&str>, expires_at: Timestamp) -> Invitation {
    Invitation {
        id: new_id("inv"),
        token_hash: h(n),
        email: email.map(str::to_owned),
        role: Role::Member,
        created_by: "usr_admin".to_owned(),
        created_at: NOW,
        expires_at,
        used_at: None,
        used_by: None,
    }
}

async fn invitations_crud_and_bound(store: Arc<dyn Store>) {
    let first = invitation(1, Some("ada@example.com"), NOW + 100);
    assert!(
        store
            .insert_invitation(&first, 2, NOW)
            .await
            .expect("insert")
    );
    tick().await;
    let second = invitation(2, None, NOW + 100);
    assert!(
        store
            .insert_invitation(&second, 2, NOW)
            .await
            .expect("insert")
    );
    // The bound counts unused, unexpired ones.
    let third = invitation(3, None, NOW + 100);
    assert!(
        !store
            .insert_invitation(&third, 2, NOW)
            .await
            .expect("bounded")
    );
    assert_eq!(store.find_invitation(&h(3)).await.expect("find"), None);
    // Once the others have expired, there is room.
    assert!(
        store
            .insert_invitation(&third, 2, NOW + 100)
            .await
            .expect("insert after expiry")
    );
    assert_eq!(
        store.find_invitation(&h(1)).await.expect("find"),
        Some(first.clone())
    );
    let listed = store.list_invitations(None, 10).await.expect("list");
    assert_eq!(listed.len(), 3);
    let page = store
        .list_invitations(Some(&first.id), 10)
        .await
        .expect("after");
    assert_eq!(page.len(), 2);
    assert!(store.delete_invitation(&second.id).await.expect("delete"));
    assert!(!store.delete_invitation(&second.id).await.expect("again"));
    assert_eq!(store.find_invitation(&h(2)).await.expect("find"), None);
    // Housekeeping removes expired invitations.
    store.delete_expired(NOW + 101).await.expect("expire");
    assert_eq!(store.find_invitation(&h(1)).await.expect("find"), None);
    assert!(store.find_invitation(&h(3)).await.expect("find").is_none());
}

async fn invitations_bound_holds_under_concurrency(store: Arc<dyn Store>) {
    // Twelve creations at once under a bound of five: exactly five are stored.
    let mut tasks = Vec::new();
    for n in 0..12 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .insert_invitation(&invitation(100 + n, None, NOW + 100), 5, NOW)
                .await
                .expect("insert")
        }));
    }
    let mut stored = 0;
    for task in tasks {
        if task.await.expect("task") {
            stored += 1;
        }
    }
    assert_eq!(stored, 5);
    assert_eq!(
        store.list_invitations(None, 100).await.expect("list").len(),
        5
    );
}

async fn invitations_single_use_under_concurrency(store: Arc<dyn Store>) {
    let inv = invitation(9, None, NOW + 100);
    assert!(
        store
            .insert_invitation(&inv, 10, NOW)
            .await
            .expect("insert")
    );
    // An expired one is refused, writing nothing.
    let old = invitation(8, None, NOW - 1);
    assert!(
        store
            .insert_invitation(&old, 10, NOW - 10)
            .await
            .expect("insert")
    );
    let late = user("late@example.com");
    assert!(
        !store
            .create_invited_user(
                &late,
                None,
                &event(Some(&late.id), "user.registered"),
                None,
                &old.id
            )
            .await
            .expect("expired")
    );
    assert_eq!(store.get_user(&late.id).await.expect("get"), None);

    // A taken email leaves the invitation unused.
    let taken = add_user(&store, "taken@example.com").await;
    let clash = user(&taken.email);
    let err = store
        .create_invited_user(
            &clash,
            None,
            &event(Some(&clash.id), "user.registered"),
            None,
            &inv.id,
        )
        .await
        .expect_err("email taken");
    assert!(matches!(err, StoreError::Conflict("email")), "{err:?}");
    assert_eq!(
        store
            .find_invitation(&h(9))
            .await
            .expect("find")
            .and_then(|i| i.used_at),
        None
    );

    // Eight registrations at once with one invitation: one wins.
    let users: Vec<User> = (0..8)
        .map(|i| user(&format!("racer{i}@example.com")))
        .collect();
    let mut tasks = Vec::new();
    for u in &users {
        let store = Arc::clone(&store);
        let u = u.clone();
        let id = inv.id.clone();
        tasks.push(tokio::spawn(async move {
            let e = event(Some(&u.id), "user.registered");
            store.create_invited_user(&u, None, &e, None, &id).await
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task"));
    }
    let won: Vec<usize> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| matches!(r, Ok(true)).then_some(i))
        .collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for (i, u) in users.iter().enumerate() {
        let exists = store.get_user(&u.id).await.expect("get").is_some();
        assert_eq!(exists, i == won[0], "user {i}");
    }
    let used = store
        .find_invitation(&h(9))
        .await
        .expect("find")
        .expect("kept");
    assert_eq!(used.used_at, Some(NOW));
    assert_eq!(used.used_by.as_deref(), Some(users[won[0]].id.as_str()));
}

// Dynamic client registration (issue 16)

fn registration_of(client: &OAuthClient, n: u8) -> ClientRegistration {
    ClientRegistration {
        client_id: client.id.clone(),
        token_hash: h(n),
        metadata: ClientMetadata {
            logo_uri: Some("https://app.example.com/logo.png".to_owned()),
            contacts: vec!["ops@example.com".to_owned()],
            ..ClientMetadata::default()
        },
        created_at: NOW,
    }
}

fn registration_token(n: u8, expires_at: Timestamp) -> RegistrationToken {
    RegistrationToken {
        id: new_id("rgt"),
        token_hash: h(n),
        created_by: None,
        created_at: NOW,
        expires_at,
        used_at: None,
    }
}

async fn registered_clients_without_owner_and_their_registrations(store: Arc<dyn Store>) {
    let owner = add_user(&store, "owner@example.com").await;
    let anonymous = OAuthClient {
        owner_id: None,
        ..public_client(&owner.id, 1)
    };
    let registration = registration_of(&anonymous, 1);
    assert!(
        store
            .insert_registered_client(&anonymous, &registration, None, NOW)
            .await
            .expect("insert")
    );
    assert_eq!(
        store.get_client(&anonymous.id).await.expect("get"),
        Some(anonymous.clone())
    );
    assert_eq!(
        store
            .get_client_registration(&anonymous.id)
            .await
            .expect("registration"),
        Some(registration.clone())
    );
    // Owned clients are listed by owner; the anonymous one only in the full list.
    let owned = add_client(&store, &owner.id, 2).await;
    let of_owner = store
        .list_clients(Some(&owner.id), None, 10)
        .await
        .expect("list");
    assert_eq!(of_owner, vec![owned.clone()]);
    assert_eq!(
        store
            .list_clients(None, None, 10)
            .await
            .expect("list")
            .len(),
        2
    );
    assert_eq!(
        store
            .get_client_registration(&owned.id)
            .await
            .expect("none"),
        None
    );

    // An update writes the client and the registration together.
    let changes = ClientChanges {
        name: Some("renamed".to_owned()),
        ..ClientChanges::default()
    };
    let replaced = ClientRegistration {
        metadata: ClientMetadata::default(),
        ..registration.clone()
    };
    let updated = store
        .update_registered_client(&anonymous.id, &anonymous, &changes, &replaced, NOW + 5)
        .await
        .expect("update")
        .expect("found");
    assert_eq!(updated.name, "renamed");
    // Written only over the client as it was read: after a narrowing made meanwhile (by
    // its owner or an administrator), an update from the earlier read is refused, and the
    // narrowing stays.
    let narrowing = ClientChanges {
        scopes: Some(Scopes::EMPTY),
        ..ClientChanges::default()
    };
    let narrowed = store
        .update_client(&anonymous.id, &narrowing, NOW + 6)
        .await
        .expect("narrow")
        .expect("found");
    assert_ne!(narrowed.scopes, updated.scopes, "a real narrowing");
    let widening = ClientChanges {
        scopes: Some(updated.scopes),
        ..ClientChanges::default()
    };
    assert!(matches!(
        store
            .update_registered_client(&anonymous.id, &updated, &widening, &replaced, NOW + 7)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.get_client(&anonymous.id).await.expect("get"),
        Some(narrowed.clone())
    );
    // Read again, it goes through.
    store
        .update_registered_client(&anonymous.id, &narrowed, &changes, &replaced, NOW + 8)
        .await
        .expect("update")
        .expect("found");
    assert_eq!(updated.owner_id, None);
    assert_eq!(
        store
            .get_client_registration(&anonymous.id)
            .await
            .expect("registration")
            .map(|r| r.metadata),
        Some(ClientMetadata::default())
    );
    // A client that was not registered there is not updated at all.
    assert_eq!(
        store
            .update_registered_client(&owned.id, &owned, &changes, &replaced, NOW + 5)
            .await
            .expect("update"),
        None
    );
    assert_eq!(
        store
            .get_client(&owned.id)
            .await
            .expect("get")
            .map(|c| c.name),
        Some(owned.name.clone())
    );

    // Deleting the client deletes its registration; deleting a user keeps clients without
    // owner.
    assert!(store.delete_user(&owner.id).await.expect("delete user"));
    assert!(
        store
            .get_client(&anonymous.id)
            .await
            .expect("get")
            .is_some()
    );
    assert!(store.delete_client(&anonymous.id).await.expect("delete"));
    assert_eq!(
        store
            .get_client_registration(&anonymous.id)
            .await
            .expect("registration"),
        None
    );
}

async fn registration_tokens_are_single_use_under_concurrency(store: Arc<dyn Store>) {
    let owner = add_user(&store, "owner@example.com").await;
    let token = registration_token(9, NOW + 100);
    store
        .insert_registration_token(&token)
        .await
        .expect("insert token");
    assert_eq!(
        store.find_registration_token(&h(9)).await.expect("find"),
        Some(token.clone())
    );
    // Two registrations with one token at once: one succeeds, and nothing of the other is
    // written.
    let attempt = |n: u8| {
        let store = store.clone();
        let client = OAuthClient {
            owner_id: None,
            ..public_client(&owner.id, 10 + n)
        };
        async move {
            let registration = registration_of(&client, 20 + n);
            let stored = store
                .insert_registered_client(&client, &registration, Some(&h(9)), NOW)
                .await
                .expect("insert");
            let written = store.get_client(&client.id).await.expect("get").is_some();
            assert_eq!(stored, written);
            stored
        }
    };
    let (a, b) = tokio::join!(attempt(0), attempt(1));
    let outcomes = [a, b];
    assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 1, "{outcomes:?}");
    let used = store
        .find_registration_token(&h(9))
        .await
        .expect("find")
        .expect("kept");
    assert_eq!(used.used_at, Some(NOW));

    // An expired token is not usable; a deleted one is gone.
    let expired = registration_token(30, NOW - 1);
    store
        .insert_registration_token(&expired)
        .await
        .expect("insert");
    let client = OAuthClient {
        owner_id: None,
        ..public_client(&owner.id, 31)
    };
    assert!(
        !store
            .insert_registered_client(&client, &registration_of(&client, 31), Some(&h(30)), NOW)
            .await
            .expect("insert")
    );
    assert!(
        store
            .delete_registration_token(&expired.id)
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_registration_token(&expired.id)
            .await
            .expect("again")
    );
    assert_eq!(
        store.find_registration_token(&h(30)).await.expect("find"),
        None
    );
}

// ------------------------------------------------------------------------------------------
// Retention (issue 18)
// ------------------------------------------------------------------------------------------

const DAY: i64 = 86_400;

/// Ten days for what is kept by age, a session lifetime of 100 seconds.
fn ten_days() -> RetentionSettings {
    RetentionSettings {
        audit_retention_days: 10,
        usage_retention_days: 10,
        webhook_delivery_retention_days: 10,
        session_ttl: 100,
    }
}

/// Records an event of `kind` created at `at` (its webhook delivery too).
async fn record_at(store: &Arc<dyn Store>, kind: &str, at: Timestamp) -> AuditEvent {
    let e = AuditEvent {
        created_at: at,
        ..event(None, kind)
    };
    store
        .record_event(&e, Some(&outbox(kind)))
        .await
        .expect("record event");
    e
}

/// Claims every delivery due at `at` and records it delivered.
async fn deliver_due(store: &Arc<dyn Store>, at: Timestamp) -> usize {
    let claimed = store
        .claim_webhook_deliveries(at, at + 60, 100)
        .await
        .expect("claim");
    for c in &claimed {
        let attempt = DeliveryAttempt {
            status: DeliveryStatus::Delivered,
            next_attempt_at: at + 1,
            status_code: Some(200),
            error: None,
            at: at + 1,
        };
        assert!(
            store
                .record_webhook_attempt(&c.delivery.id, at + 60, &attempt)
                .await
                .expect("record")
        );
    }
    claimed.len()
}

/// The rows of each kind: some over at `NOW` (several kinds more than one batch of 2), some
/// live or within their grace; a sweep deletes exactly the ones over, batch after batch.
async fn retention_deletes_exactly_what_is_over(store: Arc<dyn Store>) {
    use netapi_core::model::{PushedRequest, WebauthnCeremony};
    use netapi_core::usage::HOUR;
    let alice = add_user(&store, "alice@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;

    // Codes: five over (three batches of at most two), one live.
    for n in 1..=5 {
        let over = AuthorizationCode {
            expires_at: NOW - 1,
            ..code(&alice.id, &app.id, n)
        };
        store.insert_authorization_code(&over).await.expect("code");
    }
    let live_code = code(&alice.id, &app.id, 6);
    store
        .insert_authorization_code(&live_code)
        .await
        .expect("code");

    // Device authorizations: past the hour of grace goes, within it stays.
    let old_device = DeviceAuthorization {
        expires_at: NOW - 3601,
        ..device(&app.id, 1)
    };
    let late_device = DeviceAuthorization {
        expires_at: NOW - 3599,
        ..device(&app.id, 2)
    };
    for d in [&old_device, &late_device] {
        store.insert_device_authorization(d).await.expect("device");
    }

    // Pushed requests: expiring at `now` is over.
    let pushed = |n: u8, expires_at| PushedRequest {
        hash: h(n),
        client_id: app.id.clone(),
        params: "[]".to_owned(),
        created_at: NOW - 60,
        expires_at,
    };
    store
        .insert_pushed_request(&pushed(1, NOW))
        .await
        .expect("push");
    store
        .insert_pushed_request(&pushed(2, NOW + 1))
        .await
        .expect("push");

    // Client assertion jtis.
    assert!(
        store
            .use_assertion_jti(&app.id, b"jti-old", NOW, NOW - 10)
            .await
            .expect("jti")
    );
    assert!(
        store
            .use_assertion_jti(&app.id, b"jti-live", NOW + 10, NOW - 10)
            .await
            .expect("jti")
    );

    // Sessions: three over, one live; and the clients told of them: an old record of a
    // session that is gone goes, a recent one waits a session lifetime, a live session's
    // stays.
    for n in 11..=13 {
        store
            .insert_session(&session(&alice.id, n, NOW - 1))
            .await
            .expect("session");
    }
    let live_session = session(&alice.id, 14, NOW + 60);
    store.insert_session(&live_session).await.expect("session");
    store
        .record_session_client("sid_11", &app.id, &alice.id, NOW - 200)
        .await
        .expect("record");
    store
        .record_session_client("sid_12", &app.id, &alice.id, NOW - 50)
        .await
        .expect("record");
    store
        .record_session_client(&live_session.sid, &app.id, &alice.id, NOW - 200)
        .await
        .expect("record");

    // Invitations, emailed links, registration tokens.
    let old_invitation = invitation(21, None, NOW - 1);
    let live_invitation = invitation(22, None, NOW + 100);
    for i in [&old_invitation, &live_invitation] {
        assert!(
            store
                .insert_invitation(i, 10, NOW - 100)
                .await
                .expect("invite")
        );
    }
    let old_link = email_link(EmailPurpose::VerifyEmail, &alice, 31, NOW - 1);
    let live_link = email_link(EmailPurpose::ResetPassword, &alice, 32, NOW + 100);
    for l in [&old_link, &live_link] {
        store.insert_email_token(l).await.expect("link");
    }
    let old_registration = registration_token(41, NOW - 1);
    let live_registration = registration_token(42, NOW + 100);
    for t in [&old_registration, &live_registration] {
        store.insert_registration_token(t).await.expect("token");
    }

    // Refresh tokens: idle lifetime over, family lifetime over, live.
    let idle = RefreshToken {
        expires_at: NOW - 1,
        ..refresh(&alice.id, &app.id, "fam_1", 51)
    };
    let family_over = RefreshToken {
        family_expires_at: NOW - 1,
        ..refresh(&alice.id, &app.id, "fam_2", 52)
    };
    let live_refresh = refresh(&alice.id, &app.id, "fam_3", 53);
    for t in [&idle, &family_over, &live_refresh] {
        store.insert_refresh_token(t).await.expect("refresh");
    }

    // Denylist entries, and invalidations kept an hour.
    let live_family = Invalidation::Family {
        family_id: "fam_live".to_owned(),
        expires_at: NOW + 60,
    };
    store
        .publish_invalidation(
            &Invalidation::AccessToken {
                jti: "at_over".to_owned(),
                expires_at: NOW - 1,
            },
            NOW - 100,
        )
        .await
        .expect("publish");
    store
        .publish_invalidation(&live_family, NOW - 100)
        .await
        .expect("publish");
    store
        .publish_invalidation(&Invalidation::User("usr_old".to_owned()), NOW - 3601)
        .await
        .expect("publish");
    store
        .publish_invalidation(&Invalidation::User("usr_recent".to_owned()), NOW - 10)
        .await
        .expect("publish");

    // WebAuthn ceremonies.
    let ceremony = |n: u8, expires_at| WebauthnCeremony {
        hash: h(n),
        purpose: "register".to_owned(),
        user_id: Some(alice.id.clone()),
        state: "{}".to_owned(),
        expires_at,
    };
    for c in [ceremony(61, NOW - 50), ceremony(62, NOW + 50)] {
        assert!(
            store
                .put_webauthn_ceremony(&c, 10, NOW - 100)
                .await
                .expect("ceremony")
        );
    }

    // Signing keys: retired more than a day ago goes.
    store
        .insert_signing_key(&signing_key("kid-old", NOW - 3 * DAY, Some(NOW - DAY - 1)))
        .await
        .expect("key");
    store
        .insert_signing_key(&signing_key("kid-recent", NOW - 3 * DAY, Some(NOW - 10)))
        .await
        .expect("key");

    // API keys: revoked or expired more than 90 days ago go; recently, or live, stay.
    let long_revoked = ApiKey {
        revoked_at: Some(NOW - 90 * DAY - 1),
        ..api_key(&alice.id, 71)
    };
    let recently_revoked = ApiKey {
        revoked_at: Some(NOW - 10),
        ..api_key(&alice.id, 72)
    };
    let long_expired = ApiKey {
        expires_at: Some(NOW - 90 * DAY - 1),
        ..api_key(&alice.id, 73)
    };
    let recently_expired = ApiKey {
        expires_at: Some(NOW - 10),
        ..api_key(&alice.id, 74)
    };
    let live_key = api_key(&alice.id, 75);
    for k in [
        &long_revoked,
        &recently_revoked,
        &long_expired,
        &recently_expired,
        &live_key,
    ] {
        store.insert_api_key(k).await.expect("api key");
    }

    // Usage counts: three hours older than ten days go.
    let hour = NOW - NOW.rem_euclid(HOUR);
    let count = |hour, outcome| UsageCount {
        key_id: live_key.id.clone(),
        hour,
        outcome,
        count: 1,
    };
    store
        .add_api_key_usage(&[
            count(hour - 10 * DAY - HOUR, UsageOutcome::Valid),
            count(hour - 10 * DAY - HOUR, UsageOutcome::Expired),
            count(hour - 10 * DAY - 2 * HOUR, UsageOutcome::Valid),
            count(hour - 9 * DAY, UsageOutcome::Valid),
        ])
        .await
        .expect("usage");

    // Audit events (and their webhook deliveries): five older than ten days, delivered,
    // go; an old one still pending stays (it is not over), as do recent ones.
    let w = webhook(&["user.updated"]);
    assert!(store.insert_webhook(&w, 20).await.expect("webhook"));
    for _ in 0..5 {
        record_at(&store, "user.updated", NOW - 11 * DAY).await;
    }
    assert_eq!(deliver_due(&store, NOW - 11 * DAY).await, 5);
    record_at(&store, "user.updated", NOW - 9 * DAY).await;
    assert_eq!(deliver_due(&store, NOW - 9 * DAY).await, 1);
    let pending = record_at(&store, "user.updated", NOW - 11 * DAY).await;
    let events_before = store
        .list_audit_events(None, None, 100)
        .await
        .expect("events")
        .len();

    let swept = retention::sweep(store.as_ref(), &ten_days(), &Expired::ALL, NOW, 2).await;
    assert!(swept.failed.is_empty(), "{:?}", swept.failed);
    let expected = [
        (Expired::AuthorizationCodes, 5),
        (Expired::DeviceAuthorizations, 1),
        (Expired::PushedRequests, 1),
        (Expired::AssertionJtis, 1),
        (Expired::Sessions, 3),
        (Expired::SessionClients, 1),
        (Expired::Invitations, 1),
        (Expired::EmailTokens, 1),
        (Expired::RegistrationTokens, 1),
        (Expired::RefreshTokens, 2),
        (Expired::Denylist, 1),
        (Expired::Invalidations, 1),
        (Expired::WebauthnCeremonies, 1),
        (Expired::RetiredSigningKeys, 1),
        (Expired::RevokedApiKeys, 1),
        (Expired::ExpiredApiKeys, 1),
        (Expired::WebhookDeliveries, 5),
        (Expired::ApiKeyUsage, 3),
        (Expired::AuditEvents, 6),
    ];
    assert_eq!(swept.deleted, expected.to_vec());
    // Nothing else is over.
    let again = retention::sweep(store.as_ref(), &ten_days(), &Expired::ALL, NOW, 2).await;
    assert_eq!(again.total(), 0);
    assert!(again.failed.is_empty());

    // What is live is all there.
    assert!(
        store
            .get_device_authorization_by_user_code(&late_device.user_code_hash)
            .await
            .expect("device")
            .is_some()
    );
    assert!(
        store
            .get_device_authorization_by_user_code(&old_device.user_code_hash)
            .await
            .expect("device")
            .is_none()
    );
    assert!(
        store
            .get_pushed_request(&h(2), NOW)
            .await
            .expect("push")
            .is_some()
    );
    assert!(
        !store
            .use_assertion_jti(&app.id, b"jti-live", NOW + 20, NOW)
            .await
            .expect("jti"),
        "a live jti is still a replay"
    );
    assert!(
        store
            .get_session(&live_session.hash)
            .await
            .expect("session")
            .is_some()
    );
    assert!(store.get_session(&h(11)).await.expect("session").is_none());
    assert_eq!(
        store
            .take_session_clients(&live_session.sid)
            .await
            .expect("take"),
        vec![app.id.clone()]
    );
    assert_eq!(
        store.take_session_clients("sid_12").await.expect("take"),
        vec![app.id.clone()],
        "a recent record waits a session lifetime"
    );
    assert!(
        store
            .take_session_clients("sid_11")
            .await
            .expect("take")
            .is_empty()
    );
    assert_eq!(
        store.find_invitation(&h(22)).await.expect("find"),
        Some(live_invitation)
    );
    assert_eq!(store.find_invitation(&h(21)).await.expect("find"), None);
    assert_eq!(
        store.get_email_token(&h(32)).await.expect("link"),
        Some(live_link)
    );
    assert_eq!(store.get_email_token(&h(31)).await.expect("link"), None);
    assert!(
        store
            .find_registration_token(&h(42))
            .await
            .expect("token")
            .is_some()
    );
    assert!(
        store
            .find_registration_token(&h(41))
            .await
            .expect("token")
            .is_none()
    );
    assert!(
        store
            .get_refresh_token(&live_refresh.hash)
            .await
            .expect("refresh")
            .is_some()
    );
    assert!(
        store
            .get_refresh_token(&idle.hash)
            .await
            .expect("refresh")
            .is_none()
    );
    assert_eq!(
        store.active_denylist(NOW).await.expect("denylist"),
        vec![live_family]
    );
    let invalidations: Vec<Invalidation> = store
        .invalidations_since(0)
        .await
        .expect("invalidations")
        .into_iter()
        .map(|(_, i)| i)
        .collect();
    assert!(invalidations.contains(&Invalidation::User("usr_recent".to_owned())));
    assert!(!invalidations.contains(&Invalidation::User("usr_old".to_owned())));
    assert!(
        store
            .take_webauthn_ceremony(&h(62), NOW)
            .await
            .expect("ceremony")
            .is_some()
    );
    for (key, kept) in [
        (&long_revoked, false),
        (&recently_revoked, true),
        (&long_expired, false),
        (&recently_expired, true),
        (&live_key, true),
    ] {
        assert_eq!(
            store.get_api_key(&key.id).await.expect("key").is_some(),
            kept,
            "{}",
            key.name
        );
    }
    let usage = store
        .api_key_usage(&live_key.id, 0, NOW + HOUR)
        .await
        .expect("usage");
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].hour, hour - 9 * DAY);
    let deliveries = store
        .list_webhook_deliveries(&w.id, None, 100)
        .await
        .expect("deliveries");
    assert_eq!(deliveries.len(), 2);
    assert!(
        deliveries
            .iter()
            .any(|d| d.event_id == pending.id && d.status == DeliveryStatus::Pending)
    );
    assert_eq!(
        store
            .list_audit_events(None, None, 100)
            .await
            .expect("events")
            .len(),
        events_before - 6
    );
    // The live code is still usable.
    assert!(
        store
            .consume_authorization_code(&live_code.hash, NOW)
            .await
            .expect("code")
            .is_some()
    );
}

/// With 0 days, audit events, usage counts and webhook deliveries are kept for ever, while
/// what expires by itself still goes.
async fn retention_of_zero_days_keeps_for_ever(store: Arc<dyn Store>) {
    use netapi_core::usage::HOUR;
    let alice = add_user(&store, "alice@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;
    let key = api_key(&alice.id, 1);
    store.insert_api_key(&key).await.expect("key");
    let w = webhook(&["user.updated"]);
    assert!(store.insert_webhook(&w, 20).await.expect("webhook"));
    for _ in 0..3 {
        record_at(&store, "user.updated", NOW - 1000 * DAY).await;
    }
    assert_eq!(deliver_due(&store, NOW - 1000 * DAY).await, 3);
    let hour = NOW - NOW.rem_euclid(HOUR) - 1000 * DAY;
    store
        .add_api_key_usage(&[UsageCount {
            key_id: key.id.clone(),
            hour,
            outcome: UsageOutcome::Valid,
            count: 4,
        }])
        .await
        .expect("usage");
    let expired_code = AuthorizationCode {
        expires_at: NOW - 1,
        ..code(&alice.id, &app.id, 1)
    };
    store
        .insert_authorization_code(&expired_code)
        .await
        .expect("code");
    let events = store
        .list_audit_events(None, None, 100)
        .await
        .expect("events")
        .len();

    let keep = RetentionSettings {
        audit_retention_days: 0,
        usage_retention_days: 0,
        webhook_delivery_retention_days: 0,
        ..ten_days()
    };
    let swept = retention::sweep(store.as_ref(), &keep, &Expired::ALL, NOW, 2).await;
    assert!(swept.failed.is_empty());
    assert_eq!(swept.deleted, vec![(Expired::AuthorizationCodes, 1)]);
    assert_eq!(
        store
            .list_audit_events(None, None, 100)
            .await
            .expect("events")
            .len(),
        events
    );
    assert_eq!(
        store
            .list_webhook_deliveries(&w.id, None, 100)
            .await
            .expect("deliveries")
            .len(),
        3
    );
    assert_eq!(
        store
            .api_key_usage(&key.id, 0, NOW)
            .await
            .expect("usage")
            .len(),
        1
    );
    // The same rows go once a retention is set.
    let swept = retention::sweep(store.as_ref(), &ten_days(), &Expired::ALL, NOW, 2).await;
    assert_eq!(swept.of(Expired::WebhookDeliveries), 3);
    assert_eq!(swept.of(Expired::ApiKeyUsage), 1);
    assert_eq!(swept.of(Expired::AuditEvents), 3);
}

/// Sweeps of several processes at once delete each row once, and only what is over. (On
/// PostgreSQL two may pick the same batch; the one that finds it gone stops early, and what
/// is left goes with the next sweep.)
async fn retention_sweeps_at_once_delete_each_row_once(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let app = add_client(&store, &alice.id, 1).await;
    for n in 1..=60 {
        let over = AuthorizationCode {
            expires_at: NOW - 1,
            ..code(&alice.id, &app.id, n)
        };
        store.insert_authorization_code(&over).await.expect("code");
    }
    let live = code(&alice.id, &app.id, 100);
    store.insert_authorization_code(&live).await.expect("code");
    let sweeps: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                retention::sweep(
                    store.as_ref(),
                    &ten_days(),
                    &[Expired::AuthorizationCodes],
                    NOW,
                    3,
                )
                .await
            })
        })
        .collect();
    let mut deleted = 0;
    for sweep in sweeps {
        let swept = sweep.await.expect("sweep");
        assert!(swept.failed.is_empty(), "{:?}", swept.failed);
        deleted += swept.of(Expired::AuthorizationCodes);
    }
    let rest = retention::sweep(
        store.as_ref(),
        &ten_days(),
        &[Expired::AuthorizationCodes],
        NOW,
        3,
    )
    .await;
    assert_eq!(deleted + rest.of(Expired::AuthorizationCodes), 60);
    assert!(
        store
            .consume_authorization_code(&live.hash, NOW)
            .await
            .expect("code")
            .is_some()
    );
}

fn pending_logout(id: &str, client_id: &str, due: Timestamp) -> PendingLogout {
    PendingLogout {
        id: id.to_owned(),
        client_id: client_id.to_owned(),
        user_id: "usr_gone".to_owned(),
        sid: "sid_1".to_owned(),
        attempts: 0,
        next_attempt_at: due,
        created_at: due,
    }
}

async fn logout_deliveries_are_leased_retried_and_pruned(store: Arc<dyn Store>) {
    let alice = add_user(&store, "alice@example.com").await;
    let c1 = client(&alice.id, 1);
    let c2 = client(&alice.id, 2);
    store.insert_client(&c1).await.expect("insert c1");
    store.insert_client(&c2).await.expect("insert c2");
    let first = pending_logout("lgd_1", &c1.id, NOW);
    let later = pending_logout("lgd_2", &c1.id, NOW + 100);
    let other = pending_logout("lgd_3", &c2.id, NOW);
    // A delivery for a client that does not exist is not stored (nor fails the others).
    let orphan = pending_logout("lgd_4", "cli_gone", NOW);
    store
        .insert_logout_deliveries(&[first.clone(), later.clone(), other.clone(), orphan])
        .await
        .expect("insert");
    assert_eq!(
        store.list_logout_deliveries(&c1.id).await.expect("list"),
        vec![first.clone(), later.clone()]
    );
    assert!(
        store
            .list_logout_deliveries("cli_gone")
            .await
            .expect("list")
            .is_empty()
    );

    // Claimed once: due ones only, moved to the lease's end.
    let lease = NOW + 40;
    let claimed = store
        .claim_logout_deliveries(NOW, lease, 10)
        .await
        .expect("claim");
    let ids: Vec<&str> = claimed.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["lgd_1", "lgd_3"]);
    assert!(claimed.iter().all(|d| d.next_attempt_at == lease));
    assert!(
        store
            .claim_logout_deliveries(NOW + 39, NOW + 79, 10)
            .await
            .expect("claim again")
            .is_empty(),
        "held by the lease"
    );
    // A failed attempt: one more attempt counted, due later.
    assert!(
        store
            .retry_logout_delivery("lgd_1", lease, NOW + 15)
            .await
            .expect("retry")
    );
    // Recorded once only: the lease is over.
    assert!(
        !store
            .retry_logout_delivery("lgd_1", lease, NOW + 15)
            .await
            .expect("retry again")
    );
    let pending = store.list_logout_deliveries(&c1.id).await.expect("list");
    assert_eq!(pending[0].attempts, 1);
    assert_eq!(pending[0].next_attempt_at, NOW + 15);
    // A lease whose holder died ends: the delivery is claimed again, and the late holder
    // can record nothing.
    let again = store
        .claim_logout_deliveries(NOW + 40, NOW + 80, 10)
        .await
        .expect("claim after the lease");
    let ids: Vec<&str> = again.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["lgd_1", "lgd_3"]);
    assert!(
        !store
            .finish_logout_delivery("lgd_3", lease)
            .await
            .expect("finish with a lost lease")
    );
    assert!(
        store
            .finish_logout_delivery("lgd_3", NOW + 80)
            .await
            .expect("finish")
    );
    assert!(
        store
            .list_logout_deliveries(&c2.id)
            .await
            .expect("list")
            .is_empty()
    );
    // Concurrent claims: each due delivery goes to one caller.
    let (a, b) = tokio::join!(
        store.claim_logout_deliveries(NOW + 200, NOW + 240, 10),
        store.claim_logout_deliveries(NOW + 200, NOW + 240, 10),
    );
    let mut both: Vec<String> = a
        .expect("claim a")
        .into_iter()
        .chain(b.expect("claim b"))
        .map(|d| d.id)
        .collect();
    both.sort();
    assert_eq!(both, ["lgd_1", "lgd_2"]);
    // Deleting a client forgets its deliveries; pruning deletes the old ones.
    store
        .insert_logout_deliveries(&[pending_logout("lgd_5", &c2.id, NOW + 500)])
        .await
        .expect("insert");
    assert!(store.delete_client(&c2.id).await.expect("delete"));
    assert!(
        store
            .list_logout_deliveries(&c2.id)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        store
            .prune_logout_deliveries(NOW + 100)
            .await
            .expect("prune"),
        1,
        "created before: lgd_1"
    );
    assert_eq!(
        store.list_logout_deliveries(&c1.id).await.expect("list"),
        vec![PendingLogout {
            next_attempt_at: NOW + 240,
            ..later
        }]
    );
}
