//! The sweeper: keeps every concert moving when nobody polls.
//!
//! Every [`TICK`], for each concert, `sweep_concert.lua` admits waiters
//! into free slots, expires due holds (in small calls, as many as are due)
//! and reports the payments and refunds a crash left half-done, which are
//! then finished here. Every instance may run it: the scripts make
//! concurrent sweeps safe.

use std::time::Duration;

use fred::interfaces::SortedSetsInterface;
use tokio_util::sync::CancellationToken;

use crate::booking;
use crate::config::Settings;
use crate::payment;
use crate::queue;
use crate::store::redis::RedisStore;
use crate::store::StoreError;

/// How often every concert is swept.
const TICK: Duration = Duration::from_millis(250);

/// A saga step older than this was abandoned by a crashed process.
pub const SAGA_TIMEOUT: Duration = Duration::from_secs(10);

/// Most holds released per script call. A release is a dozen commands and
/// a JSON rewrite, and Redis runs a script call alone: small calls keep the
/// requests that arrive meanwhile (when thousands of holds lapse at once at
/// the end of a rush) from waiting behind one long call.
const BATCH: i64 = 16;

/// Most script calls per concert sweep, while each releases a full batch
/// (256 holds a tick, 1,024 a second, per concert).
const CALLS_PER_TICK: usize = 16;

/// Most abandoned payments, and as many refunds, finished per concert
/// sweep (by its first call only).
const SAGA_BATCH: i64 = 200;

/// What one sweep of one concert found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sweep {
    pub released: i64,
    pub waiting: i64,
    pub active: i64,
    pub holds: i64,
    pub recovered: usize,
}

/// Sweeps every concert every [`TICK`] until `stop`.
pub async fn run_until_stopped(redis: RedisStore, settings: std::sync::Arc<Settings>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.is_cancelled() {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = sweep_all(&redis, &settings, SAGA_TIMEOUT).await {
            tracing::warn!(error = %e, "sweep failed");
        }
    }
}

/// Sweeps every concert once, finishing sagas older than `saga_timeout`.
///
/// # Errors
/// Redis failures.
pub async fn sweep_all(
    redis: &RedisStore,
    settings: &Settings,
    saga_timeout: Duration,
) -> Result<Vec<Sweep>, StoreError> {
    let ids: Vec<i64> = redis
        .client()
        .zrange(redis.keys().catalog(), 0, -1, None, false, None, false)
        .await?;
    let mut out = Vec::with_capacity(ids.len());
    for concert_id in ids {
        out.push(sweep_concert(redis, settings, concert_id, saga_timeout).await?);
    }
    Ok(out)
}

/// Sweeps one concert: releases its lapsed holds in calls of [`BATCH`], as
/// many calls as are due up to [`CALLS_PER_TICK`], and finishes up to
/// [`SAGA_BATCH`] abandoned payments and as many refunds (on the first call).
///
/// # Errors
/// Redis failures.
pub async fn sweep_concert(
    redis: &RedisStore,
    settings: &Settings,
    concert_id: i64,
    saga_timeout: Duration,
) -> Result<Sweep, StoreError> {
    let mut sweep = sweep_once(redis, settings, concert_id, saga_timeout, SAGA_BATCH).await?;
    let mut last = sweep.released;
    for _ in 1..CALLS_PER_TICK {
        if last < BATCH {
            break;
        }
        let next = sweep_once(redis, settings, concert_id, saga_timeout, 0).await?;
        last = next.released;
        sweep = Sweep {
            released: sweep.released + next.released,
            recovered: sweep.recovered,
            ..next
        };
    }
    Ok(sweep)
}

/// One `sweep_concert.lua` call, finishing at most `sagas` payments and as
/// many refunds.
async fn sweep_once(
    redis: &RedisStore,
    settings: &Settings,
    concert_id: i64,
    saga_timeout: Duration,
    sagas: i64,
) -> Result<Sweep, StoreError> {
    let mut args: Vec<fred::types::Value> = queue::limits(&settings.queue).into();
    args.extend([(saga_timeout.as_millis() as i64).into(), BATCH.into(), sagas.into()]);
    let reply = redis
        .eval(&redis.scripts().sweep_concert, redis.keys().concert(concert_id), args)
        .await?;
    let mut sweep = Sweep {
        released: reply.i64(0)?,
        waiting: reply.i64(1)?,
        active: reply.i64(2)?,
        holds: reply.i64(3)?,
        recovered: 0,
    };
    let concert = concert_id.to_string();
    metrics::gauge!("queue_waiting", "concert" => concert.clone()).set(sweep.waiting as f64);
    metrics::gauge!("queue_active", "concert" => concert.clone()).set(sweep.active as f64);
    metrics::gauge!("holds", "concert" => concert.clone()).set(sweep.holds as f64);
    metrics::counter!("queue_admitted_total", "concert" => concert.clone()).absolute(reply.i64(4)? as u64);
    metrics::counter!("queue_dropped_total", "concert" => concert.clone()).absolute(reply.i64(5)? as u64);
    metrics::counter!("holds_expired_total", "concert" => concert).increment(sweep.released as u64);
    let payments = reply.i64(6)? as usize;
    for i in 0..payments {
        let id = reply.str(7 + i)?;
        match payment::recover_payment(redis, &settings.queue, concert_id, id).await {
            Ok(()) => sweep.recovered += 1,
            Err(e) => tracing::warn!(error = %e, payment_id = id, "payment recovery failed"),
        }
    }
    let refunds_at = 7 + payments;
    let refunds = reply.i64(refunds_at)? as usize;
    for i in 0..refunds {
        let id = reply.str(refunds_at + 1 + i)?;
        match booking::recover_refund(redis, concert_id, id).await {
            Ok(()) => sweep.recovered += 1,
            Err(e) => tracing::warn!(error = %e, reservation_id = id, "refund recovery failed"),
        }
    }
    Ok(sweep)
}
