//! Dropbox: who-am-I, revoke, and files by path over the RPC and content
//! hosts.
//!
//! Invariants: `Dropbox-API-Arg` is always pure ASCII (every code point
//! from U+007F up escaped, with surrogate pairs); every upload's
//! `content_hash` is computed as it streams and checked against Dropbox's
//! answer; an upload session is finished only once every byte is appended;
//! a folder is deleted without `recursive` only after its listing, followed
//! to the end or to a first entry, showed it empty (`delete_v2` is always
//! recursive, so a failed check deletes nothing); a download holds one of
//! the connection's in-flight slots until its body ends or is dropped.

use super::call::Caller;
use super::{
    account, expect_success, read_body, status_error, Download, FileApi, ProviderCallError,
};
use crate::http::HttpClient;
use crate::transfer::hash::DropboxHasher;
use crate::transfer::path::RemotePath;
use crate::transfer::spool::{Incoming, Spool};
use crate::transfer::{ConflictKind, TransferError};
use chrono::{DateTime, Utc};
use reqwest::header::CONTENT_TYPE;
use serde_json::{json, Value};
use shared::api::{Entry, EntryKind, HashKind, WhoAmI};
use shared::Secret;
use std::ops::ControlFlow;
use std::path::Path;

/// Entries per listing page.
const PAGE_LIMIT: u32 = 1000;
/// The most one upload request may carry.
pub const MAX_CHUNK: u64 = 150 * 1024 * 1024;
/// rclone's chunk size, and ours by default.
pub const DEFAULT_CHUNK: u64 = 48 * 1024 * 1024;
/// How many `incorrect_offset` resyncs one chunk may need before we give up.
const MAX_RESYNCS: u32 = 3;

pub async fn whoami(
    http: &HttpClient,
    api: &str,
    token: &Secret,
) -> Result<WhoAmI, ProviderCallError> {
    let request = http
        .inner()
        .post(format!("{api}/users/get_current_account"))
        .header(CONTENT_TYPE, "application/json")
        // Dropbox wants the literal JSON `null` for "no argument".
        .body("null");
    account(request, token, "/name/display_name", "/email").await
}

/// Revokes the access token, which ends the whole grant at Dropbox.
pub async fn revoke(http: &HttpClient, url: &str, token: &Secret) -> Result<(), ProviderCallError> {
    expect_success(
        http.inner()
            .post(url)
            .bearer_auth(token.expose())
            .send()
            .await,
    )
    .await
}

/// `value` as JSON for the `Dropbox-API-Arg` header: every code point from
/// U+007F up written as `\uXXXX`, above U+FFFF as a UTF-16 surrogate pair.
pub fn dropbox_arg(value: &Value) -> String {
    let json = value.to_string();
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if (c as u32) < 0x7f {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// Dropbox file operations for one connection.
pub struct DropboxFiles {
    pub caller: Caller,
    pub api: String,
    pub content: String,
    /// Files above this go through upload sessions, in chunks this big.
    pub chunk_size: u64,
}

/// Dropbox's path for the API: `""` for the account's root.
fn api_path(path: &RemotePath) -> String {
    if path.segments().is_empty() {
        String::new()
    } else {
        path.account_path()
    }
}

fn entry(meta: &Value) -> Option<Entry> {
    let kind = match meta.get(".tag")?.as_str()? {
        "file" => EntryKind::File,
        "folder" => EntryKind::Folder,
        _ => return None,
    };
    Some(Entry {
        name: meta.get("name")?.as_str()?.to_string(),
        kind,
        size: meta.get("size").and_then(Value::as_u64),
        modified: meta
            .get("server_modified")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        id: meta.get("id")?.as_str()?.to_string(),
        hash: meta
            .get("content_hash")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// The `error_summary` of a Dropbox error body.
fn summary(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error_summary")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default()
}

fn bad(what: &str) -> TransferError {
    ProviderCallError::BadAnswer(what.to_string()).into()
}

impl DropboxFiles {
    /// An RPC call; `(status, body)`.
    async fn rpc(&self, endpoint: &str, arg: &Value) -> Result<(u16, Vec<u8>), TransferError> {
        let url = format!("{}/{endpoint}", self.api);
        let response = self
            .caller
            .send(|http, token| Ok(http.post(&url).bearer_auth(token.expose()).json(arg)))
            .await?;
        let status = response.status().as_u16();
        Ok((status, read_body(response).await?))
    }

    /// A content-host upload call carrying `spool` from `offset`.
    async fn content_upload(
        &self,
        endpoint: &str,
        arg: &Value,
        spool: Option<&Spool>,
        offset: u64,
    ) -> Result<(u16, Vec<u8>), TransferError> {
        let url = format!("{}/{endpoint}", self.content);
        let header = dropbox_arg(arg);
        let response = self
            .caller
            .send(|http, token| {
                let request = http
                    .post(&url)
                    .bearer_auth(token.expose())
                    .header("Dropbox-API-Arg", header.clone())
                    .header(CONTENT_TYPE, "application/octet-stream");
                match spool {
                    Some(s) => s.send_from(request, offset).map_err(|e| {
                        ProviderCallError::Transport(format!("cannot read the spooled chunk: {e}"))
                    }),
                    None => Ok(request.body(Vec::new())),
                }
            })
            .await?;
        let status = response.status().as_u16();
        Ok((status, read_body(response).await?))
    }

    /// The metadata at `path`, or `None`.
    async fn metadata(&self, path: &RemotePath) -> Result<Option<Entry>, TransferError> {
        if path.segments().is_empty() {
            return Ok(Some(Entry {
                name: String::new(),
                kind: EntryKind::Folder,
                size: None,
                modified: None,
                id: String::new(),
                hash: None,
            }));
        }
        let (status, body) = self
            .rpc("files/get_metadata", &json!({"path": api_path(path)}))
            .await?;
        match status {
            200 => Ok(entry(
                &serde_json::from_slice(&body).map_err(|_| bad("metadata that is not JSON"))?,
            )),
            409 if summary(&body).starts_with("path/not_found") => Ok(None),
            _ => Err(status_error(status, &body).into()),
        }
    }

    /// Walks the listing of folder `path` page by page (`limit` entries at
    /// most each), through `list_folder/continue` while `has_more`, handing
    /// each page's raw entries to `visit` until it breaks. A page may be
    /// empty and still have more after it.
    async fn walk(
        &self,
        path: &RemotePath,
        limit: u32,
        mut visit: impl FnMut(&[Value]) -> ControlFlow<()>,
    ) -> Result<(), TransferError> {
        let (mut status, mut body) = self
            .rpc(
                "files/list_folder",
                &json!({"path": api_path(path), "recursive": false, "limit": limit}),
            )
            .await?;
        loop {
            if status == 409 {
                let s = summary(&body);
                if s.contains("not_found") {
                    return Err(TransferError::NotFound(path.client_path()));
                }
                if s.contains("not_folder") {
                    return Err(TransferError::conflict(
                        ConflictKind::NotAFolder,
                        format!("`{}` is a file, not a folder", path.client_path()),
                    ));
                }
            }
            if status != 200 {
                return Err(status_error(status, &body).into());
            }
            let page: Value =
                serde_json::from_slice(&body).map_err(|_| bad("a listing that is not JSON"))?;
            let entries = page
                .get("entries")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("a listing without entries"))?;
            if visit(entries).is_break()
                || page.get("has_more").and_then(Value::as_bool) != Some(true)
            {
                return Ok(());
            }
            let cursor = page
                .get("cursor")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("has_more without a cursor"))?;
            (status, body) = self
                .rpc("files/list_folder/continue", &json!({"cursor": cursor}))
                .await?;
        }
    }

    /// One chunk appended at `offset`, resyncing on `incorrect_offset`;
    /// returns the offset after it.
    async fn append(
        &self,
        session: &str,
        offset: u64,
        spool: &Spool,
    ) -> Result<u64, TransferError> {
        let mut sent_from = 0u64;
        for _ in 0..=MAX_RESYNCS {
            let arg = json!({"cursor": {"session_id": session, "offset": offset + sent_from}, "close": false});
            let (status, body) = self
                .content_upload(
                    "files/upload_session/append_v2",
                    &arg,
                    Some(spool),
                    sent_from,
                )
                .await?;
            if status == 200 {
                return Ok(offset + spool.len);
            }
            let correct = serde_json::from_slice::<Value>(&body)
                .ok()
                .filter(|v| {
                    v.pointer("/error/.tag").and_then(Value::as_str) == Some("incorrect_offset")
                })
                .and_then(|v| v.pointer("/error/correct_offset").and_then(Value::as_u64));
            match correct {
                // Dropbox has more (or all) of this chunk already: send the rest.
                Some(c) if c >= offset && c <= offset + spool.len => {
                    if c == offset + spool.len {
                        return Ok(c);
                    }
                    tracing::info!(expected = offset + sent_from, correct = c, "Dropbox upload offset resync");
                    sent_from = c - offset;
                }
                Some(c) => {
                    return Err(TransferError::Integrity(format!(
                        "Dropbox's upload session is at byte {c}, outside the chunk {offset}..{} being sent",
                        offset + spool.len
                    )))
                }
                None => return Err(status_error(status, &body).into()),
            }
        }
        Err(bad("Dropbox kept asking for another offset"))
    }
}

#[async_trait::async_trait]
impl FileApi for DropboxFiles {
    async fn list(&self, path: &RemotePath) -> Result<Vec<Entry>, TransferError> {
        let mut entries = Vec::new();
        self.walk(path, PAGE_LIMIT, |page| {
            entries.extend(page.iter().filter_map(entry));
            ControlFlow::Continue(())
        })
        .await?;
        Ok(entries)
    }

    async fn mkdir(&self, path: &RemotePath) -> Result<(String, bool), TransferError> {
        if path.segments().is_empty() {
            return Ok((String::new(), false));
        }
        // Dropbox creates missing parents itself.
        let (status, body) = self
            .rpc(
                "files/create_folder_v2",
                &json!({"path": api_path(path), "autorename": false}),
            )
            .await?;
        match status {
            200 => {
                let v: Value =
                    serde_json::from_slice(&body).map_err(|_| bad("a folder that is not JSON"))?;
                let id = v
                    .pointer("/metadata/id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                Ok((id.to_string(), true))
            }
            409 if summary(&body).starts_with("path/conflict/folder") => {
                let id = self.metadata(path).await?.map(|e| e.id).unwrap_or_default();
                Ok((id, false))
            }
            409 if summary(&body).starts_with("path/conflict") => Err(TransferError::conflict(
                ConflictKind::InTheWay,
                format!("a file is in the way of folder `{}`", path.client_path()),
            )),
            _ => Err(status_error(status, &body).into()),
        }
    }

    async fn delete(&self, path: &RemotePath, recursive: bool) -> Result<(), TransferError> {
        // Dropbox always deletes recursively; refuse a non-empty folder
        // without `recursive`, as Box does.
        let meta = self
            .metadata(path)
            .await?
            .ok_or_else(|| TransferError::NotFound(path.client_path()))?;
        if meta.kind == EntryKind::Folder && !recursive {
            // Any failure to tell is an error: deleting on a guess would
            // take the folder's contents with it.
            let mut empty = true;
            self.walk(path, 1, |page| {
                empty = page.is_empty();
                if empty {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                }
            })
            .await
            .map_err(|e| emptiness_unknown(e, path))?;
            if !empty {
                return Err(TransferError::conflict(
                    ConflictKind::FolderNotEmpty,
                    format!("`{}` is not empty", path.client_path()),
                ));
            }
        }
        let (status, body) = self
            .rpc("files/delete_v2", &json!({"path": api_path(path)}))
            .await?;
        match status {
            200 => Ok(()),
            409 if summary(&body).contains("not_found") => {
                Err(TransferError::NotFound(path.client_path()))
            }
            _ => Err(status_error(status, &body).into()),
        }
    }

    async fn download(&self, path: &RemotePath) -> Result<Download, TransferError> {
        let url = format!("{}/files/download", self.content);
        let header = dropbox_arg(&json!({"path": api_path(path)}));
        // The body streams to the client after this returns: it keeps its
        // in-flight slot until then.
        let response = self
            .caller
            .send_streaming(|http, token| {
                Ok(http
                    .post(&url)
                    .bearer_auth(token.expose())
                    .header("Dropbox-API-Arg", header.clone()))
            })
            .await?;
        let status = response.status().as_u16();
        if status != 200 {
            let body = read_body(response).await.unwrap_or_default();
            if status == 409 && summary(&body).contains("not_found") {
                return Err(TransferError::NotFound(path.client_path()));
            }
            if status == 409 && summary(&body).contains("not_file") {
                return Err(TransferError::conflict(
                    ConflictKind::NotAFile,
                    format!("`{}` is not a file", path.client_path()),
                ));
            }
            return Err(status_error(status, &body).into());
        }
        let meta = response
            .headers()
            .get("Dropbox-API-Result")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| serde_json::from_str::<Value>(v).ok());
        Ok(Download {
            size: meta
                .as_ref()
                .and_then(|m| m.get("size").and_then(Value::as_u64))
                .or(response.content_length()),
            hash: meta.and_then(|m| {
                let hash = m.get("content_hash")?.as_str()?;
                Some((HashKind::DropboxContentHash, hash.to_string()))
            }),
            response,
        })
    }

    async fn upload(
        &self,
        path: &RemotePath,
        incoming: &mut Incoming,
        spool_dir: &Path,
    ) -> Result<(Entry, bool), TransferError> {
        if path.segments().is_empty() {
            return Err(TransferError::Refused(
                "cannot upload over the account's root folder".into(),
            ));
        }
        let replaced = match self.metadata(path).await? {
            Some(e) if e.kind == EntryKind::Folder => {
                return Err(TransferError::conflict(
                    ConflictKind::IsAFolder,
                    format!("`{}` is a folder", path.client_path()),
                ))
            }
            Some(_) => true,
            None => false,
        };
        let commit = json!({"path": api_path(path), "mode": "overwrite", "autorename": false, "mute": false});
        let mut hasher = DropboxHasher::new();
        let total = incoming.total;
        let (status, body) = if total <= self.chunk_size {
            let spool = Spool::fill(spool_dir, incoming, total, &mut hasher).await?;
            self.content_upload("files/upload", &commit, Some(&spool), 0)
                .await?
        } else {
            let first = Spool::fill(spool_dir, incoming, self.chunk_size, &mut hasher).await?;
            let (status, body) = self
                .content_upload(
                    "files/upload_session/start",
                    &json!({"close": false}),
                    Some(&first),
                    0,
                )
                .await?;
            if status != 200 {
                return Err(status_error(status, &body).into());
            }
            let session = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| {
                    v.get("session_id")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .ok_or_else(|| bad("an upload session without an id"))?;
            let mut offset = first.len;
            drop(first);
            let mut current = if offset < total {
                Some(Spool::fill(spool_dir, incoming, self.chunk_size, &mut hasher).await?)
            } else {
                None
            };
            // Each chunk goes to Dropbox while the next one arrives from the client.
            while let Some(chunk) = current.take() {
                let more = offset + chunk.len < total;
                let next = async {
                    if more {
                        Spool::fill(spool_dir, incoming, self.chunk_size, &mut hasher)
                            .await
                            .map(Some)
                    } else {
                        Ok(None)
                    }
                };
                let (appended, next) = tokio::join!(self.append(&session, offset, &chunk), next);
                offset = appended?;
                current = next?;
            }
            let arg = json!({"cursor": {"session_id": session, "offset": total}, "commit": commit});
            self.content_upload("files/upload_session/finish", &arg, None, 0)
                .await?
        };
        let ours = hasher.finish();
        if status == 409 && session_gone(&summary(&body)) {
            // The session is gone: an earlier try of this finish committed
            // the file and its answer was lost (the call was retried). The
            // file is ours if it holds exactly the bytes we sent.
            if let Some(entry) = self.metadata(path).await? {
                if entry.kind == EntryKind::File && entry.hash.as_deref() == Some(ours.as_str()) {
                    tracing::info!("Dropbox finished the upload session on an earlier try");
                    return Ok((entry, replaced));
                }
            }
        }
        if status != 200 {
            if status == 409 && summary(&body).contains("conflict") {
                return Err(TransferError::conflict(
                    ConflictKind::Other,
                    format!("`{}` conflicts with an existing item", path.client_path()),
                ));
            }
            return Err(status_error(status, &body).into());
        }
        let meta: Value =
            serde_json::from_slice(&body).map_err(|_| bad("upload metadata that is not JSON"))?;
        let entry = entry(&meta).ok_or_else(|| bad("upload metadata without a name or id"))?;
        if entry.hash.as_deref() != Some(ours.as_str()) {
            return Err(TransferError::Integrity(format!(
                "Dropbox's content_hash {} differs from the uploaded bytes' {ours}",
                entry.hash.as_deref().unwrap_or("(none)")
            )));
        }
        Ok((entry, replaced))
    }
}

/// `e`, from checking that folder `path` is empty before a delete without
/// `recursive`, saying that nothing was deleted.
fn emptiness_unknown(e: TransferError, path: &RemotePath) -> TransferError {
    let context = format!(
        " while checking that `{}` is empty, so nothing was deleted; try again once Dropbox recovers",
        path.client_path()
    );
    match e {
        TransferError::Provider(ProviderCallError::Status { status, detail }) => {
            ProviderCallError::Status {
                status,
                detail: detail + &context,
            }
            .into()
        }
        TransferError::Provider(ProviderCallError::Transport(what)) => {
            ProviderCallError::Transport(what + &context).into()
        }
        TransferError::Provider(ProviderCallError::BadAnswer(what)) => {
            ProviderCallError::BadAnswer(what + &context).into()
        }
        other => other,
    }
}

/// Whether a finish's error summary says its upload session no longer
/// exists (finished already, or expired), rather than that the commit failed.
fn session_gone(summary: &str) -> bool {
    summary.starts_with("lookup_failed/not_found")
}

#[cfg(test)]
mod tests {
    use super::super::call::testing::{caller, channel_body, serve};
    use super::*;
    use bytes::Bytes;
    use std::sync::{Arc, Mutex};

    /// The download's body streams to the client after `download` returns:
    /// all that time it is a request in flight for the connection.
    #[tokio::test]
    async fn a_download_keeps_its_in_flight_slot_until_its_body_ends() {
        let (tx, body) = channel_body();
        let body = Arc::new(Mutex::new(Some(body)));
        let router = axum::Router::new().route(
            "/files/download",
            axum::routing::post(move || {
                let body = body.lock().unwrap_or_else(|p| p.into_inner()).take();
                async move {
                    let meta = r#"{"size":9,"content_hash":"h"}"#;
                    ([("Dropbox-API-Result", meta)], body.unwrap_or_default())
                }
            }),
        );
        let base = serve(router).await;
        let (caller, _) = caller(1);
        let files = DropboxFiles {
            caller: caller.clone(),
            api: base.clone(),
            content: base,
            chunk_size: DEFAULT_CHUNK,
        };
        tx.send(Bytes::from_static(b"first")).await.expect("send");
        let path = RemotePath::new(None, "/f.bin").expect("a path");
        let download = files.download(&path).await.expect("download");
        assert_eq!(download.size, Some(9));
        assert_eq!(
            download.hash,
            Some((HashKind::DropboxContentHash, "h".to_string()))
        );
        let mut response = download.response;
        let first = response.chunk().await.expect("a chunk");
        assert_eq!(first.as_deref(), Some(&b"first"[..]));
        assert_eq!(caller.in_flight.available_permits(), 0, "slot held");
        tx.send(Bytes::from_static(b"last")).await.expect("send");
        drop(tx);
        let last = response.chunk().await.expect("a chunk");
        assert_eq!(last.as_deref(), Some(&b"last"[..]));
        assert_eq!(response.chunk().await.expect("the end"), None);
        assert_eq!(caller.in_flight.available_permits(), 1, "slot given back");
    }

    #[test]
    fn arg_is_ascii_and_round_trips() {
        let value = json!({"path": "/Ünïcødé/日本/😀 \u{7f} tab\t\"q\"\\", "mode": "add"});
        let header = dropbox_arg(&value);
        assert!(header.is_ascii(), "{header}");
        assert!(
            header.contains("\\ud83d\\ude00"),
            "surrogate pair for 😀: {header}"
        );
        assert!(header.contains("\\u007f"), "DEL escaped: {header}");
        let back: Value = serde_json::from_str(&header).unwrap();
        assert_eq!(back, value);
    }
}
