//! Holding seats: the reservation a hold returns and every reason a hold
//! is refused, which changes nothing (API.md "Reservations").

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{concert_body, open_schedule, parse_time, time_in, DAY, PRICE};
use crate::helpers::{assert_problem, id_of, spawn_app, spawn_app_with, TestConfig};

#[tokio::test]
async fn a_hold_returns_the_reservation_and_holds_its_seats() {
    // Arrange
    let app = spawn_app_with(TestConfig {
        hold_ttl_seconds: 120,
        ..TestConfig::default()
    })
    .await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", 0, concert.id).await;

    // Act
    let response = app.hold(&user, &token, concert.schedule_id, &[8, 7]).await;

    // Assert
    assert_eq!(response.status(), StatusCode::CREATED);
    let r: Value = response.json().await.unwrap();
    let id = Uuid::parse_str(r["id"].as_str().unwrap()).expect("a UUID");
    assert_eq!(id.get_version_num(), 7);
    assert_eq!(r["user_id"], user.id);
    assert_eq!(r["concert_id"], concert.id);
    assert_eq!(r["schedule_id"], concert.schedule_id);
    assert_eq!(r["seat_numbers"], json!([8, 7]));
    assert_eq!(r["amount"], 2 * PRICE);
    assert_eq!(r["status"], "HELD");
    let held_at = parse_time(&r["held_at"]);
    assert!((held_at - Utc::now()).num_seconds().abs() < 60, "held_at is now");
    assert_eq!(parse_time(&r["expires_at"]) - held_at, chrono::Duration::seconds(120));
    let map = app.seat_map(&user, &token, concert.schedule_id).await;
    assert_eq!(map[6], "HELD");
    assert_eq!(map[7], "HELD");
    assert_eq!(map.iter().filter(|s| *s == "AVAILABLE").count(), 8);
}

#[tokio::test]
async fn holding_on_an_unknown_schedule_is_404_schedule_not_found() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", 0, concert.id).await;

    // Act
    let response = app.hold(&user, &token, 987_654, &[1]).await;

    // Assert
    assert_problem(response, 404, "SCHEDULE_NOT_FOUND").await;
}

#[tokio::test]
async fn invalid_seat_selections_are_422_and_hold_nothing() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 3).await;
    let (user, token) = app.fan("alice", 0, concert.id).await;
    let cases: [(&str, &[i64]); 6] = [
        ("empty", &[]),
        ("duplicate", &[4, 4]),
        ("seat 0", &[0]),
        ("negative", &[-1]),
        ("past the last seat", &[11]),
        ("more than the purchase limit", &[1, 2, 3, 4]),
    ];

    for (case, seats) in cases {
        // Act
        let response = app.hold(&user, &token, concert.schedule_id, seats).await;

        // Assert
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{case}");
        assert_problem(response, 422, "INVALID_SEATS").await;
    }
    let map = app.seat_map(&user, &token, concert.schedule_id).await;
    assert!(map.iter().all(|s| s == "AVAILABLE"), "{map:?}");
    assert!(app.user_reservations(&user).await.is_empty());
}

#[tokio::test]
async fn holds_with_wrong_types_are_400() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", 0, concert.id).await;
    let cases = [
        json!({ "schedule_id": concert.schedule_id, "seat_numbers": ["1"] }),
        json!({ "schedule_id": concert.schedule_id.to_string(), "seat_numbers": [1] }),
        json!({ "schedule_id": concert.schedule_id }),
    ];

    for body in cases {
        // Act
        let response = app
            .gated(Method::POST, "/v1/reservations", &user, &token)
            .json(&body)
            .send()
            .await
            .unwrap();

        // Assert
        assert_problem(response, 400, "MALFORMED_REQUEST").await;
    }
}

#[tokio::test]
async fn a_seat_held_or_sold_to_someone_else_is_409_seat_unavailable() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (holder, holder_token) = app.fan("holder", 0, concert.id).await;
    let (buyer, buyer_token) = app.fan("buyer", PRICE, concert.id).await;
    let (late, late_token) = app.fan("late", 0, concert.id).await;
    app.hold_ok(&holder, &holder_token, concert.schedule_id, &[1]).await;
    let bought = app.hold_ok(&buyer, &buyer_token, concert.schedule_id, &[2]).await;
    app.pay_ok(&buyer, &buyer_token, &id_of(&bought)).await;
    let before = app.seat_map(&late, &late_token, concert.schedule_id).await;

    // Act
    let held = app.hold(&late, &late_token, concert.schedule_id, &[1]).await;
    let sold = app.hold(&late, &late_token, concert.schedule_id, &[2]).await;
    let again = app.hold(&holder, &holder_token, concert.schedule_id, &[1]).await;

    // Assert
    assert_problem(held, 409, "SEAT_UNAVAILABLE").await;
    assert_problem(sold, 409, "SEAT_UNAVAILABLE").await;
    assert_problem(again, 409, "SEAT_UNAVAILABLE").await;
    assert_eq!(app.seat_map(&late, &late_token, concert.schedule_id).await, before);
    assert!(app.user_reservations(&late).await.is_empty());
}

#[tokio::test]
async fn a_hold_is_all_or_nothing() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let (first, first_token) = app.fan("first", 0, concert.id).await;
    let (second, second_token) = app.fan("second", 0, concert.id).await;
    app.hold_ok(&first, &first_token, concert.schedule_id, &[3]).await;

    // Act
    let refused = app.hold(&second, &second_token, concert.schedule_id, &[1, 2, 3]).await;

    // Assert
    assert_problem(refused, 409, "SEAT_UNAVAILABLE").await;
    let map = app.seat_map(&second, &second_token, concert.schedule_id).await;
    assert_eq!(&map[..3], ["AVAILABLE", "AVAILABLE", "HELD"], "seats 1 and 2 stay free");
    assert!(app.user_reservations(&second).await.is_empty());
    app.hold_ok(&second, &second_token, concert.schedule_id, &[1, 2]).await;
}

#[tokio::test]
async fn the_purchase_limit_counts_seats_held_and_bought() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, PRICE, 3).await;
    let (user, token) = app.fan("alice", PRICE, concert.id).await;
    let bought = app.hold_ok(&user, &token, concert.schedule_id, &[1]).await;
    app.pay_ok(&user, &token, &id_of(&bought)).await;
    let token = app.active_token(&user, concert.id).await;
    app.hold_ok(&user, &token, concert.schedule_id, &[2]).await;
    let before = app.seat_map(&user, &token, concert.schedule_id).await;

    // Act
    let over = app.hold(&user, &token, concert.schedule_id, &[3, 4]).await;

    // Assert
    assert_problem(over, 409, "PURCHASE_LIMIT_EXCEEDED").await;
    assert_eq!(app.seat_map(&user, &token, concert.schedule_id).await, before);
    assert_eq!(app.user_reservations(&user).await.len(), 2);
    app.hold_ok(&user, &token, concert.schedule_id, &[3]).await;
    let full = app.hold(&user, &token, concert.schedule_id, &[4]).await;
    assert_problem(full, 409, "PURCHASE_LIMIT_EXCEEDED").await;
}

#[tokio::test]
async fn the_purchase_limit_is_per_schedule() {
    // Arrange
    let app = spawn_app().await;
    let concert = app
        .create_concert(&concert_body(json!([open_schedule(5, 1), open_schedule(5, 1)])))
        .await;
    let concert_id = concert["id"].as_i64().unwrap();
    let (first, second) = (
        concert["schedules"][0]["id"].as_i64().unwrap(),
        concert["schedules"][1]["id"].as_i64().unwrap(),
    );
    let (user, token) = app.fan("alice", 0, concert_id).await;
    app.hold_ok(&user, &token, first, &[1]).await;

    // Act
    let other_date = app.hold(&user, &token, second, &[1]).await;
    let same_date = app.hold(&user, &token, first, &[2]).await;

    // Assert
    assert_eq!(other_date.status(), StatusCode::CREATED);
    assert_problem(same_date, 409, "PURCHASE_LIMIT_EXCEEDED").await;
}

#[tokio::test]
async fn holding_outside_the_booking_window_is_409_booking_closed() {
    // Arrange
    let app = spawn_app().await;
    let concert = app
        .create_concert(&concert_body(json!([
            { "starts_at": time_in(30 * DAY), "booking_opens_at": time_in(3600), "seat_count": 5, "price": PRICE },
            { "starts_at": time_in(-60), "booking_opens_at": time_in(-3600), "seat_count": 5, "price": PRICE },
        ])))
        .await;
    let concert_id = concert["id"].as_i64().unwrap();
    let not_yet = concert["schedules"][0]["id"].as_i64().unwrap();
    let started = concert["schedules"][1]["id"].as_i64().unwrap();
    let (user, token) = app.fan("alice", 0, concert_id).await;

    // Act
    let early = app.hold(&user, &token, not_yet, &[1]).await;
    let late = app.hold(&user, &token, started, &[1]).await;

    // Assert
    assert_problem(early, 409, "BOOKING_CLOSED").await;
    assert_problem(late, 409, "BOOKING_CLOSED").await;
    assert!(app
        .seat_map(&user, &token, not_yet)
        .await
        .iter()
        .all(|s| s == "AVAILABLE"));
    assert!(app.user_reservations(&user).await.is_empty());
}

#[tokio::test]
async fn holds_need_an_active_token_of_the_same_user_and_concert() {
    // Arrange
    let app = spawn_app_with(TestConfig {
        active_max: 1,
        ..TestConfig::default()
    })
    .await;
    let concert = app.create_simple_concert(10, PRICE, 4).await;
    let other_concert = app.create_simple_concert(10, PRICE, 4).await;
    let (user, token) = app.fan("alice", 0, concert.id).await;
    let other_user = app.create_user("bob").await;
    let waiting: Value = app.issue_token(&other_user, concert.id).await.json().await.unwrap();
    assert_eq!(waiting["status"], "WAITING");
    let waiting = waiting["token"].as_str().unwrap();
    let elsewhere = app.active_token(&user, other_concert.id).await;
    let sid = concert.schedule_id;

    // Act
    let body = json!({ "schedule_id": sid, "seat_numbers": [1] });
    let no_token = app.post("/v1/reservations", &body, Some(&user)).await;
    let garbage = app.hold(&user, "not-a-token", sid, &[1]).await;
    let unknown = app
        .hold(&user, &format!("{}.AAAAAAAAAAAAAAAAAAAAAA", concert.id), sid, &[1])
        .await;
    let not_active = app.hold(&other_user, waiting, sid, &[1]).await;
    let someone_elses = app.hold(&other_user, &token, sid, &[1]).await;
    let wrong_concert = app.hold(&user, &elsewhere, sid, &[1]).await;
    let no_key = app
        .request(Method::POST, "/v1/reservations")
        .header("Queue-Token", &token)
        .json(&body)
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(no_token, 401, "QUEUE_TOKEN_REQUIRED").await;
    assert_problem(garbage, 401, "QUEUE_TOKEN_INVALID").await;
    assert_problem(unknown, 401, "QUEUE_TOKEN_INVALID").await;
    assert_problem(not_active, 403, "QUEUE_NOT_ACTIVE").await;
    assert_problem(someone_elses, 403, "FORBIDDEN").await;
    assert_problem(wrong_concert, 403, "QUEUE_TOKEN_WRONG_CONCERT").await;
    assert_problem(no_key, 401, "UNAUTHENTICATED").await;
    let map = app.seat_map(&user, &token, sid).await;
    assert!(map.iter().all(|s| s == "AVAILABLE"), "refused holds hold nothing");
}
