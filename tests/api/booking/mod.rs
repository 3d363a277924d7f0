//! The catalog, available dates, seat maps, seat holds and their expiry,
//! reading reservations, cancelling and refunding them (API.md "Concerts",
//! "Reservations"). Helpers shared by the files below live here.

mod availability;
mod catalog;
mod expiry;
mod hold;
mod merged;
mod race;
mod reservation;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{TestApp, TestUser};

/// The price of a seat in most tests.
const PRICE: i64 = 150_000;

/// An RFC 3339 time `seconds` from now (negative: in the past).
fn time_in(seconds: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(seconds)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Seconds in a day.
const DAY: i64 = 86_400;

fn parse_time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("a time string"))
        .expect("an RFC 3339 time")
        .with_timezone(&Utc)
}

/// A concert request with these schedules.
fn concert_body(schedules: Value) -> Value {
    json!({
        "title": "Rush Hour", "artist": "The Queue", "venue": "Olympic Hall",
        "description": "one night only", "schedules": schedules
    })
}

/// A schedule open for booking now, starting in 30 days.
fn open_schedule(seat_count: i64, purchase_limit: i64) -> Value {
    json!({ "starts_at": time_in(30 * DAY), "seat_count": seat_count, "price": PRICE,
            "purchase_limit": purchase_limit })
}

/// The seat numbers of a schedule with `status`, via `?status=`.
async fn seats_with(app: &TestApp, user: &TestUser, token: &str, schedule_id: i64, status: &str) -> Vec<i64> {
    let response = app
        .gated(
            Method::GET,
            &format!("/v1/schedules/{schedule_id}/seats?status={status}"),
            user,
            token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["status"], status);
            s["number"].as_i64().unwrap()
        })
        .collect()
}
