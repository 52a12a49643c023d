//! systemd readiness (`Type=notify`): `READY=1` once the socket is
//! listening, `STOPPING=1` when shutdown begins.
//!
//! Invariant: without `NOTIFY_SOCKET` in the environment (not under
//! systemd, or another `Type=`) nothing is sent and nothing fails; a
//! notification that cannot be sent is logged, never fatal.

use sd_notify::NotifyState;
use std::path::Path;

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Tells the service manager the daemon is ready: call once the socket at
/// `socket` is bound and listening (so a client started after this
/// connects at once) and before serving starts.
pub fn ready(socket: &Path, connections: usize) {
    let status = format!(
        "serving {connections} connection(s) on {}",
        socket.display()
    );
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// Tells the service manager the daemon is shutting down.
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("finishing requests in flight"),
    ]);
}

fn send(states: &[NotifyState]) {
    match std::env::var_os(NOTIFY_SOCKET) {
        Some(v) if !v.is_empty() => {}
        _ => return,
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd (NOTIFY_SOCKET)");
    }
}
