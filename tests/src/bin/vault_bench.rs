//! `vault-bench`: measures the release binaries and prints one table of
//! figures. It measures; it never asserts.
//!
//! ```sh
//! cargo build --release --workspace --bins
//! cargo run --release -p tests --bin vault-bench [-- --seconds N | --quick | --transfers]
//! ```
//!
//! 1. token serving: `GET /v1/connections/NAME/token` on a real daemon's
//!    Unix socket, from 1, 16 and 64 keep-alive HTTP/1.1 clients;
//! 2. the same load against a minimal hyper server (a process of its own),
//!    the ceiling the vault is compared with;
//! 3. a refresh storm: 256 requests at once for an expired token, with a
//!    100 ms token endpoint: how many provider calls, how long the waits;
//! 4. `oauth-authorize`: browser callback → blob on stdout, against the
//!    token endpoint's own time;
//! 5. the release binaries' sizes;
//! 6. transfers: 1 GiB (`--transfer-size`; 64 MiB with `--quick`) up and
//!    down through the vault's `…/content` route and directly to fake Box
//!    and Dropbox providers, MB/s and their ratio, every byte checked by
//!    SHA-256, and the daemon's peak RSS. Only with `--transfers`, which
//!    runs only this: it takes about 90 s at 1 GiB on a 2-core machine,
//!    which would take the default run well past two minutes.
//! 7. a simulated day: 1,000 connections (100 with `--quick`) with
//!    staggered few-second expiries in a daemon with
//!    `--max-concurrent-refreshes 8`, for 60 s (10 s): refreshes done, the
//!    most token requests in flight at the fake, expired or refused tokens,
//!    connections that left `ok`, the daemon's CPU time and peak RSS.
//!    `--day` runs only this.
//!
//! Everything runs on loopback and in temporary folders. This file parses
//! the arguments, picks the measurements and prints the table; each
//! measurement, and its rows, lives in `tests::bench` (`src/bench/`).

use anyhow::Context;
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use tests::bench::table::{self, Section};
use tests::bench::{baseline, bins, day, day_report, machine, serving, transfer, transfer_report};

#[derive(Parser, Debug)]
#[command(
    name = "vault-bench",
    about = "Measure token-vault's release binaries and print one table of figures",
    after_help = "Build the binaries first: cargo build --release --workspace --bins"
)]
struct Args {
    /// Seconds per load measurement (after a short warm-up).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=60))]
    seconds: u64,

    /// One second per load measurement and 64 MiB transfers, for a smoke run.
    #[arg(long)]
    quick: bool,

    /// Run only the transfer measurement (6), which the default run leaves
    /// out: uploads and downloads through the vault and directly to fake Box
    /// and Dropbox providers.
    #[arg(long)]
    transfers: bool,

    /// Run only the simulated day (7): many connections with staggered
    /// expiries, refreshes held against the cap.
    #[arg(long, conflicts_with = "transfers")]
    day: bool,

    /// Skip the simulated day in a full run.
    #[arg(long, conflicts_with = "day")]
    no_day: bool,

    /// Bytes per transfer [default: 1073741824 (1 GiB); 67108864 (64 MiB) with --quick].
    #[arg(long = "transfer-size", value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..=transfer::MAX_SIZE))]
    transfer_size: Option<u64>,

    /// Internal: run as the baseline server on this socket.
    #[arg(long = "baseline-server", value_name = "SOCKET", hide = true)]
    baseline_server: Option<PathBuf>,

    /// Internal: the baseline server's body length.
    #[arg(long = "body-len", default_value_t = 80, hide = true)]
    body_len: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(socket) = &args.baseline_server {
        return match baseline::serve(socket, args.body_len) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("vault-bench baseline server: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let (vault_bin, authorize_bin) =
        match (bins::find("token-vault"), bins::find("oauth-authorize")) {
            (Ok(v), Ok(a)) => (v, a),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("vault-bench: {e}");
                return ExitCode::from(2);
            }
        };
    match run(&args, &vault_bin, &authorize_bin) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vault-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Progress, on stderr, so the table on stdout stays clean.
fn progress(what: &str) {
    eprintln!("vault-bench: {what}");
}

fn run(args: &Args, vault_bin: &Path, authorize_bin: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let host = machine::Machine::describe();
    let mut warnings: Vec<String> = [
        bins::stale_warning(vault_bin, &["vault-server/src", "shared/src"]),
        bins::stale_warning(authorize_bin, &["authorize-cli/src", "shared/src"]),
    ]
    .into_iter()
    .flatten()
    .collect();
    if cfg!(debug_assertions) {
        warnings.push(
            "the bench itself is a debug build: client-side figures are pessimistic; use --release"
                .into(),
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vault-bench-client")
        .build()
        .context("cannot build the client runtime")?;
    let mut sections: Vec<Section> = Vec::new();

    // ---- 1 to 4 on a daemon of their own, then 5: binary sizes.
    if !args.transfers && !args.day {
        let seconds = if args.quick { 1 } else { args.seconds };
        sections.push(serving::run(
            &runtime,
            vault_bin,
            authorize_bin,
            seconds,
            host.nproc,
            &progress,
        )?);
        sections.push(Section::of_rows(bins::size_rows(&[
            authorize_bin,
            vault_bin,
        ])));
    }

    // ---- 6: transfers.
    // Not in the default run: about 90 s at 1 GiB (see the module doc).
    if args.transfers {
        let size = args.transfer_size.unwrap_or(if args.quick {
            transfer::QUICK_SIZE
        } else {
            transfer::DEFAULT_SIZE
        });
        sections.push(match transfer::run(&runtime, vault_bin, size, &progress) {
            Ok(figures) => transfer_report::section(&figures),
            Err(e) => Section::failed("6 transfer", &e),
        });
    }

    // ---- 7: the simulated day.
    if args.day || (!args.transfers && !args.no_day) {
        let plan = if args.quick { day::QUICK } else { day::FULL };
        sections.push(match day::run(&runtime, vault_bin, &plan, &progress) {
            Ok(figures) => day_report::section(&plan, &figures),
            Err(e) => Section::failed("7 simulated day", &e),
        });
    }

    // ---- the table: every section's header lines, then every warning.
    println!(
        "vault-bench: token-vault {} release binaries in {}",
        env!("CARGO_PKG_VERSION"),
        bins::own_dir().display()
    );
    println!(
        "machine: nproc {} | {} | {}",
        host.nproc, host.cpu_model, host.kernel
    );
    for line in sections.iter().flat_map(|s| &s.header) {
        println!("{line}");
    }
    warnings.extend(sections.iter().flat_map(|s| s.warnings.iter().cloned()));
    for w in &warnings {
        println!("warning: {w}");
    }
    println!();
    let rows: Vec<table::Row> = sections.into_iter().flat_map(|s| s.rows).collect();
    print!("{}", table::render_table(&rows));
    println!();
    println!("total bench time {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
