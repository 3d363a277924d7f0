//! Integration tests: the real server, in process, against the real Redis
//! and Postgres that `scripts/services.sh` provides. Every test gets its own
//! Redis key prefix and its own freshly migrated database, so they run in
//! parallel.

mod helpers;

mod booking;
mod errors;
mod payment;
mod queue;
mod wallet;
mod writebehind;
