//! Seat holds merged per concert.
//!
//! When a date opens, every admitted fan tries to hold seats at once, all in
//! one concert's tag. Through [`Lanes`], the holds that reach an instance
//! while its previous `hold_seats.lua` call for that concert runs ride the
//! next call: they share one round trip and the script's fixed cost. Inside
//! the call each hold is placed in arrival order, all or nothing, exactly
//! as a call of its own would place it.

use std::time::Duration;

use super::reservation::{place_holds, NewHold};
use super::BookingError;
use crate::store::redis::lane::{Answer, Lanes, Merge};
use crate::store::redis::RedisStore;
use crate::store::StoreError;

/// Most holds in one script call: the call blocks the concert's Redis core
/// for about 60 µs a hold.
const MAX_BATCH: usize = 64;

/// Calls of one concert in flight at once: Redis places one batch while the
/// server answers the one before and collects the next.
const DEPTH: usize = 2;

/// A lane with no hold for this long stops.
const LANE_IDLE: Duration = Duration::from_secs(30);

/// Merges the holds of this instance per concert. Cheap to clone.
#[derive(Clone)]
pub struct Holds {
    lanes: Lanes<Placer>,
}

struct Placer {
    redis: RedisStore,
}

impl Merge for Placer {
    type Ask = NewHold;
    type Item = Vec<u8>;
    type Error = BookingError;

    async fn call(&self, concert_id: i64, asks: &[NewHold]) -> Result<Vec<Answer<Self>>, StoreError> {
        place_holds(&self.redis, concert_id, asks).await
    }
}

impl Holds {
    /// Holds placed through `redis`.
    pub fn new(redis: RedisStore) -> Self {
        Self {
            lanes: Lanes::new(Placer { redis }, "hold", MAX_BATCH, DEPTH, LANE_IDLE),
        }
    }

    /// Places `hold`: the reservation JSON, or the first answer again on a
    /// retry with the same idempotency key. Same answers as
    /// [`super::hold_seats`].
    ///
    /// # Errors
    /// Gate errors and every refusal of `hold_seats.lua`, store failures.
    pub async fn place(&self, hold: NewHold) -> Result<Vec<u8>, BookingError> {
        self.lanes.ask(hold.concert_id, hold).await
    }

    /// Script calls made so far.
    pub fn calls(&self) -> u64 {
        self.lanes.calls()
    }
}
