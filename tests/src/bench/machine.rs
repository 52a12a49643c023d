//! What the bench ran on, and how much CPU a process used.

use std::time::Duration;

/// Linux's fixed USER_HZ: the unit of `utime` and `stime` in `/proc/PID/stat`.
const USER_HZ: u64 = 100;

/// The machine, in one line: CPUs, model, kernel.
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
}

impl Machine {
    pub fn describe() -> Machine {
        let nproc = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = ["model name", "Model", "cpu model", "Hardware"]
            .iter()
            .find_map(|key| {
                cpuinfo.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_string())
                })
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let kernel = format!(
            "{} {}",
            read("/proc/sys/kernel/ostype").trim(),
            read("/proc/sys/kernel/osrelease").trim()
        )
        .trim()
        .to_string();
        Machine {
            nproc,
            cpu_model,
            kernel,
        }
    }
}

/// User plus system CPU time a process has used so far (all its threads),
/// at 10 ms resolution; `None` when `/proc` cannot tell.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_cpu_time(&stat)
}

/// CPU time the whole machine has spent busy (not idle or waiting for I/O)
/// so far, summed over every CPU; `None` when `/proc/stat` cannot tell.
pub fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal guest guest_nice;
    // guest time is already counted in user.
    let busy: u64 = ticks.iter().take(8).sum::<u64>() - ticks.get(3)? - ticks.get(4)?;
    Some(Duration::from_millis(busy * 1000 / USER_HZ))
}

/// User plus system CPU time used so far by this process's threads whose
/// name starts with `prefix` (names are cut to 15 bytes by the kernel);
/// `None` when `/proc` cannot tell. Threads that already exited are not
/// counted.
pub fn own_threads_cpu_time(prefix: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let dir = task.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !name.starts_with(prefix) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        total += stat_cpu_time(&stat)?;
    }
    Some(total)
}

/// utime + stime of a `/proc/…/stat` line.
fn stat_cpu_time(stat: &str) -> Option<Duration> {
    // The command name is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime), counting from 1 with state as 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}
