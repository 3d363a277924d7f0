//! The Postgres side of the write-behind: one transaction per batch, every
//! statement an idempotent upsert.
//!
//! Events carry the entity's whole new state. Rows fed by a concert stream
//! keep the stream position of the last event applied and are only updated
//! by a later one, so a replayed or reordered batch converges on the same
//! rows. Within a batch, only the latest event per row is sent (Postgres
//! refuses to upsert one row twice in a statement). Wallet balances follow
//! the ledger's highest version.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::{Pool, Transaction};
use serde::Deserialize;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::{Entry, Kind};
use crate::balance::LedgerEvent;
use crate::booking::{Concert, ReservationState};
use crate::payment::PaymentState;
use crate::queue::TokenState;

#[derive(Debug, Deserialize)]
struct UserEvent {
    id: i64,
    name: String,
    key_hash: String,
    created_at: i64,
}

/// Decoded events of one batch, latest per row.
#[derive(Default)]
struct Batch {
    users: Vec<UserEvent>,
    ledger: Vec<LedgerEvent>,
    concerts: Vec<Concert>,
    tokens: HashMap<String, ((i64, i64), TokenState)>,
    reservations: HashMap<String, ((i64, i64), ReservationState)>,
    seats: HashMap<(i64, i64), ((i64, i64), SeatChange)>,
    payments: HashMap<String, ((i64, i64), PaymentState)>,
    cursors: HashMap<String, ((i64, i64), i64)>,
}

#[derive(Debug, Clone)]
struct SeatChange {
    status: &'static str,
    reservation_id: Option<Uuid>,
    hold_expires_at: Option<i64>,
}

fn keep_latest<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, ((i64, i64), V)>, key: K, at: (i64, i64), value: V) {
    match map.get(&key) {
        Some((seen, _)) if *seen >= at => {}
        _ => {
            map.insert(key, (at, value));
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(entry: &Entry) -> anyhow::Result<T> {
    serde_json::from_slice(&entry.data).map_err(|e| {
        anyhow::anyhow!(
            "event {} of {} ({}) is malformed: {e}",
            entry.id(),
            entry.stream,
            entry.kind.as_str()
        )
    })
}

impl Batch {
    fn add(&mut self, entry: &Entry) -> anyhow::Result<()> {
        let at = entry.position();
        match &entry.kind {
            Kind::User => self.users.push(decode(entry)?),
            Kind::Ledger => self.ledger.push(decode(entry)?),
            Kind::Concert => self.concerts.push(decode(entry)?),
            Kind::Token => {
                let t: TokenState = decode(entry)?;
                keep_latest(&mut self.tokens, t.token.clone(), at, t);
            }
            Kind::Reservation => {
                let r: ReservationState = decode(entry)?;
                let change = seat_change(&r);
                for seat in &r.seats {
                    keep_latest(&mut self.seats, (r.schedule_id, *seat), at, change.clone());
                }
                keep_latest(&mut self.reservations, r.id.clone(), at, r);
            }
            Kind::Payment => {
                let p: PaymentState = decode(entry)?;
                if p.status != "PENDING" {
                    keep_latest(&mut self.payments, p.id.clone(), at, p);
                }
            }
            Kind::Other(other) => tracing::warn!(kind = %other, id = %entry.id(), "skipping an event of unknown kind"),
        }
        let cursor = self.cursors.entry(entry.stream.to_string()).or_insert((at, 0));
        cursor.0 = cursor.0.max(at);
        cursor.1 += 1;
        Ok(())
    }
}

fn seat_change(r: &ReservationState) -> SeatChange {
    let id = Uuid::parse_str(&r.id).ok();
    match r.status.as_str() {
        "HELD" | "PAYING" => SeatChange {
            status: "HELD",
            reservation_id: id,
            hold_expires_at: Some(r.expires_at),
        },
        "CONFIRMED" => SeatChange {
            status: "SOLD",
            reservation_id: id,
            hold_expires_at: None,
        },
        _ => SeatChange {
            status: "AVAILABLE",
            reservation_id: None,
            hold_expires_at: None,
        },
    }
}

/// Persists a batch in one transaction; returns how many events it held.
///
/// # Errors
/// Postgres failures (nothing is committed) or a malformed event.
pub async fn apply_batch(pool: &Pool, entries: &[Entry]) -> anyhow::Result<usize> {
    let mut batch = Batch::default();
    for entry in entries {
        batch.add(entry)?;
    }
    match write_batch(pool, &batch, LedgerInsert::Plain).await {
        Err(e) if is_unique_violation(&e) => {
            tracing::debug!("some ledger rows are stored already; writing the batch again, skipping them");
            write_batch(pool, &batch, LedgerInsert::Tolerant).await?;
        }
        written => written?,
    }
    Ok(entries.len())
}

async fn write_batch(pool: &Pool, batch: &Batch, ledger: LedgerInsert) -> anyhow::Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    insert_users(&tx, &batch.users).await?;
    insert_ledger(&tx, &batch.ledger, ledger).await?;
    update_balances(&tx, batch).await?;
    upsert_concerts(&tx, &batch.concerts).await?;
    upsert_tokens(&tx, batch).await?;
    upsert_reservations(&tx, batch).await?;
    update_seats(&tx, batch).await?;
    upsert_payments(&tx, batch).await?;
    upsert_cursors(&tx, batch).await?;
    tx.commit().await?;
    Ok(())
}

fn is_unique_violation(e: &anyhow::Error) -> bool {
    e.downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.code())
        .is_some_and(|code| *code == SqlState::UNIQUE_VIOLATION)
}

const MS: &str = "to_timestamp(%s::bigint / 1000.0)";

fn ts(column: &str) -> String {
    MS.replace("%s", column)
}

/// Epoch milliseconds as a `timestamptz` parameter (no conversion left to
/// Postgres, row by row).
fn at(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

async fn insert_users(tx: &Transaction<'_>, users: &[UserEvent]) -> anyhow::Result<()> {
    if users.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    let hashes: Vec<&str> = users.iter().map(|u| u.key_hash.as_str()).collect();
    let created: Vec<SystemTime> = users.iter().map(|u| at(u.created_at)).collect();
    let stmt = tx
        .prepare_cached(
            "insert into app_user (user_id, name, api_key_hash, created_at)
             select * from unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[])
             on conflict (user_id) do nothing",
        )
        .await?;
    tx.execute(&stmt, &[&ids, &names, &hashes, &created]).await?;
    Ok(())
}

/// How ledger rows (the bulk of the events) are inserted.
#[derive(Clone, Copy)]
enum LedgerInsert {
    /// A bare insert, as fast as Postgres takes rows: `on conflict`
    /// inserts every row speculatively, which costs about as much again,
    /// and skipping stored rows by a lookup first adds a fifth or more. A
    /// row already stored (a batch delivered again after a crash, entries
    /// that a concurrent worker claimed and committed meanwhile) or one
    /// event twice in the batch fails the statement with a unique
    /// violation; those are rare, and the batch is then written again.
    Plain,
    /// `on conflict do nothing`, after such a failure.
    Tolerant,
}

async fn insert_ledger(tx: &Transaction<'_>, ledger: &[LedgerEvent], how: LedgerInsert) -> anyhow::Result<()> {
    if ledger.is_empty() {
        return Ok(());
    }
    let users: Vec<i64> = ledger.iter().map(|e| e.user_id).collect();
    let versions: Vec<i64> = ledger.iter().map(|e| e.version).collect();
    let kinds: Vec<&str> = ledger.iter().map(|e| e.kind.as_str()).collect();
    let amounts: Vec<i64> = ledger.iter().map(|e| e.amount).collect();
    let before: Vec<i64> = ledger.iter().map(|e| e.balance_before).collect();
    let after: Vec<i64> = ledger.iter().map(|e| e.balance_after).collect();
    let refs: Vec<Option<Uuid>> = ledger
        .iter()
        .map(|e| e.reference.as_deref().and_then(|r| Uuid::parse_str(r).ok()))
        .collect();
    let created: Vec<SystemTime> = ledger.iter().map(|e| at(e.at)).collect();
    let keys: Vec<Option<&str>> = ledger.iter().map(|e| e.idempotency_key.as_deref()).collect();
    macro_rules! insert_rows {
        ($tail:literal) => {
            concat!(
                "insert into wallet_ledger (user_id, version, entry_type, amount, balance_before, balance_after, reference, created_at, idempotency_key)
                 select * from unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::uuid[], $8::timestamptz[], $9::text[])
                   as u(user_id, version, kind, amount, before, after, ref, at, key) ",
                $tail
            )
        };
    }
    let sql = match how {
        LedgerInsert::Plain => insert_rows!(""),
        LedgerInsert::Tolerant => insert_rows!("on conflict (user_id, version) do nothing"),
    };
    let stmt = tx.prepare_cached(sql).await?;
    tx.execute(
        &stmt,
        &[
            &users, &versions, &kinds, &amounts, &before, &after, &refs, &created, &keys,
        ],
    )
    .await?;
    Ok(())
}

async fn update_balances(tx: &Transaction<'_>, batch: &Batch) -> anyhow::Result<()> {
    // Balances follow the newest ledger version, taken from the batch (no
    // scan of a user's history) ...
    let mut newest: HashMap<i64, (i64, i64)> = HashMap::new();
    for e in &batch.ledger {
        let slot = newest.entry(e.user_id).or_insert((e.version, e.balance_after));
        if e.version > slot.0 {
            *slot = (e.version, e.balance_after);
        }
    }
    if !newest.is_empty() {
        let users: Vec<i64> = newest.keys().copied().collect();
        let versions: Vec<i64> = users.iter().map(|u| newest[u].0).collect();
        let balances: Vec<i64> = users.iter().map(|u| newest[u].1).collect();
        let stmt = tx
            .prepare_cached(
                "update app_user u set balance = v.balance, version = v.version, updated_at = now()
                   from unnest($1::bigint[], $2::bigint[], $3::bigint[]) as v(user_id, version, balance)
                  where u.user_id = v.user_id and u.version < v.version",
            )
            .await?;
        tx.execute(&stmt, &[&users, &versions, &balances]).await?;
    }
    // ... and a user row that arrives after its ledger rows (racing
    // workers) catches up from the newest ledger row already stored.
    if !batch.users.is_empty() {
        let ids: Vec<i64> = batch.users.iter().map(|u| u.id).collect();
        let stmt = tx
            .prepare_cached(
                "update app_user u set balance = l.balance_after, version = l.version, updated_at = now()
                   from unnest($1::bigint[]) as x(user_id)
                   cross join lateral (select version, balance_after from wallet_ledger
                                        where user_id = x.user_id order by version desc limit 1) l
                  where u.user_id = x.user_id and u.version < l.version",
            )
            .await?;
        tx.execute(&stmt, &[&ids]).await?;
    }
    Ok(())
}

async fn upsert_concerts(tx: &Transaction<'_>, concerts: &[Concert]) -> anyhow::Result<()> {
    for c in concerts {
        let concert = tx
            .prepare_cached(&format!(
                "insert into concert (concert_id, title, artist, venue, description, created_at)
                 values ($1, $2, $3, $4, $5, {}) on conflict (concert_id) do nothing",
                ts("$6")
            ))
            .await?;
        tx.execute(
            &concert,
            &[&c.id, &c.title, &c.artist, &c.venue, &c.description, &c.created_at],
        )
        .await?;
        let schedule = tx
            .prepare_cached(&format!(
                "insert into schedule (schedule_id, concert_id, starts_at, booking_opens_at, seat_count, price, purchase_limit, created_at)
                 values ($1, $2, {}, {}, $5::bigint::int, $6, $7::bigint::int, {}) on conflict (schedule_id) do nothing",
                ts("$3"),
                ts("$4"),
                ts("$8")
            ))
            .await?;
        let seats = tx
            .prepare_cached(
                "insert into seat (schedule_id, seat_number, price)
                 select $1, g, $2 from generate_series(1, $3::bigint::int) g
                 on conflict (schedule_id, seat_number) do nothing",
            )
            .await?;
        for s in &c.schedules {
            tx.execute(
                &schedule,
                &[
                    &s.id,
                    &c.id,
                    &s.starts_at,
                    &s.booking_opens_at,
                    &s.seat_count,
                    &s.price,
                    &s.purchase_limit,
                    &c.created_at,
                ],
            )
            .await?;
            tx.execute(&seats, &[&s.id, &s.price, &s.seat_count]).await?;
        }
    }
    Ok(())
}

async fn upsert_tokens(tx: &Transaction<'_>, batch: &Batch) -> anyhow::Result<()> {
    if batch.tokens.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = batch.tokens.values().collect();
    let tokens: Vec<&str> = rows.iter().map(|(_, t)| t.token.as_str()).collect();
    let concerts: Vec<i64> = rows.iter().map(|(_, t)| t.concert_id).collect();
    let users: Vec<i64> = rows.iter().map(|(_, t)| t.user_id).collect();
    let statuses: Vec<&str> = rows.iter().map(|(_, t)| t.status.as_str()).collect();
    let issued: Vec<i64> = rows.iter().map(|(_, t)| t.issued_at).collect();
    let activated: Vec<Option<i64>> = rows.iter().map(|(_, t)| t.activated_at).collect();
    let until: Vec<Option<i64>> = rows.iter().map(|(_, t)| t.active_until).collect();
    let expired: Vec<Option<i64>> = rows.iter().map(|(_, t)| t.expired_at).collect();
    let ms: Vec<i64> = rows.iter().map(|(at, _)| at.0).collect();
    let seq: Vec<i64> = rows.iter().map(|(at, _)| at.1).collect();
    let sql = format!(
        "insert into queue_token (token, concert_id, user_id, status, issued_at, activated_at, active_until, expired_at, event_ms, event_seq)
         select u.token, u.concert, u.usr, u.status, {}, {}, {}, {}, u.ms, u.seq
           from unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])
           as u(token, concert, usr, status, issued, activated, until_ms, expired, ms, seq)
         on conflict (token) do update set status = excluded.status, activated_at = excluded.activated_at,
           active_until = excluded.active_until, expired_at = excluded.expired_at,
           event_ms = excluded.event_ms, event_seq = excluded.event_seq
         where (queue_token.event_ms, queue_token.event_seq) < (excluded.event_ms, excluded.event_seq)",
        ts("u.issued"),
        ts("u.activated"),
        ts("u.until_ms"),
        ts("u.expired")
    );
    let stmt = tx.prepare_cached(&sql).await?;
    tx.execute(
        &stmt,
        &[
            &tokens, &concerts, &users, &statuses, &issued, &activated, &until, &expired, &ms, &seq,
        ],
    )
    .await?;
    Ok(())
}

async fn upsert_reservations(tx: &Transaction<'_>, batch: &Batch) -> anyhow::Result<()> {
    if batch.reservations.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = batch.reservations.values().collect();
    let ids: Vec<Uuid> = rows
        .iter()
        .map(|(_, r)| Uuid::parse_str(&r.id))
        .collect::<Result<_, _>>()?;
    let users: Vec<i64> = rows.iter().map(|(_, r)| r.user_id).collect();
    let concerts: Vec<i64> = rows.iter().map(|(_, r)| r.concert_id).collect();
    let schedules: Vec<i64> = rows.iter().map(|(_, r)| r.schedule_id).collect();
    let amounts: Vec<i64> = rows.iter().map(|(_, r)| r.amount).collect();
    let statuses: Vec<&str> = rows
        .iter()
        .map(|(_, r)| {
            if r.status == "PAYING" {
                "HELD"
            } else {
                r.status.as_str()
            }
        })
        .collect();
    let held: Vec<i64> = rows.iter().map(|(_, r)| r.held_at).collect();
    let expires: Vec<i64> = rows.iter().map(|(_, r)| r.expires_at).collect();
    let confirmed: Vec<Option<i64>> = rows.iter().map(|(_, r)| r.confirmed_at).collect();
    let cancelled: Vec<Option<i64>> = rows.iter().map(|(_, r)| r.cancelled_at).collect();
    let refunded: Vec<Option<i64>> = rows.iter().map(|(_, r)| r.refunded_at).collect();
    let payments: Vec<Option<Uuid>> = rows
        .iter()
        .map(|(_, r)| r.payment_id.as_deref().and_then(|p| Uuid::parse_str(p).ok()))
        .collect();
    let ms: Vec<i64> = rows.iter().map(|(at, _)| at.0).collect();
    let seq: Vec<i64> = rows.iter().map(|(at, _)| at.1).collect();
    let keys: Vec<Option<&str>> = rows.iter().map(|(_, r)| r.idempotency_key.as_deref()).collect();
    let sql = format!(
        "insert into reservation (reservation_id, user_id, concert_id, schedule_id, amount, status, held_at, expires_at,
                                  confirmed_at, cancelled_at, refunded_at, payment_id, event_ms, event_seq, idempotency_key)
         select u.id, u.usr, u.concert, u.schedule, u.amount, u.status, {}, {}, {}, {}, {}, u.payment, u.ms, u.seq, u.key
           from unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::bigint[],
                       $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::uuid[], $13::bigint[], $14::bigint[],
                       $15::text[])
           as u(id, usr, concert, schedule, amount, status, held, expires, confirmed, cancelled, refunded, payment, ms, seq,
                key)
         on conflict (reservation_id) do update set status = excluded.status, confirmed_at = excluded.confirmed_at,
           cancelled_at = excluded.cancelled_at, refunded_at = excluded.refunded_at, payment_id = excluded.payment_id,
           event_ms = excluded.event_ms, event_seq = excluded.event_seq, updated_at = now(),
           idempotency_key = coalesce(excluded.idempotency_key, reservation.idempotency_key)
         where (reservation.event_ms, reservation.event_seq) < (excluded.event_ms, excluded.event_seq)",
        ts("u.held"),
        ts("u.expires"),
        ts("u.confirmed"),
        ts("u.cancelled"),
        ts("u.refunded")
    );
    let stmt = tx.prepare_cached(&sql).await?;
    tx.execute(
        &stmt,
        &[
            &ids, &users, &concerts, &schedules, &amounts, &statuses, &held, &expires, &confirmed, &cancelled,
            &refunded, &payments, &ms, &seq, &keys,
        ],
    )
    .await?;
    let mut seat_res = Vec::new();
    let mut seat_schedule = Vec::new();
    let mut seat_number = Vec::new();
    for ((_, r), id) in rows.iter().zip(&ids) {
        for seat in &r.seats {
            seat_res.push(*id);
            seat_schedule.push(r.schedule_id);
            seat_number.push(*seat as i32);
        }
    }
    let stmt = tx
        .prepare_cached(
            "insert into reservation_seat (reservation_id, schedule_id, seat_number)
             select * from unnest($1::uuid[], $2::bigint[], $3::int[])
             on conflict (reservation_id, seat_number) do nothing",
        )
        .await?;
    tx.execute(&stmt, &[&seat_res, &seat_schedule, &seat_number]).await?;
    Ok(())
}

async fn update_seats(tx: &Transaction<'_>, batch: &Batch) -> anyhow::Result<()> {
    if batch.seats.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = batch.seats.iter().collect();
    let schedules: Vec<i64> = rows.iter().map(|((s, _), _)| *s).collect();
    let numbers: Vec<i32> = rows.iter().map(|((_, n), _)| *n as i32).collect();
    let statuses: Vec<&str> = rows.iter().map(|(_, (_, c))| c.status).collect();
    let reservations: Vec<Option<Uuid>> = rows.iter().map(|(_, (_, c))| c.reservation_id).collect();
    let expires: Vec<Option<i64>> = rows.iter().map(|(_, (_, c))| c.hold_expires_at).collect();
    let ms: Vec<i64> = rows.iter().map(|(_, (at, _))| at.0).collect();
    let seq: Vec<i64> = rows.iter().map(|(_, (at, _))| at.1).collect();
    let sql = format!(
        "update seat s set status = u.status, reservation_id = u.res, hold_expires_at = {},
                event_ms = u.ms, event_seq = u.seq, updated_at = now()
           from unnest($1::bigint[], $2::int[], $3::text[], $4::uuid[], $5::bigint[], $6::bigint[], $7::bigint[])
             as u(schedule, number, status, res, expires, ms, seq)
          where s.schedule_id = u.schedule and s.seat_number = u.number
            and (s.event_ms, s.event_seq) < (u.ms, u.seq)",
        ts("u.expires")
    );
    let stmt = tx.prepare_cached(&sql).await?;
    tx.execute(
        &stmt,
        &[&schedules, &numbers, &statuses, &reservations, &expires, &ms, &seq],
    )
    .await?;
    Ok(())
}

async fn upsert_payments(tx: &Transaction<'_>, batch: &Batch) -> anyhow::Result<()> {
    if batch.payments.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = batch.payments.values().collect();
    let ids: Vec<Uuid> = rows
        .iter()
        .map(|(_, p)| Uuid::parse_str(&p.id))
        .collect::<Result<_, _>>()?;
    let reservations: Vec<Uuid> = rows
        .iter()
        .map(|(_, p)| Uuid::parse_str(&p.reservation_id))
        .collect::<Result<_, _>>()?;
    let users: Vec<i64> = rows.iter().map(|(_, p)| p.user_id).collect();
    let concerts: Vec<i64> = rows.iter().map(|(_, p)| p.concert_id).collect();
    let amounts: Vec<i64> = rows.iter().map(|(_, p)| p.amount).collect();
    let statuses: Vec<&str> = rows.iter().map(|(_, p)| p.status.as_str()).collect();
    let reasons: Vec<Option<&str>> = rows.iter().map(|(_, p)| p.reason.as_deref()).collect();
    let after: Vec<Option<i64>> = rows.iter().map(|(_, p)| p.balance_after).collect();
    let created: Vec<i64> = rows.iter().map(|(_, p)| p.created_at).collect();
    let paid: Vec<Option<i64>> = rows.iter().map(|(_, p)| p.paid_at).collect();
    let refunded: Vec<Option<i64>> = rows.iter().map(|(_, p)| p.refunded_at).collect();
    let ms: Vec<i64> = rows.iter().map(|(at, _)| at.0).collect();
    let seq: Vec<i64> = rows.iter().map(|(at, _)| at.1).collect();
    let keys: Vec<Option<&str>> = rows.iter().map(|(_, p)| p.idempotency_key.as_deref()).collect();
    let sql = format!(
        "insert into payment (payment_id, reservation_id, user_id, concert_id, amount, status, reason, balance_after,
                              created_at, paid_at, refunded_at, event_ms, event_seq, idempotency_key)
         select u.id, u.res, u.usr, u.concert, u.amount, u.status, u.reason, u.after, {}, {}, {}, u.ms, u.seq, u.key
           from unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::text[],
                       $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::text[])
           as u(id, res, usr, concert, amount, status, reason, after, created, paid, refunded, ms, seq, key)
         on conflict (payment_id) do update set status = excluded.status, reason = excluded.reason,
           balance_after = excluded.balance_after, paid_at = excluded.paid_at, refunded_at = excluded.refunded_at,
           event_ms = excluded.event_ms, event_seq = excluded.event_seq, updated_at = now(),
           idempotency_key = coalesce(excluded.idempotency_key, payment.idempotency_key)
         where (payment.event_ms, payment.event_seq) < (excluded.event_ms, excluded.event_seq)",
        ts("u.created"),
        ts("u.paid"),
        ts("u.refunded")
    );
    let stmt = tx.prepare_cached(&sql).await?;
    tx.execute(
        &stmt,
        &[
            &ids,
            &reservations,
            &users,
            &concerts,
            &amounts,
            &statuses,
            &reasons,
            &after,
            &created,
            &paid,
            &refunded,
            &ms,
            &seq,
            &keys,
        ],
    )
    .await?;
    Ok(())
}

async fn upsert_cursors(tx: &Transaction<'_>, batch: &Batch) -> anyhow::Result<()> {
    for (stream, ((ms, seq), count)) in &batch.cursors {
        let stmt = tx
            .prepare_cached(
                "insert into writebehind_cursor (stream, last_ms, last_seq, events_applied) values ($1, $2, $3, $4)
                 on conflict (stream) do update set
                   last_ms = case when (writebehind_cursor.last_ms, writebehind_cursor.last_seq) < (excluded.last_ms, excluded.last_seq)
                                  then excluded.last_ms else writebehind_cursor.last_ms end,
                   last_seq = case when (writebehind_cursor.last_ms, writebehind_cursor.last_seq) < (excluded.last_ms, excluded.last_seq)
                                   then excluded.last_seq else writebehind_cursor.last_seq end,
                   events_applied = writebehind_cursor.events_applied + excluded.events_applied, updated_at = now()",
            )
            .await?;
        tx.execute(&stmt, &[stream, ms, seq, count]).await?;
    }
    Ok(())
}
