//! The pure, synchronous pieces of a request, each beside its baseline:
//!
//! - `parse_*`: request bodies with simd-json (`http::body::parse_json`,
//!   what the server runs) against serde_json on the same bytes;
//! - `render_reservation`: the reservation view as JSON (simd-json, what the
//!   server runs; serde_json; the whole hold reply path), against copying
//!   the finished bytes;
//! - `render_seat_map`: `render_seat_map` of a 20,000-seat schedule, against
//!   serde_json of the same seats and against copying the finished bytes
//! - `route`: `router::find` against a plain `match` on the same strings.
//!
//! Run: `cargo bench --bench http -- --warm-up-time 1 --measurement-time 3`.

mod common;

use std::hint::black_box;

use common::seat_map::seat_states;
use ticketrush::booking::render_seat_map as render;

use criterion::{BatchSize, Criterion, Throughput};
use http::Method;
use serde::{Deserialize, Serialize};
use ticketrush::booking::{ReservationState, Schedule, SeatFilter};
use ticketrush::http::body::parse_json;
use ticketrush::http::router;

/// The body of `POST /v1/reservations` (as the handler declares it).
#[derive(Deserialize)]
struct HoldRequest {
    #[allow(dead_code)]
    schedule_id: i64,
    #[allow(dead_code)]
    seat_numbers: Vec<i64>,
}

/// The body of `POST /v1/users/{id}/balance/charge`.
#[derive(Deserialize)]
struct ChargeRequest {
    #[allow(dead_code)]
    amount: i64,
}

const HOLD_BODY: &[u8] = br#"{"schedule_id":1024,"seat_numbers":[17,18,19,20]}"#;
const CHARGE_BODY: &[u8] = br#"{"amount":50000}"#;

/// A held reservation as `hold_seats.lua` returns it (cjson, times in ms).
const RESERVATION_JSON: &[u8] = br#"{"id":"01937c5e-8a2b-7c41-9d3e-5f6a7b8c9d0e","user_id":123456,"concert_id":42,"schedule_id":1024,"seats":[17,18,19,20],"amount":600000,"status":"HELD","held_at":1767225600123,"expires_at":1767225900123,"updated_at":1767225600123,"v":1}"#;

const SEATS: usize = 20_000;

fn parse<T: for<'de> Deserialize<'de>>(c: &mut Criterion, name: &str, body: &'static [u8]) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(body.len() as u64));
    // simd-json parses in place, so each run gets its own copy, made
    // outside the timing (the server owns the body buffer anyway).
    group.bench_function("simd_json", |b| {
        b.iter_batched_ref(
            || body.to_vec(),
            |buf| black_box(parse_json::<T>(buf).expect("a valid body")),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("serde_json", |b| {
        b.iter(|| black_box(serde_json::from_slice::<T>(black_box(body)).expect("a valid body")));
    });
    group.finish();
}

fn render_reservation(c: &mut Criterion) {
    let view = ReservationState::decode(RESERVATION_JSON)
        .expect("a reservation")
        .view();
    let rendered = simd_json::serde::to_vec(&view).expect("serializes");
    let mut group = c.benchmark_group("render_reservation");
    group.throughput(Throughput::Bytes(rendered.len() as u64));
    group.bench_function("copy_bytes", |b| {
        b.iter(|| black_box(black_box(&rendered[..]).to_vec()))
    });
    group.bench_function("simd_json", |b| {
        b.iter(|| black_box(simd_json::serde::to_vec(black_box(&view)).expect("serializes")));
    });
    group.bench_function("serde_json", |b| {
        b.iter(|| black_box(serde_json::to_vec(black_box(&view)).expect("serializes")));
    });
    // What `hold_seats` does with the script's reply: decode, view, render.
    group.bench_function("decode_view_render", |b| {
        b.iter(|| {
            let view = ReservationState::decode(black_box(RESERVATION_JSON))
                .expect("a reservation")
                .view();
            black_box(simd_json::serde::to_vec(&view).expect("serializes"))
        });
    });
    group.finish();
}

/// A seat as a serde-derived renderer would see it.
#[derive(Serialize)]
struct SeatView {
    number: usize,
    price: i64,
    status: &'static str,
}

#[derive(Serialize)]
struct SeatMap {
    schedule_id: i64,
    seats: Vec<SeatView>,
}

fn render_seat_map(c: &mut Criterion) {
    let schedule = Schedule {
        id: 1024,
        concert_id: 42,
        starts_at: 1_767_225_600_000,
        booking_opens_at: 1_764_547_200_000,
        seat_count: SEATS as i64,
        price: 150_000,
        purchase_limit: 4,
    };
    let states = seat_states(SEATS);
    let rendered = render(&schedule, &states, SeatFilter::All);
    let mut group = c.benchmark_group("render_seat_map");
    group.throughput(Throughput::Elements(SEATS as u64));
    if !std::env::args().any(|a| a == "--list") {
        // Not while listing: nextest reads the list from stdout.
        println!("render_seat_map: {SEATS} seats render to {} bytes", rendered.len());
    }
    group.bench_function("copy_bytes", |b| {
        b.iter(|| black_box(black_box(&rendered[..]).to_vec()))
    });
    group.bench_function("all", |b| {
        b.iter(|| black_box(render(black_box(&schedule), black_box(&states), SeatFilter::All)));
    });
    group.bench_function("available_only", |b| {
        b.iter(|| black_box(render(black_box(&schedule), black_box(&states), SeatFilter::Only(b'A'))));
    });
    group.bench_function("serde_json_all", |b| {
        b.iter(|| {
            let map = SeatMap {
                schedule_id: schedule.id,
                seats: black_box(&states)
                    .iter()
                    .enumerate()
                    .map(|(i, s)| SeatView {
                        number: i + 1,
                        price: schedule.price,
                        status: match s {
                            b'H' => "HELD",
                            b'S' => "SOLD",
                            _ => "AVAILABLE",
                        },
                    })
                    .collect(),
            };
            black_box(serde_json::to_vec(&map).expect("serializes"))
        });
    });
    group.finish();
}

/// `(method, path, label)` of the looked-up requests.
const PATHS: &[(Method, &str, &str)] = &[
    (Method::GET, "/healthz", "healthz"),
    (Method::POST, "/v1/reservations", "create_reservation"),
    (Method::GET, "/v1/schedules/1024/seats", "seat_map"),
    (Method::GET, "/v1/queue/tokens/42.x7Qk3bN0vLp9sR2mT8wYzA", "queue_token"),
    (
        Method::GET,
        "/v1/reservations/01937c5e-8a2b-7c41-9d3e-5f6a7b8c9d0e",
        "reservation",
    ),
    (Method::GET, "/v1/nope", "not_found"),
];

/// The baseline: a plain `match` on the path (what a table of static
/// paths costs), with the looked-up paths among its arms.
fn static_match(path: &str) -> u8 {
    match path {
        "/healthz" => 1,
        "/readyz" => 2,
        "/metrics" => 3,
        "/openapi.json" => 4,
        "/v1/users" => 5,
        "/v1/queue/tokens" => 6,
        "/v1/admin/concerts" => 7,
        "/v1/concerts" => 8,
        "/v1/reservations" => 9,
        "/v1/payments" => 10,
        "/v1/schedules/1024/seats" => 11,
        "/v1/queue/tokens/42.x7Qk3bN0vLp9sR2mT8wYzA" => 12,
        "/v1/reservations/01937c5e-8a2b-7c41-9d3e-5f6a7b8c9d0e" => 13,
        _ => 0,
    }
}

fn route(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    for (method, path, label) in PATHS {
        group.bench_function(format!("find/{label}"), |b| {
            b.iter(|| black_box(router::find(black_box(method), black_box(path))));
        });
        group.bench_function(format!("static_match/{label}"), |b| {
            b.iter(|| black_box(static_match(black_box(path))));
        });
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    parse::<HoldRequest>(&mut c, "parse_hold_request", HOLD_BODY);
    parse::<ChargeRequest>(&mut c, "parse_charge_request", CHARGE_BODY);
    render_reservation(&mut c);
    render_seat_map(&mut c);
    route(&mut c);
    c.final_summary();
}
