//! The HTTP server on bare hyper 1: accept loop, graceful shutdown, request
//! metrics, and the translation between requests and the domain. Queue
//! event streams asked for on a fresh connection are written beside hyper
//! ([`events`]), for memory.

mod auth;
pub mod body;
pub mod error;
mod events;
mod handlers;
pub mod rate;
mod rewind;
pub mod router;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub use body::Body;
pub use error::ApiError;
pub use router::{Route, ROUTES};

use crate::booking::Catalog;
use crate::booking::Holds;
use crate::config::Settings;
use crate::queue::hub::QueueHub;
use crate::queue::StatusReader;
use crate::store::redis::RedisStore;
use crate::user::AuthCache;

/// How long in-flight requests may take to finish once shutdown begins.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// How long a client may take to send its request headers (counted from
/// the connection's start for its first request, event streams included).
/// In hyper this also bounds the wait for the next request on a kept-alive
/// connection, so it is the idle timeout too: kept above the usual client
/// pool idle time, so that a client rarely reuses a connection the server
/// is just closing.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(75);

/// Pending connections the kernel queues for us (capped by `somaxconn`):
/// a rush opens thousands at once.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` with a listen backlog sized for a rush.
///
/// # Errors
/// The address cannot be bound.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Everything a handler needs. Cheap to clone (shared pointers inside).
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub redis: RedisStore,
    pub pg: Pool,
    /// API key hash → user id; keys never change owner, so entries never go stale.
    pub auth: AuthCache,
    /// Concerts and schedules, immutable once created.
    pub catalog: Catalog,
    /// The event streams of this instance's waiting rooms.
    pub hub: QueueHub,
    /// Token status reads, merged per concert into one script call.
    pub status: StatusReader,
    /// Seat holds, merged per concert into one script call.
    pub holds: Holds,
    pub metrics: PrometheusHandle,
    /// Per-client rate limits of this instance.
    pub limits: rate::RateLimits,
    /// Cancelled when shutdown begins: long-lived responses (event streams)
    /// end on it, so that draining does not wait for them; connections not
    /// yet routed close on it.
    pub shutdown: CancellationToken,
}

/// Serves `listener` until `shutdown` completes, then stops accepting and
/// drains in-flight requests for at most [`DRAIN_DEADLINE`].
///
/// # Errors
/// None in practice: accept errors are logged and the loop goes on.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    // Every connection holds a watcher, hyper's and event streams alike, so
    // the drain waits for both; event streams end on `state.shutdown`.
    let graceful = GracefulShutdown::new();
    // HTTP/1.1 only: every client of the API speaks it, and the protocol
    // sniffing of hyper-util's `auto` builder doubles each connection's read
    // buffer, which ten thousand open event streams feel.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    // Shared, not cloned into each connection: a connection's task keeps
    // what it holds for its whole life.
    let builder = Arc::new(builder);
    let state = Arc::new(state);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off a moment.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                // The connection's own task reads from the client, never this loop.
                let connection = serve_connection(stream, state.clone(), builder.clone(), graceful.watcher());
                tokio::spawn(connection);
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    state.shutdown.cancel();
    tracing::info!("stopped accepting; draining connections");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(DRAIN_DEADLINE) => tracing::warn!("drain deadline passed; closing"),
    }
    Ok(())
}

/// Serves one connection: an event stream asked for by its first request is
/// written by [`events`], anything else is served by hyper. `watcher` lives
/// as long as the connection, so that the drain waits for it.
async fn serve_connection(stream: TcpStream, state: Arc<AppState>, builder: Arc<http1::Builder>, watcher: Watcher) {
    // Events and answers are small and go out at once.
    let _ = stream.set_nodelay(true);
    let deadline = tokio::time::Instant::now() + HEADER_READ_TIMEOUT;
    // Boxed, as hyper's connection below: reading and answering a request
    // takes kilobytes, needed only until it is answered, and a connection
    // handed to hyper keeps this task for its whole life.
    let routed = Box::pin(events::answer(stream, &state, deadline)).await;
    match routed {
        // A task of its own, sized for the stream alone; this one ends.
        events::Routed::Stream(writer) => {
            tokio::spawn(writer.watched_by(watcher));
        }
        events::Routed::Hyper(io) => Box::pin(serve_hyper(io, state, &builder, watcher)).await,
        events::Routed::Closed => {}
    }
}

/// Serves a connection with hyper until the client or shutdown closes it.
async fn serve_hyper(io: rewind::Rewind, state: Arc<AppState>, builder: &http1::Builder, watcher: Watcher) {
    // Not boxed: hyper keeps a connection's service future in place for the
    // life of the connection, which is small, for each handler's own future
    // is boxed while it runs (`handlers::dispatch`).
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(&state, req).await) }
    });
    let connection = watcher.watch(builder.serve_connection(TokioIo::new(io), service));
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Routes one request and records its count and latency.
async fn handle(state: &AppState, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let (response, label) = match router::find(&method, req.uri().path()) {
        router::Match::Found(route, pattern, param) => {
            let response = handlers::dispatch(state, route, &param, req)
                .await
                .unwrap_or_else(ApiError::into_response);
            (response, pattern)
        }
        router::Match::MethodNotAllowed(pattern) => (ApiError::MethodNotAllowed.into_response(), pattern),
        router::Match::NotFound => (ApiError::NotFound.into_response(), "unmatched"),
    };
    record(label, &method, response.status(), started);
    response
}

/// Counts one answered request and the time its handler took to answer,
/// labelled by route pattern, method and status; hyper's requests and the
/// event streams of [`events`] alike.
fn record(route: &str, method: &Method, status: StatusCode, started: Instant) {
    let labels = [
        ("route", route.to_owned()),
        ("method", method.as_str().to_owned()),
        ("status", status.as_str().to_owned()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
}
