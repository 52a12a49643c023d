//! `oauth-authorize`: see the library for the flow; this only reports.

use clap::Parser;
use std::process::ExitCode;

/// The conventional exit status after Ctrl-C.
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let args = authorize_cli::cli::Args::parse();
    match authorize_cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("oauth-authorize: error: {err:#}");
            match err.downcast_ref::<authorize_cli::FlowError>() {
                Some(authorize_cli::FlowError::Interrupted) => ExitCode::from(EXIT_INTERRUPTED),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
