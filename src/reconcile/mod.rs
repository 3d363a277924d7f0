//! Redis ⇄ Postgres: `verify` proves they agree once the write-behind has
//! drained; `rebuild` loads Redis from Postgres after Redis was lost.

mod rebuild;
mod verify;

use std::time::{Duration, Instant};

use fred::interfaces::KeysInterface;
use futures_util::TryStreamExt;

pub use rebuild::{rebuild, RebuildReport};
pub use verify::{settle_expiry, verify, Difference};

use crate::store::redis::RedisStore;
use crate::store::StoreError;
use crate::writebehind;

/// Waits until the write-behind backlog is empty, for at most `limit`.
///
/// # Errors
/// Redis failures, or a backlog still there after `limit`.
pub async fn wait_for_drain(redis: &RedisStore, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let backlog = writebehind::backlog(redis).await?;
        if backlog == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("the write-behind backlog is still {backlog} events; run a worker and retry");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every key matching `pattern` (a glob; braces are literal).
///
/// # Errors
/// Redis failures.
pub async fn scan_keys(redis: &RedisStore, pattern: &str) -> Result<Vec<String>, StoreError> {
    let keys: Vec<fred::types::Key> = redis
        .client()
        .scan_buffered(pattern, Some(1000), None)
        .try_collect()
        .await?;
    let mut keys: Vec<String> = keys.into_iter().filter_map(|k| k.into_string()).collect();
    keys.sort_unstable();
    keys.dedup();
    Ok(keys)
}

/// Deletes every key of the deployment's prefix (tests and drills only).
///
/// # Errors
/// Redis failures.
pub async fn delete_all(redis: &RedisStore) -> Result<usize, StoreError> {
    let keys = scan_keys(redis, &format!("{}:*", redis.keys().prefix())).await?;
    for chunk in keys.chunks(500) {
        let _: i64 = redis.client().unlink(chunk.to_vec()).await?;
    }
    Ok(keys.len())
}
