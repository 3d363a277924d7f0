//! Users, their API keys and the prepaid wallet (API.md "Authentication"
//! user keys, "Users and wallet"). Helpers shared by the files below live
//! here.

mod auth;
mod charge;
mod history;
mod idempotency;
mod users;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{id_of, spawn_app, TestApp, TestUser};

/// A server and one user, alice, with `balance` charged (no charge when 0).
async fn with_alice(balance: i64) -> (TestApp, TestUser) {
    let app = spawn_app().await;
    let user = if balance > 0 {
        app.create_user_with("alice", balance).await
    } else {
        app.create_user("alice").await
    };
    (app, user)
}

/// The user buys seat 1 of a new concert whose seats cost `price`: an
/// active token, a hold, a payment. Returns the payment; asserts each step.
async fn buy_seat(app: &TestApp, user: &TestUser, price: i64) -> Value {
    let concert = app.create_simple_concert(10, price, 4).await;
    let token = app.active_token(user, concert.id).await;
    let hold = app.hold_ok(user, &token, concert.schedule_id, &[1]).await;
    app.pay_ok(user, &token, &id_of(&hold)).await
}

fn balance_path(user: &TestUser) -> String {
    format!("/v1/users/{}/balance", user.id)
}

fn charge_path(user: &TestUser) -> String {
    format!("/v1/users/{}/balance/charge", user.id)
}

fn history_path(user: &TestUser) -> String {
    format!("/v1/users/{}/balance/history", user.id)
}

/// The history entries the API shows, newest first.
async fn history(app: &TestApp, user: &TestUser, limit: Option<usize>) -> Vec<Value> {
    let path = match limit {
        Some(n) => format!("{}?limit={n}", history_path(user)),
        None => history_path(user),
    };
    let response = app.get(&path, Some(user)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    body["entries"].as_array().expect("entries").clone()
}

fn is_rfc3339(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
}
