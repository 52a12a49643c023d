//! Dropbox's `download` and `upload` content calls (`/content/2/files/…`,
//! argument in the `Dropbox-API-Arg` header, bytes in the body), and what
//! upload sessions share with them: reading a body of at most
//! [`MAX_REQUEST`] bytes, the checks every upload call starts with, and the
//! `CommitInfo` ([`Commit`]) that says where and how an uploaded file is
//! written.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{json, Map, Value};

use super::args::{
    ascii_json, check_auth, check_content_hash, check_upload_content_type, conflict, content_arg,
    content_type, essence, get_bool, get_content_hash, get_str, internal, json_ok, Place,
};
use super::paths::{
    autorename, create_parents, lookup, lookup_error, metadata, parse_path, resolve_write,
    write_components, DPath, Lookup, Spot, WriteError,
};
use super::sessions::new_session;
use super::MAX_REQUEST;
use crate::fake::api::dropbox_bad_request;
use crate::fake::storage::{
    body_to_blob, file_response, reject, Blob, BlobDir, BodyError, NodeId, Tree, ROOT,
};
use crate::fake::{lock, Shared, State};

// --------------------------------------------------------------- download

/// `POST /content/2/files/download` with `Dropbox-API-Arg: {"path"}`:
/// the bytes, with the metadata in `Dropbox-API-Result`. Honours `Range`.
pub(super) async fn download(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const FUNCTION: &str = "files/download";
    let place = Place::content(FUNCTION);
    let found = {
        let mut st = lock(&shared);
        let result = (|| {
            let ct = content_type(&headers);
            let e = essence(ct);
            if !(ct.is_empty() || e == "text/plain" || e == "application/octet-stream") {
                return Err(dropbox_bad_request(
                    FUNCTION,
                    &format!(
                        "Bad HTTP \"Content-Type\" header: \"{ct}\".  Expecting one of \
                         \"text/plain\", \"text/plain; charset=utf-8\", \
                         \"application/octet-stream\", \"application/octet-stream; charset=utf-8\"."
                    ),
                ));
            }
            if !body.is_empty() {
                return Err(dropbox_bad_request(
                    FUNCTION,
                    "This function requires its argument in the HTTP header \"Dropbox-API-Arg\"; \
                     the request body must be empty.",
                ));
            }
            check_auth(&st, &headers, FUNCTION)?;
            let arg = content_arg(place, &headers)?;
            let path = parse_path(&arg, "path", place, false)?;
            let tree = &st.files.tree;
            let id = match lookup(tree, &path) {
                Lookup::Found(n) => n,
                Lookup::NotFound => return Err(lookup_error("path", "not_found")),
                Lookup::Malformed => return Err(lookup_error("path", "malformed_path")),
            };
            let Some(data) = tree.node(id).and_then(|n| n.file()) else {
                return Err(lookup_error("path", "not_file"));
            };
            Ok((data.blob.clone(), ascii_json(&metadata(tree, id))))
        })();
        if result.is_ok() {
            st.counters.downloads += 1;
        }
        result
    };
    match found {
        Ok((blob, result)) => match HeaderValue::from_str(&result) {
            Ok(value) => file_response(
                &blob,
                &headers,
                vec![(HeaderName::from_static("dropbox-api-result"), value)],
            ),
            Err(e) => internal(e),
        },
        Err(r) => r,
    }
}

// ----------------------------------------------------------------- uploads

/// How an upload treats an existing file.
#[derive(Debug, Clone)]
enum Mode {
    Add,
    Overwrite,
    Update(String),
}

/// A `CommitInfo`: where and how to write an uploaded file.
pub(super) struct Commit {
    path: DPath,
    mode: Mode,
    autorename: bool,
    client_modified: Option<DateTime<Utc>>,
    strict_conflict: bool,
}

fn parse_mode(value: Option<&Value>, place: Place) -> Result<Mode, Response> {
    let (tag, update) = match value {
        None | Some(Value::Null) => return Ok(Mode::Add),
        Some(Value::String(tag)) => (tag.as_str(), None),
        Some(Value::Object(m)) => (
            m.get(".tag").and_then(Value::as_str).unwrap_or(""),
            m.get("update").and_then(Value::as_str),
        ),
        Some(_) => return Err(place.bad("mode: expected a union tag")),
    };
    match (tag, update) {
        ("add", _) => Ok(Mode::Add),
        ("overwrite", _) => Ok(Mode::Overwrite),
        ("update", Some(rev)) => Ok(Mode::Update(rev.to_owned())),
        ("update", None) => Err(place.bad("mode: 'update' needs the rev to update")),
        (other, _) => Err(place.bad(format!("mode: unknown tag '{other}'"))),
    }
}

pub(super) fn parse_commit(map: &Map<String, Value>, place: Place) -> Result<Commit, Response> {
    let client_modified = match get_str(map, "client_modified", place)? {
        None => None,
        Some(s) => Some(
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ")
                .map_err(|_| {
                    place.bad(format!(
                        "client_modified: '{s}' is not a timestamp (%Y-%m-%dT%H:%M:%SZ)"
                    ))
                })?
                .and_utc(),
        ),
    };
    get_bool(map, "mute", place)?;
    Ok(Commit {
        path: parse_path(map, "path", place, false)?,
        mode: parse_mode(map.get("mode"), place)?,
        autorename: get_bool(map, "autorename", place)?,
        client_modified,
        strict_conflict: get_bool(map, "strict_conflict", place)?,
    })
}

/// Writes an uploaded file as `commit` says; the file's node.
pub(super) fn commit_write(
    tree: &mut Tree,
    commit: &Commit,
    blob: Arc<Blob>,
) -> Result<NodeId, WriteError> {
    let components = write_components(tree, &commit.path)?;
    let spot = resolve_write(tree, &components)?;
    let existing = match spot {
        Spot::New { parent, missing } => {
            if matches!(commit.mode, Mode::Update(_)) && commit.strict_conflict {
                return Err(WriteError::Conflict("file"));
            }
            let (parent, name) = create_parents(tree, parent, &missing);
            return Ok(tree.add_file(parent, &name, blob, commit.client_modified));
        }
        Spot::Existing(existing) => existing,
    };
    let Some(node) = tree.node(existing) else {
        return Err(WriteError::MalformedPath);
    };
    let parent = node.parent.unwrap_or(ROOT);
    let name = node.name.clone();
    let Some(data) = node.file() else {
        // A folder is there.
        if commit.autorename {
            let name = autorename(tree, parent, &name, true);
            return Ok(tree.add_file(parent, &name, blob, commit.client_modified));
        }
        return Err(WriteError::Conflict("folder"));
    };
    let identical = data.blob.size == blob.size && data.blob.content_hash == blob.content_hash;
    let rev_matches = match &commit.mode {
        Mode::Add => false,
        Mode::Overwrite => true,
        Mode::Update(rev) => *rev == data.rev,
    };
    if rev_matches {
        if !identical {
            tree.replace(existing, blob, commit.client_modified);
        }
        return Ok(existing);
    }
    if identical && !commit.strict_conflict {
        // Dropbox: not a conflict when the contents are the same.
        return Ok(existing);
    }
    if commit.autorename {
        let name = autorename(tree, parent, &name, true);
        return Ok(tree.add_file(parent, &name, blob, commit.client_modified));
    }
    Err(WriteError::Conflict("file"))
}

pub(super) fn storage_dir(shared: &Shared) -> BlobDir {
    lock(shared).files.blob_dir()
}

fn payload_too_large(summary_prefix: Option<&str>) -> Response {
    match summary_prefix {
        None => conflict("payload_too_large", json!({".tag": "payload_too_large"})),
        Some(tag) => conflict(
            &format!("{tag}/payload_too_large"),
            json!({".tag": tag, tag: {".tag": "payload_too_large"}}),
        ),
    }
}

/// Reads a content call's body (at most [`MAX_REQUEST`] bytes).
pub(super) async fn read_chunk(
    shared: &Shared,
    body: Body,
    too_large_under: Option<&str>,
) -> Result<Blob, Response> {
    let dir = storage_dir(shared);
    match body_to_blob(&dir, body, MAX_REQUEST).await {
        Ok(blob) => Ok(blob),
        // Nobody is listening any more.
        Err(BodyError::Broken) => Err(StatusCode::BAD_REQUEST.into_response()),
        Err(BodyError::TooLarge) => Err(payload_too_large(too_large_under)),
        Err(BodyError::Io(e)) => Err(internal(e)),
    }
}

/// The checks every content upload call starts with; its argument.
pub(super) fn upload_preamble(
    st: &State,
    headers: &HeaderMap,
    place: Place,
) -> Result<Map<String, Value>, Response> {
    check_upload_content_type(place.function, headers)?;
    check_auth(st, headers, place.function)?;
    content_arg(place, headers)
}

/// `POST /content/2/files/upload`: one request, at most 150 MiB.
pub(super) async fn upload(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const FUNCTION: &str = "files/upload";
    let place = Place::content(FUNCTION);
    let checked = {
        let st = lock(&shared);
        upload_preamble(&st, &headers, place)
            .and_then(|arg| Ok((parse_commit(&arg, place)?, get_content_hash(&arg, place)?)))
    };
    let (commit, hash) = match checked {
        Ok(c) => c,
        Err(r) => return reject(body, r).await,
    };
    let blob = match read_chunk(&shared, body, None).await {
        Ok(blob) => blob,
        Err(r) => return r,
    };
    if let Err(r) = check_content_hash(&hash, &blob) {
        return r;
    }
    let blob = Arc::new(blob);
    let mut st = lock(&shared);
    match commit_write(&mut st.files.tree, &commit, blob.clone()) {
        Ok(id) => {
            st.counters.uploads += 1;
            json_ok(&metadata(&st.files.tree, id))
        }
        Err(e) => {
            // Dropbox keeps the bytes in a closed session, so the client
            // can `finish` it to another path without sending them again.
            let session = new_session(&mut st, blob, true);
            conflict(
                &format!("path/{}", e.summary()),
                json!({
                    ".tag": "path",
                    "reason": e.json(),
                    "upload_session_id": session,
                }),
            )
        }
    }
}
