//! What can be booked: the available dates of a concert and the seat map
//! of a date (API.md "Concerts").

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{concert_body, open_schedule, seats_with, time_in, DAY, PRICE};
use crate::helpers::{assert_problem, id_of, spawn_app};

#[tokio::test]
async fn only_dates_open_for_booking_with_free_seats_are_listed() {
    // Arrange: open, opening in an hour, already started, and a tiny one
    // that is about to sell out.
    let app = spawn_app().await;
    let concert = app
        .create_concert(&concert_body(json!([
            open_schedule(5, 4),
            { "starts_at": time_in(30 * DAY), "booking_opens_at": time_in(3600), "seat_count": 5, "price": PRICE },
            { "starts_at": time_in(-3600), "booking_opens_at": time_in(-2 * 3600), "seat_count": 5, "price": PRICE },
            open_schedule(2, 2),
        ])))
        .await;
    let concert_id = concert["id"].as_i64().unwrap();
    let ids: Vec<i64> = concert["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    let (user, token) = app.fan("alice", 10 * PRICE, concert_id).await;
    app.hold_ok(&user, &token, ids[0], &[2, 4]).await;
    let tiny = app.hold_ok(&user, &token, ids[3], &[1, 2]).await;

    // Act
    let before_sell_out = app.schedules(&user, &token, concert_id).await;
    app.pay_ok(&user, &token, &id_of(&tiny)).await;
    let token = app.active_token(&user, concert_id).await;
    let after_sell_out = app.schedules(&user, &token, concert_id).await;

    // Assert
    assert_eq!(before_sell_out.status(), StatusCode::OK);
    let before: Value = before_sell_out.json().await.unwrap();
    assert_eq!(before["concert_id"], concert_id);
    let listed: Vec<i64> = before["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        listed,
        vec![ids[0]],
        "held seats are not available: the tiny date has none"
    );
    let open = &before["schedules"][0];
    assert_eq!(open["total_seats"], 5);
    assert_eq!(open["available_seats"], 3);
    assert_eq!(open["price"], PRICE);
    assert_eq!(open["purchase_limit"], 4);
    assert!(open["starts_at"].is_string() && open["booking_opens_at"].is_string());
    let after: Value = after_sell_out.json().await.unwrap();
    assert_eq!(after["schedules"].as_array().unwrap().len(), 1);
    assert_eq!(after["schedules"][0]["id"], ids[0]);
}

#[tokio::test]
async fn available_dates_need_an_active_queue_token() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(5, PRICE, 4).await;
    let user = app.create_user("alice").await;

    // Act
    let response = app
        .get(&format!("/v1/concerts/{}/schedules", concert.id), Some(&user))
        .await;

    // Assert
    assert_problem(response, 401, "QUEUE_TOKEN_REQUIRED").await;
}

#[tokio::test]
async fn a_freed_seat_counts_as_available_again() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(3, PRICE, 4).await;
    let (user, token) = app.fan("alice", 0, concert.id).await;
    let held = app.hold_ok(&user, &token, concert.schedule_id, &[1, 2, 3]).await;
    let sold_out: Value = app.schedules(&user, &token, concert.id).await.json().await.unwrap();

    // Act
    app.cancel_reservation(&user, &id_of(&held)).await;
    let listed: Value = app.schedules(&user, &token, concert.id).await.json().await.unwrap();

    // Assert
    assert_eq!(sold_out["schedules"], json!([]));
    assert_eq!(listed["schedules"][0]["available_seats"], 3);
}
#[tokio::test]
async fn seat_maps_show_available_held_and_sold_seats_and_filter_by_status() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(6, PRICE, 4).await;
    let (holder, holder_token) = app.fan("holder", 0, concert.id).await;
    let (buyer, buyer_token) = app.fan("buyer", PRICE * 2, concert.id).await;
    app.hold_ok(&holder, &holder_token, concert.schedule_id, &[2, 5]).await;
    let bought = app.hold_ok(&buyer, &buyer_token, concert.schedule_id, &[3]).await;
    app.pay_ok(&buyer, &buyer_token, &id_of(&bought)).await;

    // Act
    let response = app
        .gated(
            Method::GET,
            &format!("/v1/schedules/{}/seats", concert.schedule_id),
            &holder,
            &holder_token,
        )
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), StatusCode::OK);
    let map: Value = response.json().await.unwrap();
    assert_eq!(map["schedule_id"], concert.schedule_id);
    let statuses = ["AVAILABLE", "HELD", "SOLD", "AVAILABLE", "HELD", "AVAILABLE"];
    let expected: Vec<Value> = statuses
        .iter()
        .enumerate()
        .map(|(i, s)| json!({ "number": i + 1, "price": PRICE, "status": s }))
        .collect();
    assert_eq!(map["seats"], json!(expected));
    let (user, token) = (&holder, holder_token.as_str());
    assert_eq!(
        seats_with(&app, user, token, concert.schedule_id, "AVAILABLE").await,
        vec![1, 4, 6]
    );
    assert_eq!(
        seats_with(&app, user, token, concert.schedule_id, "HELD").await,
        vec![2, 5]
    );
    assert_eq!(
        seats_with(&app, user, token, concert.schedule_id, "SOLD").await,
        vec![3]
    );
}

#[tokio::test]
async fn seat_maps_refuse_bad_filters_unknown_schedules_and_missing_tokens() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(6, PRICE, 4).await;
    let (user, token) = app.fan("alice", 0, concert.id).await;
    let path = format!("/v1/schedules/{}/seats", concert.schedule_id);

    // Act
    let bad_filter = app
        .gated(Method::GET, &format!("{path}?status=FREE"), &user, &token)
        .send()
        .await
        .unwrap();
    let unknown = app
        .gated(Method::GET, "/v1/schedules/987654/seats", &user, &token)
        .send()
        .await
        .unwrap();
    let malformed = app
        .gated(Method::GET, "/v1/schedules/x/seats", &user, &token)
        .send()
        .await
        .unwrap();
    let no_token = app.get(&path, Some(&user)).await;

    // Assert
    assert_problem(bad_filter, 400, "MALFORMED_REQUEST").await;
    assert_problem(unknown, 404, "SCHEDULE_NOT_FOUND").await;
    assert_problem(malformed, 400, "MALFORMED_REQUEST").await;
    assert_problem(no_token, 401, "QUEUE_TOKEN_REQUIRED").await;
}
