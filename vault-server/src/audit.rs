//! The audit log: one JSON line per socket request in the state directory.
//!
//! Invariant: a line names who (uid, pid), what (operation, connection)
//! and how it ended, never a secret; and writing it never blocks a
//! request: lines go through a bounded channel to one writer task, and a
//! full channel drops the line with a warning rather than stall callers.

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Lines buffered before the writer falls behind and lines are dropped.
const QUEUE_LINES: usize = 4096;

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

/// The sending side of the audit log.
#[derive(Clone)]
pub struct Audit {
    tx: mpsc::Sender<AuditLine>,
}

/// The writer task, to await at shutdown so every line is flushed.
pub struct AuditWriter {
    task: tokio::task::JoinHandle<()>,
}

impl Audit {
    /// Opens (creating 0600) `path` for appending and starts the writer.
    pub fn start(path: &Path) -> std::io::Result<(Audit, AuditWriter)> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let (tx, mut rx) = mpsc::channel::<AuditLine>(QUEUE_LINES);
        let path: PathBuf = path.to_path_buf();
        let task = tokio::task::spawn_blocking(move || {
            let mut out = std::io::BufWriter::new(file);
            while let Some(line) = rx.blocking_recv() {
                let written = serde_json::to_string(&line)
                    .map_err(std::io::Error::other)
                    .and_then(|json| writeln!(out, "{json}"))
                    .and_then(|()| if rx.is_empty() { out.flush() } else { Ok(()) });
                if let Err(e) = written {
                    tracing::error!(path = %path.display(), error = %e, "cannot write the audit log");
                }
            }
            let _ = out.flush();
        });
        Ok((Audit { tx }, AuditWriter { task }))
    }

    pub fn record(&self, line: AuditLine) {
        if self.tx.try_send(line).is_err() {
            tracing::warn!("audit log queue is full; a line was dropped");
        }
    }
}

impl AuditWriter {
    /// Waits until every line sent so far is written (all senders dropped).
    pub async fn finish(self) {
        let _ = self.task.await;
    }
}
