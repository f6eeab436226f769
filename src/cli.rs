//! The `poolwatch` command line: one binary, one subcommand per job.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Command-line entry point of the `poolwatch` binary.
#[derive(Debug, Parser)]
#[command(name = "poolwatch", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `poolwatch`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the PoolStatisticsWatch CustomResourceDefinition as YAML.
    Crd,
}

/// Runs the chosen subcommand and turns its outcome into the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Crd => print_crd(),
    }
}

fn print_crd() -> ExitCode {
    match crate::crd::crd_yaml() {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: could not render the CRD: {error}");
            ExitCode::FAILURE
        }
    }
}
