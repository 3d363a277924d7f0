//! Concerts and reservations (API.md "Concerts", "Reservations").

use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use super::{limit, parse_id, parse_uuid, query};
use std::sync::Arc;

use crate::booking::{self, BookingError, Concert, NewHold, ReservationView, Schedule, SeatFilter, SeatSelection};
use crate::http::body::{self, read_json, Body};
use crate::http::{auth, ApiError, AppState};
use crate::queue::{self, QueueToken};

#[derive(Deserialize)]
struct HoldRequest {
    schedule_id: i64,
    seat_numbers: Vec<i64>,
}

#[derive(Serialize)]
struct ConcertList<'a> {
    concerts: Vec<booking::catalog::ConcertSummary<'a>>,
}

#[derive(Serialize)]
struct AvailableSchedules {
    concert_id: i64,
    schedules: Vec<booking::catalog::ScheduleView>,
}

#[derive(Serialize)]
struct ReservationList {
    reservations: Vec<ReservationView>,
}

/// Authenticates a gated request: the user, and the queue token, which
/// must be for `concert_id` (the rest of the gate runs in the script).
async fn gated(state: &AppState, headers: &HeaderMap, concert_id: i64) -> Result<(i64, QueueToken), ApiError> {
    let user = auth::user(state, headers).await?;
    let token = auth::queue_token(headers)?;
    queue::check_concert(&state.redis, &token, concert_id).await?;
    Ok((user, token))
}

/// A schedule and the concert it belongs to.
async fn schedule_of(state: &AppState, schedule_id: i64) -> Result<(Arc<Concert>, Schedule), ApiError> {
    let concert = state
        .catalog
        .concert_of_schedule(&state.redis, schedule_id)
        .await?
        .ok_or(BookingError::ScheduleNotFound)?;
    let schedule = concert
        .schedule(schedule_id)
        .ok_or(BookingError::ScheduleNotFound)?
        .clone();
    Ok((concert, schedule))
}

/// API.md "Concerts": `POST /v1/admin/concerts`.
#[tracing::instrument(skip_all)]
pub async fn create_concert(state: &AppState, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    auth::admin(state, req.headers())?;
    let new: booking::NewConcert = read_json(req).await?;
    let concert = booking::catalog::create_concert(&state.redis, new).await?;
    Ok(body::json(StatusCode::CREATED, &concert.detail()))
}

/// API.md "Concerts": `GET /v1/concerts`.
pub async fn list_concerts(state: &AppState) -> Result<Response<Body>, ApiError> {
    let concerts = state.catalog.list(&state.redis).await?;
    let list = ConcertList {
        concerts: concerts.iter().map(|c| c.summary()).collect(),
    };
    Ok(body::json(StatusCode::OK, &list))
}

/// API.md "Concerts": `GET /v1/concerts/{id}`.
pub async fn get_concert(state: &AppState, param: &str) -> Result<Response<Body>, ApiError> {
    let concert = state
        .catalog
        .concert(&state.redis, parse_id(param)?)
        .await?
        .ok_or(BookingError::ConcertNotFound)?;
    Ok(body::json(StatusCode::OK, &concert.detail()))
}

/// API.md "Concerts": `GET /v1/concerts/{id}/schedules` (gated).
pub async fn list_available_schedules(
    state: &AppState,
    req: Request<Incoming>,
    param: &str,
) -> Result<Response<Body>, ApiError> {
    let concert_id = parse_id(param)?;
    let concert = state
        .catalog
        .concert(&state.redis, concert_id)
        .await?
        .ok_or(BookingError::ConcertNotFound)?;
    let (user, token) = gated(state, req.headers(), concert_id).await?;
    let open = booking::available_schedules(&state.redis, &token, user, &concert).await?;
    let list = AvailableSchedules {
        concert_id,
        schedules: open.into_iter().map(|(s, available)| s.view(Some(available))).collect(),
    };
    Ok(body::json(StatusCode::OK, &list))
}

/// API.md "Concerts": `GET /v1/schedules/{id}/seats[?status=…]` (gated).
pub async fn get_seat_map(state: &AppState, req: Request<Incoming>, param: &str) -> Result<Response<Body>, ApiError> {
    let schedule_id = parse_id(param)?;
    let filter = SeatFilter::parse(query(&req, "status"))
        .ok_or_else(|| ApiError::Malformed("status must be AVAILABLE, HELD or SOLD".into()))?;
    let (concert, schedule) = schedule_of(state, schedule_id).await?;
    let (user, token) = gated(state, req.headers(), concert.id).await?;
    let map = booking::seat_map(&state.redis, &token, user, &schedule, filter).await?;
    Ok(body::raw_json(StatusCode::OK, map))
}

/// API.md "Reservations": `POST /v1/reservations` (gated).
#[tracing::instrument(skip_all)]
pub async fn create_reservation(state: &AppState, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let user = auth::user(state, req.headers()).await?;
    let token = auth::queue_token(req.headers())?;
    let key = auth::idempotency_key(req.headers())?;
    let HoldRequest {
        schedule_id,
        seat_numbers,
    } = read_json(req).await?;
    let (concert, schedule) = schedule_of(state, schedule_id).await?;
    queue::check_concert(&state.redis, &token, concert.id).await?;
    let seats = SeatSelection::parse(seat_numbers, &schedule)?;
    let hold = NewHold::new(&state.settings.booking, token, user, &schedule, seats, &key);
    let held = state.holds.place(hold).await?;
    Ok(body::raw_json(StatusCode::CREATED, held))
}

/// API.md "Reservations": `GET /v1/reservations/{id}`.
pub async fn get_reservation(
    state: &AppState,
    req: Request<Incoming>,
    param: &str,
) -> Result<Response<Body>, ApiError> {
    let user = auth::user(state, req.headers()).await?;
    let id = parse_uuid(param)?;
    let found = booking::find_reservation(&state.redis, user, &id)
        .await?
        .ok_or(BookingError::ReservationNotFound)?;
    Ok(body::json(StatusCode::OK, &found.view()))
}

/// API.md "Reservations": `GET /v1/users/{id}/reservations`.
pub async fn list_user_reservations(
    state: &AppState,
    req: Request<Incoming>,
    param: &str,
) -> Result<Response<Body>, ApiError> {
    let user = auth::owner(state, req.headers(), parse_id(param)?).await?;
    let limit = limit(&req, 100, 1000)?;
    let found = booking::list_user_reservations(&state.redis, user, limit).await?;
    let list = ReservationList {
        reservations: found.into_iter().map(|r| r.view()).collect(),
    };
    Ok(body::json(StatusCode::OK, &list))
}

/// API.md "Reservations": `DELETE /v1/reservations/{id}` — cancel or refund.
#[tracing::instrument(skip_all)]
pub async fn cancel_reservation(
    state: &AppState,
    req: Request<Incoming>,
    param: &str,
) -> Result<Response<Body>, ApiError> {
    let user = auth::user(state, req.headers()).await?;
    let id = parse_uuid(param)?;
    let done = booking::cancel_reservation(&state.redis, user, &id).await?;
    Ok(body::json(StatusCode::OK, &done.view()))
}
