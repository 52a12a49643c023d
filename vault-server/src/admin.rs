//! The operator's side of the engine: import (and re-import), remove, and
//! the secret-free views that `list` and `status` show.
//!
//! Invariant: a failed import or remove changes nothing: the store and the
//! in-memory connection are updated only after the checks pass, and a
//! replace is one atomic store write under the connection's refresh lock.

use crate::connection::{Connection, Health};
use crate::events::Event;
use crate::record::{Record, Tokens, TransferSettings, RECORD_VERSION};
use crate::refresh::{Engine, EngineError};
use chrono::{Duration as ChronoDuration, Utc};
use shared::api::{
    valid_connection_name, ConnectionState, ConnectionStatus, ImportRequest, RemoveResponse,
};
use shared::{Provider, ProviderKind, TokenBlob};
use std::sync::Arc;

impl Engine {
    /// Imports a blob as connection `name`; true in the result when it is new.
    pub async fn import(
        self: &Arc<Self>,
        name: &str,
        req: ImportRequest,
    ) -> Result<(ConnectionStatus, Vec<String>, bool), EngineError> {
        if !valid_connection_name(name) {
            return Err(EngineError::BadRequest(format!(
                "`{name}` is not a valid connection name: use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.' or '-'"
            )));
        }
        let blob = TokenBlob::parse(req.blob.expose())
            .map_err(|e| EngineError::BadRequest(e.to_string()))?;
        let _admin = self.admin_lock.lock().await;
        let existing = self.registry.get(name);
        let holder = existing.clone();
        let _flight = match &holder {
            Some(conn) => Some(conn.refresh_lock.lock().await),
            None => None,
        };
        let old = existing.as_ref().and_then(|c| c.lock().record.clone());
        if existing.is_some() && !req.replace {
            return Err(EngineError::Conflict(format!(
                "connection `{name}` already exists; to re-authorize it, import with --replace (its settings are kept unless given again)"
            )));
        }
        let mut warnings = Vec::new();
        let record = self.build_record(name, req, blob, old.as_ref(), &mut warnings)?;
        self.store
            .put(&record)
            .await
            .map_err(|e| EngineError::Store(e.to_string()))?;
        let conn = match existing {
            Some(conn) => {
                let mut inner = conn.lock();
                inner.record = Some(record);
                inner.health = Health::Active;
                inner.unpersisted = false;
                inner.failures = 0;
                inner.aging_reported = false;
                inner.last_attempt = None;
                self.schedule_next(&conn, &mut inner);
                drop(inner);
                conn
            }
            None => {
                let conn = self.registry.insert_new(Connection::new(record));
                self.schedule_next(&conn, &mut conn.lock());
                conn
            }
        };
        tracing::info!(connection = %name, replaced = old.is_some(), "imported");
        self.listeners.event(
            name,
            Event::Imported {
                replaced: old.is_some(),
            },
        );
        let status = self.status_of(&conn);
        Ok((status, warnings, old.is_none()))
    }

    fn build_record(
        &self,
        name: &str,
        req: ImportRequest,
        blob: TokenBlob,
        old: Option<&Record>,
        warnings: &mut Vec<String>,
    ) -> Result<Record, EngineError> {
        let bad = |m: String| EngineError::BadRequest(m);
        let (upload_cutoff, chunk_size) = (req.upload_cutoff, req.chunk_size);
        check_transfer_settings(upload_cutoff, chunk_size).map_err(bad)?;
        let provider = req
            .provider
            .or(old.map(|o| o.provider))
            .ok_or_else(|| bad("--provider is required for a new connection".into()))?;
        let client_id = req
            .client_id
            .filter(|c| !c.trim().is_empty())
            .or(old.map(|o| o.client_id.clone()))
            .ok_or_else(|| {
                bad("--client-id is required: the token endpoint needs it to refresh".into())
            })?;
        let client_secret = req
            .client_secret
            .filter(|s| !s.is_empty())
            .or(old.and_then(|o| o.client_secret.clone()));
        if client_secret.is_none() && provider == ProviderKind::Box {
            return Err(bad(
                "Box needs the client secret to refresh: give --client-secret-file FILE (or TOKEN_VAULT_CLIENT_SECRET)".into(),
            ));
        }
        let endpoints = old
            .map(|o| o.endpoints.clone())
            .unwrap_or_default()
            .merged_with(&req.endpoints);
        Provider::resolve(provider, &endpoints).map_err(|e| bad(e.to_string()))?;
        let root = match req.root.or(old.and_then(|o| o.root.clone())) {
            Some(r) => normalise_root(&r).map_err(bad)?,
            None => None,
        };
        let now = Utc::now();
        // Trust the pasted expiry only as far as expires_in allows: the
        // workstation's clock may be wrong.
        let expires_at = match (blob.expiry_utc(), blob.expires_in) {
            (Some(e), Some(secs)) => Some(e.min(now + ChronoDuration::seconds(secs))),
            (Some(e), None) => Some(e),
            // Unknown expiry with a refresh token: refresh now to learn it.
            (None, _) if blob.refresh_token.is_some() => Some(now),
            (None, _) => None,
        };
        if blob.refresh_token.is_none() {
            match expires_at {
                Some(e) if e <= now => {
                    return Err(bad(format!(
                        "this blob's access token expired at {} and it has no refresh token, so there is nothing to keep alive; authorize again",
                        e.to_rfc3339()
                    )))
                }
                Some(e) => warnings.push(format!(
                    "the blob has no refresh token: connection `{name}` stops working when its access token expires at {}; authorize with offline access to get one",
                    e.to_rfc3339()
                )),
                None => warnings.push(format!(
                    "the blob has no refresh token: connection `{name}` works only as long as the provider honours this access token"
                )),
            }
        }
        let lifetime_secs = blob.expires_in.or_else(|| {
            expires_at
                .map(|e| (e - now).num_seconds())
                .filter(|s| *s > 0)
        });
        Ok(Record {
            version: RECORD_VERSION,
            name: name.to_string(),
            provider,
            endpoints,
            client_id,
            client_secret,
            tokens: Tokens {
                access_token: blob.access_token,
                token_type: blob.token_type.unwrap_or_else(|| "bearer".into()),
                refresh_token: blob.refresh_token.clone(),
                expires_at,
                lifetime_secs,
            },
            root,
            transfer: TransferSettings {
                upload_cutoff: upload_cutoff.or(old.and_then(|o| o.transfer.upload_cutoff)),
                chunk_size: chunk_size.or(old.and_then(|o| o.transfer.chunk_size)),
            },
            allow_uids: req
                .allow_uids
                .filter(|v| !v.is_empty())
                .or(old.map(|o| o.allow_uids.clone()))
                .unwrap_or_else(|| vec![self.config.daemon_uid]),
            allow_gids: req
                .allow_gids
                .or(old.map(|o| o.allow_gids.clone()))
                .unwrap_or_default(),
            needs_reauth: None,
            last_error: None,
            created_at: old.map(|o| o.created_at).unwrap_or(now),
            last_refresh: None,
            refresh_token_issued_at: blob.refresh_token.is_some().then_some(now),
            refreshes: 0,
        })
    }

    /// Removes `name`, revoking its grant upstream first when asked.
    pub async fn remove(&self, name: &str, revoke: bool) -> Result<RemoveResponse, EngineError> {
        let _admin = self.admin_lock.lock().await;
        let conn = self.connection(name)?;
        let _flight = conn.refresh_lock.lock().await;
        let record = conn.lock().record.clone();
        let mut revoked = false;
        let mut revoke_error = None;
        if revoke {
            match &record {
                Some(r) => match crate::providers::revoke(&self.http, r).await {
                    Ok(()) => revoked = true,
                    Err(e) => revoke_error = Some(e.to_string()),
                },
                None => {
                    revoke_error =
                        Some("the record is corrupt, so there is no token to revoke".into())
                }
            }
        }
        self.store
            .remove(name)
            .await
            .map_err(|e| EngineError::Store(e.to_string()))?;
        self.registry.remove(name);
        let mut inner = conn.lock();
        inner.removed = true;
        inner.next_refresh = None;
        tracing::info!(connection = %name, revoked, "removed");
        drop(inner);
        self.listeners.event(name, Event::Removed);
        Ok(RemoveResponse {
            removed: name.to_string(),
            revoked,
            revoke_error,
        })
    }

    pub fn status(&self, name: &str) -> Result<ConnectionStatus, EngineError> {
        let conn = self.connection(name)?;
        Ok(self.status_of(&conn))
    }

    /// The secret-free view of a connection.
    pub fn status_of(&self, conn: &Connection) -> ConnectionStatus {
        let inner = conn.lock();
        let r = inner.record.as_ref();
        let (state, last_error) = match &inner.health {
            Health::Active => (ConnectionState::Ok, r.and_then(|r| r.last_error.clone())),
            Health::Refreshing => (
                ConnectionState::Refreshing,
                r.and_then(|r| r.last_error.clone()),
            ),
            Health::Backoff { last_error, .. } => {
                (ConnectionState::Backoff, Some(last_error.clone()))
            }
            Health::NeedsReauth { reason } => (ConnectionState::NeedsReauth, Some(reason.clone())),
            Health::Corrupt { reason } => (ConnectionState::Corrupt, Some(reason.clone())),
        };
        // A shared store that cannot be reached is worth saying on every connection.
        let last_error = match (last_error, self.store.problem()) {
            (None, Some(problem)) => Some(problem),
            (e, _) => e,
        };
        let fix = matches!(
            state,
            ConnectionState::NeedsReauth | ConnectionState::Corrupt
        )
        .then(|| fix_text(&conn.name, r));
        ConnectionStatus {
            name: conn.name.clone(),
            provider: r.map(|r| r.provider),
            state,
            client_id: r.map(|r| r.client_id.clone()),
            expiry: r.and_then(|r| r.tokens.expires_at),
            has_refresh_token: r.is_some_and(|r| r.tokens.refresh_token.is_some()),
            last_refresh: r.and_then(|r| r.last_refresh),
            next_refresh: inner.next_refresh,
            refreshes: r.map_or(0, |r| r.refreshes),
            last_error,
            fix,
            root: r.and_then(|r| r.root.clone()),
            allow_uids: r.map(|r| r.allow_uids.clone()).unwrap_or_default(),
            allow_gids: r.map(|r| r.allow_gids.clone()).unwrap_or_default(),
        }
    }
}

/// The exact commands that bring a connection back: authorize again on a
/// machine with a browser, then re-import here.
pub fn fix_text(name: &str, record: Option<&Record>) -> String {
    let (provider, client_id, extra) = match record {
        Some(r) => {
            let extra = if r.provider == ProviderKind::Custom {
                format!(
                    " --auth-url {} --token-url {}",
                    r.endpoints.auth_url.as_deref().unwrap_or("URL"),
                    r.endpoints.token_url.as_deref().unwrap_or("URL")
                )
            } else {
                String::new()
            };
            (r.provider.to_string(), r.client_id.clone(), extra)
        }
        None => (
            "PROVIDER".to_string(),
            "CLIENT_ID".to_string(),
            String::new(),
        ),
    };
    let provider_flag = if record.is_some() {
        String::new()
    } else {
        " --provider PROVIDER --client-id CLIENT_ID --client-secret-file FILE".into()
    };
    format!(
        "To fix it, on a machine with a browser run `oauth-authorize {provider} {client_id} --client-secret-file FILE{extra} > token.json`, then on this host run `token-vault import {name} --replace{provider_flag} < token.json` (or, without pasting tokens, run `token-vault authorize {name} --replace{provider_flag}` here and follow it)"
    )
}

/// The smallest Dropbox upload chunk accepted. Each chunk is one request
/// (and one spooled part): at 1 MiB a 1 GiB file already takes over a
/// thousand requests against Dropbox's rate limits, and smaller chunks
/// spend more on requests than on bytes. Well under the default (48 MiB,
/// rclone's) and the 4 MB some set to see sessions on small files.
pub const MIN_CHUNK_SIZE: u64 = 1 << 20;

/// Checks an import's transfer settings, in bytes: the message names the
/// setting, the range and why. `--upload-cutoff` has no upper bound here:
/// Box never takes a simple upload over its 50 MB limit whatever the
/// cutoff says (`providers/box_.rs`).
pub fn check_transfer_settings(
    upload_cutoff: Option<u64>,
    chunk_size: Option<u64>,
) -> Result<(), String> {
    let max_chunk = crate::providers::dropbox_max_chunk();
    if let Some(chunk) = chunk_size.filter(|c| !(MIN_CHUNK_SIZE..=max_chunk).contains(c)) {
        return Err(format!(
            "--chunk-size {chunk} bytes is out of range: it must be from {}MiB to {}MiB (the default is {}MiB). Dropbox refuses requests over {}MiB, and under {}MiB a large file becomes thousands of requests",
            MIN_CHUNK_SIZE >> 20,
            max_chunk >> 20,
            crate::providers::dropbox_default_chunk() >> 20,
            max_chunk >> 20,
            MIN_CHUNK_SIZE >> 20,
        ));
    }
    if upload_cutoff == Some(0) {
        return Err(
            "--upload-cutoff 0 is not a size: give the size above which Box uploads go through upload sessions, e.g. 21MB (the default, and the most, is 50MB; files under 20MB always go in one request)".into(),
        );
    }
    Ok(())
}

/// A root folder in canonical form (`/a/b`), or `None` for the account's root.
pub fn normalise_root(root: &str) -> Result<Option<String>, String> {
    let mut parts = Vec::new();
    for part in root.split('/') {
        match part {
            "" => continue,
            "." | ".." => return Err(format!("--root `{root}` must not contain `.` or `..`")),
            p if p.contains(['\0', '\\']) => {
                return Err(format!(
                    "--root `{root}` must not contain NUL or backslashes"
                ))
            }
            p => parts.push(p),
        }
    }
    Ok((!parts.is_empty()).then(|| format!("/{}", parts.join("/"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots() {
        assert_eq!(normalise_root("/").unwrap(), None);
        assert_eq!(normalise_root("").unwrap(), None);
        assert_eq!(
            normalise_root("backups//nightly/").unwrap().as_deref(),
            Some("/backups/nightly")
        );
        assert!(normalise_root("a/../b").is_err());
        assert!(normalise_root("a\\b").is_err());
    }

    #[test]
    fn transfer_settings_in_range() {
        let max = crate::providers::dropbox_max_chunk();
        for (cutoff, chunk) in [
            (None, None),
            (Some(21_000_000), Some(4_000_000)),
            (Some(1), Some(MIN_CHUNK_SIZE)),
            (None, Some(max)),
        ] {
            assert_eq!(check_transfer_settings(cutoff, chunk), Ok(()), "{chunk:?}");
        }
        for chunk in [0, 1, MIN_CHUNK_SIZE - 1, max + 1] {
            let err = check_transfer_settings(None, Some(chunk)).unwrap_err();
            assert!(
                err.contains("--chunk-size") && err.contains("from 1MiB to 150MiB"),
                "{err}"
            );
        }
        let err = check_transfer_settings(Some(0), None).unwrap_err();
        assert!(err.contains("--upload-cutoff 0"), "{err}");
    }

    #[test]
    fn fix_names_the_commands() {
        let fix = fix_text("work", None);
        assert!(
            fix.contains("oauth-authorize") && fix.contains("token-vault import work --replace"),
            "{fix}"
        );
    }
}
