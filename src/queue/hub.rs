//! Server-Sent Events of the waiting room, shared per concert.
//!
//! Each instance keeps one *room* per concert with open streams. A room's
//! task polls every [`TICK`] with one `poll_tokens.lua` call carrying every
//! token streamed from this instance (in chunks), so ten thousand open
//! streams cost one script call per tick, not one per stream. The same call
//! marks the waiters seen, so an open stream keeps its token in line.
//! Activation is pushed on the first tick after it; position changes at
//! most once a second per stream.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{limits, QueueToken, TokenView};
use crate::config::QueueSettings;
use crate::http::Body;
use crate::store::redis::RedisStore;
use crate::time::Millis;

/// How often a room polls Redis.
const TICK: Duration = Duration::from_millis(500);

/// Least time between two position updates of one stream.
const POSITION_EVERY: Duration = Duration::from_secs(1);

/// Least change of a waiter's estimated wait (seconds) worth an event of
/// its own.
const ESTIMATE_SLACK: i64 = 5;

/// A comment line keeps idle connections (and proxies) from timing out.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Most tokens in one poll call.
const CHUNK: usize = 2_000;

/// The rooms of this instance. Cheap to clone.
#[derive(Clone)]
pub struct QueueHub {
    inner: Arc<Inner>,
}

struct Inner {
    redis: RedisStore,
    settings: QueueSettings,
    /// concert id → its room. A std mutex: held only to add or list
    /// subscribers, never across an await.
    rooms: Mutex<HashMap<i64, Room>>,
}

#[derive(Default)]
struct Room {
    next_id: u64,
    subscribers: HashMap<u64, Subscriber>,
}

struct Subscriber {
    token: String,
    tx: watch::Sender<TokenView>,
    last_push: Instant,
}

impl QueueHub {
    /// A hub polling `redis`.
    pub fn new(redis: RedisStore, settings: QueueSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                redis,
                settings,
                rooms: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Open streams on this instance.
    pub fn open_streams(&self) -> usize {
        let rooms = self.inner.rooms.lock().expect("hub lock is never poisoned");
        rooms.values().map(|r| r.subscribers.len()).sum()
    }

    /// The SSE response for a token whose current state is `first`: that
    /// state at once, then every change until ACTIVE or EXPIRED.
    pub fn stream(&self, token: QueueToken, first: TokenView, shutdown: CancellationToken) -> Response<Body> {
        let rx = if first.is_final() {
            None
        } else {
            Some(self.subscribe(&token, first.clone()))
        };
        let state = (Some(first), rx, shutdown, false);
        let events = stream::unfold(state, |(first, mut rx, shutdown, done)| async move {
            if done {
                return None;
            }
            if let Some(view) = first {
                let done = view.is_final();
                return Some((frame(&view), (None, rx, shutdown, done)));
            }
            let receiver = rx.as_mut()?;
            tokio::select! {
                changed = receiver.changed() => {
                    changed.ok()?;
                    let view = receiver.borrow_and_update().clone();
                    let done = view.is_final();
                    Some((frame(&view), (None, rx, shutdown, done)))
                }
                () = shutdown.cancelled() => None,
                () = tokio::time::sleep(KEEP_ALIVE) => {
                    Some((Ok(Frame::data(Bytes::from_static(b": keep-alive\n\n"))), (None, rx, shutdown, false)))
                }
            }
        });
        let mut response = Response::new(StreamBody::new(events).boxed());
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }

    fn subscribe(&self, token: &QueueToken, first: TokenView) -> watch::Receiver<TokenView> {
        let (tx, rx) = watch::channel(first);
        let concert_id = token.concert_id();
        let mut rooms = self.inner.rooms.lock().expect("hub lock is never poisoned");
        let start = !rooms.contains_key(&concert_id);
        let room = rooms.entry(concert_id).or_default();
        room.next_id += 1;
        let subscriber = Subscriber {
            token: token.as_str().to_owned(),
            tx,
            last_push: Instant::now(),
        };
        room.subscribers.insert(room.next_id, subscriber);
        if start {
            let hub = self.clone();
            tokio::spawn(async move { hub.run_room(concert_id).await });
        }
        metrics::gauge!("queue_event_streams").increment(1.0);
        rx
    }

    /// Polls one concert until its last stream closes.
    async fn run_room(self, concert_id: i64) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(tokens) = self.live_tokens(concert_id) else {
                return;
            };
            for chunk in tokens.chunks(CHUNK) {
                match self.poll(concert_id, chunk).await {
                    Ok(updates) => self.publish(concert_id, updates),
                    Err(e) => tracing::warn!(error = %e, concert_id, "queue stream poll failed"),
                }
            }
        }
    }

    /// Drops closed streams; `None` (and the room removed) once none is left.
    fn live_tokens(&self, concert_id: i64) -> Option<Vec<(u64, String)>> {
        let mut rooms = self.inner.rooms.lock().expect("hub lock is never poisoned");
        let room = rooms.get_mut(&concert_id)?;
        let before = room.subscribers.len();
        room.subscribers
            .retain(|_, s| !s.tx.is_closed() && !s.tx.borrow().is_final());
        metrics::gauge!("queue_event_streams").decrement((before - room.subscribers.len()) as f64);
        if room.subscribers.is_empty() {
            rooms.remove(&concert_id);
            return None;
        }
        Some(room.subscribers.iter().map(|(id, s)| (*id, s.token.clone())).collect())
    }

    async fn poll(
        &self,
        concert_id: i64,
        chunk: &[(u64, String)],
    ) -> Result<Vec<(u64, Update)>, crate::store::StoreError> {
        let redis = &self.inner.redis;
        let mut args: Vec<fred::types::Value> = limits(&self.inner.settings).into();
        args.extend(chunk.iter().map(|(_, t)| t.as_str().into()));
        let reply = redis
            .eval(&redis.scripts().poll_tokens, redis.keys().concert(concert_id), args)
            .await?;
        let mut out = Vec::with_capacity(chunk.len());
        for (i, (id, _)) in chunk.iter().enumerate() {
            let at = 1 + i * 3;
            let update = match reply.str(at)? {
                "W" => Update::Waiting {
                    position: reply.i64(at + 1)?,
                    wait: reply.i64(at + 2)?,
                },
                "A" => Update::Active {
                    until: reply.i64(at + 1)?,
                },
                _ => Update::Expired,
            };
            out.push((*id, update));
        }
        Ok(out)
    }

    fn publish(&self, concert_id: i64, updates: Vec<(u64, Update)>) {
        let mut rooms = self.inner.rooms.lock().expect("hub lock is never poisoned");
        let Some(room) = rooms.get_mut(&concert_id) else { return };
        let now = Instant::now();
        for (id, update) in updates {
            let Some(s) = room.subscribers.get_mut(&id) else {
                continue;
            };
            let mut view = s.tx.borrow().clone();
            let urgent = update.apply(&mut view) && view != *s.tx.borrow();
            let changed = worth_pushing(&s.tx.borrow(), &view);
            if urgent || (changed && now.duration_since(s.last_push) >= POSITION_EVERY) {
                s.last_push = now;
                s.tx.send_replace(view);
            }
        }
    }
}

/// Whether a waiter's new view says something the client does not know: a
/// new position, or an estimate off by at least [`ESTIMATE_SLACK`] (and a
/// tenth). The estimate follows the admission rate, which moves a little
/// every second; pushing each such move was nine events in ten.
fn worth_pushing(pushed: &TokenView, now: &TokenView) -> bool {
    let drift = (pushed.estimated_wait_seconds - now.estimated_wait_seconds).abs();
    pushed.position != now.position || drift >= ESTIMATE_SLACK.max(pushed.estimated_wait_seconds / 10)
}

/// What one poll says of one token.
#[derive(Debug, Clone, Copy)]
enum Update {
    Waiting { position: i64, wait: i64 },
    Active { until: i64 },
    Expired,
}

impl Update {
    /// Applies the update; true when it must be pushed at once.
    fn apply(self, view: &mut TokenView) -> bool {
        match self {
            Self::Waiting { position, wait } => {
                view.position = position;
                view.estimated_wait_seconds = wait;
                false
            }
            Self::Active { until } => {
                view.status = "ACTIVE";
                view.position = 0;
                view.estimated_wait_seconds = 0;
                view.active_until = Some(Millis(until));
                true
            }
            Self::Expired => {
                view.status = "EXPIRED";
                view.position = 0;
                view.estimated_wait_seconds = 0;
                true
            }
        }
    }
}

fn frame(view: &TokenView) -> Result<Frame<Bytes>, Infallible> {
    let json = simd_json::serde::to_vec(view).expect("a token view always serializes");
    let mut event = Vec::with_capacity(json.len() + 24);
    event.extend_from_slice(b"event: status\ndata: ");
    event.extend_from_slice(&json);
    event.extend_from_slice(b"\n\n");
    Ok(Frame::data(Bytes::from(event)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(position: i64, wait: i64) -> TokenView {
        TokenView {
            token: "1.aaaaaaaaaaaaaaaaaaaaaa".into(),
            user_id: 1,
            concert_id: 1,
            status: "WAITING",
            position,
            estimated_wait_seconds: wait,
            active_until: None,
            issued_at: Millis(0),
        }
    }

    #[test]
    fn a_new_position_is_always_worth_an_event() {
        assert!(worth_pushing(&waiting(10, 60), &waiting(9, 60)));
    }

    #[test]
    fn a_small_drift_of_the_estimate_alone_is_not() {
        assert!(!worth_pushing(&waiting(10, 60), &waiting(10, 56)));
        assert!(!worth_pushing(&waiting(10, 600), &waiting(10, 545)));
        assert!(!worth_pushing(&waiting(10, 60), &waiting(10, 60)));
    }

    #[test]
    fn a_large_drift_of_the_estimate_is() {
        assert!(worth_pushing(&waiting(10, 60), &waiting(10, 54)));
        assert!(worth_pushing(&waiting(10, 600), &waiting(10, 660)));
    }
}
