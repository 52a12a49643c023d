//! `serve --on-event CMD`: runs the operator's command for each event.
//!
//! Invariants: a hook runs asynchronously with a time limit and a bound on
//! how many run at once, so a slow or broken hook never stalls the vault
//! (an event beyond the bound is dropped with a warning); and a hook gets a
//! clean environment (PATH, HOME, LANG and the three event variables), so
//! nothing secret from the daemon's own environment reaches it.

use crate::events::{Event, Listener};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Hooks allowed to run at once.
const MAX_RUNNING_HOOKS: usize = 4;
/// What a hook may see of the daemon's environment.
const PASSED_THROUGH: [&str; 4] = ["PATH", "HOME", "LANG", "TZ"];

pub struct Hooks {
    command: String,
    timeout: Duration,
    running: Arc<Semaphore>,
    runtime: tokio::runtime::Handle,
}

impl Hooks {
    /// Must be called inside the daemon's runtime.
    pub fn new(command: String, timeout: Duration) -> Hooks {
        Hooks {
            command,
            timeout,
            running: Arc::new(Semaphore::new(MAX_RUNNING_HOOKS)),
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl Listener for Hooks {
    fn event(&self, connection: &str, event: &Event) {
        let Ok(permit) = self.running.clone().try_acquire_owned() else {
            tracing::warn!(
                connection,
                event = event.name(),
                "too many event hooks running; this one is skipped"
            );
            return;
        };
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(&self.command)
            .env_clear()
            .envs(
                PASSED_THROUGH
                    .iter()
                    .filter_map(|k| std::env::var_os(k).map(|v| (k, v))),
            )
            .env("TOKEN_VAULT_CONNECTION", connection)
            .env("TOKEN_VAULT_EVENT", event.name())
            .env("TOKEN_VAULT_DETAIL", event.detail())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let (name, connection, timeout) = (event.name(), connection.to_string(), self.timeout);
        self.runtime.spawn(async move {
            let _permit = permit;
            let outcome = match cmd.spawn() {
                Ok(mut child) => tokio::time::timeout(timeout, child.wait()).await,
                Err(e) => {
                    tracing::warn!(connection, event = name, error = %e, "cannot run the event hook");
                    return;
                }
            };
            match outcome {
                Ok(Ok(status)) if status.success() => tracing::debug!(connection, event = name, "event hook ran"),
                Ok(Ok(status)) => tracing::warn!(connection, event = name, %status, "event hook failed"),
                Ok(Err(e)) => tracing::warn!(connection, event = name, error = %e, "event hook failed"),
                // Dropping the child kills it (kill_on_drop).
                Err(_) => tracing::warn!(connection, event = name, ?timeout, "event hook timed out and was killed"),
            }
        });
    }
}
