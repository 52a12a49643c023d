//! The one place provider API calls are made from: a fresh token on every
//! attempt, one refresh-and-retry on 401, Retry-After on 429, jittered
//! backoff on 5xx and network errors, and a per-connection bound on
//! requests in flight.
//!
//! Invariant: a request is rebuilt from scratch for every attempt (so a
//! streamed body is re-read from its spool, never half-sent twice), and no
//! error quotes a body or a token.

use super::ProviderCallError;
use crate::policy::random_unit;
use async_trait::async_trait;
use reqwest::{RequestBuilder, Response, StatusCode};
use shared::Secret;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Attempts per call for 429s and 5xx before giving up.
const MAX_ATTEMPTS: u32 = 6;
/// The longest Retry-After honoured; a provider asking for more is failing.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
/// The first backoff after a 5xx or network error.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where a provider call gets its access token: the vault's refresh engine.
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// A valid token; `rejected` says the last one got a 401.
    async fn token(&self, rejected: bool) -> Result<Secret, ProviderCallError>;
}

/// A connection's handle for provider calls.
#[derive(Clone)]
pub struct Caller {
    pub http: reqwest::Client,
    pub tokens: Arc<dyn TokenSource>,
    /// Requests in flight for this connection.
    pub in_flight: Arc<Semaphore>,
}

/// Why an attempt should be retried, and after how long.
fn retry_delay(status: StatusCode, response: &Response, attempt: u32) -> Option<Duration> {
    let backoff = || {
        let exp = FIRST_BACKOFF
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(MAX_BACKOFF);
        exp.mul_f64(0.5 + 0.5 * random_unit())
    };
    match status.as_u16() {
        429 => Some(
            crate::http::retry_after(response.headers())
                .map(|d| d.min(MAX_RETRY_AFTER))
                .unwrap_or_else(backoff),
        ),
        500 | 502 | 503 | 504 | 509 => Some(
            crate::http::retry_after(response.headers())
                .map(|d| d.min(MAX_RETRY_AFTER))
                .unwrap_or_else(backoff),
        ),
        _ => None,
    }
}

impl Caller {
    /// Sends the request that `build` makes with a token, retrying as the
    /// module doc says. Returns the first answer that is not retried
    /// (success or a final error status): the caller interprets it.
    pub async fn send<F>(&self, build: F) -> Result<Response, ProviderCallError>
    where
        F: Fn(&reqwest::Client, &Secret) -> Result<RequestBuilder, ProviderCallError>,
    {
        let _slot = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| ProviderCallError::Transport("shutting down".into()))?;
        // `force`: the next token must be a new one (after a 401); at most once.
        let mut force = false;
        let mut retried_401 = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.tokens.token(std::mem::take(&mut force)).await?;
            let sent = build(&self.http, &token)?.send().await;
            let response = match sent {
                Ok(r) => r,
                Err(e) if attempt < MAX_ATTEMPTS && (e.is_connect() || e.is_timeout()) => {
                    let wait = FIRST_BACKOFF.saturating_mul(attempt).min(MAX_BACKOFF);
                    tracing::debug!(error = %crate::http::describe(&e), ?wait, "provider unreachable; retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => return Err(ProviderCallError::from_reqwest(&e)),
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED {
                if retried_401 {
                    return Err(ProviderCallError::Unauthorized);
                }
                // Once: the token may have expired in flight, or been revoked.
                retried_401 = true;
                force = true;
                continue;
            }
            if attempt < MAX_ATTEMPTS {
                if let Some(wait) = retry_delay(status, &response, attempt) {
                    tracing::info!(
                        status = status.as_u16(),
                        ?wait,
                        "provider asked us to slow down or failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            return Ok(response);
        }
    }
}
