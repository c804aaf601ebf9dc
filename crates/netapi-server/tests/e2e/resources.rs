//! Resources: the operator's APIs that Net API guards. CRUD and every bad input, grants and
//! the no-escalation rule, API keys for a resource with metadata, audience isolation between
//! resources (Net API's own included), deletion that stops everything at once, everywhere.

use crate::e2e;
use crate::helpers::{TestApp, expect_error, json_with};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

e2e!(
    resources_are_created_read_changed_and_deleted,
    bad_resources_are_refused,
    only_admins_manage_resources_and_grants,
    keys_for_a_resource_hold_only_what_their_user_holds,
    bad_keys_for_a_resource_are_refused,
    credentials_are_good_for_their_own_resource_only,
    deleting_a_resource_stops_its_keys_everywhere_at_once,
    protected_resource_metadata_for_each_resource,
);

pub const ORDERS: &str = "https://orders.example.com";

/// Defines a resource with `admin`; returns it.
pub async fn define(app: &TestApp, admin: &str, body: Value) -> Value {
    json_with(
        app.post_json("/v1/resources", admin, body).await,
        StatusCode::CREATED,
    )
    .await
}

/// The Orders API: `orders:read` for everyone, `orders:write` by grant.
pub fn orders_api(identifier: &str) -> Value {
    json!({
        "identifier": identifier,
        "name": "Orders API",
        "scopes": [
            {"name": "orders:read", "description": "See your orders"},
            {"name": "orders:write", "description": "Place and cancel orders"},
        ],
        "self_service_scopes": ["orders:read"],
    })
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    bearer: &str,
    body: Value,
) -> Response {
    app.http
        .request(method, app.url(path))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Forward auth for `resource` requiring `scope`.
pub async fn forward(app: &TestApp, bearer: &str, resource: &str, scope: &str) -> Response {
    app.http
        .get(app.url("/auth/forward"))
        .query(&[("resource", resource), ("scope", scope)])
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap()
}

/// Makes a key with `bearer`; returns the created key object (with `key`).
async fn make_key(app: &TestApp, bearer: &str, body: Value) -> Value {
    json_with(
        app.post_json("/v1/api-keys", bearer, body).await,
        StatusCode::CREATED,
    )
    .await
}

fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map_or("", |v| v.to_str().unwrap())
}

async fn resources_are_created_read_changed_and_deleted(app: TestApp) {
    let admin = app.admin_key("res-admin@example.com").await;
    let created = define(
        &app,
        &admin,
        json!({
            "identifier": ORDERS,
            "name": "Orders API",
            "scopes": [{"name": "orders:read", "description": "See your orders"}, {"name": "orders:write"}],
        }),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("res_"), "{created}");
    assert_eq!(created["identifier"], ORDERS);
    assert_eq!(
        created["self_service_scopes"],
        json!(["orders:read", "orders:write"]),
        "every scope is self-service by default"
    );
    assert_eq!(created["allow_api_keys"], true);
    assert_eq!(created["access_token_ttl"], Value::Null);
    assert_eq!(
        created["scopes"][1],
        json!({"name": "orders:write", "description": ""})
    );

    let second = define(&app, &admin, orders_api("http://127.0.0.1:9999/billing")).await;
    let page = json_with(
        app.get("/v1/resources?page_size=1", &admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["resources"], json!([created.clone()]));
    let token = page["next_page_token"].as_str().unwrap();
    let rest = json_with(
        app.get(
            &format!("/v1/resources?page_size=1&page_token={token}"),
            &admin,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(rest["resources"], json!([second]));
    assert_eq!(rest["next_page_token"], Value::Null);
    assert_eq!(
        json_with(
            app.get(&format!("/v1/resources/{id}"), &admin).await,
            StatusCode::OK
        )
        .await,
        created
    );

    let patched = json_with(
        send(
            &app,
            reqwest::Method::PATCH,
            &format!("/v1/resources/{id}"),
            &admin,
            json!({"name": "Orders", "scopes": [{"name": "orders:read", "description": "Read"}], "access_token_ttl": 120, "allow_api_keys": false}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["name"], "Orders");
    assert_eq!(patched["identifier"], ORDERS);
    assert_eq!(
        patched["self_service_scopes"],
        json!(["orders:read"]),
        "a scope that went is no longer self-service"
    );
    assert_eq!(patched["access_token_ttl"], 120);
    assert_eq!(patched["allow_api_keys"], false);
    let back = json_with(
        send(
            &app,
            reqwest::Method::PATCH,
            &format!("/v1/resources/{id}"),
            &admin,
            json!({"access_token_ttl": null}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(back["access_token_ttl"], Value::Null);
    assert_eq!(back["name"], "Orders");

    let deleted = app.delete(&format!("/v1/resources/{id}"), &admin).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    expect_error(
        app.get(&format!("/v1/resources/{id}"), &admin).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        app.delete(&format!("/v1/resources/{id}"), &admin).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    // Never reused.
    expect_error(
        app.post_json("/v1/resources", &admin, orders_api(ORDERS))
            .await,
        StatusCode::CONFLICT,
        "ALREADY_EXISTS",
    )
    .await;
    let listed = json_with(app.get("/v1/resources", &admin).await, StatusCode::OK).await;
    assert_eq!(listed["resources"].as_array().unwrap().len(), 1, "{listed}");
}

async fn bad_resources_are_refused(app: TestApp) {
    let admin = app.admin_key("bad-res@example.com").await;
    define(&app, &admin, orders_api(ORDERS)).await;
    let long = format!("https://api.example.com/{}", "a".repeat(255));
    let many: Vec<Value> = (0..101).map(|i| json!({"name": format!("s{i}")})).collect();
    let cases = [
        (
            "identifier",
            json!({"identifier": "api.example.com", "name": "x"}),
        ),
        ("identifier", json!({"identifier": "/orders", "name": "x"})),
        (
            "identifier",
            json!({"identifier": "https://api.example.com/#frag", "name": "x"}),
        ),
        ("identifier", json!({"identifier": long, "name": "x"})),
        (
            "identifier",
            json!({"identifier": "http://api.example.com", "name": "x"}),
        ),
        (
            "identifier",
            json!({"identifier": app.base, "name": "Net API again"}),
        ),
        (
            "scopes",
            json!({"identifier": "https://a.example.com", "name": "x", "scopes": [{"name": "a"}, {"name": "a"}]}),
        ),
        (
            "scopes",
            json!({"identifier": "https://a.example.com", "name": "x", "scopes": [{"name": "Orders"}]}),
        ),
        (
            "scopes",
            json!({"identifier": "https://a.example.com", "name": "x", "scopes": [{"name": "a b"}]}),
        ),
        (
            "scopes",
            json!({"identifier": "https://a.example.com", "name": "x", "scopes": [{"name": "a", "description": "d".repeat(501)}]}),
        ),
        (
            "scopes",
            json!({"identifier": "https://a.example.com", "name": "x", "scopes": many}),
        ),
        (
            "self_service_scopes",
            json!({"identifier": "https://a.example.com", "name": "x", "scopes": [{"name": "a"}], "self_service_scopes": ["b"]}),
        ),
        (
            "access_token_ttl",
            json!({"identifier": "https://a.example.com", "name": "x", "access_token_ttl": 10}),
        ),
        (
            "name",
            json!({"identifier": "https://a.example.com", "name": " "}),
        ),
    ];
    for (field, body) in cases {
        let error = expect_error(
            app.post_json("/v1/resources", &admin, body.clone()).await,
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        )
        .await;
        assert_eq!(
            error["error"]["details"][0]["field"], field,
            "{body} -> {error}"
        );
    }
    expect_error(
        app.post_json("/v1/resources", &admin, orders_api(ORDERS))
            .await,
        StatusCode::CONFLICT,
        "ALREADY_EXISTS",
    )
    .await;
    expect_error(
        app.post_json(
            "/v1/resources",
            &admin,
            json!({"identifier": "https://b.example.com"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
    )
    .await;
    let listed = json_with(app.get("/v1/resources", &admin).await, StatusCode::OK).await;
    assert_eq!(
        listed["resources"].as_array().unwrap().len(),
        1,
        "nothing half-written: {listed}"
    );
}

async fn only_admins_manage_resources_and_grants(app: TestApp) {
    let admin = app.admin_key("grants-admin@example.com").await;
    let (member, member_key) = app.register("grants-member@example.com").await;
    let member_key = member_key["key"].as_str().unwrap();
    let orders = define(&app, &admin, orders_api(ORDERS)).await;
    let id = orders["id"].as_str().unwrap();
    for response in [
        app.get("/v1/resources", member_key).await,
        app.get(&format!("/v1/resources/{id}"), member_key).await,
        app.post_json(
            "/v1/resources",
            member_key,
            orders_api("https://c.example.com"),
        )
        .await,
        app.delete(&format!("/v1/resources/{id}"), member_key).await,
        app.get(
            &format!("/v1/users/{}/grants", member["id"].as_str().unwrap()),
            member_key,
        )
        .await,
    ] {
        expect_error(response, StatusCode::FORBIDDEN, "PERMISSION_DENIED").await;
    }
    let member_id = member["id"].as_str().unwrap();
    let grants = format!("/v1/users/{member_id}/grants");
    let granted = json_with(
        send(
            &app,
            reqwest::Method::PUT,
            &grants,
            &admin,
            json!({"resource": ORDERS, "scopes": ["orders:write"]}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        granted,
        json!({"resource": ORDERS, "scopes": ["orders:write"]})
    );
    assert_eq!(
        json_with(app.get(&grants, &admin).await, StatusCode::OK).await,
        json!({"grants": [{"resource": ORDERS, "scopes": ["orders:write"]}]})
    );
    expect_error(
        send(
            &app,
            reqwest::Method::PUT,
            &grants,
            member_key,
            json!({"resource": ORDERS, "scopes": ["orders:write"]}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
    )
    .await;
    for body in [
        json!({"resource": "https://unknown.example.com", "scopes": []}),
        json!({"resource": "not a uri", "scopes": []}),
        json!({"resource": ORDERS, "scopes": ["orders:delete"]}),
        json!({"resource": ORDERS}),
    ] {
        expect_error(
            send(&app, reqwest::Method::PUT, &grants, &admin, body).await,
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        )
        .await;
    }
    expect_error(
        send(
            &app,
            reqwest::Method::PUT,
            "/v1/users/usr_00000000000000000000/grants",
            &admin,
            json!({"resource": ORDERS, "scopes": []}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    let cleared = json_with(
        send(
            &app,
            reqwest::Method::PUT,
            &grants,
            &admin,
            json!({"resource": ORDERS, "scopes": []}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(cleared["scopes"], json!([]));
    assert_eq!(
        json_with(app.get(&grants, &admin).await, StatusCode::OK).await,
        json!({"grants": []})
    );
}

async fn keys_for_a_resource_hold_only_what_their_user_holds(app: TestApp) {
    let admin = app.admin_key("esc-admin@example.com").await;
    let (member, member_key) = app.register("esc-member@example.com").await;
    let member_key = member_key["key"].as_str().unwrap();
    define(&app, &admin, orders_api(ORDERS)).await;

    // By default, every scope the member holds there: the self-service one.
    let reader = make_key(&app, member_key, json!({"name": "reader", "resource": ORDERS, "metadata": {"plan": "gold", "city": "Zürich"}})).await;
    assert_eq!(reader["resource"], ORDERS);
    assert_eq!(reader["scopes"], json!(["orders:read"]));
    assert_eq!(
        reader["metadata"],
        json!({"plan": "gold", "city": "Zürich"})
    );
    let listed = json_with(
        app.get(
            &format!("/v1/api-keys/{}", reader["id"].as_str().unwrap()),
            member_key,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["resource"], ORDERS);
    assert_eq!(listed["metadata"]["plan"], "gold");
    let own = json_with(app.get("/v1/api-keys", member_key).await, StatusCode::OK).await;
    assert_eq!(
        own["api_keys"][0]["resource"],
        app.base.as_str(),
        "keys made before are Net API's own"
    );

    // Not granted: no escalation.
    let refused = expect_error(
        app.post_json(
            "/v1/api-keys",
            member_key,
            json!({"name": "writer", "resource": ORDERS, "scopes": ["orders:write"]}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
    )
    .await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("orders:write"),
        "{refused}"
    );
    let grants = format!("/v1/users/{}/grants", member["id"].as_str().unwrap());
    send(
        &app,
        reqwest::Method::PUT,
        &grants,
        &admin,
        json!({"resource": ORDERS, "scopes": ["orders:write"]}),
    )
    .await;
    let writer = make_key(
        &app,
        member_key,
        json!({"name": "writer", "resource": ORDERS, "scopes": ["orders:write", "orders:read"]}),
    )
    .await;
    assert_eq!(writer["scopes"], json!(["orders:write", "orders:read"]));
    let secret = writer["key"].as_str().unwrap();

    let allowed = forward(&app, secret, ORDERS, "orders:write").await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(header(&allowed, "x-netapi-resource"), ORDERS);
    assert_eq!(
        header(&allowed, "x-netapi-scopes"),
        "orders:write orders:read"
    );
    assert_eq!(
        header(&allowed, "x-netapi-subject"),
        member["id"].as_str().unwrap()
    );
    assert_eq!(header(&allowed, "x-netapi-metadata"), "");
    let with_metadata = forward(&app, reader["key"].as_str().unwrap(), ORDERS, "orders:read").await;
    assert_eq!(with_metadata.status(), StatusCode::OK);
    let metadata: Value =
        serde_json::from_str(header(&with_metadata, "x-netapi-metadata")).unwrap();
    assert_eq!(metadata, json!({"plan": "gold", "city": "Zürich"}));

    // The grant taken back: the key keeps only what its user still holds, at its next use.
    send(
        &app,
        reqwest::Method::PUT,
        &grants,
        &admin,
        json!({"resource": ORDERS, "scopes": []}),
    )
    .await;
    let denied = forward(&app, secret, ORDERS, "orders:write").await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let still = forward(&app, secret, ORDERS, "orders:read").await;
    assert_eq!(still.status(), StatusCode::OK);
    assert_eq!(header(&still, "x-netapi-scopes"), "orders:read");
    // Nor can the key be rotated into the taken-back scope.
    expect_error(
        app.post_json(
            &format!("/v1/api-keys/{}/rotate", writer["id"].as_str().unwrap()),
            member_key,
            json!({}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
    )
    .await;
    let rotated = make_key_rotate(&app, member_key, reader["id"].as_str().unwrap()).await;
    assert_eq!(rotated["resource"], ORDERS);
    assert_eq!(rotated["metadata"]["plan"], "gold");
    // Administrators hold every scope of every resource.
    let admin_writer = make_key(
        &app,
        &admin,
        json!({"name": "admin", "resource": ORDERS, "scopes": ["orders:write"]}),
    )
    .await;
    assert_eq!(
        forward(
            &app,
            admin_writer["key"].as_str().unwrap(),
            ORDERS,
            "orders:write"
        )
        .await
        .status(),
        StatusCode::OK
    );
}

async fn make_key_rotate(app: &TestApp, bearer: &str, id: &str) -> Value {
    json_with(
        app.post_json(&format!("/v1/api-keys/{id}/rotate"), bearer, json!({}))
            .await,
        StatusCode::CREATED,
    )
    .await
}

async fn bad_keys_for_a_resource_are_refused(app: TestApp) {
    let admin = app.admin_key("badkey-admin@example.com").await;
    let member = app.member_key("badkey-member@example.com").await;
    define(&app, &admin, orders_api(ORDERS)).await;
    let mut no_keys = orders_api("https://nokeys.example.com");
    no_keys["allow_api_keys"] = json!(false);
    define(&app, &admin, no_keys).await;
    let big = json!({ "blob": "x".repeat(4096) });
    let cases = [
        (
            "resource",
            json!({"name": "k", "resource": "https://unknown.example.com"}),
        ),
        ("resource", json!({"name": "k", "resource": "orders"})),
        (
            "resource",
            json!({"name": "k", "resource": "https://orders.example.com/#x"}),
        ),
        (
            "resource",
            json!({"name": "k", "resource": format!("https://a.example.com/{}", "a".repeat(300))}),
        ),
        (
            "resource",
            json!({"name": "k", "resource": "https://nokeys.example.com"}),
        ),
        (
            "scopes",
            json!({"name": "k", "resource": ORDERS, "scopes": ["users:read"]}),
        ),
        (
            "scopes",
            json!({"name": "k", "resource": ORDERS, "scopes": ["orders:delete"]}),
        ),
        ("scopes", json!({"name": "k", "scopes": ["orders:read"]})),
        (
            "metadata",
            json!({"name": "k", "resource": ORDERS, "metadata": ["not", "an", "object"]}),
        ),
        (
            "metadata",
            json!({"name": "k", "resource": ORDERS, "metadata": "text"}),
        ),
        (
            "metadata",
            json!({"name": "k", "resource": ORDERS, "metadata": big}),
        ),
    ];
    for (field, body) in cases {
        let error = expect_error(
            app.post_json("/v1/api-keys", &member, body.clone()).await,
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        )
        .await;
        assert_eq!(
            error["error"]["details"][0]["field"], field,
            "{body} -> {error}"
        );
    }
    let keys = json_with(app.get("/v1/api-keys", &member).await, StatusCode::OK).await;
    assert_eq!(
        keys["api_keys"].as_array().unwrap().len(),
        1,
        "nothing half-written"
    );
}

async fn credentials_are_good_for_their_own_resource_only(app: TestApp) {
    let admin = app.admin_key("iso-admin@example.com").await;
    let own = app.member_key("iso-member@example.com").await;
    define(&app, &admin, orders_api(ORDERS)).await;
    define(&app, &admin, orders_api("https://billing.example.com")).await;
    let orders_key = make_key(&app, &own, json!({"name": "orders", "resource": ORDERS})).await;
    let orders_key = orders_key["key"].as_str().unwrap();

    // Net API's own `/v1` refuses a key made for another resource.
    let refused = app.get("/v1/users/me", orders_key).await;
    let challenge = header(&refused, "www-authenticate").to_owned();
    expect_error(refused, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    assert!(challenge.contains("invalid_token"), "{challenge}");
    // The resource refuses Net API's own keys, and keys of another resource.
    let own_at_orders = forward(&app, &own, ORDERS, "").await;
    assert!(header(&own_at_orders, "www-authenticate").contains("invalid_token"));
    expect_error(own_at_orders, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    let at_billing = forward(
        &app,
        orders_key,
        "https://billing.example.com",
        "orders:read",
    )
    .await;
    expect_error(at_billing, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    assert_eq!(
        forward(&app, orders_key, ORDERS, "orders:read")
            .await
            .status(),
        StatusCode::OK
    );
    // Forward auth without a resource is Net API's own, as before.
    let plain = app
        .http
        .get(app.url("/auth/forward"))
        .bearer_auth(&own)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(header(&plain, "x-netapi-resource"), app.base.as_str());

    // Verification answers WRONG_RESOURCE, and the key's own resource and metadata.
    let verifier = make_key(
        &app,
        &admin,
        json!({"name": "verifier", "scopes": ["keys:verify"]}),
    )
    .await;
    let verifier = verifier["key"].as_str().unwrap();
    let with_meta = make_key(
        &app,
        &own,
        json!({"name": "m", "resource": ORDERS, "metadata": {"tier": 2}}),
    )
    .await;
    let verify = |body: Value| app.post_json("/v1/keys/verify", verifier, body);
    let valid = json_with(
        verify(json!({"key": with_meta["key"], "scopes": ["orders:read"]})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(valid["code"], "VALID", "{valid}");
    assert_eq!(valid["resource"], ORDERS);
    assert_eq!(valid["scopes"], json!(["orders:read"]));
    assert_eq!(valid["metadata"], json!({"tier": 2}));
    for (key, resource) in [
        (with_meta["key"].as_str().unwrap(), app.base.as_str()),
        (
            with_meta["key"].as_str().unwrap(),
            "https://billing.example.com",
        ),
        (own.as_str(), ORDERS),
    ] {
        let answer = json_with(
            verify(json!({"key": key, "resource": resource})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(answer["code"], "WRONG_RESOURCE", "{resource}: {answer}");
        assert_eq!(answer["valid"], false);
    }
}

async fn deleting_a_resource_stops_its_keys_everywhere_at_once(app: TestApp) {
    let admin = app.admin_key("del-admin@example.com").await;
    let member = app.member_key("del-member@example.com").await;
    let orders = define(&app, &admin, orders_api(ORDERS)).await;
    let key = make_key(&app, &member, json!({"name": "orders", "resource": ORDERS})).await;
    let secret = key["key"].as_str().unwrap();
    assert_eq!(
        forward(&app, secret, ORDERS, "orders:read").await.status(),
        StatusCode::OK
    );

    // A second instance on the same database, its caches warm.
    let store = netapi_store::open(&netapi_store::StoreOptions::new(&app.database_url), false)
        .await
        .unwrap();
    let other = netapi_core::NetApi::new(store, app.clock.clone(), app.api.settings().clone());
    other.start().await.unwrap();
    let decide = || other.check_access(Ok(secret), "192.0.2.7", Some(ORDERS), "orders:read");
    assert!(decide().await.is_ok());

    let deleted = app
        .delete(
            &format!("/v1/resources/{}", orders["id"].as_str().unwrap()),
            &admin,
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    // Here at once: its keys are refused as revoked ones are, with 401.
    let refused = forward(&app, secret, ORDERS, "orders:read").await;
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    expect_error(refused, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    // Without a credential, a deleted resource is no different from a live one.
    let bare = app
        .http
        .get(app.url("/auth/forward"))
        .query(&[("resource", ORDERS)])
        .send()
        .await
        .unwrap();
    expect_error(bare, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    // A proxy pointed at an identifier that never existed hears 403: the operator's mistake.
    expect_error(
        forward(&app, secret, "https://never.example.com", "orders:read").await,
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
    )
    .await;
    let gone = app
        .get(
            &format!("/v1/api-keys/{}", key["id"].as_str().unwrap()),
            &member,
        )
        .await;
    expect_error(gone, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    // There, at its next poll of invalidations.
    other.poll_invalidations().await.unwrap();
    assert!(matches!(
        decide().await,
        Err(netapi_core::Error::Unauthenticated(
            netapi_core::AuthFailure::Revoked
        ))
    ));
    let verifier = make_key(
        &app,
        &admin,
        json!({"name": "verifier", "scopes": ["keys:verify"]}),
    )
    .await;
    let answer = json_with(
        app.post_json(
            "/v1/keys/verify",
            verifier["key"].as_str().unwrap(),
            json!({"key": secret}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(answer["code"], "REVOKED", "{answer}");
}

async fn protected_resource_metadata_for_each_resource(app: TestApp) {
    let admin = app.admin_key("prm-admin@example.com").await;
    let orders = define(&app, &admin, orders_api(ORDERS)).await;
    let metadata = |resource: &str| {
        app.http
            .get(app.url("/.well-known/oauth-protected-resource"))
            .query(&[("resource", resource)])
            .send()
    };
    let body = json_with(metadata(ORDERS).await.unwrap(), StatusCode::OK).await;
    assert_eq!(
        body,
        json!({
            "resource": ORDERS,
            "authorization_servers": [app.base],
            "scopes_supported": ["orders:read", "orders:write"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Orders API",
        })
    );
    // The challenge of a refusal points there.
    let refused = app
        .http
        .get(app.url("/auth/forward"))
        .query(&[("resource", ORDERS)])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&refused, "www-authenticate").contains("resource_metadata=\""));
    app.delete(
        &format!("/v1/resources/{}", orders["id"].as_str().unwrap()),
        &admin,
    )
    .await;
    expect_error(
        metadata(ORDERS).await.unwrap(),
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
}
