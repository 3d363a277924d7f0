//! Users and their API keys.
//!
//! A key is `trk_<user id>_<43 base64url chars>` (256 random bits). Only its
//! SHA-256 is stored, in the user's wallet hash; the user id inside the key
//! says which wallet bucket to look in, so no global key index exists and
//! every user's state lives in one hash tag. Once seen, a key's owner is
//! cached in-process: keys never change owner.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fred::interfaces::{HashesInterface, KeysInterface};
use quick_cache::sync::Cache;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::redis::RedisStore;
use crate::store::StoreError;
use crate::time::Millis;

/// Most cached keys (32 + 8 bytes each, plus overhead: tens of MB at most).
const AUTH_CACHE_CAPACITY: usize = 500_000;

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("name must be 1-64 characters")]
    InvalidName,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A validated user name: 1-64 characters.
#[derive(Debug, Clone)]
pub struct UserName(String);

impl UserName {
    /// Validates a name.
    ///
    /// # Errors
    /// [`UserError::InvalidName`] when empty, blank or over 64 characters.
    pub fn parse(name: String) -> Result<Self, UserError> {
        let chars = name.chars().count();
        if chars == 0 || chars > 64 || name.trim().is_empty() {
            return Err(UserError::InvalidName);
        }
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A freshly created user, with the only copy of its API key.
#[derive(Debug, Serialize)]
pub struct NewUser {
    pub id: i64,
    pub name: String,
    pub api_key: String,
    pub balance: i64,
    pub created_at: String,
}

/// Cache of API key hash → user id, shared by its clones.
pub type AuthCache = Arc<Cache<[u8; 32], i64>>;

/// An empty key cache.
pub fn auth_cache() -> AuthCache {
    Arc::new(Cache::new(AUTH_CACHE_CAPACITY))
}

/// The hex SHA-256 stored for a key.
pub fn hash_key(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn new_key(user_id: i64) -> String {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    format!("trk_{user_id}_{}", URL_SAFE_NO_PAD.encode(secret))
}

/// The user id a key claims, if it has the shape of a key.
fn claimed_user(key: &str) -> Option<i64> {
    let rest = key.strip_prefix("trk_")?;
    let (id, secret) = rest.split_once('_')?;
    (secret.len() == 43).then_some(())?;
    id.parse().ok().filter(|id: &i64| *id > 0)
}

/// Registers a user: a new id, its wallet at balance 0, and a new key.
///
/// # Errors
/// Store failures.
#[tracing::instrument(skip_all)]
pub async fn create_user(redis: &RedisStore, name: UserName) -> Result<NewUser, UserError> {
    let keys = redis.keys();
    let id: i64 = redis
        .client()
        .incr(keys.sequence("users"))
        .await
        .map_err(StoreError::from)?;
    let api_key = new_key(id);
    let reply = redis
        .eval(
            &redis.scripts().create_user,
            keys.wallet(id),
            vec![id.into(), name.as_str().into(), hash_key(&api_key).into()],
        )
        .await?;
    #[derive(serde::Deserialize)]
    struct Created {
        created_at: i64,
    }
    let mut json = reply.bytes(0)?.to_vec();
    let created: Created = simd_json::serde::from_slice(&mut json).map_err(|e| StoreError::Reply(e.to_string()))?;
    Ok(NewUser {
        id,
        name: name.0,
        api_key,
        balance: 0,
        created_at: Millis(created.created_at).to_rfc3339(),
    })
}

/// The user a key belongs to, or `None` for an unknown key.
///
/// # Errors
/// Store failures.
pub async fn authenticate(redis: &RedisStore, cache: &AuthCache, key: &str) -> Result<Option<i64>, StoreError> {
    let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    if let Some(user) = cache.get(&digest) {
        return Ok(Some(user));
    }
    let Some(user) = claimed_user(key) else {
        return Ok(None);
    };
    // Boxed: a miss is rare, and a command's future (about 5 KB) would
    // otherwise make every authenticated request's future that much larger.
    let stored: Option<String> = Box::pin(redis.client().hget(redis.keys().wallet_hash(user), "key_hash")).await?;
    if stored.as_deref() == Some(hex(&digest).as_str()) {
        cache.insert(digest, user);
        Ok(Some(user))
    } else {
        Ok(None)
    }
}

/// Whether a user exists (their wallet hash does).
///
/// # Errors
/// Store failures.
pub async fn exists(redis: &RedisStore, user_id: i64) -> Result<bool, StoreError> {
    Ok(redis.client().exists(redis.keys().wallet_hash(user_id)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_their_user_and_256_bits() {
        let key = new_key(42);
        assert_eq!(claimed_user(&key), Some(42));
        assert_ne!(new_key(42), key);
        assert_eq!(claimed_user("trk_42_short"), None);
        assert_eq!(claimed_user("nope"), None);
    }

    #[test]
    fn names_are_one_to_sixty_four_characters() {
        assert!(UserName::parse("a".into()).is_ok());
        assert!(UserName::parse("가".repeat(64)).is_ok());
        assert!(UserName::parse("가".repeat(65)).is_err());
        assert!(UserName::parse(String::new()).is_err());
        assert!(UserName::parse("   ".into()).is_err());
    }
}
