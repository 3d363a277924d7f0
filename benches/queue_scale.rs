//! The waiting room at scale: `queue::get_token` (status, with the
//! position lookup) and `queue::issue_token` against a queue of 1,000
//! (full run) up to `QUEUE_BENCH_SIZE` (default 1,000,000) waiting tokens,
//! each size beside `EVALSHA` of the trivial `ping` script. Status latency
//! (as a ratio to that) that stays flat from 1k to 1M waiting shows the
//! position lookup is O(log n).
//!
//! The queue is filled in bulk, with exactly the keys `issue_token.lua`
//! writes for a waiting token (`q:wait` by arrival, `q:seen`, `q:user`,
//! `t:<token>`, and `q:seq`), in pipelines of 1,000-member commands, so
//! Redis is never blocked for long. Only the event stream entry of each
//! issue is left out: it is the write-behind's input, not queue state.
//! Redis memory per waiting token (`INFO memory` `used_memory` before and
//! after each fill step, divided by the tokens added) is printed to stdout.
//!
//! In criterion's test mode (no `--bench`: `cargo test`, nextest) the sizes
//! are 10, 100 and 1,000. Everything runs under a fresh `bench_<hex>`
//! prefix and is deleted at the end.
//! Run: `cargo bench --bench queue_scale -- --warm-up-time 1 --measurement-time 3`.

mod common;

use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{Fixture, Lazy, ServerTime};
use criterion::{BenchmarkId, Criterion};
use fred::interfaces::{HashesInterface, KeysInterface, SortedSetsInterface};
use fred::types::Value;
use ticketrush::config::QueueSettings;
use ticketrush::queue::{self, QueueToken};
use ticketrush::store::redis::RedisStore;
use ticketrush::time::Millis;

/// Members per command while filling.
const CHUNK: usize = 1_000;

/// Commands' worth of chunks per pipeline (each chunk is four commands).
const CHUNKS_PER_PIPELINE: usize = 10;

/// User ids of the filled tokens: far above any id the sequence hands out
/// in a run, and never used for anything but the queue (the issue script
/// does not read wallets).
const FILL_USERS: i64 = 1_000_000_000;

/// Waiting tokens whose status the bench asks, spread evenly over the line.
const SAMPLES: usize = 64;

/// Queue sizes: 1,000, 100,000 and `QUEUE_BENCH_SIZE` in a real run; 10,
/// 100 and at most 1,000 in test mode.
fn sizes() -> Vec<usize> {
    let size = std::env::var("QUEUE_BENCH_SIZE")
        .ok()
        .map(|v| {
            v.replace('_', "")
                .parse::<usize>()
                .expect("QUEUE_BENCH_SIZE is a number")
        })
        .unwrap_or(1_000_000)
        .max(1);
    let (size, steps) = if common::full_run() {
        (size, [1_000, 100_000])
    } else {
        (size.min(1_000), [10, 100])
    };
    let mut sizes: Vec<usize> = steps.into_iter().filter(|s| *s < size).collect();
    sizes.push(size);
    sizes
}

struct Scale {
    redis: RedisStore,
    /// One slot, taken by the first token: every other token waits, and
    /// nothing expires during the run.
    rush: QueueSettings,
    concert_id: i64,
    base: String,
    /// The real user whose token the issue bench issues and withdraws.
    issuer: i64,
    /// Tokens filled in so far.
    filled: Cell<usize>,
    /// Filled tokens whose status the bench asks, with their users.
    samples: RefCell<Vec<(QueueToken, i64)>>,
    next_sample: Cell<usize>,
}

impl Fixture for Scale {
    async fn setup() -> Self {
        let settings = common::settings();
        let redis = common::connect(&settings).await;
        let rush = common::queue_settings(1);
        let concert_id = common::concert(&redis, 1, 10, 10_000).await.id;
        let first = common::user(&redis, "bench first").await;
        let (active, _) = queue::issue_token(&redis, &rush, first, concert_id)
            .await
            .expect("issue");
        assert_eq!(active.status, "ACTIVE");
        let issuer = common::user(&redis, "bench issuer").await;
        Self {
            base: redis.keys().concert(concert_id),
            redis,
            rush,
            concert_id,
            issuer,
            filled: Cell::new(0),
            samples: RefCell::default(),
            next_sample: Cell::new(0),
        }
    }

    fn redis(&self) -> &RedisStore {
        &self.redis
    }
}

impl Scale {
    /// Fills the queue up to `size` waiting tokens and picks the samples.
    async fn ensure(&self, size: usize) {
        let have = self.filled.get();
        if have >= size {
            return;
        }
        let before = common::used_memory(&self.redis).await;
        let started = Instant::now();
        self.fill(size - have).await;
        let took = started.elapsed();
        let after = common::used_memory(&self.redis).await;
        self.filled.set(size);
        let added = (size - have) as i64;
        let waiting: i64 = self.redis.client().zcard(self.key("q:wait")).await.expect("ZCARD");
        assert_eq!(waiting, size as i64, "the queue holds exactly the filled tokens");
        println!(
            "queue_scale: filled {added} tokens ({have} -> {size} waiting) in {:.2?}; used_memory +{} bytes = {} bytes per waiting token",
            took,
            after - before,
            (after - before) / added
        );
        self.pick_samples(size).await;
        self.memory_breakdown(size).await;
        self.server_side(size).await;
    }

    /// Time the status script and the `ping` script spend inside Redis a
    /// call, free of the client and of the machine's load.
    async fn server_side(&self, size: usize) {
        let (mut status, mut ping) = (ServerTime::default(), ServerTime::default());
        for _ in 0..common::server_rounds() * 2 {
            let (token, uid) = self.next_sample();
            let status_call = queue::get_token(&self.redis, &self.rush, &token, Some(uid));
            let (view, us) = common::inside_redis(&self.redis, 1, status_call).await;
            assert_eq!(view.expect("status").status, "WAITING");
            status.add(us);
            let base = self.redis.keys().concert(self.concert_id);
            let ping_call = self.redis.eval(&self.redis.scripts().ping, base, Vec::new());
            let (pong, us) = common::inside_redis(&self.redis, 1, ping_call).await;
            pong.expect("ping");
            ping.add(us);
        }
        println!(
            "queue_scale: {size} waiting, inside Redis per call: get_token.lua {}; ping.lua {}",
            status.show(),
            ping.show()
        );
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.base)
    }

    /// Adds `count` waiting tokens, as `issue_token.lua` would write them.
    async fn fill(&self, count: usize) {
        let client = self.redis.client();
        let last: i64 = client.incr_by(self.key("q:seq"), count as i64).await.expect("INCRBY");
        let first = last - count as i64 + 1;
        let now = Millis::now().0;
        let (wait, seen, user) = (self.key("q:wait"), self.key("q:seen"), self.key("q:user"));
        let mut pipeline = client.pipeline();
        let mut queued = 0;
        let mut arrival = first;
        while arrival <= last {
            let end = (arrival + CHUNK as i64 - 1).min(last);
            let mut by_arrival = Vec::with_capacity(CHUNK);
            let mut by_sighting = Vec::with_capacity(CHUNK);
            let mut users = Vec::with_capacity(CHUNK);
            let mut tokens = Vec::with_capacity(CHUNK);
            for a in arrival..=end {
                let token = QueueToken::generate(self.concert_id);
                let tok = token.as_str();
                let uid = FILL_USERS + a;
                by_arrival.push((a as f64, tok.to_owned()));
                by_sighting.push((now as f64, tok.to_owned()));
                users.push((uid.to_string(), tok.to_owned()));
                let json = format!(
                    r#"{{"token":"{tok}","user_id":{uid},"concert_id":{},"status":"WAITING","issued_at":{now}}}"#,
                    self.concert_id
                );
                tokens.push((self.key(&format!("t:{tok}")), json));
            }
            let _: () = pipeline
                .zadd(&wait, None, None, false, false, by_arrival)
                .await
                .expect("queued");
            let _: () = pipeline
                .zadd(&seen, None, None, false, false, by_sighting)
                .await
                .expect("queued");
            let _: () = pipeline.hset(&user, users).await.expect("queued");
            let _: () = pipeline.mset(tokens).await.expect("queued");
            queued += 1;
            arrival = end + 1;
            if queued == CHUNKS_PER_PIPELINE || arrival > last {
                let _: Value = pipeline.all().await.expect("the fill pipeline runs");
                pipeline = client.pipeline();
                queued = 0;
            }
        }
    }

    /// Samples spread evenly over the line, each checked: WAITING, at the
    /// position its rank says.
    async fn pick_samples(&self, size: usize) {
        let client = self.redis.client();
        let mut samples = Vec::with_capacity(SAMPLES);
        for k in 0..SAMPLES.min(size) {
            let rank = (k * (size - 1) / (SAMPLES - 1).max(1)) as i64;
            let found: Vec<String> = client
                .zrange(self.key("q:wait"), rank, rank, None, false, None, false)
                .await
                .expect("ZRANGE");
            let token = QueueToken::parse(&found[0]).expect("a well-formed token");
            let arrival: f64 = client.zscore(self.key("q:wait"), token.as_str()).await.expect("ZSCORE");
            let uid = FILL_USERS + arrival as i64;
            let view = queue::get_token(&self.redis, &self.rush, &token, Some(uid))
                .await
                .expect("status");
            assert_eq!((view.status, view.position), ("WAITING", rank + 1));
            samples.push((token, uid));
        }
        *self.samples.borrow_mut() = samples;
    }

    /// `MEMORY USAGE` of each structure (sampled for the sorted sets and
    /// the hash), as a cross-check of the `used_memory` figure.
    async fn memory_breakdown(&self, size: usize) {
        let r = &self.redis;
        let wait = common::memory_usage(r, &self.key("q:wait")).await;
        let seen = common::memory_usage(r, &self.key("q:seen")).await;
        let user = common::memory_usage(r, &self.key("q:user")).await;
        let mut token_bytes = 0;
        let samples = self.samples.borrow().clone();
        for (token, _) in &samples {
            token_bytes += common::memory_usage(r, &self.key(&format!("t:{}", token.as_str()))).await;
        }
        let token_avg = token_bytes / samples.len().max(1) as i64;
        let n = size as i64;
        println!(
            "queue_scale: {size} waiting, MEMORY USAGE per token: q:wait {} + q:seen {} + q:user {} + t:<token> {} = {} bytes",
            wait / n,
            seen / n,
            user / n,
            token_avg,
            wait / n + seen / n + user / n + token_avg
        );
    }

    fn next_sample(&self) -> (QueueToken, i64) {
        let samples = self.samples.borrow();
        let i = self.next_sample.get();
        self.next_sample.set((i + 1) % samples.len());
        samples[i % samples.len()].clone()
    }
}

fn queue_scale(c: &mut Criterion, lazy: &Lazy<Scale>) {
    let mut group = c.benchmark_group("queue_scale");
    for size in sizes() {
        // The baseline, measured beside each size (the machine's load
        // moves; the ratio of status to this is what to compare).
        group.bench_with_input(BenchmarkId::new("evalsha_ping", size), &size, |b, &size| {
            let f = lazy.get();
            lazy.rt.block_on(f.ensure(size));
            b.to_async(&lazy.rt).iter(|| async {
                let base = f.redis.keys().concert(f.concert_id);
                black_box(
                    f.redis
                        .eval(&f.redis.scripts().ping, base, Vec::new())
                        .await
                        .expect("ping"),
                )
            });
        });
        // Status of waiting tokens spread over the line: a sighting, the
        // position (ZRANK) and the estimated wait.
        group.bench_with_input(BenchmarkId::new("status", size), &size, |b, &size| {
            let f = lazy.get();
            lazy.rt.block_on(f.ensure(size));
            b.to_async(&lazy.rt).iter(|| async {
                let (token, uid) = f.next_sample();
                let view = queue::get_token(&f.redis, &f.rush, &token, Some(uid))
                    .await
                    .expect("status");
                black_box(view)
            });
        });
        // A new token at the end of the line; withdrawn after each round,
        // untimed, so the line stays at `size`.
        group.bench_with_input(BenchmarkId::new("issue", size), &size, |b, &size| {
            let f = lazy.get();
            lazy.rt.block_on(f.ensure(size));
            b.to_async(&lazy.rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let (view, created) = queue::issue_token(&f.redis, &f.rush, f.issuer, f.concert_id)
                        .await
                        .expect("issue");
                    total += start.elapsed();
                    assert!(
                        created && view.position == size as i64 + 1,
                        "issued at the end of the line"
                    );
                    let token = QueueToken::parse(&view.token).expect("a well-formed token");
                    queue::leave_queue(&f.redis, &f.rush, &token, f.issuer)
                        .await
                        .expect("leave");
                }
                total
            });
        });
    }
    group.finish();
}

fn main() {
    let lazy: Lazy<Scale> = Lazy::new();
    let mut c = Criterion::default().configure_from_args();
    queue_scale(&mut c, &lazy);
    drop(lazy); // deletes every key of the run
    c.final_summary();
}
