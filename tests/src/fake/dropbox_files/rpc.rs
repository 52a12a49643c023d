//! Dropbox's RPC calls on the API host (`/2/files/…`, argument in a JSON
//! body): `list_folder` and `list_folder/continue` (a cursor that carries
//! where the listing stopped), `get_metadata`, `create_folder_v2` and
//! `delete_v2`.

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::args::{check_auth, get_bool, get_str, json_ok, rpc_arg, Place};
use super::paths::{
    autorename, create_parents, lookup, lookup_error, metadata, parse_path, resolve_write,
    write_components, Lookup, Spot, WriteError,
};
use crate::fake::api::dropbox_bad_request;
use crate::fake::gate::EmptyPage;
use crate::fake::storage::{NodeId, ROOT};
use crate::fake::{lock, Shared, State};

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

/// One page of a listing of `folder`, after `after` (a `path_lower`); an
/// `empty` page has no entries, `has_more` and a cursor at `after`
/// ([`ApiFault::EmptyPage`](crate::fake::ApiFault::EmptyPage)).
fn list_page(
    st: &State,
    folder: NodeId,
    recursive: bool,
    limit: usize,
    after: Option<&str>,
    empty: bool,
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
    let page = if empty {
        0
    } else {
        limit.min(st.files.page_size.max(1))
    };
    let shown = &rest[..rest.len().min(page)];
    let has_more = empty || rest.len() > shown.len();
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
pub(super) async fn list_folder(
    AxumState(shared): AxumState<Shared>,
    empty: Option<Extension<EmptyPage>>,
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
        Ok(list_page(
            &st,
            folder,
            recursive,
            limit,
            None,
            empty.is_some(),
        ))
    })();
    result.unwrap_or_else(|r| r)
}

/// `POST /2/files/list_folder/continue` `{"cursor"}`.
pub(super) async fn list_folder_continue(
    AxumState(shared): AxumState<Shared>,
    empty: Option<Extension<EmptyPage>>,
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
            empty.is_some(),
        ))
    })();
    result.unwrap_or_else(|r| r)
}

/// `POST /2/files/get_metadata` `{"path"}`.
pub(super) async fn get_metadata(
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
pub(super) async fn create_folder(
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
pub(super) async fn delete(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
