//! The client subcommands: each asks the daemon over its socket and prints
//! the answer.
//!
//! Invariants: results go to stdout and nothing else does; messages,
//! warnings and errors go to stderr (errors as the `Err` returned to
//! `main`), so `$(token-vault token NAME)` is never an error text. Nothing
//! secret is printed except by `token`, whose job it is, and only on stdout.

pub mod authorize;
pub mod completions;
pub mod exec;
pub mod files;
pub mod import;
pub mod remove;
pub mod show;
pub mod token;
pub mod transfer;

pub use files::{run_ls, run_mkdir, run_rm};
pub use import::run_import;
pub use remove::run_remove;
pub use show::{run_list, run_status};
pub use token::{run_refresh, run_test, run_token};
pub use transfer::{run_get, run_put};

use crate::cli::Command;
use crate::client::VaultClient;
use chrono::{DateTime, SecondsFormat, Utc};
use std::io::Write;

/// Runs a client subcommand. `serve` is not one: `main` runs the daemon itself.
pub async fn dispatch(client: &VaultClient, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) => anyhow::bail!("`serve` is the daemon, not a client command"),
        Command::Import(args) => run_import(client, &args).await,
        Command::Authorize(args) => authorize::run_authorize(client, &args).await,
        Command::Recipient => authorize::run_recipient(client).await,
        Command::List(args) => run_list(client, args.json).await,
        Command::Status(args) => run_status(client, &args.name, args.json).await,
        Command::Test(args) => run_test(client, &args.name).await,
        Command::Token(args) => run_token(client, &args.name, args.json, args.rejected).await,
        Command::Refresh(args) => run_refresh(client, &args.name).await,
        Command::Remove(args) => run_remove(client, &args.name, args.revoke).await,
        Command::Ls(args) => run_ls(client, &args.remote, args.json).await,
        Command::Put(args) => run_put(client, &args.local, &args.remote, args.quiet).await,
        Command::Get(args) => run_get(client, &args.remote, &args.local, args.quiet).await,
        Command::Mkdir(args) => run_mkdir(client, &args.remote).await,
        Command::Rm(args) => run_rm(client, &args.remote, args.recursive).await,
        Command::Exec(args) => exec::run_exec(client, &args.name, &args.command).await,
        Command::Completions(args) => completions::run_completions(args.shell),
    }
}

/// Writes a command's result to stdout in one go.
pub(crate) fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Writes a warning to stderr.
pub(crate) fn warn(message: &str) {
    eprintln!("token-vault: warning: {}", sanitize(message));
}

/// A time relative to `now`: `in 52m`, `3h ago`, `now`. One unit, rounded down.
pub fn relative_time(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    let span = short_duration(secs.unsigned_abs());
    if secs.unsigned_abs() < 1 {
        "now".to_string()
    } else if secs > 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// `45s`, `52m`, `3h`, `4d`: one unit, rounded down; hours up to two days.
pub fn short_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// `in 52m (2025-01-02T03:04:05Z)`.
pub fn relative_and_absolute(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!(
        "{} ({})",
        relative_time(t, now),
        t.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

/// Text from the daemon (which may relay a provider's words) with control
/// characters replaced, so nothing can drive the terminal. Newlines stay.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\n' { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn relative_times() {
        let now = Utc.with_ymd_and_hms(2025, 1, 2, 12, 0, 0).unwrap();
        let at = |secs: i64| now + chrono::Duration::seconds(secs);
        assert_eq!(relative_time(at(0), now), "now");
        assert_eq!(relative_time(at(45), now), "in 45s");
        assert_eq!(relative_time(at(52 * 60 + 30), now), "in 52m");
        assert_eq!(relative_time(at(-3 * 3600 - 59), now), "3h ago");
        assert_eq!(relative_time(at(-47 * 3600), now), "47h ago");
        assert_eq!(relative_time(at(5 * 86400 + 10), now), "in 5d");
        assert_eq!(relative_time(at(-59), now), "59s ago");
        assert_eq!(
            relative_and_absolute(at(3600), now),
            "in 1h (2025-01-02T13:00:00Z)"
        );
    }

    #[test]
    fn sanitizes_control_characters() {
        assert_eq!(sanitize("a\x1b[31mb\tc\nd"), "a?[31mb?c\nd");
    }
}
