//! Box's file API: folder listing, folder creation, deletion, downloads
//! (302 to a one-time URL on a "download host"), simple multipart uploads
//! and chunked upload sessions, with Box's real error shapes.
//!
//! API calls live under `/2.0`, uploads under `/api/2.0` (on the real
//! service, `api.box.com/2.0` and `upload.box.com/api/2.0`), downloads under
//! `/dl/<token>` (`dl.boxcloud.com`). See `shared/spec/providers.md`.

// Errors here are ready-made `Response`s (128 bytes), returned on the cold
// paths of a test fake: boxing them would only add noise.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, RawQuery, State as AxumState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, options, post, put};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::api::{bearer_token, box_unauthorized};
use super::multipart::{self, Event, Multipart};
use super::storage::{
    body_to_blob, box_time, concat_blobs, file_response, name_key, reject, Blob, BlobDir,
    BlobWriter, BodyError, Incoming, NodeId, Tree, ROOT,
};
use super::{lock, parse_form, AccessCheck, Shared, State};

/// The part size of new upload sessions, unless changed with
/// [`super::FakeProvider::set_box_part_size`].
pub(crate) const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;

/// Chunked uploads are for files of at least this size.
pub(crate) const MIN_CHUNKED_SIZE: u64 = 20_000_000;

/// Simple uploads take files of at most this size ("50 MB").
pub(crate) const MAX_SIMPLE_SIZE: u64 = 50_000_000;

/// The account's `max_upload_size` (see `GET /2.0/users/me`).
pub(crate) const MAX_FILE_SIZE: u64 = 2_147_483_648;

/// The longest `attributes` part accepted.
const MAX_ATTRIBUTES: usize = 64 * 1024;

/// Box's state for the file API.
pub(crate) struct BoxFiles {
    /// Open chunked upload sessions, by id.
    pub sessions: HashMap<String, Session>,
    pub part_size: u64,
    /// How many commits of each new session answer 202 first.
    pub commit_202s: u32,
    /// Whether a fresh upload makes the next download answer 202.
    pub download_202_once: bool,
    /// Files whose next download answers 202.
    processing: HashSet<NodeId>,
    /// One-time download URLs' tokens.
    dl_tokens: HashMap<String, Arc<Blob>>,
    next_part: u64,
}

impl Default for BoxFiles {
    fn default() -> BoxFiles {
        BoxFiles {
            sessions: HashMap::new(),
            part_size: DEFAULT_PART_SIZE,
            commit_202s: 1,
            download_202_once: false,
            processing: HashSet::new(),
            dl_tokens: HashMap::new(),
            next_part: 1,
        }
    }
}

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

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/2.0/folders", post(create_folder))
        .route("/2.0/folders/{id}", get(folder_info).delete(delete_folder))
        .route("/2.0/folders/{id}/items", get(list))
        .route("/2.0/files/content", options(preflight))
        .route("/2.0/files/{id}", get(file_info).delete(delete_file))
        .route("/2.0/files/{id}/content", get(download))
        .route("/dl/{token}", get(dl))
        .route("/api/2.0/files/content", post(upload_new))
        .route("/api/2.0/files/{id}/content", post(upload_version))
        .route("/api/2.0/files/upload_sessions", post(create_session))
        .route(
            "/api/2.0/files/{id}/upload_sessions",
            post(create_version_session),
        )
        .route(
            "/api/2.0/files/upload_sessions/{sid}",
            put(upload_part).get(session_status).delete(abort),
        )
        .route(
            "/api/2.0/files/upload_sessions/{sid}/parts",
            get(list_parts),
        )
        .route("/api/2.0/files/upload_sessions/{sid}/commit", post(commit))
}

// ------------------------------------------------------------------ errors

/// A Box error: `{"type":"error","status","code","message","context_info",
/// "help_url","request_id"}`.
#[derive(Debug)]
struct BoxError {
    status: StatusCode,
    code: &'static str,
    message: String,
    context_info: Value,
}

impl BoxError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> BoxError {
        BoxError {
            status,
            code,
            message: message.into(),
            context_info: Value::Null,
        }
    }

    fn context(mut self, context_info: Value) -> BoxError {
        self.context_info = context_info;
        self
    }

    fn bad_request(message: impl Into<String>) -> BoxError {
        BoxError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404 for an item (`"file"`, `"folder"`) or session that does not
    /// exist, with Box's `context_info.errors`.
    fn not_found(kind: &str, id: &str) -> BoxError {
        BoxError::new(StatusCode::NOT_FOUND, "not_found", "Not Found").context(json!({
            "errors": [{
                "reason": "invalid_parameter",
                "name": kind,
                "message": format!("Invalid value '{id}'. '{kind}' with value '{id}' not found"),
            }]
        }))
    }

    fn name_in_use(conflicts: Value) -> BoxError {
        BoxError::new(
            StatusCode::CONFLICT,
            "item_name_in_use",
            "Item with the same name already exists",
        )
        .context(json!({ "conflicts": conflicts }))
    }
}

impl IntoResponse for BoxError {
    fn into_response(self) -> Response {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let request_id = format!("fakebox{:010x}", NEXT.fetch_add(1, Ordering::Relaxed));
        let body = json!({
            "type": "error",
            "status": self.status.as_u16(),
            "code": self.code,
            "message": self.message,
            "context_info": self.context_info,
            "help_url": "http://developers.box.com/docs/#errors",
            "request_id": request_id,
        });
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

type BoxResult = Result<Response, BoxError>;

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Box's 401 unless the request carries a valid access token.
fn check_auth(st: &State, headers: &HeaderMap) -> Result<(), Response> {
    let Some(token) = bearer_token(headers) else {
        return Err(box_unauthorized(false));
    };
    match st.check_access(token) {
        AccessCheck::Valid(_) => Ok(()),
        _ => Err(box_unauthorized(true)),
    }
}

/// Parses a JSON request body.
fn json_body(body: &[u8]) -> Result<Map<String, Value>, BoxError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(BoxError::bad_request("Invalid input JSON")),
    }
}

fn str_field<'a>(map: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, BoxError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(BoxError::bad_request(format!("'{name}' must be a string"))),
    }
}

fn parent_id(map: &Map<String, Value>) -> Result<Option<String>, BoxError> {
    match map.get("parent") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(parent)) => Ok(str_field(parent, "id")?.map(str::to_owned)),
        Some(_) => Err(BoxError::bad_request("'parent' must be an object")),
    }
}

fn time_field(map: &Map<String, Value>, name: &str) -> Result<Option<DateTime<Utc>>, BoxError> {
    match str_field(map, name)? {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| BoxError::bad_request(format!("'{name}' is not an RFC 3339 date"))),
    }
}

/// Box's rules for item names.
fn check_name(name: &str) -> Result<(), BoxError> {
    if name.chars().count() > 255 {
        return Err(BoxError::new(
            StatusCode::BAD_REQUEST,
            "item_name_too_long",
            "Item name too long",
        ));
    }
    let invalid = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\\')
        || name.ends_with(' ')
        || name.chars().any(char::is_control);
    if invalid {
        return Err(BoxError::new(
            StatusCode::BAD_REQUEST,
            "item_name_invalid",
            "Item name invalid",
        ));
    }
    Ok(())
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

// --------------------------------------------------------------- item JSON

fn etag(tree: &Tree, id: NodeId) -> Value {
    match tree.node(id) {
        Some(node) if id != ROOT => match node.file() {
            Some(data) => Value::String((data.versions - 1).to_string()),
            None => Value::String("0".into()),
        },
        _ => Value::Null,
    }
}

/// The mini representation: what every listing returns whatever `fields`.
fn mini(tree: &Tree, id: NodeId) -> Value {
    let Some(node) = tree.node(id) else {
        return Value::Null;
    };
    let etag = etag(tree, id);
    match node.file() {
        Some(data) => json!({
            "type": "file",
            "id": node.ext_id,
            "sequence_id": etag,
            "etag": etag,
            "sha1": data.blob.sha1_hex(),
            "name": node.name,
            "file_version": {
                "type": "file_version",
                "id": data.version_id,
                "sha1": data.blob.sha1_hex(),
            },
        }),
        None => json!({
            "type": "folder",
            "id": node.ext_id,
            "sequence_id": etag,
            "etag": etag,
            "name": node.name,
        }),
    }
}

/// The standard (full) representation of a file or folder.
fn full(tree: &Tree, id: NodeId) -> Value {
    let Some(node) = tree.node(id) else {
        return Value::Null;
    };
    let mut item = match mini(tree, id) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let ancestors: Vec<Value> = tree
        .ancestors(id)
        .into_iter()
        .map(|a| mini(tree, a))
        .collect();
    item.insert("size".into(), json!(tree.subtree_size(id)));
    item.insert("created_at".into(), json!(box_time(&node.created)));
    item.insert("modified_at".into(), json!(box_time(&node.modified)));
    if let Some(data) = node.file() {
        item.insert("content_created_at".into(), json!(box_time(&node.created)));
        item.insert(
            "content_modified_at".into(),
            json!(box_time(&data.content_modified)),
        );
    } else {
        item.insert("content_created_at".into(), json!(box_time(&node.created)));
        item.insert(
            "content_modified_at".into(),
            json!(box_time(&node.modified)),
        );
    }
    item.insert("description".into(), json!(""));
    item.insert("item_status".into(), json!("active"));
    item.insert("trashed_at".into(), Value::Null);
    item.insert("purged_at".into(), Value::Null);
    item.insert(
        "parent".into(),
        node.parent.map(|p| mini(tree, p)).unwrap_or(Value::Null),
    );
    item.insert(
        "path_collection".into(),
        json!({ "total_count": ancestors.len(), "entries": ancestors }),
    );
    Value::Object(item)
}

/// Keeps only the mini fields and the requested ones, as Box does when a
/// request has `fields=`.
fn with_fields(item: Value, fields: Option<&[String]>) -> Value {
    const MINI: [&str; 7] = [
        "type",
        "id",
        "sequence_id",
        "etag",
        "name",
        "sha1",
        "file_version",
    ];
    match (item, fields) {
        (Value::Object(map), Some(fields)) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| MINI.contains(&k.as_str()) || fields.iter().any(|f| f == k))
                .collect(),
        ),
        (item, _) => item,
    }
}

fn fields_param(pairs: &[(String, String)]) -> Option<Vec<String>> {
    pairs
        .iter()
        .find(|(k, _)| k == "fields")
        .map(|(_, v)| v.split(',').map(|f| f.trim().to_owned()).collect())
}

/// The folder with Box id `id`.
fn folder(tree: &Tree, id: &str) -> Result<NodeId, BoxError> {
    tree.find_ext(id)
        .filter(|&n| tree.node(n).is_some_and(|n| n.is_folder()))
        .ok_or_else(|| BoxError::not_found("folder", id))
}

/// The file with Box id `id`.
fn file(tree: &Tree, id: &str) -> Result<NodeId, BoxError> {
    tree.find_ext(id)
        .filter(|&n| tree.node(n).is_some_and(|n| n.file().is_some()))
        .ok_or_else(|| BoxError::not_found("file", id))
}

fn one_file(tree: &Tree, id: NodeId) -> Response {
    json_response(
        StatusCode::CREATED,
        json!({ "total_count": 1, "entries": [full(tree, id)] }),
    )
}

// ------------------------------------------------------------------- items

/// `GET /2.0/folders/{id}/items`: marker pagination with `usemarker=true`,
/// offset pagination otherwise. Folders first, then files, each by name.
async fn list(
    AxumState(shared): AxumState<Shared>,
    UrlPath(id): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let st = lock(&shared);
    if let Err(r) = check_auth(&st, &headers) {
        return r;
    }
    list_inner(&st, &id, query.as_deref().unwrap_or("")).unwrap_or_else(IntoResponse::into_response)
}

fn list_inner(st: &State, id: &str, query: &str) -> BoxResult {
    let tree = &st.files.tree;
    let pairs = parse_form(query.as_bytes());
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let folder = folder(tree, id)?;
    let fields = fields_param(&pairs);
    let limit = match param("limit") {
        None => 100,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => n.min(1000),
            _ => return Err(BoxError::bad_request("Invalid value for 'limit'")),
        },
    };
    let page = limit.min(st.files.page_size.max(1));
    let mut entries: Vec<((u8, String), NodeId)> = tree
        .children(folder)
        .into_iter()
        .filter_map(|c| {
            let node = tree.node(c)?;
            Some(((u8::from(!node.is_folder()), name_key(&node.name)), c))
        })
        .collect();
    entries.sort();
    let json_of = |c: NodeId| with_fields(full(tree, c), fields.as_deref());
    if param("usemarker") == Some("true") {
        let after = match param("marker").filter(|m| !m.is_empty()) {
            None => None,
            Some(m) => Some(decode_marker(m).ok_or_else(|| {
                BoxError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_parameter",
                    "Invalid value for 'marker'",
                )
            })?),
        };
        let rest: Vec<&((u8, String), NodeId)> = entries
            .iter()
            .filter(|(key, _)| after.as_ref().is_none_or(|a| key > a))
            .collect();
        let shown = &rest[..rest.len().min(page)];
        let next_marker = match shown.last() {
            Some((key, _)) if rest.len() > shown.len() => Value::String(encode_marker(key)),
            _ => Value::Null,
        };
        Ok(json_response(
            StatusCode::OK,
            json!({
                "entries": shown.iter().map(|(_, c)| json_of(*c)).collect::<Vec<_>>(),
                "limit": limit,
                "next_marker": next_marker,
            }),
        ))
    } else {
        let offset = match param("offset") {
            None => 0,
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| BoxError::bad_request("Invalid value for 'offset'"))?,
        };
        let shown: Vec<Value> = entries
            .iter()
            .skip(offset)
            .take(page)
            .map(|(_, c)| json_of(*c))
            .collect();
        Ok(json_response(
            StatusCode::OK,
            json!({
                "total_count": entries.len(),
                "entries": shown,
                "offset": offset,
                "limit": limit,
                "order": [
                    {"by": "type", "direction": "ASC"},
                    {"by": "name", "direction": "ASC"},
                ],
            }),
        ))
    }
}

fn encode_marker((rank, name): &(u8, String)) -> String {
    URL_SAFE_NO_PAD.encode(format!("{rank}/{name}"))
}

fn decode_marker(marker: &str) -> Option<(u8, String)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(marker).ok()?).ok()?;
    let (rank, name) = raw.split_once('/')?;
    Some((rank.parse().ok()?, name.to_owned()))
}

/// `GET /2.0/folders/{id}`.
async fn folder_info(
    AxumState(shared): AxumState<Shared>,
    UrlPath(id): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let st = lock(&shared);
    if let Err(r) = check_auth(&st, &headers) {
        return r;
    }
    let fields = fields_param(&parse_form(query.unwrap_or_default().as_bytes()));
    match folder(&st.files.tree, &id) {
        Ok(n) => json_response(
            StatusCode::OK,
            with_fields(full(&st.files.tree, n), fields.as_deref()),
        ),
        Err(e) => e.into_response(),
    }
}

/// `GET /2.0/files/{id}`.
async fn file_info(
    AxumState(shared): AxumState<Shared>,
    UrlPath(id): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let st = lock(&shared);
    if let Err(r) = check_auth(&st, &headers) {
        return r;
    }
    let fields = fields_param(&parse_form(query.unwrap_or_default().as_bytes()));
    match file(&st.files.tree, &id) {
        Ok(n) => json_response(
            StatusCode::OK,
            with_fields(full(&st.files.tree, n), fields.as_deref()),
        ),
        Err(e) => e.into_response(),
    }
}

/// `POST /2.0/folders` `{"name","parent":{"id"}}` → 201.
async fn create_folder(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = lock(&shared);
    if let Err(r) = check_auth(&st, &headers) {
        return r;
    }
    create_folder_inner(&mut st, &body).unwrap_or_else(IntoResponse::into_response)
}

fn create_folder_inner(st: &mut State, body: &[u8]) -> BoxResult {
    let map = json_body(body)?;
    let name =
        str_field(&map, "name")?.ok_or_else(|| BoxError::bad_request("'name' is required"))?;
    let parent = parent_id(&map)?.ok_or_else(|| BoxError::bad_request("'parent' is required"))?;
    let tree = &mut st.files.tree;
    let parent = folder(tree, &parent)?;
    check_name(name)?;
    if let Some(existing) = tree.child(parent, name) {
        return Err(BoxError::name_in_use(json!([mini(tree, existing)])));
    }
    let id = tree.add_folder(parent, name);
    Ok(json_response(StatusCode::CREATED, full(tree, id)))
}

/// `DELETE /2.0/files/{id}` → 204.
async fn delete_file(
    AxumState(shared): AxumState<Shared>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let mut st = lock(&shared);
    if let Err(r) = check_auth(&st, &headers) {
        return r;
    }
    match file(&st.files.tree, &id) {
        Ok(n) => {
            st.files.tree.remove(n);
            st.files.boxed.processing.remove(&n);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `DELETE /2.0/folders/{id}[?recursive=true]` → 204, or 400
/// `folder_not_empty`.
async fn delete_folder(
    AxumState(shared): AxumState<Shared>,
    UrlPath(id): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut st = lock(&shared);
    if let Err(r) = check_auth(&st, &headers) {
        return r;
    }
    let pairs = parse_form(query.unwrap_or_default().as_bytes());
    let recursive = pairs.iter().any(|(k, v)| k == "recursive" && v == "true");
    let n = match folder(&st.files.tree, &id) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    if n == ROOT {
        return BoxError::new(
            StatusCode::FORBIDDEN,
            "access_denied_insufficient_permissions",
            "Access denied - insufficient permission",
        )
        .into_response();
    }
    if !recursive && !st.files.tree.children(n).is_empty() {
        return BoxError::new(
            StatusCode::BAD_REQUEST,
            "folder_not_empty",
            "Cannot delete – folder not empty",
        )
        .into_response();
    }
    let tree = &st.files.tree;
    let gone: Vec<NodeId> = st
        .files
        .boxed
        .processing
        .iter()
        .copied()
        .filter(|&f| tree.is_within(f, n))
        .collect();
    for f in gone {
        st.files.boxed.processing.remove(&f);
    }
    st.files.tree.remove(n);
    StatusCode::NO_CONTENT.into_response()
}

// --------------------------------------------------------------- downloads

/// `GET /2.0/files/{id}/content` → 302 to a one-time URL on the "download
/// host" (or 202 + `Retry-After` right after an upload, when
/// `box_download_202_once` is on).
async fn download(
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
async fn dl(
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

fn io_error(e: std::io::Error) -> BoxError {
    BoxError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_server_error",
        format!("fake provider storage error: {e}"),
    )
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

/// A 409 `item_name_in_use` for an upload: `conflicts` is the one item.
fn upload_conflict(tree: &Tree, existing: NodeId) -> BoxError {
    BoxError::name_in_use(mini(tree, existing))
}

fn after_upload(st: &mut State, n: NodeId) -> Response {
    st.counters.uploads += 1;
    if st.files.boxed.download_202_once {
        st.files.boxed.processing.insert(n);
    }
    one_file(&st.files.tree, n)
}

fn storage_dir(shared: &Shared) -> BlobDir {
    lock(shared).files.blob_dir()
}

/// `POST /api/2.0/files/content`: a new file.
async fn upload_new(
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
async fn upload_version(
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
fn rename_checked(tree: &mut Tree, n: NodeId, name: &str) -> Result<(), BoxError> {
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
async fn preflight(
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

fn too_big() -> BoxError {
    BoxError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file_size_limit_exceeded",
        "File size exceeds the folder owner's file size limit",
    )
}

// --------------------------------------------------------- chunked uploads

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
async fn create_session(
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
async fn create_version_session(
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
async fn upload_part(
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
async fn session_status(
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
async fn list_parts(
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
async fn abort(
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
async fn commit(
    AxumState(shared): AxumState<Shared>,
    UrlPath(sid): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let prepared = {
        let mut st = lock(&shared);
        prepare_commit(&mut st, &sid, &headers, &body)
    };
    let (parts, digest, modified) = match prepared {
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
    finish_commit(&mut st, &sid, blob, modified).unwrap_or_else(IntoResponse::into_response)
}

type Prepared = (Vec<Arc<Blob>>, [u8; 20], Option<DateTime<Utc>>);

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
    let modified = match map.get("attributes") {
        None | Some(Value::Null) => None,
        Some(Value::Object(attributes)) => {
            time_field(attributes, "content_modified_at").map_err(IntoResponse::into_response)?
        }
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
    Ok(Some((parts, digest, modified)))
}

fn finish_commit(
    st: &mut State,
    sid: &str,
    blob: Blob,
    modified: Option<DateTime<Utc>>,
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
                tree.replace(*file, Arc::new(blob), modified);
                Ok(*file)
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
