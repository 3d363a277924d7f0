//! Typed settings, read from the environment variables of API.md "Configuration".
//!
//! Every variable has a working local default. Values are validated by clap
//! while parsing, so a bad value stops the process at startup with an error
//! naming the variable (`invalid value 'x' for '--hold-ttl-seconds
//! <HOLD_TTL_SECONDS>'`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;

/// Everything the server, the worker and the tools need to know.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    #[command(flatten)]
    pub http: HttpSettings,
    #[command(flatten)]
    pub redis: RedisSettings,
    #[command(flatten)]
    pub postgres: PostgresSettings,
    #[command(flatten)]
    pub queue: QueueSettings,
    #[command(flatten)]
    pub booking: BookingSettings,
}

/// The listening socket and the admin secret.
#[derive(Debug, Clone, Args)]
pub struct HttpSettings {
    /// Address the HTTP server binds to.
    #[arg(long, env = "BIND_ADDR", value_name = "BIND_ADDR", default_value = "127.0.0.1:8080")]
    pub bind_addr: SocketAddr,
    /// Bearer token of the admin endpoints; they answer 401 while it is unset.
    #[arg(long, env = "ADMIN_TOKEN", value_name = "ADMIN_TOKEN", value_parser = parse_secret, hide_env_values = true)]
    pub admin_token: Option<SecretString>,
}

/// Where the hot state lives.
#[derive(Debug, Clone, Args)]
pub struct RedisSettings {
    /// Redis server URL.
    #[arg(
        id = "redis_url",
        long = "redis-url",
        env = "REDIS_URL",
        value_name = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub url: String,
    /// Prefix of every Redis key, so that deployments and tests can share one Redis.
    #[arg(long, env = "KEY_PREFIX", value_name = "KEY_PREFIX", default_value = "tr", value_parser = parse_key_prefix)]
    pub key_prefix: String,
}

/// The system of record.
#[derive(Debug, Clone, Args)]
pub struct PostgresSettings {
    /// Postgres URL (`postgres://user[:password]@host:port/database`).
    #[arg(id = "database_url", long = "database-url", env = "DATABASE_URL", value_name = "DATABASE_URL", value_parser = parse_secret, hide_env_values = true,
          default_value = "postgres://postgres@127.0.0.1:5432/ticketrush")]
    pub url: SecretString,
}

/// The waiting room of each concert.
#[derive(Debug, Clone, Args)]
pub struct QueueSettings {
    /// Most tokens of one concert that are ACTIVE at once.
    #[arg(long = "queue-active-max", env = "QUEUE_ACTIVE_MAX", value_name = "QUEUE_ACTIVE_MAX", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub active_max: u32,
    /// How long an ACTIVE token lasts from its activation, in seconds.
    #[arg(long = "queue-active-ttl-seconds", env = "QUEUE_ACTIVE_TTL_SECONDS", value_name = "QUEUE_ACTIVE_TTL_SECONDS",
          default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub active_ttl_seconds: u64,
    /// How long a WAITING token may go unseen before it is dropped, in seconds.
    #[arg(long = "queue-idle-timeout-seconds", env = "QUEUE_IDLE_TIMEOUT_SECONDS", value_name = "QUEUE_IDLE_TIMEOUT_SECONDS",
          default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout_seconds: u64,
}

/// Seat holds.
#[derive(Debug, Clone, Args)]
pub struct BookingSettings {
    /// How long a seat hold lasts, in seconds.
    #[arg(long = "hold-ttl-seconds", env = "HOLD_TTL_SECONDS", value_name = "HOLD_TTL_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub hold_ttl_seconds: u64,
}

impl QueueSettings {
    /// The active lifetime as milliseconds, the unit of the scripts.
    pub fn active_ttl_ms(&self) -> u64 {
        self.active_ttl_seconds * 1000
    }

    /// The idle timeout as milliseconds, the unit of the scripts.
    pub fn idle_timeout_ms(&self) -> u64 {
        self.idle_timeout_seconds * 1000
    }
}

impl BookingSettings {
    /// The hold lifetime.
    pub fn hold_ttl(&self) -> Duration {
        Duration::from_secs(self.hold_ttl_seconds)
    }
}

impl Settings {
    /// Settings with every default, as a test or a tool starts from.
    pub fn defaults() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            settings: Settings,
        }
        <Defaults as clap::Parser>::parse_from(["ticketrush"]).settings
    }
}

fn parse_secret(value: &str) -> Result<SecretString, String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(SecretString::from(value.to_owned()))
}

fn parse_key_prefix(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(value.to_owned())
    } else {
        Err("must be 1-64 characters of [A-Za-z0-9_-]".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_prefix_rejects_braces_and_colons() {
        assert!(parse_key_prefix("tr").is_ok());
        assert!(parse_key_prefix("t{1}").is_err());
        assert!(parse_key_prefix("a:b").is_err());
        assert!(parse_key_prefix("").is_err());
    }
}
