//! ticketrush: a Redis-first waiting room and seat booking server for
//! concert ticket rushes.
//!
//! Layout:
//! - [`http`] — the hyper server: routing, auth, problem+json errors, handlers.
//! - [`user`], [`balance`] — users, API keys and the prepaid wallet.
//! - [`queue`] — the per-concert waiting room, its gate and its event streams.
//! - [`booking`] — the catalog, seat maps, holds, cancellation and refunds.
//! - [`payment`] — the pay saga across a concert and a wallet.
//! - [`store`] — Redis (hot state, Lua scripts) and Postgres (record).
//! - [`writebehind`] — projects the Redis event streams into Postgres.
//! - [`sweeper`] — admission, hold expiry and saga recovery in the background.
//! - [`cli`] — the `ticketrush` command line: serve, worker, migrate, seed,
//!   verify, rebuild.
//! - [`config`], [`telemetry`], [`shutdown`], [`time`] — the plumbing.

pub mod balance;
pub mod booking;
pub mod cli;
pub mod config;
pub mod http;
pub mod payment;
pub mod queue;
pub mod reconcile;
pub mod shutdown;
pub mod store;
pub mod sweeper;
pub mod telemetry;
pub mod time;
pub mod user;
pub mod writebehind;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::http::AppState;
use crate::store::postgres;
use crate::store::redis::RedisStore;

/// Which background tasks a server runs beside HTTP.
#[derive(Debug, Clone, Copy)]
pub struct Background {
    /// The write-behind worker (else run `ticketrush worker` apart).
    pub writebehind: bool,
    /// The sweeper (admission, hold expiry, saga recovery).
    pub sweeper: bool,
}

impl Default for Background {
    fn default() -> Self {
        Self {
            writebehind: true,
            sweeper: true,
        }
    }
}

/// Connects the stores and builds the shared state. Postgres may be down:
/// the server starts anyway and the write-behind catches up later.
///
/// # Errors
/// A malformed `REDIS_URL` or `DATABASE_URL`.
pub async fn build_state(settings: Settings) -> anyhow::Result<AppState> {
    let redis = RedisStore::connect(&settings.redis)
        .await
        .context("connecting to redis")?;
    let pg = postgres::connect(&settings.postgres)?;
    if let Err(e) = redis.load_scripts().await {
        tracing::warn!(error = %e, "could not load scripts yet; they load on first use");
    }
    let hub = queue::hub::QueueHub::new(redis.clone(), settings.queue.clone());
    let status = queue::StatusReader::new(redis.clone(), settings.queue.clone());
    let holds = booking::Holds::new(redis.clone());
    Ok(AppState {
        settings: Arc::new(settings),
        redis,
        pg,
        auth: user::auth_cache(),
        catalog: booking::Catalog::new(),
        hub,
        status,
        holds,
        metrics: telemetry::metrics_handle(),
        limits: http::rate::RateLimits::new(),
        shutdown: CancellationToken::new(),
    })
}

/// Serves `listener` with the background tasks of `background` until
/// `shutdown` completes; then stops accepting, drains requests, stops the
/// sweeper and lets the worker flush what it read.
///
/// # Errors
/// Startup failures; a background task that dies is logged and ends the
/// server with an error.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    background: Background,
) -> anyhow::Result<()> {
    let state = build_state(settings).await?;
    match store::postgres::migrate::run(&state.pg).await {
        Ok(n) => tracing::info!(applied = n, "postgres schema is current"),
        Err(e) => tracing::warn!(error = %e, "could not migrate postgres now; the write-behind waits for it"),
    }
    run_with_state(state, listener, shutdown, background).await
}

/// [`run`] on an already built state.
///
/// # Errors
/// As [`run`].
pub async fn run_with_state(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    background: Background,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    if background.writebehind {
        let worker = writebehind::Worker::new(state.redis.clone(), state.pg.clone());
        tasks.spawn(worker.run_until_stopped(stop.clone()));
    }
    if background.sweeper {
        let (redis, settings, stop) = (state.redis.clone(), state.settings.clone(), stop.clone());
        tasks.spawn(async move {
            sweeper::run_until_stopped(redis, settings, stop).await;
            Ok(())
        });
    }
    tasks.spawn({
        let (redis, stop) = (state.redis.clone(), stop.clone());
        async move {
            writebehind::report_until_stopped(redis, stop).await;
            Ok(())
        }
    });
    tasks.spawn({
        let (limits, stop) = (state.limits.clone(), stop.clone());
        async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            while !stop.is_cancelled() {
                tokio::select! {
                    () = stop.cancelled() => {}
                    _ = tick.tick() => limits.forget_quiet(),
                }
            }
            Ok(())
        }
    });
    tracing::info!(addr = %listener.local_addr()?, "serving");
    let redis = state.redis.clone();
    let outcome = tokio::select! {
        served = http::serve(listener, state, shutdown) => served.context("http server"),
        Some(died) = tasks.join_next() => {
            let why = match died {
                Ok(Ok(())) => anyhow::anyhow!("a background task stopped"),
                Ok(Err(e)) => e.context("a background task failed"),
                Err(e) => anyhow::Error::new(e).context("a background task panicked"),
            };
            Err(why)
        }
    };
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    redis.quit().await;
    outcome
}
