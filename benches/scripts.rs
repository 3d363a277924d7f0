//! Redis round trips of the hot paths, each measured beside `PING` and
//! `EVALSHA` of the trivial `ping` script in the same group, so that a
//! script's cost reads as a ratio to the bare round trip:
//!
//! - `charge`: `balance::charge` (one script);
//! - `hold`: `booking::hold_seats` (one script), the cancel that puts the
//!   seats back (timed apart), and a hold by a user with many past holds;
//! - `pay`: `payment::pay` (three scripts) after a hold, timed alone and
//!   together with the hold;
//! - `queue_issue`, `queue_status`: `queue::issue_token` (`SADD` + script)
//!   and `queue::get_token` (one script), the same read alone through
//!   `queue::StatusReader`, and bursts of 64 status reads, one script each
//!   or merged by the reader;
//! - `seat_map`: `booking::seat_map` of a 20,000-seat schedule (one script
//!   returning 20 KB, then the rendering); it also checks that the copy of
//!   `render_seat_map` the `http` bench measures renders the same bytes.
//!
//! Everything runs under a fresh `bench_<hex>` key prefix, is created
//! through the library, and is deleted at the end (`SCAN` + `UNLINK`).
//! Run: `cargo bench --bench scripts -- --warm-up-time 1 --measurement-time 3`.

mod common;

use std::cell::{OnceCell, RefCell};
use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{Fixture, Lazy, ServerTime};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use fred::interfaces::{ClientLike, KeysInterface, SortedSetsInterface};
use serde::Deserialize;
use ticketrush::balance::{self, ChargeAmount};
use ticketrush::booking::{self, Concert, Schedule, SeatFilter, SeatSelection};
use ticketrush::config::{BookingSettings, QueueSettings};
use ticketrush::payment;
use ticketrush::queue::{self, QueueToken};
use ticketrush::store::redis::RedisStore;
use uuid::Uuid;

/// Status reads in flight at once in the `queue_status` bursts.
const BURST: usize = 64;

/// Holds a buyer makes before the next buyer takes over, so that every
/// timed hold meets the same few past reservations of its user (what a
/// user with many costs is `hold/hold_after_past_holds`).
const HOLDS_PER_BUYER: u32 = 4;

/// Purchases (two seats each) a buyer makes: below the purchase limit of 10
/// a schedule, and few past reservations.
const PAYS_PER_BUYER: u32 = 4;

/// Schedules and seats of each concert the pay bench sells out; a new one
/// is created when they are gone.
const PAY_SCHEDULES: usize = 10;
const PAY_SEATS: i64 = 20_000;

/// Price of a seat in the pay bench, and what each buyer is charged first.
const PRICE: i64 = 10_000;
const BUYER_FUNDS: i64 = 1_000_000;

/// Seats of the seat map schedule: the largest a schedule may have.
const MAP_SEATS: usize = 20_000;

/// A user with an ACTIVE queue token for a concert.
#[derive(Clone)]
struct Buyer {
    id: i64,
    token: QueueToken,
}

#[derive(Default)]
struct Rotation {
    buyer: Option<Buyer>,
    uses: u32,
}

/// Where the pay bench takes its next two seats.
struct SeatCursor {
    concert: Concert,
    schedule: usize,
    next_seat: i64,
}

struct Fx {
    redis: RedisStore,
    /// Every token is admitted at once (the booking concerts).
    open: QueueSettings,
    /// One slot, taken: every new token waits (the queue concert).
    rush: QueueSettings,
    booking: BookingSettings,
    wallet_user: i64,
    hold_schedule: Schedule,
    hold_buyers: RefCell<Rotation>,
    pay_buyers: RefCell<Rotation>,
    seats: RefCell<SeatCursor>,
    queue_concert: i64,
    waiter: Buyer,
    issuer: i64,
    /// A buyer with [`past_holds`] cancelled holds, built on first use.
    veteran: OnceCell<Buyer>,
    map_schedule: Schedule,
    map_viewer: Buyer,
    /// The operations whose server-side time was printed.
    measured: RefCell<Vec<Op>>,
}

/// An operation whose time inside Redis is printed beside its bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ping,
    Charge,
    Hold,
    Cancel,
    HoldAfterPast,
    Pay,
    Issue,
    Status,
    SeatMap,
}

impl Op {
    /// The scripts it runs, and how many.
    fn scripts(self) -> (&'static str, u64) {
        match self {
            Self::Ping => ("ping.lua", 1),
            Self::Charge => ("charge_balance.lua", 1),
            Self::Hold => ("hold_seats.lua (buyer with < 4 past holds)", 1),
            Self::Cancel => ("read_reservations.lua + cancel_reservation.lua", 2),
            Self::HoldAfterPast => ("hold_seats.lua (the buyer with past_holds() past holds)", 1),
            Self::Pay => ("begin_payment.lua + debit_wallet.lua + confirm_payment.lua", 3),
            Self::Issue => ("issue_token.lua", 1),
            Self::Status => ("get_tokens.lua (one token)", 1),
            Self::SeatMap => ("get_seat_map.lua", 1),
        }
    }
}

impl Fixture for Fx {
    async fn setup() -> Self {
        let settings = common::settings();
        let redis = common::connect(&settings).await;
        let open = common::queue_settings(1_000_000);
        let rush = common::queue_settings(1);
        let wallet_user = common::user(&redis, "bench wallet").await;
        let hold_concert = common::concert(&redis, 1, 1_000, PRICE).await;
        let pay_concert = common::concert(&redis, PAY_SCHEDULES, PAY_SEATS, PRICE).await;
        // The queue concert: its one slot goes to `first`; `waiter` waits.
        let queue_concert = common::concert(&redis, 1, 100, PRICE).await.id;
        let first = common::user(&redis, "bench first").await;
        let (active, _) = queue::issue_token(&redis, &rush, first, queue_concert)
            .await
            .expect("issue");
        assert_eq!(active.status, "ACTIVE");
        let waiter_id = common::user(&redis, "bench waiter").await;
        let (waiting, _) = queue::issue_token(&redis, &rush, waiter_id, queue_concert)
            .await
            .expect("issue");
        assert_eq!(waiting.status, "WAITING");
        let issuer = common::user(&redis, "bench issuer").await;
        // The seat map: the mix of seats the `http` bench renders, written
        // straight into the schedule's seat string (no hold is due, so the
        // script returns it as is).
        let map_concert = common::concert(&redis, 1, MAP_SEATS as i64, 150_000).await;
        let map_schedule = map_concert.schedules[0].clone();
        let states = String::from_utf8(common::seat_map::seat_states(MAP_SEATS)).expect("ASCII");
        let seats_key = format!("{}seats:{}", redis.keys().concert(map_concert.id), map_schedule.id);
        let _: () = redis
            .client()
            .set(seats_key, states, None, None, false)
            .await
            .expect("SET");
        Self {
            open,
            rush,
            booking: settings.booking.clone(),
            wallet_user,
            hold_schedule: hold_concert.schedules[0].clone(),
            hold_buyers: RefCell::default(),
            pay_buyers: RefCell::default(),
            seats: RefCell::new(SeatCursor {
                concert: pay_concert,
                schedule: 0,
                next_seat: 1,
            }),
            queue_concert,
            waiter: Buyer {
                id: waiter_id,
                token: QueueToken::parse(&waiting.token).expect("a well-formed token"),
            },
            issuer,
            veteran: OnceCell::new(),
            map_viewer: Buyer {
                id: 0,
                token: QueueToken::generate(map_concert.id),
            },
            map_schedule,
            measured: RefCell::default(),
            redis,
        }
        .with_map_viewer()
        .await
    }

    fn redis(&self) -> &RedisStore {
        &self.redis
    }
}

/// Past holds of the veteran buyer.
fn past_holds() -> usize {
    if common::full_run() {
        1_000
    } else {
        10
    }
}

#[derive(Deserialize)]
struct Held {
    id: Uuid,
}

impl Fx {
    async fn with_map_viewer(mut self) -> Self {
        self.map_viewer = self.new_buyer(self.map_schedule.concert_id, 0).await;
        self
    }

    async fn seat_map(&self) -> Vec<u8> {
        let viewer = &self.map_viewer;
        booking::seat_map(
            &self.redis,
            &viewer.token,
            viewer.id,
            &self.map_schedule,
            SeatFilter::All,
        )
        .await
        .expect("seat map")
    }

    /// A new user, with `funds` on the wallet and an ACTIVE token for `concert_id`.
    async fn new_buyer(&self, concert_id: i64, funds: i64) -> Buyer {
        let id = common::user(&self.redis, "bench buyer").await;
        if funds > 0 {
            let amount = ChargeAmount::parse(funds).expect("a valid amount");
            balance::charge(&self.redis, id, amount, "").await.expect("charge");
        }
        let token = self.active_token(id, concert_id).await;
        Buyer { id, token }
    }

    /// The user's live token (a new one after a payment expired the last).
    async fn active_token(&self, user_id: i64, concert_id: i64) -> QueueToken {
        let (view, _) = queue::issue_token(&self.redis, &self.open, user_id, concert_id)
            .await
            .expect("issue");
        assert_eq!(view.status, "ACTIVE", "the booking concerts admit at once");
        QueueToken::parse(&view.token).expect("a well-formed token")
    }

    /// The current buyer of a rotation, replaced after `uses` turns.
    async fn rotate(&self, rotation: &RefCell<Rotation>, uses: u32, concert_id: i64, funds: i64) -> Buyer {
        let current = {
            let r = rotation.borrow();
            r.buyer.clone().filter(|_| r.uses < uses)
        };
        let buyer = match current {
            Some(b) => b,
            None => {
                let b = self.new_buyer(concert_id, funds).await;
                *rotation.borrow_mut() = Rotation {
                    buyer: Some(b.clone()),
                    uses: 0,
                };
                b
            }
        };
        rotation.borrow_mut().uses += 1;
        buyer
    }

    async fn hold(&self, buyer: &Buyer, schedule: &Schedule, seats: &[i64]) -> Uuid {
        let seats = SeatSelection::parse(seats.to_vec(), schedule).expect("valid seats");
        let json = booking::hold_seats(&self.redis, &self.booking, &buyer.token, buyer.id, schedule, &seats, "")
            .await
            .expect("the seats are free");
        serde_json::from_slice::<Held>(&json).expect("a reservation").id
    }

    async fn cancel(&self, buyer: &Buyer, reservation: &Uuid) {
        let done = booking::cancel_reservation(&self.redis, buyer.id, reservation)
            .await
            .expect("cancel");
        assert_eq!(done.status, "CANCELLED");
    }

    /// The schedule and two free seats for the next purchase; a new concert
    /// once every seat of the current one is sold.
    async fn next_seats(&self) -> (Schedule, [i64; 2]) {
        let exhausted = {
            let c = self.seats.borrow();
            c.schedule == c.concert.schedules.len()
        };
        if exhausted {
            let concert = common::concert(&self.redis, PAY_SCHEDULES, PAY_SEATS, PRICE).await;
            *self.seats.borrow_mut() = SeatCursor {
                concert,
                schedule: 0,
                next_seat: 1,
            };
        }
        let mut c = self.seats.borrow_mut();
        let schedule = c.concert.schedules[c.schedule].clone();
        let seats = [c.next_seat, c.next_seat + 1];
        c.next_seat += 2;
        if c.next_seat + 1 > schedule.seat_count {
            c.schedule += 1;
            c.next_seat = 1;
        }
        (schedule, seats)
    }

    /// Takes a reservation out of its user's index again, so that the
    /// veteran's history stays at `past_holds()`.
    async fn forget(&self, buyer: &Buyer, reservation: &Uuid) {
        let index = format!(
            "{}ur:{}",
            self.redis.keys().concert(self.hold_schedule.concert_id),
            buyer.id
        );
        let _: i64 = self
            .redis
            .client()
            .zrem(index, reservation.to_string())
            .await
            .expect("ZREM");
    }

    /// The next purchase of the pay bench: a buyer with an ACTIVE token
    /// (the last payment expired the previous one), a schedule, two seats.
    async fn next_purchase(&self) -> (Buyer, Schedule, [i64; 2]) {
        let (schedule, seats) = self.next_seats().await;
        let buyer = self
            .rotate(&self.pay_buyers, PAYS_PER_BUYER, schedule.concert_id, BUYER_FUNDS)
            .await;
        let token = self.active_token(buyer.id, schedule.concert_id).await;
        (Buyer { token, ..buyer }, schedule, seats)
    }

    async fn pay(&self, buyer: &Buyer, reservation: &Uuid) {
        let paid = payment::pay(&self.redis, &self.open, &buyer.token, buyer.id, reservation, "")
            .await
            .expect("pay");
        assert_eq!(paid.status, "SUCCESS");
    }

    async fn issue(&self) -> QueueToken {
        let (view, created) = queue::issue_token(&self.redis, &self.rush, self.issuer, self.queue_concert)
            .await
            .expect("issue");
        assert!(created && view.status == "WAITING");
        QueueToken::parse(&view.token).expect("a well-formed token")
    }

    async fn leave(&self, token: &QueueToken) {
        queue::leave_queue(&self.redis, &self.rush, token, self.issuer)
            .await
            .expect("leave");
    }

    /// Prints, once per operation, the time its scripts spend inside Redis
    /// a round (see `common::inside_redis`), next to its bench.
    fn print_server_side(&self, rt: &tokio::runtime::Runtime, op: Op) {
        if self.measured.borrow().contains(&op) {
            return;
        }
        self.measured.borrow_mut().push(op);
        let time = rt.block_on(self.server_side(op));
        let (scripts, _) = op.scripts();
        println!("inside redis: {scripts}: {}", time.show());
    }

    async fn server_side(&self, op: Op) -> ServerTime {
        let (_, scripts) = op.scripts();
        let redis = &self.redis;
        let mut time = ServerTime::default();
        for _ in 0..common::server_rounds() {
            let usec = match op {
                Op::Ping => {
                    let base = redis.keys().concert(self.queue_concert);
                    let call = redis.eval(&redis.scripts().ping, base, Vec::new());
                    let (reply, us) = common::inside_redis(redis, scripts, call).await;
                    reply.expect("ping");
                    us
                }
                Op::Charge => {
                    let one = ChargeAmount::parse(1).expect("a valid amount");
                    let call = balance::charge(redis, self.wallet_user, one, "");
                    let (reply, us) = common::inside_redis(redis, scripts, call).await;
                    reply.expect("charge");
                    us
                }
                Op::Hold | Op::Cancel => {
                    let schedule = &self.hold_schedule;
                    let buyer = self
                        .rotate(&self.hold_buyers, HOLDS_PER_BUYER, schedule.concert_id, 0)
                        .await;
                    if op == Op::Hold {
                        let (rid, us) =
                            common::inside_redis(redis, scripts, self.hold(&buyer, schedule, &[1, 2])).await;
                        self.cancel(&buyer, &rid).await;
                        us
                    } else {
                        let rid = self.hold(&buyer, schedule, &[1, 2]).await;
                        common::inside_redis(redis, scripts, self.cancel(&buyer, &rid)).await.1
                    }
                }
                Op::HoldAfterPast => {
                    let veteran = self.veteran().await;
                    let hold = self.hold(&veteran, &self.hold_schedule, &[1, 2]);
                    let (rid, us) = common::inside_redis(redis, scripts, hold).await;
                    self.cancel(&veteran, &rid).await;
                    self.forget(&veteran, &rid).await;
                    us
                }
                Op::Pay => {
                    let (buyer, schedule, seats) = self.next_purchase().await;
                    let rid = self.hold(&buyer, &schedule, &seats).await;
                    common::inside_redis(redis, scripts, self.pay(&buyer, &rid)).await.1
                }
                Op::Issue => {
                    let (token, us) = common::inside_redis(redis, scripts, self.issue()).await;
                    self.leave(&token).await;
                    us
                }
                Op::Status => {
                    let waiter = &self.waiter;
                    let call = queue::get_token(redis, &self.rush, &waiter.token, Some(waiter.id));
                    let (view, us) = common::inside_redis(redis, scripts, call).await;
                    view.expect("status");
                    us
                }
                Op::SeatMap => common::inside_redis(redis, scripts, self.seat_map()).await.1,
            };
            time.add(usec);
        }
        time
    }

    async fn veteran(&self) -> Buyer {
        if let Some(v) = self.veteran.get() {
            return v.clone();
        }
        let buyer = self.new_buyer(self.hold_schedule.concert_id, 0).await;
        for _ in 0..past_holds() {
            let rid = self.hold(&buyer, &self.hold_schedule, &[1, 2]).await;
            self.cancel(&buyer, &rid).await;
        }
        self.veteran.get_or_init(|| buyer).clone()
    }
}

/// Times `measured` alone, `iters` times, running `untimed` after each
/// (to undo or prepare what the measured step needs).
async fn timed<T, M, MF, U, UF>(iters: u64, mut measured: M, mut untimed: U) -> Duration
where
    M: FnMut() -> MF,
    MF: Future<Output = T>,
    U: FnMut(T) -> UF,
    UF: Future<Output = ()>,
{
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let out = measured().await;
        total += start.elapsed();
        untimed(out).await;
    }
    total
}

/// `PING` and `EVALSHA ping` in `group`: the bare round trip and the
/// round trip of a script that does nothing.
fn baselines(group: &mut BenchmarkGroup<'_, WallTime>, lazy: &Lazy<Fx>) {
    group.bench_function("redis_ping", |b| {
        let f = lazy.get();
        b.to_async(&lazy.rt).iter(|| async {
            let pong: String = f.redis.client().ping(None).await.expect("PING");
            black_box(pong)
        });
    });
    group.bench_function("evalsha_ping", |b| {
        let f = lazy.get();
        f.print_server_side(&lazy.rt, Op::Ping);
        b.to_async(&lazy.rt).iter(|| async {
            let base = f.redis.keys().concert(f.queue_concert);
            black_box(
                f.redis
                    .eval(&f.redis.scripts().ping, base, Vec::new())
                    .await
                    .expect("ping"),
            )
        });
    });
}

fn charge(c: &mut Criterion, lazy: &Lazy<Fx>) {
    let mut group = c.benchmark_group("charge");
    baselines(&mut group, lazy);
    group.bench_function("charge", |b| {
        let f = lazy.get();
        f.print_server_side(&lazy.rt, Op::Charge);
        let one = ChargeAmount::parse(1).expect("a valid amount");
        b.to_async(&lazy.rt).iter(|| async move {
            black_box(balance::charge(&f.redis, f.wallet_user, one, "").await.expect("charge"))
        });
    });
    group.finish();
}

fn hold(c: &mut Criterion, lazy: &Lazy<Fx>) {
    let mut group = c.benchmark_group("hold");
    baselines(&mut group, lazy);
    // The hold is timed; the cancel after it puts the seats back.
    group.bench_function("hold", |b| {
        let f = lazy.get();
        f.print_server_side(&lazy.rt, Op::Hold);
        let schedule = &f.hold_schedule;
        b.to_async(&lazy.rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let buyer = f.rotate(&f.hold_buyers, HOLDS_PER_BUYER, schedule.concert_id, 0).await;
                let start = Instant::now();
                let rid = f.hold(&buyer, schedule, &[1, 2]).await;
                total += start.elapsed();
                f.cancel(&buyer, &rid).await;
            }
            total
        });
    });
    // The cancel is timed (find the reservation, then the script).
    group.bench_function("cancel", |b| {
        let f = lazy.get();
        f.print_server_side(&lazy.rt, Op::Cancel);
        let schedule = &f.hold_schedule;
        b.to_async(&lazy.rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let buyer = f.rotate(&f.hold_buyers, HOLDS_PER_BUYER, schedule.concert_id, 0).await;
                let rid = f.hold(&buyer, schedule, &[1, 2]).await;
                let start = Instant::now();
                f.cancel(&buyer, &rid).await;
                total += start.elapsed();
            }
            total
        });
    });
    // A hold by a user who already held and cancelled `past_holds()` times
    // in this concert. The new reservation leaves the user's index again
    // after each round, so every measured hold sees the same history.
    group.bench_function(format!("hold_after_{}_past_holds", past_holds()), |b| {
        let f = lazy.get();
        f.print_server_side(&lazy.rt, Op::HoldAfterPast);
        let schedule = &f.hold_schedule;
        let veteran = lazy.rt.block_on(f.veteran());
        let veteran = &veteran;
        b.to_async(&lazy.rt).iter_custom(|iters| async move {
            timed(
                iters,
                || f.hold(veteran, schedule, &[1, 2]),
                |rid| async move {
                    f.cancel(veteran, &rid).await;
                    f.forget(veteran, &rid).await;
                },
            )
            .await
        });
    });
    group.finish();
}

fn pay(c: &mut Criterion, lazy: &Lazy<Fx>) {
    let mut group = c.benchmark_group("pay");
    baselines(&mut group, lazy);
    // Each round buys two new seats: hold, then pay; `pay` times the
    // payment alone, `hold_and_pay` both.
    for (name, with_hold) in [("pay", false), ("hold_and_pay", true)] {
        group.bench_function(name, |b| {
            let f = lazy.get();
            f.print_server_side(&lazy.rt, Op::Pay);
            b.to_async(&lazy.rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (buyer, schedule, seats) = f.next_purchase().await;
                    let start = Instant::now();
                    let rid = f.hold(&buyer, &schedule, &seats).await;
                    let paying = Instant::now();
                    f.pay(&buyer, &rid).await;
                    total += if with_hold { start.elapsed() } else { paying.elapsed() };
                }
                total
            });
        });
    }
    group.finish();
}

fn queue(c: &mut Criterion, lazy: &Lazy<Fx>) {
    let mut group = c.benchmark_group("queue_issue");
    baselines(&mut group, lazy);
    // A new WAITING token (the slot is taken); leaving afterwards, untimed,
    // lets the same user be issued a new token next time and keeps the
    // queue at its size.
    group.bench_function("issue_token", |b| {
        let f = lazy.get();
        f.print_server_side(&lazy.rt, Op::Issue);
        b.to_async(&lazy.rt).iter_custom(|iters| async move {
            timed(iters, || f.issue(), |token| async move { f.leave(&token).await }).await
        });
    });
    group.finish();

    let mut group = c.benchmark_group("queue_status");
    baselines(&mut group, lazy);
    group.bench_function("get_token", |b| {
        let f = lazy.get();
        f.print_server_side(&lazy.rt, Op::Status);
        b.to_async(&lazy.rt).iter(|| async {
            let view = queue::get_token(&f.redis, &f.rush, &f.waiter.token, Some(f.waiter.id))
                .await
                .expect("status");
            debug_assert_eq!(view.status, "WAITING");
            black_box(view)
        });
    });
    // A lone read through the instance's `StatusReader`: the same call as
    // `get_token`, plus the hand-off to the concert's lane and back.
    group.bench_function("status_reader", |b| {
        let f = lazy.get();
        let reader = queue::StatusReader::new(f.redis.clone(), f.rush.clone());
        let reader = &reader;
        b.to_async(&lazy.rt).iter(|| async move {
            let view = reader
                .get(f.waiter.token.clone(), Some(f.waiter.id))
                .await
                .expect("status");
            black_box(view)
        });
    });
    // A burst of reads, as a busy instance sees them: one script call each,
    // or merged by the instance's `StatusReader`.
    for merged in [false, true] {
        let name = if merged { "status_reader_x64" } else { "get_token_x64" };
        group.bench_function(name, |b| {
            let f = lazy.get();
            let reader = queue::StatusReader::new(f.redis.clone(), f.rush.clone());
            let reader = &reader;
            b.to_async(&lazy.rt).iter(|| async move {
                let reads = (0..BURST).map(|_| async move {
                    let (token, id) = (f.waiter.token.clone(), Some(f.waiter.id));
                    if merged {
                        reader.get(token, id).await
                    } else {
                        queue::get_token(&f.redis, &f.rush, &token, id).await
                    }
                });
                black_box(futures_util::future::join_all(reads).await)
            });
        });
    }
    group.finish();
}

fn seat_map(c: &mut Criterion, lazy: &Lazy<Fx>) {
    let mut group = c.benchmark_group("seat_map");
    baselines(&mut group, lazy);
    group.bench_function(format!("seat_map_{MAP_SEATS}"), |b| {
        let f = lazy.get();
        let served = lazy.rt.block_on(f.seat_map());
        let states = common::seat_map::seat_states(MAP_SEATS);
        let copied = ticketrush::booking::render_seat_map(&f.map_schedule, &states, SeatFilter::All);
        assert!(
            served == copied,
            "the copy of render_seat_map in benches/common differs from the library's"
        );
        f.print_server_side(&lazy.rt, Op::SeatMap);
        b.to_async(&lazy.rt).iter(|| async { black_box(f.seat_map().await) });
    });
    group.finish();
}

fn main() {
    let lazy: Lazy<Fx> = Lazy::new();
    let mut c = Criterion::default().configure_from_args();
    charge(&mut c, &lazy);
    hold(&mut c, &lazy);
    pay(&mut c, &lazy);
    queue(&mut c, &lazy);
    seat_map(&mut c, &lazy);
    drop(lazy); // deletes every key of the run
    c.final_summary();
}
