use std::process::ExitCode;

use clap::Parser;

/// Parsing allocates hundreds of thousands of small strings and vectors per run; mimalloc
/// makes parse + audit of the benchmark corpus some 15% faster than the system allocator and
/// frees a parsed tree three times as fast (`cargo bench --bench audit`, docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    kubeward::cli::run(kubeward::cli::Cli::parse())
}
