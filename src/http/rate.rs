//! Per-client request rates on the endpoints a crowd polls.
//!
//! A person in line needs a status at most every second or so; a client
//! stuck in a tight loop would only burn server time. Each instance limits
//! the polls of one queue token (status reads and stream opens) with a
//! token bucket; over the limit the answer is `429 RATE_LIMITED` with a
//! `Retry-After`. Limits are per instance, which is enough to stop runaways.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::queue::TokenKey;

/// Sustained polls a second allowed per queue token.
const POLLS_PER_SECOND: u32 = 20;

/// Polls a token may make in a burst.
const POLL_BURST: u32 = 60;

type Keyed = RateLimiter<TokenKey, DefaultKeyedStateStore<TokenKey>, DefaultClock>;

/// The limiters of one instance. Cheap to clone.
#[derive(Clone)]
pub struct RateLimits {
    polls: Arc<Keyed>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimits {
    /// Limiters with the default quotas.
    pub fn new() -> Self {
        let quota = Quota::per_second(NonZeroU32::new(POLLS_PER_SECOND).expect("non-zero"))
            .allow_burst(NonZeroU32::new(POLL_BURST).expect("non-zero"));
        Self {
            polls: Arc::new(RateLimiter::keyed(quota)),
        }
    }

    /// Counts one poll of `token`; `Err(wait)` when over the limit.
    pub fn poll(&self, token: TokenKey) -> Result<(), Duration> {
        self.polls
            .check_key(&token)
            .map_err(|not_until| not_until.wait_time_from(governor::clock::Clock::now(&DefaultClock::default())))
    }

    /// Forgets tokens that have been quiet long enough to be back at a full
    /// bucket, so memory follows the active crowd.
    pub fn forget_quiet(&self) {
        self.polls.retain_recent();
        self.polls.shrink_to_fit();
    }
}
