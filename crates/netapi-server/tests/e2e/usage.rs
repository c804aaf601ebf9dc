//! Usage of API keys: checks counted by outcome in memory on every path (`/v1`, forward auth,
//! `/v1/keys/verify`), written in batches, answered per hour or day.

use crate::e2e;
use crate::helpers::{Browser, PASSWORD, TestApp, expect_error, json_with, register_in_browser};
use netapi_core::Clock;
use reqwest::StatusCode;
use serde_json::{Value, json};

e2e!(
    checks_are_counted_by_outcome_and_hour,
    revoked_keys_show_their_refusals_and_others_keys_are_hidden,
    days_sum_the_hours_and_flushed_counts_stay,
    bad_usage_questions_are_refused,
    the_portal_charts_a_keys_usage,
);

/// Makes a second key for the owner of `key`; returns `(id, secret)`.
async fn another_key(app: &TestApp, key: &str, name: &str) -> (String, String) {
    let made = json_with(
        app.post_json("/v1/api-keys", key, json!({ "name": name }))
            .await,
        StatusCode::CREATED,
    )
    .await;
    (
        made["id"].as_str().unwrap().to_owned(),
        made["key"].as_str().unwrap().to_owned(),
    )
}

async fn usage(app: &TestApp, bearer: &str, key_id: &str, query: &str) -> Value {
    json_with(
        app.get(&format!("/v1/api-keys/{key_id}/usage{query}"), bearer)
            .await,
        StatusCode::OK,
    )
    .await
}

/// The sum of one outcome over every bucket.
fn total(usage: &Value, outcome: &str) -> u64 {
    usage["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["counts"][outcome].as_u64().unwrap())
        .sum()
}

async fn checks_are_counted_by_outcome_and_hour(app: TestApp) {
    let (_, first) = app.register("usage@example.com").await;
    let reader = first["key"].as_str().unwrap();
    let (id, key) = another_key(&app, reader, "counted").await;

    for _ in 0..2 {
        assert_eq!(app.get("/v1/users/me", &key).await.status(), StatusCode::OK);
    }
    let forward = app
        .http
        .get(app.url("/auth/forward?scope=admin"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(forward.status(), StatusCode::FORBIDDEN);
    let verifier = app.admin_key("usage-admin@example.com").await;
    let verified = json_with(
        app.post_json("/v1/keys/verify", &verifier, json!({ "key": key }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(verified["code"], "VALID");

    let answer = usage(&app, reader, &id, "").await;
    assert_eq!(answer["key_id"], id.as_str());
    assert_eq!(answer["granularity"], "hour");
    // The default range is the last 24 hours, one bucket per hour, empty ones included.
    let buckets = answer["buckets"].as_array().unwrap();
    assert!((24..=25).contains(&buckets.len()), "{answer}");
    assert_eq!(total(&answer, "valid"), 3, "{answer}");
    assert_eq!(total(&answer, "insufficient_scope"), 1, "{answer}");
    assert_eq!(total(&answer, "revoked"), 0);
    let last = buckets.last().unwrap();
    assert_eq!(
        last["counts"]["valid"], 3,
        "the checks are in the current hour: {answer}"
    );
    // The question itself was asked with another key: it is not counted on this one.
    let again = usage(&app, reader, &id, "").await;
    assert_eq!(total(&again, "valid"), 3);
}

async fn revoked_keys_show_their_refusals_and_others_keys_are_hidden(app: TestApp) {
    let owner = app.member_key("owner@example.com").await;
    let (id, key) = another_key(&app, &owner, "to revoke").await;
    assert_eq!(
        app.delete(&format!("/v1/api-keys/{id}"), &owner)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let refused = app.get("/v1/users/me", &key).await;
    expect_error(refused, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    let answer = usage(&app, &owner, &id, "").await;
    assert_eq!(total(&answer, "revoked"), 1, "{answer}");
    assert_eq!(total(&answer, "valid"), 0);

    let stranger = app.member_key("stranger@example.com").await;
    let hidden = app
        .get(&format!("/v1/api-keys/{id}/usage"), &stranger)
        .await;
    expect_error(hidden, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    // An administrator sees anyone's.
    let admin = app.admin_key("usage-admin@example.com").await;
    let seen = usage(&app, &admin, &id, "").await;
    assert_eq!(total(&seen, "revoked"), 1);
}

async fn days_sum_the_hours_and_flushed_counts_stay(app: TestApp) {
    let owner = app.member_key("days@example.com").await;
    let (id, key) = another_key(&app, &owner, "daily").await;
    let start = app.clock.now();
    assert_eq!(app.get("/v1/users/me", &key).await.status(), StatusCode::OK);
    app.api.flush_usage().await.expect("flush");
    // The next day: two more checks, one written by the flush the answer makes itself.
    app.clock.advance(86_400);
    for _ in 0..2 {
        assert_eq!(app.get("/v1/users/me", &key).await.status(), StatusCode::OK);
    }
    let from = netapi_core::clock::format_rfc3339(start);
    let answer = usage(
        &app,
        &owner,
        &id,
        &format!("?granularity=day&from={}", from.replace(':', "%3A")),
    )
    .await;
    assert_eq!(answer["granularity"], "day");
    let buckets = answer["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2, "{answer}");
    assert_eq!(buckets[0]["counts"]["valid"], 1);
    assert_eq!(buckets[1]["counts"]["valid"], 2);
    // Stored, not only in memory: a flush with nothing new changes nothing.
    app.api.flush_usage().await.expect("flush");
    let hours = usage(
        &app,
        &owner,
        &id,
        &format!("?granularity=hour&from={}", from.replace(':', "%3A")),
    )
    .await;
    assert_eq!(total(&hours, "valid"), 3);
}

async fn bad_usage_questions_are_refused(app: TestApp) {
    let owner = app.member_key("bad-usage@example.com").await;
    let (id, _) = another_key(&app, &owner, "asked about").await;
    for (query, field) in [
        ("?granularity=week", "granularity"),
        ("?from=yesterday", "from"),
        ("?to=2026-13-01T00:00:00Z", "to"),
        (
            "?from=2026-01-02T00%3A00%3A00Z&to=2026-01-01T00%3A00%3A00Z",
            "from",
        ),
        (
            "?granularity=hour&from=2025-01-01T00%3A00%3A00Z&to=2026-01-01T00%3A00%3A00Z",
            "from",
        ),
    ] {
        let refused = app
            .get(&format!("/v1/api-keys/{id}/usage{query}"), &owner)
            .await;
        let body = expect_error(refused, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
        assert!(body.to_string().contains(field), "{query}: {body}");
    }
    let unknown = app
        .get("/v1/api-keys/key_00000000000000000000/usage", &owner)
        .await;
    expect_error(unknown, StatusCode::NOT_FOUND, "NOT_FOUND").await;
}

async fn the_portal_charts_a_keys_usage(app: TestApp) {
    let mut browser = Browser::new();
    let key = register_in_browser(
        &app,
        &mut browser,
        "Chart Reader",
        "chart@example.com",
        PASSWORD,
    )
    .await;
    for _ in 0..2 {
        assert_eq!(app.get("/v1/users/me", &key).await.status(), StatusCode::OK);
    }
    let keys = json_with(app.get("/v1/api-keys", &key).await, StatusCode::OK).await;
    let id = keys["api_keys"][0]["id"].as_str().unwrap().to_owned();

    let portal = browser.get(&app, &app.url("/portal")).await;
    let html = portal.text().await.unwrap();
    assert!(
        html.contains(&format!("href=\"/portal/keys/{id}/usage\"")),
        "{html}"
    );
    let page = browser
        .get(&app, &app.url(&format!("/portal/keys/{id}/usage")))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    // Two charts drawn here (no script, nothing fetched), both with the three checks.
    assert_eq!(
        html.matches("<svg class=\"usage-chart\"").count(),
        2,
        "{html}"
    );
    assert_eq!(html.matches("3 checks: valid: 3").count(), 2, "{html}");
    assert!(!html.contains("<script") && csp.contains("default-src 'none'"));

    // Someone else's key is not found; without a session, the sign-in page.
    let mut stranger = Browser::new();
    register_in_browser(
        &app,
        &mut stranger,
        "Chart Reader",
        "other@example.com",
        PASSWORD,
    )
    .await;
    let hidden_page = stranger
        .get(&app, &app.url(&format!("/portal/keys/{id}/usage")))
        .await;
    let status = hidden_page.status();
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "{}",
        hidden_page.text().await.unwrap()
    );
    let anonymous = Browser::new()
        .get(&app, &app.url(&format!("/portal/keys/{id}/usage")))
        .await;
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
}
