//! `ticketrush rebuild`: loads Redis from Postgres after Redis was lost.
//!
//! Restored: users with their key hashes, wallets (balance, version, the
//! newest history), concerts and schedules (catalog and seat maps), seat
//! owners and per-user seat counts, reservations, payments, the saga
//! records that keep a retried payment or refund from happening twice, and
//! the idempotency records of the last day's charges, holds and payments
//! (Postgres keeps the Idempotency-Key of each).
//!
//! Not restored, by design: waiting-room tokens (the queue is live state;
//! people join again, and their seats and money are safe). Holds and
//! payments that were in flight are restored in the state Postgres last
//! saw.

use std::collections::{BTreeMap, BTreeSet};

use deadpool_postgres::Pool;
use fred::interfaces::{HashesInterface, KeysInterface, ListInterface, SetsInterface, SortedSetsInterface};
use fred::types::Expiration;
use serde_json::{json, Value};

use crate::booking::{Concert, Schedule};
use crate::store::redis::{Keys, RedisStore};

/// What a rebuild restored.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub users: usize,
    pub concerts: usize,
    pub reservations: usize,
    pub payments: usize,
    /// Idempotency records of charges made in the last day.
    pub charge_keys: usize,
    /// Idempotency records of holds asked for in the last day.
    pub hold_keys: usize,
    /// Idempotency records of payments asked for in the last day.
    pub payment_keys: usize,
}

/// Newest history entries restored per wallet (as the scripts keep).
const HISTORY_LEN: i64 = 200;

/// How long an idempotency record lives (as `charge_balance.lua`,
/// `hold_seats.lua` and `begin_payment.lua` keep them).
const IDEMPOTENCY_SECONDS: i64 = 86_400;

fn ms(t: Option<chrono::DateTime<chrono::Utc>>) -> Value {
    t.map_or(Value::Null, |t| json!(t.timestamp_millis()))
}

/// Writes the Postgres state into Redis under the deployment's prefix.
/// Existing keys of the same entities are overwritten; the caller makes
/// sure the write-behind had drained, so Postgres is not behind Redis.
///
/// # Errors
/// Store failures.
pub async fn rebuild(redis: &RedisStore, pg: &Pool) -> anyhow::Result<RebuildReport> {
    let mut report = RebuildReport {
        users: users(redis, pg).await?,
        ..RebuildReport::default()
    };
    let concerts = concerts(redis, pg).await?;
    report.concerts = concerts.len();
    (report.reservations, report.hold_keys) = reservations(redis, pg).await?;
    (report.payments, report.payment_keys) = payments(redis, pg).await?;
    report.charge_keys = charge_keys(redis, pg).await?;
    sequences(redis, pg).await?;
    Ok(report)
}

async fn users(redis: &RedisStore, pg: &Pool) -> anyhow::Result<usize> {
    let keys = redis.keys();
    let client = pg.get().await?;
    let rows = client
        .query(
            "select user_id, name, api_key_hash, created_at, balance, version from app_user",
            &[],
        )
        .await?;
    for row in &rows {
        let id: i64 = row.get(0);
        let created: chrono::DateTime<chrono::Utc> = row.get(3);
        let fields = vec![
            ("name", row.get::<_, String>(1)),
            ("key_hash", row.get::<_, String>(2)),
            ("created_at", created.timestamp_millis().to_string()),
            ("balance", row.get::<_, i64>(4).to_string()),
            ("version", row.get::<_, i64>(5).to_string()),
        ];
        let _: () = redis.client().hset(keys.wallet_hash(id), fields).await?;
    }
    let ledger = client
        .query(
            "select user_id, version, entry_type, amount, balance_before, balance_after, reference::text, created_at
               from (select *, row_number() over (partition by user_id order by version desc) as n from wallet_ledger) l
              where n <= $1 order by user_id, version desc",
            &[&HISTORY_LEN],
        )
        .await?;
    let mut history: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for row in &ledger {
        let user: i64 = row.get(0);
        let entry = json!({
            "user_id": user, "version": row.get::<_, i64>(1), "type": row.get::<_, String>(2),
            "amount": row.get::<_, i64>(3), "balance_before": row.get::<_, i64>(4),
            "balance_after": row.get::<_, i64>(5), "reference": row.get::<_, Option<String>>(6),
            "at": ms(Some(row.get(7))),
        });
        history.entry(user).or_default().push(entry.to_string());
    }
    for (user, entries) in history {
        let key = keys.history(user);
        let _: i64 = redis.client().del(key.as_str()).await?;
        let _: i64 = redis.client().rpush(key, entries).await?;
    }
    let refunds = client
        .query(
            "select user_id, reference::text, balance_after from wallet_ledger where entry_type = 'REFUND' and reference is not null",
            &[],
        )
        .await?;
    for row in &refunds {
        let key = format!("{}ref:{}", keys.wallet(row.get(0)), row.get::<_, String>(1));
        let _: () = redis.client().set(key, row.get::<_, i64>(2), None, None, false).await?;
    }
    Ok(rows.len())
}

/// Sets an idempotency record for what is left of its day, counted from
/// `asked`; false, and nothing set, once the day is over.
async fn restore_record(
    redis: &RedisStore,
    key: String,
    answer: String,
    asked: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<bool> {
    let left = IDEMPOTENCY_SECONDS - (chrono::Utc::now() - asked).num_seconds();
    if left <= 0 {
        return Ok(false);
    }
    let _: () = redis
        .client()
        .set(key, answer, Some(Expiration::EX(left)), None, false)
        .await?;
    Ok(true)
}

/// The idempotency records of the charges of the last day: a charge retried
/// with its `Idempotency-Key` answers as it first did and books nothing.
async fn charge_keys(redis: &RedisStore, pg: &Pool) -> anyhow::Result<usize> {
    let keys = redis.keys();
    let rows = pg
        .get()
        .await?
        .query(
            "select user_id, idempotency_key, amount, balance_after, created_at
               from wallet_ledger
              where idempotency_key is not null and entry_type = 'CHARGE'
                and created_at > now() - $1::bigint * interval '1 second'",
            &[&IDEMPOTENCY_SECONDS],
        )
        .await?;
    let mut restored = 0;
    for row in &rows {
        let user: i64 = row.get(0);
        let key = Keys::idempotency(&keys.wallet(user), user, "charge", row.get(1));
        let answer = json!({ "user_id": user, "amount": row.get::<_, i64>(2), "balance": row.get::<_, i64>(3) });
        if restore_record(redis, key, answer.to_string(), row.get(4)).await? {
            restored += 1;
        }
    }
    Ok(restored)
}

async fn concerts(redis: &RedisStore, pg: &Pool) -> anyhow::Result<Vec<Concert>> {
    let keys = redis.keys();
    let client = pg.get().await?;
    let concert_rows = client
        .query(
            "select concert_id, title, artist, venue, description, created_at from concert order by concert_id",
            &[],
        )
        .await?;
    let schedule_rows = client
        .query(
            "select schedule_id, concert_id, starts_at, booking_opens_at, seat_count, price, purchase_limit
               from schedule order by schedule_id",
            &[],
        )
        .await?;
    let mut schedules: BTreeMap<i64, Vec<Schedule>> = BTreeMap::new();
    for row in &schedule_rows {
        let concert_id: i64 = row.get(1);
        let starts: chrono::DateTime<chrono::Utc> = row.get(2);
        let opens: chrono::DateTime<chrono::Utc> = row.get(3);
        schedules.entry(concert_id).or_default().push(Schedule {
            id: row.get(0),
            concert_id,
            starts_at: starts.timestamp_millis(),
            booking_opens_at: opens.timestamp_millis(),
            seat_count: i64::from(row.get::<_, i32>(4)),
            price: row.get(5),
            purchase_limit: i64::from(row.get::<_, i32>(6)),
        });
    }
    let mut out = Vec::with_capacity(concert_rows.len());
    for row in &concert_rows {
        let id: i64 = row.get(0);
        let created: chrono::DateTime<chrono::Utc> = row.get(5);
        let concert = Concert {
            id,
            title: row.get(1),
            artist: row.get(2),
            venue: row.get(3),
            description: row.get(4),
            created_at: created.timestamp_millis(),
            schedules: schedules.remove(&id).unwrap_or_default(),
        };
        restore_concert(redis, keys, pg, &concert).await?;
        out.push(concert);
    }
    Ok(out)
}

async fn restore_concert(redis: &RedisStore, keys: &Keys, pg: &Pool, concert: &Concert) -> anyhow::Result<()> {
    let client = redis.client();
    let base = keys.concert(concert.id);
    let _: i64 = client.sadd(keys.streams(), Keys::stream(&base)).await?;
    crate::booking::catalog::publish(redis, concert).await?;
    let pg = pg.get().await?;
    for s in &concert.schedules {
        let rows = pg
            .query(
                "select seat_number, status, reservation_id::text from seat where schedule_id = $1 order by seat_number",
                &[&s.id],
            )
            .await?;
        let mut states = vec![b'A'; s.seat_count as usize];
        let mut owners: Vec<(String, String)> = Vec::new();
        for row in &rows {
            let n = row.get::<_, i32>(0) as usize;
            let status: String = row.get(1);
            if let (Some(slot), Some(owner)) = (states.get_mut(n - 1), row.get::<_, Option<String>>(2)) {
                match status.as_str() {
                    "HELD" => *slot = b'H',
                    "SOLD" => *slot = b'S',
                    _ => continue,
                }
                owners.push((n.to_string(), owner));
            }
        }
        let available = states.iter().filter(|b| **b == b'A').count() as i64;
        let _: () = client
            .set(format!("{base}seats:{}", s.id), states.as_slice(), None, None, false)
            .await?;
        let own = format!("{base}own:{}", s.id);
        let _: i64 = client.del(own.as_str()).await?;
        if !owners.is_empty() {
            let _: () = client.hset(own, owners).await?;
        }
        let fields = vec![
            ("starts_at", s.starts_at.to_string()),
            ("opens_at", s.booking_opens_at.to_string()),
            ("seat_count", s.seat_count.to_string()),
            ("price", s.price.to_string()),
            ("limit", s.purchase_limit.to_string()),
            ("avail", available.to_string()),
        ];
        let _: () = client.hset(format!("{base}s:{}", s.id), fields).await?;
    }
    Ok(())
}

/// Restores every reservation; returns how many, and how many holds' idempotency
/// records it restored.
async fn reservations(redis: &RedisStore, pg: &Pool) -> anyhow::Result<(usize, usize)> {
    let keys = redis.keys();
    let client = pg.get().await?;
    let rows = client
        .query(
            "select r.reservation_id::text, r.user_id, r.concert_id, r.schedule_id, r.amount, r.status, r.held_at,
                    r.expires_at, r.payment_id::text, r.confirmed_at, r.cancelled_at, r.refunded_at,
                    array_agg(s.seat_number order by s.seat_number), r.idempotency_key
               from reservation r join reservation_seat s using (reservation_id)
              group by r.reservation_id",
            &[],
        )
        .await?;
    let mut counts: BTreeMap<(i64, i64, i64), i64> = BTreeMap::new();
    let mut user_concerts: BTreeSet<(i64, i64)> = BTreeSet::new();
    let mut hold_keys = 0;
    for row in &rows {
        let id: String = row.get(0);
        let (user, concert, schedule): (i64, i64, i64) = (row.get(1), row.get(2), row.get(3));
        let status: String = row.get(5);
        let seats: Vec<i32> = row.get(12);
        let held: chrono::DateTime<chrono::Utc> = row.get(6);
        let expires: chrono::DateTime<chrono::Utc> = row.get(7);
        let state = json!({
            "id": id, "user_id": user, "concert_id": concert, "schedule_id": schedule, "seats": seats,
            "amount": row.get::<_, i64>(4), "status": status, "held_at": held.timestamp_millis(),
            "expires_at": expires.timestamp_millis(), "payment_id": row.get::<_, Option<String>>(8),
            "confirmed_at": ms(row.get(9)), "cancelled_at": ms(row.get(10)), "refunded_at": ms(row.get(11)),
            "updated_at": held.timestamp_millis(), "v": 1,
        });
        let base = keys.concert(concert);
        if let Some(ikey) = row.get::<_, Option<String>>(13) {
            // The hold's first answer: the reservation as it was held (its
            // seats in seat order; Postgres does not keep the order asked).
            let mut first = state.clone();
            first["status"] = json!("HELD");
            if let Some(fields) = first.as_object_mut() {
                for later in ["payment_id", "confirmed_at", "cancelled_at", "refunded_at"] {
                    fields.remove(later);
                }
            }
            let key = Keys::idempotency(&base, user, "hold", &ikey);
            if restore_record(redis, key, first.to_string(), held).await? {
                hold_keys += 1;
            }
        }
        let c = redis.client();
        let _: () = c
            .set(format!("{base}r:{id}"), state.to_string(), None, None, false)
            .await?;
        let _: i64 = c
            .zadd(
                format!("{base}ur:{user}"),
                None,
                None,
                false,
                false,
                (held.timestamp_millis() as f64, id.as_str()),
            )
            .await?;
        if status == "HELD" {
            let at = expires.timestamp_millis() as f64;
            let _: i64 = c
                .zadd(format!("{base}hx"), None, None, false, false, (at, id.as_str()))
                .await?;
            let _: i64 = c
                .zadd(format!("{base}uh:{user}"), None, None, false, false, (at, id.as_str()))
                .await?;
        }
        if status == "HELD" || status == "CONFIRMED" {
            *counts.entry((concert, schedule, user)).or_default() += seats.len() as i64;
        }
        user_concerts.insert((user, concert));
    }
    for ((concert, schedule, user), n) in counts {
        let _: () = redis
            .client()
            .hset(format!("{}uc:{schedule}", keys.concert(concert)), (user.to_string(), n))
            .await?;
    }
    let tokens = client
        .query("select distinct user_id, concert_id from queue_token", &[])
        .await?;
    user_concerts.extend(tokens.iter().map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1))));
    for (user, concert) in user_concerts {
        let _: i64 = redis.client().sadd(keys.user_concerts(user), concert).await?;
    }
    Ok((rows.len(), hold_keys))
}

/// Restores every payment and its saga record; returns how many, and how
/// many payments' idempotency records it restored.
async fn payments(redis: &RedisStore, pg: &Pool) -> anyhow::Result<(usize, usize)> {
    let keys = redis.keys();
    let client = pg.get().await?;
    let rows = client
        .query(
            "select payment_id::text, reservation_id::text, user_id, concert_id, amount, status, reason, balance_after,
                    created_at, paid_at, refunded_at, idempotency_key from payment",
            &[],
        )
        .await?;
    let mut payment_keys = 0;
    for row in &rows {
        let id: String = row.get(0);
        let (user, concert): (i64, i64) = (row.get(2), row.get(3));
        let status: String = row.get(5);
        let balance_after: Option<i64> = row.get(7);
        let state = json!({
            "id": id, "reservation_id": row.get::<_, String>(1), "user_id": user, "concert_id": concert,
            "amount": row.get::<_, i64>(4), "status": status, "reason": row.get::<_, Option<String>>(6),
            "balance_after": balance_after, "created_at": ms(Some(row.get(8))), "paid_at": ms(row.get(9)),
            "refunded_at": ms(row.get(10)),
        });
        let _: () = redis
            .client()
            .set(keys.payment(concert, &id), state.to_string(), None, None, false)
            .await?;
        if let Some(ikey) = row.get::<_, Option<String>>(11) {
            // A retry with the key resumes this payment.
            let key = Keys::idempotency(&keys.concert(concert), user, "pay", &ikey);
            if restore_record(redis, key, id.clone(), row.get(8)).await? {
                payment_keys += 1;
            }
        }
        // The wallet's saga record: this payment id can never debit again.
        let record = match (status.as_str(), balance_after) {
            ("FAILED", _) => "V".to_owned(),
            (_, Some(after)) => format!("D:{after}"),
            _ => continue,
        };
        let _: () = redis
            .client()
            .set(format!("{}pay:{id}", keys.wallet(user)), record, None, None, false)
            .await?;
    }
    Ok((rows.len(), payment_keys))
}

async fn sequences(redis: &RedisStore, pg: &Pool) -> anyhow::Result<()> {
    let client = pg.get().await?;
    let row = client
        .query_one(
            "select coalesce((select max(user_id) from app_user), 0), coalesce((select max(concert_id) from concert), 0),
                    coalesce((select max(schedule_id) from schedule), 0)",
            &[],
        )
        .await?;
    for (name, max) in [
        ("users", row.get::<_, i64>(0)),
        ("concerts", row.get(1)),
        ("schedules", row.get(2)),
    ] {
        let key = redis.keys().sequence(name);
        let current: Option<i64> = redis.client().get(key.as_str()).await?;
        if current.unwrap_or(0) < max {
            let _: () = redis.client().set(key, max, None, None, false).await?;
        }
    }
    Ok(())
}
