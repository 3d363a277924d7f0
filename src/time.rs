//! Instants as the scripts keep them: milliseconds since the Unix epoch,
//! from the Redis clock.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

/// Milliseconds since the epoch; serializes as an RFC 3339 UTC string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(transparent)]
pub struct Millis(pub i64);

impl Millis {
    /// RFC 3339 in UTC, with a fraction only when there is one.
    pub fn to_rfc3339(self) -> String {
        DateTime::<Utc>::from_timestamp_millis(self.0)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    /// Parses an RFC 3339 time with any offset.
    pub fn parse(text: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| Self(t.timestamp_millis()))
    }

    /// The local clock (only for defaults such as "booking opens now"; every
    /// expiry uses the Redis clock).
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_parses_rfc3339() {
        let t = Millis::parse("2026-12-24T19:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-24T19:00:00Z");
        assert_eq!(Millis(t.0 + 5).to_rfc3339(), "2026-12-24T19:00:00.005Z");
        assert_eq!(Millis::parse("2026-12-25T04:00:00+09:00"), Some(t));
        assert_eq!(Millis::parse("tomorrow"), None);
    }
}
