//! Queue tokens: `<concert id>.<22 base64url chars>` (128 random bits).
//!
//! The concert id inside tells which hash tag holds the token, so a token
//! alone is enough to find its state; the random part makes it an
//! unguessable capability.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

/// Length of the random part.
const SECRET_LEN: usize = 22;

/// A well-formed queue token (whether it exists is for Redis to say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueToken {
    raw: String,
    concert_id: i64,
}

/// A token as a map key: its concert and its random part, held inline, so
/// that a lookup in a map of many tokens neither allocates nor follows a
/// pointer to compare keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey {
    concert_id: i64,
    secret: [u8; SECRET_LEN],
}

impl QueueToken {
    /// A new token for a concert.
    pub fn generate(concert_id: i64) -> Self {
        let mut secret = [0u8; 16];
        rand::rng().fill_bytes(&mut secret);
        Self {
            raw: format!("{concert_id}.{}", URL_SAFE_NO_PAD.encode(secret)),
            concert_id,
        }
    }

    /// Checks the shape of a token.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() > 64 {
            return None;
        }
        let (concert, secret) = raw.split_once('.')?;
        // Digits only, no leading zero: one text per token, so that equal
        // keys are equal tokens.
        let canonical = concert.bytes().all(|b| b.is_ascii_digit()) && !concert.starts_with('0');
        let concert_id: i64 = concert.parse().ok().filter(|c| canonical && *c > 0)?;
        let well_formed = secret.len() == SECRET_LEN
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self {
            raw: raw.to_owned(),
            concert_id,
        })
    }

    /// The token text.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The concert it queues for.
    pub fn concert_id(&self) -> i64 {
        self.concert_id
    }

    /// The token as a map key: its concert and the random part its text
    /// ends with.
    pub fn key(&self) -> TokenKey {
        let secret = self.raw.as_bytes()[self.raw.len() - SECRET_LEN..]
            .try_into()
            .expect("a token ends with its random part");
        TokenKey {
            concert_id: self.concert_id,
            secret,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_back_and_differ() {
        let t = QueueToken::generate(12);
        assert_eq!(QueueToken::parse(t.as_str()), Some(t.clone()));
        assert_eq!(t.concert_id(), 12);
        assert!(t.as_str().len() <= 64);
        assert_ne!(QueueToken::generate(12), t);
    }

    #[test]
    fn keys_tell_tokens_apart_by_concert_and_secret() {
        let t = QueueToken::parse("12.aaaaaaaaaaaaaaaaaaaaaa").unwrap();
        assert_eq!(QueueToken::parse("12.aaaaaaaaaaaaaaaaaaaaaa").unwrap().key(), t.key());
        assert_ne!(QueueToken::parse("13.aaaaaaaaaaaaaaaaaaaaaa").unwrap().key(), t.key());
        assert_ne!(QueueToken::parse("12.aaaaaaaaaaaaaaaaaaaaab").unwrap().key(), t.key());
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        for raw in [
            "",
            "12",
            "12.short",
            "x.aaaaaaaaaaaaaaaaaaaaaa",
            "0.aaaaaaaaaaaaaaaaaaaaaa",
            "1.aaaaaaaaaaaaaaaaaaaaa*",
            "012.aaaaaaaaaaaaaaaaaaaaaa",
            "+12.aaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(QueueToken::parse(raw), None, "{raw}");
        }
    }
}
