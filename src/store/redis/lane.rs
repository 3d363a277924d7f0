//! Lanes: concurrent calls to one hash tag merged into one script call.
//!
//! During a rush most requests go to one concert, so to one tag, and each
//! would be one script call with its own round trip and its own fixed cost
//! in Redis. A [`Lanes`] keeps one *lane* per tag with calls in flight: a
//! task that takes every call waiting for the tag, answers them all with
//! one script call (one [`Merge::call`]), and meanwhile collects the next
//! ones. Under load a script call carries as many requests as arrived
//! during the previous one; a lone request goes out at once, so nothing
//! waits on a timer. The script handles the requests one after the other,
//! in arrival order, each exactly as a call of its own would.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::StoreError;

/// How a kind of request is answered in bulk.
pub trait Merge: Send + Sync + 'static {
    type Ask: Send + 'static;
    type Item: Send + 'static;
    /// A refusal of one ask, or a store failure.
    type Error: From<StoreError> + Send + 'static;

    /// Answers `asks`, all for the tag of `tag_id`: one answer each, in
    /// order. A store failure fails the call, and the lane gives it to
    /// every ask.
    fn call(
        &self,
        tag_id: i64,
        asks: &[Self::Ask],
    ) -> impl Future<Output = Result<Vec<Answer<Self>>, StoreError>> + Send;
}

/// The answer to one ask.
pub type Answer<M> = Result<<M as Merge>::Item, <M as Merge>::Error>;

/// The lanes of one kind of request on this instance. Cheap to clone.
pub struct Lanes<M: Merge> {
    inner: Arc<Inner<M>>,
}

impl<M: Merge> Clone for Lanes<M> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<M: Merge> {
    merge: M,
    /// For the metrics.
    name: &'static str,
    /// Most requests in one script call.
    max_batch: usize,
    /// How long a lane waits for requests before it stops.
    idle: Duration,
    /// tag id → its lane. Held only to find, add or remove a lane.
    lanes: Mutex<HashMap<i64, mpsc::UnboundedSender<Pending<M>>>>,
    /// Script calls made.
    calls: AtomicU64,
}

/// A request waiting for its answer.
struct Pending<M: Merge> {
    ask: M::Ask,
    answer: oneshot::Sender<Answer<M>>,
}

type Lane<M> = mpsc::UnboundedReceiver<Pending<M>>;

impl<M: Merge> Lanes<M> {
    /// Lanes named `name` in the metrics, answering with `merge` up to
    /// `max_batch` requests a call, each stopping after `idle` without any.
    pub fn new(merge: M, name: &'static str, max_batch: usize, idle: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                merge,
                name,
                max_batch,
                idle,
                lanes: Mutex::new(HashMap::new()),
                calls: AtomicU64::new(0),
            }),
        }
    }

    /// The answer to `ask`, from the next call of the lane of `tag_id`.
    ///
    /// # Errors
    /// The ask's refusal, or the failure of the call that carried it.
    pub async fn ask(&self, tag_id: i64, ask: M::Ask) -> Answer<M> {
        let (answer, answered) = oneshot::channel();
        let mut pending = Pending { ask, answer };
        // A lane that just stopped refuses it; the next try starts a new one.
        while let Err(mpsc::error::SendError(refused)) = self.lane(tag_id).send(pending) {
            pending = refused;
        }
        answered
            .await
            .unwrap_or_else(|_| Err(StoreError::Reply(format!("{} lane dropped a request", self.inner.name)).into()))
    }

    /// Lanes running: tags with requests in the last idle period.
    pub fn lanes(&self) -> usize {
        self.inner.lanes.lock().expect("lanes lock is never poisoned").len()
    }

    /// Script calls made so far.
    pub fn calls(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    /// What answers the calls.
    pub fn merge(&self) -> &M {
        &self.inner.merge
    }

    fn lane(&self, tag_id: i64) -> mpsc::UnboundedSender<Pending<M>> {
        let mut lanes = self.inner.lanes.lock().expect("lanes lock is never poisoned");
        if let Some(lane) = lanes.get(&tag_id).filter(|l| !l.is_closed()) {
            return lane.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        lanes.insert(tag_id, tx.clone());
        let this = self.clone();
        tokio::spawn(async move { this.run_lane(tag_id, rx).await });
        tx
    }

    /// Answers a tag's requests, a call at a time, until idle.
    async fn run_lane(self, tag_id: i64, mut lane: Lane<M>) {
        let max = self.inner.max_batch;
        let mut batch = Vec::with_capacity(max);
        loop {
            match tokio::time::timeout(self.inner.idle, lane.recv_many(&mut batch, max)).await {
                Ok(0) => return,
                Ok(_) => self.answer(tag_id, &mut batch).await,
                Err(_idle) => {
                    if self.close_if_idle(tag_id, &mut lane) {
                        // Requests sent between the last check and the close.
                        while lane.recv_many(&mut batch, max).await > 0 {
                            self.answer(tag_id, &mut batch).await;
                        }
                        return;
                    }
                }
            }
        }
    }

    /// Unlists and closes an empty lane; false if requests arrived meanwhile.
    fn close_if_idle(&self, tag_id: i64, lane: &mut Lane<M>) -> bool {
        let mut lanes = self.inner.lanes.lock().expect("lanes lock is never poisoned");
        if !lane.is_empty() {
            return false;
        }
        // Still this lane's entry: a lane is replaced only once closed.
        lanes.remove(&tag_id);
        lane.close();
        true
    }

    async fn answer(&self, tag_id: i64, batch: &mut Vec<Pending<M>>) {
        metrics::histogram!("lane_requests_per_call", "lane" => self.inner.name).record(batch.len() as f64);
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        let (asks, senders): (Vec<M::Ask>, Vec<_>) = batch.drain(..).map(|p| (p.ask, p.answer)).unzip();
        match self.inner.merge.call(tag_id, &asks).await {
            Ok(answers) => {
                for (sender, answer) in senders.into_iter().zip(answers) {
                    let _ = sender.send(answer);
                }
            }
            Err(e) => {
                for sender in senders {
                    let _ = sender.send(Err(e.duplicate().into()));
                }
            }
        }
    }
}
