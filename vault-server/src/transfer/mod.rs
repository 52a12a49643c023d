//! The plumbing of file transfers that does not depend on any provider:
//! client paths under a connection's root ([`path`]), parts spooled between
//! the client and the provider ([`spool`]), the digests providers want of
//! an upload ([`hash`]), and the errors a transfer can end in. Provider
//! specifics live in `providers/`; the per-connection service that ties
//! them to the refresh engine is `files`.
//!
//! Invariant: every [`TransferError`] names what went wrong and what to do
//! next, and never carries a token; a [`TransferError::Conflict`] carries
//! its [`ConflictKind`], so the socket API gives it a code of its own.

pub mod hash;
pub mod path;
pub mod spool;

use crate::providers::ProviderCallError;
use std::path::PathBuf;
use std::time::Duration;

/// Why a transfer failed. Messages name the path and the fix, never a token.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    BadPath(#[from] path::PathError),
    #[error("`{0}` does not exist")]
    NotFound(String),
    /// What is at the path is not what the request needs (a folder that is
    /// not empty, a file in the way…): what the provider found, then the
    /// next step for its kind.
    #[error("{message}{}", kind.next_step())]
    Conflict { kind: ConflictKind, message: String },
    #[error("{0}")]
    Refused(String),
    #[error("an upload needs a Content-Length header (token-vault put sends one; with curl use --data-binary @FILE or -T FILE)")]
    LengthRequired,
    #[error(
        "the upload body broke off after {received} of {declared} bytes; nothing was committed"
    )]
    BodyBrokeOff { received: u64, declared: u64 },
    /// The client stopped sending its body: nothing arrived for `idle`.
    #[error(
        "the upload body stalled: no byte came for {} after {received} of {declared} bytes, so the upload was given up and nothing was committed; send the whole body without pausing (token-vault put does)",
        humantime::format_duration(*idle)
    )]
    BodyStalled {
        received: u64,
        declared: u64,
        idle: Duration,
    },
    #[error("cannot spool the upload in {0}: {1}")]
    Spool(PathBuf, std::io::Error),
    #[error(transparent)]
    Provider(#[from] ProviderCallError),
    #[error("the provider's answer does not match what was sent: {0}")]
    Integrity(String),
    #[error("{0}")]
    Unsupported(String),
}

/// What a [`TransferError::Conflict`] is about: each kind has its own API
/// code and next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// A delete without `recursive` of a folder that has contents.
    FolderNotEmpty,
    /// A file (or folder) already sits where a folder is to be created.
    InTheWay,
    /// An upload to a path that is a folder.
    IsAFolder,
    /// A listing of, or a path through, something that is a file.
    NotAFolder,
    /// A download of something that is not a file.
    NotAFile,
    /// Anything else the provider refused as a conflict.
    Other,
}

impl TransferError {
    /// A conflict of `kind`, described by `message` (the next step is
    /// added when it is shown).
    pub fn conflict(kind: ConflictKind, message: impl Into<String>) -> TransferError {
        TransferError::Conflict {
            kind,
            message: message.into(),
        }
    }
}

impl ConflictKind {
    /// The socket API's error code (README, "The socket API").
    pub fn code(self) -> &'static str {
        match self {
            ConflictKind::FolderNotEmpty => "folder_not_empty",
            ConflictKind::InTheWay => "in_the_way",
            ConflictKind::IsAFolder => "is_a_folder",
            ConflictKind::NotAFolder => "not_a_folder",
            ConflictKind::NotAFile => "not_a_file",
            ConflictKind::Other => "conflict",
        }
    }

    /// What to do about it, appended to what the provider found.
    pub fn next_step(self) -> &'static str {
        match self {
            ConflictKind::FolderNotEmpty => {
                "; use --recursive (recursive=true) to delete it with its contents"
            }
            ConflictKind::Other => "",
            ConflictKind::InTheWay => {
                "; remove it first (token-vault rm NAME:PATH) or choose another path"
            }
            ConflictKind::IsAFolder => {
                "; to upload into that folder, name the file inside it (token-vault put FILE NAME:FOLDER/ keeps the local name)"
            }
            ConflictKind::NotAFolder => {
                "; only a folder can be listed or hold items: fetch a file with token-vault get"
            }
            ConflictKind::NotAFile => {
                "; only a file can be downloaded: list a folder with token-vault ls"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_says_what_to_do_next() {
        let shown =
            TransferError::conflict(ConflictKind::IsAFolder, "`/a` is a folder").to_string();
        assert!(
            shown.starts_with("`/a` is a folder; ") && shown.contains("put"),
            "{shown}"
        );
        let shown =
            TransferError::conflict(ConflictKind::FolderNotEmpty, "`/b` is not empty").to_string();
        assert!(
            shown.starts_with("`/b` is not empty; ") && shown.contains("--recursive"),
            "{shown}"
        );
    }
}
