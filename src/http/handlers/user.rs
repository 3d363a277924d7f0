//! Users and wallet (API.md "Users and wallet").

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use super::{limit, parse_id};
use crate::balance::{self, ChargeAmount, HistoryEntry, HISTORY_MAX};
use crate::http::body::{self, read_json, Body};
use crate::http::{auth, ApiError, AppState};
use crate::user::{self as users, UserName};

#[derive(Deserialize)]
struct CreateUser {
    name: String,
}

#[derive(Deserialize)]
struct Charge {
    amount: i64,
}

#[derive(Serialize)]
struct History {
    entries: Vec<HistoryEntry>,
}

/// API.md "Users and wallet": `POST /v1/users`.
#[tracing::instrument(skip_all)]
pub async fn create_user(state: &AppState, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let CreateUser { name } = read_json(req).await?;
    let user = users::create_user(&state.redis, UserName::parse(name)?).await?;
    Ok(body::json(StatusCode::CREATED, &user))
}

/// API.md "Users and wallet": `GET /v1/users/{id}/balance`.
pub async fn get_balance(state: &AppState, req: Request<Incoming>, param: &str) -> Result<Response<Body>, ApiError> {
    let user = auth::owner(state, req.headers(), parse_id(param)?).await?;
    Ok(body::json(StatusCode::OK, &balance::balance(&state.redis, user).await?))
}

/// API.md "Users and wallet": `POST /v1/users/{id}/balance/charge`.
#[tracing::instrument(skip_all)]
pub async fn charge_balance(state: &AppState, req: Request<Incoming>, param: &str) -> Result<Response<Body>, ApiError> {
    let user = auth::owner(state, req.headers(), parse_id(param)?).await?;
    let key = auth::idempotency_key(req.headers())?;
    let Charge { amount } = read_json(req).await?;
    let answer = balance::charge(&state.redis, user, ChargeAmount::parse(amount)?, &key).await?;
    Ok(body::raw_json(StatusCode::OK, answer))
}

/// API.md "Users and wallet": `GET /v1/users/{id}/balance/history`.
pub async fn list_balance_history(
    state: &AppState,
    req: Request<Incoming>,
    param: &str,
) -> Result<Response<Body>, ApiError> {
    let user = auth::owner(state, req.headers(), parse_id(param)?).await?;
    let limit = limit(&req, 50, HISTORY_MAX)?;
    let entries = balance::history(&state.redis, user, limit).await?;
    Ok(body::json(StatusCode::OK, &History { entries }))
}
