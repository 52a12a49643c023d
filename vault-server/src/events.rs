//! What happens to connections, for whoever watches: the event hooks and
//! the metrics. The engine reports; it neither knows nor waits for the
//! listeners.
//!
//! Invariant: an event carries a connection name and a secret-free detail
//! only, and reporting one never blocks the caller.

use std::sync::Arc;

/// Something an operator wants to hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A refresh succeeded.
    Refreshed,
    /// Refreshes have failed transiently this many times in a row.
    RefreshFailing { failures: u32, error: String },
    /// The provider refused the grant; the user must authorize again.
    NeedsReauth { reason: String },
    /// The stored record cannot be read.
    Corrupt { reason: String },
    /// A rotating provider's refresh token is this many days old and the
    /// last refresh failed: it may soon die unused.
    RefreshTokenAging { age_days: i64 },
    /// A connection was imported (or re-imported with --replace).
    Imported { replaced: bool },
    /// A connection was removed.
    Removed,
}

impl Event {
    /// The name hooks see in `TOKEN_VAULT_EVENT`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Refreshed => "refreshed",
            Event::RefreshFailing { .. } => "refresh-failing",
            Event::NeedsReauth { .. } => "needs-reauth",
            Event::Corrupt { .. } => "corrupt",
            Event::RefreshTokenAging { .. } => "refresh-token-aging",
            Event::Imported { .. } => "imported",
            Event::Removed => "removed",
        }
    }

    /// The detail hooks see in `TOKEN_VAULT_DETAIL`.
    pub fn detail(&self) -> String {
        match self {
            Event::Refreshed | Event::Removed => String::new(),
            Event::RefreshFailing { failures, error } => {
                format!("{failures} consecutive failures; last: {error}")
            }
            Event::NeedsReauth { reason } | Event::Corrupt { reason } => reason.clone(),
            Event::RefreshTokenAging { age_days } => {
                format!("refresh token is {age_days} days old")
            }
            Event::Imported { replaced } => if *replaced { "replaced" } else { "new" }.to_string(),
        }
    }
}

/// How a refresh attempt ended, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshResult {
    Refreshed,
    Transient,
    Permanent,
}

impl RefreshResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshResult::Refreshed => "refreshed",
            RefreshResult::Transient => "transient_error",
            RefreshResult::Permanent => "permanent_error",
        }
    }
}

/// Something that listens to the engine.
pub trait Listener: Send + Sync {
    fn event(&self, connection: &str, event: &Event);
    fn refresh_result(&self, _connection: &str, _result: RefreshResult) {}
}

/// Every listener, called in turn.
#[derive(Clone, Default)]
pub struct Listeners(Vec<Arc<dyn Listener>>);

impl Listeners {
    pub fn new(listeners: Vec<Arc<dyn Listener>>) -> Self {
        Listeners(listeners)
    }

    pub fn event(&self, connection: &str, event: Event) {
        tracing::debug!(connection, event = event.name(), "event");
        for l in &self.0 {
            l.event(connection, &event);
        }
    }

    pub fn refresh_result(&self, connection: &str, result: RefreshResult) {
        for l in &self.0 {
            l.refresh_result(connection, result);
        }
    }
}
