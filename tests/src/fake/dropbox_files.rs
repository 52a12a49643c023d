//! Dropbox's file API: `list_folder` (+ `continue`), `create_folder_v2`,
//! `delete_v2`, `get_metadata` on the RPC host (`/2`), and `download`,
//! `upload` and upload sessions on the content host (`/content/2`), with
//! Dropbox's real argument encoding (JSON body for RPC, ASCII-only
//! `Dropbox-API-Arg` header for content calls) and error shapes (409 with
//! `error_summary` and a tagged `error` union; 400 with plain text for
//! malformed requests). See `shared/spec/providers.md`.

// Errors here are ready-made `Response`s (128 bytes), returned on the cold
// paths of a test fake: boxing them would only add noise.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{json, Map, Value};

use super::api::{bearer_token, dropbox_auth_error, dropbox_bad_request, dropbox_missing_auth};
use super::storage::{
    body_to_blob, concat_blobs, dropbox_time, file_response, reject, Blob, BlobDir, BodyError,
    NodeId, Tree, ROOT,
};
use super::{lock, AccessCheck, Shared, State};

/// Each request (upload, or each session call) carries at most 150 MiB.
pub(crate) const MAX_REQUEST: u64 = 150 * 1024 * 1024;

/// Names Dropbox refuses to store (`disallowed_name`).
const DISALLOWED: [&str; 6] = [
    "desktop.ini",
    "thumbs.db",
    ".ds_store",
    "icon\r",
    ".dropbox",
    ".dropbox.attr",
];

/// Dropbox's state for the file API.
#[derive(Default)]
pub(crate) struct DropboxFiles {
    /// Upload sessions not finished yet, by id.
    pub sessions: HashMap<String, Session>,
}

/// An upload session: the chunks received so far, in order.
pub(crate) struct Session {
    chunks: Vec<Arc<Blob>>,
    len: u64,
    closed: bool,
}

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/2/files/list_folder", post(list_folder))
        .route("/2/files/list_folder/continue", post(list_folder_continue))
        .route("/2/files/create_folder_v2", post(create_folder))
        .route("/2/files/delete_v2", post(delete))
        .route("/2/files/get_metadata", post(get_metadata))
        .route("/content/2/files/download", post(download))
        .route("/content/2/files/upload", post(upload))
        .route("/content/2/files/upload_session/start", post(session_start))
        .route(
            "/content/2/files/upload_session/append_v2",
            post(session_append),
        )
        .route(
            "/content/2/files/upload_session/finish",
            post(session_finish),
        )
}

// ---------------------------------------------------------------- plumbing

/// A 409 with Dropbox's error shape.
fn conflict(summary: &str, error: Value) -> Response {
    (
        StatusCode::CONFLICT,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "error_summary": format!("{summary}/.."), "error": error }).to_string(),
    )
        .into_response()
}

fn json_ok(body: &Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("fake provider storage error: {e}"),
    )
        .into_response()
}

/// JSON with every code point from U+007F up escaped as `\uXXXX` (UTF-16,
/// surrogate pairs above U+FFFF), as HTTP headers need.
pub(crate) fn ascii_json(value: &Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

fn check_auth(st: &State, headers: &HeaderMap, function: &str) -> Result<(), Response> {
    let Some(token) = bearer_token(headers) else {
        return Err(dropbox_missing_auth(function));
    };
    match st.check_access(token) {
        AccessCheck::Valid(_) => Ok(()),
        check => Err(dropbox_auth_error(&check)),
    }
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_cors_hack(content_type: &str) -> bool {
    content_type
        .replace(' ', "")
        .eq_ignore_ascii_case("text/plain;charset=dropbox-cors-hack")
}

/// Where an argument comes from, for error messages.
#[derive(Clone, Copy)]
struct Place {
    function: &'static str,
    /// `request body` or `HTTP header "Dropbox-API-Arg"`.
    origin: &'static str,
}

impl Place {
    fn rpc(function: &'static str) -> Place {
        Place {
            function,
            origin: "request body",
        }
    }

    fn content(function: &'static str) -> Place {
        Place {
            function,
            origin: "HTTP header \"Dropbox-API-Arg\"",
        }
    }

    fn bad(&self, problem: impl std::fmt::Display) -> Response {
        dropbox_bad_request(self.function, &format!("{}: {problem}", self.origin))
    }
}

/// An RPC call's argument: a JSON object body with
/// `Content-Type: application/json`.
fn rpc_arg(place: Place, headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, Response> {
    let ct = content_type(headers);
    if essence(ct) != "application/json" && !is_cors_hack(ct) {
        return Err(dropbox_bad_request(
            place.function,
            &format!(
                "Bad HTTP \"Content-Type\" header: \"{ct}\".  Expecting one of \
                 \"application/json\", \"application/json; charset=utf-8\", \
                 \"text/plain; charset=dropbox-cors-hack\"."
            ),
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(place.bad("could not decode input as JSON")),
    }
}

/// A content call's argument: the `Dropbox-API-Arg` header, pure ASCII
/// JSON.
fn content_arg(place: Place, headers: &HeaderMap) -> Result<Map<String, Value>, Response> {
    let Some(raw) = headers.get("dropbox-api-arg") else {
        return Err(dropbox_bad_request(
            place.function,
            "Must provide HTTP header \"Dropbox-API-Arg\" or URL parameter \"arg\".",
        ));
    };
    let text = match raw.to_str() {
        Ok(text) if text.is_ascii() => text,
        _ => {
            return Err(place.bad(
                "could not decode input as JSON: the header must be ASCII (escape \
                 non-ASCII characters as \\uXXXX)",
            ))
        }
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(place.bad("could not decode input as JSON")),
    }
}

/// The `Content-Type` of an upload: raw bytes.
fn check_upload_content_type(function: &str, headers: &HeaderMap) -> Result<(), Response> {
    let ct = content_type(headers);
    if essence(ct) == "application/octet-stream" || is_cors_hack(ct) {
        return Ok(());
    }
    Err(dropbox_bad_request(
        function,
        &format!(
            "Bad HTTP \"Content-Type\" header: \"{ct}\".  Expecting one of \
             \"application/octet-stream\", \"text/plain; charset=dropbox-cors-hack\"."
        ),
    ))
}

fn get_bool(map: &Map<String, Value>, field: &str, place: Place) -> Result<bool, Response> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(place.bad(format!("{field}: expected boolean"))),
    }
}

fn get_str<'a>(
    map: &'a Map<String, Value>,
    field: &str,
    place: Place,
) -> Result<Option<&'a str>, Response> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(place.bad(format!("{field}: expected string"))),
    }
}

fn get_object<'a>(
    map: &'a Map<String, Value>,
    field: &str,
    place: Place,
) -> Result<&'a Map<String, Value>, Response> {
    match map.get(field) {
        Some(Value::Object(m)) => Ok(m),
        None | Some(Value::Null) => Err(place.bad(format!("missing required field '{field}'"))),
        Some(_) => Err(place.bad(format!("{field}: expected object"))),
    }
}

/// An optional `content_hash` argument: 64 hex digits.
fn get_content_hash(map: &Map<String, Value>, place: Place) -> Result<Option<String>, Response> {
    match get_str(map, "content_hash", place)? {
        None => Ok(None),
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(h.to_ascii_lowercase()))
        }
        Some(h) => Err(place.bad(format!("content_hash: '{h}' is not 64 hex digits"))),
    }
}

/// 409 `content_hash_mismatch` if `expected` is given and differs.
fn check_content_hash(expected: &Option<String>, blob: &Blob) -> Result<(), Response> {
    match expected {
        Some(h) if *h != blob.content_hash_hex() => Err(conflict(
            "content_hash_mismatch",
            json!({".tag": "content_hash_mismatch"}),
        )),
        _ => Ok(()),
    }
}

// ------------------------------------------------------------------- paths

/// A `path` argument.
enum DPath {
    /// `""` (or `"/"` where that is allowed).
    Root,
    /// `/a/b`.
    Components(Vec<String>),
    /// `id:…`.
    Id(String),
    /// Matches the pattern but cannot be a path (`/a//b`, `/a/`, `..`).
    Malformed,
    /// `ns:…` and `rev:…`: not supported by the fake, never found.
    Unsupported,
}

/// Parses a `path` argument. `list_folder` takes `""` for the root (and
/// refuses `"/"`); other calls refuse `""`.
fn parse_path(
    map: &Map<String, Value>,
    field: &str,
    place: Place,
    root_is_empty: bool,
) -> Result<DPath, Response> {
    let Some(path) = get_str(map, field, place)? else {
        return Err(place.bad(format!("missing required field '{field}'")));
    };
    if path.is_empty() {
        return if root_is_empty {
            Ok(DPath::Root)
        } else {
            Err(place.bad(format!(
                "{field}: '' did not match pattern '(/(.|[\\r\\n])*)|(ns:[0-9]+(/.*)?)|(id:.*)'"
            )))
        };
    }
    if path == "/" {
        return if root_is_empty {
            Err(place.bad(format!(
                "{field}: Specify the root folder as an empty string rather than as \"/\"."
            )))
        } else {
            Ok(DPath::Root)
        };
    }
    if let Some(id) = path.strip_prefix("id:") {
        return Ok(if id.is_empty() {
            DPath::Malformed
        } else {
            DPath::Id(path.to_owned())
        });
    }
    if path.starts_with("ns:") || path.starts_with("rev:") {
        return Ok(DPath::Unsupported);
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(place.bad(format!(
            "{field}: '{path}' did not match pattern '(/(.|[\\r\\n])*)|(ns:[0-9]+(/.*)?)|(id:.*)'"
        )));
    };
    let components: Vec<String> = rest.split('/').map(str::to_owned).collect();
    if components
        .iter()
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Ok(DPath::Malformed);
    }
    Ok(DPath::Components(components))
}

enum Lookup {
    Found(NodeId),
    NotFound,
    Malformed,
}

fn lookup(tree: &Tree, path: &DPath) -> Lookup {
    match path {
        DPath::Root => Lookup::Found(ROOT),
        DPath::Components(components) => {
            let mut at = ROOT;
            for c in components {
                match tree.child(at, c) {
                    Some(next) => at = next,
                    None => return Lookup::NotFound,
                }
            }
            Lookup::Found(at)
        }
        DPath::Id(id) => tree.find_ext(id).map_or(Lookup::NotFound, Lookup::Found),
        DPath::Malformed => Lookup::Malformed,
        DPath::Unsupported => Lookup::NotFound,
    }
}

/// A `LookupError` under `tag`, as a 409.
fn lookup_error(tag: &str, which: &str) -> Response {
    conflict(
        &format!("{tag}/{which}"),
        json!({ ".tag": tag, tag: { ".tag": which } }),
    )
}

/// Why a write (upload, folder creation) cannot happen: a `WriteError`.
#[derive(Debug, PartialEq, Eq)]
enum WriteError {
    /// `conflict` with `file`, `folder` or `file_ancestor`.
    Conflict(&'static str),
    MalformedPath,
    DisallowedName,
}

impl WriteError {
    /// The summary, e.g. `conflict/file`.
    fn summary(&self) -> String {
        match self {
            WriteError::Conflict(what) => format!("conflict/{what}"),
            WriteError::MalformedPath => "malformed_path".into(),
            WriteError::DisallowedName => "disallowed_name".into(),
        }
    }

    fn json(&self) -> Value {
        match self {
            WriteError::Conflict(what) => {
                json!({".tag": "conflict", "conflict": {".tag": what}})
            }
            WriteError::MalformedPath => json!({".tag": "malformed_path"}),
            WriteError::DisallowedName => json!({".tag": "disallowed_name"}),
        }
    }

    /// Under a `path` member: `{".tag":"path","path":{…}}`.
    fn as_path_error(&self) -> Response {
        conflict(
            &format!("path/{}", self.summary()),
            json!({".tag": "path", "path": self.json()}),
        )
    }
}

/// Where a write lands.
enum Spot {
    Existing(NodeId),
    /// `missing` names the folders to create under `parent`, then the new
    /// item's name (last).
    New {
        parent: NodeId,
        missing: Vec<String>,
    },
}

/// The components of a write's path (`id:` paths name an existing item).
fn write_components(tree: &Tree, path: &DPath) -> Result<Vec<String>, WriteError> {
    match path {
        DPath::Components(c) => Ok(c.clone()),
        DPath::Id(id) => match tree.find_ext(id) {
            Some(n) if n != ROOT => Ok(tree
                .path_display(n)
                .split('/')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()),
            _ => Err(WriteError::MalformedPath),
        },
        DPath::Root | DPath::Malformed | DPath::Unsupported => Err(WriteError::MalformedPath),
    }
}

fn resolve_write(tree: &Tree, components: &[String]) -> Result<Spot, WriteError> {
    let Some((last, parents)) = components.split_last() else {
        return Err(WriteError::MalformedPath);
    };
    if DISALLOWED.contains(&last.to_lowercase().as_str()) || last.starts_with("~$") {
        return Err(WriteError::DisallowedName);
    }
    let mut at = ROOT;
    for (i, c) in parents.iter().enumerate() {
        match tree.child(at, c) {
            Some(next) if tree.node(next).is_some_and(|n| n.is_folder()) => at = next,
            Some(_) => return Err(WriteError::Conflict("file_ancestor")),
            None => {
                return Ok(Spot::New {
                    parent: at,
                    missing: components[i..].to_vec(),
                })
            }
        }
    }
    Ok(match tree.child(at, last) {
        Some(existing) => Spot::Existing(existing),
        None => Spot::New {
            parent: at,
            missing: vec![last.clone()],
        },
    })
}

/// Creates the missing folders of a [`Spot::New`]; returns the parent of
/// the new item and its name.
fn create_parents(tree: &mut Tree, parent: NodeId, missing: &[String]) -> (NodeId, String) {
    let mut at = parent;
    let Some((last, folders)) = missing.split_last() else {
        return (at, String::new());
    };
    for name in folders {
        at = tree.add_folder(at, name);
    }
    (at, last.clone())
}

/// `name (1).ext`, `name (2).ext`, … : the first free one in `parent`.
fn autorename(tree: &Tree, parent: NodeId, name: &str, is_file: bool) -> String {
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if is_file && dot > 0 => (&name[..dot], &name[dot..]),
        _ => (name, ""),
    };
    (1..)
        .map(|n| format!("{stem} ({n}){ext}"))
        .find(|candidate| tree.child(parent, candidate).is_none())
        .unwrap_or_else(|| name.to_owned())
}

// ---------------------------------------------------------------- metadata

fn metadata(tree: &Tree, id: NodeId) -> Value {
    let Some(node) = tree.node(id) else {
        return Value::Null;
    };
    let display = tree.path_display(id);
    match node.file() {
        Some(data) => json!({
            ".tag": "file",
            "name": node.name,
            "path_lower": display.to_lowercase(),
            "path_display": display,
            "id": node.ext_id,
            "client_modified": dropbox_time(&data.content_modified),
            "server_modified": dropbox_time(&node.modified),
            "rev": data.rev,
            "size": data.blob.size,
            "is_downloadable": true,
            "content_hash": data.blob.content_hash_hex(),
        }),
        None => json!({
            ".tag": "folder",
            "name": node.name,
            "path_lower": display.to_lowercase(),
            "path_display": display,
            "id": node.ext_id,
        }),
    }
}

// ------------------------------------------------------------------ listing

/// What a `list_folder` cursor holds (base64url JSON): the folder's id,
/// whether the listing is recursive, the page limit and the `path_lower`
/// of the last entry returned (absent once the listing is complete).
fn encode_cursor(folder: &str, recursive: bool, limit: usize, after: Option<&str>) -> String {
    let state = json!({"f": folder, "r": recursive, "l": limit, "a": after});
    URL_SAFE_NO_PAD.encode(state.to_string())
}

struct Cursor {
    folder: String,
    recursive: bool,
    limit: usize,
    after: Option<String>,
}

fn decode_cursor(cursor: &str) -> Option<Cursor> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let state: Value = serde_json::from_slice(&raw).ok()?;
    Some(Cursor {
        folder: state.get("f")?.as_str()?.to_owned(),
        recursive: state.get("r")?.as_bool()?,
        limit: usize::try_from(state.get("l")?.as_u64()?).ok()?,
        after: match state.get("a")? {
            Value::Null => None,
            a => Some(a.as_str()?.to_owned()),
        },
    })
}

/// One page of a listing of `folder`, after `after` (a `path_lower`).
fn list_page(
    st: &State,
    folder: NodeId,
    recursive: bool,
    limit: usize,
    after: Option<&str>,
) -> Response {
    let tree = &st.files.tree;
    let mut ids = if recursive {
        let mut all = tree.descendants(folder);
        if folder != ROOT {
            all.insert(0, folder);
        }
        all
    } else {
        tree.children(folder)
    };
    let mut keyed: Vec<(String, NodeId)> = ids
        .drain(..)
        .map(|id| (tree.path_display(id).to_lowercase(), id))
        .collect();
    keyed.sort();
    let rest: Vec<&(String, NodeId)> = keyed
        .iter()
        .filter(|(key, _)| after.is_none_or(|a| key.as_str() > a))
        .collect();
    let page = limit.min(st.files.page_size.max(1));
    let shown = &rest[..rest.len().min(page)];
    let has_more = rest.len() > shown.len();
    let folder_id = tree
        .node(folder)
        .map(|n| n.ext_id.clone())
        .unwrap_or_default();
    let cursor = match shown.last() {
        Some((key, _)) => encode_cursor(&folder_id, recursive, limit, Some(key)),
        None => encode_cursor(&folder_id, recursive, limit, after),
    };
    json_ok(&json!({
        "entries": shown.iter().map(|(_, id)| metadata(tree, *id)).collect::<Vec<_>>(),
        "cursor": cursor,
        "has_more": has_more,
    }))
}

/// `POST /2/files/list_folder` `{"path","recursive","limit"}`.
async fn list_folder(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const FUNCTION: &str = "files/list_folder";
    let place = Place::rpc(FUNCTION);
    let st = lock(&shared);
    let result = (|| {
        let arg = rpc_arg(place, &headers, &body)?;
        check_auth(&st, &headers, FUNCTION)?;
        let path = parse_path(&arg, "path", place, true)?;
        let recursive = get_bool(&arg, "recursive", place)?;
        let limit = match arg.get("limit") {
            None | Some(Value::Null) => usize::MAX,
            Some(v) => match v.as_u64() {
                Some(n @ 1..=2000) => n as usize,
                _ => return Err(place.bad(format!("limit: {v} is not within range [1, 2000]"))),
            },
        };
        let folder = match lookup(&st.files.tree, &path) {
            Lookup::Found(n) => n,
            Lookup::NotFound => return Err(lookup_error("path", "not_found")),
            Lookup::Malformed => return Err(lookup_error("path", "malformed_path")),
        };
        if !st.files.tree.node(folder).is_some_and(|n| n.is_folder()) {
            return Err(lookup_error("path", "not_folder"));
        }
        Ok(list_page(&st, folder, recursive, limit, None))
    })();
    result.unwrap_or_else(|r| r)
}

/// `POST /2/files/list_folder/continue` `{"cursor"}`.
async fn list_folder_continue(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const FUNCTION: &str = "files/list_folder/continue";
    let place = Place::rpc(FUNCTION);
    let st = lock(&shared);
    let result = (|| {
        let arg = rpc_arg(place, &headers, &body)?;
        check_auth(&st, &headers, FUNCTION)?;
        let Some(raw) = get_str(&arg, "cursor", place)? else {
            return Err(place.bad("missing required field 'cursor'"));
        };
        let Some(cursor) = decode_cursor(raw) else {
            return Err(dropbox_bad_request(
                FUNCTION,
                "Invalid \"cursor\" parameter: not a cursor returned by list_folder",
            ));
        };
        let folder = st
            .files
            .tree
            .find_ext(&cursor.folder)
            .filter(|&n| st.files.tree.node(n).is_some_and(|n| n.is_folder()))
            .ok_or_else(|| lookup_error("path", "not_found"))?;
        Ok(list_page(
            &st,
            folder,
            cursor.recursive,
            cursor.limit,
            cursor.after.as_deref(),
        ))
    })();
    result.unwrap_or_else(|r| r)
}

/// `POST /2/files/get_metadata` `{"path"}`.
async fn get_metadata(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const FUNCTION: &str = "files/get_metadata";
    let place = Place::rpc(FUNCTION);
    let st = lock(&shared);
    let result = (|| {
        let arg = rpc_arg(place, &headers, &body)?;
        check_auth(&st, &headers, FUNCTION)?;
        let path = parse_path(&arg, "path", place, true)?;
        match lookup(&st.files.tree, &path) {
            Lookup::Found(ROOT) => Err(place.bad("path: The root folder is unsupported.")),
            Lookup::Found(n) => Ok(json_ok(&metadata(&st.files.tree, n))),
            Lookup::NotFound => Err(lookup_error("path", "not_found")),
            Lookup::Malformed => Err(lookup_error("path", "malformed_path")),
        }
    })();
    result.unwrap_or_else(|r| r)
}

// ------------------------------------------------------- folders, deletion

/// `POST /2/files/create_folder_v2` `{"path","autorename"}`: creates
/// missing parents too.
async fn create_folder(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const FUNCTION: &str = "files/create_folder_v2";
    let place = Place::rpc(FUNCTION);
    let mut st = lock(&shared);
    let result = (|| {
        let arg = rpc_arg(place, &headers, &body)?;
        check_auth(&st, &headers, FUNCTION)?;
        let path = parse_path(&arg, "path", place, false)?;
        let autorename_on = get_bool(&arg, "autorename", place)?;
        let tree = &mut st.files.tree;
        let components = write_components(tree, &path).map_err(|e| e.as_path_error())?;
        let id = match resolve_write(tree, &components).map_err(|e| e.as_path_error())? {
            Spot::Existing(existing) => {
                let is_file = tree.node(existing).is_some_and(|n| !n.is_folder());
                if !autorename_on {
                    let what = if is_file { "file" } else { "folder" };
                    return Err(WriteError::Conflict(what).as_path_error());
                }
                let parent = tree.node(existing).and_then(|n| n.parent).unwrap_or(ROOT);
                let name = tree
                    .node(existing)
                    .map(|n| n.name.clone())
                    .unwrap_or_default();
                let name = autorename(tree, parent, &name, false);
                tree.add_folder(parent, &name)
            }
            Spot::New { parent, missing } => {
                let (parent, name) = create_parents(tree, parent, &missing);
                tree.add_folder(parent, &name)
            }
        };
        Ok(json_ok(&json!({ "metadata": metadata(tree, id) })))
    })();
    result.unwrap_or_else(|r| r)
}

/// `POST /2/files/delete_v2` `{"path"}`: recursive for folders.
async fn delete(AxumState(shared): AxumState<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    const FUNCTION: &str = "files/delete_v2";
    let place = Place::rpc(FUNCTION);
    let mut st = lock(&shared);
    let result = (|| {
        let arg = rpc_arg(place, &headers, &body)?;
        check_auth(&st, &headers, FUNCTION)?;
        let path = parse_path(&arg, "path", place, false)?;
        let tree = &mut st.files.tree;
        let id = match lookup(tree, &path) {
            Lookup::Found(ROOT) | Lookup::Malformed => {
                return Err(lookup_error("path_lookup", "malformed_path"))
            }
            Lookup::Found(n) => n,
            Lookup::NotFound => return Err(lookup_error("path_lookup", "not_found")),
        };
        let gone = metadata(tree, id);
        tree.remove(id);
        Ok(json_ok(&json!({ "metadata": gone })))
    })();
    result.unwrap_or_else(|r| r)
}

// --------------------------------------------------------------- download

/// `POST /content/2/files/download` with `Dropbox-API-Arg: {"path"}`:
/// the bytes, with the metadata in `Dropbox-API-Result`. Honours `Range`.
async fn download(
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
struct Commit {
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

fn parse_commit(map: &Map<String, Value>, place: Place) -> Result<Commit, Response> {
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
fn commit_write(tree: &mut Tree, commit: &Commit, blob: Blob) -> Result<NodeId, WriteError> {
    let components = write_components(tree, &commit.path)?;
    let spot = resolve_write(tree, &components)?;
    let blob = Arc::new(blob);
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

fn storage_dir(shared: &Shared) -> BlobDir {
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
async fn read_chunk(
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
fn upload_preamble(
    st: &State,
    headers: &HeaderMap,
    place: Place,
) -> Result<Map<String, Value>, Response> {
    check_upload_content_type(place.function, headers)?;
    check_auth(st, headers, place.function)?;
    content_arg(place, headers)
}

/// `POST /content/2/files/upload`: one request, at most 150 MiB.
async fn upload(AxumState(shared): AxumState<Shared>, headers: HeaderMap, body: Body) -> Response {
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
    let mut st = lock(&shared);
    match commit_write(&mut st.files.tree, &commit, blob) {
        Ok(id) => {
            st.counters.uploads += 1;
            json_ok(&metadata(&st.files.tree, id))
        }
        Err(e) => {
            let session = st.files.random_hex(16);
            conflict(
                &format!("path/{}", e.summary()),
                json!({
                    ".tag": "path",
                    "reason": e.json(),
                    "upload_session_id": format!("pid_upload_session:{session}"),
                }),
            )
        }
    }
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
async fn session_start(
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
    let sid = format!("pid_upload_session:{}", st.files.random_hex(16));
    let len = blob.size;
    let chunks = if len > 0 {
        vec![Arc::new(blob)]
    } else {
        Vec::new()
    };
    st.files.dropbox.sessions.insert(
        sid.clone(),
        Session {
            chunks,
            len,
            closed: close,
        },
    );
    json_ok(&json!({ "session_id": sid }))
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
async fn session_append(
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
async fn session_finish(
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
    match commit_write(&mut st.files.tree, &commit, blob) {
        Ok(id) => {
            st.counters.uploads += 1;
            json_ok(&metadata(&st.files.tree, id))
        }
        Err(e) => e.as_path_error(),
    }
}
