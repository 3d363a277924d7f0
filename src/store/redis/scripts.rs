//! The Lua scripts of `lua/`, embedded in the binary, and the one mapping
//! from their status codes to Rust.
//!
//! Each script is its prelude(s) from `lua/lib/` followed by its own file.
//! They run with `EVALSHA`, and are loaded again on `NOSCRIPT` (after a Redis
//! restart or failover).

use fred::types::scripts::Script;

macro_rules! lua {
    (wallet, $file:literal) => {
        concat!(
            include_str!("../../../lua/lib/common.lua"),
            include_str!("../../../lua/lib/wallet.lua"),
            include_str!(concat!("../../../lua/", $file))
        )
    };
    (concert, $file:literal) => {
        concat!(
            include_str!("../../../lua/lib/common.lua"),
            include_str!("../../../lua/lib/concert.lua"),
            include_str!(concat!("../../../lua/", $file))
        )
    };
    (bare, $file:literal) => {
        include_str!(concat!("../../../lua/", $file))
    };
}

macro_rules! scripts {
    ($($name:ident: $lib:ident $file:literal,)*) => {
        /// Every script, loaded once per process.
        pub struct Scripts {
            $(#[doc = concat!("`lua/", $file, "`")] pub $name: Script,)*
        }

        impl Scripts {
            /// Wraps every embedded script (hashing it; nothing is sent).
            pub fn new() -> Self {
                Self { $($name: Script::from_lua(lua!($lib, $file)),)* }
            }

            /// Every script, for loading them all up front.
            pub fn all(&self) -> Vec<&Script> {
                vec![$(&self.$name,)*]
            }
        }
    };
}

scripts! {
    ping: bare "ping.lua",
    create_user: wallet "create_user.lua",
    charge_balance: wallet "charge_balance.lua",
    debit_wallet: wallet "debit_wallet.lua",
    settle_payment: wallet "settle_payment.lua",
    credit_refund: wallet "credit_refund.lua",
    create_concert: concert "create_concert.lua",
    issue_token: concert "issue_token.lua",
    get_tokens: concert "get_tokens.lua",
    poll_tokens: concert "poll_tokens.lua",
    leave_queue: concert "leave_queue.lua",
    list_schedules: concert "list_schedules.lua",
    get_seat_map: concert "get_seat_map.lua",
    hold_seats: concert "hold_seats.lua",
    read_reservations: concert "read_reservations.lua",
    cancel_reservation: concert "cancel_reservation.lua",
    finish_refund: concert "finish_refund.lua",
    begin_payment: concert "begin_payment.lua",
    confirm_payment: concert "confirm_payment.lua",
    cancel_payment: concert "cancel_payment.lua",
    sweep_concert: concert "sweep_concert.lua",
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}

/// A refusal a script answers with: its first reply element. Scripts refuse
/// before they change anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    QueueTokenInvalid,
    QueueNotActive,
    Forbidden,
    TokenNotFound,
    ScheduleNotFound,
    BookingClosed,
    InvalidSeats,
    SeatUnavailable,
    PurchaseLimitExceeded,
    ReservationNotFound,
    AlreadyPaid,
    HoldExpired,
    InvalidState,
    BalanceLimit,
    UserNotFound,
    PaymentNotFound,
}

impl Refusal {
    /// The refusal a status code stands for; `None` for success codes.
    pub fn parse(code: &str) -> Option<Self> {
        Some(match code {
            "QUEUE_TOKEN_INVALID" => Self::QueueTokenInvalid,
            "QUEUE_NOT_ACTIVE" => Self::QueueNotActive,
            "FORBIDDEN" => Self::Forbidden,
            "TOKEN_NOT_FOUND" => Self::TokenNotFound,
            "SCHEDULE_NOT_FOUND" => Self::ScheduleNotFound,
            "BOOKING_CLOSED" => Self::BookingClosed,
            "INVALID_SEATS" => Self::InvalidSeats,
            "SEAT_UNAVAILABLE" => Self::SeatUnavailable,
            "PURCHASE_LIMIT_EXCEEDED" => Self::PurchaseLimitExceeded,
            "RESERVATION_NOT_FOUND" => Self::ReservationNotFound,
            "ALREADY_PAID" => Self::AlreadyPaid,
            "HOLD_EXPIRED" => Self::HoldExpired,
            "INVALID_STATE" => Self::InvalidState,
            "BALANCE_LIMIT" => Self::BalanceLimit,
            "USER_NOT_FOUND" => Self::UserNotFound,
            "PAYMENT_NOT_FOUND" => Self::PaymentNotFound,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_starts_with_its_prelude_and_differs() {
        let scripts = Scripts::new();
        let mut hashes: Vec<_> = scripts.all().iter().map(|s| s.sha1().to_string()).collect();
        hashes.sort();
        hashes.dedup();
        assert_eq!(hashes.len(), scripts.all().len());
        assert!(lua!(concert, "hold_seats.lua").starts_with("-- Prelude"));
    }

    #[test]
    fn refusal_codes_parse_and_success_codes_do_not() {
        assert_eq!(Refusal::parse("SEAT_UNAVAILABLE"), Some(Refusal::SeatUnavailable));
        assert_eq!(Refusal::parse("OK"), None);
        assert_eq!(Refusal::parse("REPLAY"), None);
    }
}
