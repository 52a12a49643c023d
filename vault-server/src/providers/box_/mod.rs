//! Box: who-am-I, and files by path over Box's id-addressed API.
//!
//! This file holds what the parts share (the path cache and its item, the
//! mapping of Box's JSON to entries, the limits of Box's API) and the
//! `FileApi` operations that put the parts together: `paths` lists folders
//! and turns paths into ids, `upload` stores files, `download` streams
//! them.
//!
//! Invariants: names match case-insensitively, as Box's do (the cache is
//! keyed by lowercased account path); a cached path→id is dropped as soon
//! as Box says 404.

mod download;
mod paths;
mod upload;

use super::call::Caller;
use super::{account, read_body, Download, FileApi, ProviderCallError};
use crate::http::HttpClient;
use crate::transfer::hash::Sha1Digest;
use crate::transfer::path::RemotePath;
use crate::transfer::spool::{Incoming, Spool};
use crate::transfer::{ConflictKind, TransferError};
use chrono::{DateTime, Utc};
use reqwest::header::RETRY_AFTER;
use serde_json::Value;
use sha1::{Digest as _, Sha1};
use shared::api::{Entry, EntryKind, WhoAmI};
use shared::Secret;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Box's root folder id.
const ROOT_ID: &str = "0";
/// Box refuses upload sessions for files smaller than this.
const MIN_CHUNKED_SIZE: u64 = 20_000_000;
/// Box refuses simple uploads larger than this (50 MB, not MiB): above it
/// a file takes an upload session whatever the connection's cutoff says.
pub const MAX_SIMPLE_UPLOAD: u64 = 50_000_000;
/// How many 202s (parts still processing) a commit or download waits through.
const MAX_PROCESSING_WAITS: u32 = 60;
/// The longest wait a 202's Retry-After may impose.
const MAX_PROCESSING_WAIT: Duration = Duration::from_secs(10);

pub async fn whoami(
    http: &HttpClient,
    api: &str,
    token: &Secret,
) -> Result<WhoAmI, ProviderCallError> {
    account(
        http.inner().get(format!("{api}/users/me")),
        token,
        "/name",
        "/login",
    )
    .await
}

/// A Box item as the path cache remembers it.
#[derive(Debug, Clone)]
struct Item {
    id: String,
    kind: EntryKind,
    sha1: Option<String>,
}

impl Item {
    /// The entry of a file known only by its cached or conflict record,
    /// which lacks the size and time: `len` is what we uploaded.
    fn into_entry(self, name: &str, len: u64) -> Entry {
        Entry {
            name: name.to_string(),
            kind: self.kind,
            size: Some(len),
            modified: None,
            id: self.id,
            hash: self.sha1,
        }
    }
}

/// The path→item cache of one connection, keyed by lowercased account path.
#[derive(Debug, Default, Clone)]
pub struct BoxCache(Arc<Mutex<HashMap<String, Item>>>);

impl BoxCache {
    fn get(&self, key: &str) -> Option<Item> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn put(&self, key: String, item: Item) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, item);
    }

    /// Forgets `key` and everything under it.
    fn forget(&self, key: &str) {
        let prefix = format!("{key}/");
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| k != key && !k.starts_with(&prefix));
    }
}

fn cache_key(path: &RemotePath) -> String {
    path.account_path().to_lowercase()
}

/// Box file operations for one connection.
pub struct BoxFiles {
    pub caller: Caller,
    pub api: String,
    pub upload: String,
    pub cache: BoxCache,
    /// Files above this many bytes go through upload sessions.
    pub upload_cutoff: u64,
}

impl BoxFiles {
    /// POSTs `body` as JSON to `url`; the answer's status and body, read.
    async fn post_json(&self, url: &str, body: &Value) -> Result<(u16, Vec<u8>), TransferError> {
        let response = self
            .caller
            .send(|http, token| Ok(http.post(url).bearer_auth(token.expose()).json(body)))
            .await?;
        let status = response.status().as_u16();
        Ok((status, read_body(response).await?))
    }
}

/// Maps a Box item's JSON to an entry.
fn entry(item: &Value) -> Option<Entry> {
    let kind = match item.get("type")?.as_str()? {
        "file" => EntryKind::File,
        "folder" => EntryKind::Folder,
        "web_link" => EntryKind::WebLink,
        _ => return None,
    };
    Some(Entry {
        name: item.get("name")?.as_str()?.to_string(),
        kind,
        size: item.get("size").and_then(Value::as_u64),
        modified: item
            .get("modified_at")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        id: item.get("id")?.as_str()?.to_string(),
        hash: item.get("sha1").and_then(Value::as_str).map(str::to_string),
    })
}

/// The code of a Box error body (`item_name_in_use`, …).
fn box_code(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("code")?
        .as_str()
        .map(str::to_string)
}

/// The conflicting item of a 409 `item_name_in_use`.
fn conflict_item(body: &[u8]) -> Option<Item> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let c = v.pointer("/context_info/conflicts")?;
    let c = if c.is_array() { c.get(0)? } else { c };
    let e = entry(c)?;
    Some(Item {
        id: e.id,
        kind: e.kind,
        sha1: e.hash,
    })
}

/// How long a 202 asks us to wait.
fn processing_wait(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1))
        .min(MAX_PROCESSING_WAIT)
}

#[async_trait::async_trait]
impl FileApi for BoxFiles {
    async fn list(&self, path: &RemotePath) -> Result<Vec<Entry>, TransferError> {
        let item = self.resolve(path).await?;
        if item.kind != EntryKind::Folder {
            return Err(TransferError::conflict(
                ConflictKind::NotAFolder,
                format!("`{}` is a file, not a folder", path.client_path()),
            ));
        }
        match self.list_folder(&item.id).await {
            Err(TransferError::NotFound(_)) => {
                self.cache.forget(&cache_key(path));
                Err(TransferError::NotFound(path.client_path()))
            }
            other => other,
        }
    }

    async fn mkdir(&self, path: &RemotePath) -> Result<(String, bool), TransferError> {
        let Some(parent) = path.parent_in_account() else {
            return Ok((ROOT_ID.into(), false));
        };
        if let Some(item) = self.lookup(path).await? {
            return match item.kind {
                EntryKind::Folder => Ok((item.id, false)),
                _ => Err(TransferError::conflict(
                    ConflictKind::InTheWay,
                    format!("`{}` is a file", path.client_path()),
                )),
            };
        }
        let (parent_id, _) = Box::pin(self.mkdir(&parent)).await?;
        let name = path.segments().last().cloned().unwrap_or_default();
        let (item, created) = self.create_folder(&parent_id, &name).await?;
        let id = item.id.clone();
        self.cache.put(cache_key(path), item);
        Ok((id, created))
    }

    async fn delete(&self, path: &RemotePath, recursive: bool) -> Result<(), TransferError> {
        let item = self.resolve(path).await?;
        let result = self.delete_item(&item, recursive).await;
        if !matches!(result, Err(TransferError::Conflict { .. })) {
            self.cache.forget(&cache_key(path));
        }
        match result {
            Err(TransferError::NotFound(_)) => Err(TransferError::NotFound(path.client_path())),
            other => other,
        }
    }

    async fn download(&self, path: &RemotePath) -> Result<Download, TransferError> {
        // Twice at most: a 404 means the id was stale (the file deleted, or
        // replaced by another of that name, behind our back), and the
        // second try resolves the path afresh.
        for _ in 0..2 {
            let item = self.resolve(path).await?;
            if item.kind != EntryKind::File {
                return Err(TransferError::conflict(
                    ConflictKind::NotAFile,
                    format!("`{}` is not a file", path.client_path()),
                ));
            }
            match self.download_file(&item.id).await {
                Err(TransferError::NotFound(_)) => self.cache.forget(&cache_key(path)),
                other => return other,
            }
        }
        Err(TransferError::NotFound(path.client_path()))
    }

    async fn upload(
        &self,
        path: &RemotePath,
        incoming: &mut Incoming,
        spool_dir: &Path,
    ) -> Result<(Entry, bool), TransferError> {
        let (Some(parent), Some(name)) =
            (path.parent_in_account(), path.segments().last().cloned())
        else {
            return Err(TransferError::Refused(
                "cannot upload over the account's root folder".into(),
            ));
        };
        let total = incoming.total;
        let chunked =
            total > self.upload_cutoff.min(MAX_SIMPLE_UPLOAD) && total >= MIN_CHUNKED_SIZE;
        // A simple upload's body, spooled once for every attempt.
        let mut spooled: Option<(Spool, Sha1Digest)> = None;
        let mut ids_refreshed = false;
        let (entry, replaced) = loop {
            let (parent_id, _) = self.mkdir(&parent).await?;
            let existing = self.lookup(path).await?;
            if existing.as_ref().is_some_and(|i| i.kind != EntryKind::File) {
                return Err(TransferError::conflict(
                    ConflictKind::IsAFolder,
                    format!("`{}` is a folder", path.client_path()),
                ));
            }
            let attempt = if chunked {
                self.chunked_upload(&parent_id, &name, existing.as_ref(), incoming, spool_dir)
                    .await
            } else {
                let (spool, sha1) = match &spooled {
                    Some(s) => s,
                    None => {
                        let mut sha1 = Sha1::new();
                        let spool = Spool::fill(spool_dir, incoming, total, &mut sha1).await?;
                        spooled.insert((spool, sha1.finalize().into()))
                    }
                };
                self.simple_upload(&parent_id, &name, existing.as_ref(), spool, sha1)
                    .await
            };
            match attempt {
                // A cached id (the file's or its folder's) was deleted behind
                // our back: Box said 404 and stored nothing, and none of a
                // session's body was read yet. Resolve the path afresh, once.
                Err(TransferError::NotFound(_)) if !ids_refreshed => {
                    tracing::info!("a cached Box id is gone; resolving the path again");
                    self.cache.forget(&cache_key(path));
                    self.cache.forget(&cache_key(&parent));
                    ids_refreshed = true;
                }
                other => break other?,
            }
        };
        self.cache.put(
            cache_key(path),
            Item {
                id: entry.id.clone(),
                kind: EntryKind::File,
                sha1: entry.hash.clone(),
            },
        );
        Ok((entry, replaced))
    }
}
