//! The write-behind worker: Redis event streams → Postgres.
//!
//! Every stream is read with the consumer group [`GROUP`]. Each stream's
//! batch is applied in a Postgres transaction of its own with idempotent
//! upserts ([`apply`]), the streams' transactions concurrently, and
//! acknowledged once committed, so a crash anywhere loses nothing:
//! unacknowledged entries stay pending and are claimed again, by this
//! worker after a restart or by another one ([`CLAIM_IDLE`]). Replays change
//! nothing. Acknowledged entries are trimmed from the streams.
//!
//! While the worker is behind (a stream gave a batch of [`READ_CHUNK`] or
//! more), each such stream is a pipeline: while its batch is written, its
//! next batch is read, and a stream whose batch is read starts writing
//! without waiting for the others' reads, so Redis, this process and
//! Postgres work at once. A batch of up to [`BATCH`] is read
//! [`READ_CHUNK`] entries a command, so that no read holds Redis for long.
//!
//! Once it has caught up, the worker lets new entries gather for
//! [`LINGER`], then reads every stream with one blocking `XREADGROUP`, on a
//! connection of its own: at a trickle of events it makes a few dozen
//! reads and transactions a second instead of a few a millisecond (each
//! costing Redis and Postgres time the requests wait on), an idle worker
//! costs next to nothing, and the first event after a quiet spell is
//! written at once.

mod apply;
mod stream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use fred::clients::Client;
use fred::interfaces::ClientLike;
use tokio_util::sync::CancellationToken;

pub use apply::apply_batch;
pub use stream::{backlog, backlogs, lag_of, lag_seconds, read_all, Entry, Kind, StreamBacklog};

use crate::store::redis::RedisStore;
use crate::store::StoreError;

/// The consumer group every worker joins.
pub const GROUP: &str = "writebehind";

/// Most entries read per stream per batch.
pub const BATCH: u64 = 1_000;

/// Most entries one command reads. A read holds Redis, and every request
/// waiting on it, for about 2.5 µs an entry: a batch is read in a few
/// commands, so that requests slip in between.
pub const READ_CHUNK: u64 = 250;

/// Pending entries idle this long belong to a dead consumer and are claimed.
pub const CLAIM_IDLE: Duration = Duration::from_secs(30);

/// How long a caught-up worker lets new entries gather before reading
/// them: the lag it adds, against one read and one transaction a stream
/// for every few events.
pub const LINGER: Duration = Duration::from_millis(50);

/// Longest wait for new entries when there was nothing to do, on a
/// connection of the worker's own (also the longest a graceful stop waits
/// for it); the pause instead while that connection is not there.
const IDLE_WAIT: Duration = Duration::from_millis(250);
const IDLE_PAUSE: Duration = Duration::from_millis(50);
/// Pause after a failure.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// What one flush did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushOutcome {
    /// This many events were persisted and acknowledged.
    Flushed(usize),
    /// Nothing was waiting.
    Empty,
}

/// A worker: its stores and its name in the group.
pub struct Worker {
    redis: RedisStore,
    pg: Pool,
    consumer: String,
    claim_idle: Duration,
    streams: stream::Streams,
    last_claim: Option<Instant>,
    last_trim: Option<Instant>,
    /// Set when a batch could not be written: the next flushes retry this
    /// consumer's own pending entries, until none is left, before reading
    /// new ones.
    stalled: bool,
    /// Each stream's next batch, read while its previous batch was being
    /// written (reading and writing overlap, so neither waits for the
    /// other), or by the wait for new entries.
    prefetched: HashMap<Arc<str>, Vec<Entry>>,
    /// Whether the last flush read a batch of [`READ_CHUNK`] or more of some
    /// stream: the worker is behind, and the next flush reads every stream
    /// again at once.
    behind: bool,
    /// The connection that waits for new entries when there is nothing to
    /// do (opened on first need).
    waker: Option<Client>,
}

impl Worker {
    /// A worker with a unique consumer name.
    pub fn new(redis: RedisStore, pg: Pool) -> Self {
        let consumer = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        Self {
            streams: stream::Streams::default(),
            redis,
            pg,
            consumer,
            claim_idle: CLAIM_IDLE,
            last_claim: None,
            last_trim: None,
            stalled: false,
            prefetched: HashMap::new(),
            behind: false,
            waker: None,
        }
    }

    /// Sets how long entries of another consumer must be pending before
    /// this one claims them (default [`CLAIM_IDLE`]).
    pub fn claim_idle(mut self, idle: Duration) -> Self {
        self.claim_idle = idle;
        self
    }

    /// Reads one batch and stops there, as a worker killed before writing
    /// would. Returns how many entries it left pending. For crash drills.
    ///
    /// # Errors
    /// Redis failures.
    #[doc(hidden)]
    pub async fn read_and_die(mut self) -> anyhow::Result<usize> {
        self.streams.refresh(&self.redis).await?;
        Ok(self.streams.read(&self.redis, &self.consumer, false).await?.len())
    }

    /// Reads one batch (claiming abandoned entries now and then), persists
    /// it, acknowledges it.
    ///
    /// # Errors
    /// Redis or Postgres failures; what was not acknowledged stays pending
    /// and is retried.
    #[tracing::instrument(skip_all)]
    pub async fn try_flush_once(&mut self) -> anyhow::Result<FlushOutcome> {
        self.streams.refresh(&self.redis).await?;
        let started = Instant::now();
        let applied = match self.flush_pending().await {
            Ok(Some(applied)) => Ok(applied),
            Ok(None) => self.flush_streams().await,
            Err(e) => Err(e),
        }
        .inspect_err(|_| self.stall())?;
        if applied > 0 {
            record(applied, started.elapsed());
        }
        self.trim_now_and_then().await;
        Ok(match applied {
            0 => FlushOutcome::Empty,
            n => FlushOutcome::Flushed(n),
        })
    }

    /// Persists entries already delivered, if any: a dead consumer's (now
    /// and then) and, after a failure, this consumer's own.
    async fn flush_pending(&mut self) -> anyhow::Result<Option<usize>> {
        let claim = self.last_claim.is_none_or(|t| t.elapsed() >= self.claim_idle / 3);
        let mut entries = if claim {
            self.last_claim = Some(Instant::now());
            self.streams.claim(&self.redis, &self.consumer, self.claim_idle).await?
        } else {
            Vec::new()
        };
        if self.stalled {
            let own = self.streams.read(&self.redis, &self.consumer, true).await?;
            self.stalled = !own.is_empty();
            entries.extend(own);
        }
        if entries.is_empty() {
            return Ok(None);
        }
        // Stable: each stream's entries keep their order.
        entries.sort_by(|a, b| a.stream.cmp(&b.stream));
        Ok(Some(persist_by_stream(&self.redis, &self.pg, &entries).await?))
    }

    /// Persists every stream's next batch (the prefetched one, or one read
    /// now), each stream on its own, reading the batch after a full one
    /// meanwhile. Batches read by the wait for new entries came from every
    /// stream at once: then only those streams are flushed, the others
    /// had nothing.
    async fn flush_streams(&mut self) -> anyhow::Result<usize> {
        let mut prefetched = std::mem::take(&mut self.prefetched);
        let keys = match self.behind || prefetched.is_empty() {
            true => self.streams.keys(),
            false => prefetched.keys().cloned().collect(),
        };
        let flushes = keys.iter().map(|key| {
            let batch = prefetched.remove(key).unwrap_or_default();
            flush_stream(&self.redis, &self.pg, &self.consumer, key, batch)
        });
        let mut applied = 0;
        let mut failure = None;
        self.behind = false;
        for (key, flushed) in keys.iter().zip(futures_util::future::join_all(flushes).await) {
            match flushed {
                Ok(Flushed { applied: n, full, next }) => {
                    applied += n;
                    self.behind |= full;
                    if !next.is_empty() {
                        self.prefetched.insert(key.clone(), next);
                    }
                }
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        failure.map_or(Ok(applied), Err)
    }

    /// After a failure, everything read and not acknowledged is pending for
    /// this consumer, prefetched batches included: the next flushes read it
    /// all again, so keep nothing aside.
    fn stall(&mut self) {
        self.stalled = true;
        self.behind = false;
        self.prefetched.clear();
    }

    async fn trim_now_and_then(&mut self) {
        if self.last_trim.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            self.last_trim = Some(Instant::now());
            if let Err(e) = self.streams.trim(&self.redis).await {
                tracing::warn!(error = %e, "trimming streams failed");
            }
        }
    }

    /// Flushes until `stop` is cancelled, then drains what is readable once
    /// more, so a graceful shutdown leaves nothing read but unwritten.
    ///
    /// # Errors
    /// None: failures are logged, counted and retried.
    pub async fn run_until_stopped(mut self, stop: CancellationToken) -> anyhow::Result<()> {
        while !stop.is_cancelled() {
            let pause = match self.try_flush_once().await {
                Ok(FlushOutcome::Flushed(_)) if self.behind => continue,
                Ok(outcome) => match self.linger_and_wait(outcome, &stop).await {
                    Ok(()) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "waiting for new entries failed; polling");
                        self.close_waker().await;
                        IDLE_PAUSE
                    }
                },
                Err(e) => {
                    metrics::counter!("writebehind_failures_total").increment(1);
                    tracing::warn!(error.cause_chain = ?e, "write-behind flush failed; retrying");
                    ERROR_PAUSE
                }
            };
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
        self.drain(Duration::from_secs(5)).await;
        self.close_waker().await;
        Ok(())
    }

    /// Closes the waiting connection (the next wait opens a new one).
    async fn close_waker(&mut self) {
        if let Some(waker) = self.waker.take() {
            let _ = waker.quit().await;
        }
    }

    /// Once caught up: after a flush that wrote something, lets new entries
    /// gather for [`LINGER`]; then waits for them as
    /// [`Self::wait_for_entries`] does (returning at once if some are
    /// there).
    async fn linger_and_wait(&mut self, last: FlushOutcome, stop: &CancellationToken) -> Result<(), StoreError> {
        if matches!(last, FlushOutcome::Flushed(_)) {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(LINGER) => {}
            }
        }
        self.wait_for_entries().await
    }

    /// After a flush found nothing: waits up to [`IDLE_WAIT`] for new
    /// entries on any stream, on a connection of its own, and keeps what
    /// arrives as the streams' next batches (delivered to this consumer, so
    /// a crash leaves them pending like any read).
    async fn wait_for_entries(&mut self) -> Result<(), StoreError> {
        let waker = match &self.waker {
            Some(waker) => waker,
            None => self.waker.insert(self.redis.dedicated().await?),
        };
        let entries = self.streams.wait_and_read(waker, &self.consumer, IDLE_WAIT).await?;
        for entry in entries {
            self.prefetched.entry(entry.stream.clone()).or_default().push(entry);
        }
        Ok(())
    }

    /// Flushes until empty or `deadline` passes.
    pub async fn drain(&mut self, deadline: Duration) {
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            match self.try_flush_once().await {
                Ok(FlushOutcome::Flushed(_)) => {}
                Ok(FlushOutcome::Empty) => return,
                Err(e) => {
                    tracing::warn!(error.cause_chain = ?e, "final flush failed; entries stay pending");
                    return;
                }
            }
        }
    }
}

/// What one stream's share of a flush did.
struct Flushed {
    /// Events persisted and acknowledged.
    applied: usize,
    /// Whether the batch was big enough that the stream may hold more.
    full: bool,
    /// The stream's next batch, read meanwhile (only after a full one).
    next: Vec<Entry>,
}

/// One stream's share of a flush: its batch (read now if none was
/// prefetched) persisted and acknowledged, and, when the batch was full,
/// its next batch, read meanwhile. A batch of at least [`READ_CHUNK`] may
/// have more behind it (the wait for new entries reads no more than that
/// a stream); a shorter one took all the stream had: what comes after is
/// left for the next read of every stream.
async fn flush_stream(
    redis: &RedisStore,
    pg: &Pool,
    consumer: &str,
    key: &Arc<str>,
    batch: Vec<Entry>,
) -> anyhow::Result<Flushed> {
    let batch = match batch.is_empty() {
        true => stream::read_stream(redis, key, consumer, false).await?,
        false => batch,
    };
    let full = batch.len() as u64 >= READ_CHUNK;
    let (applied, next) = tokio::join!(
        async {
            match batch.is_empty() {
                true => Ok(0),
                false => persist(redis, pg, &batch).await,
            }
        },
        async {
            match full {
                true => stream::read_stream(redis, key, consumer, false).await,
                false => Ok(Vec::new()),
            }
        }
    );
    Ok(Flushed {
        applied: applied?,
        full,
        next: next?,
    })
}

/// Writes entries of one stream in one transaction, then acknowledges them.
async fn persist(redis: &RedisStore, pg: &Pool, entries: &[Entry]) -> anyhow::Result<usize> {
    let applied = apply_batch(pg, entries).await?;
    stream::ack(redis, entries).await?;
    Ok(applied)
}

/// Writes entries grouped by stream, one transaction per stream,
/// concurrently: streams touch disjoint rows (a wallet bucket's users, a
/// concert's seats), so the transactions never wait for each other and use
/// several connections.
async fn persist_by_stream(redis: &RedisStore, pg: &Pool, entries: &[Entry]) -> anyhow::Result<usize> {
    let groups = entries.chunk_by(|a, b| a.stream == b.stream);
    let persisted = futures_util::future::join_all(groups.map(|group| persist(redis, pg, group))).await;
    persisted.into_iter().sum()
}

fn record(applied: usize, took: Duration) {
    metrics::histogram!("writebehind_batch_size").record(applied as f64);
    metrics::histogram!("writebehind_batch_seconds").record(took.as_secs_f64());
    metrics::counter!("writebehind_events_total").increment(applied as u64);
}

/// Keeps the backlog and lag gauges current, every second until `stop`.
pub async fn report_until_stopped(redis: RedisStore, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while !stop.is_cancelled() {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Ok(streams) = backlogs(&redis).await {
            let total: u64 = streams.iter().map(|b| b.events).sum();
            metrics::gauge!("writebehind_backlog").set(total as f64);
            metrics::gauge!("writebehind_lag_seconds").set(lag_of(&streams));
            for b in streams {
                metrics::gauge!("writebehind_stream_backlog", "stream" => b.stream).set(b.events as f64);
            }
        }
    }
}
