//! The file backend: one sealed file per connection,
//! `<state_dir>/connections/<name>.tvr`.
//!
//! Invariants: the directory is 0700 and every record file 0600; a write
//! goes to a temp file in the same directory, is fsynced, renamed over the
//! target, and the directory is fsynced, so a crash leaves either the old
//! record or the new one. A file that fails to open is reported and left
//! byte-for-byte as it is. Temp files (`.tmp-*`) are never records; ones a
//! crash left behind are deleted when the store opens.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{
    check_name, create_private_dir, sync_dir, RecordCodec, RecordError, Store, StoreError,
};
use crate::record::Record;

/// The extension of a record file.
pub const RECORD_EXTENSION: &str = "tvr";
/// The name of the records directory inside the state directory.
const CONNECTIONS_DIR: &str = "connections";
/// The prefix of temp files. Connection names never start with `.`.
const TMP_PREFIX: &str = ".tmp-";
/// No record comes near this; a bigger file is reported, not read.
const MAX_RECORD_BYTES: u64 = 16 << 20;

/// Records as files in `<state_dir>/connections/`.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    codec: Arc<RecordCodec>,
}

impl FileStore {
    /// Opens the store in `state_dir`, creating `state_dir` (0700) and
    /// `connections/` (0700) if missing, tightening `connections/` to 0700 if
    /// it is looser, and deleting temp files a crash left behind.
    pub fn open(state_dir: &Path, codec: RecordCodec) -> Result<FileStore, StoreError> {
        create_private_dir(state_dir).map_err(StoreError::io(state_dir))?;
        let dir = state_dir.join(CONNECTIONS_DIR);
        if !create_private_dir(&dir).map_err(StoreError::io(&dir))? {
            let meta = fs::metadata(&dir).map_err(StoreError::io(&dir))?;
            if !meta.is_dir() {
                return Err(StoreError::Io {
                    path: dir,
                    source: io::Error::other("exists but is not a directory"),
                });
            }
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %dir.display(),
                    mode = format!("{mode:04o}"),
                    "the records directory was open to group or others; setting it to 0700"
                );
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                    .map_err(StoreError::io(&dir))?;
            }
        }
        remove_leftover_temp_files(&dir)?;
        Ok(FileStore {
            dir,
            codec: Arc::new(codec),
        })
    }

    /// The directory the record files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of the connection `name` (which must be a valid name).
    fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.{RECORD_EXTENSION}"))
    }

    /// Runs blocking file work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        path: PathBuf,
        work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| StoreError::Io {
                path,
                source: io::Error::other(format!("the file task failed: {e}")),
            })?
    }
}

#[async_trait::async_trait]
impl Store for FileStore {
    async fn load_all(&self) -> Result<Vec<(String, Result<Record, RecordError>)>, StoreError> {
        let dir = self.dir.clone();
        let codec = Arc::clone(&self.codec);
        self.blocking(self.dir.clone(), move || load_all_blocking(&dir, &codec))
            .await
    }

    async fn load(&self, name: &str) -> Result<Option<Result<Record, RecordError>>, StoreError> {
        check_name(name)?;
        let path = self.path_of(name);
        let codec = Arc::clone(&self.codec);
        let name = name.to_owned();
        self.blocking(path.clone(), move || Ok(read_record(&codec, &path, &name)))
            .await
    }

    async fn put(&self, record: &Record) -> Result<(), StoreError> {
        check_name(&record.name)?;
        let sealed = self.codec.seal(record)?;
        let dir = self.dir.clone();
        let path = self.path_of(&record.name);
        let tmp_prefix = format!("{TMP_PREFIX}{}.", record.name);
        self.blocking(path.clone(), move || {
            write_atomically(&dir, &path, &tmp_prefix, &sealed)
        })
        .await
    }

    async fn remove(&self, name: &str) -> Result<(), StoreError> {
        check_name(name)?;
        let dir = self.dir.clone();
        let path = self.path_of(name);
        self.blocking(path.clone(), move || {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(path)(e)),
            }
            sync_dir(&dir).map_err(StoreError::io(&dir))
        })
        .await
    }

    fn describe(&self) -> String {
        format!("file store at {}", self.dir.display())
    }

    fn location(&self, name: &str) -> String {
        self.path_of(name).display().to_string()
    }
}

/// What [`Store::load_all`] returns for one record.
type Loaded = (String, Result<Record, RecordError>);

fn load_all_blocking(dir: &Path, codec: &RecordCodec) -> Result<Vec<Loaded>, StoreError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(StoreError::io(dir))? {
        let entry = entry.map_err(StoreError::io(dir))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            tracing::warn!(path = %entry.path().display(), "ignoring a file in the store whose name is not UTF-8");
            continue;
        };
        if file_name.starts_with(TMP_PREFIX) {
            continue;
        }
        let name = match file_name.strip_suffix(&format!(".{RECORD_EXTENSION}")) {
            Some(name) if shared::api::valid_connection_name(name) => name,
            _ => {
                tracing::warn!(path = %entry.path().display(), "ignoring a file in the store that is not a record");
                continue;
            }
        };
        // `None`: removed between the listing and the read.
        if let Some(result) = read_record(codec, &entry.path(), name) {
            out.push((name.to_owned(), result));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Reads and opens one record file; `None` if there is no such file. Only
/// reads: a file that fails is left as it is.
fn read_record(
    codec: &RecordCodec,
    path: &Path,
    name: &str,
) -> Option<Result<Record, RecordError>> {
    let io_err = |e: io::Error| RecordError::Io(format!("{}: {e}", path.display()));
    // O_NONBLOCK: a FIFO at the path must not hang the read; it has no
    // effect on regular files.
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path);
    let mut file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => return Some(Err(io_err(e))),
    };
    let result = (|| {
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(RecordError::Io(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        if meta.len() > MAX_RECORD_BYTES {
            return Err(RecordError::Io(format!(
                "{} is {} bytes, far larger than any record",
                path.display(),
                meta.len()
            )));
        }
        let mut bytes = Vec::new();
        // The file may have grown since the check.
        (&mut file)
            .take(MAX_RECORD_BYTES)
            .read_to_end(&mut bytes)
            .map_err(io_err)?;
        codec.open(name, &bytes)
    })();
    Some(result)
}

/// Temp file (0600) in `dir`, write, fsync, rename over `path`, fsync `dir`.
fn write_atomically(
    dir: &Path,
    path: &Path,
    tmp_prefix: &str,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let mut tmp = tempfile::Builder::new()
        .prefix(tmp_prefix)
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(StoreError::io(dir))?;
    let tmp_path = tmp.path().to_owned();
    tmp.write_all(bytes).map_err(StoreError::io(&tmp_path))?;
    tmp.as_file()
        .sync_all()
        .map_err(StoreError::io(&tmp_path))?;
    // On failure the temp file is deleted when the error drops.
    tmp.persist(path)
        .map_err(|e| StoreError::io(path)(e.error))?;
    sync_dir(dir).map_err(StoreError::io(dir))
}

/// Deletes temp files a crash left behind; they never hold a committed record.
fn remove_leftover_temp_files(dir: &Path) -> Result<(), StoreError> {
    let mut removed = false;
    for entry in fs::read_dir(dir).map_err(StoreError::io(dir))? {
        let entry = entry.map_err(StoreError::io(dir))?;
        let is_tmp = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(TMP_PREFIX));
        if is_tmp {
            let path = entry.path();
            match fs::remove_file(&path) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(path)(e)),
            }
        }
    }
    if removed {
        sync_dir(dir).map_err(StoreError::io(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{contains, record, secrets};
    use crate::store::{load_key, VaultKey};
    use shared::Secret;

    fn open_store(state: &Path) -> FileStore {
        let (key, _) = load_key(None, None, state).unwrap();
        FileStore::open(state, RecordCodec::new(&key)).unwrap()
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn file_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn put_then_load_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open_store(tmp.path());
        let (a, b) = (record("a"), record("b"));
        store.put(&b).await.unwrap();
        store.put(&a).await.unwrap();

        let all = store.load_all().await.unwrap();
        assert_eq!(all, vec![("a".into(), Ok(a.clone())), ("b".into(), Ok(b))]);
        assert_eq!(store.load("a").await.unwrap(), Some(Ok(a)));
        assert_eq!(store.load("missing").await.unwrap(), None);

        // A second store over the same directory and key sees the same.
        let again = open_store(tmp.path());
        assert_eq!(again.load_all().await.unwrap(), all);
    }

    #[tokio::test]
    async fn modes_and_no_temp_files() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let key = VaultKey::generate().unwrap();
        let store = FileStore::open(&state, RecordCodec::new(&key)).unwrap();
        store.put(&record("box")).await.unwrap();

        assert_eq!(mode_of(&state), 0o700);
        assert_eq!(mode_of(store.dir()), 0o700);
        assert_eq!(mode_of(&store.dir().join("box.tvr")), 0o600);
        assert_eq!(file_names(store.dir()), ["box.tvr"]);
        assert_eq!(
            store.location("box"),
            store.dir().join("box.tvr").display().to_string()
        );
        assert!(store.describe().starts_with("file store at "));
    }

    #[tokio::test]
    async fn tightens_a_loose_records_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(CONNECTIONS_DIR);
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        open_store(tmp.path());
        assert_eq!(mode_of(&dir), 0o700);
    }

    #[tokio::test]
    async fn overwrite_keeps_one_file_with_the_latest_record() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open_store(tmp.path());
        let mut r = record("box");
        store.put(&r).await.unwrap();
        r.tokens.refresh_token = Some(Secret::new("RT-rotated"));
        r.refreshes = 1;
        store.put(&r).await.unwrap();

        assert_eq!(file_names(store.dir()), ["box.tvr"]);
        assert_eq!(store.load("box").await.unwrap(), Some(Ok(r)));
    }

    #[tokio::test]
    async fn a_bad_file_fails_alone_and_is_left_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open_store(tmp.path());
        for name in ["a", "b", "c"] {
            store.put(&record(name)).await.unwrap();
        }
        let b_path = store.dir().join("b.tvr");
        let mut bytes = fs::read(&b_path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x20;
        fs::write(&b_path, &bytes).unwrap();

        let all = store.load_all().await.unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0], ("a".into(), Ok(record("a"))));
        assert_eq!(all[1], ("b".into(), Err(RecordError::Decrypt)));
        assert_eq!(all[2], ("c".into(), Ok(record("c"))));
        assert_eq!(
            store.load("b").await.unwrap(),
            Some(Err(RecordError::Decrypt))
        );

        // Other writes do not touch it either.
        store.put(&record("a")).await.unwrap();
        store.remove("c").await.unwrap();
        open_store(tmp.path());
        store.load_all().await.unwrap();
        assert_eq!(fs::read(&b_path).unwrap(), bytes);
    }

    #[tokio::test]
    async fn a_file_copied_to_another_name_does_not_open() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open_store(tmp.path());
        store.put(&record("a")).await.unwrap();
        fs::copy(store.dir().join("a.tvr"), store.dir().join("b.tvr")).unwrap();
        assert_eq!(
            store.load("b").await.unwrap(),
            Some(Err(RecordError::Decrypt))
        );
        assert_eq!(store.load("a").await.unwrap(), Some(Ok(record("a"))));
    }

    #[tokio::test]
    async fn a_wrong_key_fails_every_record_but_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open_store(tmp.path());
        store.put(&record("a")).await.unwrap();
        let before = fs::read(store.dir().join("a.tvr")).unwrap();
        let other =
            FileStore::open(tmp.path(), RecordCodec::new(&VaultKey::generate().unwrap())).unwrap();
        assert_eq!(
            other.load_all().await.unwrap(),
            vec![("a".into(), Err(RecordError::Decrypt))]
        );
        assert_eq!(fs::read(store.dir().join("a.tvr")).unwrap(), before);
    }

    /// The "grep finds nothing" promise: no token, secret or client id is
    /// anywhere under the state directory in the clear.
    #[tokio::test]
    async fn no_secret_in_the_clear_under_the_state_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open_store(tmp.path());
        let mut r = record("box");
        store.put(&r).await.unwrap();
        r.tokens.access_token = Secret::new("AT-second-generation-5e5e");
        store.put(&r).await.unwrap();
        store.put(&record("work")).await.unwrap();

        let mut needles: Vec<String> = secrets("box").into();
        needles.extend(secrets("work"));
        needles.push("AT-second-generation-5e5e".into());
        needles.push("client-id-box".into());

        let mut files = 0;
        let mut stack = vec![tmp.path().to_owned()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let raw = fs::read(&path).unwrap();
                files += 1;
                for needle in &needles {
                    assert!(
                        !contains(&raw, needle.as_bytes()),
                        "{} holds {needle}",
                        path.display()
                    );
                }
            }
        }
        assert_eq!(files, 3, "vault.key, box.tvr, work.tvr");
    }

    #[tokio::test]
    async fn remove_deletes_and_tolerates_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open_store(tmp.path());
        store.put(&record("a")).await.unwrap();
        store.put(&record("b")).await.unwrap();
        store.remove("a").await.unwrap();
        assert_eq!(file_names(store.dir()), ["b.tvr"]);
        assert_eq!(store.load("a").await.unwrap(), None);
        assert_eq!(store.load_all().await.unwrap().len(), 1);
        store.remove("a").await.unwrap();
        store.remove("never-was").await.unwrap();
    }

    #[tokio::test]
    async fn cleans_temp_files_and_ignores_strays() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open_store(tmp.path());
        store.put(&record("a")).await.unwrap();
        let dir = store.dir().to_owned();
        drop(store);
        fs::write(dir.join(".tmp-a.x1y2z3.tmp"), b"half a record").unwrap();
        fs::write(dir.join("README"), b"hello").unwrap();
        fs::write(dir.join(".hidden.tvr"), b"not a name").unwrap();

        let store = open_store(tmp.path());
        assert_eq!(file_names(&dir), [".hidden.tvr", "README", "a.tvr"]);
        assert_eq!(
            store.load_all().await.unwrap(),
            vec![("a".into(), Ok(record("a")))]
        );
    }

    #[tokio::test]
    async fn a_fifo_is_reported_not_waited_on() {
        use nix::sys::stat::Mode;
        let tmp = tempfile::tempdir().unwrap();
        let store = open_store(tmp.path());
        store.put(&record("a")).await.unwrap();
        nix::unistd::mkfifo(&store.dir().join("f.tvr"), Mode::S_IRWXU).unwrap();
        let all = tokio::time::timeout(std::time::Duration::from_secs(10), store.load_all())
            .await
            .expect("load_all must not block on a FIFO")
            .unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], ("a".into(), Ok(record("a"))));
        assert!(
            matches!(&all[1], (n, Err(RecordError::Io(_))) if n == "f"),
            "{all:?}"
        );
    }

    #[tokio::test]
    async fn refuses_names_that_are_not_connection_names() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open_store(tmp.path());
        for bad in ["../escape", "a/b", ".hidden", "", "-x"] {
            let mut r = record("a");
            r.name = bad.into();
            let err = store.put(&r).await.unwrap_err();
            assert!(matches!(err, StoreError::InvalidName(_)), "{err:?}");
            assert!(matches!(
                store.load(bad).await,
                Err(StoreError::InvalidName(_))
            ));
            assert!(matches!(
                store.remove(bad).await,
                Err(StoreError::InvalidName(_))
            ));
        }
        assert!(!tmp.path().join("escape.tvr").exists());
        assert!(file_names(store.dir()).is_empty());
    }

    #[tokio::test]
    async fn usable_as_a_trait_object() {
        let tmp = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(open_store(tmp.path()));
        store.put(&record("a")).await.unwrap();
        assert_eq!(store.load_all().await.unwrap().len(), 1);
    }
}
