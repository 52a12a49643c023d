//! The refresh engine: hands out access tokens and keeps them fresh.
//!
//! Invariants:
//! - single flight: per connection, one refresh at a time; callers that
//!   arrive meanwhile wait on the same lock and then find the fresh token;
//! - durable first: the refreshed record (with any rotated refresh token)
//!   is written to the store before the new access token is served;
//! - an expired token is never handed out;
//! - transient failures keep the old tokens and back off; only the
//!   provider's refusal of the grant marks a connection `needs-reauth`.

use crate::connection::{Connection, Health, Inner};
use crate::events::{Event, Listeners, RefreshResult};
use crate::http::HttpClient;
use crate::oauth::{self, RefreshOutcome};
use crate::policy::{random_unit, RefreshPolicy};
use crate::record::{Record, Tokens};
use crate::registry::Registry;
use crate::store::{Store, StoreChange, StoreError};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use shared::{Provider, Secret};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};

/// Tunables of the engine, from `serve`'s flags.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub policy: RefreshPolicy,
    /// Refreshes in flight across the daemon, so 1,000 connections due at
    /// once don't open 1,000 connections to providers.
    pub max_concurrent_refreshes: usize,
    /// How long a token request waits for a refresh before giving up.
    pub token_wait: Duration,
    /// The least time between two refreshes forced by callers' 401s.
    pub cooldown: Duration,
    /// The daemon's own uid: the default ACL.
    pub daemon_uid: u32,
    /// Fire `refresh-failing` after this many consecutive transient failures.
    pub refresh_failing_after: u32,
    /// Fire `refresh-token-aging` when a rotating refresh token is older than this.
    pub refresh_token_aging: Duration,
}

/// Why a request could not be served. Messages name the fix and never a secret.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no connection named `{0}`; `token-vault list` shows the connections")]
    NotFound(String),
    #[error("connection `{name}` needs re-authorization: {reason}. {fix}")]
    NeedsReauth {
        name: String,
        reason: String,
        fix: String,
    },
    #[error("connection `{name}` is corrupt: {reason}. {fix}")]
    Corrupt {
        name: String,
        reason: String,
        fix: String,
    },
    #[error("connection `{name}` has no valid token right now: {reason}")]
    Unavailable { name: String, reason: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the provider failed: {0}")]
    Provider(String),
    #[error("the store failed: {0}")]
    Store(String),
}

/// An access token being handed out.
#[derive(Debug, Clone)]
pub struct ServedToken {
    pub access_token: Secret,
    pub token_type: String,
    pub expiry: Option<DateTime<Utc>>,
}

/// What `try_serve` found.
enum Serve {
    /// Fresh: hand it out.
    Fresh(ServedToken),
    /// Past its refresh time but still valid: hand it out and refresh behind.
    Stale(ServedToken),
    /// Not servable: wait for a refresh.
    MustWait,
}

/// Whether a refresh should skip a scheduled backoff.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Urgency {
    /// Scheduled or on a caller's behalf: respect the backoff.
    Normal,
    /// An operator's `refresh` or a caller's 401: go now.
    Forced,
}

pub struct Engine {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) http: HttpClient,
    pub(crate) config: EngineConfig,
    pub(crate) registry: Registry,
    permits: Semaphore,
    schedule: mpsc::UnboundedSender<(String, DateTime<Utc>)>,
    /// Serialises imports and removes, which are rare and must not race.
    pub(crate) admin_lock: tokio::sync::Mutex<()>,
    /// Hooks and metrics.
    pub(crate) listeners: Listeners,
}

impl Engine {
    /// A new engine and the receiving end of its schedule, for the scheduler.
    pub fn new(
        store: Arc<dyn Store>,
        http: HttpClient,
        config: EngineConfig,
        listeners: Listeners,
    ) -> (
        Arc<Engine>,
        mpsc::UnboundedReceiver<(String, DateTime<Utc>)>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let engine = Engine {
            store,
            http,
            permits: Semaphore::new(config.max_concurrent_refreshes.max(1)),
            config,
            registry: Registry::default(),
            schedule: tx,
            admin_lock: tokio::sync::Mutex::new(()),
            listeners,
        };
        (Arc::new(engine), rx)
    }

    /// Loads every stored record; unreadable ones become `corrupt`
    /// connections and the rest are scheduled.
    pub async fn load(&self) -> Result<usize, EngineError> {
        let all = self
            .store
            .load_all()
            .await
            .map_err(|e| EngineError::Store(e.to_string()))?;
        for (name, loaded) in all {
            let conn = match loaded {
                Ok(record) => Connection::new(record),
                Err(e) => {
                    tracing::error!(connection = %name, error = %e, "stored record cannot be read; marking it corrupt");
                    self.listeners.event(
                        &name,
                        Event::Corrupt {
                            reason: e.to_string(),
                        },
                    );
                    Connection::corrupt(name, e.to_string())
                }
            };
            let conn = self.registry.insert_new(conn);
            self.schedule_next(&conn, &mut conn.lock());
        }
        Ok(self.registry.len())
    }

    /// Waits for the refreshes in flight to finish (their new tokens are
    /// then on disk) and refuses new ones: called once at shutdown, so a
    /// rotated refresh token is never dropped half-way.
    pub async fn drain(&self) {
        let all = self.config.max_concurrent_refreshes.max(1) as u32;
        if let Ok(permits) = self.permits.acquire_many(all).await {
            permits.forget();
        }
        self.permits.close();
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub(crate) fn connection(&self, name: &str) -> Result<Arc<Connection>, EngineError> {
        self.registry
            .get(name)
            .ok_or_else(|| EngineError::NotFound(name.to_string()))
    }

    /// A valid access token for `name`. `rejected` says the caller's token
    /// just got a 401, which forces a refresh at most once per cooldown.
    pub async fn token(
        self: &Arc<Self>,
        name: &str,
        rejected: bool,
    ) -> Result<ServedToken, EngineError> {
        let conn = self.connection(name)?;
        let asked_at = Instant::now();
        if rejected {
            let force = {
                let mut inner = conn.lock();
                let due = inner
                    .last_forced
                    .is_none_or(|t| t.elapsed() >= self.config.cooldown);
                if due {
                    inner.last_forced = Some(asked_at);
                }
                due
            };
            if force {
                // Unless a refresh finished after this request arrived.
                let need = move |i: &Inner| i.last_attempt.is_none_or(|t| t < asked_at);
                let _ = tokio::time::timeout(
                    self.config.token_wait,
                    self.refresh_if(&conn, need, Urgency::Forced),
                )
                .await;
            }
        }
        match self.try_serve(&conn)? {
            Serve::Fresh(t) => return Ok(t),
            Serve::Stale(t) => {
                self.refresh_behind(conn.clone());
                return Ok(t);
            }
            Serve::MustWait => {}
        }
        let policy = self.config.policy.clone();
        let need = move |i: &Inner| {
            i.unpersisted
                || i.record
                    .as_ref()
                    .is_some_and(|r| !policy.is_fresh(&r.tokens, Utc::now()))
        };
        let waited = tokio::time::timeout(
            self.config.token_wait,
            self.refresh_if(&conn, need, Urgency::Normal),
        )
        .await;
        match self.try_serve(&conn)? {
            Serve::Fresh(t) | Serve::Stale(t) => Ok(t),
            Serve::MustWait => Err(match waited {
                Ok(Err(e)) => e,
                Ok(Ok(())) => self.unavailable(&conn, "the refresh did not produce a usable token"),
                Err(_) => self.unavailable(&conn, "the refresh is taking too long; try again"),
            }),
        }
    }

    /// Forces a refresh now (the operator's `refresh`).
    pub async fn refresh_now(&self, name: &str) -> Result<(), EngineError> {
        let conn = self.connection(name)?;
        let asked_at = Instant::now();
        self.refresh_if(
            &conn,
            move |i| i.last_attempt.is_none_or(|t| t < asked_at),
            Urgency::Forced,
        )
        .await
    }

    /// The scheduler's entry point: refresh if still due.
    pub async fn refresh_due(&self, name: &str) {
        let Ok(conn) = self.connection(name) else {
            return;
        };
        let policy = self.config.policy.clone();
        let need = move |i: &Inner| {
            let now = Utc::now();
            i.unpersisted
                || i.next_refresh.is_some_and(|t| t <= now)
                || i.record
                    .as_ref()
                    .is_some_and(|r| !policy.is_fresh(&r.tokens, now))
        };
        if let Err(e) = self.refresh_if(&conn, need, Urgency::Normal).await {
            tracing::warn!(connection = %name, error = %e, "scheduled refresh failed");
        }
    }

    fn refresh_behind(self: &Arc<Self>, conn: Arc<Connection>) {
        let engine = self.clone();
        tokio::spawn(async move {
            let policy = engine.config.policy.clone();
            let need = move |i: &Inner| {
                i.record
                    .as_ref()
                    .is_some_and(|r| !policy.is_fresh(&r.tokens, Utc::now()))
            };
            let _ = engine.refresh_if(&conn, need, Urgency::Normal).await;
        });
    }

    fn try_serve(&self, conn: &Connection) -> Result<Serve, EngineError> {
        let inner = conn.lock();
        self.check_usable(conn, &inner)?;
        let Some(record) = &inner.record else {
            return Ok(Serve::MustWait);
        };
        if inner.unpersisted {
            return Ok(Serve::MustWait);
        }
        let now = Utc::now();
        let policy = &self.config.policy;
        let token = || ServedToken {
            access_token: record.tokens.access_token.clone(),
            token_type: record.tokens.token_type.clone(),
            expiry: record.tokens.expires_at,
        };
        Ok(if policy.is_fresh(&record.tokens, now) {
            Serve::Fresh(token())
        } else if policy.is_servable(&record.tokens, now) {
            Serve::Stale(token())
        } else {
            Serve::MustWait
        })
    }

    /// Errors for connections that cannot serve at all.
    pub(crate) fn check_usable(&self, conn: &Connection, inner: &Inner) -> Result<(), EngineError> {
        if inner.removed {
            return Err(EngineError::NotFound(conn.name.clone()));
        }
        match &inner.health {
            Health::NeedsReauth { reason } => Err(EngineError::NeedsReauth {
                name: conn.name.clone(),
                reason: reason.clone(),
                fix: crate::admin::fix_text(&conn.name, inner.record.as_ref()),
            }),
            Health::Corrupt { reason } => Err(EngineError::Corrupt {
                name: conn.name.clone(),
                reason: reason.clone(),
                fix: crate::admin::fix_text(&conn.name, None),
            }),
            _ => Ok(()),
        }
    }

    fn unavailable(&self, conn: &Connection, fallback: &str) -> EngineError {
        let inner = conn.lock();
        if let Err(e) = self.check_usable(conn, &inner) {
            return e;
        }
        let reason = match &inner.health {
            Health::Backoff { until, last_error, .. } => {
                format!("{last_error}; the next attempt is at {}", until.to_rfc3339())
            }
            _ if inner.record.as_ref().is_some_and(|r| r.tokens.refresh_token.is_none()) => {
                "the access token has expired and there is no refresh token; authorize again and import with --replace".to_string()
            }
            _ => fallback.to_string(),
        };
        EngineError::Unavailable {
            name: conn.name.clone(),
            reason,
        }
    }

    /// Refreshes `conn` if `need` still holds once this caller has the
    /// connection's refresh lock: the double check that makes it single-flight.
    async fn refresh_if<F>(
        &self,
        conn: &Arc<Connection>,
        need: F,
        urgency: Urgency,
    ) -> Result<(), EngineError>
    where
        F: Fn(&Inner) -> bool,
    {
        let _flight = conn.refresh_lock.lock().await;
        {
            let inner = conn.lock();
            self.check_usable(conn, &inner)?;
            if !need(&inner) {
                return Ok(());
            }
            if let Health::Backoff { until, .. } = &inner.health {
                if urgency == Urgency::Normal && *until > Utc::now() && !inner.unpersisted {
                    drop(inner);
                    return Err(self.unavailable(conn, "backing off"));
                }
            }
        }
        if self.persist_pending(conn).await? && !need(&conn.lock()) {
            return Ok(());
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| EngineError::Store("the daemon is shutting down".into()))?;
        // A shared store: take the cluster-wide lock, so one vault refreshes.
        let shared_lock = match self.store.lock(&conn.name).await {
            Ok(lock) => lock,
            Err(e) => {
                return Err(
                    self.store_trouble(conn, format!("cannot take the shared refresh lock: {e}"))
                )
            }
        };
        let result = self
            .refresh_holding_lock(conn, &need, shared_lock.is_some())
            .await;
        if let Some(lock) = shared_lock {
            lock.release().await;
        }
        result
    }

    /// The refresh proper, with the connection's local (and, for a shared
    /// store, cluster-wide) lock held.
    async fn refresh_holding_lock<F>(
        &self,
        conn: &Arc<Connection>,
        need: &F,
        shared: bool,
    ) -> Result<(), EngineError>
    where
        F: Fn(&Inner) -> bool,
    {
        let mut revision = None;
        if shared {
            // Another vault may have refreshed while we waited: use its result.
            match self.store.load_revision(&conn.name).await {
                Ok(Some((Ok(stored), rev))) => {
                    revision = rev;
                    self.adopt(conn, stored);
                    let inner = conn.lock();
                    self.check_usable(conn, &inner)?;
                    if !need(&inner) {
                        return Ok(());
                    }
                }
                Ok(Some((Err(e), _))) => {
                    return Err(EngineError::Store(format!(
                        "the shared record of `{}` cannot be read: {e}",
                        conn.name
                    )))
                }
                Ok(None) => {
                    conn.lock().removed = true;
                    self.registry.remove(&conn.name);
                    return Err(EngineError::NotFound(conn.name.clone()));
                }
                Err(e) => {
                    return Err(
                        self.store_trouble(conn, format!("cannot read the shared record: {e}"))
                    )
                }
            }
        }
        let record = {
            let mut inner = conn.lock();
            let Some(record) = inner.record.clone() else {
                return Ok(());
            };
            if record.tokens.refresh_token.is_none() {
                return Err(self.unavailable_locked(conn, &inner));
            }
            inner.health = Health::Refreshing;
            record
        };
        let outcome = self.call_provider(&record).await;
        self.apply(conn, record, outcome, revision).await
    }

    /// A store failure before any provider call: a transient failure that
    /// keeps the current tokens and backs off.
    fn store_trouble(&self, conn: &Connection, reason: String) -> EngineError {
        let mut inner = conn.lock();
        tracing::warn!(connection = %conn.name, error = %reason, "refresh postponed");
        if let Some(r) = inner.record.as_mut() {
            r.last_error = Some(reason.clone());
        }
        self.back_off(conn, &mut inner, reason, None);
        self.unavailable_from(conn, &inner)
    }

    /// Takes a record another vault wrote, if it differs from ours; true if it did.
    pub(crate) fn adopt(&self, conn: &Connection, stored: Record) -> bool {
        let mut inner = conn.lock();
        if inner.removed || inner.record.as_ref() == Some(&stored) {
            return false;
        }
        inner.health = match &stored.needs_reauth {
            Some(reason) => Health::NeedsReauth {
                reason: reason.clone(),
            },
            None => Health::Active,
        };
        inner.record = Some(stored);
        inner.unpersisted = false;
        inner.failures = 0;
        inner.aging_reported = false;
        // It counts as a refresh that just completed, for forced callers.
        inner.last_attempt = Some(Instant::now());
        self.schedule_next(conn, &mut inner);
        tracing::debug!(connection = %conn.name, "took the record another vault wrote");
        true
    }

    /// Applies another vault's change to a shared store.
    pub async fn apply_remote(self: &Arc<Self>, change: StoreChange) {
        match change {
            StoreChange::Put { name, record } => self.remote_put(name, record).await,
            StoreChange::Delete { name } => self.remote_delete(&name),
            StoreChange::Snapshot(all) => {
                let names: std::collections::HashSet<String> =
                    all.iter().map(|(n, _)| n.clone()).collect();
                for conn in self.registry.all() {
                    if !names.contains(&conn.name) {
                        self.remote_delete(&conn.name);
                    }
                }
                for (name, record) in all {
                    self.remote_put(name, record).await;
                }
            }
        }
    }

    async fn remote_put(&self, name: String, record: Result<Record, crate::store::RecordError>) {
        match (self.registry.get(&name), record) {
            (Some(conn), Ok(record)) => {
                // Not in the middle of our own refresh of it.
                let _flight = conn.refresh_lock.lock().await;
                self.adopt(&conn, record);
            }
            (None, Ok(record)) => {
                let conn = self.registry.insert_new(Connection::new(record));
                self.schedule_next(&conn, &mut conn.lock());
                tracing::info!(connection = %name, "connection added by another vault");
            }
            (None, Err(e)) => {
                self.registry
                    .insert_new(Connection::corrupt(name.clone(), e.to_string()));
                self.listeners.event(
                    &name,
                    Event::Corrupt {
                        reason: e.to_string(),
                    },
                );
            }
            (Some(_), Err(e)) => {
                tracing::error!(connection = %name, error = %e, "another vault wrote a record this vault cannot read (a different key?)");
            }
        }
    }

    fn remote_delete(&self, name: &str) {
        if let Some(conn) = self.registry.remove(name) {
            let mut inner = conn.lock();
            inner.removed = true;
            inner.next_refresh = None;
            tracing::info!(connection = %name, "connection removed by another vault");
        }
    }

    fn unavailable_locked(&self, conn: &Connection, _inner: &Inner) -> EngineError {
        EngineError::Unavailable {
            name: conn.name.clone(),
            reason: "there is no refresh token; authorize again and import with --replace".into(),
        }
    }

    async fn call_provider(&self, record: &Record) -> (DateTime<Utc>, RefreshOutcome) {
        let started = Utc::now();
        let provider = match Provider::resolve(record.provider, &record.endpoints) {
            Ok(p) => p,
            Err(e) => {
                return (
                    started,
                    RefreshOutcome::PermanentError {
                        reason: format!("the connection's provider settings are invalid: {e}"),
                    },
                )
            }
        };
        let Some(refresh_token) = &record.tokens.refresh_token else {
            return (
                started,
                RefreshOutcome::PermanentError {
                    reason: "no refresh token".into(),
                },
            );
        };
        tracing::debug!(connection = %record.name, "refreshing");
        let outcome = oauth::refresh(
            &self.http,
            &provider,
            &record.client_id,
            record.client_secret.as_ref(),
            refresh_token,
        )
        .await;
        (started, outcome)
    }

    /// Records what a refresh came to: durably first, then in memory.
    async fn apply(
        &self,
        conn: &Arc<Connection>,
        old: Record,
        (started, outcome): (DateTime<Utc>, RefreshOutcome),
        revision: Option<i64>,
    ) -> Result<(), EngineError> {
        match outcome {
            RefreshOutcome::Refreshed(grant) => {
                let mut new = old.clone();
                let rotated = grant.refresh_token.is_some();
                new.tokens = Tokens {
                    access_token: grant.access_token,
                    token_type: grant.token_type,
                    refresh_token: grant.refresh_token.or(old.tokens.refresh_token),
                    // Counted from when we asked, by our own clock.
                    expires_at: grant
                        .expires_in
                        .map(|s| started + ChronoDuration::seconds(s)),
                    lifetime_secs: grant.expires_in,
                };
                if rotated {
                    new.refresh_token_issued_at = Some(started);
                }
                new.last_refresh = Some(Utc::now());
                new.last_error = None;
                new.refreshes += 1;
                let written = match self.store.put_if_unchanged(&new, revision).await {
                    // The provider took our refresh token, so ours is the newest
                    // chain whatever was written meanwhile: keep it.
                    Err(StoreError::Conflict(why)) => {
                        tracing::warn!(connection = %conn.name, %why, "shared record changed during the refresh; writing the new chain anyway");
                        self.store.put(&new).await
                    }
                    other => other,
                };
                let mut inner = conn.lock();
                inner.record = Some(new);
                inner.last_attempt = Some(Instant::now());
                match written {
                    Ok(()) => {
                        inner.unpersisted = false;
                        inner.failures = 0;
                        inner.aging_reported = false;
                        inner.health = Health::Active;
                        tracing::info!(connection = %conn.name, rotated, "refreshed");
                        self.schedule_next(conn, &mut inner);
                        drop(inner);
                        self.listeners
                            .refresh_result(&conn.name, RefreshResult::Refreshed);
                        self.listeners.event(&conn.name, Event::Refreshed);
                        Ok(())
                    }
                    Err(e) => {
                        // Keep the new tokens in memory (the old refresh token may
                        // be dead) but serve nothing until they are on disk.
                        inner.unpersisted = true;
                        let reason = format!("refreshed, but cannot write the store: {e}");
                        tracing::error!(connection = %conn.name, error = %e, "cannot persist refreshed tokens; will retry the write");
                        self.back_off(conn, &mut inner, reason.clone(), None);
                        Err(EngineError::Store(reason))
                    }
                }
            }
            RefreshOutcome::TransitoryError {
                reason,
                retry_after,
            } => {
                let mut inner = conn.lock();
                inner.last_attempt = Some(Instant::now());
                if let Some(r) = inner.record.as_mut() {
                    r.last_error = Some(reason.clone());
                }
                tracing::warn!(connection = %conn.name, error = %reason, "refresh failed; backing off");
                self.back_off(conn, &mut inner, reason.clone(), retry_after);
                let err = self.transient_error(conn, &inner, &reason);
                let failing =
                    (inner.failures == self.config.refresh_failing_after).then_some(inner.failures);
                let aging = self.aging(&mut inner);
                drop(inner);
                self.listeners
                    .refresh_result(&conn.name, RefreshResult::Transient);
                if let Some(failures) = failing {
                    self.listeners.event(
                        &conn.name,
                        Event::RefreshFailing {
                            failures,
                            error: reason,
                        },
                    );
                }
                if let Some(age_days) = aging {
                    self.listeners
                        .event(&conn.name, Event::RefreshTokenAging { age_days });
                }
                Err(err)
            }
            RefreshOutcome::PermanentError { reason } => {
                let mut new = old;
                new.needs_reauth = Some(reason.clone());
                new.last_error = Some(reason.clone());
                if let Err(e) = self.store.put_if_unchanged(&new, revision).await {
                    tracing::error!(connection = %conn.name, error = %e, "cannot record needs-reauth in the store");
                }
                let mut inner = conn.lock();
                inner.last_attempt = Some(Instant::now());
                tracing::error!(connection = %conn.name, error = %reason, "the provider refused the grant; the connection needs re-authorization");
                let fix = crate::admin::fix_text(&conn.name, Some(&new));
                inner.record = Some(new);
                inner.health = Health::NeedsReauth {
                    reason: reason.clone(),
                };
                inner.next_refresh = None;
                drop(inner);
                self.listeners
                    .refresh_result(&conn.name, RefreshResult::Permanent);
                self.listeners.event(
                    &conn.name,
                    Event::NeedsReauth {
                        reason: reason.clone(),
                    },
                );
                Err(EngineError::NeedsReauth {
                    name: conn.name.clone(),
                    reason,
                    fix,
                })
            }
        }
    }

    /// What a caller is told when a refresh failed transiently. While the
    /// current access token is still good, saying "no valid token" would be
    /// false (and `token` still hands it out): the provider failed, that's all.
    fn transient_error(&self, conn: &Connection, inner: &Inner, reason: &str) -> EngineError {
        let servable = inner.record.as_ref().filter(|r| {
            !inner.unpersisted && self.config.policy.is_servable(&r.tokens, Utc::now())
        });
        let (Some(record), Health::Backoff { until, .. }) = (servable, &inner.health) else {
            return self.unavailable_from(conn, inner);
        };
        let valid_until = match record.tokens.expires_at {
            Some(e) => format!(" (valid until {})", e.to_rfc3339()),
            None => String::new(),
        };
        EngineError::Provider(format!(
            "{reason}, so `{}` was not refreshed; its current access token is still served{valid_until}, and the next attempt is at {}",
            conn.name,
            until.to_rfc3339()
        ))
    }

    fn unavailable_from(&self, conn: &Connection, inner: &Inner) -> EngineError {
        let reason = match &inner.health {
            Health::Backoff {
                until, last_error, ..
            } => {
                format!(
                    "{last_error}; the next attempt is at {}",
                    until.to_rfc3339()
                )
            }
            _ => "the refresh failed".into(),
        };
        EngineError::Unavailable {
            name: conn.name.clone(),
            reason,
        }
    }

    fn back_off(
        &self,
        conn: &Connection,
        inner: &mut Inner,
        reason: String,
        retry_after: Option<Duration>,
    ) {
        inner.failures += 1;
        let wait = self
            .config
            .policy
            .backoff(inner.failures, retry_after, random_unit());
        let until = Utc::now() + ChronoDuration::from_std(wait).unwrap_or(ChronoDuration::MAX);
        inner.health = Health::Backoff {
            until,
            attempts: inner.failures,
            last_error: reason,
        };
        inner.next_refresh = Some(until);
        let _ = self.schedule.send((conn.name.clone(), until));
    }

    /// The age in days of a rotating refresh token past the aging limit,
    /// once per token: it is about to die unused if refreshes keep failing.
    fn aging(&self, inner: &mut Inner) -> Option<i64> {
        let record = inner.record.as_ref()?;
        if inner.aging_reported || !Provider::builtin(record.provider).rotating_refresh_tokens {
            return None;
        }
        let age = Utc::now() - record.refresh_token_issued_at?;
        if age.to_std().ok()? < self.config.refresh_token_aging {
            return None;
        }
        inner.aging_reported = true;
        Some(age.num_days())
    }

    /// Writes a record that an earlier refresh could not; true if it did.
    async fn persist_pending(&self, conn: &Connection) -> Result<bool, EngineError> {
        let pending = {
            let inner = conn.lock();
            if !inner.unpersisted {
                return Ok(false);
            }
            inner.record.clone()
        };
        let Some(record) = pending else {
            return Ok(false);
        };
        self.store
            .put(&record)
            .await
            .map_err(|e| EngineError::Store(format!("cannot write the store: {e}")))?;
        let mut inner = conn.lock();
        inner.unpersisted = false;
        inner.health = Health::Active;
        inner.failures = 0;
        self.schedule_next(conn, &mut inner);
        Ok(true)
    }

    /// Computes the next refresh time and tells the scheduler.
    pub(crate) fn schedule_next(&self, conn: &Connection, inner: &mut Inner) {
        let next = match (&inner.health, &inner.record) {
            (Health::Backoff { until, .. }, _) => Some(*until),
            (Health::Active | Health::Refreshing, Some(r)) => {
                let since = r.last_refresh.unwrap_or(r.created_at);
                self.config.policy.next_refresh(&r.tokens, since)
            }
            _ => None,
        };
        inner.next_refresh = next;
        if let Some(at) = next {
            let _ = self.schedule.send((conn.name.clone(), at));
        }
    }
}
