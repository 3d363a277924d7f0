//! The waiting room: one FIFO queue per concert, admission by capacity, and
//! the gate that booking endpoints pass through.
//!
//! All state lives in the concert's tag and changes only inside scripts
//! (`lua/lib/concert.lua`): every issue, status read, stream tick and sweep
//! first drops expired actives and idle waiters, then admits the oldest
//! live waiters into free slots. Admission is therefore exact with any
//! number of instances, and needs no leader and no scheduler.

mod gate;
pub mod hub;
mod reader;
mod token;

use std::time::Duration;

use fred::interfaces::{KeysInterface, SetsInterface};
use serde::{Deserialize, Serialize};

pub use gate::{check_concert, GateCheckError, GateError};
pub use reader::StatusReader;
pub use token::{QueueToken, TokenKey};

use crate::config::QueueSettings;
use crate::store::redis::{RedisStore, Refusal, Reply, Status};
use crate::store::StoreError;
use crate::time::Millis;

/// Why a queue request was refused.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("no such concert")]
    ConcertNotFound,
    #[error("no such queue token")]
    TokenNotFound,
    #[error("this queue token belongs to another user")]
    Forbidden,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A token's state as the scripts keep it.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenState {
    pub token: String,
    pub user_id: i64,
    pub concert_id: i64,
    pub status: String,
    pub issued_at: i64,
    #[serde(default)]
    pub activated_at: Option<i64>,
    #[serde(default)]
    pub active_until: Option<i64>,
    #[serde(default)]
    pub expired_at: Option<i64>,
}

/// A token as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TokenView {
    pub token: String,
    pub user_id: i64,
    pub concert_id: i64,
    pub status: &'static str,
    pub position: i64,
    pub estimated_wait_seconds: i64,
    pub active_until: Option<Millis>,
    pub issued_at: Millis,
}

impl TokenView {
    /// Renders a state with its position and estimated wait.
    pub fn new(state: &TokenState, position: i64, wait: i64) -> Self {
        let status = match state.status.as_str() {
            "WAITING" => "WAITING",
            "ACTIVE" => "ACTIVE",
            _ => "EXPIRED",
        };
        Self {
            token: state.token.clone(),
            user_id: state.user_id,
            concert_id: state.concert_id,
            status,
            position,
            estimated_wait_seconds: wait,
            active_until: state.active_until.map(Millis),
            issued_at: Millis(state.issued_at),
        }
    }

    /// A waiting token from what never changes in it.
    pub fn waiting(token: &QueueToken, user_id: i64, issued_at: i64, position: i64, wait: i64) -> Self {
        Self {
            token: token.as_str().to_owned(),
            user_id,
            concert_id: token.concert_id(),
            status: "WAITING",
            position,
            estimated_wait_seconds: wait,
            active_until: None,
            issued_at: Millis(issued_at),
        }
    }

    /// Whether the stream of this token is over.
    pub fn is_final(&self) -> bool {
        self.status != "WAITING"
    }
}

/// Queue parameters as script arguments: max, active ttl ms, idle ms.
pub fn limits(settings: &QueueSettings) -> [fred::types::Value; 3] {
    [
        i64::from(settings.active_max).into(),
        (settings.active_ttl_ms() as i64).into(),
        (settings.idle_timeout_ms() as i64).into(),
    ]
}

fn view_from(reply: &Reply, at: usize) -> Result<TokenView, StoreError> {
    let mut json = reply.bytes(at)?.to_vec();
    let state: TokenState = simd_json::serde::from_slice(&mut json).map_err(|e| StoreError::Reply(e.to_string()))?;
    Ok(TokenView::new(&state, reply.i64(at + 1)?, reply.i64(at + 2)?))
}

/// Issues the user's token for a concert, or returns the live one it
/// already holds (`created` false) with its place unchanged.
///
/// # Errors
/// Store failures. The caller checks that the concert exists.
#[tracing::instrument(skip_all, fields(user_id, concert_id))]
pub async fn issue_token(
    redis: &RedisStore,
    settings: &QueueSettings,
    user_id: i64,
    concert_id: i64,
) -> Result<(TokenView, bool), QueueError> {
    let keys = redis.keys();
    // Recorded first, so a reservation of this concert can always be found
    // from its user (a set: adding twice changes nothing).
    let _: i64 = redis
        .client()
        .sadd(keys.user_concerts(user_id), concert_id)
        .await
        .map_err(StoreError::from)?;
    let fresh = QueueToken::generate(concert_id);
    let [max, ttl, idle] = limits(settings);
    let reply = redis
        .eval(
            &redis.scripts().issue_token,
            keys.concert(concert_id),
            vec![user_id.into(), fresh.as_str().into(), concert_id.into(), max, ttl, idle],
        )
        .await?;
    let created = reply.i64(0)? == 201;
    Ok((view_from(&reply, 1)?, created))
}

/// The current state of a token (a sighting: it keeps a waiter in line).
/// With `user_id`, the token must be that user's. One script call; the
/// request path goes through [`StatusReader`], which merges concurrent reads.
///
/// # Errors
/// [`QueueError::TokenNotFound`], [`QueueError::Forbidden`], store failures.
pub async fn get_token(
    redis: &RedisStore,
    settings: &QueueSettings,
    token: &QueueToken,
    user_id: Option<i64>,
) -> Result<TokenView, QueueError> {
    let read = [(token, Read::Whole(user_id))];
    let mut reads = get_tokens(redis, settings, token.concert_id(), None, &read).await?;
    reads
        .answers
        .pop()
        .expect("one answer a read")
        .map(|answer| answer.view)
}

/// How [`get_tokens`] reads one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// From its stored state; with a user id, the token must be theirs.
    Whole(Option<i64>),
    /// A token whose owner and issue time the caller already knows: while
    /// it waits only its place is read, and a sighting is written when
    /// `sight` says so (the caller asks at most once a [`sighting_grain`]).
    /// Once it no longer waits it is read whole. `place` is the position
    /// the caller read it at in the line's version it passes
    /// ([`get_tokens`]): while the line has that version still, the token
    /// waits there, and Redis need not even look it up.
    Known {
        user_id: i64,
        issued_at: i64,
        sight: bool,
        place: Option<i64>,
    },
}

/// The answer to one [`Read`].
#[derive(Debug, Clone)]
pub struct ReadAnswer {
    pub view: TokenView,
    /// For a waiting token read whole: how long ago its recorded sighting
    /// was, so the caller knows when the next one is due.
    pub sighted_ago: Option<Duration>,
}

/// The answers of [`get_tokens`], and the version of the line they were
/// read at.
#[derive(Debug)]
pub struct TokenReads {
    pub line: i64,
    pub answers: Vec<Result<ReadAnswer, QueueError>>,
}

/// How often at most a sighting of a waiting token is written: a twentieth
/// of the idle timeout, as `sighting_grain` in `lua/lib/concert.lua`.
pub fn sighting_grain(settings: &QueueSettings) -> Duration {
    Duration::from_millis(settings.idle_timeout_ms() / 20)
}

/// The states of several tokens of one concert in one script call, each a
/// sighting (see [`Read`]), in the order of `reads`. `line` is the version
/// of the line the caller last read, which the places in its reads were
/// read at; the answers come with the version they were read at.
///
/// # Errors
/// Store failures fail them all; a missing or foreign token fails its own.
pub async fn get_tokens(
    redis: &RedisStore,
    settings: &QueueSettings,
    concert_id: i64,
    line: Option<i64>,
    reads: &[(&QueueToken, Read)],
) -> Result<TokenReads, StoreError> {
    let mut args: Vec<fred::types::Value> = limits(settings).into();
    args.reserve(1 + reads.len() * 2);
    args.push(line.map(|v| v.to_string()).unwrap_or_default().into());
    for (token, read) in reads {
        args.push(token.as_str().into());
        args.push(match read {
            Read::Whole(user_id) => user_id.map(|u| u.to_string()).unwrap_or_default().into(),
            Read::Known { sight, place, .. } => match (sight, place.is_some()) {
                (true, true) => "S",
                (true, false) => "s",
                (false, true) => "K",
                (false, false) => "k",
            }
            .into(),
        });
    }
    let reply = redis
        .eval(&redis.scripts().get_tokens, redis.keys().concert(concert_id), args)
        .await?;
    let read_line = reply.i64(0)?;
    let rate = AdmissionRate {
        admitted: reply.i64(1)?,
        span_seconds: reply.i64(2)?,
    };
    let mut at = 3;
    let answers = reads
        .iter()
        .map(|(token, read)| {
            if let Some(position) = reply.integer(at) {
                // A known token, still waiting: its place alone, or, with
                // the line unmoved, the place the caller read before.
                at += 1;
                let Read::Known {
                    user_id,
                    issued_at,
                    place,
                    ..
                } = *read
                else {
                    return Err(StoreError::Reply("a whole read answered by its place alone".into()));
                };
                let position = match (position, place) {
                    (0, Some(place)) => place,
                    (0, None) => return Err(StoreError::Reply("an unchanged place the caller did not send".into())),
                    (position, _) => position,
                };
                let wait = rate.eta(position, settings);
                return Ok(Ok(ReadAnswer {
                    view: TokenView::waiting(token, user_id, issued_at, position, wait),
                    sighted_ago: None,
                }));
            }
            let slot = at;
            at += 5;
            Ok(match reply.str(slot)? {
                "OK" => {
                    let view = view_from(&reply, slot + 1)?;
                    let sighted_ago = (view.status == "WAITING")
                        .then(|| reply.i64(slot + 4).map(|ms| Duration::from_millis(ms.max(0) as u64)))
                        .transpose()?;
                    Ok(ReadAnswer { view, sighted_ago })
                }
                code => match Refusal::parse(code) {
                    Some(Refusal::TokenNotFound) => Err(QueueError::TokenNotFound),
                    Some(Refusal::Forbidden) => Err(QueueError::Forbidden),
                    _ => return Err(StoreError::Reply(format!("token read refused: {code}"))),
                },
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    if at != reply.len() {
        return Err(StoreError::Reply(format!(
            "{} elements for {} token reads",
            reply.len(),
            reads.len()
        )));
    }
    Ok(TokenReads {
        line: read_line,
        answers,
    })
}

/// The admissions of a concert's last minute, as `admission_counts` in
/// `lua/lib/concert.lua` returns them.
struct AdmissionRate {
    admitted: i64,
    span_seconds: i64,
}

impl AdmissionRate {
    /// Seconds until a waiter at `position` is admitted: the measured rate,
    /// or one active lifetime per full wave of slots while nothing was
    /// admitted yet. The same arithmetic, in the same floating point, as
    /// `eta` in `lua/lib/concert.lua`, so a wait is the same whichever
    /// side works it out.
    fn eta(&self, position: i64, settings: &QueueSettings) -> i64 {
        if position <= 0 {
            return 0;
        }
        if self.admitted > 0 {
            let rate = self.admitted as f64 / self.span_seconds as f64;
            return (position as f64 / rate).ceil() as i64;
        }
        let waves = (position as u64).div_ceil(u64::from(settings.active_max));
        (waves * settings.active_ttl_ms().div_ceil(1000)) as i64
    }
}

/// Leaves the queue: the token is EXPIRED and its slot goes to the next
/// waiter at once.
///
/// # Errors
/// [`QueueError::TokenNotFound`], [`QueueError::Forbidden`], store failures.
pub async fn leave_queue(
    redis: &RedisStore,
    settings: &QueueSettings,
    token: &QueueToken,
    user_id: i64,
) -> Result<(), QueueError> {
    let [max, ttl, idle] = limits(settings);
    let reply = redis
        .eval(
            &redis.scripts().leave_queue,
            redis.keys().concert(token.concert_id()),
            vec![token.as_str().into(), user_id.into(), max, ttl, idle],
        )
        .await?;
    refusal(&reply)
}

fn refusal(reply: &Reply) -> Result<(), QueueError> {
    match reply.status()? {
        Status::Done(_) => Ok(()),
        Status::Refused(Refusal::TokenNotFound, _) => Err(QueueError::TokenNotFound),
        Status::Refused(Refusal::Forbidden, _) => Err(QueueError::Forbidden),
        Status::Refused(other, _) => Err(StoreError::Reply(format!("queue refused: {other:?}")).into()),
    }
}

/// Whether a token exists and is still live (WAITING or ACTIVE).
///
/// # Errors
/// Store failures.
pub async fn is_live(redis: &RedisStore, token: &QueueToken) -> Result<bool, StoreError> {
    let key = format!("{}t:{}", redis.keys().concert(token.concert_id()), token.as_str());
    // Boxed: an error path's command need not size the caller's future.
    let json: Option<String> = Box::pin(redis.client().get(key)).await?;
    Ok(json.is_some_and(|j| !j.contains("\"status\":\"EXPIRED\"")))
}
