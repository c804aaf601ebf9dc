//! Retention (issue 18): the sweep the server runs deletes what is over, per its settings,
//! and counts it in the metrics.

use netapi_testkit::{TestApp, json_with};
use reqwest::StatusCode;

crate::e2e!(
    settings = |settings| settings.audit_retention_days = 30;
    old_audit_events_go_after_their_retention,
);

const DAY: i64 = 86_400;

async fn event_times(app: &TestApp, admin: &str) -> Vec<String> {
    let listing = json_with(
        app.get("/v1/audit-events?page_size=100", admin).await,
        StatusCode::OK,
    )
    .await;
    listing["audit_events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["created_at"].as_str().expect("created_at").to_owned())
        .collect()
}

async fn old_audit_events_go_after_their_retention(app: TestApp) {
    // The recorder is installed by the first scrape.
    app.http.get(app.url("/metrics")).send().await.unwrap();
    let admin = app.admin_key("admin@example.com").await;
    app.member_key("old@example.com").await;
    let before = event_times(&app, &admin).await;
    assert!(before.len() >= 2);

    // Within the 30 days, nothing goes.
    app.clock.advance(30 * DAY - 1);
    let swept = app.api.sweep_retention(2).await;
    assert!(swept.failed.is_empty());
    assert_eq!(event_times(&app, &admin).await, before);

    // After them, every event of then goes (in batches of two), and a new one stays.
    app.clock.advance(2);
    app.member_key("new@example.com").await;
    // (The server's own sweep, once a minute, may have come first: what is checked is what
    // is left.)
    let swept = app.api.sweep_retention(2).await;
    assert!(swept.failed.is_empty());
    let after = event_times(&app, &admin).await;
    assert!(!after.is_empty());
    assert!(after.iter().all(|t| !before.contains(t)), "{after:?}");

    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"netapi_retention_deleted_rows_total{table="audit_events"}"#),
        "{metrics}"
    );
}
