//! The rows of measurement 6 (transfers): what [`transfer::run`] found,
//! held against the goals, as the bench's table shows it. Apart from
//! `transfer.rs`, which makes the transfers and is long enough on its own.

use super::stats::grouped;
use super::table::{first_line, met, mib, plain_row, Row, Section};
use super::transfer::{self, Direction, Figures, Route};
use crate::fake::Style;
use std::time::Duration;

/// The goals the transfer figures are held against: the vault's rate over
/// the direct route's, and the daemon's peak RSS whatever the size.
const GOAL_RATIO: f64 = 0.8;
const GOAL_PEAK_MIB: f64 = 64.0;

const PROVIDERS: [(Style, &str); 2] = [(Style::Box, "Box"), (Style::Dropbox, "Dropbox")];

/// The header lines and rows of measurement 6.
pub fn section(f: &Figures) -> Section {
    Section {
        header: header(f),
        warnings: Vec::new(),
        rows: rows(f),
    }
}

/// The header lines that say how the transfers were made.
fn header(f: &Figures) -> Vec<String> {
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

/// The rows of measurement 6: each transfer by route with the ratio of the
/// two, then the daemon's memory.
fn rows(f: &Figures) -> Vec<Row> {
    let mut rows = Vec::new();
    for (style, label) in PROVIDERS {
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
                let (row, rate) = route_row(&what, case, route, &legs);
                rows.extend(row);
                rates[i] = rate;
            }
            if let [Some(v), Some(d)] = rates {
                let ratio = v / d.max(f64::MIN_POSITIVE);
                rows.push(plain_row(
                    "  vault / direct",
                    &format!("{label} {verb}"),
                    format!("{ratio:.3}"),
                    format!("goal ≥ {GOAL_RATIO}: {}", met(ratio >= GOAL_RATIO)),
                ));
            }
        }
    }
    rows.extend(memory_rows(f));
    rows
}

/// The daemon's RSS before the transfers, its peak during them (held
/// against [`GOAL_PEAK_MIB`]) and its RSS after them.
fn memory_rows(f: &Figures) -> Vec<Row> {
    let memory = "6 transfer vault memory";
    let mut rows = Vec::new();
    if let Some(kib) = f.rss_before_kib {
        rows.push(plain_row(
            memory,
            "VmRSS before",
            mib(kib),
            "after the daemon's start and the first import, before any transfer".into(),
        ));
    }
    if let Some(peak) = f.peak_hwm_kib() {
        let mut per_transfer = Vec::new();
        for (style, label) in PROVIDERS {
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
        rows.push(plain_row(
            memory,
            "peak RSS (VmHWM)",
            mib(peak),
            format!(
                "goal ≤ {GOAL_PEAK_MIB} MiB: {}; the highest of: startup {}; {} {}",
                met(peak_mib <= GOAL_PEAK_MIB),
                f.startup_hwm_kib.map(mib).unwrap_or_else(|| "?".into()),
                if f.hwm_reset {
                    "per transfer (reset before each with /proc/PID/clear_refs; the daemon idles during direct ones):"
                } else {
                    "after each transfer (clear_refs refused, so since the start):"
                },
                per_transfer.join(", ")
            ),
        ));
    }
    if let Some(kib) = f.rss_after_kib {
        rows.push(plain_row(
            memory,
            "VmRSS after",
            mib(kib),
            "after the last transfer".into(),
        ));
    }
    rows
}

/// The row of one route of one transfer: its median run (of the runs whose
/// bytes checked out), with every run's rate when there are several; and
/// that median rate.
fn route_row(
    what: &str,
    case: &str,
    route: Route,
    legs: &[&transfer::Leg],
) -> (Option<Row>, Option<f64>) {
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
        let row = plain_row(what, case, "failed".into(), problems.join("; "));
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
    let row = plain_row(
        what,
        case,
        format!("{:.1} MB/s", t.mb_per_sec()),
        notes.join("; "),
    );
    (Some(row), Some(t.mb_per_sec()))
}
