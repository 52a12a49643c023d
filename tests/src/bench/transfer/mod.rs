//! Transfer throughput: SIZE bytes up and down through the vault's
//! `…/content` route on its Unix socket, and the same transfer made directly
//! to the fake provider the way the vault makes it, for Box and Dropbox; the
//! daemon's resident memory meanwhile; every byte checked by SHA-256.
//!
//! - The content is a generated file (pseudo-random, so incompressible) in
//!   `$TMPDIR`, hashed once while it is written; it is never held in memory.
//! - Vault route: one HTTP/1.1 connection per request over the socket, like
//!   `token-vault put`/`get`: `PUT …/content?path=…` with `Content-Length`,
//!   the body read from the file 256 KiB at a time; `GET …/content?path=…`,
//!   the body SHA-256'd on a thread of its own as it arrives.
//! - Direct route: reqwest over loopback TCP, with the bearer token that
//!   `seed_tokens` issued, making the vault's own requests: Box, an upload
//!   session with the fake's part size (each part SHA-1'd before it is sent,
//!   as its `Digest` must be, and the whole file's SHA-1 for the commit), or
//!   one multipart upload at or below the vault's 50 MiB cutoff, then
//!   `GET /2.0/files/{id}/content` and the 302's one-time URL; Dropbox,
//!   `upload_session/start`, `append_v2` and `finish` in 48 MiB chunks (one
//!   `files/upload` at or below that), then `files/download`. Upload bodies
//!   are streamed from the file with their `Content-Length`, as the vault
//!   streams its spool.
//! - Each upload is made once per route, the vault's first; each download
//!   [`DOWNLOAD_ROUNDS`] times per route, alternating (they are short, so
//!   noisier).
//! - Before each transfer, `sync`, so none inherits another's dirty pages;
//!   the daemon's peak RSS is reset (`/proc/PID/clear_refs`) and read back
//!   (`VmHWM`) after it.
//!
//! `source` writes and hashes the content, `vault_route` and `direct_route`
//! make the transfers, `leg` times and checks each one, and [`run`] puts
//! them in order.

mod direct_route;
mod leg;
mod source;
mod vault_route;

pub use source::{hex, Source};

use super::daemon::Daemon;
use super::machine;
use crate::fake::Style;
use anyhow::{ensure, Context as _};
use leg::{reset_hwm, sync, ProviderLegs};
use std::path::Path;
use std::time::{Duration, Instant};

/// The default transfer size: 1 GiB.
pub const DEFAULT_SIZE: u64 = 1 << 30;
/// The size with `--quick`: 64 MiB.
pub const QUICK_SIZE: u64 = 64 << 20;
/// The largest size: the fake Box account's `max_upload_size`.
pub const MAX_SIZE: u64 = 2 << 30;

/// The vault's defaults that the direct route mirrors
/// (`vault-server/src/files.rs`, `providers/box_.rs`, `providers/dropbox.rs`):
/// Box files above the cutoff go through an upload session (the vault also
/// wants at least Box's 20 MB minimum, which the cutoff exceeds), Dropbox
/// files above one chunk through an upload session.
pub const BOX_UPLOAD_CUTOFF: u64 = 50 * 1024 * 1024;
pub const DROPBOX_CHUNK: u64 = 48 * 1024 * 1024;
/// The fake's default Box part size (it is never changed here).
pub const BOX_PART_SIZE: u64 = 8 * 1024 * 1024;

/// Downloads are cheap and short: each route's is made this many times,
/// alternating, and the median reported.
pub const DOWNLOAD_ROUNDS: usize = 3;
/// A transfer gets at least this long…
const MIN_DEADLINE: Duration = Duration::from_secs(120);
/// …and at least as long as it takes at this rate (bytes/s).
const SLOWEST_RATE: u64 = 4_000_000;

/// Which way the bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Upload,
    Download,
}

/// Through the vault, or straight to the fake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Vault,
    Direct,
}

/// CPU time used during one transfer.
#[derive(Clone, Copy, Debug, Default)]
pub struct LegCpu {
    /// The daemon process.
    pub vault: Duration,
    /// The fake provider's threads (it runs inside the bench process).
    pub fake: Duration,
    /// The rest of the bench process: the client and its hasher.
    pub client: Duration,
    /// The whole machine, every process included.
    pub machine: Duration,
}

/// One timed transfer that completed.
#[derive(Debug)]
pub struct Timed {
    pub wall: Duration,
    pub bytes: u64,
    pub cpu: Option<LegCpu>,
    /// `Ok` when the SHA-256 (and size) of what arrived is the source's.
    pub check: Result<(), String>,
    /// The daemon's `VmHWM` after this transfer, in KiB (reset before it
    /// when `Figures::hwm_reset` says so).
    pub daemon_hwm_kib: Option<u64>,
    /// What exactly was sent (parts, chunks…).
    pub how: String,
}

impl Timed {
    /// Decimal megabytes (10^6 bytes) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.wall.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// One transfer and how it went.
#[derive(Debug)]
pub struct Leg {
    pub style: Style,
    pub direction: Direction,
    pub route: Route,
    pub outcome: Result<Timed, String>,
}

/// Everything the transfer measurement found.
#[derive(Debug)]
pub struct Figures {
    pub size: u64,
    pub legs: Vec<Leg>,
    /// The daemon's `VmRSS` before the first transfer, KiB.
    pub rss_before_kib: Option<u64>,
    /// The daemon's `VmHWM` before the first transfer (its start and the
    /// imports), KiB.
    pub startup_hwm_kib: Option<u64>,
    /// The daemon's `VmRSS` after the last transfer, KiB.
    pub rss_after_kib: Option<u64>,
    /// Whether `VmHWM` could be reset before each transfer; if not, each
    /// transfer's figure is the peak since the daemon started.
    pub hwm_reset: bool,
    /// Time spent generating and hashing the source file.
    pub generate: Duration,
    /// Time spent in the untimed `sync`s.
    pub syncs: Duration,
}

impl Figures {
    /// The daemon's highest `VmHWM` seen: startup or any transfer.
    pub fn peak_hwm_kib(&self) -> Option<u64> {
        self.legs
            .iter()
            .filter_map(|l| l.outcome.as_ref().ok()?.daemon_hwm_kib)
            .chain(self.startup_hwm_kib)
            .max()
    }

    /// Every run of one transfer, in order.
    pub fn legs_of(&self, style: Style, direction: Direction, route: Route) -> Vec<&Leg> {
        self.legs
            .iter()
            .filter(|l| l.style == style && l.direction == direction && l.route == route)
            .collect()
    }
}

/// `1073741824` as `1 GiB`, `8388608` as `8 MiB`, else bytes.
pub fn size_label(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if bytes >= GIB && bytes & (GIB - 1) == 0 {
        format!("{} GiB", bytes / GIB)
    } else if bytes >= MIB && bytes & (MIB - 1) == 0 {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} B")
    }
}

/// The first line of a body, for an error message.
pub(super) fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

/// Runs the whole measurement: both providers, both directions, both
/// routes, on a daemon of its own.
pub fn run(
    runtime: &tokio::runtime::Runtime,
    vault_bin: &Path,
    size: u64,
    progress: &dyn Fn(&str),
) -> anyhow::Result<Figures> {
    ensure!(
        (1..=MAX_SIZE).contains(&size),
        "the transfer size must be 1 to {MAX_SIZE} bytes"
    );
    progress(&format!(
        "transfers: generating {} of content",
        size_label(size)
    ));
    let start = Instant::now();
    let source = Source::generate(size)?;
    let generate = start.elapsed();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build the HTTP client")?;
    let vault = Daemon::start(vault_bin)?;
    let pid = vault.pid();
    let deadline = MIN_DEADLINE.max(Duration::from_secs(size / SLOWEST_RATE));
    let mut figures = Figures {
        size,
        legs: Vec::new(),
        rss_before_kib: None,
        startup_hwm_kib: None,
        rss_after_kib: None,
        hwm_reset: true,
        generate,
        syncs: Duration::ZERO,
    };
    for style in [Style::Box, Style::Dropbox] {
        let mut legs = ProviderLegs::start(style, runtime, &vault, &http, &source, deadline);
        if figures.rss_before_kib.is_none() {
            figures.rss_before_kib = machine::status_kib(pid, "VmRSS");
            figures.startup_hwm_kib = machine::status_kib(pid, "VmHWM");
        }
        for (direction, route) in leg::plan() {
            progress(&legs.describe(direction, route));
            figures.syncs += sync();
            figures.hwm_reset &= reset_hwm(pid);
            let outcome = legs.measure(direction, route);
            figures.legs.push(Leg {
                style,
                direction,
                route,
                outcome,
            });
        }
    }
    figures.rss_after_kib = machine::status_kib(pid, "VmRSS");
    Ok(figures)
}
