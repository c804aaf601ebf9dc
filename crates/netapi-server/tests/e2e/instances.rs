//! Several instances on one database (issue 18): invalidations announced by PostgreSQL
//! (`LISTEN/NOTIFY`) with polling effectively off.

use netapi_testkit::{Backend, TestApp, json_with};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

crate::e2e!(
    settings = |settings| settings.invalidation_poll_interval = std::time::Duration::from_secs(3600);
    a_revocation_reaches_another_instance_by_notification,
    pooled_connections_the_database_dropped_are_replaced_before_use,
);

/// A generous ceiling: the notification takes milliseconds, but this shows the path, not
/// its speed, on a loaded machine.
const CEILING: Duration = Duration::from_secs(10);

async fn create_key(app: &TestApp, bearer: &str, name: &str) -> Value {
    json_with(
        app.post_json("/v1/api-keys", bearer, json!({ "name": name }))
            .await,
        StatusCode::CREATED,
    )
    .await
}

fn field(value: &Value, name: &str) -> String {
    value[name].as_str().expect(name).to_owned()
}

/// Asks `instance` with `key` until it answers 401 (failing after [`CEILING`]).
async fn refused_by(instance: &TestApp, key: &str) {
    let started = Instant::now();
    loop {
        let status = instance.get("/v1/users/me", key).await.status();
        match status {
            StatusCode::UNAUTHORIZED => return,
            StatusCode::OK => {}
            other => panic!("unexpected {other}"),
        }
        assert!(
            started.elapsed() < CEILING,
            "still accepted after {CEILING:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The server processes of `database_url`: those that LISTEN (the last statement they ran),
/// or the others (its pooled connections).
async fn backends(admin: &sqlx::PgPool, listening: bool) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND (query LIKE 'LISTEN %') = $1",
    )
    .bind(listening)
    .fetch_all(admin)
    .await
    .expect("pg_stat_activity")
}

/// Cuts the connections of these server processes.
async fn terminate(admin: &sqlx::PgPool, pids: &[i32]) {
    for pid in pids {
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(admin)
            .await
            .expect("terminate");
    }
}

async fn a_revocation_reaches_another_instance_by_notification(app: TestApp) {
    if app.backend != Backend::Postgres {
        eprintln!("skipped: LISTEN/NOTIFY is PostgreSQL's (SQLite serves one process)");
        return;
    }
    let other = app.another_instance().await;
    let owner = app.member_key("ada@example.com").await;
    let first = create_key(&app, &owner, "first").await;
    let second = create_key(&app, &owner, "second").await;
    // Both keys are known (and cached) by the other instance first.
    for key in [&first, &second] {
        let response = other.get("/v1/users/me", &field(key, "key")).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    // Revoked on one instance; polling is off (an hour), so only the notification can tell
    // the other.
    let response = app
        .delete(&format!("/v1/api-keys/{}", field(&first, "id")), &owner)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    refused_by(&other, &field(&first, "key")).await;

    // The listeners' connections are cut: each instance connects again and catches up with
    // what was published meanwhile.
    let admin = sqlx::PgPool::connect(&app.database_url)
        .await
        .expect("connect");
    let before = backends(&admin, true).await;
    assert_eq!(before.len(), 2, "one listener per instance: {before:?}");
    terminate(&admin, &before).await;
    let response = app
        .delete(&format!("/v1/api-keys/{}", field(&second, "id")), &owner)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    refused_by(&other, &field(&second, "key")).await;
    // Listening again, on new connections.
    let started = Instant::now();
    loop {
        let now = backends(&admin, true).await;
        if now.len() == 2 && now.iter().all(|pid| !before.contains(pid)) {
            break;
        }
        assert!(started.elapsed() < CEILING, "listeners now {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And notifications arrive on them.
    let third = create_key(&app, &owner, "third").await;
    let response = other.get("/v1/users/me", &field(&third, "key")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .delete(&format!("/v1/api-keys/{}", field(&third, "id")), &owner)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    refused_by(&other, &field(&third, "key")).await;
    admin.close().await;
}

/// A pooled connection is pinged before use only once it has sat idle for a second (every
/// acquire used to cost a round trip): one the database dropped meanwhile (a restart, a
/// failover, `pg_terminate_backend`) is replaced rather than handed to a request.
async fn pooled_connections_the_database_dropped_are_replaced_before_use(app: TestApp) {
    if app.backend != Backend::Postgres {
        eprintln!("skipped: a SQLite connection is a file, which nobody can drop");
        return;
    }
    let owner = app.member_key("ada@example.com").await;
    for n in 0..4 {
        create_key(&app, &owner, &format!("before {n}")).await;
    }
    let admin = sqlx::PgPool::connect(&app.database_url)
        .await
        .expect("connect");
    let pooled = backends(&admin, false).await;
    assert!(!pooled.is_empty(), "the server holds pooled connections");
    terminate(&admin, &pooled).await;
    // Past the idle time after which a connection is pinged before use.
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    // A write and a read, each on a connection that works.
    create_key(&app, &owner, "after").await;
    let listed = json_with(app.get("/v1/api-keys", &owner).await, StatusCode::OK).await;
    let names: Vec<&str> = listed["api_keys"]
        .as_array()
        .expect("api_keys")
        .iter()
        .filter_map(|key| key["name"].as_str())
        .collect();
    assert!(names.contains(&"after"), "{names:?}");
    assert!(names.contains(&"before 0"), "{names:?}");
    admin.close().await;
}
