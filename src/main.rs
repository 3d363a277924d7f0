//! The `ticketrush` binary: a shim over [`ticketrush::cli`].

use std::process::ExitCode;

use clap::Parser;
use mimalloc::MiMalloc;

/// A request allocates and frees a few dozen small buffers; mimalloc's
/// per-thread free lists cost a fraction of glibc malloc's (about a tenth of
/// the server's CPU under load went to malloc and free).
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> ExitCode {
    ticketrush::telemetry::init_logging();
    let cli = ticketrush::cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime can always be built here");
    runtime.block_on(ticketrush::cli::run(cli))
}
