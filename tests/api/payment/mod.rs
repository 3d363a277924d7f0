//! Payments: what a payment does and refuses, idempotency, recovery of a
//! saga that crashed between its steps, and a full rush checked end to end
//! against Postgres (API.md "Payments"). Helpers shared by the files below
//! live here.

mod idempotency;
mod outcome;
mod rush;
mod saga;

use reqwest::{Method, Response};
use serde_json::{json, Value};
use ticketrush::payment::{begin_only, PaymentState};
use ticketrush::queue::QueueToken;
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser};

/// The price of a seat in most tests.
const PRICE: i64 = 150_000;

/// `POST /v1/payments` with an `Idempotency-Key`.
pub(crate) async fn pay_with_key(
    app: &TestApp,
    user: &TestUser,
    token: &str,
    reservation_id: &str,
    key: &str,
) -> Response {
    app.gated(Method::POST, "/v1/payments", user, token)
        .header("Idempotency-Key", key)
        .json(&json!({ "reservation_id": reservation_id }))
        .send()
        .await
        .expect("request sent")
}

/// `GET /v1/payments/{id}` as `user`.
async fn get_payment(app: &TestApp, user: Option<&TestUser>, id: &str) -> Response {
    app.get(&format!("/v1/payments/{id}"), user).await
}

/// The PAYMENT entries of the user's ledger, newest first.
async fn payment_entries(app: &TestApp, user: &TestUser) -> Vec<Value> {
    app.ledger(user)
        .await
        .into_iter()
        .filter(|e| e["type"] == "PAYMENT")
        .collect()
}

/// Runs step 1 of the saga (and nothing else), as a crashed server would.
async fn begin_payment_only(app: &TestApp, user: &TestUser, token: &str, reservation_id: &str) -> PaymentState {
    let token = QueueToken::parse(token).expect("a well-formed token");
    let reservation_id = Uuid::parse_str(reservation_id).expect("a uuid");
    begin_only(&app.redis, &token, user.id, &reservation_id)
        .await
        .expect("step 1 runs")
}
