//! Retried and concurrent payments: one debit per key or reservation, and
//! only successful answers are remembered (API.md "Payments").

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;

use super::{pay_with_key, payment_entries, PRICE};
use crate::helpers::{assert_problem, id_of, spawn_app};

#[tokio::test]
async fn a_retried_payment_with_the_same_idempotency_key_returns_the_first_answer() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", 3 * PRICE, concert.id).await;
    let rid = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[1]).await);
    let first = pay_with_key(&app, &user, &token, &rid, "pay-once").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    assert_eq!(app.token_status(&token).await["status"], "EXPIRED");

    // Act: the retry still carries the token the payment expired.
    let retry = pay_with_key(&app, &user, &token, &rid, "pay-once").await;

    // Assert
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    assert_eq!(app.balance(&user).await, 2 * PRICE, "debited once");
    assert_eq!(payment_entries(&app, &user).await.len(), 1);
}

#[tokio::test]
async fn a_payment_refused_for_lack_of_money_is_not_remembered_by_its_idempotency_key() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", PRICE / 2, concert.id).await;
    let rid = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[1]).await);
    let refused = pay_with_key(&app, &user, &token, &rid, "pay-later").await;
    assert_problem(refused, 402, "INSUFFICIENT_BALANCE").await;
    app.charge(&user, PRICE, None).await;

    // Act
    let retry = pay_with_key(&app, &user, &token, &rid, "pay-later").await;

    // Assert
    assert_eq!(retry.status(), StatusCode::CREATED);
    let paid: Value = retry.json().await.unwrap();
    assert_eq!(paid["status"], "SUCCESS");
    assert_eq!(app.balance(&user).await, PRICE / 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_payments_with_one_idempotency_key_debit_once() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", 5 * PRICE, concert.id).await;
    let rid = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[1, 2]).await);

    // Act
    let responses = join_all((0..10).map(|_| pay_with_key(&app, &user, &token, &rid, "double-click"))).await;

    // Assert
    let mut bodies = Vec::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::CREATED);
        bodies.push(response.json::<Value>().await.unwrap());
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:?}");
    assert_eq!(bodies[0]["status"], "SUCCESS");
    assert_eq!(app.balance(&user).await, 3 * PRICE, "debited once");
    assert_eq!(payment_entries(&app, &user).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_payments_of_one_reservation_without_a_key_debit_once() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", 5 * PRICE, concert.id).await;
    let rid = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[1]).await);

    // Act
    let responses = join_all((0..10).map(|_| app.pay(&user, &token, &rid))).await;

    // Assert
    let mut created = 0;
    for response in responses {
        match response.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {
                assert_problem(response, 409, "ALREADY_PAID").await;
            }
            // The winner expires the token, so a late request may be turned
            // away at the gate.
            _ => {
                assert_problem(response, 401, "QUEUE_TOKEN_INVALID").await;
            }
        }
    }
    assert_eq!(created, 1);
    assert_eq!(app.balance(&user).await, 4 * PRICE, "debited once");
    assert_eq!(payment_entries(&app, &user).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_payments_with_one_key_and_too_little_money_are_all_402() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", PRICE - 1, concert.id).await;
    let rid = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[1]).await);

    // Act
    let responses = join_all((0..10).map(|_| pay_with_key(&app, &user, &token, &rid, "double-click"))).await;

    // Assert
    let mut answers = Vec::new();
    for response in responses {
        answers.push((response.status().as_u16(), response.json::<Value>().await.unwrap()));
    }
    assert!(
        answers
            .iter()
            .all(|(status, body)| *status == 402 && body["code"] == "INSUFFICIENT_BALANCE"),
        "{answers:#?}"
    );
    assert_eq!(app.balance(&user).await, PRICE - 1);
    assert_eq!(app.reservation(&user, &rid).await["status"], "HELD");
    app.charge(&user, 1, None).await;
    let paid = pay_with_key(&app, &user, &token, &rid, "double-click").await;
    assert_eq!(paid.status(), StatusCode::CREATED);
}
