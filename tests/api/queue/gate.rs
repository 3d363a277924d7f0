//! The gate: the gated reads (a concert's dates, a date's seat map) need
//! the user's key and an ACTIVE queue token of that user for that concert
//! (API.md "Authentication" queue token).

use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

use super::{config, issue_new, leave_ok, token_of, waiting_room};
use crate::helpers::{assert_problem, TestApp, TestConcert, TestConfig, TestUser};

/// `GET /v1/schedules/{id}/seats`, a gated read.
async fn seats(app: &TestApp, user: &TestUser, token: &str, schedule_id: i64) -> Response {
    app.gated(Method::GET, &format!("/v1/schedules/{schedule_id}/seats"), user, token)
        .send()
        .await
        .unwrap()
}

/// Both gated reads of `concert` with `token`; asserts each is the problem.
async fn assert_gate(app: &TestApp, user: &TestUser, token: &str, concert: TestConcert, status: u16, code: &str) {
    assert_problem(app.schedules(user, token, concert.id).await, status, code).await;
    assert_problem(seats(app, user, token, concert.schedule_id).await, status, code).await;
}

#[tokio::test]
async fn gated_reads_without_a_queue_token_are_401_queue_token_required() {
    // Arrange
    let (app, concert, fans) = waiting_room(TestConfig::default(), 1).await;
    let user = &fans[0];
    let token = app.active_token(user, concert.id).await;

    for path in [
        format!("/v1/concerts/{}/schedules", concert.id),
        format!("/v1/schedules/{}/seats", concert.schedule_id),
    ] {
        // Act
        let no_token = app.get(&path, Some(user)).await;
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
    let (app, concert, fans) = waiting_room(TestConfig::default(), 1).await;
    let other = app.create_simple_concert(10, 1_000, 4).await;
    let user = &fans[0];
    let left = app.active_token(user, concert.id).await;
    leave_ok(&app, user, &left).await;
    let left_elsewhere = app.active_token(user, other.id).await;
    leave_ok(&app, user, &left_elsewhere).await;
    let unknown = format!("{}.{}", concert.id, "A".repeat(22));

    for token in ["garbage", "", unknown.as_str(), left.as_str(), left_elsewhere.as_str()] {
        // Act + Assert
        assert_gate(&app, user, token, concert, 401, "QUEUE_TOKEN_INVALID").await;
    }
}

#[tokio::test]
async fn gated_reads_with_a_waiting_token_are_403_queue_not_active() {
    // Arrange
    let (app, concert, fans) = waiting_room(config(1), 2).await;
    app.active_token(&fans[0], concert.id).await;
    let waiting = token_of(&issue_new(&app, &fans[1], concert.id).await);

    // Act + Assert
    assert_gate(&app, &fans[1], &waiting, concert, 403, "QUEUE_NOT_ACTIVE").await;
}

#[tokio::test]
async fn gated_reads_with_a_live_token_of_another_concert_are_403_wrong_concert() {
    // Arrange
    let (app, concert, fans) = waiting_room(config(1), 2).await;
    let other = app.create_simple_concert(10, 1_000, 4).await;
    let active_elsewhere = app.active_token(&fans[0], other.id).await;
    let waiting_elsewhere = token_of(&issue_new(&app, &fans[1], other.id).await);

    for (fan, token) in [(&fans[0], &active_elsewhere), (&fans[1], &waiting_elsewhere)] {
        // Act + Assert
        assert_gate(&app, fan, token, concert, 403, "QUEUE_TOKEN_WRONG_CONCERT").await;
    }
}

#[tokio::test]
async fn gated_reads_with_another_users_active_token_are_403_forbidden() {
    // Arrange
    let (app, concert, fans) = waiting_room(TestConfig::default(), 2).await;
    let theirs = app.active_token(&fans[0], concert.id).await;
    app.active_token(&fans[1], concert.id).await;

    // Act + Assert
    assert_gate(&app, &fans[1], &theirs, concert, 403, "FORBIDDEN").await;
}

#[tokio::test]
async fn gated_reads_with_the_users_own_active_token_are_200() {
    // Arrange
    let (app, concert, fans) = waiting_room(TestConfig::default(), 1).await;
    let user = &fans[0];
    let token = app.active_token(user, concert.id).await;

    // Act
    let listed = app.schedules(user, &token, concert.id).await;
    let map = seats(&app, user, &token, concert.schedule_id).await;

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
