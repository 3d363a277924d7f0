//! Status reads of the waiting room, merged per concert.
//!
//! Waiters poll their token every second or two, so during a rush status
//! reads are most of the traffic. Through [`Lanes`], every read that reaches
//! an instance while its previous `get_tokens.lua` call for that concert
//! runs rides the next call: admission and the admission-rate scan run once
//! for all of them, and they share one round trip. Every answer is as fresh
//! as a call of its own would give: it is read inside the call that answers
//! it.

use std::time::Duration;

use super::{get_tokens, QueueError, QueueToken, TokenView};
use crate::config::QueueSettings;
use crate::store::redis::lane::{Answer, Lanes, Merge};
use crate::store::redis::RedisStore;
use crate::store::StoreError;

/// Most reads in one script call.
const MAX_BATCH: usize = 512;

/// A lane with nothing to read for this long stops.
const LANE_IDLE: Duration = Duration::from_secs(30);

/// Merges the status reads of this instance per concert. Cheap to clone.
#[derive(Clone)]
pub struct StatusReader {
    lanes: Lanes<Reads>,
}

struct Reads {
    redis: RedisStore,
    settings: QueueSettings,
}

impl Merge for Reads {
    type Ask = (QueueToken, Option<i64>);
    type Item = TokenView;
    type Error = QueueError;

    async fn call(&self, concert_id: i64, asks: &[Self::Ask]) -> Result<Vec<Answer<Self>>, StoreError> {
        get_tokens(&self.redis, &self.settings, concert_id, asks).await
    }
}

impl StatusReader {
    /// A reader of `redis`.
    pub fn new(redis: RedisStore, settings: QueueSettings) -> Self {
        Self::with_idle(redis, settings, LANE_IDLE)
    }

    /// A reader whose lanes stop after `idle` without reads.
    pub fn with_idle(redis: RedisStore, settings: QueueSettings, idle: Duration) -> Self {
        Self {
            lanes: Lanes::new(Reads { redis, settings }, "queue_status", MAX_BATCH, idle),
        }
    }

    /// The current state of a token, a sighting; with `user_id`, the token
    /// must be that user's. Same answers as [`super::get_token`].
    ///
    /// # Errors
    /// [`QueueError::TokenNotFound`], [`QueueError::Forbidden`], store failures.
    pub async fn get(&self, token: QueueToken, user_id: Option<i64>) -> Result<TokenView, QueueError> {
        self.lanes.ask(token.concert_id(), (token, user_id)).await
    }

    /// Lanes running: concerts with reads in the last idle period.
    pub fn lanes(&self) -> usize {
        self.lanes.lanes()
    }

    /// Script calls made so far.
    pub fn calls(&self) -> u64 {
        self.lanes.calls()
    }
}
