//! `ticketrush seed --demo`: a concert to try the API on.

use anyhow::Context;
use chrono::{Duration, Utc};

use crate::balance::{self, ChargeAmount};
use crate::booking::catalog::{self, NewConcert, NewSchedule};
use crate::store::redis::RedisStore;
use crate::user::{self, UserName};

/// Creates the demo concert (three dates of 50 seats, booking open now) and
/// three users with 1,000,000 KRW each, printing their API keys. Does
/// nothing when the catalog already has a concert.
///
/// # Errors
/// Store failures.
pub async fn demo(redis: &RedisStore) -> anyhow::Result<()> {
    let catalog = crate::booking::Catalog::new();
    if !catalog.list(redis).await?.is_empty() {
        println!("the catalog already has concerts; demo seed skipped");
        return Ok(());
    }
    let day = |days: i64| {
        (Utc::now() + Duration::days(days))
            .format("%Y-%m-%dT19:00:00Z")
            .to_string()
    };
    let concert = catalog::create_concert(
        redis,
        NewConcert {
            title: "Winter Lights Live".into(),
            artist: "The Ticketrush Ensemble".into(),
            venue: "Olympic Hall, Seoul".into(),
            description: "Three nights, fifty seats each.".into(),
            schedules: (30..33)
                .map(|d| NewSchedule {
                    starts_at: day(d),
                    booking_opens_at: None,
                    seat_count: Some(50),
                    price: 150_000,
                    purchase_limit: Some(4),
                })
                .collect(),
        },
    )
    .await
    .context("creating the demo concert")?;
    println!(
        "concert {}: {} ({} dates)",
        concert.id,
        concert.title,
        concert.schedules.len()
    );
    for name in ["alice", "bob", "carol"] {
        let created = user::create_user(redis, UserName::parse(name.into())?).await?;
        balance::charge(redis, created.id, ChargeAmount::parse(1_000_000)?, "").await?;
        println!("user {} ({name}): api_key {}", created.id, created.api_key);
    }
    Ok(())
}
