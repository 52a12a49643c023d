//! `token-vault`: `serve` runs the daemon; every other command is a client
//! of its socket. See `token-vault --help`.

use clap::Parser;
use std::process::ExitCode;
use vault_server::cli::{Cli, Command};
use vault_server::client::VaultClient;
use vault_server::{commands, daemon, paths};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that went away (`token-vault list | head -1`) is not worth a message.
        Err(err) if is_broken_pipe(&err) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("token-vault: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        // The daemon builds its own runtime, and may take its socket from its config file.
        Command::Serve(args) => daemon::serve(args, cli.socket.as_deref()),
        command => {
            let socket = match cli.socket {
                Some(path) => path,
                None => paths::default_socket()?,
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(commands::dispatch(&VaultClient::new(socket), command))
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
