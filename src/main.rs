use std::process::ExitCode;

use clap::Parser;

/// Parsing allocates hundreds of thousands of small strings and vectors per run; mimalloc
/// frees a parsed tree three times as fast as glibc's allocator (docs/benchmarks.md). Built
/// with `no_thp`: transparent huge pages doubled the server's resident memory for no speed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = kubeward::cli::Cli::parse();
    if !cli.command.speaks_https() {
        // SAFETY: nothing has started a thread yet (argument parsing does not).
        unsafe { kubeward::git::skip_certificate_bundle() };
    }
    kubeward::cli::run(cli)
}
