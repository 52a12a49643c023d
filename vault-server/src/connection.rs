//! One connection in memory: its record, its health, and the lock that
//! makes its refreshes single-flight.
//!
//! Invariant: `record` holds the newest tokens we know of, even when they
//! are not yet on disk (`unpersisted`); a token from an unpersisted record
//! is never handed out, so no caller uses a new access token before the
//! rotated refresh token that came with it is durable.

use crate::record::Record;
use chrono::{DateTime, Utc};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// A connection's health, as the refresh engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    /// Holds a usable token, or can get one.
    Active,
    /// One refresh is in flight; others wait for it.
    Refreshing,
    /// The last refresh failed transiently; the scheduler retries at `until`.
    Backoff {
        until: DateTime<Utc>,
        attempts: u32,
        last_error: String,
    },
    /// The provider refused the grant; only a re-import helps.
    NeedsReauth { reason: String },
    /// The stored record could not be read; only a re-import or remove helps.
    Corrupt { reason: String },
}

/// The mutable part of a connection, behind one short-held lock.
#[derive(Debug)]
pub struct Inner {
    /// `None` only when the stored record is corrupt.
    pub record: Option<Record>,
    pub health: Health,
    /// The record in memory is newer than the one on disk.
    pub unpersisted: bool,
    /// When the last refresh completed (success or failure), for the
    /// single-flight double check and the 401 cooldown.
    pub last_attempt: Option<Instant>,
    /// When the last caller-forced refresh (after a 401) was started.
    pub last_forced: Option<Instant>,
    pub next_refresh: Option<DateTime<Utc>>,
    /// Consecutive transient refresh failures; reset by a success.
    pub failures: u32,
    /// `refresh-token-aging` was already reported for the current token.
    pub aging_reported: bool,
    /// Set by `remove`: waiters must not resurrect the connection.
    pub removed: bool,
}

/// A connection: a name, its state, and its single-flight refresh lock.
#[derive(Debug)]
pub struct Connection {
    pub name: String,
    inner: Mutex<Inner>,
    /// Held for the whole of a refresh (and of a replace or remove), so
    /// only one of them runs at a time per connection.
    pub refresh_lock: tokio::sync::Mutex<()>,
}

impl Connection {
    pub fn new(record: Record) -> Connection {
        let health = match &record.needs_reauth {
            Some(reason) => Health::NeedsReauth {
                reason: reason.clone(),
            },
            None => Health::Active,
        };
        Connection::with_inner(record.name.clone(), Some(record), health)
    }

    pub fn corrupt(name: String, reason: String) -> Connection {
        Connection::with_inner(name, None, Health::Corrupt { reason })
    }

    fn with_inner(name: String, record: Option<Record>, health: Health) -> Connection {
        Connection {
            name,
            inner: Mutex::new(Inner {
                record,
                health,
                unpersisted: false,
                last_attempt: None,
                last_forced: None,
                next_refresh: None,
                failures: 0,
                aging_reported: false,
                removed: false,
            }),
            refresh_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The state, for a moment. Never hold it across an `.await`.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
