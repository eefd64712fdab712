//! The `aivault` binary: parse arguments, run, map errors to one stderr line and an exit code.

use clap::Parser as _;

fn main() {
    let cli = aivault::cli::Cli::parse();
    if let Err(e) = aivault::cli::run(cli) {
        aivault::cli::render::eprint_line(&format!("error: {e}"));
        std::process::exit(e.exit_code());
    }
}
