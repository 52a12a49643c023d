//! Dropbox paths and items: parsing a `path` argument (`/a/b`, `id:…`, the
//! root as `""`), looking it up, deciding where a write (upload, folder
//! creation) lands and why it cannot (a `WriteError`), `autorename`, and the
//! metadata JSON of a file or folder.

use axum::response::Response;
use serde_json::{json, Map, Value};

use super::args::{conflict, get_str, Place};
use crate::fake::storage::{dropbox_time, NodeId, Tree, ROOT};

/// Names Dropbox refuses to store (`disallowed_name`).
const DISALLOWED: [&str; 6] = [
    "desktop.ini",
    "thumbs.db",
    ".ds_store",
    "icon\r",
    ".dropbox",
    ".dropbox.attr",
];

/// A `path` argument.
pub(super) enum DPath {
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
pub(super) fn parse_path(
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

pub(super) enum Lookup {
    Found(NodeId),
    NotFound,
    Malformed,
}

pub(super) fn lookup(tree: &Tree, path: &DPath) -> Lookup {
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
pub(super) fn lookup_error(tag: &str, which: &str) -> Response {
    conflict(
        &format!("{tag}/{which}"),
        json!({ ".tag": tag, tag: { ".tag": which } }),
    )
}

/// Why a write (upload, folder creation) cannot happen: a `WriteError`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum WriteError {
    /// `conflict` with `file`, `folder` or `file_ancestor`.
    Conflict(&'static str),
    MalformedPath,
    DisallowedName,
}

impl WriteError {
    /// The summary, e.g. `conflict/file`.
    pub(super) fn summary(&self) -> String {
        match self {
            WriteError::Conflict(what) => format!("conflict/{what}"),
            WriteError::MalformedPath => "malformed_path".into(),
            WriteError::DisallowedName => "disallowed_name".into(),
        }
    }

    pub(super) fn json(&self) -> Value {
        match self {
            WriteError::Conflict(what) => {
                json!({".tag": "conflict", "conflict": {".tag": what}})
            }
            WriteError::MalformedPath => json!({".tag": "malformed_path"}),
            WriteError::DisallowedName => json!({".tag": "disallowed_name"}),
        }
    }

    /// Under a `path` member: `{".tag":"path","path":{…}}`.
    pub(super) fn as_path_error(&self) -> Response {
        conflict(
            &format!("path/{}", self.summary()),
            json!({".tag": "path", "path": self.json()}),
        )
    }
}

/// Where a write lands.
pub(super) enum Spot {
    Existing(NodeId),
    /// `missing` names the folders to create under `parent`, then the new
    /// item's name (last).
    New {
        parent: NodeId,
        missing: Vec<String>,
    },
}

/// The components of a write's path (`id:` paths name an existing item).
pub(super) fn write_components(tree: &Tree, path: &DPath) -> Result<Vec<String>, WriteError> {
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

pub(super) fn resolve_write(tree: &Tree, components: &[String]) -> Result<Spot, WriteError> {
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
pub(super) fn create_parents(
    tree: &mut Tree,
    parent: NodeId,
    missing: &[String],
) -> (NodeId, String) {
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
pub(super) fn autorename(tree: &Tree, parent: NodeId, name: &str, is_file: bool) -> String {
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

pub(super) fn metadata(tree: &Tree, id: NodeId) -> Value {
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
