//! File transfers for the API: picks a connection's provider, gives it a
//! token source backed by the refresh engine, and bounds its requests in
//! flight.
//!
//! Invariant: every path is checked and joined with the connection's root
//! before any provider sees it, and the root itself is never deleted or
//! overwritten.

use crate::providers::call::{Caller, TokenSource};
use crate::providers::{BoxCache, BoxFiles, Download, DropboxFiles, FileApi, ProviderCallError};
use crate::refresh::{Engine, EngineError};
use crate::transfer::path::RemotePath;
use crate::transfer::spool::Incoming;
use crate::transfer::TransferError;
use axum::body::Body;
use shared::api::{DeleteResult, FolderResult, Listing, UploadResult};
use shared::{Provider, ProviderKind, Secret};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Box's default cutoff between a simple upload and an upload session:
/// the largest simple upload Box takes.
pub const DEFAULT_BOX_CUTOFF: u64 = crate::providers::BOX_MAX_SIMPLE_UPLOAD;
/// How long a provider may stay silent mid-transfer before we give up.
const TRANSFER_READ_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed upload, how much of the rest of the body is read and
/// thrown away so the client can read the error, and for how long.
const MAX_DRAIN: u64 = 256 * 1024 * 1024;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The engine as a provider call's token source, for one connection.
struct EngineTokens {
    engine: Arc<Engine>,
    name: String,
}

#[async_trait::async_trait]
impl TokenSource for EngineTokens {
    async fn token(&self, rejected: bool) -> Result<Secret, ProviderCallError> {
        self.engine
            .token(&self.name, rejected)
            .await
            .map(|t| t.access_token)
            .map_err(|e| {
                let (status, code) = match &e {
                    EngineError::NotFound(_) => (404, "not_found"),
                    EngineError::NeedsReauth { .. } => (409, "needs_reauth"),
                    EngineError::Corrupt { .. } => (500, "corrupt"),
                    _ => (503, "unavailable"),
                };
                ProviderCallError::Token {
                    status,
                    code,
                    message: e.to_string(),
                }
            })
    }
}

/// What each connection keeps between transfers.
#[derive(Clone)]
struct PerConnection {
    in_flight: Arc<Semaphore>,
    box_cache: BoxCache,
}

pub struct Files {
    engine: Arc<Engine>,
    http: reqwest::Client,
    spool_dir: PathBuf,
    max_requests_per_connection: usize,
    /// How long an upload waits for its client's next byte.
    upload_idle_timeout: Duration,
    connections: Mutex<HashMap<String, PerConnection>>,
}

impl Files {
    pub fn new(
        engine: Arc<Engine>,
        spool_dir: PathBuf,
        max_requests_per_connection: usize,
        upload_idle_timeout: Duration,
    ) -> Result<Files, reqwest::Error> {
        let http = reqwest::Client::builder()
            // Box's download redirect is followed by hand, without the token.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(TRANSFER_READ_TIMEOUT)
            .user_agent(concat!("token-vault/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Files {
            engine,
            http,
            spool_dir,
            max_requests_per_connection: max_requests_per_connection.max(1),
            upload_idle_timeout,
            connections: Mutex::new(HashMap::new()),
        })
    }

    /// The provider's file API for `name`, and the checked path.
    fn open(
        &self,
        name: &str,
        client_path: &str,
    ) -> Result<(Box<dyn FileApi>, RemotePath), TransferError> {
        let record = self
            .engine
            .registry()
            .get(name)
            .and_then(|c| c.lock().record.clone())
            .ok_or_else(|| token_error(EngineError::NotFound(name.to_string())))?;
        let path = RemotePath::new(record.root.as_deref(), client_path)?;
        let provider = Provider::resolve(record.provider, &record.endpoints)
            .map_err(|e| TransferError::Unsupported(e.to_string()))?;
        let per = {
            let mut map = self.connections.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(name.to_string())
                .or_insert_with(|| PerConnection {
                    in_flight: Arc::new(Semaphore::new(self.max_requests_per_connection)),
                    box_cache: BoxCache::default(),
                })
                .clone()
        };
        let caller = Caller {
            http: self.http.clone(),
            tokens: Arc::new(EngineTokens {
                engine: self.engine.clone(),
                name: name.to_string(),
            }),
            in_flight: per.in_flight,
        };
        let missing = |what: &str| {
            TransferError::Unsupported(format!(
                "connection `{name}` has no {what} URL; re-import it with --{what}-url"
            ))
        };
        let api = provider
            .endpoints
            .api
            .clone()
            .ok_or_else(|| missing("api"))?;
        let upload = provider
            .endpoints
            .upload
            .clone()
            .ok_or_else(|| missing("upload"))?;
        let files: Box<dyn FileApi> = match record.provider {
            ProviderKind::Box => Box::new(BoxFiles {
                caller,
                api,
                upload,
                cache: per.box_cache,
                upload_cutoff: record.transfer.upload_cutoff.unwrap_or(DEFAULT_BOX_CUTOFF),
            }),
            ProviderKind::Dropbox => Box::new(DropboxFiles {
                caller,
                api,
                content: upload,
                chunk_size: record
                    .transfer
                    .chunk_size
                    .unwrap_or(crate::providers::dropbox_default_chunk())
                    .clamp(1, crate::providers::dropbox_max_chunk()),
            }),
            other => {
                return Err(TransferError::Unsupported(format!(
                    "transfers are not supported for {other} connections yet (Box and Dropbox are)"
                )))
            }
        };
        Ok((files, path))
    }

    pub async fn list(&self, name: &str, client_path: &str) -> Result<Listing, TransferError> {
        let (api, path) = self.open(name, client_path)?;
        let mut entries = api.list(&path).await?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Listing {
            path: path.client_path(),
            entries,
        })
    }

    pub async fn mkdir(
        &self,
        name: &str,
        client_path: &str,
    ) -> Result<FolderResult, TransferError> {
        let (api, path) = self.open(name, client_path)?;
        let (id, created) = api.mkdir(&path).await?;
        Ok(FolderResult {
            path: path.client_path(),
            id,
            created,
        })
    }

    pub async fn delete(
        &self,
        name: &str,
        client_path: &str,
        recursive: bool,
    ) -> Result<DeleteResult, TransferError> {
        let (api, path) = self.open(name, client_path)?;
        if path.is_root() {
            return Err(TransferError::Refused(
                "refusing to delete the connection's root folder; delete what is inside it".into(),
            ));
        }
        api.delete(&path, recursive).await?;
        Ok(DeleteResult {
            path: path.client_path(),
        })
    }

    pub async fn download(&self, name: &str, client_path: &str) -> Result<Download, TransferError> {
        let (api, path) = self.open(name, client_path)?;
        api.download(&path).await
    }

    pub async fn upload(
        &self,
        name: &str,
        client_path: &str,
        body: Body,
        len: u64,
    ) -> Result<UploadResult, TransferError> {
        let (api, path) = self.open(name, client_path)?;
        if path.is_root() {
            return Err(TransferError::Refused(
                "an upload needs a file name, not the root folder".into(),
            ));
        }
        let mut incoming = Incoming::new(body, len, self.upload_idle_timeout);
        let (entry, replaced) = match api.upload(&path, &mut incoming, &self.spool_dir).await {
            Ok(done) => done,
            Err(e) => {
                // Read what the client is still sending (bounded), so it sees
                // this error instead of a broken pipe.
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, incoming.discard(MAX_DRAIN)).await;
                return Err(e);
            }
        };
        Ok(UploadResult {
            path: path.client_path(),
            entry,
            replaced,
        })
    }
}

fn token_error(e: EngineError) -> TransferError {
    TransferError::Provider(ProviderCallError::Token {
        status: match &e {
            EngineError::NotFound(_) => 404,
            _ => 503,
        },
        code: "not_found",
        message: e.to_string(),
    })
}
