//! Operations: health, readiness, metrics, the OpenAPI document.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

use crate::http::body::{self, Body};
use crate::http::AppState;
use crate::store::postgres;
use crate::writebehind;

/// The OpenAPI 3.1 document of this API, kept true by a test.
pub const OPENAPI: &str = include_str!("../openapi.json");

#[derive(Serialize)]
struct Ready {
    redis: &'static str,
    postgres: &'static str,
    writebehind_backlog: u64,
}

/// API.md "Operations": `GET /healthz`.
pub fn get_health() -> Response<Body> {
    body::raw_json(StatusCode::OK, &br#"{"status":"ok"}"#[..])
}

/// API.md "Operations": `GET /readyz` — 200 while Redis answers.
pub async fn get_ready(state: &AppState) -> Response<Body> {
    let (redis_up, pg_up) = tokio::join!(state.redis.is_up(), postgres::is_up(&state.pg));
    let backlog = if redis_up {
        writebehind::backlog(&state.redis).await.unwrap_or(0)
    } else {
        0
    };
    let ready = Ready {
        redis: if redis_up { "up" } else { "down" },
        postgres: if pg_up { "up" } else { "down" },
        writebehind_backlog: backlog,
    };
    let status = if redis_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    body::json(status, &ready)
}

/// API.md "Operations": `GET /metrics` — Prometheus text.
pub fn get_metrics(state: &AppState) -> Response<Body> {
    body::with_type(
        StatusCode::OK,
        Bytes::from(state.metrics.render()),
        HeaderValue::from_static("text/plain; version=0.0.4"),
    )
}

/// API.md "Operations": `GET /openapi.json`.
pub fn get_openapi() -> Response<Body> {
    body::raw_json(StatusCode::OK, Bytes::from_static(OPENAPI.as_bytes()))
}
