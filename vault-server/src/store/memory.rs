//! An in-memory store for other modules' tests. It seals and opens through a
//! [`RecordCodec`] like the file store, so tests exercise the same path, and
//! it can be told to fail `put`s.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::{check_name, RecordCodec, RecordError, Store, StoreError, VaultKey};
use crate::record::Record;

/// Sealed records in a map; nothing survives the process.
#[derive(Debug)]
pub struct MemoryStore {
    codec: RecordCodec,
    records: Mutex<BTreeMap<String, Vec<u8>>>,
    fail_puts: AtomicBool,
    puts: AtomicUsize,
}

impl MemoryStore {
    /// An empty store with a fresh random key.
    ///
    /// # Panics
    /// If the system's random number generator fails.
    pub fn new() -> MemoryStore {
        let key = VaultKey::generate().expect("the system random number generator failed");
        MemoryStore::with_codec(RecordCodec::new(&key))
    }

    /// An empty store sealing with `codec`.
    pub fn with_codec(codec: RecordCodec) -> MemoryStore {
        MemoryStore {
            codec,
            records: Mutex::new(BTreeMap::new()),
            fail_puts: AtomicBool::new(false),
            puts: AtomicUsize::new(0),
        }
    }

    /// While `on`, every `put` fails with an I/O error and stores nothing.
    pub fn fail_puts(&self, on: bool) {
        self.fail_puts.store(on, Ordering::SeqCst);
    }

    /// How many `put`s have succeeded.
    pub fn put_count(&self) -> usize {
        self.puts.load(Ordering::SeqCst)
    }

    /// The sealed bytes stored for `name`.
    pub fn raw(&self, name: &str) -> Option<Vec<u8>> {
        self.records().get(name).cloned()
    }

    /// Stores `bytes` for `name` as they are, e.g. damaged bytes to test how
    /// a corrupt record is handled.
    pub fn insert_raw(&self, name: &str, bytes: Vec<u8>) {
        self.records().insert(name.to_owned(), bytes);
    }

    fn records(&self) -> MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        // A panic elsewhere while holding the lock leaves whole entries only.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn load_all(&self) -> Result<Vec<(String, Result<Record, RecordError>)>, StoreError> {
        Ok(self
            .records()
            .iter()
            .map(|(name, bytes)| (name.clone(), self.codec.open(name, bytes)))
            .collect())
    }

    async fn load(&self, name: &str) -> Result<Option<Result<Record, RecordError>>, StoreError> {
        check_name(name)?;
        Ok(self
            .records()
            .get(name)
            .map(|bytes| self.codec.open(name, bytes)))
    }

    async fn put(&self, record: &Record) -> Result<(), StoreError> {
        check_name(&record.name)?;
        if self.fail_puts.load(Ordering::SeqCst) {
            return Err(StoreError::Io {
                path: PathBuf::from(format!("memory:{}", record.name)),
                source: io::Error::other("injected put failure (MemoryStore::fail_puts)"),
            });
        }
        let sealed = self.codec.seal(record)?;
        self.records().insert(record.name.clone(), sealed);
        self.puts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn remove(&self, name: &str) -> Result<(), StoreError> {
        check_name(name)?;
        self.records().remove(name);
        Ok(())
    }

    fn describe(&self) -> String {
        "memory store".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{contains, record, secrets};
    use std::sync::Arc;

    #[tokio::test]
    async fn round_trip_sealed() {
        let store = MemoryStore::new();
        store.put(&record("b")).await.unwrap();
        store.put(&record("a")).await.unwrap();
        assert_eq!(
            store.load_all().await.unwrap(),
            vec![("a".into(), Ok(record("a"))), ("b".into(), Ok(record("b")))]
        );
        assert_eq!(store.load("a").await.unwrap(), Some(Ok(record("a"))));
        assert_eq!(store.load("zzz").await.unwrap(), None);
        let raw = store.raw("a").unwrap();
        for s in secrets("a") {
            assert!(!contains(&raw, s.as_bytes()));
        }
        store.remove("a").await.unwrap();
        store.remove("a").await.unwrap();
        assert_eq!(store.load("a").await.unwrap(), None);
    }

    #[tokio::test]
    async fn injected_failures_and_counts() {
        let store: Arc<MemoryStore> = Arc::new(MemoryStore::default());
        store.put(&record("a")).await.unwrap();
        assert_eq!(store.put_count(), 1);

        store.fail_puts(true);
        let mut changed = record("a");
        changed.refreshes = 7;
        let err = store.put(&changed).await.unwrap_err();
        assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
        assert_eq!(store.put_count(), 1);
        assert_eq!(store.load("a").await.unwrap(), Some(Ok(record("a"))));

        store.fail_puts(false);
        store.put(&changed).await.unwrap();
        assert_eq!(store.put_count(), 2);
        assert_eq!(store.load("a").await.unwrap(), Some(Ok(changed)));
    }

    #[tokio::test]
    async fn corrupt_entries_fail_alone() {
        let store = MemoryStore::new();
        store.put(&record("a")).await.unwrap();
        let mut bytes = store.raw("a").unwrap();
        bytes[20] ^= 1;
        store.insert_raw("a", bytes);
        store.put(&record("b")).await.unwrap();
        let dyn_store: &dyn Store = &store;
        assert_eq!(
            dyn_store.load_all().await.unwrap(),
            vec![
                ("a".into(), Err(RecordError::Decrypt)),
                ("b".into(), Ok(record("b")))
            ]
        );
    }
}
