//! The device grant's poller (RFC 8628 §3.4–3.5): after the user was shown
//! the verification URI and the user code, ask the token endpoint every
//! `interval` seconds until it issues tokens or says why it never will.
//!
//! - `authorization_pending`: ask again after the interval;
//! - `slow_down`: add 5 seconds to the interval, for good;
//! - `access_denied` (Microsoft: `authorization_declined`): the user said
//!   no; the authorization fails;
//! - `expired_token`: the device code expired; the authorization expires;
//! - transient failures (network, 5xx, 429) are retried at the interval
//!   until the authorization's own deadline;
//! - any other refusal fails the authorization with the provider's words.
//!
//! Invariant: there is at least `interval` between the end of one poll and
//! the start of the next, and the first poll waits one interval too.

use crate::grant::{self, Answer};
use crate::pending::{detail, Authorizations, Phase, Settings};
use crate::refresh::Engine;
use chrono::Utc;
use shared::Secret;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// RFC 8628 §3.5: what `slow_down` adds to the interval.
pub const SLOW_DOWN_STEP: u64 = 5;

/// One device authorization to see through.
pub(crate) struct Job {
    pub id: String,
    pub settings: Settings,
    pub device_code: Secret,
    pub verification_uri: String,
    pub interval: u64,
    pub cancel: Arc<Notify>,
}

/// Polls until the job ends; records the outcome in `auths`.
pub(crate) async fn poll(auths: Arc<Authorizations>, engine: Arc<Engine>, job: Job) {
    let Job {
        id,
        settings,
        device_code,
        verification_uri,
        mut interval,
        cancel,
    } = job;
    let name = settings.name.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(interval)) => {}
            _ = cancel.notified() => {
                tracing::info!(connection = %name, id = %id, "device authorization cancelled");
                return;
            }
        }
        // Past its deadline the entry turns itself expired here.
        if !auths.still_polling(&id, false) {
            tracing::info!(connection = %name, id = %id, "device authorization ended without approval");
            return;
        }
        let asked_at = Utc::now();
        let answer = grant::poll_device(
            &engine.http,
            &settings.provider,
            &settings.client_id,
            settings.client_secret.as_ref(),
            &device_code,
        )
        .await;
        match answer {
            Answer::Granted(granted) => {
                if !auths.still_polling(&id, true) {
                    // Cancelled or expired while the poll was in flight.
                    return;
                }
                let _ = auths
                    .store(&engine, &id, &settings, granted.into_blob(asked_at))
                    .await;
                return;
            }
            Answer::Refused { ref error, .. } if error == "authorization_pending" => {
                tracing::debug!(connection = %name, id = %id, "device authorization pending");
            }
            Answer::Refused { ref error, .. } if error == "slow_down" => {
                interval += SLOW_DOWN_STEP;
                auths.set_interval(&id, interval);
                tracing::info!(connection = %name, id = %id, interval, "the provider asked to slow down");
            }
            // Microsoft says `authorization_declined` for RFC 8628's `access_denied`.
            Answer::Refused { ref error, .. }
                if error == "access_denied" || error == "authorization_declined" =>
            {
                let message = format!(
                    "the authorization of `{name}` was denied at {verification_uri}; nothing was stored. If that was a mistake, run `token-vault authorize {name} … --device` again and approve the app"
                );
                tracing::warn!(connection = %name, id = %id, "device authorization denied");
                auths.finish(&id, Phase::Failed(detail("access_denied", &message)));
                return;
            }
            Answer::Refused { ref error, .. } if error == "expired_token" => {
                let message = format!(
                    "the device code for `{name}` expired before it was approved at {verification_uri}; nothing was stored. Run `token-vault authorize {name} … --device` again and enter the new code sooner"
                );
                tracing::warn!(connection = %name, id = %id, "device code expired");
                auths.finish(&id, Phase::Expired(Some(detail("expired_token", &message))));
                return;
            }
            refused @ Answer::Refused { .. } => {
                let message = format!(
                    "the provider refused the device grant for `{name}` ({}); nothing was stored",
                    refused.describe()
                );
                tracing::warn!(connection = %name, id = %id, error = %refused.describe(), "device grant refused");
                auths.finish(&id, Phase::Failed(detail("provider_error", &message)));
                return;
            }
            Answer::Transient(reason) => {
                tracing::warn!(connection = %name, id = %id, error = %reason, "device poll failed; trying again at the next interval");
            }
        }
    }
}
