//! The one error type of the HTTP layer and its problem+json rendering
//! (RFC 9457). Every domain and store error converts into it, and
//! [`ApiError::problem`] alone decides the status, code and detail.

use std::borrow::Cow;

use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

use super::body::{self, Body};
use crate::balance::BalanceError;
use crate::booking::BookingError;
use crate::payment::PaymentError;
use crate::queue::{GateCheckError, GateError, QueueError};
use crate::store::StoreError;
use crate::user::UserError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Malformed(String),
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body over 64 KiB")]
    PayloadTooLarge,
    #[error("missing or unknown credentials")]
    Unauthenticated,
    #[error("not yours")]
    Forbidden,
    #[error("too many requests; retry in {0:?}")]
    RateLimited(std::time::Duration),
    #[error(transparent)]
    Gate(#[from] GateError),
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Balance(#[from] BalanceError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Booking(#[from] BookingError),
    #[error(transparent)]
    Payment(#[from] PaymentError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The body of a problem response.
#[derive(Debug, Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    code: &'static str,
    detail: &'a str,
}

type Parts = (StatusCode, &'static str, Cow<'static, str>);

impl ApiError {
    /// Status, stable code and human detail.
    pub fn problem(&self) -> Parts {
        use StatusCode as S;
        match self {
            Self::Malformed(d) => (S::BAD_REQUEST, "MALFORMED_REQUEST", d.clone().into()),
            Self::NotFound => (S::NOT_FOUND, "NOT_FOUND", "no such route".into()),
            Self::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "method not allowed on this route".into(),
            ),
            Self::PayloadTooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                "request body over 64 KiB".into(),
            ),
            Self::Unauthenticated => (
                S::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "missing or unknown credentials".into(),
            ),
            Self::Forbidden => (
                S::FORBIDDEN,
                "FORBIDDEN",
                "this resource belongs to another user".into(),
            ),
            Self::RateLimited(wait) => (
                S::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                format!(
                    "too many requests for this token; retry in {} ms",
                    wait.as_millis().max(1)
                )
                .into(),
            ),
            Self::Gate(e) => gate(e),
            Self::User(e) => user(e),
            Self::Balance(e) => balance(e),
            Self::Queue(e) => queue(e),
            Self::Booking(e) => booking(e),
            Self::Payment(e) => payment(e),
            Self::Store(_) | Self::Internal(_) => internal(),
        }
    }

    /// The problem+json response; a 5xx logs the whole cause chain and
    /// answers without internals.
    pub fn into_response(self) -> Response<Body> {
        let retry_after = match &self {
            Self::RateLimited(wait) => Some(wait.as_secs() + 1),
            _ => None,
        };
        let (status, code, detail) = self.problem();
        if status.is_server_error() {
            tracing::error!(error.cause_chain = ?anyhow_chain(&self), "request failed");
        }
        let problem = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            code,
            detail: &detail,
        };
        let bytes = simd_json::serde::to_vec(&problem).expect("a problem always serializes");
        let mut response = body::with_type(
            status,
            bytes.into(),
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<GateCheckError> for ApiError {
    fn from(e: GateCheckError) -> Self {
        match e {
            GateCheckError::Gate(g) => Self::Gate(g),
            GateCheckError::Store(s) => Self::Store(s),
        }
    }
}

fn anyhow_chain(e: &ApiError) -> Vec<String> {
    let mut chain = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push(s.to_string());
        source = s.source();
    }
    chain
}

fn internal() -> Parts {
    (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "internal error".into())
}

fn gate(e: &GateError) -> Parts {
    use StatusCode as S;
    let (status, code) = match e {
        GateError::Required => (S::UNAUTHORIZED, "QUEUE_TOKEN_REQUIRED"),
        GateError::Invalid => (S::UNAUTHORIZED, "QUEUE_TOKEN_INVALID"),
        GateError::NotActive => (S::FORBIDDEN, "QUEUE_NOT_ACTIVE"),
        GateError::WrongConcert => (S::FORBIDDEN, "QUEUE_TOKEN_WRONG_CONCERT"),
        GateError::Forbidden => (S::FORBIDDEN, "FORBIDDEN"),
    };
    (status, code, e.to_string().into())
}

fn user(e: &UserError) -> Parts {
    match e {
        UserError::InvalidName => (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_NAME", e.to_string().into()),
        UserError::Store(_) => internal(),
    }
}

fn balance(e: &BalanceError) -> Parts {
    use StatusCode as S;
    match e {
        BalanceError::InvalidAmount => (S::UNPROCESSABLE_ENTITY, "INVALID_AMOUNT", e.to_string().into()),
        BalanceError::BalanceLimit => (S::UNPROCESSABLE_ENTITY, "BALANCE_LIMIT", e.to_string().into()),
        BalanceError::Store(_) => internal(),
    }
}

fn queue(e: &QueueError) -> Parts {
    use StatusCode as S;
    match e {
        QueueError::ConcertNotFound => (S::NOT_FOUND, "CONCERT_NOT_FOUND", e.to_string().into()),
        QueueError::TokenNotFound => (S::NOT_FOUND, "TOKEN_NOT_FOUND", e.to_string().into()),
        QueueError::Forbidden => (S::FORBIDDEN, "FORBIDDEN", e.to_string().into()),
        QueueError::Store(_) => internal(),
    }
}

fn booking(e: &BookingError) -> Parts {
    use StatusCode as S;
    let (status, code) = match e {
        BookingError::InvalidConcert(_) => (S::UNPROCESSABLE_ENTITY, "INVALID_CONCERT"),
        BookingError::ConcertNotFound => (S::NOT_FOUND, "CONCERT_NOT_FOUND"),
        BookingError::ScheduleNotFound => (S::NOT_FOUND, "SCHEDULE_NOT_FOUND"),
        BookingError::ReservationNotFound => (S::NOT_FOUND, "RESERVATION_NOT_FOUND"),
        BookingError::InvalidSeats(_) => (S::UNPROCESSABLE_ENTITY, "INVALID_SEATS"),
        BookingError::SeatUnavailable(_) => (S::CONFLICT, "SEAT_UNAVAILABLE"),
        BookingError::PurchaseLimitExceeded(_) => (S::CONFLICT, "PURCHASE_LIMIT_EXCEEDED"),
        BookingError::BookingClosed(_) => (S::CONFLICT, "BOOKING_CLOSED"),
        BookingError::InvalidState(_) => (S::CONFLICT, "INVALID_STATE"),
        BookingError::Gate(g) => return gate(g),
        BookingError::Store(_) => return internal(),
    };
    (status, code, e.to_string().into())
}

fn payment(e: &PaymentError) -> Parts {
    use StatusCode as S;
    let (status, code) = match e {
        PaymentError::ReservationNotFound => (S::NOT_FOUND, "RESERVATION_NOT_FOUND"),
        PaymentError::PaymentNotFound => (S::NOT_FOUND, "PAYMENT_NOT_FOUND"),
        PaymentError::HoldExpired => (S::CONFLICT, "HOLD_EXPIRED"),
        PaymentError::InsufficientBalance { .. } => (S::PAYMENT_REQUIRED, "INSUFFICIENT_BALANCE"),
        PaymentError::AlreadyPaid(_) => (S::CONFLICT, "ALREADY_PAID"),
        PaymentError::InvalidState(_) => (S::CONFLICT, "INVALID_STATE"),
        PaymentError::Gate(g) => return gate(g),
        PaymentError::Store(_) => return internal(),
    };
    (status, code, e.to_string().into())
}
