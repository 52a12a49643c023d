//! The store: where connection records survive a restart.
//!
//! Invariants:
//!
//! - **Nothing secret in the clear outside memory.** Every record is sealed
//!   by a [`RecordCodec`] (AES-256-GCM, a fresh random nonce per write, the
//!   connection name as associated data) before it reaches any backend, so a
//!   backend only ever holds ciphertext, and a file copied from one
//!   connection's name to another's fails to open.
//! - **`put` is atomic and durable.** When it returns `Ok`, the whole new
//!   record is on disk and survives a crash or power loss; until then the old
//!   record is intact. There is never a half-written record.
//! - **Bad data changes nothing.** A record that cannot be read is reported
//!   as its own [`RecordError`] while every other record loads, and the store
//!   never rewrites, renames or deletes it on its own: only `put` (a
//!   replacement) or `remove` by the operator touch it.
//! - **Names are checked here too.** A name that is not a valid connection
//!   name ([`shared::api::valid_connection_name`]) is refused before it can
//!   become a path.
//!
//! Callers must serialise `put`s of the same name (hold the connection's
//! record lock across the read-modify-`put`): the store writes whatever it
//! is given last, and a concurrent stale write could drop a rotated refresh
//! token.

mod codec;
mod etcd;
mod file;
mod key;
mod memory;

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub use codec::{RecordCodec, RecordError, MAGIC};
pub use etcd::{parse_store_url, EtcdStore};
pub use file::{FileStore, RECORD_EXTENSION};
pub use key::{load_key, KeyError, KeySource, VaultKey, CREDENTIAL_NAME, KEY_FILE_NAME, KEY_LEN};
pub use memory::MemoryStore;

use crate::record::Record;

/// A place that keeps sealed records by connection name.
///
/// Object safe: the daemon holds an `Arc<dyn Store>`. The file backend
/// ([`FileStore`]) ships first; an etcd backend comes later.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Every stored record by name, sorted by name; one that cannot be read
    /// comes back as its error, the others are unaffected.
    async fn load_all(&self) -> Result<Vec<(String, Result<Record, RecordError>)>, StoreError>;

    /// One record: `None` when there is none by that name.
    async fn load(&self, name: &str) -> Result<Option<Result<Record, RecordError>>, StoreError>;

    /// Atomic and durable: when this returns Ok, the record survives a crash
    /// or power loss. Stored under `record.name`, replacing any record there.
    ///
    /// If the future is dropped once the write has started, the write may
    /// still complete.
    async fn put(&self, record: &Record) -> Result<(), StoreError>;

    /// Deletes a record, durably. Removing a name that has no record is Ok.
    async fn remove(&self, name: &str) -> Result<(), StoreError>;

    /// e.g. "file store at /var/lib/token-vault/connections"
    fn describe(&self) -> String;

    /// Where one record lives, for messages about it, e.g. the file path of a
    /// record that fails to open.
    fn location(&self, name: &str) -> String {
        format!("connection {name:?} in the {}", self.describe())
    }

    /// Whether other vaults share this store (and so refreshes need its lock).
    fn is_shared(&self) -> bool {
        false
    }

    /// Why the store cannot be reached right now, if it cannot.
    fn problem(&self) -> Option<String> {
        None
    }

    /// `load`, with the stored revision for a later `put_if_unchanged`
    /// (`None` for stores without revisions).
    async fn load_revision(
        &self,
        name: &str,
    ) -> Result<Option<(Result<Record, RecordError>, Option<i64>)>, StoreError> {
        Ok(self.load(name).await?.map(|r| (r, None)))
    }

    /// `put`, but only if the record is still at `revision` (a
    /// compare-and-swap); stores without revisions just `put`.
    async fn put_if_unchanged(
        &self,
        record: &Record,
        _revision: Option<i64>,
    ) -> Result<(), StoreError> {
        self.put(record).await
    }

    /// A cluster-wide lock on `name` for one refresh; `None` for a store
    /// that only this vault uses (its in-process lock is enough).
    async fn lock(&self, _name: &str) -> Result<Option<Box<dyn RefreshLock>>, StoreError> {
        Ok(None)
    }

    /// Changes made by other vaults, as they happen; `None` for a store
    /// nobody else writes.
    async fn watch(&self) -> Result<Option<tokio::sync::mpsc::Receiver<StoreChange>>, StoreError> {
        Ok(None)
    }
}

/// A held cluster-wide refresh lock.
#[async_trait::async_trait]
pub trait RefreshLock: Send {
    async fn release(self: Box<Self>);
}

/// A change to a shared store, seen by its watchers.
#[derive(Debug)]
// Changes are rare and short-lived; boxing the record would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum StoreChange {
    Put {
        name: String,
        record: Result<Record, RecordError>,
    },
    Delete {
        name: String,
    },
    /// Everything there is, after a gap in the watch.
    Snapshot(Vec<(String, Result<Record, RecordError>)>),
}

/// A failure of the store itself (as opposed to one unreadable record).
/// Messages never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not read or write `path`.
    #[error("store I/O error on {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// A record could not be serialised or encrypted.
    #[error("cannot seal the record: {0}")]
    Seal(String),
    /// A shared store that cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// A compare-and-swap found the record changed by someone else.
    #[error("{0}")]
    Conflict(String),
    /// The name cannot be a connection name, so it is never turned into a path.
    #[error(
        "invalid connection name {0:?}: use 1 to 64 of A-Z a-z 0-9 . _ -, not starting with . or -"
    )]
    InvalidName(String),
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}

/// Refuses a name that is not a valid connection name.
fn check_name(name: &str) -> Result<(), StoreError> {
    if shared::api::valid_connection_name(name) {
        Ok(())
    } else {
        Err(StoreError::InvalidName(name.to_owned()))
    }
}

/// Creates `dir` (and any missing parents) with mode 0700 if it does not
/// exist. Returns whether it created it. An existing directory is left as it is.
fn create_private_dir(dir: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(dir) {
        Ok(_) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            // The umask can only narrow the mode, but set it exactly anyway.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

/// fsyncs a directory, so that a rename or unlink in it is durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Records whose secrets are known strings, for the store's tests.

    use crate::record::{Record, Tokens, RECORD_VERSION};
    use chrono::{TimeZone, Utc};
    use shared::{EndpointOverrides, ProviderKind, Secret};

    /// The secrets [`record`] puts in a record named `name`.
    pub(crate) fn secrets(name: &str) -> [String; 3] {
        [
            format!("AT-sekrit-access-{name}-4f2a"),
            format!("RT-sekrit-refresh-{name}-9c1d"),
            format!("CS-sekrit-client-{name}-77b0"),
        ]
    }

    pub(crate) fn record(name: &str) -> Record {
        let [access, refresh, client] = secrets(name);
        Record {
            version: RECORD_VERSION,
            name: name.to_owned(),
            provider: ProviderKind::Box,
            endpoints: EndpointOverrides::default(),
            client_id: format!("client-id-{name}"),
            client_secret: Some(Secret::new(client)),
            tokens: Tokens {
                access_token: Secret::new(access),
                token_type: "bearer".into(),
                refresh_token: Some(Secret::new(refresh)),
                expires_at: Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).single(),
                lifetime_secs: Some(3600),
            },
            root: Some("/backups".into()),
            transfer: Default::default(),
            allow_uids: vec![1000],
            allow_gids: vec![],
            needs_reauth: None,
            last_error: None,
            created_at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            last_refresh: None,
            refresh_token_issued_at: None,
            refreshes: 0,
        }
    }

    /// Whether `haystack` contains `needle` anywhere.
    pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }
}
