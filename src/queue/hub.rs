//! Server-Sent Events of the waiting room, shared per concert.
//!
//! Each instance keeps one *room* per concert with open streams. A room's
//! task polls every [`TICK`] with `poll_tokens.lua` calls carrying every
//! token streamed from this instance ([`CHUNK`] a call), so ten thousand
//! open streams cost forty script calls per tick, not one per stream. The
//! same calls mark the waiters seen, so an open stream keeps its token in
//! line. Activation is pushed on the first tick after it; position changes
//! at most once a second per stream.

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

/// Most tokens in one poll call. Small enough that every buffer of a call
/// (above all its decoded reply, three values a token at about 100 bytes
/// each) stays under 80 KiB: the allocator serves such blocks from pages it
/// keeps reusing, while each larger one is mapped and later purged on its
/// own. At 2,000 tokens a call, ten thousand streams made about 25 MB of
/// such blocks a second, held resident until purged.
const CHUNK: usize = 250;

/// Room for one event: the JSON of a view is about 230 bytes.
const FRAME_BYTES: usize = 320;

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
    /// The token: each tick's poll takes a clone (a reference, not a copy).
    token: Bytes,
    /// The view last pushed to the stream.
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
                    let (frame, done) = {
                        let view = receiver.borrow_and_update();
                        (frame(&view), view.is_final())
                    };
                    Some((frame, (None, rx, shutdown, done)))
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
            token: Bytes::from(token.as_str().to_owned()),
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
            let Some(chunks) = self.live_tokens(concert_id) else {
                return;
            };
            for chunk in &chunks {
                match self.poll(concert_id, chunk).await {
                    Ok(updates) => self.publish(concert_id, updates),
                    Err(e) => tracing::warn!(error = %e, concert_id, "queue stream poll failed"),
                }
            }
        }
    }

    /// Drops closed streams; the tokens of the others in chunks of [`CHUNK`],
    /// or `None` (and the room removed) once none is left.
    fn live_tokens(&self, concert_id: i64) -> Option<Vec<Vec<(u64, Bytes)>>> {
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
        let mut chunks = Vec::with_capacity(room.subscribers.len().div_ceil(CHUNK));
        let mut chunk = Vec::with_capacity(CHUNK);
        for (id, s) in &room.subscribers {
            if chunk.len() == CHUNK {
                chunks.push(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)));
            }
            chunk.push((*id, s.token.clone()));
        }
        chunks.push(chunk);
        Some(chunks)
    }

    async fn poll(
        &self,
        concert_id: i64,
        chunk: &[(u64, Bytes)],
    ) -> Result<Vec<(u64, Update)>, crate::store::StoreError> {
        let redis = &self.inner.redis;
        let mut args = Vec::with_capacity(3 + chunk.len());
        args.extend(limits(&self.inner.settings));
        args.extend(chunk.iter().map(|(_, t)| fred::types::Value::Bytes(t.clone())));
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
            // Judged on the few fields a poll changes, not on a clone of the
            // view: this runs for every stream on every tick.
            let pushed = Progress::of(&s.tx.borrow());
            let mut next = pushed;
            let urgent = update.apply(&mut next) && next != pushed;
            let changed = worth_pushing(&pushed, &next);
            if urgent || (changed && now.duration_since(s.last_push) >= POSITION_EVERY) {
                s.last_push = now;
                s.tx.send_modify(|view| next.write_to(view));
            }
        }
    }
}

/// Whether a waiter's new view says something the client does not know: a
/// new position, or an estimate off by at least [`ESTIMATE_SLACK`] (and a
/// tenth). The estimate follows the admission rate, which moves a little
/// every second; pushing each such move was nine events in ten.
fn worth_pushing(pushed: &Progress, now: &Progress) -> bool {
    let drift = (pushed.estimated_wait_seconds - now.estimated_wait_seconds).abs();
    pushed.position != now.position || drift >= ESTIMATE_SLACK.max(pushed.estimated_wait_seconds / 10)
}

/// The fields of a view that polls change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Progress {
    status: &'static str,
    position: i64,
    estimated_wait_seconds: i64,
    active_until: Option<Millis>,
}

impl Progress {
    fn of(view: &TokenView) -> Self {
        Self {
            status: view.status,
            position: view.position,
            estimated_wait_seconds: view.estimated_wait_seconds,
            active_until: view.active_until,
        }
    }

    fn write_to(self, view: &mut TokenView) {
        view.status = self.status;
        view.position = self.position;
        view.estimated_wait_seconds = self.estimated_wait_seconds;
        view.active_until = self.active_until;
    }
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
    fn apply(self, view: &mut Progress) -> bool {
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

/// One `status` event, written once into its own buffer.
fn frame(view: &TokenView) -> Result<Frame<Bytes>, Infallible> {
    let mut event = Vec::with_capacity(FRAME_BYTES);
    event.extend_from_slice(b"event: status\ndata: ");
    simd_json::serde::to_writer(&mut event, view).expect("a token view always serializes");
    event.extend_from_slice(b"\n\n");
    Ok(Frame::data(Bytes::from(event)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(position: i64, wait: i64) -> Progress {
        Progress {
            status: "WAITING",
            position,
            estimated_wait_seconds: wait,
            active_until: None,
        }
    }

    #[test]
    fn an_event_is_the_status_name_then_the_view_as_json() {
        let view = TokenView {
            token: "1.aaaaaaaaaaaaaaaaaaaaaa".into(),
            user_id: 7,
            concert_id: 1,
            status: "WAITING",
            position: 3,
            estimated_wait_seconds: 40,
            active_until: None,
            issued_at: Millis(0),
        };
        let Ok(frame) = frame(&view);
        let data = frame.into_data().expect("a data frame");
        let text = std::str::from_utf8(&data).expect("UTF-8");
        let json = text
            .strip_prefix("event: status\ndata: ")
            .and_then(|t| t.strip_suffix("\n\n"));
        let parsed: serde_json::Value = serde_json::from_str(json.expect("one event")).expect("JSON data");
        assert_eq!(parsed["position"], 3);
        assert_eq!(parsed["issued_at"], "1970-01-01T00:00:00Z");
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
