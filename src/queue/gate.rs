//! The gate of the booking endpoints.
//!
//! Most of the gate runs inside each booking script (`gate()` in
//! `lua/lib/concert.lua`), so checking the token and booking are one atomic
//! step and one round trip. What runs here is the part no script can see:
//! whether the token is for the concert the request is about.

use crate::store::redis::{RedisStore, Refusal};
use crate::store::StoreError;

use super::QueueToken;

/// Why the gate turned a request away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("this endpoint needs a Queue-Token header")]
    Required,
    #[error("the queue token is unknown or expired")]
    Invalid,
    #[error("the queue token is still waiting")]
    NotActive,
    #[error("the queue token is for another concert")]
    WrongConcert,
    #[error("the queue token belongs to another user")]
    Forbidden,
}

impl GateError {
    /// The gate error a script refusal stands for, if it is one.
    pub fn from_refusal(refusal: Refusal) -> Option<Self> {
        match refusal {
            Refusal::QueueTokenInvalid => Some(Self::Invalid),
            Refusal::QueueNotActive => Some(Self::NotActive),
            Refusal::Forbidden => Some(Self::Forbidden),
            _ => None,
        }
    }
}

/// Checks that `token` is for `concert_id`. A token of another concert is
/// `WrongConcert` if it is live there, else `Invalid` (a dead token says
/// nothing about concerts). Costs a round trip only on that error path.
///
/// # Errors
/// The gate errors above, or a store failure.
pub async fn check_concert(redis: &RedisStore, token: &QueueToken, concert_id: i64) -> Result<(), GateCheckError> {
    if token.concert_id() == concert_id {
        return Ok(());
    }
    if super::is_live(redis, token).await? {
        Err(GateError::WrongConcert.into())
    } else {
        Err(GateError::Invalid.into())
    }
}

/// A gate error or a store failure.
#[derive(Debug, thiserror::Error)]
pub enum GateCheckError {
    #[error(transparent)]
    Gate(#[from] GateError),
    #[error(transparent)]
    Store(#[from] StoreError),
}
