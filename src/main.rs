//! The `aivault` binary: parse arguments, run, map errors to one stderr line and an exit code.

use clap::Parser as _;

/// jemalloc, measured against the system allocator in one benchmark run (benches/README.md): about
/// 4 % less proxy CPU per keep-alive request and 23 instead of 27.5 KiB per idle intercepted
/// connection (mimalloc was faster still but cost 10 KiB more per idle connection).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
