//! Seat selections and seat maps.
//!
//! A schedule's seats are one Redis string, one byte a seat (`A`, `H`, `S`):
//! 20,000 seats are 20 KB, read with one `GET` and rendered straight into
//! the response buffer.

use super::{BookingError, Concert, Schedule};
use crate::queue::QueueToken;
use crate::store::redis::{RedisStore, Status};

/// A validated set of seats to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatSelection(Vec<i64>);

impl SeatSelection {
    /// Checks seats against a schedule: non-empty, distinct, in range, and
    /// no more than its purchase limit.
    ///
    /// # Errors
    /// [`BookingError::InvalidSeats`] saying what is wrong.
    pub fn parse(seats: Vec<i64>, schedule: &Schedule) -> Result<Self, BookingError> {
        let invalid = |why: String| Err(BookingError::InvalidSeats(why));
        if seats.is_empty() {
            return invalid("seat_numbers must not be empty".into());
        }
        if seats.len() as i64 > schedule.purchase_limit {
            return invalid(format!("at most {} seats per purchase", schedule.purchase_limit));
        }
        if let Some(n) = seats.iter().find(|n| !(1..=schedule.seat_count).contains(*n)) {
            return invalid(format!("seat {n} is out of range 1-{}", schedule.seat_count));
        }
        let mut sorted = seats.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return invalid(format!("seat {} is listed twice", w[0]));
        }
        Ok(Self(seats))
    }

    /// The seats, in the order asked.
    pub fn seats(&self) -> &[i64] {
        &self.0
    }
}

/// Which seats a seat map lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatFilter {
    All,
    Only(u8),
}

impl SeatFilter {
    /// Parses the `status` query value.
    pub fn parse(status: Option<&str>) -> Option<Self> {
        Some(match status {
            None => Self::All,
            Some("AVAILABLE") => Self::Only(b'A'),
            Some("HELD") => Self::Only(b'H'),
            Some("SOLD") => Self::Only(b'S'),
            Some(_) => return None,
        })
    }
}

/// The seat map of a schedule, rendered as the response JSON.
///
/// # Errors
/// Gate errors, [`BookingError::ScheduleNotFound`], store failures.
#[tracing::instrument(skip_all, fields(schedule_id = schedule.id))]
pub async fn seat_map(
    redis: &RedisStore,
    token: &QueueToken,
    user_id: i64,
    schedule: &Schedule,
    filter: SeatFilter,
) -> Result<Vec<u8>, BookingError> {
    loop {
        let reply = redis
            .eval(
                &redis.scripts().get_seat_map,
                redis.keys().concert(schedule.concert_id),
                vec![token.as_str().into(), user_id.into(), schedule.id.into()],
            )
            .await?;
        match reply.status()? {
            Status::Done("OK") => return Ok(render_seat_map(schedule, reply.bytes(1)?, filter)),
            Status::Done(_) => continue, // MORE: lapsed holds still being released
            Status::Refused(r, d) => return Err(BookingError::from_refusal(r, d)),
        }
    }
}

/// Renders `{"schedule_id":…,"seats":[…]}` from the seat bytes.
pub fn render_seat_map(schedule: &Schedule, states: &[u8], filter: SeatFilter) -> Vec<u8> {
    let mut price = itoa::Buffer::new();
    let price = price.format(schedule.price).to_owned();
    let mut out = Vec::with_capacity(32 + states.len() * (48 + price.len()));
    let mut number = itoa::Buffer::new();
    out.extend_from_slice(b"{\"schedule_id\":");
    out.extend_from_slice(number.format(schedule.id).as_bytes());
    out.extend_from_slice(b",\"seats\":[");
    let mut first = true;
    for (i, state) in states.iter().enumerate() {
        if let SeatFilter::Only(wanted) = filter {
            if *state != wanted {
                continue;
            }
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(b"{\"number\":");
        out.extend_from_slice(number.format(i + 1).as_bytes());
        out.extend_from_slice(b",\"price\":");
        out.extend_from_slice(price.as_bytes());
        out.extend_from_slice(match state {
            b'H' => b",\"status\":\"HELD\"}".as_slice(),
            b'S' => b",\"status\":\"SOLD\"}".as_slice(),
            _ => b",\"status\":\"AVAILABLE\"}".as_slice(),
        });
    }
    out.extend_from_slice(b"]}");
    out
}

/// The dates of a concert that can be booked now: open, not started, with
/// at least one seat available. Returns `(schedule, available seats)`.
///
/// # Errors
/// Gate errors, store failures.
pub async fn available_schedules<'c>(
    redis: &RedisStore,
    token: &QueueToken,
    user_id: i64,
    concert: &'c Concert,
) -> Result<Vec<(&'c Schedule, i64)>, BookingError> {
    let mut args = vec![token.as_str().into(), user_id.into()];
    args.extend(concert.schedules.iter().map(|s| s.id.into()));
    loop {
        let reply = redis
            .eval(
                &redis.scripts().list_schedules,
                redis.keys().concert(concert.id),
                args.clone(),
            )
            .await?;
        match reply.status()? {
            Status::Done("OK") => {
                let now = reply.i64(1)?;
                let mut open = Vec::new();
                for (i, schedule) in concert.schedules.iter().enumerate() {
                    let available = reply.i64(2 + i)?;
                    if schedule.is_open(now) && available > 0 {
                        open.push((schedule, available));
                    }
                }
                return Ok(open);
            }
            Status::Done(_) => continue,
            Status::Refused(r, d) => return Err(BookingError::from_refusal(r, d)),
        }
    }
}

impl From<crate::queue::GateCheckError> for BookingError {
    fn from(e: crate::queue::GateCheckError) -> Self {
        match e {
            crate::queue::GateCheckError::Gate(g) => Self::Gate(g),
            crate::queue::GateCheckError::Store(s) => Self::Store(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Schedule {
        Schedule {
            id: 10,
            concert_id: 1,
            starts_at: 2,
            booking_opens_at: 1,
            seat_count: 50,
            price: 150_000,
            purchase_limit: 4,
        }
    }

    #[test]
    fn selections_must_be_distinct_in_range_and_within_the_limit() {
        let s = schedule();
        assert!(SeatSelection::parse(vec![7, 8], &s).is_ok());
        for bad in [vec![], vec![0], vec![51], vec![7, 7], vec![1, 2, 3, 4, 5]] {
            assert!(
                matches!(
                    SeatSelection::parse(bad.clone(), &s),
                    Err(BookingError::InvalidSeats(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn seat_maps_render_valid_json_and_filter() {
        let s = schedule();
        let all = render_seat_map(&s, b"AHS", SeatFilter::All);
        let v: serde_json::Value = serde_json::from_slice(&all).unwrap();
        assert_eq!(v["schedule_id"], 10);
        assert_eq!(v["seats"][1]["status"], "HELD");
        assert_eq!(v["seats"][2]["number"], 3);
        let only = render_seat_map(&s, b"AHS", SeatFilter::Only(b'A'));
        let v: serde_json::Value = serde_json::from_slice(&only).unwrap();
        assert_eq!(v["seats"].as_array().unwrap().len(), 1);
        let none = render_seat_map(&s, b"SS", SeatFilter::Only(b'A'));
        assert_eq!(none, br#"{"schedule_id":10,"seats":[]}"#);
    }
}
