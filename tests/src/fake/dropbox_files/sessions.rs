//! Dropbox's upload sessions (`/content/2/files/upload_session/…`): `start`
//! with the first chunk, `append_v2` with the next ones, and `finish` with
//! an optional last chunk and a `CommitInfo`.
//!
//! Invariants: a session's `len` is the sum of its chunks' sizes, and a call
//! is only accepted at `offset == len` (else 409 `incorrect_offset` with the
//! `correct_offset`); a closed session takes no more data; `finish`
//! consumes the session whatever the outcome of the write.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State as AxumState;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::args::{
    check_content_hash, conflict, get_bool, get_content_hash, get_object, get_str, internal,
    json_ok, Place,
};
use super::content::{commit_write, parse_commit, read_chunk, storage_dir, upload_preamble};
use super::paths::metadata;
use crate::fake::storage::{concat_blobs, reject, Blob};
use crate::fake::{lock, Shared, State};

/// An upload session: the chunks received so far, in order.
pub(crate) struct Session {
    chunks: Vec<Arc<Blob>>,
    len: u64,
    closed: bool,
}

/// `cursor: {"session_id","offset"}`.
fn parse_cursor(map: &Map<String, Value>, place: Place) -> Result<(String, u64), Response> {
    let cursor = get_object(map, "cursor", place)?;
    let Some(sid) = get_str(cursor, "session_id", place)? else {
        return Err(place.bad("cursor: missing required field 'session_id'"));
    };
    let Some(offset) = cursor.get("offset").and_then(Value::as_u64) else {
        return Err(place.bad("cursor: offset: expected a non-negative integer"));
    };
    Ok((sid.to_owned(), offset))
}

/// `POST /content/2/files/upload_session/start` `{"close"}`, body the
/// first chunk → `{"session_id"}`.
pub(super) async fn session_start(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const FUNCTION: &str = "files/upload_session/start";
    let place = Place::content(FUNCTION);
    let checked = {
        let st = lock(&shared);
        upload_preamble(&st, &headers, place).and_then(|arg| {
            Ok((
                get_bool(&arg, "close", place)?,
                get_content_hash(&arg, place)?,
            ))
        })
    };
    let (close, hash) = match checked {
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
    let mut st = lock(&shared);
    let sid = new_session(&mut st, Arc::new(blob), close);
    json_ok(&json!({ "session_id": sid }))
}

/// Registers a session holding `first` (if not empty); its id.
pub(super) fn new_session(st: &mut State, first: Arc<Blob>, closed: bool) -> String {
    let sid = format!("pid_upload_session:{}", st.files.random_hex(16));
    let len = first.size;
    let chunks = if len > 0 { vec![first] } else { Vec::new() };
    st.files.dropbox.sessions.insert(
        sid.clone(),
        Session {
            chunks,
            len,
            closed,
        },
    );
    sid
}

/// A session lookup failure (`UploadSessionLookupError`), bare (append) or
/// under `lookup_failed` (finish).
fn session_error(under: Option<&str>, which: &str, correct_offset: Option<u64>) -> Response {
    let mut inner = Map::new();
    inner.insert(".tag".into(), json!(which));
    if let Some(offset) = correct_offset {
        inner.insert("correct_offset".into(), json!(offset));
    }
    match under {
        None => conflict(which, Value::Object(inner)),
        Some(tag) => conflict(
            &format!("{tag}/{which}"),
            json!({ ".tag": tag, tag: Value::Object(inner) }),
        ),
    }
}

/// Checks that session `sid` exists, is at `offset` and (when more data
/// comes) is not closed.
fn check_session(
    st: &State,
    sid: &str,
    offset: u64,
    appending: bool,
    under: Option<&str>,
) -> Result<(), Response> {
    let Some(s) = st.files.dropbox.sessions.get(sid) else {
        return Err(session_error(under, "not_found", None));
    };
    if offset != s.len {
        return Err(session_error(under, "incorrect_offset", Some(s.len)));
    }
    if appending && s.closed {
        return Err(session_error(under, "closed", None));
    }
    Ok(())
}

/// `POST /content/2/files/upload_session/append_v2`
/// `{"cursor":{"session_id","offset"},"close"}` → `null`.
pub(super) async fn session_append(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const FUNCTION: &str = "files/upload_session/append_v2";
    let place = Place::content(FUNCTION);
    let checked = {
        let st = lock(&shared);
        upload_preamble(&st, &headers, place).and_then(|arg| {
            let (sid, offset) = parse_cursor(&arg, place)?;
            let close = get_bool(&arg, "close", place)?;
            let hash = get_content_hash(&arg, place)?;
            check_session(&st, &sid, offset, true, None)?;
            Ok((sid, offset, close, hash))
        })
    };
    let (sid, offset, close, hash) = match checked {
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
    let mut st = lock(&shared);
    // Again: another append may have landed meanwhile.
    if let Err(r) = check_session(&st, &sid, offset, blob.size > 0, None) {
        return r;
    }
    if let Some(s) = st.files.dropbox.sessions.get_mut(&sid) {
        s.len += blob.size;
        if blob.size > 0 {
            s.chunks.push(Arc::new(blob));
        }
        s.closed |= close;
    }
    json_ok(&Value::Null)
}

/// `POST /content/2/files/upload_session/finish`
/// `{"cursor":{"session_id","offset"},"commit":{…}}`, body optional last
/// data → FileMetadata.
pub(super) async fn session_finish(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const FUNCTION: &str = "files/upload_session/finish";
    const UNDER: Option<&str> = Some("lookup_failed");
    let place = Place::content(FUNCTION);
    let checked = {
        let st = lock(&shared);
        upload_preamble(&st, &headers, place).and_then(|arg| {
            let (sid, offset) = parse_cursor(&arg, place)?;
            let commit = parse_commit(get_object(&arg, "commit", place)?, place)?;
            let hash = get_content_hash(&arg, place)?;
            check_session(&st, &sid, offset, false, UNDER)?;
            Ok((sid, offset, commit, hash))
        })
    };
    let (sid, offset, commit, hash) = match checked {
        Ok(c) => c,
        Err(r) => return reject(body, r).await,
    };
    let last = match read_chunk(&shared, body, UNDER).await {
        Ok(blob) => blob,
        Err(r) => return r,
    };
    if let Err(r) = check_content_hash(&hash, &last) {
        return r;
    }
    // The session is consumed from here on, whatever the outcome.
    let session = {
        let mut st = lock(&shared);
        if let Err(r) = check_session(&st, &sid, offset, last.size > 0, UNDER) {
            return r;
        }
        st.files.dropbox.sessions.remove(&sid)
    };
    let Some(mut session) = session else {
        return session_error(UNDER, "not_found", None);
    };
    if last.size > 0 {
        session.chunks.push(Arc::new(last));
    }
    let dir = storage_dir(&shared);
    let chunks = session.chunks;
    let blob = match tokio::task::spawn_blocking(move || concat_blobs(&dir, &chunks)).await {
        Ok(Ok(blob)) => blob,
        Ok(Err(e)) => return internal(e),
        Err(e) => return internal(e),
    };
    let mut st = lock(&shared);
    match commit_write(&mut st.files.tree, &commit, Arc::new(blob)) {
        Ok(id) => {
            st.counters.uploads += 1;
            json_ok(&metadata(&st.files.tree, id))
        }
        Err(e) => e.as_path_error(),
    }
}
