//! Measurements 1 to 4 of `vault-bench`, on one release daemon of their
//! own: token serving under steady load (1), the same load against the
//! minimal baseline server (2), a refresh storm (3), and `oauth-authorize`
//! from the browser's callback to the blob (4). Each has a function here
//! that measures it and returns its rows; [`run`] makes them one after
//! another and says in the header how.

use super::load::{self, LoadResult};
use super::machine;
use super::stats::{grouped, micros, micros_signed, Summary};
use super::table::{failed_row, first_line, Row, Section};
use super::{authorize, baseline, daemon::Daemon};
use crate::fake::{FakeProvider, Style};
use crate::vault_harness::{blob, CLIENT_ID, CLIENT_SECRET};
use std::path::Path;
use std::time::{Duration, Instant};

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

/// The token the load measurements ask the vault for (the baseline answers
/// the same path).
pub const TOKEN_PATH: &str = "/v1/connections/bench/token";

/// A fake Box provider and a daemon with connection `bench` imported for
/// it, which has served its first token.
pub struct Served {
    // Declared first, so the daemon stops before its provider.
    pub vault: Daemon,
    pub fake: FakeProvider,
    /// The length of the token answer's body, for the baseline's.
    pub body_len: usize,
}

impl Served {
    /// Starts the fake and `vault_bin serve`, imports `bench` (a day-long
    /// token) and checks that [`TOKEN_PATH`] answers 200.
    pub fn start(runtime: &tokio::runtime::Runtime, vault_bin: &Path) -> anyhow::Result<Served> {
        let fake = FakeProvider::start(Style::Box);
        fake.register_client(CLIENT_ID, CLIENT_SECRET, &["http://127.0.0.1:53682/"]);
        let vault = Daemon::start(vault_bin)?;
        let (access, refresh) = fake.seed_tokens(CLIENT_ID, 86_400);
        vault.import("bench", &fake, &blob(&access, Some(&refresh), 86_400))?;
        let (status, body) = runtime.block_on(load::get_once(&vault.socket, TOKEN_PATH))?;
        anyhow::ensure!(
            status == 200,
            "the vault answered {status} to the first token request: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(Served {
            vault,
            fake,
            body_len: body.len(),
        })
    }
}

/// Measurements 1 to 4, `seconds` per load measurement; `client_threads`
/// is the client runtime's worker count, for the header.
pub fn run(
    runtime: &tokio::runtime::Runtime,
    vault_bin: &Path,
    authorize_bin: &Path,
    seconds: u64,
    client_threads: usize,
    progress: &dyn Fn(&str),
) -> anyhow::Result<Section> {
    let measure = Duration::from_secs(seconds);
    let warmup = (measure / 4).min(Duration::from_millis(500));
    progress("starting the fake provider and the release daemon");
    let served = Served::start(runtime, vault_bin)?;
    let audit_before = served.vault.audit_lines();
    let (mut cases, vault_requests) = steady_loads(runtime, &served, measure, warmup, progress)?;
    let mut section = Section::default();
    section.rows.extend(load_rows(&mut cases));
    section.warnings.extend(others_warning(&cases));
    let under_load = under_load_line(&served.vault, audit_before, vault_requests);
    section.rows.push(refresh_storm(runtime, &served, progress));
    section.rows.extend(oauth_authorize(
        runtime,
        authorize_bin,
        &served.fake,
        progress,
    ));
    section.header = vec![
        format!(
            "load: {seconds} s per measurement (after {} ms warm-up), in {SLICES} slices alternating vault and baseline; clients: hyper http1 keep-alive connections on one {client_threads}-thread tokio runtime in the bench process; latencies in µs",
            warmup.as_millis()
        ),
        under_load,
    ];
    Ok(section)
}

/// Measurements 1 and 2 at one concurrency.
struct LoadCase {
    clients: usize,
    vault: LoadResult,
    vault_cpu: Option<CpuUse>,
    baseline: LoadResult,
    baseline_cpu: Option<CpuUse>,
}

/// Measurements 1 and 2: at each concurrency, a warm-up, then [`SLICES`]
/// slices of `measure` in all on the vault and on a baseline server,
/// alternating. Also returns how many token requests the vault was sent.
fn steady_loads(
    runtime: &tokio::runtime::Runtime,
    served: &Served,
    measure: Duration,
    warmup: Duration,
    progress: &dyn Fn(&str),
) -> anyhow::Result<(Vec<LoadCase>, usize)> {
    let base = baseline::Baseline::start(served.body_len)?;
    let vault = &served.vault;
    let mut vault_requests = 0usize;
    let mut cases = Vec::new();
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
        let (kept, warmed) = runtime.block_on(load::steady(on_vault, TOKEN_PATH, warmup));
        on_vault = kept;
        vault_requests += warmed?.sent as usize;
        let (kept, warmed) = runtime.block_on(load::steady(on_base, TOKEN_PATH, warmup));
        on_base = kept;
        warmed?;
        for _ in 0..SLICES {
            let ((kept, result), cpu) = measured(runtime, vault.pid(), || {
                load::steady(std::mem::take(&mut on_vault), TOKEN_PATH, slice)
            });
            on_vault = kept;
            let result = result?;
            vault_requests += result.sent as usize;
            v.absorb(result);
            v_cpu = v_cpu.zip(cpu).map(|(a, b)| a + b);
            let ((kept, result), cpu) = measured(runtime, base.pid(), || {
                load::steady(std::mem::take(&mut on_base), TOKEN_PATH, slice)
            });
            on_base = kept;
            b.absorb(result?);
            b_cpu = b_cpu.zip(cpu).map(|(a, b)| a + b);
        }
        cases.push(LoadCase {
            clients,
            vault: v,
            vault_cpu: v_cpu,
            baseline: b,
            baseline_cpu: b_cpu,
        });
    }
    Ok((cases, vault_requests))
}

/// The rows of measurement 1, then 2, then their ratios.
fn load_rows(cases: &mut [LoadCase]) -> Vec<Row> {
    let mut rows = Vec::new();
    for c in cases.iter_mut() {
        let what = "1 vault token GET over UDS";
        rows.push(load_row(what, c.clients, &mut c.vault, c.vault_cpu));
    }
    for c in cases.iter_mut() {
        let what = "2 baseline: minimal hyper";
        rows.push(load_row(what, c.clients, &mut c.baseline, c.baseline_cpu));
    }
    for c in cases.iter() {
        let (v, b) = (&c.vault, &c.baseline);
        let ratio = v.requests_per_sec() / b.requests_per_sec().max(f64::MIN_POSITIVE);
        let (vs, bs) = (
            Summary::of(&mut v.latencies.clone()),
            Summary::of(&mut b.latencies.clone()),
        );
        rows.push(vec![
            "  vault / baseline".into(),
            clients_label(c.clients),
            format!("{:.0} % of rps", ratio * 100.0),
            format!("{:.1}x", vs.p50 as f64 / bs.p50.max(1) as f64),
            format!("{:.1}x", vs.p99 as f64 / bs.p99.max(1) as f64),
            String::new(),
            String::new(),
        ]);
    }
    rows
}

/// A warning when other processes kept the machine busy during a load
/// measurement.
fn others_warning(cases: &[LoadCase]) -> Option<String> {
    let busiest_others = cases
        .iter()
        .flat_map(|c| [c.vault_cpu, c.baseline_cpu])
        .flatten()
        .map(|c| {
            c.machine.saturating_sub(c.server + c.client).as_secs_f64()
                / c.wall.as_secs_f64().max(f64::MIN_POSITIVE)
        })
        .fold(0.0, f64::max);
    (busiest_others > 0.2).then(|| format!(
        "other processes kept up to {busiest_others:.2} cores busy during a load measurement: req/s and latencies are disturbed; CPU µs/req much less so"
    ))
}

/// The header line that says whether the daemon kept up with its audit log
/// under the load.
fn under_load_line(vault: &Daemon, audit_before: usize, vault_requests: usize) -> String {
    // Let the audit writer catch up with the last requests.
    std::thread::sleep(Duration::from_millis(300));
    let audited = vault.audit_lines().saturating_sub(audit_before);
    let log = vault.log();
    let dropped_warnings = log.matches("audit log queue is full").count();
    let log_warnings = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .count();
    format!(
        "daemon under load: {} token requests sent, {} audit lines written, {} \"audit log queue is full\" warnings, {} WARN/ERROR log lines",
        grouped(vault_requests as u64),
        grouped(audited as u64),
        dropped_warnings,
        log_warnings
    )
}

/// Measurement 3: [`STORM_REQUESTS`] requests parked on their connections
/// for a connection imported with an expired token, fired together, the
/// token endpoint slowed to [`STORM_TOKEN_DELAY`]: how many provider calls
/// they cost and how long they waited.
fn refresh_storm(
    runtime: &tokio::runtime::Runtime,
    served: &Served,
    progress: &dyn Fn(&str),
) -> Row {
    let (fake, vault) = (&served.fake, &served.vault);
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
        vault.import("storm", fake, &blob(&access, Some(&refresh), -60))?;
        let imported = Instant::now();
        let result = armed.fire(Duration::from_secs(30)).await;
        // A straggling second refresh would show up in the counter meanwhile.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let calls = fake.counters().token_requests - before;
        let fired_after = result.fired.saturating_duration_since(imported);
        anyhow::Ok((result, calls, imported - import_start, fired_after))
    });
    fake.set_token_delay(Duration::ZERO);
    let what = "3 refresh storm (expired token)";
    let (mut result, calls, import_time, fired_after) = match storm {
        Ok(storm) => storm,
        Err(e) => return failed_row(what, &e),
    };
    let s = Summary::of(&mut result.waits);
    vec![
        what.into(),
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
    ]
}

/// Measurement 4: [`AUTHORIZE_RUNS`] runs of `oauth-authorize` from the
/// browser's callback to the blob on stdout, the fake token endpoint's own
/// time, and the difference.
fn oauth_authorize(
    runtime: &tokio::runtime::Runtime,
    authorize_bin: &Path,
    fake: &FakeProvider,
    progress: &dyn Fn(&str),
) -> Vec<Row> {
    progress(&format!("oauth-authorize: {AUTHORIZE_RUNS} runs"));
    let figures = runtime.block_on(authorize::callback_to_blob(
        authorize_bin,
        fake,
        AUTHORIZE_RUNS,
    ));
    let endpoint = runtime.block_on(authorize::token_endpoint(fake, AUTHORIZE_RUNS));
    let mut rows = Vec::new();
    let what = "4 oauth-authorize callback → blob";
    let flow_s = Summary::of(&mut figures.callback_to_blob.clone());
    let page_s = Summary::of(&mut figures.page.clone());
    if flow_s.count > 0 {
        rows.push(vec![
            what.into(),
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
            what.into(),
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
    let mut times = match endpoint {
        Ok(times) => times,
        Err(e) => {
            rows.push(failed_row("  fake token endpoint alone", &e));
            return rows;
        }
    };
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
    rows
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
fn load_row(what: &str, clients: usize, result: &mut LoadResult, cpu: Option<CpuUse>) -> Row {
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
