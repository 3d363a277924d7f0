//! Reservations: hold, read, cancel, and the refund saga.

use fred::interfaces::SetsInterface;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{BookingError, Schedule, SeatSelection};
use crate::config::BookingSettings;
use crate::queue::QueueToken;
use crate::store::redis::{RedisStore, Refusal, Reply, Status};
use crate::store::StoreError;
use crate::time::Millis;

/// A reservation as the scripts keep it (times in ms).
#[derive(Debug, Clone, Deserialize)]
pub struct ReservationState {
    pub id: String,
    pub user_id: i64,
    pub concert_id: i64,
    pub schedule_id: i64,
    pub seats: Vec<i64>,
    pub amount: i64,
    pub status: String,
    pub held_at: i64,
    pub expires_at: i64,
    #[serde(default)]
    pub payment_id: Option<String>,
    #[serde(default)]
    pub confirmed_at: Option<i64>,
    #[serde(default)]
    pub cancelled_at: Option<i64>,
    #[serde(default)]
    pub refunded_at: Option<i64>,
    /// The `Idempotency-Key` the hold was asked with, if any (kept in
    /// Postgres so that `rebuild` restores the hold's idempotency record).
    #[serde(default, rename = "idem")]
    pub idempotency_key: Option<String>,
}

/// A reservation as the API shows it.
#[derive(Debug, Serialize)]
pub struct ReservationView {
    pub id: String,
    pub user_id: i64,
    pub concert_id: i64,
    pub schedule_id: i64,
    pub seat_numbers: Vec<i64>,
    pub amount: i64,
    pub status: &'static str,
    pub held_at: Millis,
    pub expires_at: Millis,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed_at: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refunded_at: Option<Millis>,
}

impl ReservationState {
    /// Parses the JSON a script returned.
    ///
    /// # Errors
    /// JSON that is not a reservation.
    pub fn decode(json: &[u8]) -> Result<Self, StoreError> {
        let mut bytes = json.to_vec();
        simd_json::serde::from_slice(&mut bytes).map_err(|e| StoreError::Reply(e.to_string()))
    }

    /// The API view. A reservation being paid shows as HELD: the payment
    /// either confirms it or leaves it held.
    pub fn view(self) -> ReservationView {
        let status = match self.status.as_str() {
            "CONFIRMED" => "CONFIRMED",
            "CANCELLED" => "CANCELLED",
            "EXPIRED" => "EXPIRED",
            "REFUNDED" => "REFUNDED",
            _ => "HELD",
        };
        ReservationView {
            id: self.id,
            user_id: self.user_id,
            concert_id: self.concert_id,
            schedule_id: self.schedule_id,
            seat_numbers: self.seats,
            amount: self.amount,
            status,
            held_at: Millis(self.held_at),
            expires_at: Millis(self.expires_at),
            payment_id: self.payment_id.filter(|_| status != "HELD"),
            confirmed_at: self.confirmed_at.map(Millis),
            cancelled_at: self.cancelled_at.map(Millis),
            refunded_at: self.refunded_at.map(Millis),
        }
    }
}

/// A hold to place: seats of one schedule for the token's user.
#[derive(Debug, Clone)]
pub struct NewHold {
    /// The new reservation's id.
    pub id: String,
    pub token: QueueToken,
    pub user_id: i64,
    pub concert_id: i64,
    pub schedule_id: i64,
    pub seats: SeatSelection,
    pub ttl_ms: i64,
    /// The `Idempotency-Key`, or empty.
    pub idempotency_key: String,
}

impl NewHold {
    /// A hold with a new id.
    pub fn new(
        settings: &BookingSettings,
        token: QueueToken,
        user_id: i64,
        schedule: &Schedule,
        seats: SeatSelection,
        idempotency_key: &str,
    ) -> Self {
        Self {
            id: Uuid::now_v7().to_string(),
            token,
            user_id,
            concert_id: schedule.concert_id,
            schedule_id: schedule.id,
            seats,
            ttl_ms: settings.hold_ttl().as_millis() as i64,
            idempotency_key: idempotency_key.to_owned(),
        }
    }
}

/// Holds seats for the token's user, all or none, once per idempotency key.
/// Returns the reservation JSON (the first answer, on a retry). One script
/// call; the request path goes through [`super::Holds`], which merges
/// concurrent holds.
///
/// # Errors
/// Gate errors and every refusal of `hold_seats.lua`, store failures.
pub async fn hold_seats(
    redis: &RedisStore,
    settings: &BookingSettings,
    token: &QueueToken,
    user_id: i64,
    schedule: &Schedule,
    seats: &SeatSelection,
    idempotency_key: &str,
) -> Result<Vec<u8>, BookingError> {
    let hold = NewHold::new(
        settings,
        token.clone(),
        user_id,
        schedule,
        seats.clone(),
        idempotency_key,
    );
    let mut held = place_holds(redis, schedule.concert_id, &[hold]).await?;
    held.pop().expect("one answer a hold")
}

/// Places holds of one concert in one script call, in order, each all or
/// nothing exactly as alone.
///
/// # Errors
/// Store failures fail them all; a refusal fails its own hold.
pub async fn place_holds(
    redis: &RedisStore,
    concert_id: i64,
    holds: &[NewHold],
) -> Result<Vec<Result<Vec<u8>, BookingError>>, StoreError> {
    let mut args: Vec<fred::types::Value> = Vec::with_capacity(holds.len() * 12);
    for hold in holds {
        let seats = hold.seats.seats();
        args.extend([
            hold.token.as_str().into(),
            hold.user_id.into(),
            hold.concert_id.into(),
            hold.schedule_id.into(),
            hold.id.as_str().into(),
            hold.ttl_ms.into(),
            hold.idempotency_key.as_str().into(),
            (seats.len() as i64).into(),
        ]);
        args.extend(seats.iter().map(|n| (*n).into()));
    }
    let reply = redis
        .eval_in_order(
            concert_id,
            &redis.scripts().hold_seats,
            redis.keys().concert(concert_id),
            args,
        )
        .await?;
    reply.expect_slots(holds.len(), 2)?;
    (0..holds.len()).map(|i| hold_outcome(&reply, i * 2)).collect()
}

fn hold_outcome(reply: &Reply, at: usize) -> Result<Result<Vec<u8>, BookingError>, StoreError> {
    let code = reply.str(at)?;
    match Refusal::parse(code) {
        None => {
            if code == "OK" {
                metrics::counter!("holds_placed_total").increment(1);
            }
            Ok(Ok(view_json(reply.bytes(at + 1)?)?))
        }
        Some(refusal) => {
            metrics::counter!("holds_refused_total").increment(1);
            let detail = reply.str(at + 1)?;
            let detail = (!detail.is_empty()).then_some(detail);
            Ok(Err(BookingError::from_refusal(refusal, detail)))
        }
    }
}

/// The API JSON of a reservation JSON from a script.
fn view_json(state: &[u8]) -> Result<Vec<u8>, StoreError> {
    let view = ReservationState::decode(state)?.view();
    simd_json::serde::to_vec(&view).map_err(|e| StoreError::Reply(e.to_string()))
}

fn states(reply: &Reply, from: usize) -> Result<Vec<ReservationState>, StoreError> {
    (from..reply.len())
        .map(|i| ReservationState::decode(reply.bytes(i)?))
        .collect()
}

/// The concerts a user has queued for (where their reservations can be).
///
/// # Errors
/// Store failures.
pub async fn user_concerts(redis: &RedisStore, user_id: i64) -> Result<Vec<i64>, StoreError> {
    let mut ids: Vec<i64> = redis.client().smembers(redis.keys().user_concerts(user_id)).await?;
    ids.sort_unstable();
    Ok(ids)
}

async fn read(
    redis: &RedisStore,
    concert_id: i64,
    args: Vec<fred::types::Value>,
) -> Result<Vec<ReservationState>, StoreError> {
    let reply = redis
        .eval(
            &redis.scripts().read_reservations,
            redis.keys().concert(concert_id),
            args,
        )
        .await?;
    states(&reply, 1)
}

/// A reservation of the user, with lazy expiry applied; `None` when it does
/// not exist or is another user's.
///
/// # Errors
/// Store failures.
pub async fn find_reservation(
    redis: &RedisStore,
    user_id: i64,
    id: &Uuid,
) -> Result<Option<ReservationState>, StoreError> {
    let id = id.to_string();
    for concert_id in user_concerts(redis, user_id).await? {
        let found = read(
            redis,
            concert_id,
            vec![user_id.into(), "one".into(), id.as_str().into()],
        )
        .await?;
        if let Some(r) = found.into_iter().next() {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// The concert a reservation of the user is in, if it exists.
///
/// # Errors
/// Store failures.
pub async fn reservation_concerts(redis: &RedisStore, user_id: i64, id: &Uuid) -> Result<Option<i64>, StoreError> {
    Ok(find_reservation(redis, user_id, id).await?.map(|r| r.concert_id))
}

/// The user's reservations, newest first (at most `limit`).
///
/// # Errors
/// Store failures.
pub async fn list_user_reservations(
    redis: &RedisStore,
    user_id: i64,
    limit: usize,
) -> Result<Vec<ReservationState>, StoreError> {
    let mut all = Vec::new();
    for concert_id in user_concerts(redis, user_id).await? {
        all.extend(
            read(
                redis,
                concert_id,
                vec![user_id.into(), "user".into(), (limit as i64).into()],
            )
            .await?,
        );
    }
    // UUIDv7 ids sort by creation time.
    all.sort_unstable_by(|a, b| b.id.cmp(&a.id));
    all.truncate(limit);
    Ok(all)
}

/// Cancels a hold, or refunds a confirmed reservation before the show:
/// credit the wallet (once per reservation), then seats back on sale.
///
/// # Errors
/// [`BookingError::ReservationNotFound`], `BookingClosed`, `InvalidState`,
/// store failures.
#[tracing::instrument(skip_all, fields(user_id, reservation_id = %id))]
pub async fn cancel_reservation(redis: &RedisStore, user_id: i64, id: &Uuid) -> Result<ReservationState, BookingError> {
    match start_cancel(redis, user_id, id).await? {
        Cancel::Cancelled(r) => Ok(r),
        Cancel::Refund(r) => finish_refund(redis, r).await,
    }
}

/// What step 1 of a cancellation did.
enum Cancel {
    /// A hold, cancelled at once.
    Cancelled(ReservationState),
    /// A confirmed reservation whose refund has begun.
    Refund(ReservationState),
}

/// Step 1: cancels a hold, or records the start of a refund.
async fn start_cancel(redis: &RedisStore, user_id: i64, id: &Uuid) -> Result<Cancel, BookingError> {
    let Some(found) = find_reservation(redis, user_id, id).await? else {
        return Err(BookingError::ReservationNotFound);
    };
    let reply = redis
        .eval(
            &redis.scripts().cancel_reservation,
            redis.keys().concert(found.concert_id),
            vec![user_id.into(), id.to_string().into()],
        )
        .await?;
    match reply.status()? {
        Status::Done("CANCELLED") => Ok(Cancel::Cancelled(ReservationState::decode(reply.bytes(1)?)?)),
        Status::Done(_) => Ok(Cancel::Refund(ReservationState::decode(reply.bytes(1)?)?)),
        Status::Refused(r, d) => Err(BookingError::from_refusal(r, d)),
    }
}

/// Steps 2 and 3 of the refund saga; both idempotent, so a crash anywhere
/// is finished by running them again ([`recover_refund`]).
async fn finish_refund(redis: &RedisStore, r: ReservationState) -> Result<ReservationState, BookingError> {
    credit_refund(redis, &r).await?;
    let done = redis
        .eval(
            &redis.scripts().finish_refund,
            redis.keys().concert(r.concert_id),
            vec![r.id.as_str().into()],
        )
        .await?;
    match done.status()? {
        Status::Done(_) => Ok(ReservationState::decode(done.bytes(1)?)?),
        Status::Refused(refusal, d) => Err(BookingError::from_refusal(refusal, d)),
    }
}

/// Step 2 of the refund saga: the wallet is credited, once per reservation.
async fn credit_refund(redis: &RedisStore, r: &ReservationState) -> Result<(), BookingError> {
    let credit = redis
        .eval(
            &redis.scripts().credit_refund,
            redis.keys().wallet(r.user_id),
            vec![r.user_id.into(), r.id.as_str().into(), r.amount.into()],
        )
        .await?;
    match credit.status()? {
        Status::Done(_) => Ok(()),
        Status::Refused(refusal, _) => Err(StoreError::Reply(format!("refund credit refused: {refusal:?}")).into()),
    }
}

/// Runs step 1 of the refund of a confirmed reservation (and step 2, the
/// credit, with `credit`) and stops, as a process that crashed there
/// would. Only for recovery tests and drills.
///
/// # Errors
/// The refusals of [`cancel_reservation`], store failures.
#[doc(hidden)]
pub async fn refund_steps_only(
    redis: &RedisStore,
    user_id: i64,
    id: &Uuid,
    credit: bool,
) -> Result<ReservationState, BookingError> {
    let Cancel::Refund(r) = start_cancel(redis, user_id, id).await? else {
        return Err(StoreError::Reply("a hold was cancelled, not refunded".into()).into());
    };
    if credit {
        credit_refund(redis, &r).await?;
    }
    Ok(r)
}

/// Finishes a refund a crash left half-done (found by the sweeper).
///
/// # Errors
/// Store failures.
pub async fn recover_refund(redis: &RedisStore, concert_id: i64, reservation_id: &str) -> Result<(), BookingError> {
    let uid = Uuid::parse_str(reservation_id).map_err(|e| StoreError::Reply(e.to_string()))?;
    let base = redis.keys().concert(concert_id);
    let key = format!("{base}r:{uid}");
    let json: Option<String> = fred::interfaces::KeysInterface::get(redis.client(), key)
        .await
        .map_err(StoreError::from)?;
    let Some(json) = json else { return Ok(()) };
    let r = ReservationState::decode(json.as_bytes())?;
    if r.status == "CONFIRMED" {
        finish_refund(redis, r).await?;
    }
    Ok(())
}
