//! `token-vault completions SHELL`: prints a completion script generated
//! from the command line's own definition, so it never drifts from it.

use crate::cli::Cli;
use clap::CommandFactory;
use clap_complete::Shell;

/// Writes the completion script for `shell` to stdout.
pub fn run_completions(shell: Shell) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "token-vault", &mut script);
    super::print_stdout(&String::from_utf8(script)?)
}
