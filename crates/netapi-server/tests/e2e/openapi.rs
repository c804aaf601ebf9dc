//! `GET /openapi.json`: an OpenAPI 3.1 document that describes every route the router serves,
//! with the right methods, and whose response schemas name the fields the server sends.

use crate::helpers::{Backend, TestApp, drop_database};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(app: &TestApp) -> Value {
    let response = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    response.json().await.unwrap()
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local $ref");
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{reference} does not resolve"));
            resolve(doc, target)
        }
        None => value,
    }
}

fn every_ref(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                found.push(reference.clone());
            }
            map.values().for_each(|v| every_ref(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| every_ref(v, found)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describes_every_route_with_its_methods() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let doc = document(&app).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["servers"][0]["url"], app.base.as_str());

    // The router and the document come from one route table, so the document's operations
    // are the route table: each must be served, and no other method of its path.
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        // A path parameter (a catch-all included) gets any value.
        let concrete = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "x"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let documented: BTreeSet<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .filter(|k| METHODS.contains(k))
            .collect();
        assert!(!documented.is_empty(), "{path} has no operation");
        for method in ["get", "post", "put", "patch", "delete"] {
            let response = app
                .http
                .request(method.to_uppercase().parse().unwrap(), app.url(&concrete))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            if documented.contains(method) || path.starts_with("/auth/forward") {
                // Forward auth answers any method; the document shows GET.
                assert!(
                    status != StatusCode::METHOD_NOT_ALLOWED && !body.contains("No such endpoint."),
                    "{method} {path} is documented but not served: {status} {body}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is served but not documented"
                );
            }
        }
    }

    let mut operation_ids = BTreeSet::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let id = operation["operationId"].as_str().unwrap().to_owned();
            assert!(operation_ids.insert(id.clone()), "operationId {id} twice");
            let responses = operation["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path} has no responses");
            for (status, response) in responses {
                let response = resolve(&doc, response);
                assert!(
                    response["headers"]["X-Request-Id"]["required"] == true,
                    "{method} {path} {status}: X-Request-Id is not documented"
                );
            }
            // The /v1 operations that take no credential: registration, and the emailed links.
            let public = [
                "/v1/register",
                "/v1/password-reset",
                "/v1/password-reset/confirm",
                "/v1/verify-email",
            ];
            if path.starts_with("/v1/") && !public.contains(&path.as_str()) {
                // Every scope the operation needs (some need two, e.g. `admin` and
                // `users:write`), the same for an API key and for an access token.
                let scopes = &operation["security"][0]["bearer"];
                assert!(
                    scopes.as_array().is_some_and(|s| !s.is_empty()),
                    "{method} {path}: no scope"
                );
                assert_eq!(
                    operation["security"],
                    json!([{ "bearer": scopes }, { "oauth2": scopes }]),
                    "{method} {path}: bearer (API key or access token) with its scopes"
                );
                for status in ["401", "403", "429", "500", "503"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path}: no {status}"
                    );
                }
            }
        }
    }

    let mut references = Vec::new();
    every_ref(&doc, &mut references);
    assert!(!references.is_empty());
    for reference in &references {
        let pointer = reference.strip_prefix('#').expect("a local $ref");
        assert!(
            doc.pointer(pointer).is_some(),
            "{reference} does not resolve"
        );
    }
    drop_database(&app.database_url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describes_the_error_envelope_security_and_forms() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let doc = document(&app).await;

    // The envelope, with every code and status of the contract.
    let codes: BTreeSet<&str> = doc["components"]["schemas"]["Code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in [
        "INVALID_ARGUMENT",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "NOT_FOUND",
        "METHOD_NOT_ALLOWED",
        "ALREADY_EXISTS",
        "PAYLOAD_TOO_LARGE",
        "UNSUPPORTED_MEDIA_TYPE",
        "RESOURCE_EXHAUSTED",
        "INTERNAL",
        "UNAVAILABLE",
    ] {
        assert!(codes.contains(code), "{code} is not in the Code schema");
    }
    let responses = doc["components"]["responses"].as_object().unwrap();
    let statuses: BTreeSet<&str> = [
        "InvalidArgument",
        "Unauthenticated",
        "PermissionDenied",
        "NotFound",
        "MethodNotAllowed",
        "AlreadyExists",
        "PayloadTooLarge",
        "UnsupportedMediaType",
        "ResourceExhausted",
        "Internal",
        "Unavailable",
    ]
    .into_iter()
    .inspect(|name| {
        assert_eq!(
            responses[*name]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorEnvelope",
            "{name}"
        );
    })
    .collect();
    assert_eq!(statuses.len(), 11);
    assert_eq!(
        responses["Unauthenticated"]["headers"]["WWW-Authenticate"]["required"],
        true
    );
    assert_eq!(
        responses["ResourceExhausted"]["headers"]["Retry-After"]["required"],
        true
    );

    // Security schemes: bearer for /v1, HTTP Basic for OAuth clients, OAuth 2.0 flows with
    // this server's endpoints.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["client_basic"]["scheme"], "basic");
    assert_eq!(
        schemes["oauth2"]["flows"]["clientCredentials"]["tokenUrl"],
        format!("{}/oauth/token", app.base)
    );
    assert_eq!(
        schemes["oauth2"]["flows"]["authorizationCode"]["authorizationUrl"],
        format!("{}/oauth/authorize", app.base)
    );
    let scopes: BTreeSet<&str> = doc["components"]["schemas"]["Scope"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let known: BTreeSet<&str> = netapi_core::Scope::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(scopes, known);

    // The OAuth endpoints take form bodies; client authentication may be HTTP Basic.
    for path in ["/oauth/token", "/oauth/revoke", "/oauth/introspect"] {
        let operation = &doc["paths"][path]["post"];
        let content = operation["requestBody"]["content"].as_object().unwrap();
        assert_eq!(
            content.keys().collect::<Vec<_>>(),
            ["application/x-www-form-urlencoded"],
            "{path}"
        );
        assert_eq!(operation["security"], json!([{ "client_basic": [] }, {}]));
        for status in ["200", "400", "401"] {
            assert!(
                operation["responses"].get(status).is_some(),
                "{path} {status}"
            );
        }
    }
    let token_form = resolve(
        &doc,
        &doc["paths"]["/oauth/token"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
            ["schema"],
    );
    assert_eq!(token_form["required"], json!(["grant_type"]));
    let authorize = &doc["paths"]["/oauth/authorize"]["get"];
    let names: BTreeSet<&str> = authorize["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["in"], "query");
            p["name"].as_str().unwrap()
        })
        .collect();
    for name in [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    ] {
        assert!(names.contains(name), "authorize: no {name}");
    }
    for status in ["200", "303", "400"] {
        assert!(
            authorize["responses"].get(status).is_some(),
            "authorize {status}"
        );
    }
    drop_database(&app.database_url).await;
}

/// The property names of a response schema, and those it requires.
fn fields(doc: &Value, schema: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let schema = &doc["components"]["schemas"][schema];
    assert_eq!(schema["additionalProperties"], false, "{schema}");
    let properties = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let required = schema["required"]
        .as_array()
        .map(|r| r.iter().map(|n| n.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    (properties, required)
}

/// `value` has every required field of `schema` and no field the schema does not name.
fn assert_shape(doc: &Value, schema: &str, value: &Value) {
    let (properties, required) = fields(doc, schema);
    let keys: BTreeSet<String> = value.as_object().unwrap().keys().cloned().collect();
    assert!(
        keys.is_subset(&properties),
        "{schema}: the server sends {:?}, which the document does not name",
        keys.difference(&properties).collect::<Vec<_>>()
    );
    assert!(
        required.is_subset(&keys),
        "{schema}: the document requires {:?}, which the server does not send",
        required.difference(&keys).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_schemas_name_the_fields_the_server_sends() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let doc = document(&app).await;
    let admin = app.admin_key("admin@example.com").await;

    let registered = app
        .http
        .post(app.url("/v1/register"))
        .json(&json!({ "email": "ada@example.com", "password": "correct horse battery", "name": "Ada" }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    let registered: Value = registered.json().await.unwrap();
    assert_shape(&doc, "Registration", &registered);
    assert_shape(&doc, "User", &registered["user"]);
    assert_shape(&doc, "NewApiKey", &registered["api_key"]);

    let users: Value = app.get("/v1/users", &admin).await.json().await.unwrap();
    assert_shape(&doc, "UserList", &users);
    let keys: Value = app.get("/v1/api-keys", &admin).await.json().await.unwrap();
    assert_shape(&doc, "ApiKeyList", &keys);
    assert_shape(&doc, "ApiKey", &keys["api_keys"][0]);

    let client = app
        .post_json(
            "/v1/oauth-clients",
            &admin,
            json!({ "client_name": "App", "redirect_uris": ["https://app.example/cb"] }),
        )
        .await;
    assert_eq!(client.status(), StatusCode::CREATED);
    let client: Value = client.json().await.unwrap();
    assert_shape(&doc, "OAuthClient", &client);
    let clients: Value = app
        .get("/v1/oauth-clients", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_shape(&doc, "OAuthClientList", &clients);
    assert_shape(&doc, "OAuthClient", &clients["oauth_clients"][0]);

    let events: Value = app
        .get("/v1/audit-events", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_shape(&doc, "AuditEventList", &events);
    assert_shape(&doc, "AuditEvent", &events["audit_events"][0]);

    let error: Value = app.get("/v1/users/me", "nope").await.json().await.unwrap();
    assert_shape(&doc, "ErrorEnvelope", &error);
    assert_shape(&doc, "ErrorObject", &error["error"]);

    let service = app
        .post_json(
            "/v1/oauth-clients",
            &admin,
            json!({ "client_name": "Service", "grant_types": ["client_credentials"] }),
        )
        .await;
    let service: Value = service.json().await.unwrap();
    let token = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(
            service["client_id"].as_str().unwrap(),
            service["client_secret"].as_str(),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "users:read"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::OK);
    let token: Value = token.json().await.unwrap();
    assert_shape(&doc, "TokenResponse", &token);
    let introspection: Value = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth(
            service["client_id"].as_str().unwrap(),
            service["client_secret"].as_str(),
        )
        .form(&[("token", token["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_shape(&doc, "ActiveToken", &introspection);
    let refused: Value = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_shape(&doc, "OAuthError", &refused);
    drop_database(&app.database_url).await;
}

/// JSON Schema (so OpenAPI 3.1) counts `60.0` as the integer 60; the server reads it so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_number_written_with_a_fraction_is_an_integer() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let admin = app.admin_key("admin@example.com").await;
    let created = app
        .post_json(
            "/v1/api-keys",
            &admin,
            json!({ "name": "ci", "rate_limit_per_minute": 60.0 }),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["rate_limit_per_minute"], 60);

    // A fraction is still refused, naming the field; so is a repeated field.
    let fraction = app
        .post_json(
            "/v1/api-keys",
            &admin,
            json!({ "name": "ci", "rate_limit_per_minute": 60.5 }),
        )
        .await;
    assert_eq!(fraction.status(), StatusCode::BAD_REQUEST);
    let fraction: Value = fraction.json().await.unwrap();
    assert_eq!(
        fraction["error"]["details"][0]["field"],
        "rate_limit_per_minute"
    );
    let repeated = app
        .http
        .post(app.url("/v1/api-keys"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(r#"{"rate_limit_per_minute": 60.0, "name": "a", "name": "b"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(repeated.status(), StatusCode::BAD_REQUEST);
    drop_database(&app.database_url).await;
}

/// Whether `pointer` (`/user/id`) names a field that a body of `schema` always has: each step
/// a required property, through `$ref`s and `allOf` (a flattened struct).
fn always_has(doc: &Value, schema: &Value, pointer: &str) -> bool {
    let schema = resolve(doc, schema);
    let Some((field, rest)) = pointer
        .strip_prefix('/')
        .map(|p| p.split_once('/').unwrap_or((p, "")))
    else {
        return pointer.is_empty();
    };
    if let Some(parts) = schema["allOf"].as_array() {
        return parts.iter().any(|part| always_has(doc, part, pointer));
    }
    let required = schema["required"]
        .as_array()
        .is_some_and(|names| names.iter().any(|n| n == field));
    match schema["properties"].get(field) {
        Some(_) if required && rest.is_empty() => true,
        Some(property) if required => always_has(doc, property, &format!("/{rest}")),
        _ => false,
    }
}

/// Response links (what Schemathesis's stateful tests and client generators follow from a
/// created object to its own operations): each names an operation that exists, passes only
/// parameters of that operation's path, taken from a field the response always has; and
/// the link from a created resource, followed with the server's own answer, reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_links_lead_to_operations_on_what_was_created() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let doc = document(&app).await;
    let mut operations = std::collections::BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for operation in item.as_object().unwrap().values() {
            if let Some(id) = operation["operationId"].as_str() {
                assert!(
                    operations.insert(id.to_owned(), path.clone()).is_none(),
                    "operationId {id} is not unique"
                );
            }
        }
    }
    let mut followed = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(responses) = operation["responses"].as_object() else {
                continue;
            };
            for (status, response) in responses {
                let response = resolve(&doc, response);
                let Some(links) = response["links"].as_object() else {
                    continue;
                };
                let body = &response["content"]["application/json"]["schema"];
                for (name, link) in links {
                    let from = format!("{method} {path} {status} {name}");
                    // OpenAPI's spelling, which tools read (utoipa writes `operation_id`).
                    let target = link["operationId"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{from}: no operationId in {link}"));
                    let target_path = operations
                        .get(target)
                        .unwrap_or_else(|| panic!("{from}: no operation {target}"));
                    let parameters = link["parameters"].as_object().unwrap();
                    assert!(!parameters.is_empty(), "{from}");
                    for (parameter, expression) in parameters {
                        assert!(
                            target_path.contains(&format!("{{{parameter}}}")),
                            "{from}: {target_path} has no {{{parameter}}}"
                        );
                        let pointer = expression
                            .as_str()
                            .and_then(|e| e.strip_prefix("$response.body#"))
                            .unwrap_or_else(|| panic!("{from}: {expression}"));
                        assert!(
                            always_has(&doc, body, pointer),
                            "{from}: the response does not always have {pointer}"
                        );
                    }
                    let source = operation["operationId"].as_str().unwrap_or(path);
                    followed.insert(format!("{source} -> {target}"));
                }
            }
        }
    }
    for expected in [
        "createResource -> getResource",
        "createResource -> deleteResource",
        "createOAuthClient -> getOAuthClient",
        "createApiKey -> getApiKeyUsage",
        "register -> setGrant",
        "createWebhook -> listWebhookDeliveries",
    ] {
        assert!(followed.contains(expected), "{expected}: {followed:?}");
    }

    // Followed for real: the expression, read from the created resource, names it.
    let admin = app.admin_key("admin@example.com").await;
    let link = &doc["paths"]["/v1/resources"]["post"]["responses"]["201"]["links"]["getResource"];
    let pointer = link["parameters"]["id"]
        .as_str()
        .unwrap()
        .trim_start_matches("$response.body#");
    let created = app
        .post_json(
            "/v1/resources",
            &admin,
            json!({"identifier": "https://links.example.com", "name": "Links",
                   "scopes": [{"name": "links:read", "description": "Read"}]}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let id = created.pointer(pointer).and_then(Value::as_str).unwrap();
    let read = app.get(&format!("/v1/resources/{id}"), &admin).await;
    assert_eq!(read.status(), StatusCode::OK);
    let read: Value = read.json().await.unwrap();
    assert_eq!(read["identifier"], "https://links.example.com");
    drop_database(&app.database_url).await;
}

/// A body over `body_limit` is refused with 413 by every operation that takes one, and each
/// says so with the content type it answers in; an empty logout form is a valid logout request
/// (every parameter is optional) and is described as one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_as_documented() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let doc = document(&app).await;
    // The API reads no body before the credential is checked.
    let admin = app.admin_key("admin@example.com").await;
    let big = format!("a={}", "x".repeat(70 * 1024));
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(body) = operation.get("requestBody") else {
                continue;
            };
            let documented = resolve(&doc, &operation["responses"]["413"]);
            assert!(documented.is_object(), "{method} {path}: no 413");
            let content_type = body["content"].as_object().unwrap().keys().next().unwrap();
            // Path parameters filled with a well-formed id of no object.
            let url = path
                .split('/')
                .map(|part| if part.starts_with('{') { "x" } else { part })
                .collect::<Vec<_>>()
                .join("/");
            let answer = app
                .http
                .request(method.to_uppercase().parse().unwrap(), app.url(&url))
                .header("content-type", content_type)
                .bearer_auth(&admin)
                .body(big.clone())
                .send()
                .await
                .unwrap();
            if path == "/secret-scanning/github" && answer.status() == StatusCode::NOT_FOUND {
                // Off (404) unless configured, which this app is not.
                continue;
            }
            assert_eq!(
                answer.status(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "{method} {path}"
            );
            let answered = answer.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            let described = documented["content"].as_object().unwrap();
            assert!(
                described.keys().any(|t| answered.starts_with(t.as_str())),
                "{method} {path}: answered {answered}, documented {described:?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 60, "only {checked} operations take a body");

    let logout = &doc["paths"]["/oauth/logout"]["post"]["requestBody"];
    assert_eq!(logout["required"], json!(false), "{logout}");
    let form = resolve(
        &doc,
        &logout["content"]["application/x-www-form-urlencoded"]["schema"],
    );
    assert_eq!(form["properties"]["state"]["type"], "string", "{form}");
    let empty = app
        .http
        .post(app.url("/oauth/logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), StatusCode::OK);
    drop_database(&app.database_url).await;
}
