//! Tokens that lapse: a waiter not seen for the idle timeout is dropped,
//! an active token expires after its lifetime, and the gate refuses it even
//! before a sweep (API.md "Waiting queue").

use std::time::Duration;

use fred::interfaces::SortedSetsInterface;
use reqwest::StatusCode;
use serde_json::Value;

use super::{
    issue_new, leave_ok, line_up, queue_key, quick_idle_config, rfc3339_ms, stored_token, token_of, waiting_room,
};
use crate::helpers::{assert_problem, eventually, TestApp, TestConfig};

#[tokio::test]
async fn a_waiter_not_seen_for_the_idle_timeout_is_dropped_and_the_next_one_gets_the_slot() {
    // Arrange: one slot; B waits without polling, C waits and keeps polling.
    let (app, concert, fans) = waiting_room(quick_idle_config(), 3).await;
    let [holder, ghost] = line_up(&app, &fans, concert.id).await;
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
    leave_ok(&app, &fans[0], &holder).await;
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

/// When a waiter was last seen, as the scripts keep it (ms).
async fn last_seen(app: &TestApp, concert_id: i64, token: &str) -> f64 {
    let key = queue_key(app, concert_id, "q:seen");
    let seen: Option<f64> = app.redis.client().zscore(key, token).await.expect("redis answers");
    seen.expect("a waiting token has a sighting")
}

/// One slot taken and one waiter behind it; idle timeout 20 s, so the
/// grain is 1 s.
async fn waiter_with_a_one_second_grain() -> (TestApp, i64, String) {
    let config = TestConfig {
        active_max: 1,
        idle_timeout_seconds: 20,
        ..TestConfig::default()
    };
    let (app, concert, fans) = waiting_room(config, 2).await;
    let [_, waiter] = line_up(&app, &fans, concert.id).await;
    (app, concert.id, waiter)
}

/// Polls `waiter` five times in a row; whether they all fell within 900 ms
/// (so within one grain).
async fn quick_polls(app: &TestApp, waiter: &str) -> bool {
    let started = std::time::Instant::now();
    for _ in 0..5 {
        assert_eq!(app.token_status(waiter).await["status"], "WAITING");
    }
    started.elapsed() < Duration::from_millis(900)
}

#[tokio::test]
async fn a_sighting_is_written_at_most_once_a_grain_and_then_moves_forward() {
    // Arrange
    let (app, concert_id, waiter) = waiter_with_a_one_second_grain().await;
    let issued = last_seen(&app, concert_id, &waiter).await;

    // Act: polls right after the issue, then one past the grain.
    let quick = quick_polls(&app, &waiter).await;
    let after_quick_polls = last_seen(&app, concert_id, &waiter).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(app.token_status(&waiter).await["status"], "WAITING");
    let after_grain = last_seen(&app, concert_id, &waiter).await;

    // Assert
    if quick {
        assert_eq!(after_quick_polls, issued, "polls within the grain write no sighting");
    }
    assert!(
        after_grain >= issued + 1_000.0,
        "a poll past the grain moves the sighting forward: {issued} -> {after_grain}"
    );
}

#[tokio::test]
async fn after_a_poll_writes_a_sighting_the_polls_within_the_next_grain_write_none() {
    // Arrange: a first poll, then one past the grain that writes a sighting.
    let (app, concert_id, waiter) = waiter_with_a_one_second_grain().await;
    assert_eq!(app.token_status(&waiter).await["status"], "WAITING");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(app.token_status(&waiter).await["status"], "WAITING");
    let written = last_seen(&app, concert_id, &waiter).await;

    // Act
    let quick = quick_polls(&app, &waiter).await;
    let after = last_seen(&app, concert_id, &waiter).await;

    // Assert
    if quick {
        assert_eq!(after, written, "polls within the grain after a write write no sighting");
    }
}

#[tokio::test]
async fn an_active_token_expires_after_its_lifetime_without_polls_and_the_next_waiter_is_admitted() {
    // Arrange
    let config = TestConfig {
        active_max: 1,
        active_ttl_seconds: 1,
        ..TestConfig::default()
    };
    let (app, concert, fans) = waiting_room(config, 2).await;
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
    let config = TestConfig {
        active_ttl_seconds: 1,
        background: ticketrush::Background {
            writebehind: false,
            sweeper: false,
        },
        ..TestConfig::default()
    };
    let (app, concert, fans) = waiting_room(config, 1).await;
    let user = &fans[0];
    let token = app.active_token(user, concert.id).await;
    assert_eq!(app.schedules(user, &token, concert.id).await.status(), StatusCode::OK);

    // Act
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let late = app.schedules(user, &token, concert.id).await;

    // Assert
    assert_problem(late, 401, "QUEUE_TOKEN_INVALID").await;
    assert_eq!(app.token_status(&token).await["status"], "EXPIRED");
}
