//! Box uploads, in one of two ways: a simple multipart request for small
//! files, or an upload session (parts sent while the next one arrives,
//! then a commit) for large ones. A session has its own state and its own
//! clean-up, which is why uploads live apart.
//!
//! Invariants: an upload to an existing path makes a new version; a
//! chunked upload session is either committed or aborted, never left
//! behind, even when the client hangs up mid-upload; an answer lost before
//! a retry is recognised by the SHA-1 of what Box stored.

use super::{
    box_code, conflict_item, entry, processing_wait, BoxFiles, Item, MAX_PROCESSING_WAITS,
};
use crate::providers::call::Caller;
use crate::providers::{read_body, status_error, ProviderCallError};
use crate::transfer::hash::{hex, BoxDigests, Sha1Digest};
use crate::transfer::spool::{Incoming, Spool};
use crate::transfer::{ConflictKind, TransferError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE};
use serde_json::{json, Value};
use shared::api::{Entry, EntryKind};
use std::path::Path;

impl BoxFiles {
    /// Uploads at most `upload_cutoff` bytes in one multipart request.
    /// `NotFound` means a cached id is stale and nothing was stored.
    pub(super) async fn simple_upload(
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
            // A new version keeps the file's name: the path may spell it in
            // another case, and Box would rename the file to that.
            let attributes = match &target {
                Some(_) => json!({}),
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
    pub(super) async fn chunked_upload(
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
        let (status, bytes) = self.post_json(&url, &body).await?;
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
        let open = OpenSession {
            caller: self.caller.clone(),
            url: Some(format!("{}/files/upload_sessions/{sid}", self.upload)),
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
                open.committed();
                Ok((entry, existing.is_some()))
            }
            Err(e) => {
                open.abort().await;
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
        // As in a simple upload, a new version keeps the file's name.
        let attributes = if new_version {
            json!({})
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
/// before [`OpenSession::committed`] or [`OpenSession::abort`], it aborts
/// the session in the background: an upload whose client hung up is
/// cancelled at an `.await`, never reaching the code that commits or
/// aborts, and Box would keep the parts.
struct OpenSession {
    caller: Caller,
    /// The session's URL; `None` once it is committed or aborted.
    url: Option<String>,
}

impl OpenSession {
    /// The session was committed: nothing to abort.
    fn committed(mut self) {
        self.url = None;
    }

    /// Aborts the session now, and waits for Box's answer.
    async fn abort(mut self) {
        if let Some(url) = self.url.take() {
            abort_session(&self.caller, &url).await;
        }
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        let Some(url) = self.url.take() else {
            return;
        };
        let caller = self.caller.clone();
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

/// The file of an upload answer `{"total_count":1,"entries":[file]}`.
fn uploaded_entry(body: &[u8]) -> Result<Entry, TransferError> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/entries/0").and_then(entry))
        .ok_or_else(|| {
            ProviderCallError::BadAnswer("an upload answer without the file".into()).into()
        })
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
