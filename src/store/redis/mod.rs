//! Redis: the hot state, changed only by the Lua scripts of `lua/`.
//!
//! Layout (every key under `KEY_PREFIX`, see [`keys`]):
//!
//! - `{c:<concert>}` — one tag per concert: the waiting room (`q:wait` by
//!   arrival, `q:act` by expiry, `q:seen` sightings, `t:<token>` tokens), the
//!   schedules (`s:<sid>`), one byte a seat (`seats:<sid>`) with its owner
//!   (`own:<sid>`), per-user seat counts for the purchase limit (`uc:<sid>`),
//!   reservations (`r:<rid>`), holds by expiry (`hx`), payments (`p:<pid>`),
//!   sagas in flight (`paying`, `refunding`) and the stream `ev`.
//! - `{u:<bucket>}` — wallets (`w:<uid>`: balance, version, key hash),
//!   recent history (`h:<uid>`), saga records (`pay:<pid>`, `ref:<rid>`),
//!   idempotency records, the user's concerts (`uc:<uid>`) and the stream `ev`.
//! - plain keys — id sequences, the catalog, schedule→concert, the stream set.
//!
//! Every change is one script that checks, changes and appends the event
//! describing the change (the entity's new state as JSON) to its tag's
//! stream, atomically; the write-behind worker projects the streams into
//! Postgres.

pub mod keys;
pub mod lane;
pub mod scripts;

use std::sync::Arc;
use std::time::Duration;

use fred::clients::{Client, Pool};
use fred::interfaces::ClientLike;
use fred::types::config::{Config, ReconnectPolicy};
use fred::types::scripts::Script;
use fred::types::Value;

pub use keys::Keys;
pub use scripts::{Refusal, Scripts};

use super::StoreError;
use crate::config::RedisSettings;

/// Connections in the pool. Each one pipelines every command sent to it, so
/// a few saturate one Redis core.
const POOL_SIZE: usize = 4;

/// Longest wait for any one command, so that a dead Redis turns into a 500
/// (and a 503 on `/readyz`) instead of a hung request.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// The Redis side of the service: a client pool, the key builder and the
/// scripts. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    pool: Pool,
    keys: Keys,
    scripts: Arc<Scripts>,
}

impl RedisStore {
    /// Starts connecting (and reconnecting, forever) to `settings.url`. Waits
    /// up to two seconds for the first connection; a Redis that is down at
    /// startup is retried in the background, so the process still starts
    /// and reports itself not ready.
    ///
    /// # Errors
    /// A malformed URL.
    pub async fn connect(settings: &RedisSettings) -> Result<Self, StoreError> {
        let config = Config::from_url(&settings.url)?;
        let pool = fred::types::Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.max_command_attempts = 2;
            })
            .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
            .build_pool(POOL_SIZE)?;
        pool.connect_pool();
        if tokio::time::timeout(Duration::from_secs(2), pool.wait_for_connect())
            .await
            .is_err()
        {
            tracing::warn!("redis is not answering yet; retrying in the background");
        }
        Ok(Self {
            pool,
            keys: Keys::new(&settings.key_prefix),
            scripts: Arc::new(Scripts::new()),
        })
    }

    /// The key builder.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The scripts.
    pub fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    /// A client of the pool, for plain commands.
    pub fn client(&self) -> &Client {
        self.pool.next()
    }

    /// A client with a connection of its own, for a command that blocks
    /// its connection (`XREADGROUP … BLOCK`) and so must not share one with
    /// the pool's commands. Quit it when done.
    ///
    /// # Errors
    /// Redis failures.
    pub async fn dedicated(&self) -> Result<Client, StoreError> {
        let client = self.pool.next().clone_new();
        client.init().await?;
        Ok(client)
    }

    /// Runs `script` on the tag whose base is `base`.
    ///
    /// # Errors
    /// Redis failures and script errors.
    pub async fn eval(&self, script: &Script, base: String, args: Vec<Value>) -> Result<Reply, StoreError> {
        eval_on(self.client(), script, base, args).await
    }

    /// Runs `script` on the tag whose base is `base`, down the one
    /// connection of `tag_id`: calls made one after another for one tag run
    /// in Redis in the order made, even while earlier ones are in flight.
    ///
    /// # Errors
    /// Redis failures and script errors.
    pub async fn eval_in_order(
        &self,
        tag_id: i64,
        script: &Script,
        base: String,
        args: Vec<Value>,
    ) -> Result<Reply, StoreError> {
        let clients = self.pool.clients();
        eval_on(
            &clients[tag_id.unsigned_abs() as usize % clients.len()],
            script,
            base,
            args,
        )
        .await
    }

    /// Loads every script, so the first requests skip the `NOSCRIPT` retry.
    ///
    /// # Errors
    /// Redis failures.
    pub async fn load_scripts(&self) -> Result<(), StoreError> {
        for script in self.scripts.all() {
            script.load(self.client()).await?;
        }
        Ok(())
    }

    /// Whether Redis answers a `PING` within half a second.
    pub async fn is_up(&self) -> bool {
        let ping = self.client().ping::<String>(None);
        matches!(tokio::time::timeout(Duration::from_millis(500), ping).await, Ok(Ok(_)))
    }

    /// Closes every connection.
    pub async fn quit(&self) {
        let _ = self.pool.quit().await;
    }
}

/// Runs `script` on the tag whose base is `base` through `client`.
async fn eval_on(client: &Client, script: &Script, base: String, args: Vec<Value>) -> Result<Reply, StoreError> {
    let value: Value = script.evalsha_with_reload(client, base, args).await?;
    Ok(Reply::from_value(value))
}

/// The array a script returns, with typed access by position.
#[derive(Debug)]
pub struct Reply(Vec<Value>);

impl Reply {
    fn from_value(value: Value) -> Self {
        match value {
            Value::Array(items) => Self(items),
            Value::Null => Self(Vec::new()),
            other => Self(vec![other]),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the reply is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks the reply of a script answering `count` requests with `slots`
    /// elements each.
    ///
    /// # Errors
    /// Any other length.
    pub fn expect_slots(&self, count: usize, slots: usize) -> Result<(), StoreError> {
        if self.0.len() == count * slots {
            return Ok(());
        }
        Err(StoreError::Reply(format!(
            "{} elements for {count} requests of {slots}",
            self.0.len()
        )))
    }

    /// The element at `i` as text.
    ///
    /// # Errors
    /// A missing element or one that is not text.
    pub fn str(&self, i: usize) -> Result<&str, StoreError> {
        match self.0.get(i) {
            Some(Value::String(s)) => Ok(s),
            Some(Value::Bytes(b)) => std::str::from_utf8(b).map_err(|_| bad(i, "utf-8 text")),
            _ => Err(bad(i, "text")),
        }
    }

    /// The element at `i` as raw bytes.
    ///
    /// # Errors
    /// A missing element or one that is not a string.
    pub fn bytes(&self, i: usize) -> Result<&[u8], StoreError> {
        match self.0.get(i) {
            Some(Value::String(s)) => Ok(s.as_bytes()),
            Some(Value::Bytes(b)) => Ok(b),
            _ => Err(bad(i, "bytes")),
        }
    }

    /// The element at `i` as an integer (Lua numbers arrive as integers;
    /// numeric text is accepted too).
    ///
    /// # Errors
    /// A missing element or one that is not a number.
    pub fn i64(&self, i: usize) -> Result<i64, StoreError> {
        match self.0.get(i) {
            Some(Value::Integer(n)) => Ok(*n),
            Some(v) => v.as_i64().ok_or_else(|| bad(i, "integer")),
            None => Err(bad(i, "integer")),
        }
    }

    /// The element at `i` when it is an integer, and not numeric text:
    /// for replies whose reads take one slot or several.
    pub fn integer(&self, i: usize) -> Option<i64> {
        match self.0.get(i) {
            Some(Value::Integer(n)) => Some(*n),
            _ => None,
        }
    }

    /// The status code (first element) and, when it names a refusal, which.
    ///
    /// # Errors
    /// An empty reply.
    pub fn status(&self) -> Result<Status<'_>, StoreError> {
        let code = self.str(0)?;
        Ok(match Refusal::parse(code) {
            Some(refusal) => Status::Refused(refusal, self.str(1).ok()),
            None => Status::Done(code),
        })
    }
}

/// How a script ended.
#[derive(Debug)]
pub enum Status<'a> {
    /// A success code (`OK`, `REPLAY`, …).
    Done(&'a str),
    /// A refusal with its optional detail.
    Refused(Refusal, Option<&'a str>),
}

fn bad(i: usize, wanted: &str) -> StoreError {
    StoreError::Reply(format!("element {i} is not {wanted}"))
}
