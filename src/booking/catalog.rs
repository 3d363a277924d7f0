//! Concerts and their schedules: created by an admin, immutable after.
//!
//! Each concert is stored twice in Redis: in its own tag (schedules and seat
//! maps, for the scripts) and as one catalog entry (a plain key with the
//! whole concert as JSON, for listing). Servers cache entries in-process;
//! they never change, so the cache needs no invalidation.

use std::sync::Arc;

use fred::interfaces::{KeysInterface, SetsInterface, SortedSetsInterface};
use quick_cache::sync::Cache;
use serde::{Deserialize, Serialize};

use super::BookingError;
use crate::store::redis::{Keys, RedisStore};
use crate::store::StoreError;
use crate::time::Millis;

/// Most concerts cached per process.
const CACHE_CAPACITY: usize = 10_000;

/// Bounds of a new schedule.
const SEAT_COUNT_MAX: i64 = 20_000;
const PURCHASE_LIMIT_MAX: i64 = 10;
const PRICE_MAX: i64 = 100_000_000;
const SCHEDULES_MAX: usize = 100;
const TEXT_MAX: usize = 200;
const DESCRIPTION_MAX: usize = 5_000;

/// A concert as stored: times in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Concert {
    pub id: i64,
    pub title: String,
    pub artist: String,
    pub venue: String,
    pub description: String,
    pub created_at: i64,
    pub schedules: Vec<Schedule>,
}

/// A date of a concert.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Schedule {
    pub id: i64,
    pub concert_id: i64,
    pub starts_at: i64,
    pub booking_opens_at: i64,
    pub seat_count: i64,
    pub price: i64,
    pub purchase_limit: i64,
}

/// The body of `POST /v1/admin/concerts`.
#[derive(Debug, Deserialize)]
pub struct NewConcert {
    pub title: String,
    pub artist: String,
    pub venue: String,
    #[serde(default)]
    pub description: String,
    pub schedules: Vec<NewSchedule>,
}

/// One schedule of a new concert; omitted fields take API.md's defaults.
#[derive(Debug, Deserialize)]
pub struct NewSchedule {
    pub starts_at: String,
    #[serde(default)]
    pub booking_opens_at: Option<String>,
    #[serde(default)]
    pub seat_count: Option<i64>,
    pub price: i64,
    #[serde(default)]
    pub purchase_limit: Option<i64>,
}

/// A concert as listed.
#[derive(Debug, Serialize)]
pub struct ConcertSummary<'a> {
    pub id: i64,
    pub title: &'a str,
    pub artist: &'a str,
    pub venue: &'a str,
    pub description: &'a str,
}

/// A concert with every schedule.
#[derive(Debug, Serialize)]
pub struct ConcertDetail<'a> {
    pub id: i64,
    pub title: &'a str,
    pub artist: &'a str,
    pub venue: &'a str,
    pub description: &'a str,
    pub created_at: Millis,
    pub schedules: Vec<ScheduleView>,
}

/// A schedule as shown.
#[derive(Debug, Serialize)]
pub struct ScheduleView {
    pub id: i64,
    pub starts_at: Millis,
    pub booking_opens_at: Millis,
    pub total_seats: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_seats: Option<i64>,
    pub price: i64,
    pub purchase_limit: i64,
}

impl Concert {
    /// The list view.
    pub fn summary(&self) -> ConcertSummary<'_> {
        ConcertSummary {
            id: self.id,
            title: &self.title,
            artist: &self.artist,
            venue: &self.venue,
            description: &self.description,
        }
    }

    /// The detail view.
    pub fn detail(&self) -> ConcertDetail<'_> {
        ConcertDetail {
            id: self.id,
            title: &self.title,
            artist: &self.artist,
            venue: &self.venue,
            description: &self.description,
            created_at: Millis(self.created_at),
            schedules: self.schedules.iter().map(|s| s.view(None)).collect(),
        }
    }

    /// One of its schedules.
    pub fn schedule(&self, schedule_id: i64) -> Option<&Schedule> {
        self.schedules.iter().find(|s| s.id == schedule_id)
    }
}

impl Schedule {
    /// The view, with availability when known.
    pub fn view(&self, available: Option<i64>) -> ScheduleView {
        ScheduleView {
            id: self.id,
            starts_at: Millis(self.starts_at),
            booking_opens_at: Millis(self.booking_opens_at),
            total_seats: self.seat_count,
            available_seats: available,
            price: self.price,
            purchase_limit: self.purchase_limit,
        }
    }

    /// Whether seats can be booked at `now`.
    pub fn is_open(&self, now: i64) -> bool {
        self.booking_opens_at <= now && now < self.starts_at
    }
}

fn text(field: &str, value: &str, max: usize) -> Result<(), BookingError> {
    let len = value.chars().count();
    if value.trim().is_empty() || len > max {
        return Err(BookingError::InvalidConcert(format!(
            "{field} must be 1-{max} characters"
        )));
    }
    Ok(())
}

fn time(field: &str, value: &str) -> Result<i64, BookingError> {
    Millis::parse(value)
        .map(|m| m.0)
        .ok_or_else(|| BookingError::InvalidConcert(format!("{field} must be an RFC 3339 time")))
}

fn within(field: &str, value: i64, low: i64, high: i64) -> Result<i64, BookingError> {
    if (low..=high).contains(&value) {
        Ok(value)
    } else {
        Err(BookingError::InvalidConcert(format!("{field} must be {low}-{high}")))
    }
}

impl NewConcert {
    /// Validates the request and assigns the ids it will have.
    ///
    /// # Errors
    /// [`BookingError::InvalidConcert`] naming the first bad value.
    pub fn into_concert(self, id: i64, first_schedule_id: i64, now: i64) -> Result<Concert, BookingError> {
        text("title", &self.title, TEXT_MAX)?;
        text("artist", &self.artist, TEXT_MAX)?;
        text("venue", &self.venue, TEXT_MAX)?;
        if self.description.chars().count() > DESCRIPTION_MAX {
            return Err(BookingError::InvalidConcert(format!(
                "description must be at most {DESCRIPTION_MAX} characters"
            )));
        }
        if self.schedules.is_empty() || self.schedules.len() > SCHEDULES_MAX {
            return Err(BookingError::InvalidConcert(format!(
                "schedules must hold 1-{SCHEDULES_MAX} dates"
            )));
        }
        let schedules = self
            .schedules
            .into_iter()
            .zip(first_schedule_id..)
            .map(|(s, sid)| s.into_schedule(sid, id, now))
            .collect::<Result<_, _>>()?;
        Ok(Concert {
            id,
            title: self.title,
            artist: self.artist,
            venue: self.venue,
            description: self.description,
            created_at: now,
            schedules,
        })
    }

    /// How many schedules the request creates (before validation).
    pub fn schedule_count(&self) -> usize {
        self.schedules.len()
    }
}

impl NewSchedule {
    fn into_schedule(self, id: i64, concert_id: i64, now: i64) -> Result<Schedule, BookingError> {
        let starts_at = time("starts_at", &self.starts_at)?;
        let booking_opens_at = match &self.booking_opens_at {
            Some(t) => time("booking_opens_at", t)?,
            None => now,
        };
        if booking_opens_at >= starts_at {
            return Err(BookingError::InvalidConcert(
                "booking_opens_at must be before starts_at".into(),
            ));
        }
        Ok(Schedule {
            id,
            concert_id,
            starts_at,
            booking_opens_at,
            seat_count: within("seat_count", self.seat_count.unwrap_or(50), 1, SEAT_COUNT_MAX)?,
            price: within("price", self.price, 0, PRICE_MAX)?,
            purchase_limit: within(
                "purchase_limit",
                self.purchase_limit.unwrap_or(4),
                1,
                PURCHASE_LIMIT_MAX,
            )?,
        })
    }
}

/// Read-through cache of the catalog.
#[derive(Clone)]
pub struct Catalog {
    concerts: Arc<Cache<i64, Arc<Concert>>>,
    schedules: Arc<Cache<i64, i64>>,
}

impl Default for Catalog {
    fn default() -> Self {
        Self::new()
    }
}

impl Catalog {
    /// An empty cache.
    pub fn new() -> Self {
        Self {
            concerts: Arc::new(Cache::new(CACHE_CAPACITY)),
            schedules: Arc::new(Cache::new(CACHE_CAPACITY * 10)),
        }
    }

    /// A concert, or `None` if there is no such concert.
    ///
    /// # Errors
    /// Store failures.
    pub async fn concert(&self, redis: &RedisStore, concert_id: i64) -> Result<Option<Arc<Concert>>, StoreError> {
        if let Some(c) = self.concerts.get(&concert_id) {
            return Ok(Some(c));
        }
        // Boxed: a miss is rare, and a command's future (about 5 KB) would
        // otherwise make every caller's future that much larger.
        let json: Option<String> = Box::pin(redis.client().get(redis.keys().catalog_entry(concert_id))).await?;
        let Some(json) = json else { return Ok(None) };
        let concert = Arc::new(decode(json)?);
        self.concerts.insert(concert_id, concert.clone());
        Ok(Some(concert))
    }

    /// The concert a schedule belongs to, or `None` for an unknown schedule.
    ///
    /// # Errors
    /// Store failures.
    pub async fn concert_of_schedule(
        &self,
        redis: &RedisStore,
        schedule_id: i64,
    ) -> Result<Option<Arc<Concert>>, StoreError> {
        let concert_id = match self.schedules.get(&schedule_id) {
            Some(c) => c,
            None => {
                // Boxed, as in `concert`.
                let found: Option<i64> =
                    Box::pin(redis.client().get(redis.keys().schedule_concert(schedule_id))).await?;
                let Some(c) = found else { return Ok(None) };
                self.schedules.insert(schedule_id, c);
                c
            }
        };
        self.concert(redis, concert_id).await
    }

    /// Every concert, by id.
    ///
    /// # Errors
    /// Store failures.
    pub async fn list(&self, redis: &RedisStore) -> Result<Vec<Arc<Concert>>, StoreError> {
        let ids: Vec<i64> = redis
            .client()
            .zrange(redis.keys().catalog(), 0, -1, None, false, None, false)
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(c) = self.concert(redis, id).await? {
                out.push(c);
            }
        }
        Ok(out)
    }
}

fn decode(json: String) -> Result<Concert, StoreError> {
    let mut bytes = json.into_bytes();
    simd_json::serde::from_slice(&mut bytes).map_err(|e| StoreError::Reply(e.to_string()))
}

/// Creates a concert: ids, its tag (schedules, seat maps, event), then the
/// catalog entries. The stream is registered with the write-behind first,
/// so no event is ever written where the worker does not look.
///
/// # Errors
/// [`BookingError::InvalidConcert`], store failures.
#[tracing::instrument(skip_all)]
pub async fn create_concert(redis: &RedisStore, new: NewConcert) -> Result<Concert, BookingError> {
    // Validate before spending ids; the ids are filled in after.
    let count = new.schedule_count();
    let keys = redis.keys();
    let client = redis.client();
    let validated = new.into_concert(0, 0, Millis::now().0)?;
    let id: i64 = client.incr(keys.sequence("concerts")).await.map_err(StoreError::from)?;
    let last: i64 = client
        .incr_by(keys.sequence("schedules"), count as i64)
        .await
        .map_err(StoreError::from)?;
    let concert = renumber(validated, id, last - count as i64 + 1);
    register(redis, keys, &concert).await?;
    Ok(concert)
}

fn renumber(mut concert: Concert, id: i64, first_schedule_id: i64) -> Concert {
    concert.id = id;
    for (schedule, sid) in concert.schedules.iter_mut().zip(first_schedule_id..) {
        schedule.id = sid;
        schedule.concert_id = id;
    }
    concert
}

async fn register(redis: &RedisStore, keys: &Keys, concert: &Concert) -> Result<(), StoreError> {
    let base = keys.concert(concert.id);
    let _: i64 = redis.client().sadd(keys.streams(), Keys::stream(&base)).await?;
    let json = simd_json::serde::to_string(concert).map_err(|e| StoreError::Reply(e.to_string()))?;
    redis
        .eval(&redis.scripts().create_concert, base, vec![json.as_str().into()])
        .await?;
    publish(redis, concert).await
}

/// Writes the plain keys of a concert: its catalog entry, its place in the
/// catalog, and schedule → concert for each of its schedules.
///
/// # Errors
/// Store failures.
pub async fn publish(redis: &RedisStore, concert: &Concert) -> Result<(), StoreError> {
    let keys = redis.keys();
    let client = redis.client();
    let json = simd_json::serde::to_string(concert).map_err(|e| StoreError::Reply(e.to_string()))?;
    let mut entries: Vec<(String, String)> = concert
        .schedules
        .iter()
        .map(|s| (keys.schedule_concert(s.id), concert.id.to_string()))
        .collect();
    entries.push((keys.catalog_entry(concert.id), json));
    let _: () = client.mset(entries).await?;
    let member = (concert.id as f64, concert.id);
    let _: i64 = client.zadd(keys.catalog(), None, None, false, false, member).await?;
    Ok(())
}
