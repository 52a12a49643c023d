//! Box's file content: downloads and simple uploads.
//!
//! A download (`GET /2.0/files/{id}/content`) answers 302 to a one-time URL
//! on the "download host" (`/dl/{token}`), which serves the bytes without
//! authorization. A simple upload (`POST /api/2.0/files/content` for a new
//! file, `/api/2.0/files/{id}/content` for a new version) is a multipart
//! body, an `attributes` JSON part then the file part (at most
//! [`MAX_SIMPLE_SIZE`] bytes), read straight to disk; `OPTIONS
//! /2.0/files/content` is the upload preflight check.
//!
//! Invariants: each download token works once; every upload that succeeds,
//! simple or chunked, ends in [`after_upload`], which counts it and, while
//! `box_download_202_once` is on, makes the file's next download (and only
//! that one) answer 202 + `Retry-After` instead of the 302.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State as AxumState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::errors::{
    check_auth, check_name, io_error, json_body, json_response, parent_id, str_field, time_field,
    too_big, upload_conflict, BoxError, BoxResult,
};
use super::items::{etag, file, folder, one_file};
use super::{MAX_ATTRIBUTES, MAX_FILE_SIZE, MAX_SIMPLE_SIZE};
use crate::fake::multipart::{self, Event, Multipart};
use crate::fake::storage::{
    file_response, reject, Blob, BlobDir, BlobWriter, Incoming, NodeId, Tree,
};
use crate::fake::{lock, Shared, State};

// --------------------------------------------------------------- downloads

/// `GET /2.0/files/{id}/content` → 302 to a one-time URL on the "download
/// host" (or 202 + `Retry-After` right after an upload, when
/// `box_download_202_once` is on).
pub(super) async fn download(
    AxumState(shared): AxumState<Shared>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let mut st = lock(&shared);
    if let Err(r) = check_auth(&st, &headers) {
        return r;
    }
    let n = match file(&st.files.tree, &id) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    if st.files.boxed.processing.remove(&n) {
        return (StatusCode::ACCEPTED, [(header::RETRY_AFTER, "1")]).into_response();
    }
    let Some(blob) = st
        .files
        .tree
        .node(n)
        .and_then(|node| node.file())
        .map(|data| data.blob.clone())
    else {
        return BoxError::not_found("file", &id).into_response();
    };
    let token = st.files.random_hex(20);
    st.files.boxed.dl_tokens.insert(token.clone(), blob);
    let location = format!("{}/dl/{token}", st.files.base_url);
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// `GET /dl/{token}`: the download host. No authorization; each token works
/// once. Honours `Range`.
pub(super) async fn dl(
    AxumState(shared): AxumState<Shared>,
    UrlPath(token): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let blob = {
        let mut st = lock(&shared);
        let blob = st.files.boxed.dl_tokens.remove(&token);
        if blob.is_some() {
            st.counters.downloads += 1;
        }
        blob
    };
    match blob {
        Some(blob) => file_response(&blob, &headers, Vec::new()),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain")],
            "Not Found: this download URL is unknown or was already used\n",
        )
            .into_response(),
    }
}

// ---------------------------------------------------------- simple uploads

/// What a multipart upload body held.
struct MultipartUpload {
    attributes: Option<Map<String, Value>>,
    /// An `attributes` part came after the file part.
    attributes_after_file: bool,
    blob: Option<Blob>,
    too_large: bool,
}

enum Current {
    None,
    Attributes(Vec<u8>),
    File(Box<BlobWriter>),
    Ignored,
}

/// Reads a multipart upload body, the file part straight to disk. On error
/// the rest of the body has been drained and the answer is ready.
async fn read_multipart(
    dir: &BlobDir,
    headers: &HeaderMap,
    body: Body,
) -> Result<MultipartUpload, Response> {
    let Some(boundary) = multipart::boundary(headers) else {
        return Err(reject(
            body,
            BoxError::bad_request("Content-Type must be multipart/form-data with a boundary")
                .into_response(),
        )
        .await);
    };
    let mut incoming = Incoming::new(body);
    let mut parser = Multipart::new(&boundary);
    let mut upload = MultipartUpload {
        attributes: None,
        attributes_after_file: false,
        blob: None,
        too_large: false,
    };
    let mut current = Current::None;
    let mut file_seen = false;
    let fail = |incoming: Incoming, e: BoxError| async move {
        incoming.drain().await;
        Err(e.into_response())
    };
    loop {
        let chunk = match incoming.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) => return Err(StatusCode::BAD_REQUEST.into_response()),
        };
        let events = match parser.feed(&chunk) {
            Ok(events) => events,
            Err(e) => return fail(incoming, BoxError::bad_request(e)).await,
        };
        for event in events {
            match event {
                Event::Start(part) => {
                    current = if part.name.as_deref() == Some("attributes") {
                        Current::Attributes(Vec::new())
                    } else if part.filename.is_some() || part.name.as_deref() == Some("file") {
                        if file_seen {
                            return fail(
                                incoming,
                                BoxError::bad_request("Only one file can be uploaded at a time"),
                            )
                            .await;
                        }
                        file_seen = true;
                        match BlobWriter::new(dir) {
                            Ok(w) => Current::File(Box::new(w)),
                            Err(e) => {
                                return fail(incoming, io_error(e)).await;
                            }
                        }
                    } else {
                        Current::Ignored
                    };
                }
                Event::Data(data) => match &mut current {
                    Current::Attributes(buf) => {
                        buf.extend_from_slice(&data);
                        if buf.len() > MAX_ATTRIBUTES {
                            return fail(
                                incoming,
                                BoxError::bad_request("The attributes part is too long"),
                            )
                            .await;
                        }
                    }
                    Current::File(writer) => {
                        if writer.len() + data.len() as u64 > MAX_SIMPLE_SIZE {
                            upload.too_large = true;
                            current = Current::Ignored;
                        } else if let Err(e) = writer.write(&data).await {
                            return fail(incoming, io_error(e)).await;
                        }
                    }
                    Current::None | Current::Ignored => {}
                },
                Event::End => match std::mem::replace(&mut current, Current::None) {
                    Current::Attributes(buf) => {
                        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&buf) else {
                            return fail(
                                incoming,
                                BoxError::bad_request("The attributes part is not a JSON object"),
                            )
                            .await;
                        };
                        if file_seen {
                            upload.attributes_after_file = true;
                        }
                        upload.attributes = Some(map);
                    }
                    Current::File(writer) => match writer.finish_async().await {
                        Ok(blob) => upload.blob = Some(blob),
                        Err(e) => return fail(incoming, io_error(e)).await,
                    },
                    Current::None | Current::Ignored => {}
                },
            }
        }
    }
    if let Err(e) = parser.finish() {
        return Err(BoxError::bad_request(e).into_response());
    }
    Ok(upload)
}

/// Checks what every simple upload needs, and returns the file and its
/// attributes.
fn check_simple_upload(
    upload: MultipartUpload,
    headers: &HeaderMap,
) -> Result<(Blob, Map<String, Value>), BoxError> {
    if upload.attributes_after_file {
        return Err(BoxError::new(
            StatusCode::BAD_REQUEST,
            "metadata_after_file_contents",
            "Metadata after file contents. Please put the attributes part before the file part",
        ));
    }
    if upload.too_large {
        return Err(BoxError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_size_limit_exceeded",
            "File size exceeds the limit of a simple upload: use a chunked upload",
        ));
    }
    let Some(blob) = upload.blob else {
        return Err(BoxError::bad_request("The request has no file part"));
    };
    if let Some(md5) = headers.get("content-md5") {
        let expected = md5.to_str().unwrap_or("").trim().to_ascii_lowercase();
        if expected != blob.sha1_hex() {
            return Err(BoxError::new(
                StatusCode::BAD_REQUEST,
                "bad_digest",
                "The specified Content-MD5 (a SHA-1) did not match what was received",
            ));
        }
    }
    Ok((blob, upload.attributes.unwrap_or_default()))
}

pub(super) fn after_upload(st: &mut State, n: NodeId) -> Response {
    st.counters.uploads += 1;
    if st.files.boxed.download_202_once {
        st.files.boxed.processing.insert(n);
    }
    one_file(&st.files.tree, n)
}

pub(super) fn storage_dir(shared: &Shared) -> BlobDir {
    lock(shared).files.blob_dir()
}

/// `POST /api/2.0/files/content`: a new file.
pub(super) async fn upload_new(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let authorized = check_auth(&lock(&shared), &headers);
    if let Err(r) = authorized {
        return reject(body, r).await;
    }
    let dir = storage_dir(&shared);
    let upload = match read_multipart(&dir, &headers, body).await {
        Ok(upload) => upload,
        Err(r) => return r,
    };
    let mut st = lock(&shared);
    upload_new_inner(&mut st, upload, &headers).unwrap_or_else(IntoResponse::into_response)
}

fn upload_new_inner(st: &mut State, upload: MultipartUpload, headers: &HeaderMap) -> BoxResult {
    let (blob, attributes) = check_simple_upload(upload, headers)?;
    let name = str_field(&attributes, "name")?
        .ok_or_else(|| BoxError::bad_request("attributes.name is required"))?;
    let parent = parent_id(&attributes)?
        .ok_or_else(|| BoxError::bad_request("attributes.parent.id is required"))?;
    let modified = time_field(&attributes, "content_modified_at")?;
    let tree = &mut st.files.tree;
    let parent = folder(tree, &parent)?;
    check_name(name)?;
    if let Some(existing) = tree.child(parent, name) {
        return Err(upload_conflict(tree, existing));
    }
    let n = tree.add_file(parent, name, Arc::new(blob), modified);
    Ok(after_upload(st, n))
}

/// `POST /api/2.0/files/{id}/content`: a new version of a file.
pub(super) async fn upload_version(
    AxumState(shared): AxumState<Shared>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let early = {
        let st = lock(&shared);
        check_auth(&st, &headers).and_then(|()| {
            let n = file(&st.files.tree, &id).map_err(IntoResponse::into_response)?;
            check_if_match(&st.files.tree, n, &headers).map_err(IntoResponse::into_response)
        })
    };
    if let Err(r) = early {
        return reject(body, r).await;
    }
    let dir = storage_dir(&shared);
    let upload = match read_multipart(&dir, &headers, body).await {
        Ok(upload) => upload,
        Err(r) => return r,
    };
    let mut st = lock(&shared);
    upload_version_inner(&mut st, &id, upload, &headers).unwrap_or_else(IntoResponse::into_response)
}

/// 412 if an `If-Match` header does not match the file's etag.
fn check_if_match(tree: &Tree, n: NodeId, headers: &HeaderMap) -> Result<(), BoxError> {
    let Some(want) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let want = want.to_str().unwrap_or("").trim().trim_matches('"');
    if etag(tree, n).as_str() == Some(want) {
        Ok(())
    } else {
        Err(BoxError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "The resource has been modified. Please retrieve the resource again and retry",
        ))
    }
}

fn upload_version_inner(
    st: &mut State,
    id: &str,
    upload: MultipartUpload,
    headers: &HeaderMap,
) -> BoxResult {
    let (blob, attributes) = check_simple_upload(upload, headers)?;
    let new_name = str_field(&attributes, "name")?;
    let modified = time_field(&attributes, "content_modified_at")?;
    let tree = &mut st.files.tree;
    let n = file(tree, id)?;
    check_if_match(tree, n, headers)?;
    if let Some(name) = new_name {
        rename_checked(tree, n, name)?;
    }
    tree.replace(n, Arc::new(blob), modified);
    Ok(after_upload(st, n))
}

/// Renames file `n` if `name` differs, with Box's checks.
pub(super) fn rename_checked(tree: &mut Tree, n: NodeId, name: &str) -> Result<(), BoxError> {
    let Some(node) = tree.node(n) else {
        return Ok(());
    };
    if node.name == name {
        return Ok(());
    }
    check_name(name)?;
    if let Some(parent) = node.parent {
        if let Some(existing) = tree.child(parent, name).filter(|&e| e != n) {
            return Err(upload_conflict(tree, existing));
        }
    }
    tree.rename(n, name);
    Ok(())
}

/// `OPTIONS /2.0/files/content` `{"name","parent":{"id"},"size"}`: the
/// upload preflight check.
pub(super) async fn preflight(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let st = lock(&shared);
    if let Err(r) = check_auth(&st, &headers) {
        return r;
    }
    let result = (|| {
        let map = json_body(&body)?;
        let name =
            str_field(&map, "name")?.ok_or_else(|| BoxError::bad_request("'name' is required"))?;
        let parent =
            parent_id(&map)?.ok_or_else(|| BoxError::bad_request("'parent' is required"))?;
        if map.get("size").and_then(Value::as_u64).unwrap_or(0) > MAX_FILE_SIZE {
            return Err(too_big());
        }
        let tree = &st.files.tree;
        let parent = folder(tree, &parent)?;
        check_name(name)?;
        if let Some(existing) = tree.child(parent, name) {
            return Err(upload_conflict(tree, existing));
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            let token = st.files.random_hex(16);
            json_response(
                StatusCode::OK,
                json!({
                    "upload_token": token,
                    "upload_url": format!("{}/api/2.0/files/content", st.files.base_url),
                }),
            )
        }
        Err(e) => e.into_response(),
    }
}
