//! Write-behind throughput: events a second the worker moves from the Redis
//! streams into Postgres (read, decode, one upsert transaction, ack), beside
//! its ceiling measured in the same run: a bare batched insert (`unnest`,
//! one statement, one transaction) of the same ledger rows into a copy of
//! the ledger table.
//!
//! Needs the local Redis and Postgres (`scripts/services.sh start`). Each run
//! uses its own key prefix and database and removes both at the end. Run
//! with `cargo bench --bench writebehind`; `WB_BENCH_EVENTS` sets the batch
//! (default 20,000 events per iteration).
//!
//! On a shared machine the load changes between criterion's two groups, so
//! the run ends with paired rounds (`WB_BENCH_PAIRS`, default 10): each
//! drains a batch and then inserts as many bare rows, and the median of the
//! rounds' ratios is printed, with the CPU time that Postgres, Redis and this
//! process spent in each half (from `/proc`, on Linux): the ceiling only
//! pays Postgres, the worker pays all three on the same cores.

use std::str::FromStr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::future::join_all;
use secrecy::{ExposeSecret, SecretString};
use ticketrush::balance::{self, ChargeAmount};
use ticketrush::config::Settings;
use ticketrush::reconcile;
use ticketrush::store::postgres;
use ticketrush::store::redis::RedisStore;
use ticketrush::user::{self, UserName};
use ticketrush::writebehind::{FlushOutcome, Worker};
use tokio::runtime::Runtime;

/// Users the charges are spread over (every wallet bucket gets some).
const USERS: i64 = 256;

/// Whether criterion runs for real (`cargo bench`) rather than once as a
/// test (`cargo test --all-targets`).
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn events_per_iteration() -> usize {
    if !measuring() {
        return 200;
    }
    std::env::var("WB_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

struct Fixture {
    redis: RedisStore,
    pg: deadpool_postgres::Pool,
    admin: tokio_postgres::Client,
    db_name: String,
    users: Vec<i64>,
}

async fn fixture() -> Fixture {
    let mut settings = Settings::defaults();
    settings.redis.key_prefix = format!("bench_wb_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let db_name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin_config = tokio_postgres::Config::from_str(settings.postgres.url.expose_secret()).expect("url");
    admin_config.dbname("postgres");
    let (admin, connection) = admin_config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("postgres is up");
    tokio::spawn(connection);
    admin
        .simple_query(&format!("create database \"{db_name}\""))
        .await
        .expect("create db");
    let url = settings.postgres.url.expose_secret().to_owned();
    let base = url.rsplit_once('/').map(|(head, _)| head).unwrap_or(&url).to_owned();
    settings.postgres.url = SecretString::from(format!("{base}/{db_name}"));
    let pg = postgres::connect(&settings.postgres).expect("pool");
    postgres::migrate::run(&pg).await.expect("migrate");
    pg.get()
        .await
        .expect("connection")
        .batch_execute("create table bare_ledger (like wallet_ledger including all)")
        .await
        .expect("scratch table");
    let redis = RedisStore::connect(&settings.redis).await.expect("redis is up");
    let mut users = Vec::new();
    for i in 0..USERS {
        let name = UserName::parse(format!("fan{i}")).expect("valid name");
        users.push(user::create_user(&redis, name).await.expect("user").id);
    }
    let mut fixture = Fixture {
        redis,
        pg,
        admin,
        db_name,
        users,
    };
    drain(&mut fixture).await;
    fixture
}

/// Appends `n` ledger events (charges of 1 KRW) through the real script.
async fn fill(f: &Fixture, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(512) {
        join_all(chunk.iter().map(|i| {
            let user = f.users[i % f.users.len()];
            balance::charge(&f.redis, user, ChargeAmount::parse(1).expect("valid"), "")
        }))
        .await
        .into_iter()
        .for_each(|r| {
            r.expect("charge");
        });
    }
}

async fn drain(f: &mut Fixture) -> usize {
    let mut worker = Worker::new(f.redis.clone(), f.pg.clone());
    let mut total = 0;
    while let FlushOutcome::Flushed(n) = worker.try_flush_once().await.expect("flush") {
        total += n;
    }
    total
}

/// The ceiling: as many ledger rows, with the same columns as the worker
/// writes, in one `unnest` insert.
async fn bare_insert(f: &Fixture, n: usize, round: i64) -> Duration {
    let users: Vec<i64> = (0..n).map(|i| f.users[i % f.users.len()]).collect();
    let versions: Vec<i64> = (0..n as i64).map(|i| round * 10_000_000 + i).collect();
    let kinds = vec!["CHARGE"; n];
    let amounts = vec![1i64; n];
    let before: Vec<i64> = (0..n as i64).collect();
    let after: Vec<i64> = (1..=n as i64).collect();
    let refs: Vec<Option<uuid::Uuid>> = vec![None; n];
    let created = vec![std::time::SystemTime::now(); n];
    let keys: Vec<Option<&str>> = vec![None; n];
    let mut client = f.pg.get().await.expect("connection");
    let started = Instant::now();
    let tx = client.transaction().await.expect("tx");
    tx.execute(
        "insert into bare_ledger (user_id, version, entry_type, amount, balance_before, balance_after, reference, created_at, idempotency_key)
         select * from unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::uuid[], $8::timestamptz[], $9::text[])",
        &[&users, &versions, &kinds, &amounts, &before, &after, &refs, &created, &keys],
    )
    .await
    .expect("bare insert");
    tx.commit().await.expect("commit");
    started.elapsed()
}

/// Worker drains and bare inserts back to back; prints the median ratio.
async fn paired_rounds(f: &mut Fixture, n: usize, mut round: i64) {
    let pairs = std::env::var("WB_BENCH_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10usize)
        .max(1);
    let mut ratios = Vec::new();
    let (mut worker_cpu, mut bare_cpu) = (Vec::new(), Vec::new());
    for _ in 0..pairs {
        fill(f, n).await;
        let before = CpuTimes::now();
        let started = Instant::now();
        assert_eq!(drain(f).await, n);
        let worker = started.elapsed();
        let between = CpuTimes::now();
        round += 1;
        ratios.push(bare_insert(f, n, round).await.as_secs_f64() / worker.as_secs_f64());
        worker_cpu.push(between.since(&before));
        bare_cpu.push(CpuTimes::now().since(&between));
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    println!(
        "writebehind paired: worker / bare insert, median of {pairs} rounds {:.0} % (from {:.0} % to {:.0} %)",
        median * 100.0,
        ratios[0] * 100.0,
        ratios[ratios.len() - 1] * 100.0
    );
    for (name, spent) in [("worker drain", worker_cpu), ("bare insert", bare_cpu)] {
        let [pg, redis, this] = [0, 1, 2].map(|i| median_of(spent.iter().map(|c| c[i]).collect()));
        println!(
            "writebehind CPU ms per {n} events, {name} (median): Postgres {pg}, Redis {redis}, this process {this}"
        );
    }
}

/// CPU time (ms) so far of the Postgres server processes, the Redis server
/// and this process, read from `/proc` (zeros elsewhere).
struct CpuTimes([u64; 3]);

impl CpuTimes {
    fn now() -> Self {
        let mut spent = [0; 3];
        let me = std::process::id().to_string();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // `pid (comm) state ...`: utime and stime are the 12th and 13th
            // fields after the command name.
            let Some((head, tail)) = stat.rsplit_once(')') else {
                continue;
            };
            let comm = head.split_once('(').map_or("", |(_, c)| c);
            let fields: Vec<&str> = tail.split_whitespace().collect();
            let ticks: u64 = fields
                .get(11..13)
                .into_iter()
                .flatten()
                .filter_map(|v| v.parse::<u64>().ok())
                .sum();
            let slot = match comm {
                c if c.starts_with("postgres") => 0,
                c if c.starts_with("redis-server") => 1,
                _ if pid == me => 2,
                _ => continue,
            };
            spent[slot] += ticks * 10; // USER_HZ is 100 on Linux
        }
        Self(spent)
    }

    fn since(&self, earlier: &Self) -> [u64; 3] {
        [0, 1, 2].map(|i| self.0[i].saturating_sub(earlier.0[i]))
    }
}

fn median_of(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

fn writebehind(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let mut f = runtime.block_on(fixture());
    let n = events_per_iteration();
    let mut group = c.benchmark_group("writebehind");
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("worker_drain", n), |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    fill(&f, n).await;
                    let started = Instant::now();
                    let written = drain(&mut f).await;
                    spent += started.elapsed();
                    assert_eq!(written, n);
                }
                spent
            })
        });
    });
    let mut round = 0;
    group.bench_function(BenchmarkId::new("bare_unnest_insert", n), |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    spent += bare_insert(&f, n, round).await;
                }
                spent
            })
        });
    });
    group.finish();
    if measuring() {
        runtime.block_on(paired_rounds(&mut f, n, round));
    }
    runtime.block_on(async {
        reconcile::delete_all(&f.redis).await.expect("cleanup redis");
        f.redis.quit().await;
        drop(f.pg);
        f.admin
            .simple_query(&format!("drop database \"{}\" with (force)", f.db_name))
            .await
            .expect("drop db");
    });
}

criterion_group!(benches, writebehind);
criterion_main!(benches);
