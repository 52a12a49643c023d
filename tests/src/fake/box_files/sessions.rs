//! Box's chunked upload sessions, for files of at least
//! [`MIN_CHUNKED_SIZE`] bytes: create one (`POST
//! /api/2.0/files/upload_sessions` for a new file,
//! `/api/2.0/files/{id}/upload_sessions` for a new version), upload its
//! parts (`PUT` with `Content-Range` and a `Digest: sha=<base64 SHA-1>`
//! header), read its status and its parts, abort it, and commit it (with
//! the whole file's `Digest`).
//!
//! Invariants: a session's parts are keyed by offset; each starts at a
//! multiple of the session's part size and is exactly that long, but for a
//! shorter last part that ends the file; a part is kept only when its SHA-1
//! is the one in its `Digest`. A commit answers 202 + `Retry-After` the
//! session's first `commit_202s` times, writes the file only when the parts
//! cover it without a gap and are the ones the commit lists, and leaves the
//! session open when the write fails.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State as AxumState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::content::{after_upload, rename_checked, storage_dir};
use super::errors::{
    check_auth, check_name, io_error, json_body, json_response, str_field, time_field, too_big,
    upload_conflict, BoxError, BoxResult,
};
use super::items::{file, folder};
use super::{MAX_FILE_SIZE, MIN_CHUNKED_SIZE};
use crate::fake::storage::{body_to_blob, box_time, concat_blobs, reject, Blob, BodyError, NodeId};
use crate::fake::{lock, Shared, State};

/// A chunked upload session.
pub(crate) struct Session {
    target: Target,
    file_size: u64,
    part_size: u64,
    total_parts: u64,
    /// Uploaded parts, by offset.
    parts: BTreeMap<u64, Part>,
    commit_202s_left: u32,
    expires_at: DateTime<Utc>,
}

enum Target {
    New { folder: NodeId, name: String },
    Version { file: NodeId },
}

struct Part {
    id: String,
    blob: Arc<Blob>,
}

/// The SHA-1 of a `Digest: sha=<base64>` header (RFC 3230).
fn digest_header(headers: &HeaderMap) -> Option<[u8; 20]> {
    let value = headers.get("digest")?.to_str().ok()?;
    for item in value.split(',') {
        let Some((alg, b64)) = item.trim().split_once('=') else {
            continue;
        };
        if alg.trim().eq_ignore_ascii_case("sha") {
            let raw = STANDARD.decode(b64.trim()).ok()?;
            return raw.try_into().ok();
        }
    }
    None
}

fn session_json(base: &str, sid: &str, s: &Session) -> Value {
    let url = format!("{base}/api/2.0/files/upload_sessions/{sid}");
    json!({
        "id": sid,
        "type": "upload_session",
        "session_expires_at": box_time(&s.expires_at),
        "part_size": s.part_size,
        "total_parts": s.total_parts,
        "num_parts_processed": s.parts.len(),
        "session_endpoints": {
            "upload_part": url,
            "commit": format!("{url}/commit"),
            "abort": url,
            "list_parts": format!("{url}/parts"),
            "status": url,
            "log_event": format!("{url}/log"),
        },
    })
}

fn file_size_field(map: &Map<String, Value>) -> Result<u64, BoxError> {
    let size = map
        .get("file_size")
        .and_then(Value::as_u64)
        .ok_or_else(|| BoxError::bad_request("'file_size' must be a non-negative integer"))?;
    if size < MIN_CHUNKED_SIZE {
        return Err(BoxError::new(
            StatusCode::BAD_REQUEST,
            "file_size_too_small",
            format!("File size {size} less than minimum allowed for this API: {MIN_CHUNKED_SIZE}"),
        ));
    }
    if size > MAX_FILE_SIZE {
        return Err(too_big());
    }
    Ok(size)
}

fn open_session(st: &mut State, target: Target, file_size: u64) -> Response {
    let part_size = st.files.boxed.part_size.max(1);
    let session = Session {
        target,
        file_size,
        part_size,
        total_parts: file_size.div_ceil(part_size),
        parts: BTreeMap::new(),
        commit_202s_left: st.files.boxed.commit_202s,
        expires_at: Utc::now() + chrono::Duration::days(7),
    };
    let sid = st.files.random_hex(16).to_ascii_uppercase();
    let body = session_json(&st.files.base_url, &sid, &session);
    st.files.boxed.sessions.insert(sid, session);
    json_response(StatusCode::CREATED, body)
}

/// `POST /api/2.0/files/upload_sessions` `{"folder_id","file_size",
/// "file_name"}` → 201 session.
pub(super) async fn create_session(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = lock(&shared);
    if let Err(r) = check_auth(&st, &headers) {
        return r;
    }
    let result = (|| {
        let map = json_body(&body)?;
        let folder_id = str_field(&map, "folder_id")?
            .ok_or_else(|| BoxError::bad_request("'folder_id' is required"))?;
        let name = str_field(&map, "file_name")?
            .ok_or_else(|| BoxError::bad_request("'file_name' is required"))?;
        let size = file_size_field(&map)?;
        let tree = &st.files.tree;
        let parent = folder(tree, folder_id)?;
        check_name(name)?;
        if let Some(existing) = tree.child(parent, name) {
            return Err(upload_conflict(tree, existing));
        }
        Ok((
            Target::New {
                folder: parent,
                name: name.to_owned(),
            },
            size,
        ))
    })();
    match result {
        Ok((target, size)) => open_session(&mut st, target, size),
        Err(e) => e.into_response(),
    }
}

/// `POST /api/2.0/files/{id}/upload_sessions` `{"file_size"}` → 201
/// session for a new version.
pub(super) async fn create_version_session(
    AxumState(shared): AxumState<Shared>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = lock(&shared);
    if let Err(r) = check_auth(&st, &headers) {
        return r;
    }
    let result = (|| {
        let map = json_body(&body)?;
        let size = file_size_field(&map)?;
        let n = file(&st.files.tree, &id)?;
        Ok::<_, BoxError>((Target::Version { file: n }, size))
    })();
    match result {
        Ok((target, size)) => open_session(&mut st, target, size),
        Err(e) => e.into_response(),
    }
}

fn session_not_found(sid: &str) -> BoxError {
    BoxError::not_found("upload_session", sid)
}

/// `bytes a-b/total`.
fn content_range(headers: &HeaderMap) -> Option<(u64, u64, u64)> {
    let value = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

fn range_error(message: impl Into<String>) -> BoxError {
    BoxError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "requested_range_not_satisfiable",
        message,
    )
}

fn part_json(offset: u64, part: &Part) -> Value {
    json!({
        "part_id": part.id,
        "offset": offset,
        "size": part.blob.size,
        "sha1": part.blob.sha1_hex(),
    })
}

/// Checks a part's headers against its session: `(offset, size, sha1)`.
fn check_part_request(
    st: &State,
    sid: &str,
    headers: &HeaderMap,
) -> Result<(u64, u64, [u8; 20]), Response> {
    check_auth(st, headers)?;
    let s = st
        .files
        .boxed
        .sessions
        .get(sid)
        .ok_or_else(|| session_not_found(sid).into_response())?;
    let bad = |m: String| range_error(m).into_response();
    let (a, b, total) =
        content_range(headers).ok_or_else(|| bad("Missing or malformed Content-Range".into()))?;
    if total != s.file_size {
        return Err(bad(format!(
            "Content-Range total {total} is not the session's file size {}",
            s.file_size
        )));
    }
    if b < a || b >= total || a % s.part_size != 0 {
        return Err(bad(format!("Content-Range bytes {a}-{b} is not a part")));
    }
    let size = b - a + 1;
    if size != s.part_size && !(b == total - 1 && size < s.part_size) {
        return Err(bad(format!(
            "Part size {size} is not the session's part size {} (only the last part may be shorter)",
            s.part_size
        )));
    }
    let digest = digest_header(headers).ok_or_else(|| {
        BoxError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "Missing or malformed Digest header (expected sha=<base64 SHA-1>)",
        )
        .into_response()
    })?;
    Ok((a, size, digest))
}

/// `PUT /api/2.0/files/upload_sessions/{sid}`: one part.
pub(super) async fn upload_part(
    AxumState(shared): AxumState<Shared>,
    UrlPath(sid): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let checked = check_part_request(&lock(&shared), &sid, &headers);
    let (offset, size, digest) = match checked {
        Ok(c) => c,
        Err(r) => return reject(body, r).await,
    };
    let dir = storage_dir(&shared);
    let blob = match body_to_blob(&dir, body, size).await {
        Ok(blob) => blob,
        Err(BodyError::Broken) => return StatusCode::BAD_REQUEST.into_response(),
        Err(BodyError::TooLarge) => {
            return range_error("The body is longer than its Content-Range").into_response()
        }
        Err(BodyError::Io(e)) => return io_error(e).into_response(),
    };
    if blob.size != size {
        return range_error("The body is shorter than its Content-Range").into_response();
    }
    if blob.sha1 != digest {
        return BoxError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "The SHA-1 in the Digest header does not match the part",
        )
        .into_response();
    }
    let mut st = lock(&shared);
    let part_id = {
        let files = &mut st.files.boxed;
        let id = format!("{:08X}", 0x1A2B_0000u64 + files.next_part);
        files.next_part += 1;
        id
    };
    let Some(session) = st.files.boxed.sessions.get_mut(&sid) else {
        return session_not_found(&sid).into_response();
    };
    if let Some(existing) = session.parts.get(&offset) {
        // The same part again (a retry): fine. Different bytes: overlap.
        if existing.blob.size == blob.size && existing.blob.sha1 == blob.sha1 {
            return json_response(
                StatusCode::OK,
                json!({ "part": part_json(offset, existing) }),
            );
        }
        return BoxError::new(
            StatusCode::CONFLICT,
            "range_overlap",
            "The part overlaps a part already uploaded to this session",
        )
        .into_response();
    }
    let part = Part {
        id: part_id,
        blob: Arc::new(blob),
    };
    let body = json!({ "part": part_json(offset, &part) });
    session.parts.insert(offset, part);
    json_response(StatusCode::OK, body)
}

/// `GET /api/2.0/files/upload_sessions/{sid}`.
pub(super) async fn session_status(
    AxumState(shared): AxumState<Shared>,
    UrlPath(sid): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let st = lock(&shared);
    if let Err(r) = check_auth(&st, &headers) {
        return r;
    }
    match st.files.boxed.sessions.get(&sid) {
        Some(s) => json_response(StatusCode::OK, session_json(&st.files.base_url, &sid, s)),
        None => session_not_found(&sid).into_response(),
    }
}

/// `GET /api/2.0/files/upload_sessions/{sid}/parts`.
pub(super) async fn list_parts(
    AxumState(shared): AxumState<Shared>,
    UrlPath(sid): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let st = lock(&shared);
    if let Err(r) = check_auth(&st, &headers) {
        return r;
    }
    match st.files.boxed.sessions.get(&sid) {
        Some(s) => {
            let entries: Vec<Value> = s.parts.iter().map(|(o, p)| part_json(*o, p)).collect();
            json_response(
                StatusCode::OK,
                json!({
                    "entries": entries,
                    "total_count": entries.len(),
                    "offset": 0,
                    "limit": 1000,
                }),
            )
        }
        None => session_not_found(&sid).into_response(),
    }
}

/// `DELETE /api/2.0/files/upload_sessions/{sid}` → 204.
pub(super) async fn abort(
    AxumState(shared): AxumState<Shared>,
    UrlPath(sid): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let mut st = lock(&shared);
    if let Err(r) = check_auth(&st, &headers) {
        return r;
    }
    match st.files.boxed.sessions.remove(&sid) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => session_not_found(&sid).into_response(),
    }
}

fn parts_mismatch(message: impl Into<String>) -> BoxError {
    BoxError::new(StatusCode::BAD_REQUEST, "parts_mismatch", message)
}

/// Checks a commit's `parts` against the session: the same parts, covering
/// the whole file.
fn check_commit_parts(s: &Session, listed: &[Value]) -> Result<(), BoxError> {
    let mut covered = 0;
    for (offset, part) in &s.parts {
        if *offset != covered {
            return Err(parts_mismatch(format!(
                "No part was uploaded at offset {covered}"
            )));
        }
        covered += part.blob.size;
    }
    if covered != s.file_size {
        return Err(parts_mismatch(format!(
            "The uploaded parts cover {covered} of {} bytes",
            s.file_size
        )));
    }
    if listed.len() != s.parts.len() {
        return Err(parts_mismatch(format!(
            "The commit lists {} parts; {} were uploaded",
            listed.len(),
            s.parts.len()
        )));
    }
    let mut listed: Vec<&Value> = listed.iter().collect();
    listed.sort_by_key(|p| p.get("offset").and_then(Value::as_u64).unwrap_or(u64::MAX));
    for ((offset, part), given) in s.parts.iter().zip(listed) {
        let same = given.get("part_id").and_then(Value::as_str) == Some(part.id.as_str())
            && given.get("offset").and_then(Value::as_u64) == Some(*offset)
            && given.get("size").and_then(Value::as_u64) == Some(part.blob.size)
            && given
                .get("sha1")
                .and_then(Value::as_str)
                .is_none_or(|h| h.eq_ignore_ascii_case(&part.blob.sha1_hex()));
        if !same {
            return Err(parts_mismatch(format!(
                "The part at offset {offset} does not match the uploaded part {}",
                part.id
            )));
        }
    }
    Ok(())
}

/// `POST /api/2.0/files/upload_sessions/{sid}/commit`.
pub(super) async fn commit(
    AxumState(shared): AxumState<Shared>,
    UrlPath(sid): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let prepared = {
        let mut st = lock(&shared);
        prepare_commit(&mut st, &sid, &headers, &body)
    };
    let (parts, digest, modified, name) = match prepared {
        Ok(Some(p)) => p,
        Ok(None) => {
            return (StatusCode::ACCEPTED, [(header::RETRY_AFTER, "1")]).into_response();
        }
        Err(e) => return e.into_response(),
    };
    let dir = storage_dir(&shared);
    let blob = match tokio::task::spawn_blocking(move || concat_blobs(&dir, &parts)).await {
        Ok(Ok(blob)) => blob,
        Ok(Err(e)) => return io_error(e).into_response(),
        Err(e) => return io_error(std::io::Error::other(e.to_string())).into_response(),
    };
    if blob.sha1 != digest {
        return BoxError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "The SHA-1 in the Digest header does not match the file",
        )
        .into_response();
    }
    let mut st = lock(&shared);
    finish_commit(&mut st, &sid, blob, modified, name.as_deref())
        .unwrap_or_else(IntoResponse::into_response)
}

/// A commit's parts, whole-file SHA-1, `content_modified_at`, and the new
/// name a version's attributes give (Box renames the file to it).
type Prepared = (
    Vec<Arc<Blob>>,
    [u8; 20],
    Option<DateTime<Utc>>,
    Option<String>,
);

/// Checks a commit; `None` when it must be answered 202 (processing).
fn prepare_commit(
    st: &mut State,
    sid: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<Prepared>, Response> {
    check_auth(st, headers)?;
    let session = st
        .files
        .boxed
        .sessions
        .get_mut(sid)
        .ok_or_else(|| session_not_found(sid).into_response())?;
    let digest = digest_header(headers).ok_or_else(|| {
        BoxError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "Missing or malformed Digest header (expected sha=<base64 SHA-1>)",
        )
        .into_response()
    })?;
    let map = json_body(body).map_err(IntoResponse::into_response)?;
    let Some(Value::Array(listed)) = map.get("parts") else {
        return Err(BoxError::bad_request("'parts' must be an array").into_response());
    };
    let (modified, name) = match map.get("attributes") {
        None | Some(Value::Null) => (None, None),
        Some(Value::Object(attributes)) => (
            time_field(attributes, "content_modified_at").map_err(IntoResponse::into_response)?,
            str_field(attributes, "name")
                .map_err(IntoResponse::into_response)?
                .map(str::to_string),
        ),
        Some(_) => {
            return Err(BoxError::bad_request("'attributes' must be an object").into_response())
        }
    };
    check_commit_parts(session, listed).map_err(IntoResponse::into_response)?;
    if session.commit_202s_left > 0 {
        session.commit_202s_left -= 1;
        return Ok(None);
    }
    let parts = session.parts.values().map(|p| p.blob.clone()).collect();
    Ok(Some((parts, digest, modified, name)))
}

fn finish_commit(
    st: &mut State,
    sid: &str,
    blob: Blob,
    modified: Option<DateTime<Utc>>,
    new_name: Option<&str>,
) -> BoxResult {
    let session = st
        .files
        .boxed
        .sessions
        .remove(sid)
        .ok_or_else(|| session_not_found(sid))?;
    let tree = &mut st.files.tree;
    let outcome = match &session.target {
        Target::New { folder, name } => {
            if tree.node(*folder).is_none_or(|n| !n.is_folder()) {
                Err(BoxError::not_found("folder", "(session target)"))
            } else if let Some(existing) = tree.child(*folder, name) {
                Err(upload_conflict(tree, existing))
            } else {
                Ok(tree.add_file(*folder, name, Arc::new(blob), modified))
            }
        }
        Target::Version { file } => {
            if tree.node(*file).and_then(|n| n.file()).is_none() {
                Err(BoxError::not_found("file", "(session target)"))
            } else {
                new_name
                    .map_or(Ok(()), |name| rename_checked(tree, *file, name))
                    .map(|()| {
                        tree.replace(*file, Arc::new(blob), modified);
                        *file
                    })
            }
        }
    };
    match outcome {
        Ok(n) => Ok(after_upload(st, n)),
        Err(e) => {
            // The session stays open: the client may abort it.
            st.files.boxed.sessions.insert(sid.to_owned(), session);
            Err(e)
        }
    }
}
