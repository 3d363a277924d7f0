//! Hold expiry: a lapsed hold reads EXPIRED, frees its seats and stops
//! counting against the purchase limit at once (API.md "Reservations").

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use ticketrush::sweeper::{sweep_all, SAGA_TIMEOUT};

use super::PRICE;
use crate::helpers::{assert_problem, id_of, spawn_app_with, TestApp, TestConfig};

/// A server whose holds last 1 s, with no sweeper running: only reads
/// and explicit sweeps release lapsed holds.
async fn app_without_sweeper() -> TestApp {
    let mut config = TestConfig {
        hold_ttl_seconds: 1,
        ..TestConfig::default()
    };
    config.background.sweeper = false;
    spawn_app_with(config).await
}

#[tokio::test]
async fn a_lapsed_hold_reads_expired_and_its_seats_can_be_held_again() {
    // Arrange
    let app = spawn_app_with(TestConfig {
        hold_ttl_seconds: 1,
        ..TestConfig::default()
    })
    .await;
    let concert = app.create_simple_concert(5, PRICE, 4).await;
    let (first, first_token) = app.fan("first", 0, concert.id).await;
    let (second, second_token) = app.fan("second", 0, concert.id).await;
    let held = app.hold_ok(&first, &first_token, concert.schedule_id, &[1, 2]).await;

    // Act
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // Assert
    let read = app.reservation(&first, &id_of(&held)).await;
    assert_eq!(read["status"], "EXPIRED");
    let map = app.seat_map(&second, &second_token, concert.schedule_id).await;
    assert!(map.iter().all(|s| s == "AVAILABLE"), "{map:?}");
    let listed: Value = app
        .schedules(&second, &second_token, concert.id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["schedules"][0]["available_seats"], 5);
    let taken = app.hold_ok(&second, &second_token, concert.schedule_id, &[2]).await;
    assert_eq!(taken["user_id"], second.id);
}

#[tokio::test]
async fn a_lapsed_hold_is_free_at_once_without_a_sweeper() {
    // Arrange
    let app = app_without_sweeper().await;
    let concert = app.create_simple_concert(5, PRICE, 4).await;
    let (first, first_token) = app.fan("first", 0, concert.id).await;
    let (second, second_token) = app.fan("second", 0, concert.id).await;
    let first_hold = app.hold_ok(&first, &first_token, concert.schedule_id, &[3]).await;

    // Act
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let retaken = app.hold(&second, &second_token, concert.schedule_id, &[3]).await;

    // Assert
    assert_eq!(retaken.status(), StatusCode::CREATED);
    assert_eq!(retaken.json::<Value>().await.unwrap()["user_id"], second.id);
    assert_eq!(app.reservation(&first, &id_of(&first_hold)).await["status"], "EXPIRED");
}

#[tokio::test]
async fn lapsed_holds_stop_counting_against_the_purchase_limit() {
    // Arrange
    let app = spawn_app_with(TestConfig {
        hold_ttl_seconds: 2,
        ..TestConfig::default()
    })
    .await;
    let concert = app.create_simple_concert(10, PRICE, 2).await;
    let (user, token) = app.fan("alice", 0, concert.id).await;
    app.hold_ok(&user, &token, concert.schedule_id, &[1, 2]).await;
    assert_problem(
        app.hold(&user, &token, concert.schedule_id, &[3]).await,
        409,
        "PURCHASE_LIMIT_EXCEEDED",
    )
    .await;

    // Act
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let response = app.hold(&user, &token, concert.schedule_id, &[3, 4]).await;

    // Assert
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn one_sweep_releases_every_lapsed_hold_in_small_script_calls() {
    // Arrange: 40 one-seat holds (more than one script call releases)
    // lapse with no sweeper running and nobody reading them.
    let app = app_without_sweeper().await;
    let concert = app.create_simple_concert(40, PRICE, 10).await;
    let mut seats = 1..=40;
    for name in ["a", "b", "c", "d"] {
        let (fan, token) = app.fan(name, 0, concert.id).await;
        for seat in seats.by_ref().take(10) {
            app.hold_ok(&fan, &token, concert.schedule_id, &[seat]).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // Act
    let sweeps = sweep_all(&app.redis, &app.settings, SAGA_TIMEOUT).await.expect("sweep");

    // Assert
    assert_eq!(sweeps.len(), 1);
    assert_eq!((sweeps[0].released, sweeps[0].holds), (40, 0), "{sweeps:?}");
    let (viewer, token) = app.fan("viewer", 0, concert.id).await;
    let map = app.seat_map(&viewer, &token, concert.schedule_id).await;
    assert!(map.iter().all(|s| s == "AVAILABLE"), "{map:?}");
}
