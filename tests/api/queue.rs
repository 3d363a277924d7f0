//! The waiting room and the gate of the booking endpoints (API.md
//! "Waiting queue", "Authentication" queue token).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fred::interfaces::{KeysInterface, SortedSetsInterface};
use futures_util::future::join_all;
use futures_util::{Stream, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, eventually, spawn_app_with, TestApp, TestConcert, TestConfig, TestUser};

fn config(active_max: u32) -> TestConfig {
    TestConfig {
        active_max,
        ..TestConfig::default()
    }
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
async fn leave(app: &TestApp, user: &TestUser, token: &str) -> reqwest::Response {
    app.request(Method::DELETE, &format!("/v1/queue/tokens/{token}"))
        .bearer_auth(&user.key)
        .send()
        .await
        .expect("request sent")
}

/// How many tokens of a concert hold a slot, read straight from Redis (no
/// sighting, no admission).
async fn active_slots(app: &TestApp, concert_id: i64) -> i64 {
    let key = format!("{}q:act", app.redis.keys().concert(concert_id));
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

async fn users(app: &TestApp, n: usize) -> Vec<TestUser> {
    join_all((0..n).map(|i| async move { app.create_user(&format!("fan{i}")).await })).await
}

fn rfc3339_ms(value: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(value.as_str().expect("a time"))
        .expect("RFC 3339")
        .timestamp_millis()
}

/// Reads Server-Sent Events from a response body.
struct EventStream {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buffer: Vec<u8>,
}

/// One event: its name and its JSON data.
#[derive(Debug)]
struct Event {
    name: String,
    data: Value,
}

impl EventStream {
    fn new(response: reqwest::Response) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            buffer: Vec::new(),
        }
    }

    /// The next event (comments skipped); `None` once the stream has ended.
    /// Panics when nothing arrives within `limit`.
    async fn next(&mut self, limit: Duration) -> Option<Event> {
        tokio::time::timeout(limit, self.read())
            .await
            .unwrap_or_else(|_| panic!("no event or end of stream within {limit:?}"))
    }

    async fn read(&mut self) -> Option<Event> {
        loop {
            while let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let text = String::from_utf8(block).expect("events are UTF-8");
                let mut name = String::from("message");
                let mut data = String::new();
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if !data.is_empty() {
                    let data = serde_json::from_str(&data).expect("event data is JSON");
                    return Some(Event { name, data });
                }
            }
            match self.body.next().await {
                Some(chunk) => self.buffer.extend_from_slice(&chunk.expect("the stream reads")),
                None => {
                    assert!(self.buffer.iter().all(|b| b.is_ascii_whitespace()), "a cut-off event");
                    return None;
                }
            }
        }
    }
}

/// Opens the event stream of a token (optionally with a user key).
async fn open_events(app: &TestApp, token: &str, user: Option<&TestUser>) -> reqwest::Response {
    app.get(&format!("/v1/queue/tokens/{token}/events"), user).await
}

// ---------------------------------------------------------------- issue

#[tokio::test]
async fn a_token_issued_into_an_empty_queue_is_201_and_active_at_once() {
    // Arrange
    let app = spawn_app_with(TestConfig::default()).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let user = app.create_user("alice").await;

    // Act
    let (status, body) = issue(&app, &user, concert.id).await;

    // Assert
    assert_eq!(status, StatusCode::CREATED);
    let token = token_of(&body);
    assert!(token.len() <= 64);
    let (concert_part, secret) = token.split_once('.').expect("<concert>.<secret>");
    assert_eq!(concert_part, concert.id.to_string());
    assert_eq!(secret.len(), 22, "22 base64url characters: 132 random bits");
    assert!(secret
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(body["user_id"], user.id);
    assert_eq!(body["concert_id"], concert.id);
    assert_eq!(body["status"], "ACTIVE");
    assert_eq!(body["position"], 0);
    assert_eq!(body["estimated_wait_seconds"], 0);
    let issued = rfc3339_ms(&body["issued_at"]);
    let until = rfc3339_ms(&body["active_until"]);
    let lifetime = until - issued;
    assert!(
        (599_000..=601_000).contains(&lifetime),
        "active for QUEUE_ACTIVE_TTL_SECONDS: {lifetime} ms"
    );
}

#[tokio::test]
async fn tokens_of_different_users_differ() {
    // Arrange
    let app = spawn_app_with(TestConfig::default()).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 20).await;

    // Act
    let bodies = join_all(fans.iter().map(|u| issue_new(&app, u, concert.id))).await;

    // Assert
    let mut tokens: Vec<String> = bodies.iter().map(token_of).collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 20);
}

#[tokio::test]
async fn with_two_slots_the_third_and_fourth_users_wait_at_positions_one_and_two() {
    // Arrange
    let app = spawn_app_with(config(2)).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 4).await;

    // Act
    let mut bodies = Vec::new();
    for fan in &fans {
        bodies.push(issue_new(&app, fan, concert.id).await);
    }

    // Assert
    for body in &bodies[..2] {
        assert_eq!(body["status"], "ACTIVE", "{body}");
        assert_eq!(body["position"], 0);
    }
    for (body, position) in bodies[2..].iter().zip([1, 2]) {
        assert_eq!(body["status"], "WAITING", "{body}");
        assert_eq!(body["position"], position);
        assert!(body["estimated_wait_seconds"].as_i64().expect("an integer") >= 0);
        assert!(body["active_until"].is_null());
        assert!(body["issued_at"].is_string());
    }
    // A status read agrees.
    let third = status_as(&app, &fans[2], &token_of(&bodies[2])).await;
    let fourth = app.token_status(&token_of(&bodies[3])).await;
    assert_eq!(
        (third["status"].as_str(), third["position"].as_i64()),
        (Some("WAITING"), Some(1))
    );
    assert_eq!(
        (fourth["status"].as_str(), fourth["position"].as_i64()),
        (Some("WAITING"), Some(2))
    );
    assert_eq!(active_slots(&app, concert.id).await, 2);
}

#[tokio::test]
async fn reissuing_returns_200_with_the_same_token_and_the_same_place() {
    // Arrange
    let app = spawn_app_with(config(1)).await;
    let second = app.second_instance().await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 3).await;
    let mut first = Vec::new();
    for fan in &fans {
        first.push(issue_new(&app, fan, concert.id).await);
    }

    for (fan, before) in fans.iter().zip(&first).rev() {
        // Act
        let (status, again) = issue(&second, fan, concert.id).await;

        // Assert
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again["token"], before["token"]);
        assert_eq!(again["status"], before["status"]);
        assert_eq!(again["position"], before["position"]);
        assert_eq!(again["issued_at"], before["issued_at"]);
        assert_eq!(again["active_until"], before["active_until"]);
    }
    let positions: Vec<i64> = first.iter().map(|b| b["position"].as_i64().unwrap()).collect();
    assert_eq!(positions, vec![0, 1, 2]);
}

#[tokio::test]
async fn concurrent_issues_by_one_user_on_two_instances_create_exactly_one_token() {
    // Arrange
    let app = spawn_app_with(config(1)).await;
    let second = app.second_instance().await;
    let servers = [&app, &second];
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 2).await;
    app.active_token(&fans[0], concert.id).await;
    let fan = &fans[1];

    // Act
    let answers = join_all((0..10).map(|i| issue(servers[i % 2], fan, concert.id))).await;

    // Assert
    let created = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    let again = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!((created, again), (1, 9));
    let token = token_of(&answers[0].1);
    for (_, body) in &answers {
        assert_eq!(token_of(body), token);
        assert_eq!(body["status"], "WAITING");
        assert_eq!(body["position"], 1);
    }
    let waiting_key = format!("{}q:wait", app.redis.keys().concert(concert.id));
    let waiting: i64 = app.redis.client().zcard(waiting_key).await.unwrap();
    assert_eq!(waiting, 1, "one place in line, not ten");
}

#[tokio::test]
async fn a_token_for_an_unknown_concert_is_404_concert_not_found() {
    // Arrange
    let app = spawn_app_with(TestConfig::default()).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let user = app.create_user("alice").await;

    for concert_id in [concert.id + 1, 999_999, 0, -1] {
        // Act
        let response = app.issue_token(&user, concert_id).await;

        // Assert
        assert_problem(response, 404, "CONCERT_NOT_FOUND").await;
    }
    assert_eq!(
        issue(&app, &user, concert.id).await.0,
        StatusCode::CREATED,
        "no token was left behind"
    );
}

#[tokio::test]
async fn issuing_a_token_without_a_valid_user_key_is_401() {
    // Arrange
    let app = spawn_app_with(TestConfig::default()).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let forged = TestUser {
        id: 1,
        key: format!("trk_1_{}", "A".repeat(43)),
    };

    // Act
    let anonymous = app
        .post("/v1/queue/tokens", &json!({ "concert_id": concert.id }), None)
        .await;
    let unknown = app.issue_token(&forged, concert.id).await;

    // Assert
    assert_problem(anonymous, 401, "UNAUTHENTICATED").await;
    assert_problem(unknown, 401, "UNAUTHENTICATED").await;
    assert_eq!(active_slots(&app, concert.id).await, 0);
}

#[tokio::test]
async fn issuing_a_token_with_a_bad_body_is_400() {
    // Arrange
    let app = spawn_app_with(TestConfig::default()).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let user = app.create_user("alice").await;
    let as_string = format!(r#"{{"concert_id": "{}"}}"#, concert.id);

    for body in [
        r#"{}"#,
        as_string.as_str(),
        r#"{"concert_id": 1.5}"#,
        r#"{"concert_id": null}"#,
        "[1]",
        "",
        "{",
    ] {
        // Act
        let response = app
            .request(Method::POST, "/v1/queue/tokens")
            .bearer_auth(&user.key)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();

        // Assert
        assert_problem(response, 400, "MALFORMED_REQUEST").await;
    }
    assert_eq!(active_slots(&app, concert.id).await, 0);
}

// ---------------------------------------------------------------- FIFO and capacity

#[tokio::test]
async fn concurrent_arrivals_on_two_instances_are_admitted_in_strict_arrival_order() {
    // Arrange: one slot, thirty fans arriving at once through two instances.
    let app = spawn_app_with(config(1)).await;
    let second = app.second_instance().await;
    let servers = [&app, &second];
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 30).await;
    let issued = join_all(
        fans.iter()
            .enumerate()
            .map(|(i, fan)| async move { (fan.clone(), issue_new(servers[i % 2], fan, concert.id).await) }),
    )
    .await;
    let (active, mut waiting): (Vec<_>, Vec<_>) = issued.into_iter().partition(|(_, b)| b["status"] == "ACTIVE");
    assert_eq!(active.len(), 1, "exactly one fan got the only slot");
    waiting.sort_by_key(|(_, b)| b["position"].as_i64().unwrap());
    let positions: Vec<i64> = waiting.iter().map(|(_, b)| b["position"].as_i64().unwrap()).collect();
    assert_eq!(
        positions,
        (1..=29).collect::<Vec<i64>>(),
        "arrival positions are a permutation"
    );
    let mut holder = (active[0].0.clone(), token_of(&active[0].1));

    for (round, (fan, body)) in waiting.iter().enumerate() {
        // Act: the slot holder leaves.
        let left = leave(servers[round % 2], &holder.0, &holder.1).await;
        assert_eq!(left.status(), StatusCode::NO_CONTENT);

        // Assert: the next in arrival order holds the slot, everyone behind
        // moved up by exactly one.
        let next = status_as(servers[(round + 1) % 2], fan, &token_of(body)).await;
        assert_eq!(next["status"], "ACTIVE", "round {round}: {next}");
        let behind = join_all(waiting[round + 1..].iter().map(|(f, b)| async move {
            (
                b["position"].as_i64().unwrap(),
                status_as(servers[0], f, &token_of(b)).await,
            )
        }))
        .await;
        for (original, now) in behind {
            assert_eq!(now["status"], "WAITING");
            assert_eq!(
                now["position"].as_i64().unwrap(),
                original - round as i64 - 1,
                "round {round}"
            );
        }
        assert_eq!(active_slots(&app, concert.id).await, 1);
        holder = (fan.clone(), token_of(body));
    }
}

#[tokio::test]
async fn the_active_slots_are_never_exceeded_while_fans_churn_on_two_instances() {
    // Arrange
    const MAX: i64 = 5;
    let app = Arc::new(spawn_app_with(config(MAX as u32)).await);
    let second = Arc::new(app.second_instance().await);
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 150).await;
    let done = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicI64::new(0));
    let samples = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (app, done, most, samples) = (app.clone(), done.clone(), most.clone(), samples.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let active = active_slots(&app, concert.id).await;
                assert!(active <= MAX, "{active} tokens active at once");
                most.fetch_max(active, Ordering::Relaxed);
                samples.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        })
    };

    // Act: every fan issues, polls and leaves at random, three times over;
    // a fan keeps the token of its last round (if it did not leave).
    let churn = fans.iter().enumerate().map(|(i, fan)| {
        let (app, second, fan) = (app.clone(), second.clone(), fan.clone());
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(i as u64);
            let mut kept = None;
            for _ in 0..3 {
                let server = if rng.random_bool(0.5) { &app } else { &second };
                let (_, body) = issue(server, &fan, concert.id).await;
                let token = token_of(&body);
                let mut status = body["status"].as_str().unwrap().to_owned();
                for _ in 0..rng.random_range(0..4) {
                    tokio::time::sleep(Duration::from_millis(rng.random_range(5..40))).await;
                    let server = if rng.random_bool(0.5) { &app } else { &second };
                    status = status_as(server, &fan, &token).await["status"]
                        .as_str()
                        .unwrap()
                        .to_owned();
                }
                let leave_chance = if status == "ACTIVE" { 0.7 } else { 0.3 };
                if rng.random_bool(leave_chance) {
                    let server = if rng.random_bool(0.5) { &app } else { &second };
                    assert_eq!(leave(server, &fan, &token).await.status(), StatusCode::NO_CONTENT);
                    kept = None;
                } else {
                    kept = Some(token);
                }
            }
            (fan, kept)
        })
    });
    let results: Vec<(TestUser, Option<String>)> = join_all(churn).await.into_iter().map(|r| r.unwrap()).collect();
    done.store(true, Ordering::Relaxed);
    sampler.await.expect("the sampler never saw more than the maximum");

    // Assert: capacity was reached (so the check meant something) and never
    // exceeded; then everyone still in line gets a slot as slots free.
    assert_eq!(most.load(Ordering::Relaxed), MAX);
    assert!(samples.load(Ordering::Relaxed) > 10);
    let mut remaining: HashMap<String, TestUser> = results
        .into_iter()
        .filter_map(|(fan, kept)| kept.map(|t| (t, fan)))
        .collect();
    assert!(
        remaining.len() > MAX as usize,
        "some fans are still waiting: {}",
        remaining.len()
    );
    let mut admitted = 0;
    for _ in 0..200 {
        if remaining.is_empty() {
            break;
        }
        let statuses = join_all(remaining.iter().map(|(t, f)| {
            let app = app.clone();
            async move {
                (
                    t.clone(),
                    status_as(&app, f, t).await["status"].as_str().unwrap().to_owned(),
                )
            }
        }))
        .await;
        let active: Vec<&String> = statuses.iter().filter(|(_, s)| s == "ACTIVE").map(|(t, _)| t).collect();
        assert!(
            statuses.iter().all(|(_, s)| s != "EXPIRED"),
            "nobody in line was dropped"
        );
        assert_eq!(
            active.len(),
            remaining.len().min(MAX as usize),
            "every free slot is filled"
        );
        assert!(active_slots(&app, concert.id).await <= MAX);
        for token in active {
            let fan = remaining.remove(token).unwrap();
            assert_eq!(leave(&second, &fan, token).await.status(), StatusCode::NO_CONTENT);
            admitted += 1;
        }
    }
    assert!(remaining.is_empty(), "{} fans were never admitted", remaining.len());
    assert!(admitted > MAX);
    assert_eq!(active_slots(&app, concert.id).await, 0);
}

// ---------------------------------------------------------------- idle and expiry

#[tokio::test]
async fn a_waiter_not_seen_for_the_idle_timeout_is_dropped_and_the_next_one_gets_the_slot() {
    // Arrange: one slot; B waits without polling, C waits and keeps polling.
    let app = spawn_app_with(TestConfig {
        active_max: 1,
        idle_timeout_seconds: 1,
        ..TestConfig::default()
    })
    .await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 3).await;
    let holder = token_of(&issue_new(&app, &fans[0], concert.id).await);
    let ghost = token_of(&issue_new(&app, &fans[1], concert.id).await);
    let keen = issue_new(&app, &fans[2], concert.id).await;
    assert_eq!(keen["position"], 2);
    let keen = token_of(&keen);

    // Act
    for _ in 0..9 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(app.token_status(&keen).await["status"], "WAITING");
    }
    let dropped = app.get(&format!("/v1/queue/tokens/{ghost}"), None).await;

    // Assert
    assert_eq!(dropped.status(), StatusCode::OK);
    let dropped: Value = dropped.json().await.unwrap();
    assert_eq!(dropped["status"], "EXPIRED", "{dropped}");
    assert_eq!(dropped["position"], 0);
    let keen_now = app.token_status(&keen).await;
    assert_eq!(keen_now["position"], 1, "the dropped waiter no longer counts");
    let holder_now = app.token_status(&holder).await;
    assert_eq!(holder_now["status"], "ACTIVE", "the idle timeout is for waiters only");
    assert_eq!(leave(&app, &fans[0], &holder).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.token_status(&keen).await["status"], "ACTIVE");
    let ghost_now = app.token_status(&ghost).await;
    assert_eq!(ghost_now["status"], "EXPIRED");
    assert!(
        ghost_now["active_until"].is_null(),
        "the dropped token was never activated"
    );
    assert!(stored_token(&app, &ghost)
        .await
        .get("activated_at")
        .is_none_or(Value::is_null));
}

#[tokio::test]
async fn an_active_token_expires_after_its_lifetime_without_polls_and_the_next_waiter_is_admitted() {
    // Arrange
    let app = spawn_app_with(TestConfig {
        active_max: 1,
        active_ttl_seconds: 1,
        ..TestConfig::default()
    })
    .await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 2).await;
    let first = issue_new(&app, &fans[0], concert.id).await;
    let next = token_of(&issue_new(&app, &fans[1], concert.id).await);
    let first_until = rfc3339_ms(&first["active_until"]);
    let first = token_of(&first);

    // Act: nobody polls; only the sweeper runs.
    let (server, waiter) = (&app, &next);
    let promoted = eventually(Duration::from_secs(3), || async move {
        stored_token(server, waiter).await["activated_at"].is_i64()
    })
    .await;

    // Assert
    assert!(promoted, "the sweeper admitted the next waiter");
    let expired = stored_token(&app, &first).await;
    assert_eq!(expired["status"], "EXPIRED");
    let activated_at = stored_token(&app, &next).await["activated_at"].as_i64().unwrap();
    assert!(
        activated_at >= first_until,
        "the slot was given only after the first token expired"
    );
    assert_eq!(app.token_status(&first).await["status"], "EXPIRED");
}

#[tokio::test]
async fn an_active_token_past_its_lifetime_is_refused_by_the_gate_even_before_any_sweep() {
    // Arrange: no sweeper, a one-second lifetime.
    let app = spawn_app_with(TestConfig {
        active_ttl_seconds: 1,
        background: ticketrush::Background {
            writebehind: false,
            sweeper: false,
        },
        ..TestConfig::default()
    })
    .await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let user = app.create_user("alice").await;
    let token = app.active_token(&user, concert.id).await;
    assert_eq!(
        schedules(&app, &user, &token, concert.id).await.status(),
        StatusCode::OK
    );

    // Act
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let late = schedules(&app, &user, &token, concert.id).await;

    // Assert
    assert_problem(late, 401, "QUEUE_TOKEN_INVALID").await;
    assert_eq!(app.token_status(&token).await["status"], "EXPIRED");
}

// ---------------------------------------------------------------- leave and reads

#[tokio::test]
async fn leaving_is_204_expires_the_token_and_admits_the_next_waiter_at_once() {
    // Arrange
    let app = spawn_app_with(config(1)).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 3).await;
    let holder = token_of(&issue_new(&app, &fans[0], concert.id).await);
    let next = token_of(&issue_new(&app, &fans[1], concert.id).await);
    let last = token_of(&issue_new(&app, &fans[2], concert.id).await);

    // Act
    let response = leave(&app, &fans[0], &holder).await;

    // Assert
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.bytes().await.unwrap().is_empty());
    let left = stored_token(&app, &holder).await;
    assert_eq!(left["status"], "EXPIRED");
    let promoted = stored_token(&app, &next).await;
    assert_eq!(
        promoted["status"], "ACTIVE",
        "admitted by the leave itself, before any read"
    );
    assert_eq!(app.token_status(&holder).await["status"], "EXPIRED");
    let next_now = app.token_status(&next).await;
    assert_eq!(
        (next_now["status"].as_str(), next_now["position"].as_i64()),
        (Some("ACTIVE"), Some(0))
    );
    assert!(next_now["active_until"].is_string());
    assert_eq!(app.token_status(&last).await["position"], 1);
    assert_eq!(active_slots(&app, concert.id).await, 1);
}

#[tokio::test]
async fn a_waiter_who_leaves_frees_its_place_in_line() {
    // Arrange
    let app = spawn_app_with(config(1)).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 3).await;
    let holder = token_of(&issue_new(&app, &fans[0], concert.id).await);
    let quitter = token_of(&issue_new(&app, &fans[1], concert.id).await);
    let last = token_of(&issue_new(&app, &fans[2], concert.id).await);

    // Act
    assert_eq!(leave(&app, &fans[1], &quitter).await.status(), StatusCode::NO_CONTENT);

    // Assert
    assert_eq!(app.token_status(&quitter).await["status"], "EXPIRED");
    assert_eq!(app.token_status(&last).await["position"], 1);
    assert_eq!(app.token_status(&holder).await["status"], "ACTIVE");
    assert_eq!(leave(&app, &fans[0], &holder).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.token_status(&last).await["status"], "ACTIVE");
    assert_eq!(app.token_status(&quitter).await["status"], "EXPIRED");
}

#[tokio::test]
async fn reissuing_after_leaving_gives_a_new_token_at_the_back_of_the_line() {
    // Arrange
    let app = spawn_app_with(config(1)).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 3).await;
    issue_new(&app, &fans[0], concert.id).await;
    let old = token_of(&issue_new(&app, &fans[1], concert.id).await);
    issue_new(&app, &fans[2], concert.id).await;
    assert_eq!(leave(&app, &fans[1], &old).await.status(), StatusCode::NO_CONTENT);

    // Act
    let (status, again) = issue(&app, &fans[1], concert.id).await;

    // Assert
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(token_of(&again), old);
    assert_eq!(again["status"], "WAITING");
    assert_eq!(again["position"], 2);
    assert_eq!(app.token_status(&old).await["status"], "EXPIRED");
}

#[tokio::test]
async fn expired_tokens_read_as_expired_for_an_hour_then_are_404() {
    // Arrange
    let app = spawn_app_with(TestConfig::default()).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let user = app.create_user("alice").await;
    let token = app.active_token(&user, concert.id).await;
    let key = format!("{}t:{token}", app.redis.keys().concert(concert.id));
    let live_ttl: i64 = app.redis.client().ttl(&key).await.unwrap();
    assert_eq!(live_ttl, -1, "a live token never times out on its own");
    assert_eq!(leave(&app, &user, &token).await.status(), StatusCode::NO_CONTENT);

    // Act
    let kept_for: i64 = app.redis.client().ttl(&key).await.unwrap();
    let read = app.get(&format!("/v1/queue/tokens/{token}"), None).await;

    // Assert
    assert!((3_590..=3_600).contains(&kept_for), "kept for an hour: {kept_for} s");
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.json::<Value>().await.unwrap()["status"], "EXPIRED");
    // The hour passes.
    let _: bool = app.redis.client().pexpire(&key, 1, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_problem(
        app.get(&format!("/v1/queue/tokens/{token}"), None).await,
        404,
        "TOKEN_NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn leaving_with_another_users_key_is_403_and_keeps_the_token() {
    // Arrange
    let app = spawn_app_with(config(1)).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 2).await;
    let holder = token_of(&issue_new(&app, &fans[0], concert.id).await);
    let waiter = token_of(&issue_new(&app, &fans[1], concert.id).await);

    // Act
    let response = leave(&app, &fans[1], &holder).await;

    // Assert
    assert_problem(response, 403, "FORBIDDEN").await;
    assert_eq!(app.token_status(&holder).await["status"], "ACTIVE");
    assert_eq!(app.token_status(&waiter).await["position"], 1);
}

#[tokio::test]
async fn leaving_without_a_user_key_is_401() {
    // Arrange
    let app = spawn_app_with(TestConfig::default()).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let user = app.create_user("alice").await;
    let token = app.active_token(&user, concert.id).await;

    // Act
    let response = app
        .request(Method::DELETE, &format!("/v1/queue/tokens/{token}"))
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 401, "UNAUTHENTICATED").await;
    assert_eq!(app.token_status(&token).await["status"], "ACTIVE");
}

#[tokio::test]
async fn unknown_or_malformed_tokens_are_404_token_not_found() {
    // Arrange
    let app = spawn_app_with(TestConfig::default()).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let user = app.create_user("alice").await;
    let real = app.active_token(&user, concert.id).await;
    let unknown = format!("{}.{}", concert.id, "A".repeat(22));
    let other_concert = format!("{}.{}", concert.id + 7, &real[real.len() - 22..]);

    for token in [
        unknown.as_str(),
        other_concert.as_str(),
        "nonsense",
        "1.short",
        &"x".repeat(70),
    ] {
        // Act
        let read = app.get(&format!("/v1/queue/tokens/{token}"), None).await;
        let read_as_user = app.get(&format!("/v1/queue/tokens/{token}"), Some(&user)).await;
        let stream = open_events(&app, token, None).await;
        let left = leave(&app, &user, token).await;

        // Assert
        assert_problem(read, 404, "TOKEN_NOT_FOUND").await;
        assert_problem(read_as_user, 404, "TOKEN_NOT_FOUND").await;
        assert_problem(stream, 404, "TOKEN_NOT_FOUND").await;
        assert_problem(left, 404, "TOKEN_NOT_FOUND").await;
    }
    assert_eq!(app.token_status(&real).await["status"], "ACTIVE");
}

#[tokio::test]
async fn a_token_reads_with_no_key_or_its_owners_key_but_not_another_users() {
    // Arrange
    let app = spawn_app_with(TestConfig::default()).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let owner = app.create_user("alice").await;
    let stranger = app.create_user("mallory").await;
    let token = app.active_token(&owner, concert.id).await;

    // Act
    let anonymous = app.get(&format!("/v1/queue/tokens/{token}"), None).await;
    let as_owner = app.get(&format!("/v1/queue/tokens/{token}"), Some(&owner)).await;
    let as_stranger = app.get(&format!("/v1/queue/tokens/{token}"), Some(&stranger)).await;
    let bad_key = app
        .request(Method::GET, &format!("/v1/queue/tokens/{token}"))
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(anonymous.status(), StatusCode::OK);
    assert_eq!(as_owner.status(), StatusCode::OK);
    let body: Value = as_owner.json().await.unwrap();
    assert_eq!(body["token"], token.as_str());
    assert_eq!(body["user_id"], owner.id);
    assert_eq!(body["status"], "ACTIVE");
    assert_problem(as_stranger, 403, "FORBIDDEN").await;
    assert_problem(bad_key, 401, "UNAUTHENTICATED").await;
}

#[tokio::test]
async fn paying_expires_the_payers_token_and_admits_the_next_waiter() {
    // Arrange
    let app = spawn_app_with(config(1)).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let buyer = app.create_user_with("buyer", 10_000).await;
    let waiter = app.create_user("waiter").await;
    let token = app.active_token(&buyer, concert.id).await;
    let next = token_of(&issue_new(&app, &waiter, concert.id).await);
    let hold: Value = app
        .hold(&buyer, &token, concert.schedule_id, &[1])
        .await
        .json()
        .await
        .unwrap();

    // Act
    let paid = app.pay(&buyer, &token, hold["id"].as_str().unwrap()).await;

    // Assert
    assert_eq!(paid.status(), StatusCode::CREATED);
    assert_eq!(stored_token(&app, &token).await["status"], "EXPIRED");
    assert_eq!(
        stored_token(&app, &next).await["status"],
        "ACTIVE",
        "admitted by the payment itself"
    );
    assert_eq!(app.token_status(&token).await["status"], "EXPIRED");
    let (status, fresh) = issue(&app, &buyer, concert.id).await;
    assert_eq!(status, StatusCode::CREATED, "the payer can queue again");
    assert_eq!(fresh["status"], "WAITING");
}

// ---------------------------------------------------------------- event stream

#[tokio::test]
async fn the_event_stream_sends_the_current_state_then_activation_and_ends() {
    // Arrange
    let app = spawn_app_with(config(1)).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 2).await;
    let holder = token_of(&issue_new(&app, &fans[0], concert.id).await);
    let waiter = token_of(&issue_new(&app, &fans[1], concert.id).await);

    // Act
    let response = open_events(&app, &waiter, None).await;

    // Assert
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/event-stream"), "{content_type}");
    let mut events = EventStream::new(response);
    let first = events.next(Duration::from_secs(2)).await.expect("a first event");
    assert_eq!(first.name, "status");
    assert_eq!(first.data["token"], waiter.as_str());
    assert_eq!(first.data["user_id"], fans[1].id);
    assert_eq!(first.data["concert_id"], concert.id);
    assert_eq!(first.data["status"], "WAITING");
    assert_eq!(first.data["position"], 1);
    assert!(first.data["issued_at"].is_string());

    assert_eq!(leave(&app, &fans[0], &holder).await.status(), StatusCode::NO_CONTENT);
    let activation = loop {
        let event = events.next(Duration::from_secs(2)).await.expect("an activation event");
        assert_eq!(event.name, "status");
        if event.data["status"] != "WAITING" {
            break event;
        }
    };
    assert_eq!(activation.data["status"], "ACTIVE", "{:?}", activation.data);
    assert_eq!(activation.data["position"], 0);
    assert_eq!(activation.data["token"], waiter.as_str());
    assert!(activation.data["active_until"].is_string());
    assert!(
        events.next(Duration::from_secs(2)).await.is_none(),
        "the stream ends after ACTIVE"
    );
}

#[tokio::test]
async fn the_event_stream_of_an_active_or_expired_token_sends_one_event_and_ends() {
    // Arrange
    let app = spawn_app_with(TestConfig::default()).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 2).await;
    let active = app.active_token(&fans[0], concert.id).await;
    let expired = app.active_token(&fans[1], concert.id).await;
    assert_eq!(leave(&app, &fans[1], &expired).await.status(), StatusCode::NO_CONTENT);

    for (token, status) in [(&active, "ACTIVE"), (&expired, "EXPIRED")] {
        // Act
        let response = open_events(&app, token, None).await;

        // Assert
        assert_eq!(response.status(), StatusCode::OK);
        let mut events = EventStream::new(response);
        let only = events.next(Duration::from_secs(2)).await.expect("one event");
        assert_eq!(only.name, "status");
        assert_eq!(only.data["status"], status);
        assert!(events.next(Duration::from_secs(2)).await.is_none());
    }
}

#[tokio::test]
async fn the_event_stream_of_a_waiter_who_leaves_sends_expired_and_ends() {
    // Arrange
    let app = spawn_app_with(config(1)).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 2).await;
    issue_new(&app, &fans[0], concert.id).await;
    let waiter = token_of(&issue_new(&app, &fans[1], concert.id).await);
    let mut events = EventStream::new(open_events(&app, &waiter, None).await);
    assert_eq!(
        events.next(Duration::from_secs(2)).await.unwrap().data["status"],
        "WAITING"
    );

    // Act
    assert_eq!(leave(&app, &fans[1], &waiter).await.status(), StatusCode::NO_CONTENT);

    // Assert
    let last = events.next(Duration::from_secs(3)).await.expect("an EXPIRED event");
    assert_eq!(last.data["status"], "EXPIRED");
    assert_eq!(last.data["position"], 0);
    assert!(
        events.next(Duration::from_secs(2)).await.is_none(),
        "the stream ends after EXPIRED"
    );
}

#[tokio::test]
async fn the_event_stream_reports_position_changes() {
    // Arrange
    let app = spawn_app_with(config(1)).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 3).await;
    issue_new(&app, &fans[0], concert.id).await;
    let ahead = token_of(&issue_new(&app, &fans[1], concert.id).await);
    let behind = token_of(&issue_new(&app, &fans[2], concert.id).await);
    let mut events = EventStream::new(open_events(&app, &behind, None).await);
    assert_eq!(events.next(Duration::from_secs(2)).await.unwrap().data["position"], 2);

    // Act
    assert_eq!(leave(&app, &fans[1], &ahead).await.status(), StatusCode::NO_CONTENT);

    // Assert
    let moved = events.next(Duration::from_secs(3)).await.expect("a position event");
    assert_eq!(moved.data["status"], "WAITING");
    assert_eq!(moved.data["position"], 1);
}

#[tokio::test]
async fn an_open_event_stream_keeps_a_waiter_from_idling_out() {
    // Arrange: one slot, a one-second idle timeout; B streams, C does not.
    let app = spawn_app_with(TestConfig {
        active_max: 1,
        idle_timeout_seconds: 1,
        ..TestConfig::default()
    })
    .await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 3).await;
    let holder = token_of(&issue_new(&app, &fans[0], concert.id).await);
    let streamer = token_of(&issue_new(&app, &fans[1], concert.id).await);
    let silent = token_of(&issue_new(&app, &fans[2], concert.id).await);
    let mut events = EventStream::new(open_events(&app, &streamer, Some(&fans[1])).await);
    assert_eq!(
        events.next(Duration::from_secs(2)).await.unwrap().data["status"],
        "WAITING"
    );

    // Act: three seconds with the stream open and no polls.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Assert: read from Redis first, so no sighting can help.
    assert_eq!(stored_token(&app, &streamer).await["status"], "WAITING");
    assert_eq!(
        stored_token(&app, &silent).await["status"],
        "EXPIRED",
        "the control waiter idled out"
    );
    assert_eq!(app.token_status(&streamer).await["position"], 1);
    assert_eq!(leave(&app, &fans[0], &holder).await.status(), StatusCode::NO_CONTENT);
    let activation = events.next(Duration::from_secs(2)).await.expect("an activation event");
    assert_eq!(activation.data["status"], "ACTIVE");
}

#[tokio::test]
async fn the_event_stream_with_another_users_key_is_403() {
    // Arrange
    let app = spawn_app_with(TestConfig::default()).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 2).await;
    let token = app.active_token(&fans[0], concert.id).await;

    // Act
    let as_stranger = open_events(&app, &token, Some(&fans[1])).await;
    let as_owner = open_events(&app, &token, Some(&fans[0])).await;

    // Assert
    assert_problem(as_stranger, 403, "FORBIDDEN").await;
    assert_eq!(as_owner.status(), StatusCode::OK);
}

// ---------------------------------------------------------------- the gate

async fn schedules(app: &TestApp, user: &TestUser, token: &str, concert_id: i64) -> reqwest::Response {
    app.gated(
        Method::GET,
        &format!("/v1/concerts/{concert_id}/schedules"),
        user,
        token,
    )
    .send()
    .await
    .unwrap()
}

async fn seats(app: &TestApp, user: &TestUser, token: &str, schedule_id: i64) -> reqwest::Response {
    app.gated(Method::GET, &format!("/v1/schedules/{schedule_id}/seats"), user, token)
        .send()
        .await
        .unwrap()
}

/// Both gated reads of `concert` with `token`; asserts each is the problem.
async fn assert_gate(app: &TestApp, user: &TestUser, token: &str, concert: TestConcert, status: u16, code: &str) {
    assert_problem(schedules(app, user, token, concert.id).await, status, code).await;
    assert_problem(seats(app, user, token, concert.schedule_id).await, status, code).await;
}

#[tokio::test]
async fn gated_reads_without_a_queue_token_are_401_queue_token_required() {
    // Arrange
    let app = spawn_app_with(TestConfig::default()).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let user = app.create_user("alice").await;
    let token = app.active_token(&user, concert.id).await;

    for path in [
        format!("/v1/concerts/{}/schedules", concert.id),
        format!("/v1/schedules/{}/seats", concert.schedule_id),
    ] {
        // Act
        let no_token = app.get(&path, Some(&user)).await;
        let no_key = app
            .request(Method::GET, &path)
            .header("Queue-Token", &token)
            .send()
            .await
            .unwrap();

        // Assert
        assert_problem(no_token, 401, "QUEUE_TOKEN_REQUIRED").await;
        assert_problem(no_key, 401, "UNAUTHENTICATED").await;
    }
}

#[tokio::test]
async fn gated_reads_with_a_garbage_unknown_or_expired_token_are_401_queue_token_invalid() {
    // Arrange
    let app = spawn_app_with(TestConfig::default()).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let other = app.create_simple_concert(10, 1_000, 4).await;
    let user = app.create_user("alice").await;
    let left = app.active_token(&user, concert.id).await;
    assert_eq!(leave(&app, &user, &left).await.status(), StatusCode::NO_CONTENT);
    let left_elsewhere = app.active_token(&user, other.id).await;
    assert_eq!(
        leave(&app, &user, &left_elsewhere).await.status(),
        StatusCode::NO_CONTENT
    );
    let unknown = format!("{}.{}", concert.id, "A".repeat(22));

    for token in ["garbage", "", unknown.as_str(), left.as_str(), left_elsewhere.as_str()] {
        // Act + Assert
        assert_gate(&app, &user, token, concert, 401, "QUEUE_TOKEN_INVALID").await;
    }
}

#[tokio::test]
async fn gated_reads_with_a_waiting_token_are_403_queue_not_active() {
    // Arrange
    let app = spawn_app_with(config(1)).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 2).await;
    app.active_token(&fans[0], concert.id).await;
    let waiting = token_of(&issue_new(&app, &fans[1], concert.id).await);

    // Act + Assert
    assert_gate(&app, &fans[1], &waiting, concert, 403, "QUEUE_NOT_ACTIVE").await;
}

#[tokio::test]
async fn gated_reads_with_a_live_token_of_another_concert_are_403_wrong_concert() {
    // Arrange
    let app = spawn_app_with(config(1)).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let other = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 2).await;
    let active_elsewhere = app.active_token(&fans[0], other.id).await;
    let waiting_elsewhere = token_of(&issue_new(&app, &fans[1], other.id).await);

    // Act + Assert
    assert_gate(
        &app,
        &fans[0],
        &active_elsewhere,
        concert,
        403,
        "QUEUE_TOKEN_WRONG_CONCERT",
    )
    .await;
    assert_gate(
        &app,
        &fans[1],
        &waiting_elsewhere,
        concert,
        403,
        "QUEUE_TOKEN_WRONG_CONCERT",
    )
    .await;
}

#[tokio::test]
async fn gated_reads_with_another_users_active_token_are_403_forbidden() {
    // Arrange
    let app = spawn_app_with(TestConfig::default()).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 2).await;
    let theirs = app.active_token(&fans[0], concert.id).await;
    app.active_token(&fans[1], concert.id).await;

    // Act + Assert
    assert_gate(&app, &fans[1], &theirs, concert, 403, "FORBIDDEN").await;
}

#[tokio::test]
async fn gated_reads_with_the_users_own_active_token_are_200() {
    // Arrange
    let app = spawn_app_with(TestConfig::default()).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let user = app.create_user("alice").await;
    let token = app.active_token(&user, concert.id).await;

    // Act
    let listed = schedules(&app, &user, &token, concert.id).await;
    let map = seats(&app, &user, &token, concert.schedule_id).await;

    // Assert
    assert_eq!(listed.status(), StatusCode::OK);
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed["concert_id"], concert.id);
    assert_eq!(listed["schedules"][0]["id"], concert.schedule_id);
    assert_eq!(map.status(), StatusCode::OK);
    let map: Value = map.json().await.unwrap();
    assert_eq!(map["schedule_id"], concert.schedule_id);
    assert_eq!(map["seats"].as_array().unwrap().len(), 10);
}

// ---------------------------------------------------------------- Redis and Postgres agree

#[tokio::test]
async fn after_the_write_behind_drains_postgres_holds_every_token_with_its_final_status() {
    // Arrange: one left, one active, one waiting, one in another concert.
    let app = spawn_app_with(config(1)).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let other = app.create_simple_concert(10, 1_000, 4).await;
    let fans = users(&app, 3).await;
    let left = token_of(&issue_new(&app, &fans[0], concert.id).await);
    let active = token_of(&issue_new(&app, &fans[1], concert.id).await);
    let waiting = token_of(&issue_new(&app, &fans[2], concert.id).await);
    let elsewhere = app.active_token(&fans[0], other.id).await;
    assert_eq!(leave(&app, &fans[0], &left).await.status(), StatusCode::NO_CONTENT);

    // Act
    app.drain_writebehind().await;

    // Assert
    let rows = app
        .pg_rows(
            "select token, concert_id, user_id, status, activated_at is not null as activated,
                    active_until is not null as has_until, expired_at is not null as has_expired
               from queue_token",
        )
        .await;
    assert_eq!(rows.len(), 4);
    let by_token: HashMap<String, &tokio_postgres::Row> = rows.iter().map(|r| (r.get("token"), r)).collect();
    for (token, user, concert_id, status) in [
        (&left, &fans[0], concert.id, "EXPIRED"),
        (&active, &fans[1], concert.id, "ACTIVE"),
        (&waiting, &fans[2], concert.id, "WAITING"),
        (&elsewhere, &fans[0], other.id, "ACTIVE"),
    ] {
        let api = app.token_status(token).await;
        assert_eq!(api["status"], status);
        let row = by_token
            .get(token.as_str())
            .unwrap_or_else(|| panic!("{token} is in Postgres"));
        assert_eq!(row.get::<_, &str>("status"), status, "{token}");
        assert_eq!(row.get::<_, i64>("user_id"), user.id);
        assert_eq!(row.get::<_, i64>("concert_id"), concert_id);
        assert_eq!(row.get::<_, bool>("activated"), status != "WAITING", "{token}");
        assert_eq!(row.get::<_, bool>("has_until"), status != "WAITING");
        assert_eq!(row.get::<_, bool>("has_expired"), status == "EXPIRED");
    }
}
