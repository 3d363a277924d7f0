//! `ticketrush verify`: every wallet, seat, reservation and payment in
//! Redis against its Postgres row.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use deadpool_postgres::Pool;
use fred::interfaces::{HashesInterface, KeysInterface};

use super::scan_keys;
use crate::booking::{Catalog, ReservationState};
use crate::store::redis::RedisStore;
use crate::sweeper;

/// One disagreement between the stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// What differs, e.g. `wallet 7` or `seat 10/3`.
    pub subject: String,
    pub redis: String,
    pub postgres: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: redis {} / postgres {}", self.subject, self.redis, self.postgres)
    }
}

#[derive(Default)]
struct Diffs(Vec<Difference>);

impl Diffs {
    fn compare(&mut self, subject: impl Into<String>, redis: Option<String>, postgres: Option<String>) {
        if redis != postgres {
            let show = |v: Option<String>| v.unwrap_or_else(|| "missing".into());
            self.0.push(Difference {
                subject: subject.into(),
                redis: show(redis),
                postgres: show(postgres),
            });
        }
    }
}

/// Compares the stores. Lapsed holds are released first (as any reader
/// would see them) and the write-behind must have drained; the caller
/// makes sure of that ([`super::wait_for_drain`]).
///
/// # Errors
/// Store failures.
pub async fn verify(redis: &RedisStore, pg: &Pool) -> anyhow::Result<Vec<Difference>> {
    let mut diffs = Diffs::default();
    wallets(redis, pg, &mut diffs).await?;
    // Every concert either store knows, with its schedules and seat counts.
    let mut concerts: BTreeMap<i64, BTreeMap<i64, i64>> = BTreeMap::new();
    for concert in Catalog::new().list(redis).await? {
        let schedules = concerts.entry(concert.id).or_default();
        schedules.extend(concert.schedules.iter().map(|s| (s.id, s.seat_count)));
    }
    let client = pg.get().await?;
    for row in client
        .query("select concert_id, schedule_id, seat_count from schedule", &[])
        .await?
    {
        let schedules = concerts.entry(row.get(0)).or_default();
        schedules.insert(row.get(1), i64::from(row.get::<_, i32>(2)));
    }
    for (concert_id, schedules) in &concerts {
        seats(redis, pg, *concert_id, schedules, &mut diffs).await?;
        reservations(redis, pg, *concert_id, &mut diffs).await?;
        payments(redis, pg, *concert_id, &mut diffs).await?;
    }
    Ok(diffs.0)
}

/// Releases lapsed holds everywhere, so both stores can settle on them.
///
/// # Errors
/// Redis failures.
pub async fn settle_expiry(redis: &RedisStore, settings: &crate::config::Settings) -> anyhow::Result<()> {
    sweeper::sweep_all(redis, settings, sweeper::SAGA_TIMEOUT).await?;
    Ok(())
}

async fn wallets(redis: &RedisStore, pg: &Pool, diffs: &mut Diffs) -> anyhow::Result<()> {
    let mut in_redis = BTreeMap::new();
    for bucket in 0..crate::store::redis::keys::WALLET_BUCKETS {
        let pattern = format!("{}w:*", redis.keys().bucket(bucket));
        for key in scan_keys(redis, &pattern).await? {
            let Some(id) = key.rsplit(':').next().and_then(|i| i.parse::<i64>().ok()) else {
                continue;
            };
            let (balance, version): (Option<i64>, Option<i64>) =
                redis.client().hmget(key.as_str(), vec!["balance", "version"]).await?;
            in_redis.insert(
                id,
                format!("balance {} version {}", balance.unwrap_or(0), version.unwrap_or(0)),
            );
        }
    }
    let client = pg.get().await?;
    let rows = client
        .query("select user_id, balance, version from app_user", &[])
        .await?;
    let mut in_pg = BTreeMap::new();
    for row in rows {
        let (id, balance, version): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        in_pg.insert(id, format!("balance {balance} version {version}"));
    }
    let ids: BTreeSet<i64> = in_redis.keys().chain(in_pg.keys()).copied().collect();
    for id in ids {
        diffs.compare(format!("wallet {id}"), in_redis.remove(&id), in_pg.remove(&id));
    }
    Ok(())
}

async fn seats(
    redis: &RedisStore,
    pg: &Pool,
    concert_id: i64,
    schedules: &BTreeMap<i64, i64>,
    diffs: &mut Diffs,
) -> anyhow::Result<()> {
    let client = pg.get().await?;
    for (&schedule_id, &seat_count) in schedules {
        let key = format!("{}seats:{schedule_id}", redis.keys().concert(concert_id));
        let states: Option<String> = redis.client().get(key).await?;
        let rows = client
            .query(
                "select seat_number, status from seat where schedule_id = $1 order by seat_number",
                &[&schedule_id],
            )
            .await?;
        let in_pg: BTreeMap<i64, String> = rows
            .iter()
            .map(|r| (i64::from(r.get::<_, i32>(0)), r.get::<_, String>(1)))
            .collect();
        let in_redis: BTreeMap<i64, String> = states
            .unwrap_or_default()
            .bytes()
            .enumerate()
            .map(|(i, b)| (i as i64 + 1, seat_status(b).to_owned()))
            .collect();
        for n in 1..=seat_count {
            diffs.compare(
                format!("seat {schedule_id}/{n}"),
                in_redis.get(&n).cloned(),
                in_pg.get(&n).cloned(),
            );
        }
    }
    Ok(())
}

fn seat_status(byte: u8) -> &'static str {
    match byte {
        b'H' => "HELD",
        b'S' => "SOLD",
        _ => "AVAILABLE",
    }
}

async fn reservations(redis: &RedisStore, pg: &Pool, concert_id: i64, diffs: &mut Diffs) -> anyhow::Result<()> {
    let base = redis.keys().concert(concert_id);
    let mut in_redis = BTreeMap::new();
    for key in scan_keys(redis, &format!("{base}r:*")).await? {
        let json: Option<String> = redis.client().get(key.as_str()).await?;
        let Some(json) = json else { continue };
        let r = ReservationState::decode(json.as_bytes())?;
        let status = if r.status == "PAYING" {
            "HELD".to_owned()
        } else {
            r.status.clone()
        };
        in_redis.insert(
            r.id.clone(),
            describe_reservation(&status, r.user_id, r.amount, &r.seats),
        );
    }
    let client = pg.get().await?;
    let rows = client
        .query(
            "select r.reservation_id::text, r.status, r.user_id, r.amount,
                    coalesce(array_agg(s.seat_number order by s.seat_number) filter (where s.seat_number is not null), '{}')
               from reservation r left join reservation_seat s using (reservation_id)
              where r.concert_id = $1 group by r.reservation_id",
            &[&concert_id],
        )
        .await?;
    let mut in_pg = BTreeMap::new();
    for row in rows {
        let seats: Vec<i32> = row.get(4);
        let seats: Vec<i64> = seats.into_iter().map(i64::from).collect();
        in_pg.insert(
            row.get::<_, String>(0),
            describe_reservation(row.get(1), row.get(2), row.get(3), &seats),
        );
    }
    let ids: BTreeSet<String> = in_redis.keys().chain(in_pg.keys()).cloned().collect();
    for id in ids {
        diffs.compare(format!("reservation {id}"), in_redis.remove(&id), in_pg.remove(&id));
    }
    Ok(())
}

fn describe_reservation(status: &str, user: i64, amount: i64, seats: &[i64]) -> String {
    let mut seats = seats.to_vec();
    seats.sort_unstable();
    format!("{status} user {user} amount {amount} seats {seats:?}")
}

async fn payments(redis: &RedisStore, pg: &Pool, concert_id: i64, diffs: &mut Diffs) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct Payment {
        id: String,
        status: String,
        amount: i64,
        user_id: i64,
    }
    let base = redis.keys().concert(concert_id);
    let mut in_redis = BTreeMap::new();
    for key in scan_keys(redis, &format!("{base}p:*")).await? {
        let json: Option<String> = redis.client().get(key.as_str()).await?;
        let Some(json) = json else { continue };
        let mut bytes = json.into_bytes();
        let p: Payment = simd_json::serde::from_slice(&mut bytes)?;
        if p.status != "PENDING" {
            in_redis.insert(p.id, format!("{} user {} amount {}", p.status, p.user_id, p.amount));
        }
    }
    let client = pg.get().await?;
    let rows = client
        .query(
            "select payment_id::text, status, user_id, amount from payment where concert_id = $1",
            &[&concert_id],
        )
        .await?;
    let mut in_pg = BTreeMap::new();
    for row in rows {
        let (id, status, user, amount): (String, String, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
        in_pg.insert(id, format!("{status} user {user} amount {amount}"));
    }
    let ids: BTreeSet<String> = in_redis.keys().chain(in_pg.keys()).cloned().collect();
    for id in ids {
        diffs.compare(format!("payment {id}"), in_redis.remove(&id), in_pg.remove(&id));
    }
    Ok(())
}
