//! One function per route (`verb_noun`), each linking its API.md section.
//! Handlers parse, authenticate, call the domain and render; nothing else.

mod booking;
mod health;
mod payment;
mod queue;
mod user;

use futures_util::FutureExt;
use http::{Request, Response};
use hyper::body::Incoming;

use super::{ApiError, AppState, Body, Route};

pub use queue::stream_queue_events;

/// Calls the handler of `route`.
///
/// Each handler's future is boxed at its own size. Unboxed, every request's
/// future would take the size of the largest handler's (kilobytes: one Redis
/// command's future alone takes about 5 KB), to be copied whole into its box
/// for each request.
pub async fn dispatch(
    state: &AppState,
    route: Route,
    param: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    match route {
        Route::Healthz => Ok(health::get_health()),
        Route::Readyz => Ok(health::get_ready(state).boxed().await),
        Route::Metrics => Ok(health::get_metrics(state)),
        Route::OpenApi => Ok(health::get_openapi()),
        Route::CreateUser => user::create_user(state, req).boxed().await,
        Route::GetBalance => user::get_balance(state, req, param).boxed().await,
        Route::ChargeBalance => user::charge_balance(state, req, param).boxed().await,
        Route::ListBalanceHistory => user::list_balance_history(state, req, param).boxed().await,
        Route::ListUserReservations => booking::list_user_reservations(state, req, param).boxed().await,
        Route::IssueQueueToken => queue::issue_queue_token(state, req).boxed().await,
        Route::GetQueueToken => queue::get_queue_token(state, req, param).boxed().await,
        Route::LeaveQueue => queue::leave_queue(state, req, param).boxed().await,
        Route::StreamQueueEvents => queue::stream_queue_events(state, req.headers(), param).boxed().await,
        Route::CreateConcert => booking::create_concert(state, req).boxed().await,
        Route::ListConcerts => booking::list_concerts(state).boxed().await,
        Route::GetConcert => booking::get_concert(state, param).boxed().await,
        Route::ListAvailableSchedules => booking::list_available_schedules(state, req, param).boxed().await,
        Route::GetSeatMap => booking::get_seat_map(state, req, param).boxed().await,
        Route::CreateReservation => booking::create_reservation(state, req).boxed().await,
        Route::GetReservation => booking::get_reservation(state, req, param).boxed().await,
        Route::CancelReservation => booking::cancel_reservation(state, req, param).boxed().await,
        Route::CreatePayment => payment::create_payment(state, req).boxed().await,
        Route::GetPayment => payment::get_payment(state, req, param).boxed().await,
    }
}

/// A positive integer id from the path.
fn parse_id(param: &str) -> Result<i64, ApiError> {
    param
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::Malformed(format!("'{param}' is not a valid id")))
}

/// A UUID from the path or a body.
fn parse_uuid(text: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(text).map_err(|_| ApiError::Malformed(format!("'{text}' is not a valid id")))
}

/// The value of one query parameter (no percent-decoding needed for the
/// values this API takes: integers and upper-case words).
fn query<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `limit` query parameter within `1..=max`, `default` when absent.
fn limit(req: &Request<Incoming>, default: usize, max: usize) -> Result<usize, ApiError> {
    match query(req, "limit") {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::Malformed(format!("limit must be an integer from 1 to {max}"))),
    }
}
