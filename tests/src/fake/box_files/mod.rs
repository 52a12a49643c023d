//! Box's file API: folder listing, folder creation, deletion, downloads
//! (302 to a one-time URL on a "download host"), simple multipart uploads
//! and chunked upload sessions, with Box's real error shapes.
//!
//! API calls live under `/2.0`, uploads under `/api/2.0` (on the real
//! service, `api.box.com/2.0` and `upload.box.com/api/2.0`), downloads under
//! `/dl/<token>` (`dl.boxcloud.com`). See `shared/spec/providers.md`.
//!
//! Layout: this module holds Box's limits, its state ([`BoxFiles`]) and the
//! route table; `errors` Box's error shape and the helpers every route
//! shares; `items` the item JSON and the folder and file routes (listing,
//! info, folder creation, deletion); `content` downloads and simple
//! uploads; `sessions` chunked upload sessions.

// Errors here are ready-made `Response`s (128 bytes), returned on the cold
// paths of a test fake: boxing them would only add noise.
#![allow(clippy::result_large_err)]

mod content;
mod errors;
mod items;
mod sessions;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::routing::{get, options, post, put};
use axum::Router;

use super::storage::{Blob, NodeId};
use super::Shared;
use content::{dl, download, preflight, upload_new, upload_version};
use items::{create_folder, delete_file, delete_folder, file_info, folder_info, list};
use sessions::{
    abort, commit, create_session, create_version_session, list_parts, session_status, upload_part,
    Session,
};

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
