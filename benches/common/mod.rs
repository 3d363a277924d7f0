//! Shared by the Redis benches: the run mode, a private key prefix per run,
//! setup through the library, and cleanup of every key the run wrote.

#![allow(dead_code)] // each bench uses its own part

pub mod seat_map;

use std::future::Future;
use std::time::Duration;

use fred::interfaces::{ClientLike, KeysInterface};
use fred::types::{InfoKind, Value};
use ticketrush::booking::catalog::{create_concert, NewConcert, NewSchedule};
use ticketrush::booking::Concert;
use ticketrush::config::{QueueSettings, Settings};
use ticketrush::store::redis::RedisStore;
use ticketrush::time::Millis;
use ticketrush::user::{create_user, UserName};
use tokio::runtime::Runtime;
use uuid::Uuid;

/// Whether this is a real benchmark run (`cargo bench`, which passes
/// `--bench`) rather than criterion's test mode (`cargo test --all-targets`,
/// nextest, or `cargo bench -- --test`), where every bench runs once and the
/// setup must stay small.
pub fn full_run() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

/// A single-threaded runtime: the bench future and fred's connection tasks
/// share one thread, so a round trip is measured without cross-thread
/// wake-ups (the ratios against `PING` are what matter).
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime builds")
}

/// Settings with a fresh `bench_<12 hex>` prefix, so that runs never share
/// or collide with keys of a server or of tests on the same Redis.
pub fn settings() -> Settings {
    let mut settings = Settings::defaults();
    settings.redis.key_prefix = format!("bench_{}", &Uuid::new_v4().simple().to_string()[..12]);
    settings
}

/// Queue limits under which nothing expires during a run: no admission or
/// idle drop ever happens inside a measured script.
pub fn queue_settings(active_max: u32) -> QueueSettings {
    QueueSettings {
        active_max,
        active_ttl_seconds: 86_400,
        idle_timeout_seconds: 86_400,
    }
}

/// Connects, checks that Redis answers and loads every script.
pub async fn connect(settings: &Settings) -> RedisStore {
    let redis = RedisStore::connect(&settings.redis).await.expect("a valid REDIS_URL");
    assert!(
        redis.is_up().await,
        "redis at {} is not answering (scripts/services.sh start)",
        settings.redis.url
    );
    redis.load_scripts().await.expect("the scripts load");
    redis
}

/// A user created through the library.
pub async fn user(redis: &RedisStore, name: &str) -> i64 {
    let name = UserName::parse(name.to_owned()).expect("a valid name");
    create_user(redis, name).await.expect("the user is created").id
}

/// A concert created through the library, open for booking now (the window
/// opened an hour ago, the show is in 30 days), with `schedules` dates of
/// `seats` seats each at `price`, and the largest purchase limit (10).
pub async fn concert(redis: &RedisStore, schedules: usize, seats: i64, price: i64) -> Concert {
    let now = Millis::now().0;
    let at = |ms: i64| Millis(ms).to_rfc3339();
    let new = NewConcert {
        title: "Bench Rush".into(),
        artist: "The Benchmarks".into(),
        venue: "Redis Arena".into(),
        description: String::new(),
        schedules: (0..schedules)
            .map(|i| NewSchedule {
                starts_at: at(now + 30 * 86_400_000 + i as i64 * 86_400_000),
                booking_opens_at: Some(at(now - 3_600_000)),
                seat_count: Some(seats),
                price,
                purchase_limit: Some(10),
            })
            .collect(),
    };
    create_concert(redis, new).await.expect("the concert is created")
}

/// `used_memory` of `INFO memory`, in bytes.
pub async fn used_memory(redis: &RedisStore) -> i64 {
    let info: String = redis
        .client()
        .info(Some(InfoKind::Memory))
        .await
        .expect("INFO memory answers");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("INFO memory has used_memory")
}

/// `(calls, usec)` of `EVALSHA` in `INFO commandstats`: every script run on
/// the server so far, by every client, and the time spent inside them.
pub async fn evalsha_stats(redis: &RedisStore) -> (u64, u64) {
    let info: String = redis
        .client()
        .info(Some(InfoKind::CommandStats))
        .await
        .expect("INFO commandstats answers");
    let Some(line) = info.lines().find_map(|l| l.strip_prefix("cmdstat_evalsha:")) else {
        return (0, 0);
    };
    let field = |name: &str| {
        line.split(',')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("calls"), field("usec"))
}

/// Runs `op` between two reads of `INFO commandstats` and returns its
/// output with the microseconds its `scripts` script runs spent inside
/// Redis: free of the client, the network and the machine's load. `None`
/// when another client ran a script meanwhile (Redis is shared).
pub async fn inside_redis<T>(redis: &RedisStore, scripts: u64, op: impl Future<Output = T>) -> (T, Option<u64>) {
    let (calls_before, usec_before) = evalsha_stats(redis).await;
    let out = op.await;
    let (calls_after, usec_after) = evalsha_stats(redis).await;
    (
        out,
        (calls_after - calls_before == scripts).then_some(usec_after - usec_before),
    )
}

/// Server-side times of one operation, over the rounds no other client
/// disturbed.
#[derive(Debug, Default)]
pub struct ServerTime {
    usec: u64,
    clean: u64,
    disturbed: u64,
}

impl ServerTime {
    pub fn add(&mut self, usec: Option<u64>) {
        match usec {
            Some(us) => {
                self.usec += us;
                self.clean += 1;
            }
            None => self.disturbed += 1,
        }
    }

    /// Mean microseconds per round.
    pub fn mean(&self) -> Option<f64> {
        (self.clean > 0).then(|| self.usec as f64 / self.clean as f64)
    }

    /// `12.34 µs (n of m rounds)`.
    pub fn show(&self) -> String {
        let rounds = self.clean + self.disturbed;
        match self.mean() {
            Some(us) => format!("{us:.2} µs ({} of {rounds} rounds undisturbed)", self.clean),
            None => format!("n/a (other clients ran scripts in all {rounds} rounds)"),
        }
    }
}

/// Rounds of a server-side measurement.
pub fn server_rounds() -> u64 {
    if full_run() {
        500
    } else {
        2
    }
}

/// `MEMORY USAGE key` (sampled for aggregates), in bytes; 0 for no key.
pub async fn memory_usage(redis: &RedisStore, key: &str) -> i64 {
    let cmd = fred::types::CustomCommand::new_static("MEMORY", None, false);
    let v: Option<i64> = redis
        .client()
        .custom(cmd, vec!["USAGE".to_owned(), key.to_owned()])
        .await
        .expect("MEMORY USAGE answers");
    v.unwrap_or(0)
}

/// Deletes every key under the run's prefix (`SCAN` + `UNLINK`, a page at a
/// time, so Redis is never blocked for long). Returns how many went.
///
/// # Errors
/// Redis failures (it runs from `Drop`, so it must not panic).
pub async fn delete_prefix(redis: &RedisStore) -> Result<u64, fred::error::Error> {
    let pattern = format!("{}:*", redis.keys().prefix());
    let client = redis.client();
    let mut cursor = "0".to_owned();
    let mut deleted = 0;
    loop {
        let page: Value = client.scan_page(cursor, pattern.as_str(), Some(10_000), None).await?;
        let (next, keys) = scan_reply(page)?;
        if !keys.is_empty() {
            deleted += keys.len() as u64;
            let _: i64 = client.unlink(keys).await?;
        }
        if next == "0" {
            return Ok(deleted);
        }
        cursor = next;
    }
}

fn scan_reply(page: Value) -> Result<(String, Vec<String>), fred::error::Error> {
    let bad = || fred::error::Error::new(fred::error::ErrorKind::Protocol, "unexpected SCAN reply");
    let Value::Array(mut parts) = page else {
        return Err(bad());
    };
    let (Some(Value::Array(keys)), Some(cursor)) = (parts.pop(), parts.pop()) else {
        return Err(bad());
    };
    let keys = keys.into_iter().filter_map(|k| k.into_string()).collect();
    Ok((cursor.into_string().ok_or_else(bad)?, keys))
}

/// A value built on first use and cleaned up when dropped (also while a
/// panic unwinds), so that listing benches or filtering them out never
/// touches Redis, and a run leaves no key behind.
pub struct Lazy<T: Fixture> {
    pub rt: Runtime,
    cell: std::cell::OnceCell<T>,
}

/// What a bench sets up in Redis.
pub trait Fixture: Sized {
    /// Builds the fixture.
    fn setup() -> impl std::future::Future<Output = Self>;
    /// The store its keys are in.
    fn redis(&self) -> &RedisStore;
}

impl<T: Fixture> Lazy<T> {
    pub fn new() -> Self {
        Self {
            rt: runtime(),
            cell: std::cell::OnceCell::new(),
        }
    }

    /// The fixture, set up on the first call.
    pub fn get(&self) -> &T {
        self.cell.get_or_init(|| self.rt.block_on(T::setup()))
    }
}

impl<T: Fixture> Default for Lazy<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Fixture> Drop for Lazy<T> {
    fn drop(&mut self) {
        let Some(fixture) = self.cell.get() else { return };
        let redis = fixture.redis();
        let prefix = redis.keys().prefix().to_owned();
        let deleted = self.rt.block_on(async {
            let deleted = tokio::time::timeout(Duration::from_secs(120), delete_prefix(redis)).await;
            redis.quit().await;
            deleted
        });
        match deleted {
            Ok(Ok(n)) => eprintln!("cleanup: unlinked {n} keys under {prefix}:*"),
            Ok(Err(e)) => eprintln!("cleanup failed ({e}); delete the keys under {prefix}:* by hand"),
            Err(_) => eprintln!("cleanup timed out; delete the keys under {prefix}:* by hand"),
        }
    }
}
