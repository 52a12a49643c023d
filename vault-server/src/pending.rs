//! Pending authorizations: connections being authorized from this host,
//! without a refresh token ever crossing a terminal.
//!
//! - **Bootstrap mode.** [`Authorizations::start`] makes the `state` and the
//!   PKCE verifier and keeps them here, with the client secret and the
//!   import settings; the user gets a bootstrap string holding only the
//!   authorize URL. The workstation sends back the code and the state;
//!   [`Authorizations::complete`] checks the state, exchanges the code
//!   itself and stores the connection through `Engine::import`.
//! - **The device grant (RFC 8628).** [`Authorizations::start`] asks the
//!   provider for a user code and hands the polling to `device::poll`,
//!   which stores the connection the same way.
//!
//! Invariants:
//! - single use: a bootstrap authorization is claimed (atomically, under the
//!   lock) by the first response whose state matches; anything after that
//!   is refused as already used. A wrong state claims nothing.
//! - expiry: a pending authorization past its `expires_at` is expired, and
//!   its verifier and secrets are dropped; nothing can complete it.
//! - nothing secret leaves: answers carry neither the client secret, the
//!   verifier, the code, the device code nor a token.
//! - bounded: at most [`MAX_PENDING`] wait at once, and finished ones are
//!   forgotten [`RETAIN`] after their expiry.

use crate::grant::{self, Answer};
use crate::recipient::RecipientKey;
use crate::refresh::{Engine, EngineError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use ring::rand::{SecureRandom, SystemRandom};
use shared::api::{valid_connection_name, ConnectionStatus, ErrorDetail, ImportRequest};
use shared::authorization::{
    AuthorizationInfo, AuthorizationMode, AuthorizationRequest, AuthorizationState,
};
use shared::bootstrap::{Bootstrap, BootstrapError, BootstrapResponse};
use shared::{EndpointOverrides, Provider, ProviderKind, Secret, TokenBlob};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// How long a pending authorization waits by default.
pub const DEFAULT_TTL_SECS: u64 = 600;
/// The longest wait that may be asked for.
pub const MAX_TTL_SECS: u64 = 3600;
/// How many authorizations may be pending at once.
pub const MAX_PENDING: usize = 16;
/// How many authorizations are remembered at most; the oldest finished
/// ones are forgotten first.
pub const MAX_KEPT: usize = 256;
/// How long a finished authorization stays visible (for `status`, and so
/// that a late response is told "expired" or "already used", not "unknown").
pub const RETAIN: ChronoDuration = ChronoDuration::hours(1);
/// The redirect URI of bootstrap mode unless one is given: rclone's.
pub const DEFAULT_REDIRECT: &str = "http://127.0.0.1:53682/";

/// Why an authorization request was refused. Messages name the fix and
/// never a secret; the API layer picks the status.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no pending authorization `{0}`; `token-vault authorize` starts one")]
    NotFound(String),
    #[error("{0}")]
    Exists(String),
    #[error("the response's state does not match this authorization's: it is not the answer to the bootstrap string this authorization printed (an old or altered response?). Nothing was exchanged; paste the line that `oauth-authorize --bootstrap` printed for this authorization")]
    StateMismatch,
    #[error("this authorization was already completed with a response; a response works once. Start a new one with `token-vault authorize`")]
    AlreadyUsed,
    #[error("{0}")]
    Expired(String),
    #[error("{0}")]
    NotPending(String),
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Provider(String),
    #[error("{MAX_PENDING} authorizations are already pending; finish or cancel one (`token-vault authorize` cancels its own on Ctrl-C), or wait for them to expire")]
    TooMany,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What an import needs besides the blob, kept until the tokens arrive.
#[derive(Clone)]
pub(crate) struct Settings {
    pub name: String,
    pub provider: Provider,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    endpoints: EndpointOverrides,
    root: Option<String>,
    allow_uids: Option<Vec<u32>>,
    allow_gids: Option<Vec<u32>>,
    upload_cutoff: Option<u64>,
    chunk_size: Option<u64>,
    replace: bool,
}

impl Settings {
    fn import_request(&self, blob: &TokenBlob) -> ImportRequest {
        ImportRequest {
            blob: Secret::new(blob.to_json()),
            provider: Some(self.provider.kind),
            client_id: Some(self.client_id.clone()),
            client_secret: self.client_secret.clone(),
            endpoints: self.endpoints.clone(),
            root: self.root.clone(),
            allow_uids: self.allow_uids.clone(),
            allow_gids: self.allow_gids.clone(),
            upload_cutoff: self.upload_cutoff,
            chunk_size: self.chunk_size,
            replace: self.replace,
        }
    }
}

/// The device grant's public facts, shown while it runs.
#[derive(Clone)]
struct DeviceInfo {
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    interval: u64,
}

pub(crate) enum Phase {
    /// Bootstrap: waiting for the pasted response.
    AwaitingCode {
        state: String,
        verifier: Option<Secret>,
        redirect_uri: String,
        settings: Box<Settings>,
    },
    /// Device: the poller runs; `cancel` stops it.
    Polling {
        cancel: Arc<Notify>,
    },
    /// The tokens are being fetched or stored.
    Exchanging,
    Completed {
        connection: Box<ConnectionStatus>,
        warnings: Vec<String>,
        created: bool,
    },
    Failed(ErrorDetail),
    Expired(Option<ErrorDetail>),
    Cancelled,
}

struct Entry {
    id: String,
    name: String,
    provider: ProviderKind,
    mode: AuthorizationMode,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    device: Option<DeviceInfo>,
    phase: Phase,
}

impl Entry {
    fn state(&self) -> AuthorizationState {
        match self.phase {
            Phase::AwaitingCode { .. } | Phase::Polling { .. } => AuthorizationState::Pending,
            Phase::Exchanging => AuthorizationState::Exchanging,
            Phase::Completed { .. } => AuthorizationState::Completed,
            Phase::Failed(_) => AuthorizationState::Failed,
            Phase::Expired(_) => AuthorizationState::Expired,
            Phase::Cancelled => AuthorizationState::Cancelled,
        }
    }

    /// Expires a waiting authorization whose time is up, dropping its secrets.
    fn check_expiry(&mut self, now: DateTime<Utc>) {
        let waiting = matches!(
            self.phase,
            Phase::AwaitingCode { .. } | Phase::Polling { .. }
        );
        if waiting && now >= self.expires_at {
            if let Phase::Polling { cancel } = &self.phase {
                cancel.notify_one();
            }
            self.phase = Phase::Expired(None);
        }
    }

    fn expired_message(&self) -> String {
        format!(
            "the pending authorization of `{}` expired at {}; nothing was exchanged. Start again with `token-vault authorize {}` (add --ttl for more time)",
            self.name,
            self.expires_at.to_rfc3339(),
            self.name
        )
    }

    fn info(&self) -> AuthorizationInfo {
        let (error, connection, warnings, created) = match &self.phase {
            Phase::Failed(e) => (Some(e.clone()), None, vec![], None),
            Phase::Expired(e) => (
                Some(e.clone().unwrap_or_else(|| ErrorDetail {
                    code: "expired".into(),
                    message: self.expired_message(),
                })),
                None,
                vec![],
                None,
            ),
            Phase::Completed {
                connection,
                warnings,
                created,
            } => (
                None,
                Some((**connection).clone()),
                warnings.clone(),
                Some(*created),
            ),
            _ => (None, None, vec![], None),
        };
        AuthorizationInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            provider: self.provider,
            mode: self.mode,
            state: self.state(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            bootstrap: None,
            command: None,
            verification_uri: self.device.as_ref().map(|d| d.verification_uri.clone()),
            verification_uri_complete: self
                .device
                .as_ref()
                .and_then(|d| d.verification_uri_complete.clone()),
            user_code: self.device.as_ref().map(|d| d.user_code.clone()),
            interval_secs: self.device.as_ref().map(|d| d.interval),
            error,
            connection,
            created,
            warnings,
        }
    }
}

/// The daemon's pending authorizations, and its recipient key for sealed
/// blobs (both are the headless ways in).
pub struct Authorizations {
    entries: Mutex<HashMap<String, Entry>>,
    pub recipient: RecipientKey,
}

impl Authorizations {
    pub fn new(state_dir: &Path) -> Authorizations {
        Authorizations {
            entries: Mutex::new(HashMap::new()),
            recipient: RecipientKey::new(state_dir),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Expires what is due and forgets what finished long ago.
    fn tidy(map: &mut HashMap<String, Entry>, now: DateTime<Utc>) {
        for e in map.values_mut() {
            e.check_expiry(now);
        }
        map.retain(|_, e| !e.state().is_final() || e.expires_at + RETAIN > now);
        if map.len() > MAX_KEPT {
            let mut finished: Vec<(DateTime<Utc>, String)> = map
                .values()
                .filter(|e| e.state().is_final())
                .map(|e| (e.expires_at, e.id.clone()))
                .collect();
            finished.sort();
            let excess = map.len() - MAX_KEPT;
            for (_, id) in finished.into_iter().take(excess) {
                map.remove(&id);
            }
        }
    }

    /// Starts authorizing `req.name`. For bootstrap mode the answer carries
    /// the bootstrap string and the command for the workstation; for the
    /// device grant, the verification URI and the user code.
    pub async fn start(
        self: &Arc<Self>,
        engine: &Arc<Engine>,
        req: AuthorizationRequest,
    ) -> Result<AuthorizationInfo, AuthorizeError> {
        let bad = AuthorizeError::BadRequest;
        let settings = self.settings(engine, &req)?;
        {
            let mut map = self.lock();
            Self::tidy(&mut map, Utc::now());
            let waiting = map.values().filter(|e| !e.state().is_final()).count();
            if waiting >= MAX_PENDING {
                return Err(AuthorizeError::TooMany);
            }
        }
        let ttl = req
            .ttl_secs
            .unwrap_or(DEFAULT_TTL_SECS)
            .clamp(1, MAX_TTL_SECS);
        let scopes = if req.scopes.is_empty() {
            settings.provider.default_scopes.clone()
        } else {
            req.scopes.clone()
        };
        let id = random_token(16)?;
        let now = Utc::now();
        match req.mode {
            AuthorizationMode::Bootstrap => {
                let redirect_uri = req
                    .redirect_uri
                    .clone()
                    .unwrap_or_else(|| DEFAULT_REDIRECT.to_string());
                if !shared::bootstrap::is_loopback_http(&redirect_uri) {
                    return Err(bad(format!(
                        "--redirect-url `{redirect_uri}` must be http://127.0.0.1:PORT/ or http://localhost:PORT/ (registered with the provider): oauth-authorize catches the redirect on the workstation's loopback"
                    )));
                }
                let state = random_token(32)?;
                let verifier = if settings.provider.pkce {
                    Some(Secret::new(random_token(32)?))
                } else {
                    None
                };
                let url =
                    authorize_url(&settings, &scopes, &redirect_uri, &state, verifier.as_ref())?;
                let expires_at = now + secs(ttl);
                let bootstrap = Bootstrap {
                    v: 1,
                    name: settings.name.clone(),
                    provider: settings.provider.kind,
                    authorize_url: url,
                    redirect_uri: redirect_uri.clone(),
                    state: state.clone(),
                    expires_at: expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                }
                .encode();
                let entry = Entry {
                    id: id.clone(),
                    name: settings.name.clone(),
                    provider: settings.provider.kind,
                    mode: AuthorizationMode::Bootstrap,
                    created_at: now,
                    expires_at,
                    device: None,
                    phase: Phase::AwaitingCode {
                        state,
                        verifier,
                        redirect_uri,
                        settings: Box::new(settings),
                    },
                };
                let mut info = entry.info();
                info.command = Some(format!("oauth-authorize --bootstrap '{bootstrap}'"));
                info.bootstrap = Some(bootstrap);
                tracing::info!(connection = %entry.name, id = %id, "bootstrap authorization started");
                self.lock().insert(id, entry);
                Ok(info)
            }
            AuthorizationMode::Device => {
                let Some(device_url) = settings.provider.endpoints.device.clone() else {
                    return Err(bad(format!(
                        "{} has no device authorization endpoint (RFC 8628), so --device cannot be used with it; use bootstrap mode instead: run the same `token-vault authorize` command without --device, and `oauth-authorize --bootstrap` on a machine with a browser",
                        settings.provider.kind
                    )));
                };
                let started = grant::start_device(
                    &engine.http,
                    &settings.provider,
                    &device_url,
                    &settings.client_id,
                    &scopes,
                )
                .await
                .map_err(AuthorizeError::Provider)?;
                let lifetime = match req.ttl_secs {
                    Some(_) => ttl.min(started.expires_in),
                    None => started.expires_in.min(MAX_TTL_SECS),
                };
                let expires_at = now + secs(lifetime);
                let cancel = Arc::new(Notify::new());
                let device = DeviceInfo {
                    user_code: started.user_code.clone(),
                    verification_uri: started.verification_uri.clone(),
                    verification_uri_complete: started.verification_uri_complete.clone(),
                    interval: started.interval,
                };
                let entry = Entry {
                    id: id.clone(),
                    name: settings.name.clone(),
                    provider: settings.provider.kind,
                    mode: AuthorizationMode::Device,
                    created_at: now,
                    expires_at,
                    device: Some(device),
                    phase: Phase::Polling {
                        cancel: cancel.clone(),
                    },
                };
                let info = entry.info();
                tracing::info!(connection = %entry.name, id = %id, interval = started.interval, "device authorization started");
                self.lock().insert(id.clone(), entry);
                let job = crate::device::Job {
                    id,
                    settings,
                    device_code: started.device_code,
                    verification_uri: started.verification_uri,
                    interval: started.interval,
                    cancel,
                };
                tokio::spawn(crate::device::poll(self.clone(), engine.clone(), job));
                Ok(info)
            }
        }
    }

    /// Checks the request and resolves it against an existing connection
    /// (on `replace`, unset settings come from it).
    fn settings(
        &self,
        engine: &Engine,
        req: &AuthorizationRequest,
    ) -> Result<Settings, AuthorizeError> {
        let bad = AuthorizeError::BadRequest;
        if !valid_connection_name(&req.name) {
            return Err(bad(format!(
                "`{}` is not a valid connection name: use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.' or '-'",
                req.name
            )));
        }
        let old = engine
            .registry()
            .get(&req.name)
            .map(|c| c.lock().record.clone());
        if old.is_some() && !req.replace {
            return Err(AuthorizeError::Exists(format!(
                "connection `{}` already exists; to authorize it again, add --replace (its settings are kept unless given again)",
                req.name
            )));
        }
        let old = old.flatten();
        let kind = req
            .provider
            .or(old.as_ref().map(|o| o.provider))
            .ok_or_else(|| bad("--provider is required for a new connection".into()))?;
        let client_id = req
            .client_id
            .clone()
            .filter(|c| !c.trim().is_empty())
            .or(old.as_ref().map(|o| o.client_id.clone()))
            .ok_or_else(|| bad("--client-id is required".into()))?;
        let client_secret = req
            .client_secret
            .clone()
            .filter(|s| !s.is_empty())
            .or(old.as_ref().and_then(|o| o.client_secret.clone()));
        if client_secret.is_none() && kind == ProviderKind::Box {
            return Err(bad(
                "Box needs the client secret: give --client-secret-file FILE (or TOKEN_VAULT_CLIENT_SECRET)".into(),
            ));
        }
        let endpoints = old
            .as_ref()
            .map(|o| o.endpoints.clone())
            .unwrap_or_default()
            .merged_with(&req.endpoints);
        let provider = Provider::resolve(kind, &endpoints).map_err(|e| bad(e.to_string()))?;
        if let Some(root) = &req.root {
            crate::admin::normalise_root(root).map_err(bad)?;
        }
        crate::admin::check_transfer_settings(req.upload_cutoff, req.chunk_size).map_err(bad)?;
        Ok(Settings {
            name: req.name.clone(),
            provider,
            client_id,
            client_secret,
            endpoints,
            root: req.root.clone(),
            allow_uids: req.allow_uids.clone().filter(|v| !v.is_empty()),
            allow_gids: req.allow_gids.clone(),
            upload_cutoff: req.upload_cutoff,
            chunk_size: req.chunk_size,
            replace: req.replace,
        })
    }

    /// Bootstrap: takes the pasted response, checks its state, claims the
    /// authorization (once), exchanges the code and stores the connection.
    pub async fn complete(
        &self,
        engine: &Arc<Engine>,
        id: &str,
        response: &Secret,
    ) -> Result<AuthorizationInfo, AuthorizeError> {
        let pasted = BootstrapResponse::parse(response.expose()).map_err(|e| match e {
            BootstrapError::Denied(said) => AuthorizeError::Denied(format!(
                "the pasted URL says the provider refused the authorization: {said}. Nothing was exchanged; if that was a mistake, run `oauth-authorize --bootstrap` again and approve the app"
            )),
            other => AuthorizeError::BadRequest(other.to_string()),
        })?;
        let (settings, verifier, redirect_uri) = {
            let mut map = self.lock();
            let now = Utc::now();
            Self::tidy(&mut map, now);
            let entry = map
                .get_mut(id)
                .ok_or_else(|| AuthorizeError::NotFound(id.to_string()))?;
            match &entry.phase {
                Phase::AwaitingCode { state, .. } => {
                    if !same_bytes(state.as_bytes(), pasted.state.as_bytes()) {
                        tracing::warn!(id = %id, "a bootstrap response with the wrong state was refused");
                        return Err(AuthorizeError::StateMismatch);
                    }
                }
                Phase::Exchanging | Phase::Completed { .. } => {
                    return Err(AuthorizeError::AlreadyUsed)
                }
                Phase::Expired(_) => return Err(AuthorizeError::Expired(entry.expired_message())),
                Phase::Polling { .. } => {
                    return Err(AuthorizeError::BadRequest(
                        "this is a device authorization: it completes when the user enters the code at the provider, not with a pasted response".into(),
                    ))
                }
                Phase::Failed(e) => {
                    return Err(AuthorizeError::NotPending(format!(
                        "this authorization already failed ({}); start a new one with `token-vault authorize`",
                        e.message
                    )))
                }
                Phase::Cancelled => {
                    return Err(AuthorizeError::NotPending(
                        "this authorization was cancelled; start a new one with `token-vault authorize`".into(),
                    ))
                }
            }
            // Claimed: from here on nothing else can use it.
            match std::mem::replace(&mut entry.phase, Phase::Exchanging) {
                Phase::AwaitingCode {
                    verifier,
                    redirect_uri,
                    settings,
                    ..
                } => (settings, verifier, redirect_uri),
                _ => unreachable!("checked above"),
            }
        };
        tracing::info!(connection = %settings.name, id = %id, "bootstrap response accepted; exchanging the code");
        let asked_at = Utc::now();
        let answer = grant::exchange_code(
            &engine.http,
            &settings.provider,
            &settings.client_id,
            settings.client_secret.as_ref(),
            &pasted.code,
            &redirect_uri,
            verifier.as_ref(),
        )
        .await;
        drop(verifier);
        let granted = match answer {
            Answer::Granted(g) => g,
            other => {
                let message = format!(
                    "the provider did not exchange the code ({}); nothing was stored. Codes are single-use and short-lived: start again with `token-vault authorize {}`",
                    other.describe(),
                    settings.name
                );
                tracing::warn!(connection = %settings.name, id = %id, error = %other.describe(), "code exchange failed");
                self.finish(id, Phase::Failed(detail("provider_error", &message)));
                return Err(AuthorizeError::Provider(message));
            }
        };
        self.store(engine, id, &settings, granted.into_blob(asked_at))
            .await
    }

    /// Imports the tokens as the connection and records the outcome.
    pub(crate) async fn store(
        &self,
        engine: &Arc<Engine>,
        id: &str,
        settings: &Settings,
        blob: TokenBlob,
    ) -> Result<AuthorizationInfo, AuthorizeError> {
        match engine
            .import(&settings.name, settings.import_request(&blob))
            .await
        {
            Ok((connection, warnings, created)) => {
                tracing::info!(connection = %settings.name, id = %id, "authorized on this host");
                self.finish(
                    id,
                    Phase::Completed {
                        connection: Box::new(connection),
                        warnings,
                        created,
                    },
                );
                self.status(id)
            }
            Err(e) => {
                self.finish(id, Phase::Failed(detail("import_failed", &e.to_string())));
                Err(AuthorizeError::Engine(e))
            }
        }
    }

    /// Sets the final phase of `id`.
    pub(crate) fn finish(&self, id: &str, phase: Phase) {
        if let Some(entry) = self.lock().get_mut(id) {
            entry.phase = phase;
        }
    }

    /// Device: whether the poller should go on, and if so, claims the
    /// entry for the import when `claim` is set.
    pub(crate) fn still_polling(&self, id: &str, claim: bool) -> bool {
        let mut map = self.lock();
        let Some(entry) = map.get_mut(id) else {
            return false;
        };
        entry.check_expiry(Utc::now());
        let polling = matches!(entry.phase, Phase::Polling { .. });
        if polling && claim {
            entry.phase = Phase::Exchanging;
        }
        polling
    }

    /// Device: records the interval after a `slow_down`.
    pub(crate) fn set_interval(&self, id: &str, interval: u64) {
        if let Some(d) = self.lock().get_mut(id).and_then(|e| e.device.as_mut()) {
            d.interval = interval;
        }
    }

    pub fn status(&self, id: &str) -> Result<AuthorizationInfo, AuthorizeError> {
        let mut map = self.lock();
        Self::tidy(&mut map, Utc::now());
        map.get(id)
            .map(Entry::info)
            .ok_or_else(|| AuthorizeError::NotFound(id.to_string()))
    }

    /// Every known authorization, newest first.
    pub fn list(&self) -> Vec<AuthorizationInfo> {
        let mut map = self.lock();
        Self::tidy(&mut map, Utc::now());
        let mut all: Vec<AuthorizationInfo> = map.values().map(Entry::info).collect();
        all.sort_by_key(|a| std::cmp::Reverse(a.created_at));
        all
    }

    /// Cancels a waiting authorization (its secrets are dropped; a device
    /// poller stops). Finished ones are left as they are.
    pub fn cancel(&self, id: &str) -> Result<AuthorizationInfo, AuthorizeError> {
        let mut map = self.lock();
        Self::tidy(&mut map, Utc::now());
        let entry = map
            .get_mut(id)
            .ok_or_else(|| AuthorizeError::NotFound(id.to_string()))?;
        match &entry.phase {
            Phase::AwaitingCode { .. } => entry.phase = Phase::Cancelled,
            Phase::Polling { cancel } => {
                cancel.notify_one();
                entry.phase = Phase::Cancelled;
            }
            _ => {}
        }
        Ok(entry.info())
    }
}

pub(crate) fn detail(code: &str, message: &str) -> ErrorDetail {
    ErrorDetail {
        code: code.to_string(),
        message: message.to_string(),
    }
}

/// The provider's authorize URL for a bootstrap authorization.
fn authorize_url(
    settings: &Settings,
    scopes: &[String],
    redirect_uri: &str,
    state: &str,
    verifier: Option<&Secret>,
) -> Result<String, AuthorizeError> {
    let mut url = url::Url::parse(&settings.provider.endpoints.authorize)
        .map_err(|e| AuthorizeError::BadRequest(format!("the authorize URL is not a URL: {e}")))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code");
        q.append_pair("client_id", &settings.client_id);
        q.append_pair("redirect_uri", redirect_uri);
        if !scopes.is_empty() {
            q.append_pair("scope", &scopes.join(" "));
        }
        q.append_pair("state", state);
        if let Some(v) = verifier {
            q.append_pair("code_challenge", &pkce_challenge(v));
            q.append_pair("code_challenge_method", "S256");
        }
        for (k, v) in &settings.provider.extra_auth_params {
            q.append_pair(k, v);
        }
    }
    Ok(url.into())
}

/// RFC 7636 S256: base64url(SHA-256(verifier)).
fn pkce_challenge(verifier: &Secret) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.expose().as_bytes(),
    ))
}

/// `bytes` bytes from the OS CSPRNG, base64url (43 characters for 32).
fn random_token(bytes: usize) -> Result<String, AuthorizeError> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buf).map_err(|_| {
        AuthorizeError::Engine(EngineError::Store(
            "no secure random numbers available".into(),
        ))
    })?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

fn secs(n: u64) -> ChronoDuration {
    ChronoDuration::seconds(i64::try_from(n).unwrap_or(i64::MAX / 2))
}

/// Compares without an early exit.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(kind: ProviderKind) -> Settings {
        Settings {
            name: "c".into(),
            provider: Provider::builtin(kind),
            client_id: "cid".into(),
            client_secret: Some(Secret::new("CS-secret")),
            endpoints: EndpointOverrides::default(),
            root: None,
            allow_uids: None,
            allow_gids: None,
            upload_cutoff: None,
            chunk_size: None,
            replace: false,
        }
    }

    #[test]
    fn authorize_urls_carry_no_secret() {
        let verifier = Secret::new(random_token(32).unwrap());
        assert_eq!(verifier.expose().len(), 43);
        let url = authorize_url(
            &settings(ProviderKind::Dropbox),
            &[],
            DEFAULT_REDIRECT,
            "STATE",
            Some(&verifier),
        )
        .unwrap();
        let parsed = url::Url::parse(&url).unwrap();
        let q: HashMap<String, String> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "cid");
        assert_eq!(q["redirect_uri"], DEFAULT_REDIRECT);
        assert_eq!(q["state"], "STATE");
        assert_eq!(q["code_challenge"], pkce_challenge(&verifier));
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["token_access_type"], "offline");
        assert!(!url.contains(verifier.expose()) && !url.contains("CS-secret"));
        // Box takes no PKCE.
        let url = authorize_url(
            &settings(ProviderKind::Box),
            &[],
            DEFAULT_REDIRECT,
            "S",
            None,
        )
        .unwrap();
        assert!(!url.contains("code_challenge"));
    }

    #[test]
    fn rfc7636_challenge() {
        // RFC 7636 appendix B.
        let v = Secret::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            pkce_challenge(&v),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn expiry_drops_the_secrets() {
        let now = Utc::now();
        let mut e = Entry {
            id: "i".into(),
            name: "c".into(),
            provider: ProviderKind::Box,
            mode: AuthorizationMode::Bootstrap,
            created_at: now,
            expires_at: now + ChronoDuration::seconds(1),
            device: None,
            phase: Phase::AwaitingCode {
                state: "s".into(),
                verifier: None,
                redirect_uri: DEFAULT_REDIRECT.into(),
                settings: Box::new(settings(ProviderKind::Box)),
            },
        };
        e.check_expiry(now);
        assert_eq!(e.state(), AuthorizationState::Pending);
        e.check_expiry(now + ChronoDuration::seconds(1));
        assert_eq!(e.state(), AuthorizationState::Expired);
        let info = e.info();
        assert_eq!(info.error.unwrap().code, "expired");
    }
}
