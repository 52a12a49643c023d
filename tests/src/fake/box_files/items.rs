//! Box's items: their JSON (the mini and the full representation, etags,
//! `fields=`), finding a folder or a file by its Box id, and the folder and
//! file routes under `/2.0`: listing a folder (marker or offset
//! pagination), folder and file info, folder creation, and deletion.

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::errors::{
    check_auth, check_name, json_body, json_response, parent_id, str_field, BoxError, BoxResult,
};
use crate::fake::storage::{box_time, name_key, NodeId, Tree, ROOT};
use crate::fake::{lock, parse_form, Shared, State};

// --------------------------------------------------------------- item JSON

pub(super) fn etag(tree: &Tree, id: NodeId) -> Value {
    match tree.node(id) {
        Some(node) if id != ROOT => match node.file() {
            Some(data) => Value::String((data.versions - 1).to_string()),
            None => Value::String("0".into()),
        },
        _ => Value::Null,
    }
}

/// The mini representation: what every listing returns whatever `fields`.
pub(super) fn mini(tree: &Tree, id: NodeId) -> Value {
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
pub(super) fn folder(tree: &Tree, id: &str) -> Result<NodeId, BoxError> {
    tree.find_ext(id)
        .filter(|&n| tree.node(n).is_some_and(|n| n.is_folder()))
        .ok_or_else(|| BoxError::not_found("folder", id))
}

/// The file with Box id `id`.
pub(super) fn file(tree: &Tree, id: &str) -> Result<NodeId, BoxError> {
    tree.find_ext(id)
        .filter(|&n| tree.node(n).is_some_and(|n| n.file().is_some()))
        .ok_or_else(|| BoxError::not_found("file", id))
}

pub(super) fn one_file(tree: &Tree, id: NodeId) -> Response {
    json_response(
        StatusCode::CREATED,
        json!({ "total_count": 1, "entries": [full(tree, id)] }),
    )
}

// ------------------------------------------------------------------- items

/// `GET /2.0/folders/{id}/items`: marker pagination with `usemarker=true`,
/// offset pagination otherwise. Folders first, then files, each by name.
pub(super) async fn list(
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
pub(super) async fn folder_info(
    AxumState(shared): AxumState<Shared>,
    UrlPath(id): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    item_info(&shared, &id, query, &headers, folder)
}

/// `GET /2.0/files/{id}`.
pub(super) async fn file_info(
    AxumState(shared): AxumState<Shared>,
    UrlPath(id): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    item_info(&shared, &id, query, &headers, file)
}

/// A folder's or a file's full JSON (`lookup` says which kind `id` must
/// be), cut to the `fields` query parameter when there is one.
fn item_info(
    shared: &Shared,
    id: &str,
    query: Option<String>,
    headers: &HeaderMap,
    lookup: fn(&Tree, &str) -> Result<NodeId, BoxError>,
) -> Response {
    let st = lock(shared);
    if let Err(r) = check_auth(&st, headers) {
        return r;
    }
    let fields = fields_param(&parse_form(query.unwrap_or_default().as_bytes()));
    match lookup(&st.files.tree, id) {
        Ok(n) => json_response(
            StatusCode::OK,
            with_fields(full(&st.files.tree, n), fields.as_deref()),
        ),
        Err(e) => e.into_response(),
    }
}

/// `POST /2.0/folders` `{"name","parent":{"id"}}` → 201.
pub(super) async fn create_folder(
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
pub(super) async fn delete_file(
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
pub(super) async fn delete_folder(
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
