//! The Redis side of the write-behind: which streams exist, reading and
//! claiming entries, acknowledging and trimming them, and the backlog.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fred::interfaces::{ClientLike, SetsInterface, StreamsInterface};
use fred::types::streams::XID;
use fred::types::{CustomCommand, Value};

use super::{BATCH, GROUP};
use crate::store::redis::RedisStore;
use crate::store::StoreError;

/// One stream entry: an event.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The stream key.
    pub stream: Arc<str>,
    /// The entry id, `<ms>-<seq>`.
    pub id: String,
    pub ms: i64,
    pub seq: i64,
    /// The event kind (`user`, `ledger`, `concert`, `token`, `reservation`,
    /// `payment`).
    pub kind: String,
    /// The entity's state after the change, as JSON.
    pub data: Vec<u8>,
}

impl Entry {
    /// The stream position, for "only move forward" comparisons.
    pub fn position(&self) -> (i64, i64) {
        (self.ms, self.seq)
    }
}

/// The streams a worker reads, with their group created.
#[derive(Default)]
pub struct Streams {
    known: Vec<Arc<str>>,
    grouped: HashSet<Arc<str>>,
    refreshed: Option<Instant>,
}

/// Every stream of a deployment: the wallet buckets' and the concerts'.
///
/// # Errors
/// Redis failures.
pub async fn all_streams(redis: &RedisStore) -> Result<Vec<String>, StoreError> {
    let mut all: Vec<String> = redis.keys().wallet_streams().collect();
    let concerts: Vec<String> = redis.client().smembers(redis.keys().streams()).await?;
    all.extend(concerts);
    Ok(all)
}

impl Streams {
    /// Picks up new streams (at most twice a second) and creates the group
    /// on each, from its first entry.
    pub async fn refresh(&mut self, redis: &RedisStore) -> Result<(), StoreError> {
        if self.refreshed.is_some_and(|t| t.elapsed() < Duration::from_millis(500)) {
            return Ok(());
        }
        self.refreshed = Some(Instant::now());
        for key in all_streams(redis).await? {
            if self.grouped.contains(key.as_str()) {
                continue;
            }
            let created: Result<Value, _> = redis.client().xgroup_create(key.as_str(), GROUP, "0", true).await;
            match created {
                Ok(_) => {}
                Err(e) if e.details().starts_with("BUSYGROUP") => {}
                Err(e) => return Err(e.into()),
            }
            let key: Arc<str> = key.into();
            self.grouped.insert(key.clone());
            self.known.push(key);
        }
        Ok(())
    }

    /// New entries of every stream, up to [`BATCH`] each; with `own`, the
    /// entries this consumer read before and has not acknowledged (to retry
    /// a batch whose write failed).
    pub async fn read(&self, redis: &RedisStore, consumer: &str, own: bool) -> Result<Vec<Entry>, StoreError> {
        if self.known.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = self.known.iter().map(|k| k.to_string()).collect();
        let from = if own { XID::Manual("0".into()) } else { XID::NewInGroup };
        let ids = vec![from; keys.len()];
        let reply: Value = redis
            .client()
            .xreadgroup(GROUP, consumer, Some(BATCH), None, false, keys, ids)
            .await?;
        parse_read(reply)
    }

    /// Entries pending for longer than `idle` (their consumer died), now
    /// owned by `consumer`.
    pub async fn claim(&self, redis: &RedisStore, consumer: &str, idle: Duration) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        for key in &self.known {
            let reply: Value = redis
                .client()
                .xautoclaim(
                    key.as_ref(),
                    GROUP,
                    consumer,
                    idle.as_millis() as u64,
                    "0-0",
                    Some(BATCH),
                    false,
                )
                .await?;
            if let Value::Array(parts) = reply {
                if let Some(entries) = parts.into_iter().nth(1) {
                    parse_entries(key, entries, &mut out)?;
                }
            }
        }
        if !out.is_empty() {
            tracing::info!(entries = out.len(), "claimed entries of a dead consumer");
        }
        Ok(out)
    }

    /// Drops what every consumer acknowledged from each stream.
    pub async fn trim(&self, redis: &RedisStore) -> Result<(), StoreError> {
        for key in &self.known {
            let Some(info) = group_info(redis, key).await? else {
                continue;
            };
            let min_id = match oldest_pending(redis, key).await? {
                Some(id) => id,
                None => next_id(&info.last_delivered),
            };
            let _: Value = redis
                .client()
                .custom(
                    CustomCommand::new_static("XTRIM", None, false),
                    vec![key.to_string(), "MINID".into(), min_id],
                )
                .await?;
        }
        Ok(())
    }
}

/// Every entry still in every stream, oldest first per stream (whatever the
/// group has seen). For drills and tests.
///
/// # Errors
/// Redis failures.
#[doc(hidden)]
pub async fn read_all(redis: &RedisStore) -> Result<Vec<Entry>, StoreError> {
    let mut out = Vec::new();
    for key in all_streams(redis).await? {
        let reply: Value = redis
            .client()
            .custom(
                CustomCommand::new_static("XRANGE", None, false),
                vec![key.clone(), "-".into(), "+".into()],
            )
            .await?;
        parse_entries(&Arc::from(key.as_str()), reply, &mut out)?;
    }
    Ok(out)
}

/// Acknowledges persisted entries.
///
/// # Errors
/// Redis failures (the entries are then delivered again: harmless).
pub async fn ack(redis: &RedisStore, entries: &[Entry]) -> Result<(), StoreError> {
    let mut by_stream: Vec<(&str, Vec<&str>)> = Vec::new();
    for e in entries {
        match by_stream.iter_mut().find(|(s, _)| *s == &*e.stream) {
            Some((_, ids)) => ids.push(&e.id),
            None => by_stream.push((&e.stream, vec![&e.id])),
        }
    }
    for (stream, ids) in by_stream {
        let ids: Vec<XID> = ids.into_iter().map(|id| XID::Manual(id.to_owned().into())).collect();
        let _: i64 = redis.client().xack(stream, GROUP, ids).await?;
    }
    Ok(())
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_string()),
        Value::Bytes(b) => String::from_utf8(b.to_vec()).ok(),
        Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

fn bad(what: &str) -> StoreError {
    StoreError::Reply(format!("unexpected stream reply: {what}"))
}

/// `XREADGROUP` reply: `[[stream, [[id, [field, value, …]], …]], …]` (or a
/// map of stream → entries under RESP3).
fn parse_read(reply: Value) -> Result<Vec<Entry>, StoreError> {
    let mut out = Vec::new();
    let streams: Vec<(Value, Value)> = match reply {
        Value::Null => return Ok(out),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Array(mut pair) if pair.len() == 2 => {
                    let entries = pair.pop().expect("two elements");
                    Ok((pair.pop().expect("two elements"), entries))
                }
                _ => Err(bad("stream element")),
            })
            .collect::<Result<_, _>>()?,
        Value::Map(map) => map
            .iter()
            .map(|(k, v)| (Value::String(k.as_str_lossy().into()), v.clone()))
            .collect(),
        _ => return Err(bad("top level")),
    };
    for (name, entries) in streams {
        let name: Arc<str> = text(&name).ok_or_else(|| bad("stream name"))?.into();
        parse_entries(&name, entries, &mut out)?;
    }
    Ok(out)
}

fn parse_entries(stream: &Arc<str>, entries: Value, out: &mut Vec<Entry>) -> Result<(), StoreError> {
    let Value::Array(entries) = entries else { return Ok(()) };
    for entry in entries {
        let Value::Array(mut parts) = entry else { continue }; // deleted entry
        if parts.len() != 2 {
            continue;
        }
        let fields = parts.pop().expect("two elements");
        let id = text(&parts[0]).ok_or_else(|| bad("entry id"))?;
        let (ms, seq) = split_id(&id).ok_or_else(|| bad("entry id"))?;
        let mut kind = String::new();
        let mut data = Vec::new();
        if let Value::Array(fields) = fields {
            for pair in fields.chunks(2) {
                match (text(&pair[0]).as_deref(), pair.get(1)) {
                    (Some("k"), Some(v)) => kind = text(v).unwrap_or_default(),
                    (Some("d"), Some(Value::Bytes(b))) => data = b.to_vec(),
                    (Some("d"), Some(v)) => data = text(v).unwrap_or_default().into_bytes(),
                    _ => {}
                }
            }
        }
        out.push(Entry {
            stream: stream.clone(),
            id,
            ms,
            seq,
            kind,
            data,
        });
    }
    Ok(())
}

fn split_id(id: &str) -> Option<(i64, i64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

fn next_id(id: &str) -> String {
    match split_id(id) {
        Some((ms, seq)) => format!("{ms}-{}", seq + 1),
        None => "0-1".into(),
    }
}

/// The group's state on one stream.
struct GroupInfo {
    pending: u64,
    last_delivered: String,
    /// Entries not yet delivered (`None` when Redis cannot tell).
    lag: Option<u64>,
}

async fn group_info(redis: &RedisStore, key: &str) -> Result<Option<GroupInfo>, StoreError> {
    let reply: Result<Value, _> = redis.client().xinfo_groups(key).await;
    let groups = match reply {
        Ok(Value::Array(groups)) => groups,
        Ok(_) => return Ok(None),
        Err(e) if e.details().contains("no such key") => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    for group in groups {
        let fields: Vec<(String, Value)> = match group {
            Value::Array(flat) => flat
                .chunks(2)
                .filter_map(|p| Some((text(&p[0])?, p.get(1)?.clone())))
                .collect(),
            Value::Map(map) => map
                .iter()
                .map(|(k, v)| (k.as_str_lossy().into_owned(), v.clone()))
                .collect(),
            _ => continue,
        };
        let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        if get("name").and_then(|v| text(&v)).as_deref() != Some(GROUP) {
            continue;
        }
        return Ok(Some(GroupInfo {
            pending: get("pending").and_then(|v| v.as_u64()).unwrap_or(0),
            last_delivered: get("last-delivered-id")
                .and_then(|v| text(&v))
                .unwrap_or_else(|| "0-0".into()),
            lag: get("lag").and_then(|v| v.as_u64()),
        }));
    }
    Ok(None)
}

async fn oldest_pending(redis: &RedisStore, key: &str) -> Result<Option<String>, StoreError> {
    let reply: Value = redis.client().xpending(key, GROUP, ()).await?;
    match reply {
        Value::Array(parts) if parts.len() >= 2 => Ok(text(&parts[1])),
        _ => Ok(None),
    }
}

/// Events not yet persisted, over every stream: pending plus undelivered.
///
/// # Errors
/// Redis failures.
pub async fn backlog(redis: &RedisStore) -> Result<u64, StoreError> {
    Ok(backlog_by_stream(redis).await?.iter().map(|(_, n)| n).sum())
}

/// Events not yet persisted, per stream.
///
/// # Errors
/// Redis failures.
pub async fn backlog_by_stream(redis: &RedisStore) -> Result<Vec<(String, u64)>, StoreError> {
    let mut out = Vec::new();
    for key in all_streams(redis).await? {
        let waiting = match group_info(redis, &key).await? {
            // No group yet: every entry is waiting.
            None => redis.client().xlen::<u64, _>(key.as_str()).await?,
            Some(info) => {
                let undelivered = match info.lag {
                    Some(lag) => lag,
                    None => redis
                        .client()
                        .xlen::<u64, _>(key.as_str())
                        .await?
                        .saturating_sub(info.pending),
                };
                info.pending + undelivered
            }
        };
        out.push((key, waiting));
    }
    Ok(out)
}

/// Age in seconds of the oldest event not yet persisted (0 when none).
///
/// # Errors
/// Redis failures.
pub async fn lag_seconds(redis: &RedisStore) -> Result<f64, StoreError> {
    let mut oldest: Option<i64> = None;
    for key in all_streams(redis).await? {
        let candidate = match group_info(redis, &key).await? {
            None => first_after(redis, &key, "-").await?,
            Some(info) => match oldest_pending(redis, &key).await? {
                Some(id) => split_id(&id).map(|(ms, _)| ms),
                None => first_after(redis, &key, &format!("({}", info.last_delivered)).await?,
            },
        };
        if let Some(ms) = candidate {
            oldest = Some(oldest.map_or(ms, |o| o.min(ms)));
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    Ok(oldest.map_or(0.0, |ms| (now - ms).max(0) as f64 / 1000.0))
}

async fn first_after(redis: &RedisStore, key: &str, start: &str) -> Result<Option<i64>, StoreError> {
    let reply: Value = redis
        .client()
        .custom(
            CustomCommand::new_static("XRANGE", None, false),
            vec![key.to_owned(), start.to_owned(), "+".into(), "COUNT".into(), "1".into()],
        )
        .await?;
    let mut out = Vec::new();
    parse_entries(&Arc::from(key), reply, &mut out)?;
    Ok(out.first().map(|e| e.ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_split_and_advance() {
        assert_eq!(split_id("1700000000000-3"), Some((1_700_000_000_000, 3)));
        assert_eq!(next_id("5-9"), "5-10");
        assert_eq!(split_id("nope"), None);
    }
}
