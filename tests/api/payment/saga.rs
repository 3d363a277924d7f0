//! Recovery of a payment or refund saga that crashed between its steps:
//! money is neither lost nor created (DESIGN.md "The flows", API.md
//! "Payments", "Reservations").

use std::time::Duration;

use serde_json::Value;
use ticketrush::booking::refund_steps_only;
use ticketrush::payment::debit_only;
use ticketrush::sweeper::sweep_concert;
use uuid::Uuid;

use super::{begin_payment_only, get_payment, payment_entries, PRICE};
use crate::helpers::{assert_problem, id_of, spawn_app, spawn_app_with, TestConfig};

#[tokio::test]
async fn a_payment_abandoned_after_its_first_step_is_voided_and_the_hold_restored() {
    // Arrange: step 1 ran (the reservation is being paid), then the server died.
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", PRICE, concert.id).await;
    let rid = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[1]).await);
    let pending = begin_payment_only(&app, &user, &token, &rid).await;
    assert_eq!(pending.status, "PENDING");
    assert_eq!(
        app.reservation(&user, &rid).await["status"],
        "HELD",
        "a reservation being paid reads HELD"
    );
    assert_problem(app.pay(&user, &token, &rid).await, 409, "ALREADY_PAID").await;

    // Act
    let sweep = sweep_concert(&app.redis, &app.settings, concert.id, Duration::ZERO)
        .await
        .unwrap();

    // Assert
    assert_eq!(sweep.recovered, 1);
    let payment: Value = get_payment(&app, Some(&user), &pending.id).await.json().await.unwrap();
    assert_eq!(payment["status"], "FAILED");
    assert_eq!(payment["reason"], "ABANDONED");
    assert_eq!(app.reservation(&user, &rid).await["status"], "HELD");
    assert_eq!(app.seat_map(&user, &token, concert.schedule_id).await[0], "HELD");
    assert_eq!(app.balance(&user).await, PRICE, "no money moved");
    assert!(payment_entries(&app, &user).await.is_empty());
    // The hold can still be paid, once.
    app.pay_ok(&user, &token, &rid).await;
    assert_eq!(app.balance(&user).await, 0);
}

#[tokio::test]
async fn a_payment_abandoned_after_the_debit_is_confirmed_by_recovery() {
    // Arrange: steps 1 and 2 ran (the wallet is debited), then the server died.
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", 3 * PRICE, concert.id).await;
    let rid = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[1, 2]).await);
    let pending = begin_payment_only(&app, &user, &token, &rid).await;
    assert_eq!(debit_only(&app.redis, &pending).await.unwrap(), "DEBITED");
    assert_eq!(app.reservation(&user, &rid).await["status"], "HELD");

    // Act
    let sweep = sweep_concert(&app.redis, &app.settings, concert.id, Duration::ZERO)
        .await
        .unwrap();

    // Assert
    assert_eq!(sweep.recovered, 1);
    let payment: Value = get_payment(&app, Some(&user), &pending.id).await.json().await.unwrap();
    assert_eq!(payment["status"], "SUCCESS");
    assert_eq!(payment["balance_after"], PRICE);
    assert_eq!(app.reservation(&user, &rid).await["status"], "CONFIRMED");
    assert_eq!(app.token_status(&token).await["status"], "EXPIRED");
    let token = app.active_token(&user, concert.id).await;
    assert_eq!(
        &app.seat_map(&user, &token, concert.schedule_id).await[..2],
        ["SOLD", "SOLD"]
    );
    // Debited exactly once, however often the steps are replayed.
    assert_eq!(debit_only(&app.redis, &pending).await.unwrap(), "DEBITED");
    let again = sweep_concert(&app.redis, &app.settings, concert.id, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(again.recovered, 0);
    assert_eq!(app.balance(&user).await, PRICE);
    let entries = payment_entries(&app, &user).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["reference"], pending.id);
    assert_problem(app.pay(&user, &token, &rid).await, 409, "ALREADY_PAID").await;
}

#[tokio::test]
async fn a_late_debit_after_recovery_voided_the_payment_is_refused() {
    // Arrange: step 1 ran, recovery voided the payment, then the crashed
    // process's debit arrives late.
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", PRICE, concert.id).await;
    let rid = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[1]).await);
    let pending = begin_payment_only(&app, &user, &token, &rid).await;
    sweep_concert(&app.redis, &app.settings, concert.id, Duration::ZERO)
        .await
        .unwrap();

    // Act
    let late = debit_only(&app.redis, &pending).await.unwrap();

    // Assert
    assert_eq!(late, "VOID");
    assert_eq!(app.balance(&user).await, PRICE);
    assert!(payment_entries(&app, &user).await.is_empty());
    let payment: Value = get_payment(&app, Some(&user), &pending.id).await.json().await.unwrap();
    assert_eq!(payment["status"], "FAILED");
    assert_eq!(app.reservation(&user, &rid).await["status"], "HELD");
}

#[tokio::test]
async fn a_hold_that_lapsed_while_its_abandoned_payment_was_pending_expires_on_recovery() {
    // Arrange
    let app = spawn_app_with(TestConfig {
        hold_ttl_seconds: 1,
        ..TestConfig::default()
    })
    .await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", PRICE, concert.id).await;
    let rid = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[1]).await);
    let pending = begin_payment_only(&app, &user, &token, &rid).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        app.seat_map(&user, &token, concert.schedule_id).await[0],
        "HELD",
        "a paying hold does not lapse"
    );

    // Act
    sweep_concert(&app.redis, &app.settings, concert.id, Duration::ZERO)
        .await
        .unwrap();

    // Assert
    let payment: Value = get_payment(&app, Some(&user), &pending.id).await.json().await.unwrap();
    assert_eq!(payment["status"], "FAILED");
    assert_eq!(app.reservation(&user, &rid).await["status"], "EXPIRED");
    assert_eq!(app.seat_map(&user, &token, concert.schedule_id).await[0], "AVAILABLE");
    assert_eq!(app.balance(&user).await, PRICE);
    app.hold_ok(&user, &token, concert.schedule_id, &[1]).await;
}

#[tokio::test]
async fn a_debited_payment_is_confirmed_by_recovery_even_after_its_hold_would_have_lapsed() {
    // Arrange
    let app = spawn_app_with(TestConfig {
        hold_ttl_seconds: 1,
        ..TestConfig::default()
    })
    .await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", PRICE, concert.id).await;
    let (other, other_token) = app.fan("bob", 0, concert.id).await;
    let rid = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[1]).await);
    let pending = begin_payment_only(&app, &user, &token, &rid).await;
    debit_only(&app.redis, &pending).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_problem(
        app.hold(&other, &other_token, concert.schedule_id, &[1]).await,
        409,
        "SEAT_UNAVAILABLE",
    )
    .await;

    // Act
    sweep_concert(&app.redis, &app.settings, concert.id, Duration::ZERO)
        .await
        .unwrap();

    // Assert
    assert_eq!(app.reservation(&user, &rid).await["status"], "CONFIRMED");
    assert_eq!(app.seat_map(&other, &other_token, concert.schedule_id).await[0], "SOLD");
    assert_eq!(app.balance(&user).await, 0);
}

/// A refund of a paid one-seat reservation that crashed after step 1
/// (the refund is recorded) or after step 2 too (the wallet is credited):
/// the sweeper finishes it, crediting exactly once.
async fn refund_crashed_after(credited: bool) {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", PRICE, concert.id).await;
    let rid = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[1]).await);
    app.pay_ok(&user, &token, &rid).await;
    let id = Uuid::parse_str(&rid).unwrap();
    let started = refund_steps_only(&app.redis, user.id, &id, credited).await.unwrap();
    assert_eq!(started.status, "CONFIRMED");
    assert_eq!(app.balance(&user).await, if credited { PRICE } else { 0 });
    let token = app.active_token(&user, concert.id).await;
    assert_eq!(app.seat_map(&user, &token, concert.schedule_id).await[0], "SOLD");

    // Act
    let sweep = sweep_concert(&app.redis, &app.settings, concert.id, Duration::ZERO)
        .await
        .unwrap();

    // Assert
    assert_eq!(sweep.recovered, 1);
    assert_eq!(app.reservation(&user, &rid).await["status"], "REFUNDED");
    assert_eq!(app.balance(&user).await, PRICE, "credited once");
    assert_eq!(app.seat_map(&user, &token, concert.schedule_id).await[0], "AVAILABLE");
    let again = sweep_concert(&app.redis, &app.settings, concert.id, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(again.recovered, 0);
    assert_problem(app.cancel_reservation(&user, &rid).await, 409, "INVALID_STATE").await;
    assert_eq!(app.balance(&user).await, PRICE);
    let refunds: Vec<Value> = app
        .ledger(&user)
        .await
        .into_iter()
        .filter(|e| e["type"] == "REFUND")
        .collect();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(
        (&refunds[0]["amount"], &refunds[0]["reference"]),
        (&PRICE.into(), &rid.clone().into())
    );
    // Postgres agrees once the write-behind has drained.
    app.drain_writebehind().await;
    let rows = app
        .pg_rows(&format!(
            "select r.status, (select balance from app_user where user_id = {0}),
                    (select count(*) from wallet_ledger where user_id = {0} and entry_type = 'REFUND')
               from reservation r where r.reservation_id = '{rid}'",
            user.id
        ))
        .await;
    let row: (String, i64, i64) = (rows[0].get(0), rows[0].get(1), rows[0].get(2));
    assert_eq!(row, ("REFUNDED".to_owned(), PRICE, 1));
}

#[tokio::test]
async fn a_refund_abandoned_after_its_first_step_is_credited_and_finished_by_recovery() {
    refund_crashed_after(false).await;
}

#[tokio::test]
async fn a_refund_abandoned_after_the_credit_is_finished_by_recovery_without_a_second_credit() {
    refund_crashed_after(true).await;
}

#[tokio::test]
async fn one_sweep_finishes_more_abandoned_payments_than_a_call_releases_holds() {
    // Arrange: 20 payments abandoned after their first step (a sweep call
    // releases at most 16 lapsed holds; recovery is not held to that).
    let app = spawn_app().await;
    let concert = app.create_simple_concert(20, PRICE, 10).await;
    let mut pending = Vec::new();
    let mut seats = 1..=20;
    for name in ["alice", "bob"] {
        let (user, token) = app.fan(name, 10 * PRICE, concert.id).await;
        for seat in seats.by_ref().take(10) {
            let rid = id_of(&app.hold_ok(&user, &token, concert.schedule_id, &[seat]).await);
            pending.push((user.clone(), begin_payment_only(&app, &user, &token, &rid).await));
        }
    }

    // Act
    let sweep = sweep_concert(&app.redis, &app.settings, concert.id, Duration::ZERO)
        .await
        .unwrap();

    // Assert
    assert_eq!(sweep.recovered, 20);
    for (user, payment) in &pending {
        let read: Value = get_payment(&app, Some(user), &payment.id).await.json().await.unwrap();
        assert_eq!(read["status"], "FAILED", "{read}");
    }
}
