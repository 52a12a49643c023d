//! The audit log: one JSON line per socket request in the state directory.
//!
//! Invariant: a line names who (uid, pid), what (operation, connection)
//! and how it ended, never a secret; and writing it never blocks or slows a
//! request: a request only pushes its line onto a bounded in-memory batch,
//! and one writer thread appends the batch every [`FLUSH_INTERVAL`] (and at
//! shutdown). A full batch drops lines with a warning rather than stall.

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Lines held before new ones are dropped: far more than a flush interval's worth.
const MAX_PENDING_LINES: usize = 100_000;
/// How often the writer appends. Batching keeps the per-request cost to a
/// push (waking a writer per request cost a third of the vault's CPU).
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// One audited request.
#[derive(Debug, Serialize)]
pub struct AuditLine {
    pub time: String,
    pub uid: u32,
    pub pid: Option<i32>,
    pub connection: Option<String>,
    pub operation: String,
    pub status: u16,
    pub result: &'static str,
}

impl AuditLine {
    pub fn new(
        uid: u32,
        pid: Option<i32>,
        connection: Option<String>,
        operation: String,
        status: u16,
    ) -> Self {
        let result = match status {
            200..=299 => "ok",
            403 => "denied",
            _ => "error",
        };
        AuditLine {
            time: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            uid,
            pid,
            connection,
            operation,
            status,
            result,
        }
    }
}

struct Shared {
    pending: Mutex<Vec<AuditLine>>,
    stop: AtomicBool,
    wake: Condvar,
}

/// The sending side of the audit log.
#[derive(Clone)]
pub struct Audit {
    shared: Arc<Shared>,
}

/// The writer thread, to finish at shutdown so every line is written.
pub struct AuditWriter {
    shared: Arc<Shared>,
    thread: std::thread::JoinHandle<()>,
}

impl Audit {
    /// Opens (creating 0600) `path` for appending and starts the writer.
    pub fn start(path: &Path) -> std::io::Result<(Audit, AuditWriter)> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            wake: Condvar::new(),
        });
        let for_thread = shared.clone();
        let path = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(&for_thread, file, &path))?;
        Ok((
            Audit {
                shared: shared.clone(),
            },
            AuditWriter { shared, thread },
        ))
    }

    pub fn record(&self, line: AuditLine) {
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if pending.len() >= MAX_PENDING_LINES {
            drop(pending);
            tracing::warn!("the audit log is not keeping up; a line was dropped");
            return;
        }
        pending.push(line);
    }
}

fn write_loop(shared: &Shared, file: std::fs::File, path: &Path) {
    let mut out = std::io::BufWriter::new(file);
    loop {
        let (batch, stopping) = {
            let pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
            let (mut pending, _) = shared
                .wake
                .wait_timeout(pending, FLUSH_INTERVAL)
                .unwrap_or_else(|p| p.into_inner());
            (
                std::mem::take(&mut *pending),
                shared.stop.load(Ordering::Acquire),
            )
        };
        let mut written = Ok(());
        for line in &batch {
            written = written.and_then(|()| {
                let json = serde_json::to_string(line).map_err(std::io::Error::other)?;
                writeln!(out, "{json}")
            });
        }
        if let Err(e) = written.and_then(|()| out.flush()) {
            tracing::error!(path = %path.display(), error = %e, "cannot write the audit log");
        }
        if stopping {
            return;
        }
    }
}

impl AuditWriter {
    /// Writes every line recorded so far and stops the writer.
    pub async fn finish(self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify_all();
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}
