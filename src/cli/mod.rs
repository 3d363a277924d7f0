//! The command line (API.md "Command line").

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::store::postgres;
use crate::store::redis::RedisStore;
use crate::{reconcile, shutdown, writebehind, Background};

mod seed;

/// ticketrush: a Redis-first waiting room and seat booking server.
#[derive(Debug, Parser)]
#[command(name = "ticketrush", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// HTTP server plus the write-behind worker and the sweeper.
    Serve,
    /// The write-behind worker alone (several may run at once).
    Worker,
    /// Applies the Postgres migrations.
    Migrate,
    /// Loads data.
    Seed {
        /// A demo concert with three dates, and three users with money.
        #[arg(long)]
        demo: bool,
    },
    /// Compares Redis with Postgres after the write-behind drained; exits
    /// non-zero listing every difference.
    Verify,
    /// Loads the Redis state from Postgres.
    Rebuild,
}

/// Runs a command; the exit code says how it went.
pub async fn run(cli: Cli) -> ExitCode {
    match dispatch(cli).await {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error.cause_chain = ?e, "failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = cli.settings;
    match cli.command {
        Command::Serve => {
            let listener = crate::http::bind(settings.http.bind_addr)
                .with_context(|| format!("binding {}", settings.http.bind_addr))?;
            crate::run(settings, listener, shutdown::signal(), Background::default()).await?;
        }
        Command::Worker => {
            let redis = RedisStore::connect(&settings.redis).await?;
            let pg = postgres::connect(&settings.postgres)?;
            postgres::migrate::run(&pg).await.context("migrating postgres")?;
            let stop = CancellationToken::new();
            let reporter = tokio::spawn(writebehind::report_until_stopped(redis.clone(), stop.clone()));
            let worker = tokio::spawn(writebehind::Worker::new(redis.clone(), pg).run_until_stopped(stop.clone()));
            shutdown::signal().await;
            stop.cancel();
            worker.await??;
            reporter.await?;
            redis.quit().await;
        }
        Command::Migrate => {
            let pg = postgres::connect(&settings.postgres)?;
            let applied = postgres::migrate::run(&pg).await.context("migrating postgres")?;
            println!("migrations applied: {applied}");
        }
        Command::Seed { demo } => {
            if !demo {
                anyhow::bail!("nothing to seed: pass --demo");
            }
            let redis = RedisStore::connect(&settings.redis).await?;
            seed::demo(&redis).await?;
            redis.quit().await;
        }
        Command::Verify => return verify(&settings).await,
        Command::Rebuild => {
            let redis = RedisStore::connect(&settings.redis).await?;
            let pg = postgres::connect(&settings.postgres)?;
            let backlog = writebehind::backlog(&redis).await?;
            if backlog > 0 {
                anyhow::bail!("redis holds {backlog} events postgres has not seen; drain them before a rebuild");
            }
            let report = reconcile::rebuild(&redis, &pg).await?;
            println!(
                "rebuilt {} users, {} concerts, {} reservations, {} payments; idempotency keys: {} charges, {} holds, {} payments",
                report.users,
                report.concerts,
                report.reservations,
                report.payments,
                report.charge_keys,
                report.hold_keys,
                report.payment_keys
            );
            redis.quit().await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Settles lapsed holds, drains the write-behind (as a worker of the
/// group), waits for other workers' pending events, then compares.
async fn verify(settings: &Settings) -> anyhow::Result<ExitCode> {
    let redis = RedisStore::connect(&settings.redis).await?;
    let pg = postgres::connect(&settings.postgres)?;
    postgres::migrate::run(&pg).await.context("migrating postgres")?;
    reconcile::settle_expiry(&redis, settings).await?;
    writebehind::Worker::new(redis.clone(), pg.clone())
        .drain(std::time::Duration::from_secs(30))
        .await;
    reconcile::wait_for_drain(&redis, std::time::Duration::from_secs(30)).await?;
    let differences = reconcile::verify(&redis, &pg).await?;
    redis.quit().await;
    if differences.is_empty() {
        println!("redis and postgres agree");
        return Ok(ExitCode::SUCCESS);
    }
    for d in &differences {
        println!("{d}");
    }
    println!("{} differences", differences.len());
    Ok(ExitCode::FAILURE)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_settings_name_their_variable() {
        let err = Cli::try_parse_from(["ticketrush", "--hold-ttl-seconds", "0", "serve"]).unwrap_err();
        assert!(err.to_string().contains("HOLD_TTL_SECONDS"), "{err}");
    }
}
