//! Postgres: the system of record, filled by the write-behind worker.
//!
//! One function per query, with `prepare_cached`; nothing else in the crate
//! holds SQL.

pub mod migrate;

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use secrecy::ExposeSecret;
use tokio_postgres::NoTls;

use super::StoreError;
use crate::config::PostgresSettings;

/// Most connections one process opens.
const POOL_SIZE: usize = 8;

/// Builds the pool; no connection is opened until one is needed, so a
/// Postgres that is down does not stop the server from starting.
///
/// # Errors
/// A malformed `DATABASE_URL` (the error never includes the URL).
pub fn connect(settings: &PostgresSettings) -> anyhow::Result<Pool> {
    let config = tokio_postgres::Config::from_str(settings.url.expose_secret())
        .map_err(|_| anyhow::anyhow!("DATABASE_URL is not a valid postgres URL"))?;
    pool_for(config)
}

/// A pool for an explicit configuration (tests point it at their own
/// database).
///
/// # Errors
/// Never in practice: the builder fails only without a runtime.
pub fn pool_for(mut config: tokio_postgres::Config) -> anyhow::Result<Pool> {
    config.connect_timeout(Duration::from_secs(3));
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(Duration::from_secs(3)))
        .wait_timeout(Some(Duration::from_secs(5)))
        .build()?)
}

/// Whether Postgres answers `SELECT 1` within a second.
pub async fn is_up(pool: &Pool) -> bool {
    let check = async {
        let client = pool.get().await.map_err(StoreError::from)?;
        client.simple_query("select 1").await.map_err(StoreError::from)
    };
    matches!(tokio::time::timeout(Duration::from_secs(1), check).await, Ok(Ok(_)))
}
