//! The waiting room (API.md "Waiting queue").

use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use crate::http::body::{self, read_json, Body};
use crate::http::{auth, ApiError, AppState};
use crate::queue::{self, QueueError, QueueToken};

#[derive(Deserialize)]
struct IssueToken {
    concert_id: i64,
}

fn token(param: &str) -> Result<QueueToken, ApiError> {
    // A string that cannot be a token cannot name one either.
    QueueToken::parse(param).ok_or(ApiError::Queue(QueueError::TokenNotFound))
}

/// API.md "Waiting queue": `POST /v1/queue/tokens` — 201 new, 200 existing.
#[tracing::instrument(skip_all)]
pub async fn issue_queue_token(state: &AppState, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let user = auth::user(state, req.headers()).await?;
    let IssueToken { concert_id } = read_json(req).await?;
    if concert_id <= 0 || state.catalog.concert(&state.redis, concert_id).await?.is_none() {
        return Err(QueueError::ConcertNotFound.into());
    }
    let (view, created) = queue::issue_token(&state.redis, &state.settings.queue, user, concert_id).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(body::json(status, &view))
}

/// API.md "Waiting queue": `GET /v1/queue/tokens/{token}`.
pub async fn get_queue_token(
    state: &AppState,
    req: Request<Incoming>,
    param: &str,
) -> Result<Response<Body>, ApiError> {
    let (token, user) = poller(state, req.headers(), param).await?;
    let view = state.status.get(token, user).await?;
    Ok(body::json(StatusCode::OK, &view))
}

/// API.md "Waiting queue": `DELETE /v1/queue/tokens/{token}`.
pub async fn leave_queue(state: &AppState, req: Request<Incoming>, param: &str) -> Result<Response<Body>, ApiError> {
    let user = auth::user(state, req.headers()).await?;
    queue::leave_queue(&state.redis, &state.settings.queue, &token(param)?, user).await?;
    Ok(body::empty(StatusCode::NO_CONTENT))
}

/// API.md "Waiting queue": `GET /v1/queue/tokens/{token}/events` — SSE.
///
/// Takes the request's headers alone: hyper's route and the event streams
/// served beside hyper (`http::events`) both answer through this function.
pub async fn stream_queue_events(
    state: &AppState,
    headers: &HeaderMap,
    param: &str,
) -> Result<Response<Body>, ApiError> {
    let (token, user) = poller(state, headers, param).await?;
    let first = state.status.get(token.clone(), user).await?;
    Ok(state.hub.stream(token, first, state.shutdown.clone()))
}

/// The token of a status read and the user its key names, if any, once the
/// read is counted against the token's poll limit.
async fn poller(state: &AppState, headers: &HeaderMap, param: &str) -> Result<(QueueToken, Option<i64>), ApiError> {
    let token = token(param)?;
    state.limits.poll(token.key()).map_err(ApiError::RateLimited)?;
    let user = auth::optional_user(state, headers).await?;
    Ok((token, user))
}
