//! The socket API's JSON types: what `token-vault serve` answers and what
//! its client subcommands (and `curl --unix-socket` scripts) send.
//!
//! Invariant: nothing here carries a secret except [`TokenResponse`] (the
//! one answer whose job is to hand out an access token) and
//! [`ImportRequest`] (which carries the pasted blob and client secret in).

use crate::providers::{EndpointOverrides, ProviderKind};
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The version prefix of every path.
pub const API_PREFIX: &str = "/v1";

/// Every error body: `{"error":{"code":"…","message":"…"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `needs_reauth`, `forbidden`.
    pub code: String,
    /// A sentence for humans that names the cause and the fix.
    pub message: String,
}

/// A connection's state, as `list` and `status` show it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectionState {
    /// Holds a valid access token (or can get one).
    Ok,
    /// A refresh is in flight.
    Refreshing,
    /// The last refresh failed transiently; a retry is scheduled.
    Backoff,
    /// The provider refused the grant: the user must authorize again.
    NeedsReauth,
    /// The stored record cannot be decrypted or read.
    Corrupt,
}

impl ConnectionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Ok => "ok",
            ConnectionState::Refreshing => "refreshing",
            ConnectionState::Backoff => "backoff",
            ConnectionState::NeedsReauth => "needs-reauth",
            ConnectionState::Corrupt => "corrupt",
        }
    }
}

/// One connection, without secrets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectionStatus {
    pub name: String,
    /// `None` only for a corrupt record, whose provider cannot be read.
    pub provider: Option<ProviderKind>,
    pub state: ConnectionState,
    pub client_id: Option<String>,
    /// When the current access token expires; `None` if it never does or is unknown.
    pub expiry: Option<DateTime<Utc>>,
    pub has_refresh_token: bool,
    pub last_refresh: Option<DateTime<Utc>>,
    pub next_refresh: Option<DateTime<Utc>>,
    pub refreshes: u64,
    pub last_error: Option<String>,
    /// The commands that fix a `needs-reauth` or `corrupt` connection.
    pub fix: Option<String>,
    pub root: Option<String>,
    pub allow_uids: Vec<u32>,
    pub allow_gids: Vec<u32>,
}

/// `GET /v1/connections`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectionList {
    pub connections: Vec<ConnectionStatus>,
}

/// `GET /v1/connections/{name}/token`: the one answer that carries a token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenResponse {
    pub access_token: Secret,
    pub token_type: String,
    /// `None` for a token that does not expire.
    pub expiry: Option<DateTime<Utc>>,
}

/// `PUT /v1/connections/{name}`: import (or, with `replace`, re-import).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// The paste, in any form `TokenBlob::parse` reads.
    pub blob: Secret,
    /// Required for a new connection; on replace, defaults to the old one.
    pub provider: Option<ProviderKind>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    #[serde(default)]
    pub endpoints: EndpointOverrides,
    pub root: Option<String>,
    pub allow_uids: Option<Vec<u32>>,
    pub allow_gids: Option<Vec<u32>>,
    /// Box: files above this many bytes use upload sessions.
    #[serde(default)]
    pub upload_cutoff: Option<u64>,
    /// Dropbox: the upload chunk size in bytes (at most 150 MiB).
    #[serde(default)]
    pub chunk_size: Option<u64>,
    #[serde(default)]
    pub replace: bool,
}

/// The answer to an import.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImportResponse {
    pub connection: ConnectionStatus,
    /// Things the user should know, e.g. a blob without a refresh token.
    pub warnings: Vec<String>,
}

/// `DELETE /v1/connections/{name}[?revoke=true]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoveResponse {
    pub removed: String,
    pub revoked: bool,
    /// Why a requested revoke did not happen (the connection is removed anyway).
    pub revoke_error: Option<String>,
}

/// `GET /v1/connections/{name}/whoami`: the provider's who-am-I answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WhoAmI {
    /// A one-line description of the account, e.g. `Ann Smith <ann@example.com>`.
    pub account: String,
    /// The provider's answer as it came.
    pub details: serde_json::Value,
}

/// What a listing entry is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Folder,
    /// A Box web link: listed, never transferred.
    WebLink,
}

/// One item in a folder listing (`ls --json` prints these).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// Bytes; `None` for folders where the provider gives none.
    pub size: Option<u64>,
    pub modified: Option<DateTime<Utc>>,
    /// The provider's id (Box item id, Dropbox `id:…`).
    pub id: String,
    /// The provider's hash: Box SHA-1 hex, Dropbox `content_hash`.
    pub hash: Option<String>,
}

/// `GET /v1/connections/{name}/items?path=…`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Listing {
    /// The folder listed, relative to the connection's root.
    pub path: String,
    pub entries: Vec<Entry>,
}

/// `PUT /v1/connections/{name}/content?path=…`: what was stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UploadResult {
    pub path: String,
    pub entry: Entry,
    /// True when the upload replaced an existing file (a new version on
    /// Box, overwrite mode on Dropbox).
    pub replaced: bool,
}

/// `POST /v1/connections/{name}/folders?path=…`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FolderResult {
    pub path: String,
    pub id: String,
    /// False when the folder already existed.
    pub created: bool,
}

/// `DELETE /v1/connections/{name}/items?path=…`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeleteResult {
    pub path: String,
}

/// Response header of a download: the provider's hash of the content.
pub const HASH_HEADER: &str = "x-token-vault-hash";
/// Response header of a download: which hash [`HASH_HEADER`] is, as
/// [`HashKind::as_str`] spells it, so a client can check the bytes.
pub const HASH_KIND_HEADER: &str = "x-token-vault-hash-kind";

/// The hash a provider keeps of a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    /// Box: the SHA-1 of the content.
    Sha1,
    /// Dropbox's `content_hash`: SHA-256 over the SHA-256 of each 4 MiB block.
    DropboxContentHash,
}

impl HashKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HashKind::Sha1 => "sha1",
            HashKind::DropboxContentHash => "dropbox-content-hash",
        }
    }

    /// The kind [`HashKind::as_str`] spells `s`; `None` for one this
    /// version does not know (a newer daemon's), which goes unchecked.
    pub fn parse(s: &str) -> Option<HashKind> {
        [HashKind::Sha1, HashKind::DropboxContentHash]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Checks a connection name: 1–64 of `A-Z a-z 0-9 . _ -`, not starting
/// with `.` or `-`. Names become file names and URL path segments.
pub fn valid_connection_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["box", "dropbox-work", "a.b_c-1", &"x".repeat(64)] {
            assert!(valid_connection_name(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "-x",
            "a/b",
            "a b",
            "é",
            &"x".repeat(65),
            "a\0",
        ] {
            assert!(!valid_connection_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn error_shape() {
        let e = ErrorBody {
            error: ErrorDetail {
                code: "forbidden".into(),
                message: "no".into(),
            },
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"error":{"code":"forbidden","message":"no"}}"#
        );
    }

    #[test]
    fn import_request_debug_redacts() {
        let r = ImportRequest {
            blob: Secret::new("{\"access_token\":\"AT-123\"}"),
            provider: Some(ProviderKind::Box),
            client_id: Some("id".into()),
            client_secret: Some(Secret::new("CS-456")),
            endpoints: EndpointOverrides::default(),
            root: None,
            allow_uids: None,
            allow_gids: None,
            upload_cutoff: None,
            chunk_size: None,
            replace: false,
        };
        let d = format!("{r:?}");
        assert!(!d.contains("AT-123") && !d.contains("CS-456"), "{d}");
    }
}
