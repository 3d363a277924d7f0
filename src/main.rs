//! The `ticketrush` binary: a shim over [`ticketrush::cli`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    ticketrush::telemetry::init_logging();
    let cli = ticketrush::cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime can always be built here");
    runtime.block_on(ticketrush::cli::run(cli))
}
