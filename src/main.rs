//! The `aivault` binary: parse arguments, run, map errors to one stderr line and an exit code.

use clap::Parser as _;

fn main() {
    // `aivault run` starts its child through helper stages of this binary (see `sandbox`).
    if let Some(code) = aivault::sandbox::dispatch_helper() {
        std::process::exit(code);
    }
    aivault::sandbox::harden_self();
    let cli = aivault::cli::Cli::parse();
    if let Err(e) = aivault::cli::run(cli) {
        aivault::cli::render::eprint_line(&format!("error: {e}"));
        std::process::exit(e.exit_code());
    }
}
