//! Payment: a try–confirm–cancel saga across the concert and the wallet.
//!
//! 1. concert (`begin_payment.lua`): the reservation becomes PAYING, a
//!    PENDING payment is recorded;
//! 2. wallet (`debit_wallet.lua`): debit once per payment id, or refuse and
//!    void the id;
//! 3. concert: confirm (`confirm_payment.lua`: seats SOLD, reservation
//!    CONFIRMED, token EXPIRED) or cancel (`cancel_payment.lua`: HELD again).
//!
//! Every step is idempotent by payment id. A crash between steps leaves the
//! payment in the concert's `paying` set; the sweeper then asks the wallet,
//! atomically, "debited, or now void?" (`settle_payment.lua`) and confirms
//! or cancels. Money is never lost or created.

use fred::interfaces::{HashesInterface, KeysInterface};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::booking::reservation_concerts;
use crate::config::QueueSettings;
use crate::queue::{GateCheckError, GateError, QueueToken};
use crate::store::redis::{RedisStore, Refusal, Reply, Status};
use crate::store::StoreError;
use crate::time::Millis;

/// Why a payment was refused.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("no such reservation")]
    ReservationNotFound,
    #[error("no such payment")]
    PaymentNotFound,
    #[error("the hold has expired")]
    HoldExpired,
    #[error("balance {balance} is less than {amount}")]
    InsufficientBalance { balance: i64, amount: i64 },
    #[error("{0}")]
    AlreadyPaid(String),
    #[error("{0}")]
    InvalidState(String),
    #[error(transparent)]
    Gate(#[from] GateError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<GateCheckError> for PaymentError {
    fn from(e: GateCheckError) -> Self {
        match e {
            GateCheckError::Gate(g) => Self::Gate(g),
            GateCheckError::Store(s) => Self::Store(s),
        }
    }
}

/// A payment as the scripts keep it.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentState {
    pub id: String,
    pub reservation_id: String,
    pub user_id: i64,
    pub concert_id: i64,
    pub amount: i64,
    pub status: String,
    pub created_at: i64,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub balance_after: Option<i64>,
    #[serde(default)]
    pub paid_at: Option<i64>,
    #[serde(default)]
    pub refunded_at: Option<i64>,
    /// The `Idempotency-Key` the payment was asked with, if any (kept in
    /// Postgres so that `rebuild` restores the payment's idempotency record).
    #[serde(default, rename = "idem")]
    pub idempotency_key: Option<String>,
}

/// A payment as the API shows it.
#[derive(Debug, Serialize)]
pub struct PaymentView {
    pub id: String,
    pub reservation_id: String,
    pub user_id: i64,
    pub amount: i64,
    pub status: String,
    pub balance_after: Option<i64>,
    pub paid_at: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refunded_at: Option<Millis>,
}

impl PaymentState {
    fn decode(json: &[u8]) -> Result<Self, StoreError> {
        let mut bytes = json.to_vec();
        simd_json::serde::from_slice(&mut bytes).map_err(|e| StoreError::Reply(e.to_string()))
    }

    /// The API view.
    pub fn view(self) -> PaymentView {
        PaymentView {
            id: self.id,
            reservation_id: self.reservation_id,
            user_id: self.user_id,
            amount: self.amount,
            status: self.status,
            balance_after: self.balance_after,
            paid_at: self.paid_at.map(Millis),
            reason: self.reason,
            refunded_at: self.refunded_at.map(Millis),
        }
    }
}

/// Pays a reservation from the wallet, once per idempotency key (`""` for
/// none). The token must be the user's ACTIVE token for the reservation's
/// concert.
///
/// # Errors
/// Gate errors, [`PaymentError::ReservationNotFound`], `HoldExpired`,
/// `InsufficientBalance` (the hold stays), `AlreadyPaid`, `InvalidState`,
/// store failures.
#[tracing::instrument(skip_all, fields(user_id, reservation_id = %reservation_id))]
pub async fn pay(
    redis: &RedisStore,
    queue: &QueueSettings,
    token: &QueueToken,
    user_id: i64,
    reservation_id: &Uuid,
    idempotency_key: &str,
) -> Result<PaymentState, PaymentError> {
    let concert_id = token.concert_id();
    let reply = begin(redis, token, user_id, reservation_id, idempotency_key).await?;
    let payment = match reply.status()? {
        Status::Done("RESUME") => {
            let first = load(redis, concert_id, reply.str(1)?)
                .await?
                .ok_or(PaymentError::PaymentNotFound)?;
            match first.status.as_str() {
                "PENDING" => first,
                // A concurrent retry of a request that failed meanwhile: the
                // failure, not a 201 with a FAILED payment.
                "FAILED" => return Err(failure(redis, &first).await),
                _ => return Ok(first),
            }
        }
        Status::Done(_) => PaymentState::decode(reply.bytes(1)?)?,
        Status::Refused(Refusal::ReservationNotFound, _) => {
            return Err(not_found_here(redis, user_id, reservation_id, concert_id).await);
        }
        Status::Refused(r, d) => return Err(refused(r, d)),
    };
    settle(redis, queue, payment, Step::Debit).await
}

/// The error a FAILED payment answered with.
async fn failure(redis: &RedisStore, p: &PaymentState) -> PaymentError {
    if p.reason.as_deref() != Some("INSUFFICIENT_BALANCE") {
        return PaymentError::InvalidState("the payment was abandoned; try again".into());
    }
    let balance: Result<Option<i64>, _> = redis
        .client()
        .hget(redis.keys().wallet_hash(p.user_id), "balance")
        .await;
    match balance {
        Ok(balance) => PaymentError::InsufficientBalance {
            balance: balance.unwrap_or(0),
            amount: p.amount,
        },
        Err(e) => StoreError::from(e).into(),
    }
}

/// Step 1 of the saga (`begin_payment.lua`) with a new payment id.
async fn begin(
    redis: &RedisStore,
    token: &QueueToken,
    user_id: i64,
    reservation_id: &Uuid,
    idempotency_key: &str,
) -> Result<Reply, StoreError> {
    let args = vec![
        token.as_str().into(),
        user_id.into(),
        reservation_id.to_string().into(),
        Uuid::now_v7().to_string().into(),
        idempotency_key.into(),
    ];
    redis
        .eval(
            &redis.scripts().begin_payment,
            redis.keys().concert(token.concert_id()),
            args,
        )
        .await
}

/// Step 2 of the saga (`debit_wallet.lua`): debit once per payment id.
async fn debit(redis: &RedisStore, p: &PaymentState) -> Result<Reply, StoreError> {
    let args = vec![p.user_id.into(), p.id.as_str().into(), p.amount.into()];
    redis
        .eval(&redis.scripts().debit_wallet, redis.keys().wallet(p.user_id), args)
        .await
}

/// A reservation missing from the token's concert may be in another one:
/// then the token is the wrong one.
async fn not_found_here(redis: &RedisStore, user_id: i64, reservation_id: &Uuid, concert_id: i64) -> PaymentError {
    match reservation_concerts(redis, user_id, reservation_id).await {
        Ok(Some(other)) if other != concert_id => GateError::WrongConcert.into(),
        Ok(_) => PaymentError::ReservationNotFound,
        Err(e) => e.into(),
    }
}

fn refused(refusal: Refusal, detail: Option<&str>) -> PaymentError {
    if let Some(gate) = GateError::from_refusal(refusal) {
        return gate.into();
    }
    match refusal {
        Refusal::ReservationNotFound => PaymentError::ReservationNotFound,
        Refusal::HoldExpired => PaymentError::HoldExpired,
        Refusal::AlreadyPaid => PaymentError::AlreadyPaid(detail.unwrap_or("the reservation is already paid").into()),
        Refusal::InvalidState => PaymentError::InvalidState(detail.unwrap_or("the reservation cannot be paid").into()),
        Refusal::PaymentNotFound => PaymentError::PaymentNotFound,
        other => StoreError::Reply(format!("unexpected refusal {other:?}")).into(),
    }
}

/// How step 2 asks the wallet.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Debit now (the request path).
    Debit,
    /// Ask "debited, or now void?" (recovery of an abandoned saga).
    Settle,
}

async fn settle(
    redis: &RedisStore,
    queue: &QueueSettings,
    p: PaymentState,
    step: Step,
) -> Result<PaymentState, PaymentError> {
    let wallet = redis.keys().wallet(p.user_id);
    let reply = match step {
        Step::Debit => debit(redis, &p).await?,
        Step::Settle => {
            redis
                .eval(&redis.scripts().settle_payment, wallet, vec![p.id.as_str().into()])
                .await?
        }
    };
    let base = redis.keys().concert(p.concert_id);
    match reply.str(0)? {
        "DEBITED" => {
            let balance_after = reply.i64(1)?;
            let [max, ttl, idle] = crate::queue::limits(queue);
            let done = redis
                .eval(
                    &redis.scripts().confirm_payment,
                    base,
                    vec![p.id.as_str().into(), balance_after.into(), max, ttl, idle],
                )
                .await?;
            let paid = decode_done(&done)?;
            metrics::counter!("payments_total", "outcome" => "success").increment(1);
            metrics::counter!("sales_krw_total").increment(paid.amount.max(0) as u64);
            Ok(paid)
        }
        "INSUFFICIENT" => {
            let balance = reply.i64(1)?;
            cancel(redis, base, &p.id, "INSUFFICIENT_BALANCE").await?;
            metrics::counter!("payments_total", "outcome" => "insufficient_balance").increment(1);
            Err(PaymentError::InsufficientBalance {
                balance,
                amount: p.amount,
            })
        }
        _ => {
            // VOID (a recovery got there first) or USER_NOT_FOUND.
            let cancelled = cancel(redis, base, &p.id, "ABANDONED").await?;
            match step {
                Step::Settle => Ok(cancelled),
                Step::Debit => Err(PaymentError::InvalidState(
                    "the payment was abandoned; try again".into(),
                )),
            }
        }
    }
}

async fn cancel(
    redis: &RedisStore,
    base: String,
    payment_id: &str,
    reason: &str,
) -> Result<PaymentState, PaymentError> {
    let done = redis
        .eval(
            &redis.scripts().cancel_payment,
            base,
            vec![payment_id.into(), reason.into()],
        )
        .await?;
    decode_done(&done)
}

fn decode_done(reply: &Reply) -> Result<PaymentState, PaymentError> {
    match reply.status()? {
        Status::Done(_) => Ok(PaymentState::decode(reply.bytes(1)?)?),
        Status::Refused(r, d) => Err(refused(r, d)),
    }
}

async fn load(redis: &RedisStore, concert_id: i64, payment_id: &str) -> Result<Option<PaymentState>, StoreError> {
    let json: Option<String> = redis.client().get(redis.keys().payment(concert_id, payment_id)).await?;
    json.map(|j| PaymentState::decode(j.as_bytes())).transpose()
}

/// Finishes a payment a crash left PENDING (found by the sweeper).
///
/// # Errors
/// Store failures.
pub async fn recover_payment(
    redis: &RedisStore,
    queue: &QueueSettings,
    concert_id: i64,
    payment_id: &str,
) -> Result<(), PaymentError> {
    if let Some(p) = load(redis, concert_id, payment_id).await? {
        if p.status == "PENDING" {
            let outcome = settle(redis, queue, p, Step::Settle).await?;
            tracing::info!(payment_id, status = %outcome.status, "recovered an abandoned payment");
        }
    }
    Ok(())
}

/// A payment of the user; `None` when it does not exist or is another's.
///
/// # Errors
/// Store failures.
pub async fn find_payment(
    redis: &RedisStore,
    user_id: i64,
    payment_id: &Uuid,
) -> Result<Option<PaymentState>, StoreError> {
    let id = payment_id.to_string();
    for concert_id in crate::booking::user_concerts(redis, user_id).await? {
        if let Some(p) = load(redis, concert_id, &id).await? {
            return Ok((p.user_id == user_id).then_some(p));
        }
    }
    Ok(None)
}

/// Runs step 1 and stops, as a process that crashed right after it would.
/// Returns the PENDING payment. Only for recovery tests and drills.
///
/// # Errors
/// As [`pay`].
#[doc(hidden)]
pub async fn begin_only(
    redis: &RedisStore,
    token: &QueueToken,
    user_id: i64,
    reservation_id: &Uuid,
) -> Result<PaymentState, PaymentError> {
    let reply = begin(redis, token, user_id, reservation_id, "").await?;
    decode_done(&reply)
}

/// Runs step 2 (the debit) and stops, as a process that crashed before
/// confirming would. Only for recovery tests and drills.
///
/// # Errors
/// Store failures.
#[doc(hidden)]
pub async fn debit_only(redis: &RedisStore, p: &PaymentState) -> Result<String, StoreError> {
    let reply = debit(redis, p).await?;
    Ok(reply.str(0)?.to_owned())
}
