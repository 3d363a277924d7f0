//! Concerts, seat maps and seat holds: every seat is sold exactly once.
//!
//! A hold is one script in the concert's tag (`hold_seats.lua`): gate,
//! booking window, every seat free (a lapsed hold counts as free at once),
//! purchase limit, then all seats held together and the event appended.

pub mod catalog;
mod holds;
mod reservation;
mod seat;

pub use catalog::{Catalog, Concert, NewConcert, Schedule};
pub use holds::Holds;
pub use reservation::{
    cancel_reservation, find_reservation, hold_seats, list_user_reservations, place_holds, recover_refund,
    refund_steps_only, reservation_concerts, user_concerts, NewHold, ReservationState, ReservationView,
};
pub use seat::{available_schedules, render_seat_map, seat_map, SeatFilter, SeatSelection};

use crate::queue::GateError;
use crate::store::redis::Refusal;
use crate::store::StoreError;

/// Why a booking request was refused.
#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    #[error("{0}")]
    InvalidConcert(String),
    #[error("no such concert")]
    ConcertNotFound,
    #[error("no such schedule")]
    ScheduleNotFound,
    #[error("no such reservation")]
    ReservationNotFound,
    #[error("{0}")]
    InvalidSeats(String),
    #[error("{0}")]
    SeatUnavailable(String),
    #[error("{0}")]
    PurchaseLimitExceeded(String),
    #[error("{0}")]
    BookingClosed(String),
    #[error("{0}")]
    InvalidState(String),
    #[error(transparent)]
    Gate(#[from] GateError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BookingError {
    /// The error a script refusal stands for.
    pub fn from_refusal(refusal: Refusal, detail: Option<&str>) -> Self {
        if let Some(gate) = GateError::from_refusal(refusal) {
            return Self::Gate(gate);
        }
        let detail = |fallback: &str| detail.unwrap_or(fallback).to_owned();
        match refusal {
            Refusal::ScheduleNotFound => Self::ScheduleNotFound,
            Refusal::ReservationNotFound => Self::ReservationNotFound,
            Refusal::BookingClosed => Self::BookingClosed(detail("booking is closed for this schedule")),
            Refusal::InvalidSeats => Self::InvalidSeats(detail("invalid seats")),
            Refusal::SeatUnavailable => Self::SeatUnavailable(detail("a seat is unavailable")),
            Refusal::PurchaseLimitExceeded => Self::PurchaseLimitExceeded(detail("purchase limit exceeded")),
            Refusal::InvalidState => Self::InvalidState(detail("the reservation cannot change that way")),
            other => Self::Store(StoreError::Reply(format!("unexpected refusal {other:?}"))),
        }
    }
}
