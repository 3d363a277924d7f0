//! A full rush: 60 fans buy 3 dates × 20 seats concurrently until sold out;
//! every seat is sold once, money is conserved and Postgres agrees.

use std::collections::{HashMap, HashSet};

use futures_util::future::join_all;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{id_of, spawn_app, TestApp, TestUser};

const RUSH_FANS: usize = 60;
const RUSH_DATES: usize = 3;
const RUSH_SEATS: i64 = 20;
const RUSH_PRICE: i64 = 80_000;
/// Every fan's wallet: more than the most a fan can buy (3 dates × the
/// default limit of 4 seats × the price), so no payment is refused.
const RUSH_BUDGET: i64 = 1_000_000;
/// Holds a fan tries (on 409, with other seats) before giving up a purchase.
const HOLD_TRIES: usize = 20;

/// The ids of the dates with free seats.
async fn open_dates(app: &TestApp, user: &TestUser, token: &str, concert_id: i64) -> Vec<i64> {
    let response = app.schedules(user, token, concert_id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect()
}

async fn free_seats(app: &TestApp, user: &TestUser, token: &str, schedule_id: i64) -> Vec<i64> {
    let map = app.seat_map(user, token, schedule_id).await;
    (1..)
        .zip(map)
        .filter(|(_, s)| s == "AVAILABLE")
        .map(|(n, _)| n)
        .collect()
}

/// One fan: buys 1–2 random free seats at a time until nothing is left.
/// Returns the fan's payments.
async fn rush(app: &TestApp, user: &TestUser, concert_id: i64, seed: u64) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut payments = Vec::new();
    'purchase: loop {
        let token = app.active_token(user, concert_id).await;
        for _ in 0..HOLD_TRIES {
            let dates = open_dates(app, user, &token, concert_id).await;
            let Some(&schedule) = dates.choose(&mut rng) else {
                break 'purchase;
            };
            let free = free_seats(app, user, &token, schedule).await;
            if free.is_empty() {
                continue;
            }
            let n = rng.random_range(1..=free.len().min(2));
            let seats: Vec<i64> = free.choose_multiple(&mut rng, n).copied().collect();
            let response = app.hold(user, &token, schedule, &seats).await;
            if response.status() == StatusCode::CREATED {
                let held: Value = response.json().await.unwrap();
                payments.push(app.pay_ok(user, &token, &id_of(&held)).await);
                continue 'purchase;
            }
            let problem: Value = response.json().await.unwrap();
            assert!(
                ["SEAT_UNAVAILABLE", "PURCHASE_LIMIT_EXCEEDED"].contains(&problem["code"].as_str().unwrap()),
                "{problem}"
            );
        }
        break;
    }
    payments
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_rush_sells_every_seat_once_and_conserves_money() {
    // Arrange
    let app = spawn_app().await;
    let starts_at = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let dates: Vec<Value> = (0..RUSH_DATES)
        .map(|_| json!({ "starts_at": starts_at, "seat_count": RUSH_SEATS, "price": RUSH_PRICE }))
        .collect();
    let concert = app
        .create_concert(&json!({ "title": "Rush", "artist": "Everyone", "venue": "Dome", "schedules": dates }))
        .await;
    let concert_id = concert["id"].as_i64().unwrap();
    let schedule_ids: Vec<i64> = concert["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    let names: Vec<String> = (0..RUSH_FANS).map(|i| format!("fan{i}")).collect();
    let fans = join_all(names.iter().map(|name| app.create_user_with(name, RUSH_BUDGET))).await;
    let seed: u64 = rand::random();

    // Act
    let bought = join_all(
        fans.iter()
            .enumerate()
            .map(|(i, fan)| rush(&app, fan, concert_id, seed.wrapping_add(i as u64))),
    )
    .await;

    // Assert
    let payments: Vec<Value> = bought.into_iter().flatten().collect();
    let (fan, token) = (&fans[0], app.active_token(&fans[0], concert_id).await);
    let mut sold = HashSet::new();
    for &schedule in &schedule_ids {
        for (n, status) in (1..).zip(app.seat_map(fan, &token, schedule).await) {
            assert_eq!(status, "SOLD", "seat {n} of {schedule} (seed {seed})");
            sold.insert((schedule, n));
        }
    }
    let mut reservations: HashMap<String, Value> = HashMap::new();
    for fan in &fans {
        for r in app.user_reservations(fan).await {
            reservations.insert(id_of(&r), r);
        }
    }
    let mut owner_of_seat: HashMap<(i64, i64), String> = HashMap::new();
    for r in reservations.values().filter(|r| r["status"] == "CONFIRMED") {
        for seat in r["seat_numbers"].as_array().unwrap() {
            let seat = (r["schedule_id"].as_i64().unwrap(), seat.as_i64().unwrap());
            let previous = owner_of_seat.insert(seat, id_of(r));
            assert!(previous.is_none(), "seat {seat:?} is in two confirmed reservations");
        }
    }
    assert_eq!(owner_of_seat.keys().copied().collect::<HashSet<_>>(), sold);
    assert!(payments.iter().all(|p| p["status"] == "SUCCESS"));
    let paid_seats: usize = payments
        .iter()
        .map(|p| {
            reservations[p["reservation_id"].as_str().unwrap()]["seat_numbers"]
                .as_array()
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(paid_seats, sold.len());
    let paid_reservations: HashSet<&str> = payments.iter().map(|p| p["reservation_id"].as_str().unwrap()).collect();
    let confirmed: HashSet<&str> = owner_of_seat.values().map(String::as_str).collect();
    assert_eq!(paid_reservations, confirmed);
    let balances: HashMap<i64, i64> = join_all(fans.iter().map(|f| async { (f.id, app.balance(f).await) }))
        .await
        .into_iter()
        .collect();
    let paid_total: i64 = payments.iter().map(|p| p["amount"].as_i64().unwrap()).sum();
    assert_eq!(paid_total, sold.len() as i64 * RUSH_PRICE);
    assert_eq!(
        balances.values().sum::<i64>() + paid_total,
        RUSH_FANS as i64 * RUSH_BUDGET,
        "money is conserved"
    );

    // Postgres, once the write-behind has drained, agrees with the API.
    app.drain_writebehind().await;
    let ids = schedule_ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let seats = app
        .pg_rows(&format!(
            "select schedule_id, seat_number, status, reservation_id::text from seat where schedule_id in ({ids})"
        ))
        .await;
    assert_eq!(seats.len(), sold.len());
    for row in &seats {
        let seat = (row.get::<_, i64>(0), i64::from(row.get::<_, i32>(1)));
        assert_eq!(row.get::<_, String>(2), "SOLD", "seat {seat:?} in Postgres");
        assert_eq!(row.get::<_, Option<String>>(3).as_ref(), owner_of_seat.get(&seat));
    }
    let pg_reservations: HashMap<String, String> = app
        .pg_rows("select reservation_id::text, status from reservation")
        .await
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let api_reservations: HashMap<String, String> = reservations
        .iter()
        .map(|(id, r)| (id.clone(), r["status"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(pg_reservations, api_reservations);
    let pg_payments: HashMap<String, (String, String, i64)> = app
        .pg_rows("select payment_id::text, reservation_id::text, status, amount from payment")
        .await
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect();
    let api_payments: HashMap<String, (String, String, i64)> = payments
        .iter()
        .map(|p| {
            let reservation = p["reservation_id"].as_str().unwrap().to_owned();
            (
                id_of(p),
                (reservation, "SUCCESS".to_owned(), p["amount"].as_i64().unwrap()),
            )
        })
        .collect();
    assert_eq!(pg_payments, api_payments);
    let pg_balances: HashMap<i64, i64> = app
        .pg_rows("select user_id, balance from app_user")
        .await
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(pg_balances, balances);
}
