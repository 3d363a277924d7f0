//! Idempotent charges: a retry with the same `Idempotency-Key` replays the
//! first answer and charges once, per user, for a day; refused charges are
//! not remembered (API.md "Users and wallet", "Idempotency").

use fred::interfaces::KeysInterface;
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{buy_seat, charge_path, history, with_alice};
use crate::helpers::assert_problem;

#[tokio::test]
async fn retrying_a_charge_with_its_idempotency_key_returns_the_first_answer_and_charges_once() {
    // Arrange
    let (app, user) = with_alice(0).await;
    let first = app.charge(&user, 1_000, Some("charge-1")).await;
    assert_eq!(first.status(), StatusCode::OK);
    let first = first.bytes().await.unwrap();
    // Another charge in between moves the balance on.
    assert_eq!(app.charge(&user, 500, None).await.status(), StatusCode::OK);

    // Act
    let retry = app.charge(&user, 1_000, Some("charge-1")).await;

    // Assert
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(retry.bytes().await.unwrap(), first, "byte for byte the first body");
    let first: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(first, json!({ "user_id": user.id, "amount": 1_000, "balance": 1_000 }));
    assert_eq!(app.balance(&user).await, 1_500);
    assert_eq!(history(&app, &user, None).await.len(), 2);
}

#[tokio::test]
async fn idempotency_records_are_kept_for_a_day() {
    // Arrange
    let (app, user) = with_alice(0).await;

    // Act
    assert_eq!(app.charge(&user, 1_000, Some("daily")).await.status(), StatusCode::OK);

    // Assert
    let key = format!("{}idem:{}:charge:daily", app.redis.keys().wallet(user.id), user.id);
    let ttl: i64 = app.redis.client().ttl(key).await.expect("redis answers");
    assert!((86_390..=86_400).contains(&ttl), "kept for 24 h: {ttl} s");
}

#[tokio::test]
async fn a_retry_with_a_different_amount_still_returns_the_first_answer() {
    // Arrange
    let (app, user) = with_alice(0).await;
    let first: Value = app.charge(&user, 1_000, Some("k")).await.json().await.unwrap();

    // Act
    let retry = app.charge(&user, 9_999, Some("k")).await;

    // Assert
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    assert_eq!(app.balance(&user).await, 1_000);
}

#[tokio::test]
async fn twenty_concurrent_charges_with_one_idempotency_key_charge_exactly_once() {
    // Arrange
    let (app, user) = with_alice(100).await;
    let second = app.second_instance().await;

    // Act: half through each instance.
    let responses = join_all((0..20).map(|i| {
        let server = if i % 2 == 0 { &app } else { &second };
        let user = user.clone();
        async move {
            let response = server.charge(&user, 7_000, Some("same-key")).await;
            (response.status(), response.bytes().await.unwrap())
        }
    }))
    .await;

    // Assert
    for (status, _) in &responses {
        assert_eq!(*status, StatusCode::OK);
    }
    let first = &responses[0].1;
    assert!(
        responses.iter().all(|(_, body)| body == first),
        "every answer is the first"
    );
    let first: Value = serde_json::from_slice(first).unwrap();
    assert_eq!(first, json!({ "user_id": user.id, "amount": 7_000, "balance": 7_100 }));
    assert_eq!(app.balance(&user).await, 7_100);
    let entries = history(&app, &user, None).await;
    assert_eq!(entries.len(), 2, "one CHARGE for the key, one for the setup");
}

#[tokio::test]
async fn idempotency_keys_are_scoped_per_user() {
    // Arrange
    let (app, alice) = with_alice(0).await;
    let bob = app.create_user("bob").await;

    // Act
    let for_alice = app.charge(&alice, 1_000, Some("shared-key")).await;
    let for_bob = app.charge(&bob, 2_000, Some("shared-key")).await;

    // Assert
    assert_eq!(
        for_alice.json::<Value>().await.unwrap(),
        json!({ "user_id": alice.id, "amount": 1_000, "balance": 1_000 })
    );
    assert_eq!(
        for_bob.json::<Value>().await.unwrap(),
        json!({ "user_id": bob.id, "amount": 2_000, "balance": 2_000 })
    );
    assert_eq!(app.balance(&alice).await, 1_000);
    assert_eq!(app.balance(&bob).await, 2_000);
}

#[tokio::test]
async fn different_idempotency_keys_charge_separately() {
    // Arrange
    let (app, user) = with_alice(0).await;

    // Act
    app.charge(&user, 1_000, Some("a")).await;
    app.charge(&user, 1_000, Some("b")).await;

    // Assert
    assert_eq!(app.balance(&user).await, 2_000);
}

#[tokio::test]
async fn invalid_idempotency_keys_are_400_and_charge_nothing() {
    // Arrange
    let (app, user) = with_alice(0).await;
    let too_long = "k".repeat(300);

    for key in [too_long.as_str(), "", "has space", "tab\there"] {
        // Act
        let response = app
            .request(Method::POST, &charge_path(&user))
            .bearer_auth(&user.key)
            .header("Idempotency-Key", key)
            .json(&json!({ "amount": 1_000 }))
            .send()
            .await
            .unwrap();

        // Assert
        assert_problem(response, 400, "MALFORMED_REQUEST").await;
    }
    assert_eq!(app.balance(&user).await, 0);
    // The longest valid key (255 characters) works.
    let longest = "k".repeat(255);
    assert_eq!(app.charge(&user, 1_000, Some(&longest)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_refused_charge_is_not_remembered_under_its_idempotency_key() {
    // Arrange: a wallet at the ceiling.
    let (app, user) = with_alice(0).await;
    for _ in 0..100 {
        assert_eq!(app.charge(&user, 10_000_000, None).await.status(), StatusCode::OK);
    }
    let invalid = app.charge(&user, 0, Some("retry-me")).await;
    assert_problem(invalid, 422, "INVALID_AMOUNT").await;
    let refused = app.charge(&user, 1_000, Some("retry-me")).await;
    assert_problem(refused, 422, "BALANCE_LIMIT").await;
    // Spend some: buy a 1,000 KRW seat.
    buy_seat(&app, &user, 1_000).await;

    // Act: the same key again, now that the charge fits.
    let retry = app.charge(&user, 1_000, Some("retry-me")).await;

    // Assert
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(
        retry.json::<Value>().await.unwrap(),
        json!({ "user_id": user.id, "amount": 1_000, "balance": 1_000_000_000 })
    );
    assert_eq!(app.balance(&user).await, 1_000_000_000);
}
