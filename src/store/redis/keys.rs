//! Every Redis key, built in one place.
//!
//! All keys start with `KEY_PREFIX`. Keys that scripts touch carry a cluster
//! hash tag, `{c:<concert>}` or `{u:<bucket>}`, so every script stays in one
//! slot. A script gets the tag's *base* (`tr:{c:42}:`) as `KEYS[1]` and
//! appends the suffixes listed in `lua/lib/concert.lua` and
//! `lua/lib/wallet.lua`.

use std::sync::Arc;

/// How many wallet buckets (`{u:<bucket>}` tags) users are spread over, by
/// user id modulo. Fixed forever: changing it moves every wallet.
pub const WALLET_BUCKETS: i64 = 16;

/// Builds key names under one prefix.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: Arc<str>,
}

impl Keys {
    /// Keys under `prefix` (validated by the settings: no braces or colons).
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.into() }
    }

    /// The prefix itself.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Base of a concert's tag: queue, tokens, seat maps, reservations,
    /// payments and its event stream (`…ev`). No TTL; owned by the scripts.
    pub fn concert(&self, concert_id: i64) -> String {
        format!("{}:{{c:{concert_id}}}:", self.prefix)
    }

    /// The wallet bucket of a user.
    pub fn bucket_of(user_id: i64) -> i64 {
        user_id.rem_euclid(WALLET_BUCKETS)
    }

    /// Base of a wallet bucket's tag: wallets (hash `w:<uid>`), recent
    /// history (list `h:<uid>`), saga records, idempotency records, the
    /// user's concerts (set `uc:<uid>`) and the bucket's event stream.
    pub fn bucket(&self, bucket: i64) -> String {
        format!("{}:{{u:{bucket}}}:", self.prefix)
    }

    /// Base of the wallet bucket holding `user_id`.
    pub fn wallet(&self, user_id: i64) -> String {
        self.bucket(Self::bucket_of(user_id))
    }

    /// Hash `w:<uid>` of a user: name, key_hash, created_at, balance, version.
    pub fn wallet_hash(&self, user_id: i64) -> String {
        format!("{}w:{user_id}", self.wallet(user_id))
    }

    /// List `h:<uid>`: the newest ledger entries as JSON, newest first.
    pub fn history(&self, user_id: i64) -> String {
        format!("{}h:{user_id}", self.wallet(user_id))
    }

    /// Set `uc:<uid>`: ids of the concerts the user has queued for, so that a
    /// reservation or payment id can be found without a global index.
    pub fn user_concerts(&self, user_id: i64) -> String {
        format!("{}uc:{user_id}", self.wallet(user_id))
    }

    /// The event stream of a tag base.
    pub fn stream(base: &str) -> String {
        format!("{base}ev")
    }

    /// String: the first answer of a user's request sent with an
    /// Idempotency-Key, in the tag base `base` of the script that answered
    /// it; `scope` is `charge`, `hold` or `pay`, as the scripts name it.
    pub fn idempotency(base: &str, user_id: i64, scope: &str, key: &str) -> String {
        format!("{base}idem:{user_id}:{scope}:{key}")
    }

    /// String: the JSON of a payment in a concert's tag.
    pub fn payment(&self, concert_id: i64, payment_id: &str) -> String {
        format!("{}p:{payment_id}", self.concert(concert_id))
    }

    /// Counter of the ids of `users`, `concerts` or `schedules`. Plain key.
    pub fn sequence(&self, name: &str) -> String {
        format!("{}:seq:{name}", self.prefix)
    }

    /// Sorted set of concert ids by id: the catalog. Plain key.
    pub fn catalog(&self) -> String {
        format!("{}:catalog", self.prefix)
    }

    /// String: the JSON of a concert with its schedules. Immutable. Plain key.
    pub fn catalog_entry(&self, concert_id: i64) -> String {
        format!("{}:concert:{concert_id}", self.prefix)
    }

    /// String: the concert id of a schedule. Immutable. Plain key.
    pub fn schedule_concert(&self, schedule_id: i64) -> String {
        format!("{}:schedule:{schedule_id}", self.prefix)
    }

    /// Set of every event stream the write-behind reads. Plain key.
    pub fn streams(&self) -> String {
        format!("{}:streams", self.prefix)
    }

    /// Every wallet bucket's stream (they exist from the start).
    pub fn wallet_streams(&self) -> impl Iterator<Item = String> + '_ {
        (0..WALLET_BUCKETS).map(|b| Self::stream(&self.bucket(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concert_and_wallet_keys_carry_their_hash_tag() {
        let keys = Keys::new("tr");
        assert_eq!(keys.concert(42), "tr:{c:42}:");
        assert_eq!(keys.wallet(17), "tr:{u:1}:");
        assert_eq!(keys.wallet_hash(17), "tr:{u:1}:w:17");
        assert_eq!(Keys::stream(&keys.concert(1)), "tr:{c:1}:ev");
    }
}
