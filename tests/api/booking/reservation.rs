//! Reading reservations, cancelling holds and refunding paid reservations
//! (API.md "Reservations").

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{concert_body, time_in, PRICE};
use crate::helpers::{assert_problem, eventually, id_of, spawn_app, spawn_app_with, TestConcert, TestConfig};

#[tokio::test]
async fn owners_read_their_reservation_and_everyone_else_gets_404() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (owner, token) = app.fan("owner", 0, concert.id).await;
    let (stranger, _) = app.fan("stranger", 0, concert.id).await;
    let held = app.hold_ok(&owner, &token, concert.schedule_id, &[1, 2]).await;
    let path = format!("/v1/reservations/{}", id_of(&held));

    // Act
    let mine = app.get(&path, Some(&owner)).await;
    let theirs = app.get(&path, Some(&stranger)).await;
    let unknown = app
        .get(&format!("/v1/reservations/{}", Uuid::now_v7()), Some(&owner))
        .await;
    let malformed = app.get("/v1/reservations/not-a-uuid", Some(&owner)).await;
    let anonymous = app.get(&path, None).await;

    // Assert
    assert_eq!(mine.status(), StatusCode::OK);
    assert_eq!(mine.json::<Value>().await.unwrap(), held);
    assert_problem(theirs, 404, "RESERVATION_NOT_FOUND").await;
    assert_problem(unknown, 404, "RESERVATION_NOT_FOUND").await;
    assert_problem(malformed, 400, "MALFORMED_REQUEST").await;
    assert_problem(anonymous, 401, "UNAUTHENTICATED").await;
}

#[tokio::test]
async fn a_users_reservations_are_listed_newest_first_and_only_to_that_user() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let other_concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", 0, concert.id).await;
    let other_token = app.active_token(&user, other_concert.id).await;
    let (stranger, stranger_token) = app.fan("stranger", 0, concert.id).await;
    app.hold_ok(&stranger, &stranger_token, concert.schedule_id, &[9]).await;
    let mut held = Vec::new();
    for (t, schedule, seat) in [
        (&token, concert.schedule_id, 1),
        (&other_token, other_concert.schedule_id, 1),
        (&token, concert.schedule_id, 2),
    ] {
        held.push(app.hold_ok(&user, t, schedule, &[seat]).await);
    }
    app.cancel_reservation(&user, &id_of(&held[0])).await;

    // Act
    let listed = app.user_reservations(&user).await;
    let foreign = app
        .get(&format!("/v1/users/{}/reservations", stranger.id), Some(&user))
        .await;

    // Assert
    let ids: Vec<String> = listed.iter().map(id_of).collect();
    let newest_first: Vec<String> = held.iter().rev().map(id_of).collect();
    assert_eq!(ids, newest_first);
    assert_eq!(listed[2]["status"], "CANCELLED");
    assert_eq!(listed[0]["status"], "HELD");
    assert_problem(foreign, 403, "FORBIDDEN").await;
}
#[tokio::test]
async fn cancelling_a_hold_makes_it_cancelled_and_frees_its_seats() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(5, PRICE, 2).await;
    let (user, token) = app.fan("alice", 0, concert.id).await;
    let (other, other_token) = app.fan("bob", 0, concert.id).await;
    let held = app.hold_ok(&user, &token, concert.schedule_id, &[1, 2]).await;

    // Act
    let response = app.cancel_reservation(&user, &id_of(&held)).await;

    // Assert
    assert_eq!(response.status(), StatusCode::OK);
    let cancelled: Value = response.json().await.unwrap();
    assert_eq!(cancelled["id"], held["id"]);
    assert_eq!(cancelled["status"], "CANCELLED");
    assert_eq!(app.reservation(&user, &id_of(&held)).await["status"], "CANCELLED");
    let map = app.seat_map(&user, &token, concert.schedule_id).await;
    assert!(map.iter().all(|s| s == "AVAILABLE"), "{map:?}");
    // The seats no longer count against the user's limit, and are free for others.
    app.hold_ok(&user, &token, concert.schedule_id, &[3, 4]).await;
    app.hold_ok(&other, &other_token, concert.schedule_id, &[1, 2]).await;
}

#[tokio::test]
async fn cancelling_a_paid_reservation_refunds_it() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(5, PRICE, 4).await;
    let (user, token) = app.fan("alice", 500_000, concert.id).await;
    let held = app.hold_ok(&user, &token, concert.schedule_id, &[2, 3]).await;
    let rid = id_of(&held);
    app.pay_ok(&user, &token, &rid).await;
    assert_eq!(app.balance(&user).await, 500_000 - 2 * PRICE);

    // Act
    let response = app.cancel_reservation(&user, &rid).await;

    // Assert
    assert_eq!(response.status(), StatusCode::OK);
    let refunded: Value = response.json().await.unwrap();
    assert_eq!(refunded["status"], "REFUNDED");
    assert_eq!(app.reservation(&user, &rid).await["status"], "REFUNDED");
    assert_eq!(app.balance(&user).await, 500_000);
    let has_refund = eventually(Duration::from_secs(2), || async {
        app.ledger(&user).await.first().is_some_and(|e| {
            e["type"] == "REFUND" && e["amount"] == 2 * PRICE && e["reference"] == rid && e["balance_after"] == 500_000
        })
    })
    .await;
    assert!(has_refund, "a REFUND entry: {:?}", app.ledger(&user).await);
    let token = app.active_token(&user, concert.id).await;
    let map = app.seat_map(&user, &token, concert.schedule_id).await;
    assert!(map.iter().all(|s| s == "AVAILABLE"), "{map:?}");
    app.hold_ok(&user, &token, concert.schedule_id, &[1, 2, 3, 4]).await;
    // Postgres agrees once the write-behind has drained.
    app.drain_writebehind().await;
    let rows = app
        .pg_rows(&format!(
            "select r.status, p.status, (select balance from app_user where user_id = {})
               from reservation r join payment p on p.reservation_id = r.reservation_id
              where r.reservation_id = '{rid}'",
            user.id
        ))
        .await;
    let row: (String, String, i64) = (rows[0].get(0), rows[0].get(1), rows[0].get(2));
    assert_eq!(row, ("REFUNDED".to_owned(), "REFUNDED".to_owned(), 500_000));
    let entries = app
        .pg_rows(&format!(
            "select amount from wallet_ledger where user_id = {} and entry_type = 'REFUND' and reference = '{rid}'",
            user.id
        ))
        .await;
    assert_eq!(
        entries.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>(),
        vec![2 * PRICE]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refunds_of_one_reservation_credit_once() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(5, PRICE, 4).await;
    let (user, token) = app.fan("alice", PRICE, concert.id).await;
    let rid = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[1]).await);
    app.pay_ok(&user, &token, &rid).await;

    // Act
    let responses = join_all((0..10).map(|_| app.cancel_reservation(&user, &rid))).await;

    // Assert
    for response in responses {
        if response.status() == StatusCode::OK {
            assert_eq!(response.json::<Value>().await.unwrap()["status"], "REFUNDED");
        } else {
            assert_problem(response, 409, "INVALID_STATE").await;
        }
    }
    assert_eq!(app.balance(&user).await, PRICE, "refunded once");
    let refunds = app
        .ledger(&user)
        .await
        .into_iter()
        .filter(|e| e["type"] == "REFUND")
        .count();
    assert_eq!(refunds, 1);
}

#[tokio::test]
async fn cancelled_and_refunded_reservations_cannot_be_cancelled_again() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(5, PRICE, 4).await;
    let (user, token) = app.fan("alice", PRICE, concert.id).await;
    let cancelled = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[1]).await);
    let refunded = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[2]).await);
    app.cancel_reservation(&user, &cancelled).await;
    app.pay_ok(&user, &token, &refunded).await;
    app.cancel_reservation(&user, &refunded).await;

    // Act
    let again = app.cancel_reservation(&user, &cancelled).await;
    let twice = app.cancel_reservation(&user, &refunded).await;

    // Assert
    assert_problem(again, 409, "INVALID_STATE").await;
    assert_problem(twice, 409, "INVALID_STATE").await;
    assert_eq!(app.balance(&user).await, PRICE, "refunded once");
}

#[tokio::test]
async fn an_expired_hold_cannot_be_cancelled() {
    // Arrange
    let app = spawn_app_with(TestConfig {
        hold_ttl_seconds: 1,
        ..TestConfig::default()
    })
    .await;
    let concert = app.create_simple_concert(5, PRICE, 4).await;
    let (user, token) = app.fan("alice", 0, concert.id).await;
    let held = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[1]).await);
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // Act
    let response = app.cancel_reservation(&user, &held).await;

    // Assert
    assert_problem(response, 409, "INVALID_STATE").await;
    assert_eq!(app.reservation(&user, &held).await["status"], "EXPIRED");
}

#[tokio::test]
async fn cancelling_another_users_or_an_unknown_reservation_is_404() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(5, PRICE, 4).await;
    let (owner, token) = app.fan("owner", 0, concert.id).await;
    let (stranger, _) = app.fan("stranger", 0, concert.id).await;
    let held = id_of(&app.hold_ok(&owner, &token, concert.schedule_id, &[1]).await);

    // Act
    let theirs = app.cancel_reservation(&stranger, &held).await;
    let unknown = app.cancel_reservation(&owner, &Uuid::now_v7().to_string()).await;
    let malformed = app.cancel_reservation(&owner, "42").await;

    // Assert
    assert_problem(theirs, 404, "RESERVATION_NOT_FOUND").await;
    assert_problem(unknown, 404, "RESERVATION_NOT_FOUND").await;
    assert_problem(malformed, 400, "MALFORMED_REQUEST").await;
    assert_eq!(app.reservation(&owner, &held).await["status"], "HELD");
}

#[tokio::test]
async fn a_paid_reservation_cannot_be_refunded_once_the_show_has_started() {
    // Arrange: booking open, the show starts in 3 seconds.
    let app = spawn_app().await;
    let starts_in = Duration::from_secs(3);
    let starts_at = Utc::now() + chrono::Duration::from_std(starts_in).unwrap();
    let concert = app
        .create_concert(&concert_body(json!([{
            "starts_at": starts_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "booking_opens_at": time_in(-60), "seat_count": 5, "price": PRICE
        }])))
        .await;
    let concert = TestConcert {
        id: concert["id"].as_i64().unwrap(),
        schedule_id: concert["schedules"][0]["id"].as_i64().unwrap(),
    };
    let (user, token) = app.fan("alice", PRICE, concert.id).await;
    let rid = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[1]).await);
    app.pay_ok(&user, &token, &rid).await;
    let wait = (starts_at - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(200);
    tokio::time::sleep(wait).await;

    // Act
    let response = app.cancel_reservation(&user, &rid).await;

    // Assert
    assert_problem(response, 409, "BOOKING_CLOSED").await;
    assert_eq!(app.reservation(&user, &rid).await["status"], "CONFIRMED");
    assert_eq!(app.balance(&user).await, 0, "no refund");
    let token = app.active_token(&user, concert.id).await;
    assert_eq!(app.seat_map(&user, &token, concert.schedule_id).await[0], "SOLD");
}
