//! Box: who-am-I, and files by path over Box's id-addressed API.
//!
//! Invariants: names match case-insensitively, as Box's do; a cached
//! path→id is dropped as soon as Box says 404; an upload to an existing
//! path makes a new version; a chunked upload session is either committed
//! or aborted, never left behind.

use super::call::{hold_until_body_ends, Caller};
use super::{account, read_body, status_error, Download, FileApi, ProviderCallError};
use crate::http::HttpClient;
use crate::transfer::hash::{hex, BoxDigests, Sha1Digest};
use crate::transfer::path::RemotePath;
use crate::transfer::spool::{Incoming, Spool};
use crate::transfer::{ConflictKind, TransferError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use serde_json::{json, Value};
use sha1::{Digest as _, Sha1};
use shared::api::{Entry, EntryKind, WhoAmI};
use shared::Secret;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Box's root folder id.
const ROOT_ID: &str = "0";
/// The fields a listing asks for.
const LIST_FIELDS: &str = "type,id,name,size,modified_at,sha1,item_status";
/// Entries per listing page (Box's maximum).
const PAGE_LIMIT: u32 = 1000;
/// Box refuses upload sessions for files smaller than this.
const MIN_CHUNKED_SIZE: u64 = 20_000_000;
/// Box refuses simple uploads larger than this (50 MB, not MiB): above it
/// a file takes an upload session whatever the connection's cutoff says.
pub const MAX_SIMPLE_UPLOAD: u64 = 50_000_000;
/// How many 202s (parts still processing) a commit or download waits through.
const MAX_PROCESSING_WAITS: u32 = 60;
/// The longest wait a 202's Retry-After may impose.
const MAX_PROCESSING_WAIT: Duration = Duration::from_secs(10);
/// Tries of a download's redirect target (Box's download servers) before
/// giving up; each try asks `/content` for a fresh URL, after a pause.
const MAX_REDIRECT_ATTEMPTS: u32 = 3;
const REDIRECT_RETRY_WAIT: Duration = Duration::from_secs(1);

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

impl BoxFiles {
    /// Every active item in folder `id`, following markers.
    async fn list_folder(&self, id: &str) -> Result<Vec<Entry>, TransferError> {
        let mut entries = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let url = format!("{}/folders/{id}/items", self.api);
            let m = marker.clone();
            let response = self
                .caller
                .send(|http, token| {
                    let mut q = vec![
                        ("fields", LIST_FIELDS.to_string()),
                        ("limit", PAGE_LIMIT.to_string()),
                        ("usemarker", "true".to_string()),
                    ];
                    if let Some(m) = &m {
                        q.push(("marker", m.clone()));
                    }
                    Ok(http.get(&url).bearer_auth(token.expose()).query(&q))
                })
                .await?;
            let status = response.status().as_u16();
            let body = read_body(response).await?;
            if status == 404 {
                return Err(TransferError::NotFound(format!("Box folder {id}")));
            }
            if status != 200 {
                return Err(status_error(status, &body).into());
            }
            let page: Value = serde_json::from_slice(&body).map_err(|_| {
                ProviderCallError::BadAnswer("a folder listing that is not JSON".into())
            })?;
            for item in page
                .get("entries")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let active = item
                    .get("item_status")
                    .and_then(Value::as_str)
                    .is_none_or(|s| s == "active");
                if let (true, Some(e)) = (active, entry(item)) {
                    entries.push(e);
                }
            }
            marker = page
                .get("next_marker")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .map(str::to_string);
            if marker.is_none() {
                return Ok(entries);
            }
        }
    }

    /// The item at `path`, from the cache or by listing parents.
    async fn resolve(&self, path: &RemotePath) -> Result<Item, TransferError> {
        let Some(parent) = path.parent_in_account() else {
            return Ok(Item {
                id: ROOT_ID.into(),
                kind: EntryKind::Folder,
                sha1: None,
            });
        };
        let key = cache_key(path);
        if let Some(item) = self.cache.get(&key) {
            return Ok(item);
        }
        let folder = Box::pin(self.resolve(&parent)).await?;
        if folder.kind != EntryKind::Folder {
            return Err(TransferError::conflict(
                ConflictKind::NotAFolder,
                format!("`{}` is a file, not a folder", parent.client_path()),
            ));
        }
        let children = match self.list_folder(&folder.id).await {
            Err(TransferError::NotFound(_)) => {
                // The cached parent is stale: forget it and resolve afresh once.
                self.cache.forget(&cache_key(&parent));
                let folder = Box::pin(self.resolve(&parent)).await?;
                self.list_folder(&folder.id).await?
            }
            other => other?,
        };
        let parent_key = cache_key(&parent);
        let mut found = None;
        for child in children {
            let item = Item {
                id: child.id.clone(),
                kind: child.kind,
                sha1: child.hash.clone(),
            };
            let child_key = format!(
                "{}/{}",
                parent_key.trim_end_matches('/'),
                child.name.to_lowercase()
            );
            if child_key == key {
                found = Some(item.clone());
            }
            self.cache.put(child_key, item);
        }
        found.ok_or_else(|| TransferError::NotFound(path.client_path()))
    }

    /// Resolves, treating "not found" as `None`.
    async fn lookup(&self, path: &RemotePath) -> Result<Option<Item>, TransferError> {
        match self.resolve(path).await {
            Ok(item) => Ok(Some(item)),
            Err(TransferError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates folder `name` in `parent_id`; an existing folder is success.
    async fn create_folder(
        &self,
        parent_id: &str,
        name: &str,
    ) -> Result<(Item, bool), TransferError> {
        let url = format!("{}/folders", self.api);
        let body = json!({"name": name, "parent": {"id": parent_id}});
        let response = self
            .caller
            .send(|http, token| Ok(http.post(&url).bearer_auth(token.expose()).json(&body)))
            .await?;
        let status = response.status().as_u16();
        let bytes = read_body(response).await?;
        match status {
            200 | 201 => {
                let v: Value = serde_json::from_slice(&bytes).map_err(|_| {
                    ProviderCallError::BadAnswer("a folder that is not JSON".into())
                })?;
                let e = entry(&v)
                    .ok_or_else(|| ProviderCallError::BadAnswer("a folder without an id".into()))?;
                Ok((
                    Item {
                        id: e.id,
                        kind: EntryKind::Folder,
                        sha1: None,
                    },
                    true,
                ))
            }
            409 => match conflict_item(&bytes) {
                Some(item) if item.kind == EntryKind::Folder => Ok((item, false)),
                Some(_) => Err(TransferError::conflict(
                    ConflictKind::InTheWay,
                    format!("a file named `{name}` is in the way"),
                )),
                None => Err(status_error(status, &bytes).into()),
            },
            404 => Err(TransferError::NotFound(format!("Box folder {parent_id}"))),
            _ => Err(status_error(status, &bytes).into()),
        }
    }

    async fn delete_item(&self, item: &Item, recursive: bool) -> Result<(), TransferError> {
        let url = match item.kind {
            EntryKind::Folder => format!("{}/folders/{}", self.api, item.id),
            _ => format!("{}/files/{}", self.api, item.id),
        };
        let folder = item.kind == EntryKind::Folder;
        let response = self
            .caller
            .send(|http, token| {
                let mut req = http.delete(&url).bearer_auth(token.expose());
                if folder && recursive {
                    req = req.query(&[("recursive", "true")]);
                }
                Ok(req)
            })
            .await?;
        let status = response.status().as_u16();
        let body = read_body(response).await?;
        match status {
            200 | 204 => Ok(()),
            404 => Err(TransferError::NotFound(format!("Box item {}", item.id))),
            400 if box_code(&body).as_deref() == Some("folder_not_empty") => Err(
                TransferError::conflict(ConflictKind::FolderNotEmpty, "the folder is not empty"),
            ),
            _ => Err(status_error(status, &body).into()),
        }
    }

    /// Uploads at most `upload_cutoff` bytes in one multipart request.
    /// `NotFound` means a cached id is stale and nothing was stored.
    async fn simple_upload(
        &self,
        parent_id: &str,
        name: &str,
        existing: Option<&Item>,
        spool: &Spool,
        sha1: &Sha1Digest,
    ) -> Result<(Entry, bool), TransferError> {
        let mut target = existing.map(|i| i.id.clone());
        let sha1_hex = hex(sha1);
        loop {
            let url = match &target {
                Some(id) => format!("{}/files/{id}/content", self.upload),
                None => format!("{}/files/content", self.upload),
            };
            let attributes = match &target {
                Some(_) => json!({"name": name}),
                None => json!({"name": name, "parent": {"id": parent_id}}),
            }
            .to_string();
            let len = spool.len;
            let file_name = name.to_string();
            let response = self
                .caller
                .send(|http, token| {
                    let body = spool.body_from(0).map_err(|e| {
                        ProviderCallError::Transport(format!("cannot read the spooled upload: {e}"))
                    })?;
                    // Box requires the attributes part before the file part.
                    let form = reqwest::multipart::Form::new()
                        .text("attributes", attributes.clone())
                        .part(
                            "file",
                            reqwest::multipart::Part::stream_with_length(body, len)
                                .file_name(file_name.clone()),
                        );
                    Ok(http
                        .post(&url)
                        .bearer_auth(token.expose())
                        .header("Content-MD5", sha1_hex.clone())
                        .multipart(form))
                })
                .await?;
            let status = response.status().as_u16();
            let body = read_body(response).await?;
            match status {
                200 | 201 => return Ok((uploaded_entry(&body)?, target.is_some())),
                409 if target.is_none() => match conflict_item(&body) {
                    // Our own upload, whose answer was lost before a retry:
                    // the file holds these very bytes, so it is done.
                    Some(item)
                        if item.kind == EntryKind::File
                            && item.sha1.as_deref() == Some(sha1_hex.as_str()) =>
                    {
                        return Ok((item.into_entry(name, len), false))
                    }
                    // Someone created it meanwhile: upload a new version of theirs.
                    Some(item) if item.kind == EntryKind::File => target = Some(item.id),
                    _ => {
                        return Err(TransferError::conflict(
                            ConflictKind::InTheWay,
                            format!("a folder named `{name}` is in the way"),
                        ))
                    }
                },
                404 => return Err(TransferError::NotFound(format!("Box item for `{name}`"))),
                _ => return Err(status_error(status, &body).into()),
            }
        }
    }

    /// An upload session: parts of the server's size, each with its SHA-1,
    /// then a commit with the whole file's SHA-1. Aborted on any failure,
    /// and when the upload is dropped unfinished (its client hung up).
    /// `NotFound` means a cached id is stale and none of the body was read.
    async fn chunked_upload(
        &self,
        parent_id: &str,
        name: &str,
        existing: Option<&Item>,
        incoming: &mut Incoming,
        spool_dir: &Path,
    ) -> Result<(Entry, bool), TransferError> {
        let total = incoming.total;
        let (url, body) = match existing {
            Some(item) => (
                format!("{}/files/{}/upload_sessions", self.upload, item.id),
                json!({"file_size": total}),
            ),
            None => (
                format!("{}/files/upload_sessions", self.upload),
                json!({"folder_id": parent_id, "file_size": total, "file_name": name}),
            ),
        };
        let response = self
            .caller
            .send(|http, token| Ok(http.post(&url).bearer_auth(token.expose()).json(&body)))
            .await?;
        let status = response.status().as_u16();
        let bytes = read_body(response).await?;
        if status == 409 && existing.is_none() {
            if let Some(item) = conflict_item(&bytes).filter(|i| i.kind == EntryKind::File) {
                return Box::pin(self.chunked_upload(
                    parent_id,
                    name,
                    Some(&item),
                    incoming,
                    spool_dir,
                ))
                .await;
            }
        }
        if status == 404 {
            return Err(TransferError::NotFound(format!("Box item for `{name}`")));
        }
        if status != 201 && status != 200 {
            return Err(status_error(status, &bytes).into());
        }
        let session: Value = serde_json::from_slice(&bytes).map_err(|_| {
            ProviderCallError::BadAnswer("an upload session that is not JSON".into())
        })?;
        let (Some(sid), Some(part_size)) = (
            session
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string),
            session
                .get("part_size")
                .and_then(Value::as_u64)
                .filter(|n| *n > 0),
        ) else {
            return Err(ProviderCallError::BadAnswer(
                "an upload session without id or part_size".into(),
            )
            .into());
        };
        let mut open = OpenSession {
            caller: self.caller.clone(),
            url: format!("{}/files/upload_sessions/{sid}", self.upload),
        };
        let result = self
            .send_parts_and_commit(
                &sid,
                part_size,
                name,
                parent_id,
                existing.is_some(),
                incoming,
                spool_dir,
            )
            .await;
        match result {
            Ok(entry) => {
                open.url.clear();
                Ok((entry, existing.is_some()))
            }
            Err(e) => {
                abort_session(&open.caller, &std::mem::take(&mut open.url)).await;
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_parts_and_commit(
        &self,
        sid: &str,
        part_size: u64,
        name: &str,
        parent_id: &str,
        new_version: bool,
        incoming: &mut Incoming,
        spool_dir: &Path,
    ) -> Result<Entry, TransferError> {
        let total = incoming.total;
        let url = format!("{}/files/upload_sessions/{sid}", self.upload);
        let mut digests = BoxDigests::new();
        let mut parts = Vec::new();
        let mut offset = 0u64;
        let mut current = if total > 0 {
            Some(next_part(spool_dir, incoming, part_size, &mut digests).await?)
        } else {
            None
        };
        // Each part goes to Box while the next one arrives from the client.
        while let Some((spool, sha1)) = current.take().filter(|(s, _)| s.len > 0) {
            let more = offset + spool.len < total;
            let next = async {
                if more {
                    next_part(spool_dir, incoming, part_size, &mut digests)
                        .await
                        .map(Some)
                } else {
                    Ok(None)
                }
            };
            let (part, next) =
                tokio::join!(self.put_part(&url, &spool, &sha1, offset, total), next);
            parts.push(part?);
            offset += spool.len;
            current = next?;
        }
        let whole = digests.finish();
        let digest = format!("sha={}", STANDARD.encode(whole));
        let attributes = if new_version {
            json!({"name": name})
        } else {
            json!({"name": name, "parent": {"id": parent_id}})
        };
        let commit = json!({"parts": parts, "attributes": attributes});
        let commit_url = format!("{url}/commit");
        for _ in 0..MAX_PROCESSING_WAITS {
            let response = self
                .caller
                .send(|http, token| {
                    Ok(http
                        .post(&commit_url)
                        .bearer_auth(token.expose())
                        .header("Digest", digest.clone())
                        .json(&commit))
                })
                .await?;
            let status = response.status().as_u16();
            let wait = processing_wait(&response);
            let body = read_body(response).await?;
            match status {
                200 | 201 => return uploaded_entry(&body),
                // Parts still being processed: commit again after Retry-After.
                202 => tokio::time::sleep(wait).await,
                // The session is gone. If it went because an earlier attempt
                // committed it and that answer was lost, the file is there
                // with our SHA-1.
                404 => {
                    return match self.committed_file(parent_id, name, &hex(&whole)).await {
                        Ok(Some(entry)) => Ok(entry),
                        _ => Err(status_error(status, &body).into()),
                    }
                }
                400 if box_code(&body).as_deref() == Some("parts_mismatch") => {
                    tokio::time::sleep(wait).await
                }
                _ => return Err(status_error(status, &body).into()),
            }
        }
        Err(ProviderCallError::BadAnswer("Box kept answering 202 to the commit".into()).into())
    }

    /// Sends one part of an upload session; Box's record of it.
    async fn put_part(
        &self,
        url: &str,
        spool: &Spool,
        sha1: &Sha1Digest,
        offset: u64,
        total: u64,
    ) -> Result<Value, TransferError> {
        let range = format!("bytes {}-{}/{total}", offset, offset + spool.len - 1);
        let digest = format!("sha={}", STANDARD.encode(sha1));
        let response = self
            .caller
            .send(|http, token| {
                let request = http
                    .put(url)
                    .bearer_auth(token.expose())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_RANGE, range.clone())
                    .header("Digest", digest.clone());
                spool.send_from(request, 0).map_err(|e| {
                    ProviderCallError::Transport(format!("cannot read the spooled part: {e}"))
                })
            })
            .await?;
        let status = response.status().as_u16();
        let body = read_body(response).await?;
        if status != 200 && status != 201 {
            return Err(status_error(status, &body).into());
        }
        serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("part").cloned())
            .ok_or_else(|| {
                ProviderCallError::BadAnswer("an uploaded part without its record".into()).into()
            })
    }

    /// File `id`'s content, streamed, with its SHA-1 as Box has it now (a
    /// cached one may predate a new version). `NotFound` if the id is gone.
    /// The in-flight slot is held until the content has been read.
    async fn download_file(&self, id: &str) -> Result<Download, TransferError> {
        let info_url = format!("{}/files/{id}", self.api);
        let response = self
            .caller
            .send(|http, token| {
                Ok(http
                    .get(&info_url)
                    .bearer_auth(token.expose())
                    .query(&[("fields", "sha1,size")]))
            })
            .await?;
        let status = response.status().as_u16();
        let body = read_body(response).await?;
        match status {
            200 => {}
            404 => return Err(TransferError::NotFound(format!("Box file {id}"))),
            _ => return Err(status_error(status, &body).into()),
        }
        let sha1 = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("sha1")?.as_str().map(str::to_string));
        let url = format!("{}/files/{id}/content", self.api);
        let mut redirects_failed = 0;
        for _ in 0..MAX_PROCESSING_WAITS {
            let (response, slot) = self
                .caller
                .send_holding(|http, token| Ok(http.get(&url).bearer_auth(token.expose())))
                .await?;
            let status = response.status().as_u16();
            let content = match status {
                // The content lives elsewhere; the short-lived URL needs no
                // token. A failure there is retried with a fresh URL.
                301 | 302 | 303 | 307 => match self.follow(&response).await {
                    Ok(content) => content,
                    Err(e) if redirects_failed + 1 < MAX_REDIRECT_ATTEMPTS => {
                        redirects_failed += 1;
                        tracing::info!(error = %e, "Box's download URL failed; asking for a new one");
                        drop(slot);
                        tokio::time::sleep(REDIRECT_RETRY_WAIT).await;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                },
                200 => response,
                202 => {
                    drop(slot);
                    tokio::time::sleep(processing_wait(&response)).await;
                    continue;
                }
                404 => return Err(TransferError::NotFound(format!("Box file {id}"))),
                _ => {
                    let body = read_body(response).await.unwrap_or_default();
                    return Err(status_error(status, &body).into());
                }
            };
            return Ok(Download {
                size: content.content_length(),
                hash: sha1,
                response: hold_until_body_ends(content, slot),
            });
        }
        Err(ProviderCallError::BadAnswer("Box kept answering 202 to the download".into()).into())
    }

    /// The answer of the URL a download redirect points to, if it is a
    /// success.
    async fn follow(
        &self,
        redirect: &reqwest::Response,
    ) -> Result<reqwest::Response, ProviderCallError> {
        let location = redirect
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ProviderCallError::BadAnswer("a redirect without a Location".into()))?;
        let content = self
            .caller
            .http
            .get(location)
            .send()
            .await
            .map_err(|e| ProviderCallError::from_reqwest(&e))?;
        if !content.status().is_success() {
            let status = content.status().as_u16();
            return Err(status_error(
                status,
                &read_body(content).await.unwrap_or_default(),
            ));
        }
        Ok(content)
    }

    /// The file `name` in folder `parent_id` if it holds the bytes whose
    /// SHA-1 is `sha1_hex`.
    async fn committed_file(
        &self,
        parent_id: &str,
        name: &str,
        sha1_hex: &str,
    ) -> Result<Option<Entry>, TransferError> {
        let wanted = name.to_lowercase();
        Ok(self.list_folder(parent_id).await?.into_iter().find(|e| {
            e.kind == EntryKind::File
                && e.name.to_lowercase() == wanted
                && e.hash.as_deref() == Some(sha1_hex)
        }))
    }
}

/// An upload session that is neither committed nor aborted yet. Dropped
/// with its `url` still set, it aborts the session in the background: an
/// upload whose client hung up is cancelled at an `.await`, never reaching
/// the code that commits or aborts, and Box would keep the parts.
struct OpenSession {
    caller: Caller,
    /// The session's URL; empty once it is committed or aborted.
    url: String,
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        if self.url.is_empty() {
            return;
        }
        let (caller, url) = (self.caller.clone(), std::mem::take(&mut self.url));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            tracing::info!("an upload was dropped unfinished; aborting its Box session");
            runtime.spawn(async move { abort_session(&caller, &url).await });
        }
    }
}

async fn abort_session(caller: &Caller, url: &str) {
    match caller
        .send(|http, token| Ok(http.delete(url).bearer_auth(token.expose())))
        .await
    {
        Ok(r) if r.status().is_success() => tracing::info!("aborted a Box upload session"),
        Ok(r) => tracing::warn!(
            status = r.status().as_u16(),
            "Box refused to abort an upload session"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot abort a Box upload session"),
    }
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

/// The file of an upload answer `{"total_count":1,"entries":[file]}`.
fn uploaded_entry(body: &[u8]) -> Result<Entry, TransferError> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/entries/0").and_then(entry))
        .ok_or_else(|| {
            ProviderCallError::BadAnswer("an upload answer without the file".into()).into()
        })
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
        let mut ids_refreshed = false;
        loop {
            let item = self.resolve(path).await?;
            if item.kind != EntryKind::File {
                return Err(TransferError::conflict(
                    ConflictKind::NotAFile,
                    format!("`{}` is not a file", path.client_path()),
                ));
            }
            match self.download_file(&item.id).await {
                // The cached id is stale (deleted, or replaced by another
                // file of that name behind our back): resolve afresh, once.
                Err(TransferError::NotFound(_)) if !ids_refreshed => {
                    self.cache.forget(&cache_key(path));
                    ids_refreshed = true;
                }
                Err(TransferError::NotFound(_)) => {
                    self.cache.forget(&cache_key(path));
                    return Err(TransferError::NotFound(path.client_path()));
                }
                other => return other,
            }
        }
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

/// The next part of `incoming` (at most `part_size` bytes), spooled, with
/// its SHA-1 for the part's `Digest`.
async fn next_part(
    spool_dir: &Path,
    incoming: &mut Incoming,
    part_size: u64,
    digests: &mut BoxDigests,
) -> Result<(Spool, Sha1Digest), TransferError> {
    let spool = Spool::fill(spool_dir, incoming, part_size, digests).await?;
    Ok((spool, digests.finish_part()))
}
