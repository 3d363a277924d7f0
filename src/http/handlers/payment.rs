//! Payments (API.md "Payments").

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::parse_uuid;
use crate::http::body::{self, read_json, Body};
use crate::http::{auth, ApiError, AppState};
use crate::payment::{self, PaymentError};

#[derive(Deserialize)]
struct PayRequest {
    reservation_id: String,
}

/// API.md "Payments": `POST /v1/payments` (gated).
#[tracing::instrument(skip_all)]
pub async fn create_payment(state: &AppState, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let user = auth::user(state, req.headers()).await?;
    let token = auth::queue_token(req.headers())?;
    let key = auth::idempotency_key(req.headers())?;
    let PayRequest { reservation_id } = read_json(req).await?;
    let reservation_id = parse_uuid(&reservation_id)?;
    let paid = payment::pay(&state.redis, &state.settings.queue, &token, user, &reservation_id, &key).await?;
    Ok(body::json(StatusCode::CREATED, &paid.view()))
}

/// API.md "Payments": `GET /v1/payments/{id}`.
pub async fn get_payment(state: &AppState, req: Request<Incoming>, param: &str) -> Result<Response<Body>, ApiError> {
    let user = auth::user(state, req.headers()).await?;
    let id = parse_uuid(param)?;
    let found = payment::find_payment(&state.redis, user, &id)
        .await?
        .ok_or(PaymentError::PaymentNotFound)?;
    Ok(body::json(StatusCode::OK, &found.view()))
}
