//! The waiting room and the gate of the booking endpoints (API.md
//! "Waiting queue", "Authentication" queue token). Helpers shared by the
//! files below live here.

mod admission;
mod connections;
mod events;
mod expiry;
mod gate;
mod issue;
mod leave;
mod reads;
mod status;
mod wire;

use fred::interfaces::{KeysInterface, SortedSetsInterface};
use futures_util::future::join_all;
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

use crate::helpers::{spawn_app_with, TestApp, TestConcert, TestConfig, TestUser};

fn config(active_max: u32) -> TestConfig {
    TestConfig {
        active_max,
        ..TestConfig::default()
    }
}

/// One slot, and a waiter not seen for a second is dropped.
fn quick_idle_config() -> TestConfig {
    TestConfig {
        active_max: 1,
        idle_timeout_seconds: 1,
        ..TestConfig::default()
    }
}

/// A server set up by `config` with one concert (ten seats) and `fans`
/// registered users, who hold no token yet.
async fn waiting_room(config: TestConfig, fans: usize) -> (TestApp, TestConcert, Vec<TestUser>) {
    let app = spawn_app_with(config).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, fans).await;
    (app, concert, fans)
}

async fn users(app: &TestApp, n: usize) -> Vec<TestUser> {
    join_all((0..n).map(|i| async move { app.create_user(&format!("fan{i}")).await })).await
}

/// Issues a token and returns (status code, body).
async fn issue(app: &TestApp, user: &TestUser, concert_id: i64) -> (StatusCode, Value) {
    let response = app.issue_token(user, concert_id).await;
    let status = response.status();
    (status, response.json().await.expect("json"))
}

/// Issues a new token and returns its body; asserts `201`.
async fn issue_new(app: &TestApp, user: &TestUser, concert_id: i64) -> Value {
    let (status, body) = issue(app, user, concert_id).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// The first `N` fans take a new token each, one after the other (so in
/// this arrival order); returns the tokens. Asserts each is `201`.
async fn line_up<const N: usize>(app: &TestApp, fans: &[TestUser], concert_id: i64) -> [String; N] {
    let mut tokens = Vec::with_capacity(N);
    for fan in &fans[..N] {
        tokens.push(token_of(&issue_new(app, fan, concert_id).await));
    }
    tokens.try_into().expect("one token per fan")
}

fn token_of(body: &Value) -> String {
    body["token"].as_str().expect("a token").to_owned()
}

/// `GET /v1/queue/tokens/{token}` with the owner's key; asserts `200`.
async fn status_as(app: &TestApp, user: &TestUser, token: &str) -> Value {
    let response = app.get(&format!("/v1/queue/tokens/{token}"), Some(user)).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

/// `DELETE /v1/queue/tokens/{token}` with a user key.
async fn leave(app: &TestApp, user: &TestUser, token: &str) -> Response {
    app.request(Method::DELETE, &format!("/v1/queue/tokens/{token}"))
        .bearer_auth(&user.key)
        .send()
        .await
        .expect("request sent")
}

/// `DELETE /v1/queue/tokens/{token}`; asserts `204`.
async fn leave_ok(app: &TestApp, user: &TestUser, token: &str) {
    assert_eq!(leave(app, user, token).await.status(), StatusCode::NO_CONTENT);
}

/// The Redis key of a concert's queue structure `name` (`q:wait`, `q:act`,
/// … as `lua/lib/concert.lua` lists them).
fn queue_key(app: &TestApp, concert_id: i64, name: &str) -> String {
    format!("{}{name}", app.redis.keys().concert(concert_id))
}

/// How many tokens of a concert hold a slot, read straight from Redis (no
/// sighting, no admission).
async fn active_slots(app: &TestApp, concert_id: i64) -> i64 {
    let key = queue_key(app, concert_id, "q:act");
    app.redis.client().zcard(key).await.expect("redis answers")
}

/// A token's state as the scripts keep it, read straight from Redis (no
/// sighting, no admission).
async fn stored_token(app: &TestApp, token: &str) -> Value {
    let concert_id: i64 = token.split('.').next().unwrap().parse().unwrap();
    let key = format!("{}t:{token}", app.redis.keys().concert(concert_id));
    let json: Option<String> = app.redis.client().get(key).await.expect("redis answers");
    serde_json::from_str(&json.expect("the token is stored")).expect("token json")
}

fn rfc3339_ms(value: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(value.as_str().expect("a time"))
        .expect("RFC 3339")
        .timestamp_millis()
}

/// Opens the event stream of a token (optionally with a user key) on a new
/// connection, as a browser's `EventSource` mostly does: the server writes
/// it beside hyper (`http::events`).
async fn open_events(app: &TestApp, token: &str, user: Option<&TestUser>) -> Response {
    app.get_on_new_connection(&wire::events_path(token), user).await
}
