//! `token-vault exec NAME -- CMD…`: runs CMD with the connection's access
//! token in its environment, for tools that read a token from there (the
//! aws-vault habit).
//!
//! Invariants: the token goes into CMD's environment only, never onto a
//! command line; CMD replaces this process (`execvp`), so its exit status
//! and signals are its own and no token-vault process lingers holding the
//! token. A CMD that cannot be run exits 127 (not found) or 126, as a shell
//! does, with a message on stderr.

use crate::client::{connection_path, VaultClient};
use anyhow::Context;
use chrono::SecondsFormat;
use shared::api::TokenResponse;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The access token's variable in CMD's environment.
pub const ACCESS_TOKEN: &str = "ACCESS_TOKEN";
/// The token's expiry (RFC 3339, UTC), or empty if it has none.
pub const ACCESS_TOKEN_EXPIRY: &str = "ACCESS_TOKEN_EXPIRY";

/// The exit status when CMD is not found, as in a shell.
pub const EXIT_NOT_FOUND: i32 = 127;
/// The exit status when CMD is found but cannot be run, as in a shell.
pub const EXIT_CANNOT_RUN: i32 = 126;

/// Fetches a fresh token for `name` and replaces this process with
/// `command`. Returns only with an error from the daemon; a CMD that cannot
/// be run ends the process with 127 or 126.
pub async fn run_exec(
    client: &VaultClient,
    name: &str,
    command: &[OsString],
) -> anyhow::Result<()> {
    let (program, args) = command
        .split_first()
        .context("no command to run: token-vault exec NAME -- CMD [ARGS…]")?;
    let token: TokenResponse = client.get_json(&connection_path(name, "/token")).await?;
    if token.access_token.is_empty() {
        anyhow::bail!("the vault answered with an empty access token for {name}");
    }
    let expiry = token
        .expiry
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env(ACCESS_TOKEN, token.access_token.expose())
        .env(ACCESS_TOKEN_EXPIRY, expiry);
    drop(token);
    // Only returns if the program could not be run.
    let err = cmd.exec();
    let (code, message) = cannot_run(program, &err);
    eprintln!("token-vault: error: {message}");
    std::process::exit(code)
}

/// The exit status and message for a CMD that could not be run.
pub fn cannot_run(program: &OsString, err: &std::io::Error) -> (i32, String) {
    let name = super::sanitize(&program.to_string_lossy());
    match err.kind() {
        std::io::ErrorKind::NotFound => (
            EXIT_NOT_FOUND,
            format!("cannot run `{name}`: command not found (not in PATH, or no such file)"),
        ),
        _ => (EXIT_CANNOT_RUN, format!("cannot run `{name}`: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cannot_run_messages() {
        let not_found = std::io::Error::from(std::io::ErrorKind::NotFound);
        let (code, msg) = cannot_run(&OsString::from("no-such-tool"), &not_found);
        assert_eq!(code, 127);
        assert!(
            msg.contains("`no-such-tool`") && msg.contains("not found"),
            "{msg}"
        );

        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let (code, msg) = cannot_run(&OsString::from("./script\x1b"), &denied);
        assert_eq!(code, 126);
        assert!(msg.contains("`./script?`"), "{msg}");
    }
}
