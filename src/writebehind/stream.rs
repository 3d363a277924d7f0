//! The Redis side of the write-behind: which streams exist, reading and
//! claiming entries, acknowledging and trimming them, and the backlog.
//!
//! Every stream is read, claimed, acknowledged and trimmed with commands of
//! its own, all streams at once: the client decodes a reply again from its
//! start each time more of it arrives, so one reply of every stream's batch
//! (a few megabytes) took about 1.7 times as long to decode as the same
//! entries in one reply per stream. Entries keep views into the reply (ids
//! parsed to numbers, the data not copied).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fred::clients::Client;
use fred::interfaces::{ClientLike, SetsInterface, StreamsInterface};
use fred::types::streams::XID;
use fred::types::{CustomCommand, Value};
use futures_util::future::try_join_all;

use super::{BATCH, GROUP, READ_CHUNK};
use crate::store::redis::RedisStore;
use crate::store::StoreError;

/// What an event describes (the name of the stream entry's one field), as
/// the scripts name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    User,
    Ledger,
    Concert,
    Token,
    Reservation,
    Payment,
    /// A kind this version does not know (or a deleted entry's nothing).
    Other(Box<str>),
}

impl Kind {
    fn parse(k: &[u8]) -> Self {
        match k {
            b"user" => Self::User,
            b"ledger" => Self::Ledger,
            b"concert" => Self::Concert,
            b"token" => Self::Token,
            b"reservation" => Self::Reservation,
            b"payment" => Self::Payment,
            other => Self::Other(String::from_utf8_lossy(other).into()),
        }
    }

    /// The name as the scripts write it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::User => "user",
            Self::Ledger => "ledger",
            Self::Concert => "concert",
            Self::Token => "token",
            Self::Reservation => "reservation",
            Self::Payment => "payment",
            Self::Other(k) => k,
        }
    }
}

/// One stream entry: an event.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The stream key.
    pub stream: Arc<str>,
    /// The entry id, `<ms>-<seq>`, as its two numbers.
    pub ms: i64,
    pub seq: i64,
    pub kind: Kind,
    /// The entity's state after the change, as JSON (a view into the
    /// reply's buffer).
    pub data: Bytes,
}

impl Entry {
    /// The stream position, for "only move forward" comparisons.
    pub fn position(&self) -> (i64, i64) {
        (self.ms, self.seq)
    }

    /// The entry id as Redis writes it.
    pub fn id(&self) -> String {
        format!("{}-{}", self.ms, self.seq)
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
    /// The streams known so far.
    pub fn keys(&self) -> Vec<Arc<str>> {
        self.known.clone()
    }

    /// Picks up new streams (at most twice a second) and creates the group
    /// on each, from its first entry.
    pub async fn refresh(&mut self, redis: &RedisStore) -> Result<(), StoreError> {
        if self.refreshed.is_some_and(|t| t.elapsed() < Duration::from_millis(500)) {
            return Ok(());
        }
        self.refreshed = Some(Instant::now());
        let mut new = all_streams(redis).await?;
        new.retain(|key| !self.grouped.contains(key.as_str()));
        try_join_all(new.iter().map(|key| create_group(redis, key))).await?;
        for key in new {
            let key: Arc<str> = key.into();
            self.grouped.insert(key.clone());
            self.known.push(key);
        }
        Ok(())
    }

    /// New entries of every stream, up to [`BATCH`] each, grouped by stream
    /// in stream order; with `own`, the entries this consumer read before
    /// and has not acknowledged (to retry a batch whose write failed).
    pub async fn read(&self, redis: &RedisStore, consumer: &str, own: bool) -> Result<Vec<Entry>, StoreError> {
        let reads = self.known.iter().map(|key| read_stream(redis, key, consumer, own));
        Ok(try_join_all(reads).await?.into_iter().flatten().collect())
    }

    /// Waits up to `wait` for new entries on any stream, then reads up to
    /// [`READ_CHUNK`] of each, delivered to `consumer`. `client` must have a
    /// connection of its own: the read blocks it.
    pub async fn wait_and_read(
        &self,
        client: &Client,
        consumer: &str,
        wait: Duration,
    ) -> Result<Vec<Entry>, StoreError> {
        if self.known.is_empty() {
            tokio::time::sleep(wait).await;
            return Ok(Vec::new());
        }
        let keys: Vec<&str> = self.known.iter().map(AsRef::as_ref).collect();
        let ids = vec![XID::NewInGroup; keys.len()];
        let block = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
        let reply: Value = client
            .xreadgroup(GROUP, consumer, Some(READ_CHUNK), Some(block), false, keys, ids)
            .await?;
        let mut out = Vec::new();
        for (stream, entries) in stream_replies(reply)? {
            let key = self
                .known
                .iter()
                .find(|k| stream.as_bytes() == Some(k.as_bytes()))
                .ok_or_else(|| bad("stream key"))?;
            parse_entries(key, entries, &mut out)?;
        }
        Ok(out)
    }

    /// Entries pending for longer than `idle` (their consumer died), now
    /// owned by `consumer`.
    pub async fn claim(&self, redis: &RedisStore, consumer: &str, idle: Duration) -> Result<Vec<Entry>, StoreError> {
        let claims = self.known.iter().map(|key| claim_stream(redis, key, consumer, idle));
        let out: Vec<Entry> = try_join_all(claims).await?.into_iter().flatten().collect();
        if !out.is_empty() {
            tracing::info!(entries = out.len(), "claimed entries of a dead consumer");
        }
        Ok(out)
    }

    /// Drops what every consumer acknowledged from each stream.
    pub async fn trim(&self, redis: &RedisStore) -> Result<(), StoreError> {
        try_join_all(self.known.iter().map(|key| trim_stream(redis, key))).await?;
        Ok(())
    }
}

async fn create_group(redis: &RedisStore, key: &str) -> Result<(), StoreError> {
    let created: Result<Value, _> = redis.client().xgroup_create(key, GROUP, "0", true).await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.details().starts_with("BUSYGROUP") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Up to [`BATCH`] entries of one stream: new ones, or with `own` this
/// consumer's pending ones from the start. Read [`READ_CHUNK`] a command,
/// until a command finds fewer.
pub(super) async fn read_stream(
    redis: &RedisStore,
    key: &Arc<str>,
    consumer: &str,
    own: bool,
) -> Result<Vec<Entry>, StoreError> {
    let mut out: Vec<Entry> = Vec::new();
    while (out.len() as u64) < BATCH {
        let from = match (own, out.last()) {
            (false, _) => XID::NewInGroup,
            (true, None) => XID::Manual("0".into()),
            (true, Some(last)) => XID::Manual(last.id().into()),
        };
        let count = READ_CHUNK.min(BATCH - out.len() as u64);
        let reply: Value = redis
            .client()
            .xreadgroup(GROUP, consumer, Some(count), None, false, key.as_ref(), from)
            .await?;
        let before = out.len();
        parse_read(key, reply, &mut out)?;
        if ((out.len() - before) as u64) < count {
            break;
        }
    }
    Ok(out)
}

async fn claim_stream(
    redis: &RedisStore,
    key: &Arc<str>,
    consumer: &str,
    idle: Duration,
) -> Result<Vec<Entry>, StoreError> {
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
    let mut out = Vec::new();
    // [next start, entries, deleted ids]
    if let Value::Array(parts) = reply {
        if let Some(entries) = parts.into_iter().nth(1) {
            parse_entries(key, entries, &mut out)?;
        }
    }
    Ok(out)
}

async fn trim_stream(redis: &RedisStore, key: &str) -> Result<(), StoreError> {
    let Some(info) = group_info(redis, key).await? else {
        return Ok(());
    };
    let min_id = match oldest_pending(redis, key).await? {
        Some(id) => id,
        None => next_id(&info.last_delivered),
    };
    let _: Value = redis
        .client()
        .custom(
            CustomCommand::new_static("XTRIM", None, false),
            vec![key.to_owned(), "MINID".into(), min_id],
        )
        .await?;
    Ok(())
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

/// Acknowledges persisted entries of one stream.
///
/// # Errors
/// Redis failures (the entries are then delivered again: harmless).
pub async fn ack(redis: &RedisStore, entries: &[Entry]) -> Result<(), StoreError> {
    let Some(first) = entries.first() else { return Ok(()) };
    debug_assert!(entries.iter().all(|e| e.stream == first.stream), "one stream's entries");
    let ids: Vec<XID> = entries.iter().map(|e| XID::Manual(e.id().into())).collect();
    let _: i64 = redis.client().xack(first.stream.as_ref(), GROUP, ids).await?;
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

/// `XREADGROUP` reply for one stream: `[[stream, [[id, [field, value, …]],
/// …]]]`, a map of stream → entries under RESP3, or nil when there is
/// nothing new.
fn parse_read(stream: &Arc<str>, reply: Value, out: &mut Vec<Entry>) -> Result<(), StoreError> {
    for (_, entries) in stream_replies(reply)? {
        parse_entries(stream, entries, out)?;
    }
    Ok(())
}

/// `[[stream key, entries], …]` (or a map in RESP3), as `XREADGROUP`
/// gives it: each stream's key and entries.
fn stream_replies(reply: Value) -> Result<Vec<(Value, Value)>, StoreError> {
    match reply {
        Value::Null => Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|item| match item {
                Value::Array(pair) => <[Value; 2]>::try_from(pair)
                    .map(|[key, entries]| (key, entries))
                    .map_err(|_| bad("stream element")),
                _ => Err(bad("stream element")),
            })
            .collect(),
        Value::Map(map) => Ok(map.inner().into_iter().map(|(k, v)| (Value::from(k), v)).collect()),
        _ => Err(bad("top level")),
    }
}

/// `[[id, [field, value, …]], …]`, as `XRANGE` and `XREADGROUP` give it.
fn parse_entries(stream: &Arc<str>, entries: Value, out: &mut Vec<Entry>) -> Result<(), StoreError> {
    let Value::Array(entries) = entries else { return Ok(()) };
    out.reserve(entries.len());
    for entry in entries {
        let Value::Array(parts) = entry else { continue };
        let Ok([id, fields]) = <[Value; 2]>::try_from(parts) else {
            continue;
        };
        let (ms, seq) = id.as_bytes().and_then(split_id_bytes).ok_or_else(|| bad("entry id"))?;
        // A pending entry deleted from the stream has no fields: it is
        // still acknowledged, as an event of no known kind.
        let mut kind = Kind::Other("".into());
        let mut data = Bytes::new();
        if let Value::Array(fields) = fields {
            let mut fields = fields.into_iter();
            while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
                match name.as_bytes() {
                    // Entries of earlier versions: `k` <kind> `d` <JSON>.
                    Some(b"k") => kind = Kind::parse(value.as_bytes().unwrap_or_default()),
                    Some(b"d") => data = into_bytes(value),
                    // One field: <kind> <JSON>.
                    Some(name) => {
                        kind = Kind::parse(name);
                        data = into_bytes(value);
                    }
                    None => {}
                }
            }
        }
        out.push(Entry {
            stream: stream.clone(),
            ms,
            seq,
            kind,
            data,
        });
    }
    Ok(())
}

/// The value's bytes without copying them out of the reply.
fn into_bytes(value: Value) -> Bytes {
    match value {
        Value::String(s) => s.into_inner(),
        Value::Bytes(b) => b,
        other => text(&other).map(Bytes::from).unwrap_or_default(),
    }
}

fn split_id_bytes(id: &[u8]) -> Option<(i64, i64)> {
    split_id(std::str::from_utf8(id).ok()?)
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

/// What the write-behind has not persisted yet on one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamBacklog {
    pub stream: String,
    /// Events not yet persisted: pending plus undelivered.
    pub events: u64,
    /// When the oldest of them was appended (epoch ms), if any.
    pub oldest_ms: Option<i64>,
}

/// The backlog of every stream, read all at once: one `XINFO GROUPS` a
/// stream that is caught up, one command more for a stream with a backlog
/// (to date its oldest event).
///
/// # Errors
/// Redis failures.
pub async fn backlogs(redis: &RedisStore) -> Result<Vec<StreamBacklog>, StoreError> {
    per_stream(redis, true).await
}

/// Every stream's backlog; with `dated`, also when its oldest event came.
async fn per_stream(redis: &RedisStore, dated: bool) -> Result<Vec<StreamBacklog>, StoreError> {
    let streams = all_streams(redis).await?;
    try_join_all(streams.into_iter().map(|key| stream_backlog(redis, key, dated))).await
}

async fn stream_backlog(redis: &RedisStore, stream: String, dated: bool) -> Result<StreamBacklog, StoreError> {
    let (events, oldest_ms) = match group_info(redis, &stream).await? {
        // No group yet: every entry is waiting.
        None => {
            let len: u64 = redis.client().xlen(stream.as_str()).await?;
            let oldest = if dated && len > 0 {
                first_after(redis, &stream, "-").await?
            } else {
                None
            };
            (len, oldest)
        }
        Some(info) => {
            let undelivered = match info.lag {
                Some(lag) => lag,
                None => redis
                    .client()
                    .xlen::<u64, _>(stream.as_str())
                    .await?
                    .saturating_sub(info.pending),
            };
            let oldest = if !dated {
                None
            } else if info.pending > 0 {
                oldest_pending(redis, &stream)
                    .await?
                    .as_deref()
                    .and_then(split_id)
                    .map(|(ms, _)| ms)
            } else if undelivered > 0 {
                first_after(redis, &stream, &format!("({}", info.last_delivered)).await?
            } else {
                None
            };
            (info.pending + undelivered, oldest)
        }
    };
    Ok(StreamBacklog {
        stream,
        events,
        oldest_ms,
    })
}

/// Events not yet persisted, over every stream: pending plus undelivered.
///
/// # Errors
/// Redis failures.
pub async fn backlog(redis: &RedisStore) -> Result<u64, StoreError> {
    Ok(per_stream(redis, false).await?.iter().map(|b| b.events).sum())
}

/// Age in seconds of the oldest event of `backlogs` (0 when none).
pub fn lag_of(backlogs: &[StreamBacklog]) -> f64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    backlogs
        .iter()
        .filter_map(|b| b.oldest_ms)
        .min()
        .map_or(0.0, |ms| (now - ms).max(0) as f64 / 1000.0)
}

/// Age in seconds of the oldest event not yet persisted (0 when none).
///
/// # Errors
/// Redis failures.
pub async fn lag_seconds(redis: &RedisStore) -> Result<f64, StoreError> {
    Ok(lag_of(&backlogs(redis).await?))
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

    fn bulk(s: &str) -> Value {
        Value::String(s.into())
    }

    fn entry(id: &str, kind: &str, data: &str) -> Value {
        Value::Array(vec![bulk(id), Value::Array(vec![bulk(kind), bulk(data)])])
    }

    /// As entries were written before the kind named the field.
    fn earlier_entry(id: &str, kind: &str, data: &str) -> Value {
        Value::Array(vec![
            bulk(id),
            Value::Array(vec![bulk("k"), bulk(kind), bulk("d"), bulk(data)]),
        ])
    }

    #[test]
    fn ids_split_and_advance() {
        assert_eq!(split_id("1700000000000-3"), Some((1_700_000_000_000, 3)));
        assert_eq!(next_id("5-9"), "5-10");
        assert_eq!(split_id("nope"), None);
        assert_eq!(split_id("1-"), None);
        assert_eq!(split_id("1-2-3"), None);
    }

    #[test]
    fn a_read_reply_becomes_entries_and_a_deleted_one_has_no_kind() {
        let stream: Arc<str> = "tr:{u:1}:ev".into();
        let entries = Value::Array(vec![
            entry("5-1", "ledger", "{}"),
            Value::Array(vec![bulk("5-2"), Value::Null]),
            entry("6-0", "seat", "[]"),
            earlier_entry("6-1", "token", "{\"a\":1}"),
        ]);
        let reply = Value::Array(vec![Value::Array(vec![bulk("tr:{u:1}:ev"), entries])]);
        let mut out = Vec::new();
        parse_read(&stream, reply, &mut out).unwrap();
        let got: Vec<_> = out
            .iter()
            .map(|e| (e.id(), e.kind.as_str().to_owned(), e.data.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("5-1".into(), "ledger".into(), Bytes::from("{}")),
                ("5-2".into(), "".into(), Bytes::new()),
                ("6-0".into(), "seat".into(), Bytes::from("[]")),
                ("6-1".into(), "token".into(), Bytes::from("{\"a\":1}")),
            ]
        );
        assert_eq!(out[0].kind, Kind::Ledger);
        assert_eq!(out[3].kind, Kind::Token);
        assert!(parse_read(&stream, Value::Null, &mut out).is_ok());
        assert!(parse_read(&stream, bulk("nope"), &mut out).is_err());
    }
}
