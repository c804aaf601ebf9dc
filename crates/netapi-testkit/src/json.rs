//! Reading answers: JSON after the status, the `/v1` error envelope.

use reqwest::{Response, StatusCode};
use serde_json::Value;

/// Reads the body as JSON after checking the status.
pub async fn json_with(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Checks the contract's error envelope and returns it.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) -> Value {
    assert!(response.headers().contains_key("x-request-id"));
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body = json_with(response, status).await;
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(body["error"]["request_id"], request_id.as_str());
    body
}
