//! Dropbox's file API: `list_folder` (+ `continue`), `create_folder_v2`,
//! `delete_v2`, `get_metadata` on the RPC host (`/2`), and `download`,
//! `upload` and upload sessions on the content host (`/content/2`), with
//! Dropbox's real argument encoding (JSON body for RPC, ASCII-only
//! `Dropbox-API-Arg` header for content calls) and error shapes (409 with
//! `error_summary` and a tagged `error` union; 400 with plain text for
//! malformed requests). See `shared/spec/providers.md`.
//!
//! Layout: this module holds the request size limit, Dropbox's state
//! ([`DropboxFiles`]) and the route table; `args` how calls carry their
//! arguments and answers (the JSON body, the `Dropbox-API-Arg` header,
//! their fields, the 409 error shape); `paths` path arguments, lookups,
//! where a write lands and an item's metadata; `rpc` the RPC calls
//! (listing, `get_metadata`, folder creation, deletion); `content` the
//! `download` and `upload` content calls; `sessions` upload sessions.

// Errors here are ready-made `Response`s (128 bytes), returned on the cold
// paths of a test fake: boxing them would only add noise.
#![allow(clippy::result_large_err)]

mod args;
mod content;
mod paths;
mod rpc;
mod sessions;

use std::collections::HashMap;

use axum::routing::post;
use axum::Router;

use super::Shared;
use content::{download, upload};
use rpc::{create_folder, delete, get_metadata, list_folder, list_folder_continue};
use sessions::{session_append, session_finish, session_start, Session};

/// Each request (upload, or each session call) carries at most 150 MiB.
pub(crate) const MAX_REQUEST: u64 = 150 * 1024 * 1024;

/// Dropbox's state for the file API.
#[derive(Default)]
pub(crate) struct DropboxFiles {
    /// Upload sessions not finished yet, by id.
    pub sessions: HashMap<String, Session>,
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
