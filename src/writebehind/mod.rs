//! The write-behind worker: Redis event streams → Postgres.
//!
//! Every stream is read with the consumer group [`GROUP`]. A batch (entries
//! of many streams) is applied in one Postgres transaction with idempotent
//! upserts ([`apply`]), then acknowledged, so a crash anywhere loses nothing:
//! unacknowledged entries stay pending and are claimed again, by this
//! worker after a restart or by another one ([`CLAIM_IDLE`]). Replays change
//! nothing. Acknowledged entries are trimmed from the streams.

mod apply;
mod stream;

use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;

pub use apply::apply_batch;
pub use stream::{backlog, backlog_by_stream, lag_seconds, read_all, Entry};

use crate::store::redis::RedisStore;

/// The consumer group every worker joins.
pub const GROUP: &str = "writebehind";

/// Most entries read per stream per batch.
pub const BATCH: u64 = 1_000;

/// Pending entries idle this long belong to a dead consumer and are claimed.
pub const CLAIM_IDLE: Duration = Duration::from_secs(30);

/// Pause when there was nothing to do, and after a failure.
const IDLE_PAUSE: Duration = Duration::from_millis(50);
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
    /// Set when a batch could not be written: the next flush retries this
    /// consumer's own pending entries before reading new ones.
    stalled: bool,
    /// Entries read while the previous batch was being written (reading
    /// and writing overlap, so neither waits for the other).
    prefetched: Vec<Entry>,
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
            prefetched: Vec::new(),
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
    /// Redis or Postgres failures; the batch then stays pending and is
    /// retried.
    #[tracing::instrument(skip_all)]
    pub async fn try_flush_once(&mut self) -> anyhow::Result<FlushOutcome> {
        self.streams.refresh(&self.redis).await?;
        let claim = self.last_claim.is_none_or(|t| t.elapsed() >= self.claim_idle / 3);
        let mut entries = if claim {
            self.last_claim = Some(Instant::now());
            self.streams.claim(&self.redis, &self.consumer, self.claim_idle).await?
        } else {
            Vec::new()
        };
        if self.stalled {
            entries.extend(self.streams.read(&self.redis, &self.consumer, true).await?);
        } else {
            entries.append(&mut self.prefetched);
        }
        if entries.is_empty() {
            self.stalled = false;
            entries.extend(self.streams.read(&self.redis, &self.consumer, false).await?);
        }
        if entries.is_empty() {
            self.trim_now_and_then().await;
            return Ok(FlushOutcome::Empty);
        }
        let started = Instant::now();
        self.stalled = true;
        // Write this batch while the next one is read.
        let (applied, next) = tokio::join!(
            apply_by_stream(&self.pg, &entries),
            self.streams.read(&self.redis, &self.consumer, false)
        );
        // On failure everything read stays pending for this consumer and the
        // stalled path reads it again; keep nothing aside.
        let applied = applied?;
        self.prefetched = next.unwrap_or_default();
        stream::ack(&self.redis, &entries).await?;
        self.stalled = false;
        record(applied, started.elapsed());
        self.trim_now_and_then().await;
        Ok(FlushOutcome::Flushed(applied))
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
                Ok(FlushOutcome::Flushed(_)) => continue,
                Ok(FlushOutcome::Empty) => IDLE_PAUSE,
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

/// Writes a batch as one transaction per stream, concurrently: streams
/// touch disjoint rows (a wallet bucket's users, a concert's seats), so the
/// transactions never wait for each other and use several connections.
async fn apply_by_stream(pg: &Pool, entries: &[Entry]) -> anyhow::Result<usize> {
    let mut groups: Vec<(&str, Vec<Entry>)> = Vec::new();
    for e in entries {
        match groups.iter_mut().find(|(s, _)| *s == &*e.stream) {
            Some((_, group)) => group.push(e.clone()),
            None => groups.push((&e.stream, vec![e.clone()])),
        }
    }
    let results = futures_util::future::join_all(groups.iter().map(|(_, group)| apply_batch(pg, group))).await;
    results.into_iter().sum()
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
        if let Ok(streams) = backlog_by_stream(&redis).await {
            let total: u64 = streams.iter().map(|(_, n)| n).sum();
            metrics::gauge!("writebehind_backlog").set(total as f64);
            for (stream, n) in streams {
                metrics::gauge!("writebehind_stream_backlog", "stream" => stream).set(n as f64);
            }
        }
        if let Ok(lag) = lag_seconds(&redis).await {
            metrics::gauge!("writebehind_lag_seconds").set(lag);
        }
    }
}
