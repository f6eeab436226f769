//! The `poolwatch` command line: one binary, one subcommand per job.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// What `poolwatch --version` prints after the name: the version and the source revision the
/// binary was built from (see `build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("POOLWATCH_REVISION"),
    ")"
);

/// Command-line entry point of the `poolwatch` binary.
#[derive(Debug, Parser)]
#[command(name = "poolwatch", version = VERSION, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `poolwatch`.
// Parsed once at startup: the size of the `run` variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator: poll ModelArts for every PoolStatisticsWatch and write their status.
    // A flag given twice takes its last value, as Go programs' flags do: the chart appends
    // `extraArgs` after the flags it renders, so `--upstream-timeout=10s` there overrides them.
    #[command(args_override_self = true)]
    Run(crate::operator::RunArgs),
    /// Print the PoolStatisticsWatch CustomResourceDefinition as YAML.
    Crd,
    /// Call the ModelArts pool-statistics API once and print the result (checks credentials).
    Fetch(crate::fetch::FetchArgs),
    /// Serve a local ModelArts simulator (statistics, pool list and IAM project APIs) for tests and demos.
    Simulator(crate::simulator::SimulatorArgs),
}

/// Runs the chosen subcommand and turns its outcome into the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run(args) => match crate::operator::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::FAILURE
            }
        },
        Command::Crd => print_crd(),
        Command::Fetch(args) => crate::fetch::run(args).await,
        Command::Simulator(args) => crate::simulator::run(args).await,
    }
}

fn print_crd() -> ExitCode {
    match crate::api::crd::crd_yaml() {
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    #[test]
    fn a_run_flag_given_twice_takes_its_last_value_and_repeatable_ones_add_up() {
        let cli = Cli::try_parse_from([
            "poolwatch",
            "run",
            "--upstream-timeout=30s",
            "--watch-namespace=a",
            "--watch-namespace=b",
            "--upstream-timeout=10s",
        ])
        .expect("the chart's extraArgs may repeat a rendered flag");
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.upstream_timeout, std::time::Duration::from_secs(10));
        assert_eq!(args.watch_namespaces, ["a", "b"]);
    }
}
