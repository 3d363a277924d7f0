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
//!
//! A lane may keep a few calls in flight ([`Lanes::new`]'s `depth`), so that
//! Redis runs one while the server sends the answers of the one before and
//! the next requests arrive. Calls are sent in arrival order; a [`Merge`]
//! whose calls must also *run* in that order sends them down one connection
//! ([`crate::store::redis::RedisStore::eval_in_order`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
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
    /// Most script calls of one lane in flight at once.
    depth: usize,
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
    /// `max_batch` requests a call and `depth` calls at once, each stopping
    /// after `idle` without any.
    pub fn new(merge: M, name: &'static str, max_batch: usize, depth: usize, idle: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                merge,
                name,
                max_batch,
                depth: depth.max(1),
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

    /// Answers a tag's requests, up to `depth` calls at once, until idle.
    async fn run_lane(self, tag_id: i64, mut lane: Lane<M>) {
        let (max, depth) = (self.inner.max_batch, self.inner.depth);
        let mut in_flight = FuturesUnordered::new();
        loop {
            let mut batch = Vec::new();
            tokio::select! {
                // Answers first: they free a place for the next call.
                biased;
                Some(()) = in_flight.next() => {}
                received = tokio::time::timeout(self.inner.idle, lane.recv_many(&mut batch, max)),
                    if in_flight.len() < depth =>
                {
                    match received {
                        // Pushed calls go out when the set is next polled,
                        // before any later one: in arrival order.
                        Ok(n) if n > 0 => in_flight.push(self.answer(tag_id, batch)),
                        // Closed, and the requests sent before the close
                        // are answered or on their way.
                        Ok(_) => break,
                        Err(_idle) if in_flight.is_empty() => self.close_if_idle(tag_id, &mut lane),
                        Err(_idle) => {}
                    }
                }
            }
        }
        while in_flight.next().await.is_some() {}
    }

    /// Unlists and closes an empty lane; one that got requests meanwhile
    /// goes on.
    fn close_if_idle(&self, tag_id: i64, lane: &mut Lane<M>) {
        let mut lanes = self.inner.lanes.lock().expect("lanes lock is never poisoned");
        if lane.is_empty() {
            // Still this lane's entry: a lane is replaced only once closed.
            lanes.remove(&tag_id);
            lane.close();
        }
    }

    async fn answer(&self, tag_id: i64, batch: Vec<Pending<M>>) {
        metrics::histogram!("lane_requests_per_call", "lane" => self.inner.name).record(batch.len() as f64);
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        let (asks, senders): (Vec<M::Ask>, Vec<_>) = batch.into_iter().map(|p| (p.ask, p.answer)).unzip();
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::Semaphore;

    use super::*;

    /// Answers each ask with itself, once the test lets a call finish;
    /// records the batches in the order their calls began.
    struct Echo {
        began: Mutex<Vec<Vec<u32>>>,
        finish: Semaphore,
    }

    impl Merge for Echo {
        type Ask = u32;
        type Item = u32;
        type Error = StoreError;

        async fn call(&self, _tag_id: i64, asks: &[u32]) -> Result<Vec<Answer<Self>>, StoreError> {
            self.began.lock().unwrap().push(asks.to_vec());
            self.finish.acquire().await.expect("never closed").forget();
            Ok(asks.iter().map(|&a| Ok(a)).collect())
        }
    }

    fn echo_lanes(depth: usize) -> Lanes<Echo> {
        let echo = Echo {
            began: Mutex::new(Vec::new()),
            finish: Semaphore::new(0),
        };
        Lanes::new(echo, "test", 64, depth, Duration::from_secs(30))
    }

    /// Lets spawned tasks of this single-threaded runtime run.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    fn ask(lanes: &Lanes<Echo>, a: u32) -> tokio::task::JoinHandle<Answer<Echo>> {
        let lanes = lanes.clone();
        tokio::spawn(async move { lanes.ask(7, a).await })
    }

    fn began(lanes: &Lanes<Echo>) -> Vec<Vec<u32>> {
        lanes.merge().began.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn a_lane_keeps_depth_calls_in_flight_sent_in_arrival_order() {
        let lanes = echo_lanes(2);
        let first = ask(&lanes, 1);
        settle().await;
        let second = ask(&lanes, 2);
        settle().await;
        // Both calls are in flight; the next asks wait for a free place.
        let waiting = [ask(&lanes, 3), ask(&lanes, 4)];
        settle().await;
        assert_eq!(began(&lanes), [vec![1], vec![2]]);

        lanes.merge().finish.add_permits(1);
        settle().await;
        // One finished (which one is the runtime's choice): asks 3 and 4
        // ride the next call together, behind the one still in flight.
        assert_eq!(began(&lanes), [vec![1], vec![2], vec![3, 4]]);

        lanes.merge().finish.add_permits(2);
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(second.await.unwrap().unwrap(), 2);
        for (task, a) in waiting.into_iter().zip([3, 4]) {
            assert_eq!(task.await.unwrap().unwrap(), a);
        }
        assert_eq!(lanes.calls(), 3);
    }

    #[tokio::test]
    async fn a_lane_of_depth_one_waits_for_each_call() {
        let lanes = echo_lanes(1);
        let first = ask(&lanes, 1);
        settle().await;
        let rest = [ask(&lanes, 2), ask(&lanes, 3)];
        settle().await;
        assert_eq!(began(&lanes), [vec![1]]);
        lanes.merge().finish.add_permits(2);
        assert_eq!(first.await.unwrap().unwrap(), 1);
        for (task, a) in rest.into_iter().zip([2, 3]) {
            assert_eq!(task.await.unwrap().unwrap(), a);
        }
        assert_eq!(began(&lanes), [vec![1], vec![2, 3]]);
    }
}
