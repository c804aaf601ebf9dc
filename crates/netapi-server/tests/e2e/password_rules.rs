//! Password rules over HTTP (issue 11, item 19): a common password, or one containing the
//! email's local part, is refused at registration and on a change, naming the field.

use reqwest::StatusCode;
use serde_json::json;

use crate::e2e;
use crate::helpers::{TestApp, expect_error, json_with};

e2e!(common_and_personal_passwords_are_refused);

async fn common_and_personal_passwords_are_refused(app: TestApp) {
    let register = |email: &str, password: &str| {
        app.http
            .post(app.url("/v1/register"))
            .json(&json!({"email": email, "password": password, "name": "Grace"}))
            .send()
    };
    for (email, password, says) in [
        ("grace@example.com", "Password123", "common"),
        ("grace@example.com", "QWERTYUIOP", "common"),
        ("grace.hopper@example.com", "GRACE.HOPPER-1906", "email"),
    ] {
        let body = expect_error(
            register(email, password).await.expect("register"),
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        )
        .await;
        let detail = &body["error"]["details"][0];
        assert_eq!(detail["field"], "password", "{body}");
        assert!(body.to_string().contains(says), "{body}");
        // The refused password is not echoed.
        assert!(!body.to_string().contains(password), "{body}");
    }
    // Nothing was created: the email is still free.
    let created = json_with(
        register("grace.hopper@example.com", "cobol compilers 1959")
            .await
            .expect("register"),
        StatusCode::CREATED,
    )
    .await;
    let key = created["api_key"]["key"].as_str().expect("key");
    let id = created["user"]["id"].as_str().expect("id");

    // The same rules on a change of password.
    let change = app
        .http
        .patch(app.url(&format!("/v1/users/{id}")))
        .bearer_auth(key)
        .json(&json!({"password": "iloveyou", "current_password": "cobol compilers 1959"}))
        .send()
        .await
        .expect("patch");
    let body = expect_error(change, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").await;
    assert_eq!(body["error"]["details"][0]["field"], "password", "{body}");
}
