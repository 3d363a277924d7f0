//! Status reads of the waiting room, merged per concert.
//!
//! Waiters poll their token every second or two, so during a rush status
//! reads are most of the traffic. Through [`Lanes`], every read that reaches
//! an instance while its previous `get_tokens.lua` call for that concert
//! runs rides the next call: admission and the admission-rate scan run once
//! for all of them, and they share one round trip. Every answer is as fresh
//! as a call of its own would give: it is read inside the call that answers
//! it.
//!
//! The reader also remembers, for the tokens it has seen waiting, what never
//! changes in them (owner and issue time), when it last wrote their
//! sighting, and the place it last read them at with the version of the
//! line it read (the version changes whenever anyone leaves the line). A
//! known token that still waits then costs the script one rank lookup, or
//! none while the line has not moved: no stored JSON to fetch and decode,
//! and a sighting written only once a grain is over (each instance writes
//! its own, so the recorded sighting is never more than a grain behind the
//! last poll). Anything else, and a read with another user's key, is read
//! whole.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{get_tokens, sighting_grain, QueueError, QueueToken, Read, ReadAnswer, TokenKey, TokenReads, TokenView};
use crate::config::QueueSettings;
use crate::store::redis::lane::{Answer, Lanes, Merge};
use crate::store::redis::RedisStore;
use crate::store::StoreError;

/// Most reads in one script call.
const MAX_BATCH: usize = 512;

/// A lane with nothing to read for this long stops.
const LANE_IDLE: Duration = Duration::from_secs(30);

/// A token not read for this long is forgotten (its next read is whole).
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// How often the forgetting runs.
const FORGET_EVERY: Duration = Duration::from_secs(10);

/// Merges the status reads of this instance per concert. Cheap to clone.
#[derive(Clone)]
pub struct StatusReader {
    lanes: Lanes<Reads>,
}

struct Reads {
    redis: RedisStore,
    settings: QueueSettings,
    grain: Duration,
    known: Mutex<Known>,
}

/// Waiting tokens this instance has read.
struct Known {
    tokens: HashMap<TokenKey, Waiter>,
    /// The version of each concert's line at its last read.
    lines: HashMap<i64, i64>,
    forgotten_at: Instant,
}

struct Waiter {
    user_id: i64,
    issued_at: i64,
    /// No later than the sighting Redis holds; `None` when one is due.
    sighted: Option<Instant>,
    /// The version of the line and the position last read in it.
    place: (i64, i64),
    read: Instant,
}

impl Reads {
    /// How each ask is read: known waiting tokens by their place only, and
    /// the line's version last read, if any.
    fn plan<'a>(
        &self,
        concert_id: i64,
        asks: &'a [(QueueToken, Option<i64>)],
        now: Instant,
    ) -> (Option<i64>, Vec<(&'a QueueToken, Read)>) {
        let mut known = self.known.lock().expect("known tokens lock is never poisoned");
        let line = known.lines.get(&concert_id).copied();
        let reads = asks
            .iter()
            .map(|(token, user_id)| {
                let read = match known.tokens.get_mut(&token.key()) {
                    Some(waiter) if user_id.is_none_or(|u| u == waiter.user_id) => {
                        waiter.read = now;
                        Read::Known {
                            user_id: waiter.user_id,
                            issued_at: waiter.issued_at,
                            sight: waiter
                                .sighted
                                .is_none_or(|at| now.saturating_duration_since(at) >= self.grain),
                            place: (line == Some(waiter.place.0)).then_some(waiter.place.1),
                        }
                    }
                    _ => Read::Whole(*user_id),
                };
                (token, read)
            })
            .collect();
        (line, reads)
    }

    /// Remembers the tokens that wait, where, and the sightings written (at
    /// `now` or later), forgets the others.
    fn learn(&self, concert_id: i64, reads: &[(&QueueToken, Read)], read: &TokenReads, now: Instant) {
        let mut known = self.known.lock().expect("known tokens lock is never poisoned");
        known.lines.insert(concert_id, read.line);
        let place = |answer: &ReadAnswer| (read.line, answer.view.position);
        for ((token, how), answer) in reads.iter().zip(&read.answers) {
            match (how, answer) {
                (Read::Whole(_), Ok(answer)) if answer.view.status == "WAITING" => {
                    let waiter = Waiter {
                        user_id: answer.view.user_id,
                        issued_at: answer.view.issued_at.0,
                        sighted: answer.sighted_ago.and_then(|ago| now.checked_sub(ago)),
                        place: place(answer),
                        read: now,
                    };
                    known.tokens.insert(token.key(), waiter);
                }
                (Read::Known { sight, .. }, Ok(answer)) if answer.view.status == "WAITING" => {
                    if let Some(waiter) = known.tokens.get_mut(&token.key()) {
                        waiter.place = place(answer);
                        if *sight {
                            waiter.sighted = Some(now);
                        }
                    }
                }
                (_, Err(QueueError::Forbidden)) => {}
                _ => {
                    known.tokens.remove(&token.key());
                }
            }
        }
        if now.saturating_duration_since(known.forgotten_at) >= FORGET_EVERY {
            // Tokens no longer read: gone from the queue or from this instance.
            known
                .tokens
                .retain(|_, waiter| now.saturating_duration_since(waiter.read) < FORGET_AFTER);
            known.forgotten_at = now;
        }
    }
}

impl Merge for Reads {
    type Ask = (QueueToken, Option<i64>);
    type Item = TokenView;
    type Error = QueueError;

    async fn call(&self, concert_id: i64, asks: &[Self::Ask]) -> Result<Vec<Answer<Self>>, StoreError> {
        let now = Instant::now();
        let (line, reads) = self.plan(concert_id, asks, now);
        let read = get_tokens(&self.redis, &self.settings, concert_id, line, &reads).await?;
        self.learn(concert_id, &reads, &read, now);
        Ok(read.answers.into_iter().map(|answer| answer.map(|a| a.view)).collect())
    }
}

impl StatusReader {
    /// A reader of `redis`.
    pub fn new(redis: RedisStore, settings: QueueSettings) -> Self {
        Self::with_idle(redis, settings, LANE_IDLE)
    }

    /// A reader whose lanes stop after `idle` without reads.
    pub fn with_idle(redis: RedisStore, settings: QueueSettings, idle: Duration) -> Self {
        let reads = Reads {
            redis,
            grain: sighting_grain(&settings),
            settings,
            known: Mutex::new(Known {
                tokens: HashMap::new(),
                lines: HashMap::new(),
                forgotten_at: Instant::now(),
            }),
        };
        Self {
            lanes: Lanes::new(reads, "queue_status", MAX_BATCH, 1, idle),
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

    /// Waiting tokens this instance knows (reads them by their place only).
    pub fn known(&self) -> usize {
        self.lanes
            .merge()
            .known
            .lock()
            .expect("known tokens lock is never poisoned")
            .tokens
            .len()
    }
}
