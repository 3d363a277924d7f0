//! What a payment does (debit, CONFIRMED, SOLD, token EXPIRED, ledger) and
//! every refusal, which changes nothing; reading payments (API.md "Payments").

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{get_payment, payment_entries, PRICE};
use crate::helpers::{assert_problem, eventually, id_of, spawn_app, spawn_app_with, TestConfig};

#[tokio::test]
async fn paying_confirms_the_reservation_debits_the_wallet_and_ends_the_turn() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", 500_000, concert.id).await;
    let rid = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[3, 4]).await);

    // Act
    let response = app.pay(&user, &token, &rid).await;

    // Assert
    assert_eq!(response.status(), StatusCode::CREATED);
    let paid: Value = response.json().await.unwrap();
    let pid = id_of(&paid);
    assert_eq!(Uuid::parse_str(&pid).unwrap().get_version_num(), 7);
    assert_eq!(paid["reservation_id"], rid);
    assert_eq!(paid["user_id"], user.id);
    assert_eq!(paid["amount"], 2 * PRICE);
    assert_eq!(paid["status"], "SUCCESS");
    assert_eq!(paid["balance_after"], 500_000 - 2 * PRICE);
    chrono::DateTime::parse_from_rfc3339(paid["paid_at"].as_str().unwrap()).expect("paid_at is RFC 3339");
    assert_eq!(app.balance(&user).await, 500_000 - 2 * PRICE);
    let reservation = app.reservation(&user, &rid).await;
    assert_eq!(reservation["status"], "CONFIRMED");
    assert_eq!(reservation["payment_id"], pid);
    assert_eq!(app.token_status(&token).await["status"], "EXPIRED");
    let token = app.active_token(&user, concert.id).await;
    let map = app.seat_map(&user, &token, concert.schedule_id).await;
    assert_eq!(&map[2..4], ["SOLD", "SOLD"]);
    assert_eq!(map.iter().filter(|s| *s == "SOLD").count(), 2);
    let entry = json!({ "type": "PAYMENT", "amount": -2 * PRICE, "balance_after": 500_000 - 2 * PRICE,
                        "reference": pid });
    let logged = eventually(Duration::from_secs(2), || async {
        payment_entries(&app, &user).await.iter().any(|e| {
            ["type", "amount", "balance_after", "reference"]
                .iter()
                .all(|k| e[k] == entry[k])
        })
    })
    .await;
    assert!(logged, "a PAYMENT entry: {:?}", app.ledger(&user).await);
    let read = get_payment(&app, Some(&user), &pid).await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.json::<Value>().await.unwrap(), paid);
}

#[tokio::test]
async fn paying_an_unknown_or_someone_elses_reservation_is_404() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (owner, owner_token) = app.fan("owner", PRICE, concert.id).await;
    let (stranger, stranger_token) = app.fan("stranger", PRICE, concert.id).await;
    let rid = id_of(&app.hold_ok(&owner, &owner_token, concert.schedule_id, &[1]).await);

    // Act
    let unknown = app.pay(&owner, &owner_token, &Uuid::now_v7().to_string()).await;
    let theirs = app.pay(&stranger, &stranger_token, &rid).await;
    let malformed = app.pay(&owner, &owner_token, "not-a-uuid").await;

    // Assert
    assert_problem(unknown, 404, "RESERVATION_NOT_FOUND").await;
    assert_problem(theirs, 404, "RESERVATION_NOT_FOUND").await;
    assert_problem(malformed, 400, "MALFORMED_REQUEST").await;
    assert_eq!(app.reservation(&owner, &rid).await["status"], "HELD");
    assert_eq!(app.balance(&stranger).await, PRICE);
    assert_eq!(app.balance(&owner).await, PRICE);
}

#[tokio::test]
async fn paying_a_lapsed_hold_is_409_hold_expired() {
    // Arrange
    let app = spawn_app_with(TestConfig {
        hold_ttl_seconds: 1,
        ..TestConfig::default()
    })
    .await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", PRICE, concert.id).await;
    let rid = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[1]).await);
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // Act
    let response = app.pay(&user, &token, &rid).await;

    // Assert
    assert_problem(response, 409, "HOLD_EXPIRED").await;
    assert_eq!(app.balance(&user).await, PRICE);
    assert_eq!(app.reservation(&user, &rid).await["status"], "EXPIRED");
    assert_eq!(app.seat_map(&user, &token, concert.schedule_id).await[0], "AVAILABLE");
    assert_eq!(app.token_status(&token).await["status"], "ACTIVE");
}

#[tokio::test]
async fn paying_without_enough_money_is_402_and_keeps_the_hold() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", PRICE - 1, concert.id).await;
    let rid = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[5]).await);

    // Act
    let refused = app.pay(&user, &token, &rid).await;

    // Assert
    assert_problem(refused, 402, "INSUFFICIENT_BALANCE").await;
    assert_eq!(app.balance(&user).await, PRICE - 1);
    assert_eq!(app.reservation(&user, &rid).await["status"], "HELD");
    assert_eq!(app.seat_map(&user, &token, concert.schedule_id).await[4], "HELD");
    assert_eq!(app.token_status(&token).await["status"], "ACTIVE");
    assert!(payment_entries(&app, &user).await.is_empty());
    // Topping up and paying again succeeds with the same hold and token.
    assert_eq!(app.charge(&user, 1, None).await.status(), StatusCode::OK);
    let paid = app.pay_ok(&user, &token, &rid).await;
    assert_eq!(paid["balance_after"], 0);
    assert_eq!(app.reservation(&user, &rid).await["status"], "CONFIRMED");
    // Postgres records the failed attempt and the payment.
    app.drain_writebehind().await;
    let rows = app
        .pg_rows(&format!(
            "select status, coalesce(reason, '') from payment where reservation_id = '{rid}' order by created_at"
        ))
        .await;
    let rows: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        rows,
        vec![
            ("FAILED".to_owned(), "INSUFFICIENT_BALANCE".to_owned()),
            ("SUCCESS".to_owned(), String::new())
        ]
    );
}

#[tokio::test]
async fn paying_a_paid_reservation_again_is_409_already_paid() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", 2 * PRICE, concert.id).await;
    let rid = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[1]).await);
    app.pay_ok(&user, &token, &rid).await;
    let fresh = app.active_token(&user, concert.id).await;

    // Act
    let again = app.pay(&user, &fresh, &rid).await;

    // Assert
    assert_problem(again, 409, "ALREADY_PAID").await;
    assert_eq!(app.balance(&user).await, PRICE, "debited once");
    assert_eq!(
        app.token_status(&fresh).await["status"],
        "ACTIVE",
        "a refused payment ends no turn"
    );
}

#[tokio::test]
async fn paying_a_cancelled_or_refunded_reservation_is_409_invalid_state() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", 2 * PRICE, concert.id).await;
    let cancelled = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[1]).await);
    let refunded = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[2]).await);
    assert_eq!(app.cancel_reservation(&user, &cancelled).await.status(), StatusCode::OK);
    app.pay_ok(&user, &token, &refunded).await;
    assert_eq!(app.cancel_reservation(&user, &refunded).await.status(), StatusCode::OK);
    let token = app.active_token(&user, concert.id).await;

    // Act
    let cancelled_pay = app.pay(&user, &token, &cancelled).await;
    let refunded_pay = app.pay(&user, &token, &refunded).await;

    // Assert
    assert_problem(cancelled_pay, 409, "INVALID_STATE").await;
    assert_problem(refunded_pay, 409, "INVALID_STATE").await;
    assert_eq!(app.balance(&user).await, 2 * PRICE);
    let map = app.seat_map(&user, &token, concert.schedule_id).await;
    assert!(map.iter().all(|s| s == "AVAILABLE"), "{map:?}");
}

#[tokio::test]
async fn payments_need_an_active_queue_token_of_the_user_and_concert() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let other_concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", PRICE, concert.id).await;
    let (_, stranger_token) = app.fan("stranger", 0, concert.id).await;
    let elsewhere = app.active_token(&user, other_concert.id).await;
    let rid = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[1]).await);
    let left = app
        .request(Method::DELETE, &format!("/v1/queue/tokens/{token}"))
        .bearer_auth(&user.key)
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), StatusCode::NO_CONTENT);

    // Act
    let body = json!({ "reservation_id": rid });
    let no_token = app.post("/v1/payments", &body, Some(&user)).await;
    let garbage = app.pay(&user, "garbage", &rid).await;
    let expired = app.pay(&user, &token, &rid).await;
    let someone_elses = app.pay(&user, &stranger_token, &rid).await;
    let wrong_concert = app.pay(&user, &elsewhere, &rid).await;

    // Assert
    assert_problem(no_token, 401, "QUEUE_TOKEN_REQUIRED").await;
    assert_problem(garbage, 401, "QUEUE_TOKEN_INVALID").await;
    assert_problem(expired, 401, "QUEUE_TOKEN_INVALID").await;
    assert_problem(someone_elses, 403, "FORBIDDEN").await;
    assert_problem(wrong_concert, 403, "QUEUE_TOKEN_WRONG_CONCERT").await;
    assert_eq!(app.reservation(&user, &rid).await["status"], "HELD");
    assert_eq!(app.balance(&user).await, PRICE);
}
#[tokio::test]
async fn payments_are_readable_only_by_their_owner() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (owner, token) = app.fan("owner", PRICE, concert.id).await;
    let (stranger, _) = app.fan("stranger", 0, concert.id).await;
    let rid = id_of(&app.hold_ok(&owner, &token, concert.schedule_id, &[1]).await);
    let paid = app.pay_ok(&owner, &token, &rid).await;
    let pid = id_of(&paid);

    // Act
    let mine = get_payment(&app, Some(&owner), &pid).await;
    let theirs = get_payment(&app, Some(&stranger), &pid).await;
    let unknown = get_payment(&app, Some(&owner), &Uuid::now_v7().to_string()).await;
    let malformed = get_payment(&app, Some(&owner), "123").await;
    let anonymous = get_payment(&app, None, &pid).await;

    // Assert
    assert_eq!(mine.status(), StatusCode::OK);
    assert_eq!(mine.json::<Value>().await.unwrap(), paid);
    assert_problem(theirs, 404, "PAYMENT_NOT_FOUND").await;
    assert_problem(unknown, 404, "PAYMENT_NOT_FOUND").await;
    assert_problem(malformed, 400, "MALFORMED_REQUEST").await;
    assert_problem(anonymous, 401, "UNAUTHENTICATED").await;
}
