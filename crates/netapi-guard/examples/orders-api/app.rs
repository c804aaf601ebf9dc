//! The orders API's routes: `GET /orders` needs `orders:read`, `POST /orders` needs
//! `orders:write`; both answer who called.

use axum::routing::get;
use axum::{Json, Router};
use netapi_guard::{Guard, GuardLayer, Principal, RequireScope, scope};
use serde_json::{Value, json};

scope!(
    /// See orders.
    pub OrdersRead = "orders:read"
);
scope!(
    /// Place orders.
    pub OrdersWrite = "orders:write"
);

/// The API, every route behind the guard.
pub fn router(guard: Guard) -> Router {
    Router::new()
        .route("/orders", get(list_orders).post(place_order))
        .layer(GuardLayer::new(guard))
}

async fn list_orders(RequireScope(caller, _): RequireScope<OrdersRead>) -> Json<Value> {
    who(&caller)
}

async fn place_order(RequireScope(caller, _): RequireScope<OrdersWrite>) -> Json<Value> {
    who(&caller)
}

fn who(caller: &Principal) -> Json<Value> {
    Json(json!({
        "subject": caller.subject,
        "credential": caller.credential,
        "scopes": caller.scopes,
    }))
}
