//! `autorma`: classify photos of returned items.
//!
//! This binary is the wiring: it parses the command line and the configuration (file + env),
//! validates them before doing anything, and hands the crates their parts. The pipeline
//! itself lives in `autorma-classifier`; the embedded backends in `autorma-ingest` (folder
//! source), `autorma-core` (folder store) and `autorma-sink` (result files); the HTTP API in
//! `autorma-api`.

mod allocator;
mod cli;
mod commands;
mod config;
mod shutdown;
mod telemetry;

use std::process::ExitCode;

fn main() -> ExitCode {
    allocator::tune();
    let (cli, file) = match config::parse_command_line() {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    telemetry::logs::init(cli.log.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("autorma").build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::dispatch(cli, file)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
