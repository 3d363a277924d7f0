//! The two stores: Redis holds the hot state and answers every request;
//! Postgres is the durable projection the write-behind fills.

pub mod postgres;
pub mod redis;

/// A failure of a store, as opposed to a refusal the domain expects.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis")]
    Redis(#[from] fred::error::Error),
    #[error("postgres")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("postgres pool")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("unexpected reply from a store: {0}")]
    Reply(String),
}

impl StoreError {
    /// The same failure again, for each of several callers it failed.
    pub fn duplicate(&self) -> Self {
        match self {
            Self::Redis(e) => Self::Redis(e.clone()),
            other => Self::Reply(other.to_string()),
        }
    }
}
