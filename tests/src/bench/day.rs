//! Measurement 7, a simulated day: many Box connections in one release
//! daemon, their access lifetimes compressed to a few seconds and their
//! expiries staggered evenly, so the daemon's scheduler refreshes them all
//! the time while a slow token endpoint makes the refreshes overlap.
//!
//! It reports how many refreshes were done, the most token requests the
//! fake ever had in flight at once (held against the daemon's
//! `--max-concurrent-refreshes`), whether any token served was expired or
//! refused by the provider, whether any connection ever left `ok`, and the
//! daemon's CPU time and peak RSS.
//!
//! Staggering: connection `i` of `n` is imported with `expires_in` = the
//! lifetime `L` and an expiry chosen so that its first refresh (at half-life,
//! `L/2` before expiry) falls at `t0 + i·(L/2)/n` modulo `L/2`, where `t0` is
//! when the imports began; the refresh phases are thus spread evenly over one
//! refresh period whatever the imports' pace.

use super::daemon::Daemon;
use super::load;
use super::machine;
use crate::fake::{FakeProvider, Style};
use crate::vault_harness::{http, CLIENT_ID, CLIENT_SECRET};
use anyhow::{ensure, Context};
use chrono::{DateTime, SecondsFormat, Utc};
use shared::api::{ConnectionList, ConnectionState, TokenResponse};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shape of one run.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Connections imported.
    pub connections: usize,
    /// The access tokens' lifetime, seconds (the fake's `expires_in`).
    pub lifetime_secs: u64,
    /// How long the day runs, after the imports.
    pub run: Duration,
    /// The fake token endpoint's delay on every request.
    pub token_delay: Duration,
    /// `serve --max-concurrent-refreshes`.
    pub cap: usize,
    /// Token requests per second spread over all connections, each served
    /// token checked for expiry and presented to the fake's API.
    pub samples_per_sec: u32,
}

/// The full run: 1,000 connections with 4 s lifetimes (refreshed every 2 s,
/// 500 refreshes a second) for 60 s: 30 refreshes per connection, more
/// than a Box connection (1 h tokens, refreshed 6 min early) does in a real
/// day (~27).
pub const FULL: Plan = Plan {
    connections: 1000,
    lifetime_secs: 4,
    run: Duration::from_secs(60),
    token_delay: Duration::from_millis(12),
    cap: 8,
    samples_per_sec: 100,
};

/// The `--quick` run: 100 connections for 10 s.
pub const QUICK: Plan = Plan {
    connections: 100,
    run: Duration::from_secs(10),
    samples_per_sec: 50,
    ..FULL
};

/// The CI smoke run (`tests/tests/bench_smoke.rs`, on a debug daemon): 20
/// connections for 3 s, longer than one refresh period, so each one is due
/// for a refresh during the run.
pub const SMOKE: Plan = Plan {
    connections: 20,
    run: Duration::from_secs(3),
    samples_per_sec: 20,
    ..FULL
};

/// Samplers running at once.
const SAMPLERS: u32 = 4;
/// How often the connection list is polled for states and expiries.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// What a day came to.
#[derive(Debug, Default)]
pub struct DayFigures {
    pub imports: Duration,
    pub wall: Duration,
    /// Successful refresh grants at the fake during the run window.
    pub refreshes: u64,
    /// Successful refresh grants since the daemon started (imports included).
    pub refreshes_total: u64,
    /// Fewest and most refreshes of one connection, from the final list.
    pub per_connection: (u64, u64),
    pub token_errors: u64,
    pub chain_breaks: u64,
    /// The most token requests the fake had in flight at once, over the
    /// whole run (imports included).
    pub max_in_flight: u64,
    /// Token requests sent to the vault by the samplers.
    pub samples: u64,
    /// Of those, answers other than 200.
    pub sample_failures: u64,
    /// Served tokens whose own expiry had passed when they arrived.
    pub expired_served: u64,
    /// Served tokens the fake's API refused (401: expired or unknown).
    pub rejected_by_provider: u64,
    /// List polls made, and connections seen in a state other than `ok` or
    /// `refreshing` in any of them (backoff, needs-reauth, corrupt).
    pub polls: u64,
    pub ever_not_ok: BTreeSet<String>,
    /// Connections not `ok`/`refreshing` in the final list, with their state.
    pub not_ok_at_end: Vec<String>,
    /// Connections missing from the final list.
    pub missing_at_end: usize,
    /// The least time left on any stored access token in any poll, ms
    /// (negative: a stored token had expired unrefreshed).
    pub min_left_ms: Option<i64>,
    /// The daemon's utime+stime during the run window, and during the imports.
    pub cpu_run: Option<Duration>,
    pub cpu_imports: Option<Duration>,
    /// VmHWM and VmRSS at the end, KiB.
    pub peak_rss_kib: Option<u64>,
    pub rss_end_kib: Option<u64>,
    /// WARN/ERROR lines in the daemon's log.
    pub log_warnings: usize,
}

impl DayFigures {
    /// Whether the cap held.
    pub fn cap_held(&self, plan: &Plan) -> bool {
        self.max_in_flight <= plan.cap as u64
    }

    /// Whether every served token was good and every connection stayed up.
    pub fn all_ok(&self) -> bool {
        self.expired_served == 0
            && self.rejected_by_provider == 0
            && self.sample_failures == 0
            && self.ever_not_ok.is_empty()
            && self.not_ok_at_end.is_empty()
            && self.missing_at_end == 0
            && self.min_left_ms.is_none_or(|ms| ms > 0)
    }
}

/// Runs one simulated day with `plan`; `progress` gets a line per phase.
pub fn run(
    runtime: &tokio::runtime::Runtime,
    vault_bin: &Path,
    plan: &Plan,
    progress: &dyn Fn(&str),
) -> anyhow::Result<DayFigures> {
    let mut figures = DayFigures::default();
    progress(&format!(
        "simulated day: starting the fake and a daemon with --max-concurrent-refreshes {}",
        plan.cap
    ));
    let fake = FakeProvider::start(Style::Box);
    fake.register_client(CLIENT_ID, CLIENT_SECRET, &["http://127.0.0.1:53682/"]);
    fake.set_access_lifetime(plan.lifetime_secs);
    fake.set_token_delay(plan.token_delay);
    let cap = plan.cap.to_string();
    let vault = Daemon::start_with(vault_bin, &["--max-concurrent-refreshes", &cap])?;
    let pid = vault.pid();

    // ---- imports, phases spread evenly over one refresh period.
    progress(&format!(
        "simulated day: importing {} connections ({} s lifetimes)",
        plan.connections, plan.lifetime_secs
    ));
    let cpu0 = super::machine::cpu_time(pid);
    let import_start = Instant::now();
    let t0 = Utc::now();
    let lifetime_ms = plan.lifetime_secs as i64 * 1000;
    let half_ms = lifetime_ms / 2;
    for i in 0..plan.connections {
        let (access, refresh) = fake.seed_tokens(CLIENT_ID, plan.lifetime_secs);
        let now = Utc::now();
        let phase = half_ms * i as i64 / plan.connections as i64;
        // The first t0 + phase + m·half at or after now + half: its refresh
        // (half a lifetime earlier) is due now or within one period.
        let since = (now - t0).num_milliseconds() + half_ms - phase;
        let steps = (since + half_ms - 1).div_euclid(half_ms).max(0);
        let expiry = t0 + chrono::Duration::milliseconds(phase + steps * half_ms);
        let body = import_body(&fake, &access, &refresh, expiry, plan.lifetime_secs);
        let (status, answer) = http(&vault.socket, "PUT", &day_path(i), Some(body.as_bytes()))
            .with_context(|| format!("cannot import connection {i}"))?;
        ensure!(
            (200..300).contains(&status),
            "import of connection {i} answered {status}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    figures.imports = import_start.elapsed();
    let cpu1 = super::machine::cpu_time(pid);
    figures.cpu_imports = cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a));

    // ---- the day.
    progress(&format!(
        "simulated day: running {} s ({} ms token delay, {} token samples/s)",
        plan.run.as_secs(),
        plan.token_delay.as_millis(),
        plan.samples_per_sec
    ));
    let refreshes_before = fake.counters().refreshes;
    let start = Instant::now();
    let deadline = start + plan.run;
    let shared = Arc::new(Shared::default());
    runtime.block_on(async {
        let mut tasks = Vec::new();
        let http_client = reqwest::Client::new();
        let whoami = format!("{}/users/me", fake.api_url());
        let pause = Duration::from_secs(1) * SAMPLERS / plan.samples_per_sec.max(1);
        for _ in 0..SAMPLERS {
            let (shared, socket) = (shared.clone(), vault.socket.clone());
            let (client, whoami, n) = (http_client.clone(), whoami.clone(), plan.connections);
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(pause);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while Instant::now() < deadline {
                    tick.tick().await;
                    let i = shared.next.fetch_add(1, Ordering::Relaxed) % n;
                    sample(&shared, &socket, &client, &whoami, i).await;
                }
            }));
        }
        let (shared2, socket) = (shared.clone(), vault.socket.clone());
        let n = plan.connections;
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                poll(&shared2, &socket, n, false).await;
                tokio::time::sleep(POLL_EVERY).await;
            }
        }));
        for t in tasks {
            let _ = t.await;
        }
    });
    figures.wall = start.elapsed();
    let cpu2 = super::machine::cpu_time(pid);
    figures.cpu_run = cpu1.zip(cpu2).map(|(a, b)| b.saturating_sub(a));
    let counters = fake.counters();
    figures.refreshes = counters.refreshes - refreshes_before;
    figures.refreshes_total = counters.refreshes;
    figures.token_errors = counters.token_errors;
    figures.chain_breaks = fake.refresh_chain_breaks();
    figures.max_in_flight = fake.max_token_requests_in_flight();
    figures.peak_rss_kib = machine::status_kib(pid, "VmHWM");
    figures.rss_end_kib = machine::status_kib(pid, "VmRSS");

    // ---- the end: every connection still there and ok.
    let end = runtime.block_on(poll(&shared, &vault.socket, plan.connections, true));
    let end = end.context("cannot read the final connection list")?;
    figures.not_ok_at_end = end.not_ok;
    figures.missing_at_end = end.missing;
    figures.per_connection = end.refreshes;
    figures.samples = shared.samples.load(Ordering::Relaxed);
    figures.sample_failures = shared.failures.load(Ordering::Relaxed);
    figures.expired_served = shared.expired.load(Ordering::Relaxed);
    figures.rejected_by_provider = shared.rejected.load(Ordering::Relaxed);
    figures.polls = shared.polls.load(Ordering::Relaxed);
    figures.ever_not_ok = shared.lock_not_ok().clone();
    let min_left = *shared.min_left_ms.lock().unwrap_or_else(|e| e.into_inner());
    figures.min_left_ms = min_left;
    figures.log_warnings = vault
        .log()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .count();
    drop(vault);
    drop(fake);
    Ok(figures)
}

/// `/v1/connections/dayN`.
fn day_path(i: usize) -> String {
    format!("/v1/connections/day{i}")
}

/// The `PUT /v1/connections/NAME` body importing one seeded Box grant.
fn import_body(
    fake: &FakeProvider,
    access: &str,
    refresh: &str,
    expiry: DateTime<Utc>,
    lifetime_secs: u64,
) -> String {
    let blob = serde_json::json!({
        "access_token": access,
        "token_type": "bearer",
        "refresh_token": refresh,
        "expiry": expiry.to_rfc3339_opts(SecondsFormat::Millis, true),
        "expires_in": lifetime_secs,
    });
    serde_json::json!({
        "blob": blob.to_string(),
        "provider": "box",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "endpoints": {
            "auth_url": fake.auth_url(),
            "token_url": fake.token_url(),
            "revoke_url": fake.revoke_url(),
            "api_url": fake.api_url(),
            "upload_url": fake.upload_url(),
        },
    })
    .to_string()
}

/// What the samplers and the poller share.
#[derive(Default)]
struct Shared {
    next: AtomicUsize,
    samples: AtomicU64,
    failures: AtomicU64,
    expired: AtomicU64,
    rejected: AtomicU64,
    polls: AtomicU64,
    not_ok: Mutex<BTreeSet<String>>,
    min_left_ms: Mutex<Option<i64>>,
}

impl Shared {
    fn lock_not_ok(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.not_ok.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One token request for connection `i`: the answer's expiry must lie
/// ahead, and the fake's API must accept the token.
async fn sample(shared: &Shared, socket: &Path, client: &reqwest::Client, whoami: &str, i: usize) {
    shared.samples.fetch_add(1, Ordering::Relaxed);
    let path = format!("{}/token", day_path(i));
    let token = match load::get_once(socket, &path).await {
        Ok((status, body)) if status.is_success() => {
            serde_json::from_slice::<TokenResponse>(&body).ok()
        }
        _ => None,
    };
    let Some(token) = token else {
        shared.failures.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if token.expiry.is_some_and(|e| e <= Utc::now()) {
        shared.expired.fetch_add(1, Ordering::Relaxed);
    }
    let answer = client
        .get(whoami)
        .bearer_auth(token.access_token.expose())
        .send()
        .await;
    if !matches!(answer, Ok(ref r) if r.status().is_success()) {
        shared.rejected.fetch_add(1, Ordering::Relaxed);
    }
}

/// The final list's verdict.
struct EndState {
    not_ok: Vec<String>,
    missing: usize,
    refreshes: (u64, u64),
}

/// Reads the connection list: records connections not `ok`/`refreshing`
/// and the least time left on a stored token.
async fn poll(shared: &Shared, socket: &Path, n: usize, last: bool) -> Option<EndState> {
    let (status, body) = load::get_once(socket, "/v1/connections").await.ok()?;
    if !status.is_success() {
        return None;
    }
    let list: ConnectionList = serde_json::from_slice(&body).ok()?;
    let now = Utc::now();
    shared.polls.fetch_add(1, Ordering::Relaxed);
    let mut not_ok = Vec::new();
    let mut seen = 0;
    let (mut fewest, mut most) = (u64::MAX, 0);
    let mut least: Option<i64> = None;
    for c in list
        .connections
        .iter()
        .filter(|c| c.name.starts_with("day"))
    {
        seen += 1;
        fewest = fewest.min(c.refreshes);
        most = most.max(c.refreshes);
        if let Some(e) = c.expiry {
            let left = (e - now).num_milliseconds();
            least = Some(least.map_or(left, |l| l.min(left)));
        }
        if !matches!(c.state, ConnectionState::Ok | ConnectionState::Refreshing) {
            shared.lock_not_ok().insert(c.name.clone());
            not_ok.push(format!("{} {:?}", c.name, c.state));
        }
    }
    if let Some(l) = least {
        let mut min = shared.min_left_ms.lock().unwrap_or_else(|e| e.into_inner());
        *min = Some(min.map_or(l, |m| m.min(l)));
    }
    last.then_some(EndState {
        not_ok,
        missing: n.saturating_sub(seen),
        refreshes: (if seen == 0 { 0 } else { fewest }, most),
    })
}
