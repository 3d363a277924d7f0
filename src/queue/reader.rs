//! Status reads of the waiting room, merged per concert.
//!
//! Waiters poll their token every second or two, so during a rush status
//! reads are most of the traffic. Sent one by one, each would be one script
//! call running admission, the admission-rate scan and a round trip of its
//! own. Here each concert with reads in flight has a *lane*: one task that
//! takes every read waiting for it, answers them all with one
//! `get_tokens.lua` call, and meanwhile collects the next ones. Under load a
//! call carries as many reads as arrived during the previous one; a lone
//! read goes out at once, so nothing waits on a timer. Every answer is as
//! fresh as a call of its own would be: it is read inside the call that
//! answers it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{get_tokens, QueueError, QueueToken, TokenView};
use crate::config::QueueSettings;
use crate::store::redis::RedisStore;
use crate::store::StoreError;

/// Most reads in one script call.
const MAX_BATCH: usize = 512;

/// A lane with nothing to read for this long stops.
const LANE_IDLE: Duration = Duration::from_secs(30);

/// Merges the status reads of this instance per concert. Cheap to clone.
#[derive(Clone)]
pub struct StatusReader {
    inner: Arc<Inner>,
}

struct Inner {
    redis: RedisStore,
    settings: QueueSettings,
    /// How long a lane waits for reads before it stops.
    idle: Duration,
    /// concert id → its lane. Held only to find, add or remove a lane.
    lanes: Mutex<HashMap<i64, mpsc::UnboundedSender<Read>>>,
    /// Script calls made.
    calls: AtomicU64,
}

/// One read waiting for its answer.
struct Read {
    token: QueueToken,
    user_id: Option<i64>,
    answer: oneshot::Sender<Result<TokenView, QueueError>>,
}

type Lane = mpsc::UnboundedReceiver<Read>;

impl StatusReader {
    /// A reader of `redis`.
    pub fn new(redis: RedisStore, settings: QueueSettings) -> Self {
        Self::with_idle(redis, settings, LANE_IDLE)
    }

    /// A reader whose lanes stop after `idle` without reads.
    pub fn with_idle(redis: RedisStore, settings: QueueSettings, idle: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                redis,
                settings,
                idle,
                lanes: Mutex::new(HashMap::new()),
                calls: AtomicU64::new(0),
            }),
        }
    }

    /// The current state of a token, a sighting; with `user_id`, the token
    /// must be that user's. Same answers as [`super::get_token`].
    ///
    /// # Errors
    /// [`QueueError::TokenNotFound`], [`QueueError::Forbidden`], store failures.
    pub async fn get(&self, token: QueueToken, user_id: Option<i64>) -> Result<TokenView, QueueError> {
        let (answer, answered) = oneshot::channel();
        let mut read = Read { token, user_id, answer };
        // A lane that just stopped refuses the read; the next try starts a
        // new one.
        while let Err(mpsc::error::SendError(refused)) = self.lane(read.token.concert_id()).send(read) {
            read = refused;
        }
        answered
            .await
            .map_err(|_| StoreError::Reply("status read dropped".into()))?
    }

    /// Lanes running: concerts with reads in the last idle period.
    pub fn lanes(&self) -> usize {
        self.inner.lanes.lock().expect("reader lock is never poisoned").len()
    }

    /// Script calls made so far.
    pub fn calls(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    fn lane(&self, concert_id: i64) -> mpsc::UnboundedSender<Read> {
        let mut lanes = self.inner.lanes.lock().expect("reader lock is never poisoned");
        if let Some(lane) = lanes.get(&concert_id).filter(|l| !l.is_closed()) {
            return lane.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        lanes.insert(concert_id, tx.clone());
        let reader = self.clone();
        tokio::spawn(async move { reader.run_lane(concert_id, rx).await });
        tx
    }

    /// Answers a concert's reads, a call at a time, until idle.
    async fn run_lane(self, concert_id: i64, mut lane: Lane) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            match tokio::time::timeout(self.inner.idle, lane.recv_many(&mut batch, MAX_BATCH)).await {
                Ok(0) => return,
                Ok(_) => self.answer(concert_id, &mut batch).await,
                Err(_idle) => {
                    if self.close_if_idle(concert_id, &mut lane) {
                        // Reads sent between the last check and the close.
                        while lane.recv_many(&mut batch, MAX_BATCH).await > 0 {
                            self.answer(concert_id, &mut batch).await;
                        }
                        return;
                    }
                }
            }
        }
    }

    /// Unlists and closes an empty lane; false if reads arrived meanwhile.
    fn close_if_idle(&self, concert_id: i64, lane: &mut Lane) -> bool {
        let mut lanes = self.inner.lanes.lock().expect("reader lock is never poisoned");
        if !lane.is_empty() {
            return false;
        }
        // Still this lane's entry: a lane is replaced only once closed.
        lanes.remove(&concert_id);
        lane.close();
        true
    }

    async fn answer(&self, concert_id: i64, batch: &mut Vec<Read>) {
        metrics::histogram!("queue_status_reads_per_call").record(batch.len() as f64);
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        let reads: Vec<(QueueToken, Option<i64>)> = batch.iter().map(|r| (r.token.clone(), r.user_id)).collect();
        let inner = &self.inner;
        match get_tokens(&inner.redis, &inner.settings, concert_id, &reads).await {
            Ok(views) => {
                for (read, view) in batch.drain(..).zip(views) {
                    let _ = read.answer.send(view);
                }
            }
            Err(e) => {
                for read in batch.drain(..) {
                    let _ = read.answer.send(Err(copy(&e).into()));
                }
            }
        }
    }
}

/// The same failure, for each read of a failed call.
fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Redis(e) => StoreError::Redis(e.clone()),
        other => StoreError::Reply(other.to_string()),
    }
}
