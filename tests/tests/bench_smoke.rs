//! The short variant of `vault-bench` that runs in CI: long soaks and
//! benchmarks run on demand, but nothing else would run the bench's
//! machinery (`tests::bench`), so it could rot unseen until the next run.
//!
//! Each test runs one measurement small, on the debug binaries, and asserts
//! only that it works: every transfer completes and its bytes check out,
//! the simulated day passes its checks, a token load gets its answers.
//! Nothing here is about speed, and nothing waits by sleeping: every wait
//! is the bench's own, bounded by its deadlines.
//!
//! Not run here: measurements 2 and 3. The baseline server re-executes the
//! bench binary itself; what the refresh storm does is asserted by the
//! end-to-end tests (`vault.rs`), though the bench's code that times it is
//! not run.

use std::path::PathBuf;
use std::time::Duration;
use tests::bench::transfer::{self, Direction, Route};
use tests::bench::{authorize, day, day_report, load, serving, transfer_report};
use tests::fake::{FakeProvider, Style};

/// Bytes per transfer: just above Box's upload cutoff and one Dropbox
/// chunk, so both routes take the upload sessions the bench measures at
/// 1 GiB (Box: 7 parts; Dropbox: two chunks), not the one-request uploads
/// of small files. About 3 s in all on a debug daemon.
const TRANSFER_SIZE: u64 = transfer::BOX_UPLOAD_CUTOFF + (1 << 20);
const _: () = assert!(TRANSFER_SIZE > transfer::DROPBOX_CHUNK);

/// How long the token load runs.
const LOAD_SLICE: Duration = Duration::from_millis(200);

fn vault_bin() -> PathBuf {
    tests::bins::path("token-vault")
}

/// A client runtime like the bench's.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-smoke-client")
        .build()
        .expect("a tokio runtime")
}

fn progress(what: &str) {
    eprintln!("bench smoke: {what}");
}

/// Measurement 6, small: each provider, direction and route, every run
/// completed with its SHA-256 (and size) checked, the direct uploads in
/// sessions, the daemon's memory read; and its rows show no failure.
#[test]
fn transfers_complete_and_check_out() {
    let figures = transfer::run(&runtime(), &vault_bin(), TRANSFER_SIZE, &progress)
        .expect("the transfer measurement runs");
    assert_eq!(figures.size, TRANSFER_SIZE);
    let mut legs = 0;
    for style in [Style::Box, Style::Dropbox] {
        for (direction, runs) in [
            (Direction::Upload, 1),
            (Direction::Download, transfer::DOWNLOAD_ROUNDS),
        ] {
            for route in [Route::Vault, Route::Direct] {
                let of_kind = figures.legs_of(style, direction, route);
                let kind = format!("{style:?} {direction:?} {route:?}");
                assert_eq!(of_kind.len(), runs, "runs of {kind}");
                for leg in of_kind {
                    let timed = leg
                        .outcome
                        .as_ref()
                        .unwrap_or_else(|e| panic!("{kind} failed: {e}"));
                    assert_eq!(timed.check, Ok(()), "{kind}: the bytes did not check out");
                    assert_eq!(timed.bytes, TRANSFER_SIZE, "{kind}: bytes moved");
                    if (direction, route) == (Direction::Upload, Route::Direct) {
                        let session = ["upload session:", "upload_session/start"];
                        assert!(
                            session.iter().any(|s| timed.how.starts_with(s)),
                            "{kind} went without an upload session: {}",
                            timed.how
                        );
                    }
                }
                legs += runs;
            }
        }
    }
    assert_eq!(figures.legs.len(), legs, "no transfer beyond the plan");
    if cfg!(target_os = "linux") {
        assert!(
            figures.peak_hwm_kib().is_some_and(|kib| kib > 0),
            "the daemon's peak RSS (VmHWM) was read: {figures:?}"
        );
        assert!(figures.rss_before_kib.is_some() && figures.rss_after_kib.is_some());
    }
    let section = transfer_report::section(&figures);
    assert!(!section.header.is_empty());
    for row in &section.rows {
        assert_ne!(row[2], "failed", "a failed row: {row:?}");
    }
}

/// Measurement 7, with the tiny [`day::SMOKE`] plan: refreshes happened,
/// and both the day's checks (the cap held; every token served was good and
/// every connection stayed `ok`) pass, as its rows say.
#[test]
fn simulated_day_passes_its_checks() {
    let plan = day::SMOKE;
    let f = day::run(&runtime(), &vault_bin(), &plan, &progress).expect("the simulated day runs");
    assert!(f.refreshes > 0, "no refresh in the run: {f:#?}");
    assert!(f.samples > 0, "no token sampled: {f:#?}");
    assert!(
        f.cap_held(&plan),
        "more refreshes in flight than the cap: {f:#?}"
    );
    assert!(f.all_ok(), "a bad token or a connection not ok: {f:#?}");
    assert_eq!(
        (f.token_errors, f.chain_breaks),
        (0, 0),
        "token errors and refresh chain breaks at the fake: {f:#?}"
    );
    let verdicts: Vec<&str> = day_report::section(&plan, &f)
        .rows
        .iter()
        .filter_map(|row| {
            let notes = row[6].as_str();
            ["PASS", "FAIL"]
                .into_iter()
                .find(|v| notes.starts_with(&format!("{v}:")))
        })
        .collect();
    assert_eq!(verdicts, ["PASS", "PASS"], "the day's rows say");
}

/// Measurement 1, one short slice: one keep-alive client asking the daemon
/// for a token back to back gets 200s only, and keeps its connection.
#[test]
fn token_load_slice_gets_answers() {
    let runtime = runtime();
    let served = serving::Served::start(&runtime, &vault_bin()).expect("the daemon serves");
    let (kept, result) = runtime.block_on(async {
        let clients = load::open(&served.vault.socket, 1)
            .await
            .expect("a connection to the daemon's socket");
        load::steady(clients, serving::TOKEN_PATH, LOAD_SLICE).await
    });
    let result = result.expect("the load ran");
    assert!(!result.latencies.is_empty(), "no answer: {result:?}");
    assert_eq!(result.errors, 0, "non-200 answers or a broken connection");
    assert_eq!(result.sent, result.latencies.len() as u64);
    assert_eq!(kept.len(), 1, "the keep-alive connection is still usable");
}

/// Measurement 4, two runs: `oauth-authorize` (debug) turns each browser
/// callback into a blob on stdout, and the fake token endpoint answers the
/// bench's own timed requests.
#[test]
fn authorize_runs_end_in_blobs() {
    let runtime = runtime();
    let fake = FakeProvider::start(Style::Box);
    let figures = runtime.block_on(authorize::callback_to_blob(
        &tests::bins::path("oauth-authorize"),
        &fake,
        2,
    ));
    assert!(figures.failures.is_empty(), "{:?}", figures.failures);
    assert_eq!(figures.callback_to_blob.len(), 2, "a blob per run");
    assert_eq!(figures.page.len(), 2, "a success page per run");
    let endpoint = runtime
        .block_on(authorize::token_endpoint(&fake, 2))
        .expect("the token endpoint answers");
    assert_eq!(endpoint.len(), 2);
}
