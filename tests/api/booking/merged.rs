//! Holds merged per concert (`booking::Holds`): holds sent together share
//! script calls, and each is placed in arrival order, all or nothing, with
//! its own answer, exactly as alone.

use futures_util::future::join_all;
use serde_json::Value;
use ticketrush::booking::{BookingError, Catalog, Holds, NewHold, Schedule, SeatSelection};
use ticketrush::queue::{GateError, QueueToken};

use super::PRICE;
use crate::helpers::{spawn_app, TestApp, TestUser};

async fn schedule(app: &TestApp, concert_id: i64, schedule_id: i64) -> Schedule {
    let concert = Catalog::new()
        .concert(&app.redis, concert_id)
        .await
        .expect("redis answers");
    concert
        .expect("the concert exists")
        .schedule(schedule_id)
        .expect("its schedule")
        .clone()
}

fn hold(app: &TestApp, schedule: &Schedule, fan: &(TestUser, String), seats: &[i64], key: &str) -> NewHold {
    let token = QueueToken::parse(&fan.1).expect("a well-formed token");
    let seats = SeatSelection::parse(seats.to_vec(), schedule).expect("valid seats");
    NewHold::new(&app.settings.booking, token, fan.0.id, schedule, seats, key)
}

fn reservation(answer: Result<Vec<u8>, BookingError>) -> Value {
    serde_json::from_slice(&answer.expect("the hold is placed")).expect("reservation json")
}

#[tokio::test]
async fn holds_sent_together_share_calls_and_each_is_placed_as_alone() {
    let app = spawn_app().await;
    let concert = app.create_simple_concert(30, PRICE, 2).await;
    let schedule = schedule(&app, concert.id, concert.schedule_id).await;
    let names: Vec<String> = (0..20).map(|i| format!("fan{i}")).collect();
    let fans = join_all(names.iter().map(|name| app.fan(name, 0, concert.id))).await;
    let holds = Holds::new(app.redis.clone());

    // In arrival order: seat i+1 for fan i; fan 0 again on seat 1 (now
    // held); fan 1 with fan 0's token; fan 2 a second and a third seat (past
    // its limit of 2); fan 3 twice with one idempotency key.
    let mut asks: Vec<NewHold> = fans
        .iter()
        .enumerate()
        .map(|(i, fan)| hold(&app, &schedule, fan, &[i as i64 + 1], ""))
        .collect();
    asks.push(hold(&app, &schedule, &fans[0], &[1], ""));
    let mut stolen = hold(&app, &schedule, &fans[0], &[21], "");
    stolen.user_id = fans[1].0.id;
    asks.push(stolen);
    asks.push(hold(&app, &schedule, &fans[2], &[22, 23], ""));
    asks.push(hold(&app, &schedule, &fans[3], &[25], "k"));
    asks.push(hold(&app, &schedule, &fans[3], &[25], "k"));
    let mut answers = join_all(asks.into_iter().map(|h| holds.place(h))).await;

    let again = reservation(answers.pop().expect("answer"));
    let first = reservation(answers.pop().expect("answer"));
    assert_eq!(again, first, "a retry with the key gets the first answer");
    assert_eq!(first["seat_numbers"], serde_json::json!([25]));
    let over = answers.pop().expect("answer");
    assert!(matches!(over, Err(BookingError::PurchaseLimitExceeded(_))), "{over:?}");
    let stolen = answers.pop().expect("answer");
    assert!(
        matches!(stolen, Err(BookingError::Gate(GateError::Forbidden))),
        "{stolen:?}"
    );
    let taken = answers.pop().expect("answer");
    assert!(matches!(taken, Err(BookingError::SeatUnavailable(_))), "{taken:?}");
    for (i, answer) in answers.into_iter().enumerate() {
        let held = reservation(answer);
        assert_eq!(held["user_id"], fans[i].0.id);
        assert_eq!(held["seat_numbers"], serde_json::json!([i + 1]));
        assert_eq!(held["status"], "HELD");
    }
    let (user, token) = &fans[0];
    let map = app.seat_map(user, token, concert.schedule_id).await;
    let held: Vec<usize> = (0..30).filter(|&n| map[n] == "HELD").map(|n| n + 1).collect();
    assert_eq!(held, (1..=20).chain([25]).collect::<Vec<_>>());
    // 25 holds sent together: the first may go out alone, the rest ride
    // along; one call each would be 25.
    assert!(holds.calls() <= 5, "{} calls for 25 holds", holds.calls());
}
