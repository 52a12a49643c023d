//! The rows of measurement 7 (the simulated day): what [`day::run`] found,
//! with its two checks (the refresh cap held; every token served was good
//! and every connection stayed up) spelled PASS or FAIL, as the bench's
//! table shows it. Apart from `day.rs`, which runs the day.

use super::day::{self, DayFigures};
use super::stats::grouped;
use super::table::{mib, plain_row, Row, Section};
use std::time::Duration;

const WHAT: &str = "7 simulated day";

/// The header line and rows of measurement 7.
pub fn section(plan: &day::Plan, f: &DayFigures) -> Section {
    Section {
        header: vec![header(plan, f)],
        warnings: Vec::new(),
        rows: rows(plan, f),
    }
}

/// The header line that says how the day was run.
fn header(plan: &day::Plan, f: &DayFigures) -> String {
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

fn pass(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

/// The rows of measurement 7.
fn rows(plan: &day::Plan, f: &DayFigures) -> Vec<Row> {
    let wall = f.wall.as_secs_f64().max(f64::MIN_POSITIVE);
    vec![
        plain_row(
            WHAT,
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
        plain_row(
            WHAT,
            "refreshes in flight",
            format!("max {} (cap {})", f.max_in_flight, plan.cap),
            format!(
                "{}: the most token requests the fake had in flight at once, over the whole run",
                pass(f.cap_held(plan))
            ),
        ),
        plain_row(
            WHAT,
            "tokens served",
            format!("{} samples", grouped(f.samples)),
            format!(
                "{}: {} non-200, {} expired when served, {} refused by the fake's API; least time left on a stored token in {} list polls: {}",
                pass(f.all_ok()),
                f.sample_failures,
                f.expired_served,
                f.rejected_by_provider,
                f.polls,
                f.min_left_ms
                    .map(|ms| format!("{ms} ms"))
                    .unwrap_or_else(|| "?".into())
            ),
        ),
        plain_row(
            WHAT,
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
        cpu_row(f, wall),
        plain_row(
            WHAT,
            "daemon memory",
            f.peak_rss_kib
                .map(|k| format!("peak {}", mib(k)))
                .unwrap_or_else(|| "?".into()),
            format!(
                "VmHWM since the daemon's start; VmRSS at the end {}",
                f.rss_end_kib.map(mib).unwrap_or_else(|| "?".into())
            ),
        ),
    ]
}

/// The daemon's CPU time during the run (`wall` seconds), per refresh.
fn cpu_row(f: &DayFigures, wall: f64) -> Row {
    let cpu = |d: Option<Duration>| d.map(|d| format!("{:.2} s", d.as_secs_f64()));
    plain_row(
        WHAT,
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
    )
}
