//! The `poolwatch` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use poolwatch::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    cli::run(Cli::parse()).await
}
