//! The prepaid wallet: charge, balance, history.
//!
//! Every change is one script in the user's `{u:<bucket>}` tag that keeps
//! balance and version and appends the ledger entry to the bucket's stream.
//! History answers from a bounded list of the newest entries kept beside
//! the wallet by the same scripts ([`HISTORY_MAX`]), so an operation shows
//! at once, with no wait for the write-behind; older entries are in the
//! Postgres ledger.

use fred::interfaces::{HashesInterface, ListInterface};
use serde::{Deserialize, Serialize};

use crate::store::redis::{RedisStore, Refusal, Status};
use crate::store::StoreError;
use crate::time::Millis;

/// Largest single charge, in KRW.
pub const MAX_CHARGE: i64 = 10_000_000;

/// Largest balance a charge may reach, in KRW.
pub const MAX_BALANCE: i64 = 1_000_000_000;

/// Most history entries one request returns (and the list keeps).
pub const HISTORY_MAX: usize = 200;

/// Why a wallet operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum BalanceError {
    #[error("amount must be an integer from 1 to 10000000")]
    InvalidAmount,
    #[error("the balance may not exceed 1000000000")]
    BalanceLimit,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A validated charge amount.
#[derive(Debug, Clone, Copy)]
pub struct ChargeAmount(i64);

impl ChargeAmount {
    /// Validates an amount.
    ///
    /// # Errors
    /// [`BalanceError::InvalidAmount`] outside 1..=[`MAX_CHARGE`].
    pub fn parse(amount: i64) -> Result<Self, BalanceError> {
        if (1..=MAX_CHARGE).contains(&amount) {
            Ok(Self(amount))
        } else {
            Err(BalanceError::InvalidAmount)
        }
    }
}

/// A user's balance.
#[derive(Debug, Serialize)]
pub struct Balance {
    pub user_id: i64,
    pub balance: i64,
}

/// A ledger entry as the scripts record it.
#[derive(Debug, Deserialize)]
pub struct LedgerEvent {
    pub user_id: i64,
    pub version: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub amount: i64,
    pub balance_before: i64,
    pub balance_after: i64,
    pub reference: Option<String>,
    pub at: i64,
    /// The `Idempotency-Key` of the charge that booked it, if any (kept in
    /// Postgres so that `rebuild` restores the charge's idempotency record).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// A history entry as the API shows it.
#[derive(Debug, Serialize)]
pub struct HistoryEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub amount: i64,
    pub balance_after: i64,
    pub reference: Option<String>,
    pub at: Millis,
}

/// Charges the wallet, once per idempotency key (`""` for none). Returns
/// the answer JSON (the first one, on a retry).
///
/// # Errors
/// [`BalanceError::BalanceLimit`], store failures.
#[tracing::instrument(skip_all, fields(user_id))]
pub async fn charge(
    redis: &RedisStore,
    user_id: i64,
    amount: ChargeAmount,
    idempotency_key: &str,
) -> Result<Vec<u8>, BalanceError> {
    let reply = redis
        .eval(
            &redis.scripts().charge_balance,
            redis.keys().wallet(user_id),
            vec![
                user_id.into(),
                amount.0.into(),
                MAX_BALANCE.into(),
                idempotency_key.into(),
            ],
        )
        .await?;
    match reply.status()? {
        Status::Done(_) => Ok(reply.bytes(1)?.to_vec()),
        Status::Refused(Refusal::BalanceLimit, _) => Err(BalanceError::BalanceLimit),
        Status::Refused(other, _) => Err(StoreError::Reply(format!("charge refused: {other:?}")).into()),
    }
}

/// The current balance.
///
/// # Errors
/// Store failures.
pub async fn balance(redis: &RedisStore, user_id: i64) -> Result<Balance, BalanceError> {
    let balance: Option<i64> = redis
        .client()
        .hget(redis.keys().wallet_hash(user_id), "balance")
        .await
        .map_err(StoreError::from)?;
    Ok(Balance {
        user_id,
        balance: balance.unwrap_or(0),
    })
}

/// The newest `limit` entries, newest first.
///
/// # Errors
/// Store failures.
pub async fn history(redis: &RedisStore, user_id: i64, limit: usize) -> Result<Vec<HistoryEntry>, BalanceError> {
    let stop = limit.clamp(1, HISTORY_MAX) as i64 - 1;
    let raw: Vec<String> = redis
        .client()
        .lrange(redis.keys().history(user_id), 0, stop)
        .await
        .map_err(StoreError::from)?;
    raw.into_iter()
        .map(|json| {
            let mut bytes = json.into_bytes();
            let e: LedgerEvent =
                simd_json::serde::from_slice(&mut bytes).map_err(|e| StoreError::Reply(e.to_string()))?;
            Ok(HistoryEntry {
                kind: e.kind,
                amount: e.amount,
                balance_after: e.balance_after,
                reference: e.reference,
                at: Millis(e.at),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charge_amounts_are_one_to_ten_million() {
        assert!(ChargeAmount::parse(1).is_ok());
        assert!(ChargeAmount::parse(MAX_CHARGE).is_ok());
        assert!(ChargeAmount::parse(0).is_err());
        assert!(ChargeAmount::parse(-5).is_err());
        assert!(ChargeAmount::parse(MAX_CHARGE + 1).is_err());
    }
}
