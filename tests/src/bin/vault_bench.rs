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
//! Everything runs on loopback and in temporary folders.

use anyhow::Context;
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tests::bench::load::{self, LoadResult};
use tests::bench::stats::{grouped, micros, micros_signed, render, Summary};
use tests::bench::transfer::{self, Direction, Figures, Route};
use tests::bench::{authorize, baseline, bins, daemon::Daemon, day, machine};
use tests::fake::{FakeProvider, Style};
use tests::vault_harness::{blob, CLIENT_ID, CLIENT_SECRET};

/// Concurrencies of measurements 1 and 2.
const CONCURRENCIES: [usize; 3] = [1, 16, 64];
/// Requests fired at once in the refresh storm.
const STORM_REQUESTS: usize = 256;
/// The token endpoint's delay during the storm.
const STORM_TOKEN_DELAY: Duration = Duration::from_millis(100);
/// Each load measurement alternates vault and baseline slices this many
/// times, so that whatever else the machine does hits both alike.
const SLICES: u32 = 3;
/// Runs of `oauth-authorize`, and direct token requests to compare with.
const AUTHORIZE_RUNS: usize = 20;
/// The goals the transfer figures are held against.
const GOAL_RATIO: f64 = 0.8;
const GOAL_PEAK_MIB: f64 = 64.0;

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
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header: Vec<String> = Vec::new();

    if !args.transfers && !args.day {
        header.extend(load_storm_authorize(
            args,
            &runtime,
            &host,
            vault_bin,
            authorize_bin,
            &mut rows,
            &mut warnings,
        )?);
        // ---- 5: binary sizes.
        for bin in [authorize_bin, vault_bin] {
            let name = bin
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match bins::size_and_symbols(bin) {
                Ok((bytes, symbols)) => rows.push(vec![
                    "5 binary size".into(),
                    name,
                    format!("{:.2} MB", bytes as f64 / 1e6),
                    String::new(),
                    String::new(),
                    String::new(),
                    format!(
                        "{} bytes; {}",
                        grouped(bytes),
                        match symbols {
                            Some(false) => "stripped (no .symtab)",
                            Some(true) => "NOT stripped (has .symtab)",
                            None => "not an ELF64 file",
                        }
                    ),
                ]),
                Err(e) => rows.push(failed_row("5 binary size", &anyhow::anyhow!(e))),
            }
        }
    }

    // ---- 6: transfers.
    // Not in the default run: about 90 s at 1 GiB (see the module doc).
    if args.transfers {
        let size = args.transfer_size.unwrap_or(if args.quick {
            transfer::QUICK_SIZE
        } else {
            transfer::DEFAULT_SIZE
        });
        match transfer::run(&runtime, vault_bin, size, &progress) {
            Ok(figures) => {
                header.extend(transfer_header(&figures));
                rows.extend(transfer_rows(&figures));
            }
            Err(e) => rows.push(failed_row("6 transfer", &e)),
        }
    }

    // ---- 7: the simulated day.
    if args.day || (!args.transfers && !args.no_day) {
        let plan = if args.quick { day::QUICK } else { day::FULL };
        match day::run(&runtime, vault_bin, &plan, &progress) {
            Ok(figures) => {
                header.push(day_header(&plan, &figures));
                rows.extend(day_rows(&plan, &figures));
            }
            Err(e) => rows.push(failed_row("7 simulated day", &e)),
        }
    }

    // ---- the table.
    println!(
        "vault-bench: token-vault {} release binaries in {}",
        env!("CARGO_PKG_VERSION"),
        bins::own_dir().display()
    );
    println!(
        "machine: nproc {} | {} | {}",
        host.nproc, host.cpu_model, host.kernel
    );
    for line in &header {
        println!("{line}");
    }
    for w in &warnings {
        println!("warning: {w}");
    }
    println!();
    print!(
        "{}",
        render(
            &[
                "measurement",
                "case",
                "figure",
                "p50 µs",
                "p99 µs",
                "max µs",
                "notes"
            ],
            &rows,
            &[2, 3, 4, 5]
        )
    );
    println!();
    println!("total bench time {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Measurements 1 to 4, on a daemon of their own; rows go to `rows`, and
/// the header lines that describe them come back.
fn load_storm_authorize(
    args: &Args,
    runtime: &tokio::runtime::Runtime,
    host: &machine::Machine,
    vault_bin: &Path,
    authorize_bin: &Path,
    rows: &mut Vec<Vec<String>>,
    warnings: &mut Vec<String>,
) -> anyhow::Result<Vec<String>> {
    let seconds = if args.quick { 1 } else { args.seconds };
    let measure = Duration::from_secs(seconds);
    let warmup = (measure / 4).min(Duration::from_millis(500));
    let client_threads = host.nproc;
    // ---- 1 and 2: steady load, vault and baseline interleaved.
    progress("starting the fake provider and the release daemon");
    let fake = FakeProvider::start(Style::Box);
    fake.register_client(CLIENT_ID, CLIENT_SECRET, &["http://127.0.0.1:53682/"]);
    let vault = Daemon::start(vault_bin)?;
    let (access, refresh) = fake.seed_tokens(CLIENT_ID, 86_400);
    vault.import("bench", &fake, &blob(&access, Some(&refresh), 86_400))?;
    let token_path = "/v1/connections/bench/token";
    let (status, body) = runtime.block_on(load::get_once(&vault.socket, token_path))?;
    anyhow::ensure!(
        status == 200,
        "the vault answered {status} to the first token request: {}",
        String::from_utf8_lossy(&body)
    );
    let base = baseline::Baseline::start(body.len())?;
    let base_path = "/v1/connections/bench/token";
    let audit_before = vault.audit_lines();
    let mut vault_requests = 0usize;

    let mut load_rows = Vec::new();
    let slice = measure / SLICES;
    for &clients in &CONCURRENCIES {
        progress(&format!(
            "vault and baseline, {clients} client(s): {SLICES} alternating slices of {} ms each",
            slice.as_millis()
        ));
        let (mut on_vault, mut on_base) = runtime.block_on(async {
            let v = load::open(&vault.socket, clients).await?;
            let b = load::open(&base.socket, clients).await?;
            std::io::Result::Ok((v, b))
        })?;
        let (mut v, mut b) = (LoadResult::default(), LoadResult::default());
        let (mut v_cpu, mut b_cpu) = (Some(CpuUse::default()), Some(CpuUse::default()));
        // Warm-up, not recorded (but the vault audits it).
        let (kept, warmed) = runtime.block_on(load::steady(on_vault, token_path, warmup));
        on_vault = kept;
        vault_requests += warmed?.sent as usize;
        let (kept, warmed) = runtime.block_on(load::steady(on_base, base_path, warmup));
        on_base = kept;
        warmed?;
        for _ in 0..SLICES {
            let ((kept, result), cpu) = measured(runtime, vault.pid(), || {
                load::steady(std::mem::take(&mut on_vault), token_path, slice)
            });
            on_vault = kept;
            let result = result?;
            vault_requests += result.sent as usize;
            v.absorb(result);
            v_cpu = v_cpu.zip(cpu).map(|(a, b)| a + b);
            let ((kept, result), cpu) = measured(runtime, base.pid(), || {
                load::steady(std::mem::take(&mut on_base), base_path, slice)
            });
            on_base = kept;
            b.absorb(result?);
            b_cpu = b_cpu.zip(cpu).map(|(a, b)| a + b);
        }
        load_rows.push((clients, v, v_cpu, b, b_cpu));
    }
    for (clients, v, v_cpu, _, _) in &mut load_rows {
        rows.push(load_row("1 vault token GET over UDS", *clients, v, *v_cpu));
    }
    for (clients, _, _, b, b_cpu) in &mut load_rows {
        rows.push(load_row("2 baseline: minimal hyper", *clients, b, *b_cpu));
    }
    for (clients, v, _, b, _) in &load_rows {
        let ratio = v.requests_per_sec() / b.requests_per_sec().max(f64::MIN_POSITIVE);
        let (vs, bs) = (
            Summary::of(&mut v.latencies.clone()),
            Summary::of(&mut b.latencies.clone()),
        );
        rows.push(vec![
            "  vault / baseline".into(),
            clients_label(*clients),
            format!("{:.0} % of rps", ratio * 100.0),
            format!("{:.1}x", vs.p50 as f64 / bs.p50.max(1) as f64),
            format!("{:.1}x", vs.p99 as f64 / bs.p99.max(1) as f64),
            String::new(),
            String::new(),
        ]);
    }

    let busiest_others = load_rows
        .iter()
        .flat_map(|(_, _, v, _, b)| [v, b])
        .flatten()
        .map(|c| {
            c.machine.saturating_sub(c.server + c.client).as_secs_f64()
                / c.wall.as_secs_f64().max(f64::MIN_POSITIVE)
        })
        .fold(0.0, f64::max);
    if busiest_others > 0.2 {
        warnings.push(format!(
            "other processes kept up to {busiest_others:.2} cores busy during a load measurement: req/s and latencies are disturbed; CPU µs/req much less so"
        ));
    }

    // Did the daemon keep up with its audit log under that load?
    std::thread::sleep(Duration::from_millis(300));
    let audited = vault.audit_lines().saturating_sub(audit_before);
    let log = vault.log();
    let dropped_warnings = log.matches("audit log queue is full").count();
    let log_warnings = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .count();

    // ---- 3: the refresh storm.
    progress(&format!("refresh storm: {STORM_REQUESTS} requests at once"));
    fake.set_token_delay(STORM_TOKEN_DELAY);
    let storm = runtime.block_on(async {
        let clients = load::open(&vault.socket, STORM_REQUESTS).await?;
        let armed = load::arm(clients, "/v1/connections/storm/token");
        // Let every parked request reach its wait before the import.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (access, refresh) = fake.seed_tokens(CLIENT_ID, 3600);
        let before = fake.counters().token_requests;
        let import_start = Instant::now();
        vault.import("storm", &fake, &blob(&access, Some(&refresh), -60))?;
        let imported = Instant::now();
        let result = armed.fire(Duration::from_secs(30)).await;
        // A straggling second refresh would show up in the counter meanwhile.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let calls = fake.counters().token_requests - before;
        let fired_after = result.fired.saturating_duration_since(imported);
        anyhow::Ok((result, calls, imported - import_start, fired_after))
    });
    fake.set_token_delay(Duration::ZERO);
    match storm {
        Ok((mut result, calls, import_time, fired_after)) => {
            let s = Summary::of(&mut result.waits);
            rows.push(vec![
                "3 refresh storm (expired token)".into(),
                format!("{STORM_REQUESTS} at once"),
                format!("{calls} provider call(s)"),
                micros(s.p50),
                micros(s.p99),
                micros(s.max),
                format!(
                    "provider delay {} ms; {} × 200, {} failed; fired {} µs after `import` returned ({} ms; the daemon's scheduler starts the refresh at import); wall {} ms",
                    STORM_TOKEN_DELAY.as_millis(),
                    s.count,
                    result.errors,
                    fired_after.as_micros(),
                    import_time.as_millis(),
                    result.wall.as_millis()
                ),
            ]);
        }
        Err(e) => rows.push(failed_row("3 refresh storm (expired token)", &e)),
    }

    // ---- 4: oauth-authorize, callback → blob.
    progress(&format!("oauth-authorize: {AUTHORIZE_RUNS} runs"));
    let figures = runtime.block_on(authorize::callback_to_blob(
        authorize_bin,
        &fake,
        AUTHORIZE_RUNS,
    ));
    let endpoint = runtime.block_on(authorize::token_endpoint(&fake, AUTHORIZE_RUNS));
    let mut flow = figures.callback_to_blob.clone();
    let flow_s = Summary::of(&mut flow);
    let page_s = Summary::of(&mut figures.page.clone());
    if flow_s.count > 0 {
        rows.push(vec![
            "4 oauth-authorize callback → blob".into(),
            format!("{} runs", flow_s.count),
            String::new(),
            micros(flow_s.p50),
            micros(flow_s.p99),
            micros(flow_s.max),
            format!(
                "t0 = browser's GET of the callback, t1 = blob line on stdout; the success page itself took {} µs (p50){}",
                micros(page_s.p50),
                if figures.failures.is_empty() {
                    String::new()
                } else {
                    format!("; {} run(s) failed: {}", figures.failures.len(), first_line(&figures.failures[0]))
                }
            ),
        ]);
    } else {
        rows.push(vec![
            "4 oauth-authorize callback → blob".into(),
            "0 runs".into(),
            "failed".into(),
            String::new(),
            String::new(),
            String::new(),
            figures
                .failures
                .first()
                .map(|f| first_line(f))
                .unwrap_or_default(),
        ]);
    }
    match endpoint {
        Ok(mut times) => {
            let e = Summary::of(&mut times);
            rows.push(vec![
                "  fake token endpoint alone".into(),
                format!("{} POSTs", e.count),
                String::new(),
                micros(e.p50),
                micros(e.p99),
                micros(e.max),
                "direct grant_type=refresh_token POSTs, a new TCP connection each (like the binary's exchange)"
                    .into(),
            ]);
            if flow_s.count > 0 {
                let diff = |a: u64, b: u64| micros_signed(i128::from(a) - i128::from(b));
                rows.push(vec![
                    "  beyond the token endpoint".into(),
                    "difference".into(),
                    String::new(),
                    diff(flow_s.p50, e.p50),
                    diff(flow_s.p99, e.p99),
                    diff(flow_s.max, e.max),
                    "callback → blob minus the token endpoint's own time, per percentile".into(),
                ]);
            }
        }
        Err(e) => rows.push(failed_row("  fake token endpoint alone", &e)),
    }

    drop(base);
    drop(vault);
    drop(fake);
    Ok(vec![
        format!(
            "load: {seconds} s per measurement (after {} ms warm-up), in {SLICES} slices alternating vault and baseline; clients: hyper http1 keep-alive connections on one {client_threads}-thread tokio runtime in the bench process; latencies in µs",
            warmup.as_millis()
        ),
        format!(
            "daemon under load: {} token requests sent, {} audit lines written, {} \"audit log queue is full\" warnings, {} WARN/ERROR log lines",
            grouped(vault_requests as u64),
            grouped(audited as u64),
            dropped_warnings,
            log_warnings
        ),
    ])
}

/// CPU time used while a load ran, and the wall time.
#[derive(Clone, Copy, Default)]
struct CpuUse {
    server: Duration,
    client: Duration,
    /// The whole machine, every process included.
    machine: Duration,
    wall: Duration,
}

impl std::ops::Add for CpuUse {
    type Output = CpuUse;
    fn add(self, other: CpuUse) -> CpuUse {
        CpuUse {
            server: self.server + other.server,
            client: self.client + other.client,
            machine: self.machine + other.machine,
            wall: self.wall + other.wall,
        }
    }
}

/// Runs `work` and measures the CPU time the server process `pid`, the
/// bench itself and the whole machine used meanwhile.
fn measured<F, Fut, T>(runtime: &tokio::runtime::Runtime, pid: u32, work: F) -> (T, Option<CpuUse>)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let own = std::process::id();
    let sample = || {
        (
            machine::cpu_time(pid),
            machine::cpu_time(own),
            machine::machine_busy(),
        )
    };
    let before = sample();
    let start = Instant::now();
    let output = runtime.block_on(work());
    let wall = start.elapsed();
    let after = sample();
    let cpu = match (before, after) {
        ((Some(s0), Some(c0), Some(m0)), (Some(s1), Some(c1), Some(m1))) => Some(CpuUse {
            server: s1.saturating_sub(s0),
            client: c1.saturating_sub(c0),
            machine: m1.saturating_sub(m0),
            wall,
        }),
        _ => None,
    };
    (output, cpu)
}

fn clients_label(clients: usize) -> String {
    if clients == 1 {
        "1 client".into()
    } else {
        format!("{clients} clients")
    }
}

/// A row of measurement 1 or 2.
fn load_row(
    what: &str,
    clients: usize,
    result: &mut LoadResult,
    cpu: Option<CpuUse>,
) -> Vec<String> {
    let rps = result.requests_per_sec();
    let s = Summary::of(&mut result.latencies);
    let mut notes = Vec::new();
    if let Some(cpu) = cpu {
        let wall = cpu.wall.as_secs_f64().max(f64::MIN_POSITIVE);
        let sent = result.sent.max(1) as f64;
        let others = cpu.machine.saturating_sub(cpu.server + cpu.client);
        notes.push(format!(
            "CPU µs/req: server {:.1}, client {:.1} | cores busy: server {:.2}, client {:.2}, others {:.2}",
            cpu.server.as_secs_f64() / sent * 1e6,
            cpu.client.as_secs_f64() / sent * 1e6,
            cpu.server.as_secs_f64() / wall,
            cpu.client.as_secs_f64() / wall,
            others.as_secs_f64() / wall
        ));
    }
    if result.errors > 0 {
        notes.push(format!("{} non-200 or failed", result.errors));
    }
    vec![
        what.into(),
        clients_label(clients),
        format!("{} req/s", grouped(rps.round() as u64)),
        micros(s.p50),
        micros(s.p99),
        micros(s.max),
        notes.join("; "),
    ]
}

fn failed_row(what: &str, error: &anyhow::Error) -> Vec<String> {
    vec![
        what.into(),
        String::new(),
        "failed".into(),
        String::new(),
        String::new(),
        String::new(),
        first_line(&format!("{error:#}")),
    ]
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(160)
        .collect()
}

/// KiB as MiB, one decimal.
fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The header lines that say how the transfers were made.
fn transfer_header(f: &Figures) -> Vec<String> {
    vec![
        format!(
            "transfers: {} ({} bytes) each way and route, from a generated file (writing and hashing it took {:.1} s); MB/s = 10^6 bytes/s over the wall time from the request's start to the upload's answer (committed) or the download's last byte (hashed); an untimed `sync` before each transfer ({:.1} s in all); uploads once per route (vault first), downloads {} times per route, alternating, median shown",
            transfer::size_label(f.size),
            grouped(f.size),
            f.generate.as_secs_f64(),
            f.syncs.as_secs_f64(),
            transfer::DOWNLOAD_ROUNDS
        ),
        "transfers, the fake: it stores every upload on disk in $TMPDIR and hashes it (Box SHA-1 + SHA-256, Dropbox content hash + SHA-256; a session's commit or finish copies its parts into one file), so both routes pay its disk writes and hashing alike; its Box commit 202 (\"still processing\", Retry-After 1 s) is off; it runs inside the bench process, its CPU counted apart".into(),
        "transfers, direct: reqwest over loopback TCP with the bearer token seed_tokens issued, the vault's own requests for that size, bodies streamed from the file with their Content-Length, as the vault streams its spool; no content-hash check (the vault's Dropbox upload computes one, Box's SHA-1s are the protocol's)".into(),
    ]
}

/// The rows of measurement 6.
fn transfer_rows(f: &Figures) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for (style, label) in [(Style::Box, "Box"), (Style::Dropbox, "Dropbox")] {
        for (direction, verb) in [
            (Direction::Upload, "upload"),
            (Direction::Download, "download"),
        ] {
            let what = format!("6 transfer {label} {verb}");
            let mut rates = [None, None];
            for (i, (route, case)) in [
                (Route::Vault, "vault (UDS)"),
                (Route::Direct, "direct to fake"),
            ]
            .into_iter()
            .enumerate()
            {
                let legs = f.legs_of(style, direction, route);
                let (row, rate) = transfer_row(&what, case, route, &legs);
                rows.extend(row);
                rates[i] = rate;
            }
            if let [Some(v), Some(d)] = rates {
                let ratio = v / d.max(f64::MIN_POSITIVE);
                rows.push(vec![
                    "  vault / direct".into(),
                    format!("{label} {verb}"),
                    format!("{ratio:.3}"),
                    String::new(),
                    String::new(),
                    String::new(),
                    format!(
                        "goal ≥ {GOAL_RATIO}: {}",
                        if ratio >= GOAL_RATIO {
                            "met"
                        } else {
                            "NOT met"
                        }
                    ),
                ]);
            }
        }
    }
    let memory = "6 transfer vault memory";
    if let Some(kib) = f.rss_before_kib {
        rows.push(vec![
            memory.into(),
            "VmRSS before".into(),
            mib(kib),
            String::new(),
            String::new(),
            String::new(),
            "after the daemon's start and the first import, before any transfer".into(),
        ]);
    }
    if let Some(peak) = f.peak_hwm_kib() {
        let mut per_transfer = Vec::new();
        for (style, label) in [(Style::Box, "Box"), (Style::Dropbox, "Dropbox")] {
            for (direction, verb) in [(Direction::Upload, "up"), (Direction::Download, "down")] {
                for (route, way) in [(Route::Vault, "vault"), (Route::Direct, "direct")] {
                    let highest = f
                        .legs_of(style, direction, route)
                        .iter()
                        .filter_map(|l| l.outcome.as_ref().ok()?.daemon_hwm_kib)
                        .max();
                    if let Some(kib) = highest {
                        per_transfer.push(format!("{label} {verb} {way} {}", mib(kib)));
                    }
                }
            }
        }
        let peak_mib = peak as f64 / 1024.0;
        rows.push(vec![
            memory.into(),
            "peak RSS (VmHWM)".into(),
            mib(peak),
            String::new(),
            String::new(),
            String::new(),
            format!(
                "goal ≤ {GOAL_PEAK_MIB} MiB: {}; the highest of: startup {}; {} {}",
                if peak_mib <= GOAL_PEAK_MIB {
                    "met"
                } else {
                    "NOT met"
                },
                f.startup_hwm_kib.map(mib).unwrap_or_else(|| "?".into()),
                if f.hwm_reset {
                    "per transfer (reset before each with /proc/PID/clear_refs; the daemon idles during direct ones):"
                } else {
                    "after each transfer (clear_refs refused, so since the start):"
                },
                per_transfer.join(", ")
            ),
        ]);
    }
    if let Some(kib) = f.rss_after_kib {
        rows.push(vec![
            memory.into(),
            "VmRSS after".into(),
            mib(kib),
            String::new(),
            String::new(),
            String::new(),
            "after the last transfer".into(),
        ]);
    }
    rows
}

/// The row of one route of one transfer: its median run (of the runs whose
/// bytes checked out), with every run's rate when there are several; and
/// that median rate.
fn transfer_row(
    what: &str,
    case: &str,
    route: Route,
    legs: &[&transfer::Leg],
) -> (Option<Vec<String>>, Option<f64>) {
    let mut good: Vec<&transfer::Timed> = legs
        .iter()
        .filter_map(|l| l.outcome.as_ref().ok())
        .filter(|t| t.check.is_ok())
        .collect();
    let mut problems: Vec<String> = legs
        .iter()
        .filter_map(|l| match &l.outcome {
            Err(e) => Some(first_line(e)),
            Ok(t) => t
                .check
                .as_ref()
                .err()
                .map(|e| format!("CHECK FAILED: {}", first_line(e))),
        })
        .collect();
    good.sort_by(|a, b| a.mb_per_sec().total_cmp(&b.mb_per_sec()));
    let Some(t) = good.get(good.len().saturating_sub(1) / 2).copied() else {
        if legs.is_empty() {
            return (None, None);
        }
        let row = vec![
            what.into(),
            case.into(),
            "failed".into(),
            String::new(),
            String::new(),
            String::new(),
            problems.join("; "),
        ];
        return (Some(row), None);
    };
    let mut notes = Vec::new();
    if legs.len() > 1 {
        let all: Vec<String> = good
            .iter()
            .map(|g| format!("{:.0}", g.mb_per_sec()))
            .collect();
        notes.push(format!(
            "median of {} runs (MB/s: {}), alternating with the other route",
            good.len(),
            all.join(", ")
        ));
    }
    notes.push(format!("{:.2} s", t.wall.as_secs_f64()));
    notes.push("SHA-256 ok".into());
    if !problems.is_empty() {
        problems.insert(
            0,
            format!("{} of {} runs failed", problems.len(), legs.len()),
        );
        notes.push(problems.join(": "));
    }
    // CPU times have a 10 ms resolution: meaningless for a short transfer.
    if let Some(cpu) = t.cpu.filter(|_| t.wall >= Duration::from_millis(200)) {
        let wall = t.wall.as_secs_f64().max(f64::MIN_POSITIVE);
        let others = cpu
            .machine
            .saturating_sub(cpu.vault + cpu.fake + cpu.client);
        notes.push(format!(
            "CPU s: vault {:.2}, fake {:.2}, client {:.2}; cores busy {:.2} (others, kernel threads included: {:.2})",
            cpu.vault.as_secs_f64(),
            cpu.fake.as_secs_f64(),
            cpu.client.as_secs_f64(),
            cpu.machine.as_secs_f64() / wall,
            others.as_secs_f64() / wall
        ));
    }
    if route == Route::Vault {
        if let Some(kib) = t.daemon_hwm_kib {
            notes.push(format!("daemon VmHWM {}", mib(kib)));
        }
    }
    notes.push(t.how.clone());
    let row = vec![
        what.into(),
        case.into(),
        format!("{:.1} MB/s", t.mb_per_sec()),
        String::new(),
        String::new(),
        String::new(),
        notes.join("; "),
    ];
    (Some(row), Some(t.mb_per_sec()))
}

/// The header line that says how the day was run.
fn day_header(plan: &day::Plan, f: &day::DayFigures) -> String {
    format!(
        "simulated day: {} Box connections imported over the socket in {:.1} s, access lifetime {} s (refreshed at half-life, every {} s), expiries staggered evenly over one refresh period; {} s run; fake token delay {} ms; serve --max-concurrent-refreshes {}; {} token samples/s round-robin over the connections, each token checked for expiry and presented to the fake's API; the connection list polled every 0.5 s",
        grouped(plan.connections as u64),
        f.imports.as_secs_f64(),
        plan.lifetime_secs,
        plan.lifetime_secs as f64 / 2.0,
        plan.run.as_secs(),
        plan.token_delay.as_millis(),
        plan.cap,
        plan.samples_per_sec
    )
}

/// The rows of measurement 7.
fn day_rows(plan: &day::Plan, f: &day::DayFigures) -> Vec<Vec<String>> {
    let what = "7 simulated day";
    let row = |case: &str, figure: String, notes: String| {
        vec![
            what.to_string(),
            case.to_string(),
            figure,
            String::new(),
            String::new(),
            String::new(),
            notes,
        ]
    };
    let wall = f.wall.as_secs_f64().max(f64::MIN_POSITIVE);
    let mut rows = vec![
        row(
            &format!("{} connections", grouped(plan.connections as u64)),
            format!("{} refreshes", grouped(f.refreshes)),
            format!(
                "{:.0}/s over {:.1} s; per connection {}..{} (whole run); {} since start; {} token errors, {} chain breaks at the fake",
                f.refreshes as f64 / wall,
                wall,
                f.per_connection.0,
                f.per_connection.1,
                grouped(f.refreshes_total),
                f.token_errors,
                f.chain_breaks
            ),
        ),
        row(
            "refreshes in flight",
            format!("max {} (cap {})", f.max_in_flight, plan.cap),
            format!(
                "{}: the most token requests the fake had in flight at once, over the whole run",
                if f.cap_held(plan) { "PASS" } else { "FAIL" }
            ),
        ),
        row(
            "tokens served",
            format!("{} samples", grouped(f.samples)),
            format!(
                "{}: {} non-200, {} expired when served, {} refused by the fake's API; least time left on a stored token in {} list polls: {}",
                if f.all_ok() { "PASS" } else { "FAIL" },
                f.sample_failures,
                f.expired_served,
                f.rejected_by_provider,
                f.polls,
                f.min_left_ms
                    .map(|ms| format!("{ms} ms"))
                    .unwrap_or_else(|| "?".into())
            ),
        ),
        row(
            "connection states",
            format!("{} ever not ok", f.ever_not_ok.len()),
            format!(
                "{} not ok and {} missing at the end{}; {} WARN/ERROR log lines",
                f.not_ok_at_end.len(),
                f.missing_at_end,
                f.not_ok_at_end
                    .first()
                    .map(|c| format!(" (first: {c})"))
                    .unwrap_or_default(),
                f.log_warnings
            ),
        ),
    ];
    let cpu = |d: Option<Duration>| d.map(|d| format!("{:.2} s", d.as_secs_f64()));
    rows.push(row(
        "daemon CPU (utime+stime)",
        cpu(f.cpu_run).unwrap_or_else(|| "?".into()),
        format!(
            "during the {:.0} s run: {} of one core, {} µs per refresh (token samples included); the imports took {}",
            wall,
            f.cpu_run
                .map(|d| format!("{:.1} %", d.as_secs_f64() / wall * 100.0))
                .unwrap_or_else(|| "?".into()),
            f.cpu_run
                .map(|d| format!("{:.0}", d.as_secs_f64() * 1e6 / f.refreshes.max(1) as f64))
                .unwrap_or_else(|| "?".into()),
            cpu(f.cpu_imports).unwrap_or_else(|| "?".into())
        ),
    ));
    rows.push(row(
        "daemon memory",
        f.peak_rss_kib
            .map(|k| format!("peak {}", mib(k)))
            .unwrap_or_else(|| "?".into()),
        format!(
            "VmHWM since the daemon's start; VmRSS at the end {}",
            f.rss_end_kib.map(mib).unwrap_or_else(|| "?".into())
        ),
    ));
    rows
}
