//! The `poolwatch` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use poolwatch::cli::{self, Cli};

/// One thread runs everything (a blocking pool aside). The operator's work is small steps between
/// waits (a reconcile, a signed call, a status patch), and 10,000 watches keep one thread about
/// 12 % busy. On a multi-threaded runtime nearly every step woke another thread, a futex call and
/// context switches per poll: 0.84 ms of CPU per poll at 500 watches, 0.73 ms on one thread
/// (`make bench-peers`; `bench/results/peers-profile.md`).
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    cli::run(Cli::parse()).await
}
