//! Retried and racing holds: idempotency keys, and 200 users racing for one
//! seat through two server instances (API.md "Reservations").

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::PRICE;
use crate::helpers::{assert_problem, id_of, spawn_app, spawn_app_with, TestConfig};

#[tokio::test]
async fn a_retried_hold_with_the_same_idempotency_key_returns_the_first_reservation() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", 0, concert.id).await;
    let hold = |seats: Vec<i64>, key: &'static str| {
        app.gated(Method::POST, "/v1/reservations", &user, &token)
            .header("Idempotency-Key", key)
            .json(&json!({ "schedule_id": concert.schedule_id, "seat_numbers": seats }))
            .send()
    };
    let first = hold(vec![4, 5], "hold-1").await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();

    // Act
    let retry = hold(vec![4, 5], "hold-1").await.unwrap();
    let new_key = hold(vec![4, 5], "hold-2").await.unwrap();

    // Assert
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    assert_problem(new_key, 409, "SEAT_UNAVAILABLE").await;
    let listed = app.user_reservations(&user).await;
    assert_eq!(listed.len(), 1, "held once");
    let map = app.seat_map(&user, &token, concert.schedule_id).await;
    assert_eq!(map.iter().filter(|s| *s == "HELD").count(), 2);
}

#[tokio::test]
async fn a_refused_hold_is_not_remembered_by_its_idempotency_key() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (other, other_token) = app.fan("bob", 0, concert.id).await;
    let (user, token) = app.fan("alice", 0, concert.id).await;
    let taken = app.hold_ok(&other, &other_token, concert.schedule_id, &[1]).await;
    let hold = || {
        app.gated(Method::POST, "/v1/reservations", &user, &token)
            .header("Idempotency-Key", "try-seat-1")
            .json(&json!({ "schedule_id": concert.schedule_id, "seat_numbers": [1] }))
            .send()
    };
    assert_problem(hold().await.unwrap(), 409, "SEAT_UNAVAILABLE").await;

    // Act
    app.cancel_reservation(&other, &id_of(&taken)).await;
    let retry = hold().await.unwrap();

    // Assert
    assert_eq!(retry.status(), StatusCode::CREATED);
    let held: Value = retry.json().await.unwrap();
    assert_eq!(held["user_id"], user.id);
}

#[tokio::test]
async fn concurrent_holds_with_one_idempotency_key_hold_once() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", 0, concert.id).await;

    // Act
    let responses = join_all((0..10).map(|_| {
        app.gated(Method::POST, "/v1/reservations", &user, &token)
            .header("Idempotency-Key", "same-click")
            .json(&json!({ "schedule_id": concert.schedule_id, "seat_numbers": [6, 7] }))
            .send()
    }))
    .await;

    // Assert
    let mut bodies = Vec::new();
    for response in responses {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        bodies.push(response.json::<Value>().await.unwrap());
    }
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "every retry answers the first hold"
    );
    assert_eq!(app.user_reservations(&user).await.len(), 1);
    // The purchase limit (4) counted two seats, not twenty.
    app.hold_ok(&user, &token, concert.schedule_id, &[1, 2]).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_users_racing_for_one_seat_on_two_instances_get_exactly_one_hold() {
    // Arrange
    let app = spawn_app_with(TestConfig {
        active_max: 1000,
        ..TestConfig::default()
    })
    .await;
    let second = app.second_instance().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let names: Vec<String> = (0..200).map(|i| format!("racer{i}")).collect();
    let users = join_all(names.iter().map(|name| app.create_user(name))).await;
    let tokens = join_all(users.iter().map(|u| app.active_token(u, concert.id))).await;

    // Act
    let responses = join_all(users.iter().zip(&tokens).enumerate().map(|(i, (user, token))| {
        let instance = if i % 2 == 0 { &app } else { &second };
        instance.hold(user, token, concert.schedule_id, &[7])
    }))
    .await;

    // Assert
    let mut winners = Vec::new();
    for (i, response) in responses.into_iter().enumerate() {
        if response.status() == StatusCode::CREATED {
            winners.push((i, response.json::<Value>().await.unwrap()));
        } else {
            assert_problem(response, 409, "SEAT_UNAVAILABLE").await;
        }
    }
    assert_eq!(winners.len(), 1, "exactly one hold wins");
    let (i, held) = &winners[0];
    assert_eq!(held["user_id"], users[*i].id);
    let map = second.seat_map(&users[0], &tokens[0], concert.schedule_id).await;
    assert_eq!(map.iter().filter(|s| *s == "HELD").count(), 1);
    assert_eq!(map[6], "HELD");
}
