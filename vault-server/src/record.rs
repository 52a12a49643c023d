//! A connection's record: everything that must survive a restart.
//!
//! Invariant: a record is only ever written whole, through the store, and
//! its secrets are [`Secret`]s, so neither `Debug` nor a log line can show
//! them. It is plain data: no behaviour beyond deriving what it implies.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::{EndpointOverrides, ProviderKind, Secret};

/// The record layout this build writes; older layouts are upgraded on read.
pub const RECORD_VERSION: u32 = 1;

/// The tokens of a connection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tokens {
    pub access_token: Secret,
    pub token_type: String,
    pub refresh_token: Option<Secret>,
    /// When the access token expires, by this host's clock; `None`: never, or unknown.
    pub expires_at: Option<DateTime<Utc>>,
    /// The lifetime the provider granted, in seconds, when known.
    pub lifetime_secs: Option<i64>,
}

/// A connection's transfer tuning.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TransferSettings {
    /// Box: files above this many bytes use upload sessions (default 50 MiB).
    pub upload_cutoff: Option<u64>,
    /// Dropbox: upload chunk size (default 48 MiB, at most 150 MiB).
    pub chunk_size: Option<u64>,
}

/// One connection, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub version: u32,
    pub name: String,
    pub provider: ProviderKind,
    #[serde(default)]
    pub endpoints: EndpointOverrides,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub tokens: Tokens,
    /// The folder inside the account that transfers are confined to.
    pub root: Option<String>,
    /// Transfer tuning; `None` fields take the provider's defaults.
    #[serde(default)]
    pub transfer: TransferSettings,
    pub allow_uids: Vec<u32>,
    pub allow_gids: Vec<u32>,
    /// Set when the provider refused the grant (`invalid_grant`): the reason it gave.
    pub needs_reauth: Option<String>,
    /// The last refresh failure, for `status`; cleared by a success.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_refresh: Option<DateTime<Utc>>,
    /// When the current refresh token was issued (import or rotation).
    pub refresh_token_issued_at: Option<DateTime<Utc>>,
    /// Successful refreshes since import.
    pub refreshes: u64,
}
