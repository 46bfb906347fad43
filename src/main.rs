use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    kubeward::cli::run(kubeward::cli::Cli::parse())
}
