//! The plumbing of file transfers that does not depend on any provider:
//! client paths under a connection's root ([`path`]), parts spooled between
//! the client and the provider ([`spool`]), the digests providers want of
//! an upload ([`hash`]), and the errors a transfer can end in. Provider specifics live in `providers/`; the per-connection
//! service that ties them to the refresh engine is `files`.

pub mod hash;
pub mod path;
pub mod spool;

use crate::providers::ProviderCallError;
use std::path::PathBuf;

/// Why a transfer failed. Messages name the path and the fix, never a token.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    BadPath(#[from] path::PathError),
    #[error("`{0}` does not exist")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Refused(String),
    #[error("an upload needs a Content-Length header (token-vault put sends one; with curl use --data-binary @FILE or -T FILE)")]
    LengthRequired,
    #[error(
        "the upload body broke off after {received} of {declared} bytes; nothing was committed"
    )]
    BodyBrokeOff { received: u64, declared: u64 },
    #[error("cannot spool the upload in {0}: {1}")]
    Spool(PathBuf, std::io::Error),
    #[error(transparent)]
    Provider(#[from] ProviderCallError),
    #[error("the provider's answer does not match what was sent: {0}")]
    Integrity(String),
    #[error("{0}")]
    Unsupported(String),
}
