//! The ceiling of the hold endpoint: a bare hyper 1 server whose one route
//! reads the request body, runs one `EVALSHA` of a trivial script and answers
//! a small JSON document. Same runtime, HTTP settings and Redis pool shape as
//! `ticketrush serve`, without routing, auth, parsing, metrics or real work,
//! so the ratio of the real endpoint to this one is what our code costs.
//!
//!   BIND_ADDR=127.0.0.1:8090 REDIS_URL=redis://127.0.0.1:6379 \
//!     cargo run --release --example ceiling
//!
//! `loadtest/run.sh` starts it beside the server and drives both with the
//! same requests (see BENCHMARKS.md).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fred::clients::Pool;
use fred::interfaces::ClientLike;
use fred::types::scripts::Script;
use fred::types::Value;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use mimalloc::MiMalloc;
use tokio::net::TcpListener;

/// The server's allocator, so the two differ only in what the server does.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// The trivial script: one key, one tiny reply. `loadtest/run.sh` runs the
/// same text under `redis-benchmark` for the Redis-only ceiling.
const TRIVIAL_LUA: &str = "return KEYS[1]";

/// Redis connections, as in the server (`store/redis/mod.rs`).
const POOL_SIZE: usize = 4;

/// Largest request body read, as in the server.
const MAX_BODY_BYTES: usize = 64 * 1024;

struct State {
    pool: Pool,
    script: Script,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bind: SocketAddr = env_or("BIND_ADDR", "127.0.0.1:8090").parse()?;
    let redis_url = env_or("REDIS_URL", "redis://127.0.0.1:6379");
    let config = fred::types::config::Config::from_url(&redis_url)?;
    let pool = fred::types::Builder::from_config(config)
        .with_performance_config(|p| p.default_command_timeout = Duration::from_secs(5))
        .build_pool(POOL_SIZE)?;
    pool.init().await?;
    let script = Script::from_lua(TRIVIAL_LUA);
    script.load(pool.next()).await?;
    let state = Arc::new(State { pool, script });

    let listener = TcpListener::bind(bind).await?;
    println!("ceiling listening on http://{bind}");
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .keep_alive(true);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&state);
                let service = service_fn(move |req| {
                    let state = Arc::clone(&state);
                    Box::pin(async move { Ok::<_, Infallible>(handle(&state, req).await) })
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                tokio::spawn(connection);
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    Ok(())
}

/// Reads the body, runs the script once, answers `{"ok":true}` (or a 500).
async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let read = Limited::new(req.into_body(), MAX_BODY_BYTES).collect().await;
    let ran: Result<Value, _> = state
        .script
        .evalsha_with_reload(state.pool.next(), "ceiling", Vec::<Value>::new())
        .await;
    let (status, body) = match (read, ran) {
        (Ok(_), Ok(_)) => (StatusCode::OK, &br#"{"ok":true}"#[..]),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, &br#"{"ok":false}"#[..]),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}
