//! Webhooks: a real receiver on 127.0.0.1 (so private targets are allowed there) checks each
//! delivery's signature; retries, restarts and two instances are driven by running the
//! delivery step directly, with the server's own delivery task running beside.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use netapi_core::secret::Secret;
use netapi_core::{NetApi, Settings};
use netapi_server::webhooks::HttpWebhookClient;
use netapi_store::StoreOptions;
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

use crate::e2e;
use crate::helpers::{
    Browser, TestApp, expect_error, hidden_field, location_of, shown_secret, sign_in_to_portal,
};

/// Longest a test waits for a delivery before it fails (a hang guard, not a measurement).
const WAIT: Duration = Duration::from_secs(20);

/// One request the receiver got: the signature header, the raw body, and whether it carried
/// a W3C `traceparent`.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    signature: String,
    pub(crate) body: String,
    traced: bool,
}

impl Received {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Clone)]
struct Receiver {
    /// Statuses to answer with, in order; 204 once they run out.
    answers: Arc<Mutex<VecDeque<u16>>>,
    got: mpsc::UnboundedSender<Received>,
    /// When set, each request is answered only once the test adds a permit.
    gate: Option<Arc<Semaphore>>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = headers
        .get("netapi-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let answer = receiver.answers.lock().unwrap().pop_front().unwrap_or(204);
    let _ = receiver.got.send(Received {
        signature,
        body: String::from_utf8(body.to_vec()).unwrap(),
        traced: headers.contains_key("traceparent"),
    });
    if let Some(gate) = &receiver.gate {
        gate.acquire().await.unwrap().forget();
    }
    StatusCode::from_u16(answer).unwrap()
}

/// Starts a receiver answering `answers` first; returns its URL and what it gets.
pub(crate) async fn start_receiver(answers: &[u16]) -> (String, mpsc::UnboundedReceiver<Received>) {
    start_gated_receiver(answers, None).await
}

/// A receiver that answers each request once `gate` has a permit for it.
async fn start_gated_receiver(
    answers: &[u16],
    gate: Option<Arc<Semaphore>>,
) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (got, rx) = mpsc::unbounded_channel();
    let state = Receiver {
        answers: Arc::new(Mutex::new(answers.iter().copied().collect())),
        got,
        gate,
    };
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

pub(crate) async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a delivery arrives")
        .expect("receiver running")
}

/// Checks `Netapi-Signature: t=<unix>,v1=<hex>` as a receiver would, with its own HMAC.
pub(crate) fn assert_signed(received: &Received, secret: &str) {
    let mut t = None;
    let mut v1 = None;
    for part in received.signature.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value.to_owned()),
            Some(("v1", value)) => v1 = Some(value.to_owned()),
            _ => {}
        }
    }
    let (t, v1) = (t.expect("t="), v1.expect("v1="));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", received.body).as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "the signature verifies with the secret");
}

pub(crate) fn allow_private(settings: &mut Settings) {
    settings.allow_private_targets = true;
}

fn allow_private_with_a_short_timeout(settings: &mut Settings) {
    allow_private(settings);
    settings.webhook_timeout = Duration::from_secs(1);
}

fn allow_private_and_lock_early(settings: &mut Settings) {
    allow_private(settings);
    settings.auth_failure_limit = 3;
}

pub(crate) async fn create_webhook(
    app: &TestApp,
    admin: &str,
    url: &str,
    events: &[&str],
) -> Value {
    let response = app
        .post_json(
            "/v1/webhooks",
            admin,
            json!({ "url": url, "events": events }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()["cache-control"],
        "no-store",
        "the secret is not cached"
    );
    response.json().await.unwrap()
}

async fn deliveries(app: &TestApp, admin: &str, webhook_id: &str) -> Vec<Value> {
    let list: Value = app
        .get(&format!("/v1/webhooks/{webhook_id}/deliveries"), admin)
        .await
        .json()
        .await
        .unwrap();
    list["deliveries"].as_array().unwrap().clone()
}

/// The webhook's deliveries once `done` holds for them (the server's own delivery task and
/// the test's steps run at once, so the list is read again until it does).
async fn deliveries_when(
    app: &TestApp,
    admin: &str,
    webhook_id: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let wait = async {
        loop {
            let listed = deliveries(app, admin, webhook_id).await;
            if done(&listed) {
                return listed;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("the deliveries get there")
}

/// A second instance on the same database, as after a restart or beside the first.
async fn another_instance(app: &TestApp) -> NetApi {
    let store = netapi_store::open(&StoreOptions::new(&app.database_url), false)
        .await
        .unwrap();
    let api = NetApi::new(store, app.clock.clone(), app.api.settings().clone());
    api.start().await.unwrap();
    api
}

e2e!(
    settings = allow_private;
    a_signed_delivery_is_retried_after_a_500_by_a_restarted_instance,
    two_instances_deliver_each_attempt_once,
    deliveries_are_listed_and_redelivered,
    a_rotated_key_reaches_webhooks,
    a_redelivery_asked_for_during_an_attempt_follows_it,
    concurrent_creations_never_pass_the_cap,
    a_webhook_url_is_kept_as_parsed,
);

e2e!(
    settings = allow_private_with_a_short_timeout;
    a_redirect_is_not_followed_and_a_silent_receiver_is_given_up_on,
);

e2e!(
    private_targets_and_bad_input_are_refused,
    members_get_no_webhooks_page_nor_its_actions,
);

e2e!(
    settings = allow_private_and_lock_early;
    security_events_reach_the_webhooks_subscribed_to_them,
    an_admin_manages_webhooks_in_the_portal,
);

/// A receiver that answers `307` towards `location`, or (without one) never answers.
async fn start_odd_receiver(location: Option<String>) -> String {
    let app = Router::new().route(
        "/hook",
        post(async move || match location {
            Some(location) => (
                StatusCode::TEMPORARY_REDIRECT,
                [(axum::http::header::LOCATION, location)],
            ),
            None => std::future::pending().await,
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Where a receiver sends a delivery on is not the webhook's URL: a redirect is an answer
/// (a failed attempt), never followed. A receiver that never answers costs an attempt its
/// `webhook_timeout`, no more.
async fn a_redirect_is_not_followed_and_a_silent_receiver_is_given_up_on(app: TestApp) {
    let admin = app.admin_key("admin@example.com").await;
    let (elsewhere, mut reached) = start_receiver(&[]).await;
    let redirecting = start_odd_receiver(Some(elsewhere)).await;
    let silent = start_odd_receiver(None).await;
    let mut ids = Vec::new();
    for url in [&redirecting, &silent] {
        let webhook = create_webhook(&app, &admin, url, &["api_key.created"]).await;
        ids.push(webhook["id"].as_str().unwrap().to_owned());
    }
    app.post_json("/v1/api-keys", &admin, json!({ "name": "ci" }))
        .await;
    app.api.deliver_webhooks(&HttpWebhookClient).await.unwrap();
    let redirected = deliveries_when(&app, &admin, &ids[0], |l| {
        l.len() == 1 && l[0]["attempts"] == 1
    })
    .await;
    assert_eq!(redirected[0]["status"], "pending", "{redirected:?}");
    assert_eq!(redirected[0]["response_code"], 307);
    // The attempt was over (recorded) before this: had the redirect been followed, the
    // other receiver would have had the request by now.
    assert!(reached.try_recv().is_err(), "the redirect was followed");
    let timed_out = deliveries_when(&app, &admin, &ids[1], |l| {
        l.len() == 1 && l[0]["attempts"] == 1
    })
    .await;
    assert_eq!(timed_out[0]["status"], "pending", "{timed_out:?}");
    assert_eq!(timed_out[0]["last_error"], "timed out", "{timed_out:?}");
    assert!(timed_out[0]["response_code"].is_null(), "{timed_out:?}");
}

async fn a_signed_delivery_is_retried_after_a_500_by_a_restarted_instance(app: TestApp) {
    let admin = app.admin_key("admin@example.com").await;
    let (url, mut rx) = start_receiver(&[500]).await;
    let webhook = create_webhook(&app, &admin, &url, &["api_key.created", "api_key.revoked"]).await;
    let secret = webhook["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{webhook}");
    let id = webhook["id"].as_str().unwrap();
    // Shown once: never again.
    let shown: Value = app
        .get(&format!("/v1/webhooks/{id}"), &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["url"], url.as_str());
    assert!(shown.get("secret").is_none(), "{shown}");

    let member = app.member_key("ada@example.com").await;
    let created: Value = app
        .post_json("/v1/api-keys", &member, json!({ "name": "ci" }))
        .await
        .json()
        .await
        .unwrap();
    let key_id = created["id"].as_str().unwrap();

    // The first attempt is answered 500.
    app.api.deliver_webhooks(&HttpWebhookClient).await.unwrap();
    let first = next(&mut rx).await;
    assert_signed(&first, secret);
    assert!(!first.traced, "no trace context while tracing is off");
    let body = first.json();
    assert_eq!(body["type"], "api_key.created");
    assert!(body["id"].as_str().unwrap().starts_with("evt_"));
    assert!(body["created_at"].is_i64());
    assert_eq!(body["data"]["api_key_id"], key_id);
    assert!(
        !first.body.contains(created["key"].as_str().unwrap()),
        "never a secret in a delivery"
    );
    let listed = deliveries_when(&app, &admin, id, |l| l.len() == 1 && l[0]["attempts"] == 1).await;
    assert_eq!(listed[0]["status"], "pending");
    assert_eq!(listed[0]["response_code"], 500);

    // A restarted instance (a new one on the same database) retries once it is due: the
    // first retry comes within 10 seconds.
    let restarted = another_instance(&app).await;
    app.clock.advance(10);
    restarted
        .deliver_webhooks(&HttpWebhookClient)
        .await
        .unwrap();
    let retry = next(&mut rx).await;
    assert_signed(&retry, secret);
    assert_eq!(
        retry.json()["id"],
        body["id"],
        "the same event, delivered again"
    );
    let listed = deliveries_when(&app, &admin, id, |l| l[0]["status"] == "delivered").await;
    assert_eq!(listed[0]["attempts"], 2);
    assert_eq!(listed[0]["response_code"], 204);

    // Revocation is an event too; a subscribed type only.
    let revoked = app.delete(&format!("/v1/api-keys/{key_id}"), &member).await;
    assert!(revoked.status().is_success());
    app.api.deliver_webhooks(&HttpWebhookClient).await.unwrap();
    let third = next(&mut rx).await;
    assert_signed(&third, secret);
    assert_eq!(third.json()["type"], "api_key.revoked");
    assert_eq!(third.json()["data"]["api_key_id"], key_id);
}

async fn two_instances_deliver_each_attempt_once(app: TestApp) {
    let admin = app.admin_key("admin@example.com").await;
    let (url, mut rx) = start_receiver(&[]).await;
    let webhook = create_webhook(&app, &admin, &url, &["user.created"]).await;
    let id = webhook["id"].as_str().unwrap().to_owned();
    for i in 0..6 {
        app.register(&format!("user{i}@example.com")).await;
    }
    let (one, two) = (another_instance(&app).await, another_instance(&app).await);
    let (a, b) = tokio::join!(
        one.deliver_webhooks(&HttpWebhookClient),
        two.deliver_webhooks(&HttpWebhookClient)
    );
    a.unwrap();
    b.unwrap();
    // Every delivery attempted once, whoever claimed it (the server's own task included).
    let listed = deliveries_when(&app, &admin, &id, |l| {
        l.len() == 6 && l.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    assert!(listed.iter().all(|d| d["attempts"] == 1), "{listed:?}");
    let mut events = Vec::new();
    while let Ok(received) = rx.try_recv() {
        events.push(received.json()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(events.len(), 6, "one request per delivery: {events:?}");
    events.sort();
    events.dedup();
    assert_eq!(events.len(), 6);
}

async fn deliveries_are_listed_and_redelivered(app: TestApp) {
    let admin = app.admin_key("admin@example.com").await;
    let (url, mut rx) = start_receiver(&[]).await;
    let webhook = create_webhook(&app, &admin, &url, &["user.created", "user.deleted"]).await;
    let id = webhook["id"].as_str().unwrap();
    let other = create_webhook(&app, &admin, &url, &["login.locked"]).await;
    let other_id = other["id"].as_str().unwrap();
    app.register("bob@example.com").await;
    app.api.deliver_webhooks(&HttpWebhookClient).await.unwrap();
    let first = next(&mut rx).await;
    assert_eq!(first.json()["type"], "user.created");
    let delivery = deliveries_when(&app, &admin, id, |l| {
        l.len() == 1 && l[0]["status"] == "delivered"
    })
    .await[0]
        .clone();
    let delivery_id = delivery["id"].as_str().unwrap();
    assert_eq!(delivery["type"], "user.created");
    assert!(deliveries(&app, &admin, other_id).await.is_empty());

    let again = app
        .post_json(
            &format!("/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    app.api.deliver_webhooks(&HttpWebhookClient).await.unwrap();
    let redelivered = next(&mut rx).await;
    assert_eq!(redelivered.json()["id"], first.json()["id"]);

    // Unknown ids, and a delivery under another webhook, are not found.
    for path in [
        format!("/v1/webhooks/{other_id}/deliveries/{delivery_id}/redeliver"),
        format!("/v1/webhooks/{id}/deliveries/whd_unknown/redeliver"),
    ] {
        let response = app.post_json(&path, &admin, json!({})).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // Members see none of it.
    let member = app.member_key("eve@example.com").await;
    for path in [
        "/v1/webhooks".to_owned(),
        format!("/v1/webhooks/{id}/deliveries"),
    ] {
        let response = app.get(&path, &member).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }

    // Deleted: gone from the list, and nothing more is delivered to it.
    let deleted = app.delete(&format!("/v1/webhooks/{id}"), &admin).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let list: Value = app.get("/v1/webhooks", &admin).await.json().await.unwrap();
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.get(&format!("/v1/webhooks/{id}"), &admin)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

async fn private_targets_and_bad_input_are_refused(app: TestApp) {
    let admin = app.admin_key("admin@example.com").await;
    for url in [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.0.0.7/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://0.0.0.0/hook",
        "http://hooks.example.com/plain-http",
        "ftp://hooks.example.com/",
        "not a url",
    ] {
        let response = app
            .post_json(
                "/v1/webhooks",
                &admin,
                json!({ "url": url, "events": ["user.created"] }),
            )
            .await;
        expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    }
    let long = format!("https://hooks.example.com/{}", "a".repeat(2100));
    for body in [
        json!({ "url": long, "events": ["user.created"] }),
        json!({ "url": "https://hooks.example.com/", "events": [] }),
        json!({ "url": "https://hooks.example.com/", "events": ["user.exploded"] }),
        json!({ "url": "https://hooks.example.com/", "events": vec!["user.created"; 11] }),
    ] {
        let response = app.post_json("/v1/webhooks", &admin, body.clone()).await;
        expect_error(response, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    }
    let member = app.member_key("eve@example.com").await;
    let response = app
        .post_json(
            "/v1/webhooks",
            &member,
            json!({ "url": "https://hooks.example.com/", "events": ["user.created"] }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let list: Value = app.get("/v1/webhooks", &admin).await.json().await.unwrap();
    assert_eq!(list["webhooks"], json!([]), "nothing was created");
}

async fn security_events_reach_the_webhooks_subscribed_to_them(app: TestApp) {
    let admin = app.admin_key("admin@example.com").await;
    let (url, mut rx) = start_receiver(&[]).await;
    let events = [
        "user.created",
        "user.deleted",
        "oauth_client.created",
        "oauth_client.deleted",
        "login.locked",
    ];
    let webhook = create_webhook(&app, &admin, &url, &events).await;
    let secret = webhook["secret"].as_str().unwrap();

    let (ada, _) = app.register("ada@example.com").await;
    let ada_id = ada["id"].as_str().unwrap();
    let client = app
        .create_client(
            &admin,
            json!({"client_name": "svc", "grant_types": ["client_credentials"], "scope": "users:read"}),
        )
        .await;
    let client_id = client["client_id"].as_str().unwrap();
    let deleted = app
        .delete(&format!("/v1/oauth-clients/{client_id}"), &admin)
        .await;
    assert!(deleted.status().is_success());
    // The third wrong password reaches the limit: one `login.locked`, whatever follows.
    for _ in 0..5 {
        let refused = app
            .api
            .login(
                "ada@example.com",
                &Secret::new("wrong password"),
                "192.0.2.7",
            )
            .await;
        assert!(refused.is_err());
    }
    let deleted = app.delete(&format!("/v1/users/{ada_id}"), &admin).await;
    assert!(deleted.status().is_success());

    app.api.deliver_webhooks(&HttpWebhookClient).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..events.len() {
        let received = next(&mut rx).await;
        assert_signed(&received, secret);
        got.push(received.json());
    }
    let of = |kind: &str| {
        got.iter()
            .find(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("{kind} delivered: {got:?}"))
            .clone()
    };
    assert_eq!(of("user.created")["data"]["user_id"], ada_id);
    assert_eq!(of("user.deleted")["data"]["user_id"], ada_id);
    assert_eq!(of("oauth_client.created")["data"]["client_id"], client_id);
    assert_eq!(of("oauth_client.deleted")["data"]["client_id"], client_id);
    let locked = of("login.locked");
    assert_eq!(locked["data"]["user_id"], ada_id);
    assert!(locked["data"]["retry_after_seconds"].as_u64().unwrap() > 0);
    let listed = deliveries_when(&app, &admin, webhook["id"].as_str().unwrap(), |l| {
        l.len() == events.len() && l.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    assert_eq!(
        listed
            .iter()
            .filter(|d| d["type"] == "login.locked")
            .count(),
        1,
        "locked once, not at every refused attempt"
    );
}

async fn an_admin_manages_webhooks_in_the_portal(app: TestApp) {
    let admin = app.admin_key("admin@example.com").await;
    let (url, mut rx) = start_receiver(&[500]).await;
    let mut browser = Browser::new();
    let portal = sign_in_to_portal(&app, &mut browser, "admin@example.com").await;
    assert!(portal.contains("href=\"/portal/webhooks\""), "{portal}");
    let page = browser.get(&app, &app.url("/portal/webhooks")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = hidden_field(&page.text().await.unwrap(), "csrf_token");

    // A form from elsewhere (without the session's CSRF token) registers nothing.
    let forged = browser
        .post(
            &app,
            "/portal/webhooks",
            &[
                ("csrf_token", "forged"),
                ("url", &url),
                ("events", "user.created"),
            ],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let list: Value = app.get("/v1/webhooks", &admin).await.json().await.unwrap();
    assert_eq!(
        list["webhooks"],
        json!([]),
        "a forged form registers nothing"
    );

    // A bad URL is a message, and nothing is registered.
    let refused = browser
        .submit(
            &app,
            "/portal/webhooks",
            &[
                ("csrf_token", &csrf),
                ("url", "ftp://x"),
                ("events", "user.created"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::OK);
    assert!(refused.text().await.unwrap().contains("must use https"));

    let created = browser
        .post(
            &app,
            "/portal/webhooks",
            &[
                ("csrf_token", &csrf),
                ("url", &url),
                ("events", "user.created user.deleted"),
            ],
        )
        .await;
    // Redirect-after-POST: the secret is shown once, by the page the form redirects to.
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    assert_eq!(location_of(&created), "/portal/webhooks");
    let shown = browser.get(&app, &app.url("/portal/webhooks")).await;
    assert_eq!(shown.status(), StatusCode::OK);
    let secret = shown_secret(&shown.text().await.unwrap());
    assert!(secret.starts_with("whsec_"), "{secret}");

    app.register("ada@example.com").await;
    app.api.deliver_webhooks(&HttpWebhookClient).await.unwrap();
    let first = next(&mut rx).await;
    assert_signed(&first, &secret);
    let list: Value = app.get("/v1/webhooks", &admin).await.json().await.unwrap();
    let webhook_id = list["webhooks"][0]["id"].as_str().unwrap().to_owned();
    deliveries_when(&app, &admin, &webhook_id, |l| {
        l.len() == 1 && l[0]["attempts"] == 1
    })
    .await;
    let page = browser.get(&app, &app.url("/portal/webhooks")).await;
    let html = page.text().await.unwrap();
    assert!(html.contains(&url), "{html}");
    assert!(
        html.contains("<td>500</td>"),
        "the failed attempt is shown: {html}"
    );
    assert!(!html.contains(&secret), "the secret is shown once only");

    // Redelivered from the page: attempted again at once.
    let delivery_id = html
        .split("/deliveries/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    let again = browser
        .submit(
            &app,
            &format!("/portal/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    app.api.deliver_webhooks(&HttpWebhookClient).await.unwrap();
    assert_eq!(next(&mut rx).await.json()["id"], first.json()["id"]);

    let deleted = browser
        .submit(
            &app,
            &format!("/portal/webhooks/{webhook_id}/delete"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::OK);
    assert!(
        deleted
            .text()
            .await
            .unwrap()
            .contains("No webhooks are registered.")
    );
}

async fn members_get_no_webhooks_page_nor_its_actions(app: TestApp) {
    let admin = app.admin_key("admin@example.com").await;
    app.register("plain@example.com").await;
    let mut browser = Browser::new();
    let portal = sign_in_to_portal(&app, &mut browser, "plain@example.com").await;
    assert!(!portal.contains("/portal/webhooks"), "{portal}");
    let csrf = hidden_field(&portal, "csrf_token");
    let page = browser.get(&app, &app.url("/portal/webhooks")).await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    let refused = browser
        .post(
            &app,
            "/portal/webhooks",
            &[
                ("csrf_token", &csrf),
                ("url", "https://hooks.example.com/"),
                ("events", "user.created"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    let list: Value = app.get("/v1/webhooks", &admin).await.json().await.unwrap();
    assert_eq!(list["webhooks"], json!([]));
}

async fn a_rotated_key_reaches_webhooks(app: TestApp) {
    let admin = app.admin_key("admin@example.com").await;
    let (url, mut rx) = start_receiver(&[]).await;
    let webhook = create_webhook(&app, &admin, &url, &["api_key.rotated"]).await;
    let secret = webhook["secret"].as_str().unwrap();
    let (user, key) = app.register("ada@example.com").await;
    let old_id = key["id"].as_str().unwrap();
    let rotated: Value = app
        .post_json(
            &format!("/v1/api-keys/{old_id}/rotate"),
            key["key"].as_str().unwrap(),
            json!({ "grace_period_seconds": 60 }),
        )
        .await
        .json()
        .await
        .unwrap();
    let new_key = rotated["key"].as_str().unwrap();

    app.api.deliver_webhooks(&HttpWebhookClient).await.unwrap();
    let received = next(&mut rx).await;
    assert_signed(&received, secret);
    let body = received.json();
    assert_eq!(body["type"], "api_key.rotated");
    assert_eq!(body["data"]["api_key_id"], old_id);
    assert_eq!(body["data"]["new_api_key_id"], rotated["id"]);
    assert_eq!(body["data"]["grace_period_seconds"], 60);
    assert_eq!(body["data"]["user_id"], user["id"]);
    assert!(
        !received.body.contains(new_key),
        "never a key in a delivery"
    );
    assert!(!received.body.contains(key["key"].as_str().unwrap()));
}

async fn a_redelivery_asked_for_during_an_attempt_follows_it(app: TestApp) {
    let admin = app.admin_key("admin@example.com").await;
    let gate = Arc::new(Semaphore::new(0));
    let (url, mut rx) = start_gated_receiver(&[], Some(Arc::clone(&gate))).await;
    let webhook = create_webhook(&app, &admin, &url, &["user.created"]).await;
    let id = webhook["id"].as_str().unwrap();
    app.register("ada@example.com").await;
    let delivery_id = deliveries(&app, &admin, id).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The first attempt reaches the receiver, which holds it (whichever instance made it:
    // the test's step, or the server's own task).
    let first_attempt = tokio::spawn({
        let api = another_instance(&app).await;
        async move { api.deliver_webhooks(&HttpWebhookClient).await.unwrap() }
    });
    let first = next(&mut rx).await;
    let again = app
        .post_json(
            &format!("/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    // Another instance finds nothing to claim while the attempt is in flight.
    let other = another_instance(&app).await;
    assert_eq!(other.deliver_webhooks(&HttpWebhookClient).await.unwrap(), 0);
    assert!(rx.try_recv().is_err(), "never two attempts at once");

    // Once the attempt ends, the redelivery follows it: one more request, not two.
    gate.add_permits(1);
    let listed = deliveries_when(&app, &admin, id, |l| l[0]["attempts"] == 1).await;
    assert_eq!(listed[0]["status"], "pending", "the redelivery is due");
    // Attempted by the server's task or by this step, which waits as long as the receiver
    // holds the request.
    let second_attempt =
        tokio::spawn(async move { other.deliver_webhooks(&HttpWebhookClient).await.unwrap() });
    let second = next(&mut rx).await;
    assert_eq!(second.json()["id"], first.json()["id"]);
    gate.add_permits(1);
    let listed = deliveries_when(&app, &admin, id, |l| l[0]["status"] == "delivered").await;
    assert_eq!(listed[0]["attempts"], 2);
    first_attempt.await.unwrap();
    second_attempt.await.unwrap();
    assert!(rx.try_recv().is_err(), "exactly two requests");
}

async fn concurrent_creations_never_pass_the_cap(app: TestApp) {
    let admin = app.admin_key("admin@example.com").await;
    let (url, _rx) = start_receiver(&[]).await;
    for _ in 0..15 {
        create_webhook(&app, &admin, &url, &["user.created"]).await;
    }
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let request = app
            .http
            .post(app.url("/v1/webhooks"))
            .bearer_auth(&admin)
            .json(&json!({ "url": url, "events": ["user.created"] }));
        attempts.spawn(async move { request.send().await.unwrap() });
    }
    let answers = attempts.join_all().await;
    let created = answers
        .iter()
        .filter(|r| r.status() == StatusCode::CREATED)
        .count();
    assert_eq!(created, 5, "exactly the free places are taken");
    for refused in answers
        .into_iter()
        .filter(|r| r.status() != StatusCode::CREATED)
    {
        let error = expect_error(refused, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
        assert!(error.to_string().contains("20 webhooks"), "{error}");
    }
    let list: Value = app.get("/v1/webhooks", &admin).await.json().await.unwrap();
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 20);
}

async fn a_webhook_url_is_kept_as_parsed(app: TestApp) {
    let admin = app.admin_key("admin@example.com").await;
    let (url, _rx) = start_receiver(&[]).await;
    // A right-to-left override, and a tab (which URL parsing drops).
    let given = format!("{url}/\u{202e}txt.exe\tx");
    let webhook = create_webhook(&app, &admin, &given, &["user.created"]).await;
    assert_eq!(webhook["url"], format!("{url}/%E2%80%AEtxt.exex"));
    let mut browser = Browser::new();
    let page = sign_in_to_portal(&app, &mut browser, "admin@example.com").await;
    assert!(!page.contains('\u{202e}'));
    let page = browser.get(&app, &app.url("/portal/webhooks")).await;
    let html = page.text().await.unwrap();
    assert!(html.contains("%E2%80%AEtxt.exex"), "{html}");
    assert!(!html.contains('\u{202e}'));
}
