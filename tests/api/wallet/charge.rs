//! Charging a wallet: the answer, the amounts accepted and refused, the
//! one-billion ceiling, and concurrent charges through two instances
//! (API.md "Users and wallet").

use futures_util::future::join_all;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::{balance_path, charge_path, history, with_alice};
use crate::helpers::{assert_problem, TestApp, TestUser};

/// `POST …/charge` with a raw JSON body (for bodies that are not `{amount}`).
async fn charge_raw(app: &TestApp, user: &TestUser, body: &str) -> Response {
    app.request(Method::POST, &charge_path(user))
        .bearer_auth(&user.key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request sent")
}

#[tokio::test]
async fn a_charge_returns_200_with_the_new_balance_and_the_balance_follows() {
    // Arrange
    let (app, user) = with_alice(0).await;

    // Act
    let first = app.charge(&user, 50_000, None).await;
    let second = app.charge(&user, 50_000, None).await;

    // Assert
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(
        first.json::<Value>().await.unwrap(),
        json!({ "user_id": user.id, "amount": 50_000, "balance": 50_000 })
    );
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(
        second.json::<Value>().await.unwrap(),
        json!({ "user_id": user.id, "amount": 50_000, "balance": 100_000 })
    );
    let body: Value = app.get(&balance_path(&user), Some(&user)).await.json().await.unwrap();
    assert_eq!(body, json!({ "user_id": user.id, "balance": 100_000 }));
}

#[tokio::test]
async fn charges_of_one_and_ten_million_are_accepted() {
    // Arrange
    let (app, user) = with_alice(0).await;

    // Act
    let smallest = app.charge(&user, 1, None).await;
    let largest = app.charge(&user, 10_000_000, None).await;

    // Assert
    assert_eq!(smallest.status(), StatusCode::OK);
    assert_eq!(largest.status(), StatusCode::OK);
    assert_eq!(app.balance(&user).await, 10_000_001);
}

#[tokio::test]
async fn out_of_range_amounts_are_422_invalid_amount_and_change_nothing() {
    // Arrange
    let (app, user) = with_alice(700).await;

    for amount in [0, -1, -50_000, 10_000_001, i64::MAX] {
        // Act
        let response = app.charge(&user, amount, None).await;

        // Assert
        assert_problem(response, 422, "INVALID_AMOUNT").await;
    }
    assert_eq!(app.balance(&user).await, 700);
    assert_eq!(history(&app, &user, None).await.len(), 1);
}

#[tokio::test]
async fn amounts_that_are_not_integers_are_400_and_change_nothing() {
    // Arrange
    let (app, user) = with_alice(700).await;

    for body in [
        r#"{"amount": 1.5}"#,
        r#"{"amount": 100.0}"#,
        r#"{"amount": "100"}"#,
        r#"{"amount": null}"#,
        r#"{"amount": true}"#,
        r#"{}"#,
        r#"{"amount": 1e3}"#,
        r#"{"amount": 100000000000000000000}"#,
        "[100]",
        "",
        "{",
    ] {
        // Act
        let response = charge_raw(&app, &user, body).await;

        // Assert
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let problem = assert_problem(response, 400, "MALFORMED_REQUEST").await;
        assert!(problem["detail"].is_string(), "{body}");
    }
    assert_eq!(app.balance(&user).await, 700);
    assert_eq!(history(&app, &user, None).await.len(), 1);
}

#[tokio::test]
async fn a_charge_may_reach_exactly_one_billion_and_no_more() {
    // Arrange: 990,000,000 + 5,000,000.
    let (app, user) = with_alice(0).await;
    for _ in 0..99 {
        assert_eq!(app.charge(&user, 10_000_000, None).await.status(), StatusCode::OK);
    }
    assert_eq!(app.charge(&user, 5_000_000, None).await.status(), StatusCode::OK);

    // Act
    let over = app.charge(&user, 10_000_000, None).await;
    let exact = app.charge(&user, 5_000_000, None).await;
    let one_more = app.charge(&user, 1, None).await;

    // Assert
    assert_problem(over, 422, "BALANCE_LIMIT").await;
    assert_eq!(exact.status(), StatusCode::OK);
    assert_eq!(exact.json::<Value>().await.unwrap()["balance"], 1_000_000_000);
    assert_problem(one_more, 422, "BALANCE_LIMIT").await;
    assert_eq!(app.balance(&user).await, 1_000_000_000);
    let entries = history(&app, &user, Some(200)).await;
    assert_eq!(entries.len(), 101, "refused charges leave no entry");
    assert_eq!(entries[0]["amount"], 5_000_000);
    assert_eq!(entries[0]["balance_after"], 1_000_000_000);
}

#[tokio::test]
async fn sixty_four_concurrent_charges_are_all_applied_exactly() {
    // Arrange
    let (app, user) = with_alice(0).await;
    let second = app.second_instance().await;
    let amounts: Vec<i64> = (1..=64).map(|i| i * 1_000 + i).collect();

    // Act
    let responses = join_all(amounts.iter().enumerate().map(|(i, amount)| {
        let server = if i % 2 == 0 { &app } else { &second };
        let user = user.clone();
        async move { server.charge(&user, *amount, None).await.status() }
    }))
    .await;

    // Assert
    assert!(responses.iter().all(|s| *s == StatusCode::OK), "{responses:?}");
    let total: i64 = amounts.iter().sum();
    assert_eq!(app.balance(&user).await, total);
    let entries = history(&app, &user, Some(200)).await;
    assert_eq!(entries.len(), 64);
    assert!(entries.iter().all(|e| e["type"] == "CHARGE"));
    let mut seen: Vec<i64> = entries.iter().map(|e| e["amount"].as_i64().unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, amounts, "every charge once");
    // Newest first, and each entry continues from the one before it.
    assert_eq!(entries[0]["balance_after"], total);
    for pair in entries.windows(2) {
        let (newer, older) = (&pair[0], &pair[1]);
        assert_eq!(
            newer["balance_after"].as_i64().unwrap() - newer["amount"].as_i64().unwrap(),
            older["balance_after"].as_i64().unwrap(),
            "{newer} follows {older}"
        );
    }
    let oldest = entries.last().unwrap();
    assert_eq!(oldest["balance_after"], oldest["amount"]);
}
