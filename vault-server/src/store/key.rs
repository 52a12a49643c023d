//! The vault key: 32 random bytes that seal every record.
//!
//! Invariants: the key bytes are never printed (`Debug` redacts, errors
//! name only the file), are zeroed when the [`VaultKey`] drops, and are only
//! read from a regular file of exactly 32 bytes that neither group nor
//! others can access. A generated key never replaces an existing key file.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroize;

use super::{create_private_dir, sync_dir};

/// The size of a vault key in bytes (AES-256).
pub const KEY_LEN: usize = 32;
/// The name of the key among systemd credentials (`$CREDENTIALS_DIRECTORY`).
pub const CREDENTIAL_NAME: &str = "token-vault.key";
/// The name of the key file in the state directory.
pub const KEY_FILE_NAME: &str = "vault.key";
/// The prefix of the temporary file a new key is written to before it is renamed.
const KEY_TMP_PREFIX: &str = ".vault.key.tmp-";

/// The vault key. Zeroed on drop; `Debug` prints a redaction.
pub struct VaultKey {
    // Boxed so that moving a `VaultKey` moves a pointer, not copies of the key.
    bytes: Box<[u8; KEY_LEN]>,
}

impl VaultKey {
    /// A key from bytes obtained elsewhere (tests, another backend). The
    /// caller's copy of `bytes` is the caller's to zero.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> VaultKey {
        VaultKey {
            bytes: Box::new(bytes),
        }
    }

    /// A new random key from the system's secure random generator.
    pub fn generate() -> Result<VaultKey, KeyError> {
        let mut key = VaultKey {
            bytes: Box::new([0; KEY_LEN]),
        };
        SystemRandom::new()
            .fill(&mut key.bytes[..])
            .map_err(|_| KeyError::Random)?;
        Ok(key)
    }

    /// The key bytes. Every caller is a place where the key leaves this type.
    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }
}

impl Drop for VaultKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VaultKey([redacted])")
    }
}

/// Where the vault key came from, for the startup log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `--key-file PATH`.
    KeyFile(PathBuf),
    /// `$CREDENTIALS_DIRECTORY/token-vault.key` (systemd `LoadCredential=`).
    Credential(PathBuf),
    /// None existed: a new key was generated and written here. The operator
    /// should back it up; without it the store cannot be read.
    Generated(PathBuf),
    /// The existing `<state_dir>/vault.key`.
    StateDir(PathBuf),
}

impl KeySource {
    /// The key file's path.
    pub fn path(&self) -> &Path {
        match self {
            KeySource::KeyFile(p)
            | KeySource::Credential(p)
            | KeySource::Generated(p)
            | KeySource::StateDir(p) => p,
        }
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::KeyFile(p) => write!(f, "--key-file {}", p.display()),
            KeySource::Credential(p) => write!(f, "systemd credential {}", p.display()),
            KeySource::Generated(p) => write!(f, "new key generated at {}", p.display()),
            KeySource::StateDir(p) => write!(f, "key file {}", p.display()),
        }
    }
}

/// Why the vault key could not be loaded or created. Names the file and the
/// fix; never contains key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the vault key file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "the vault key file {} is not a regular file; it must be a file holding exactly \
         {KEY_LEN} raw random bytes",
        path.display()
    )]
    NotAFile { path: PathBuf },
    #[error(
        "the vault key file {} has mode {mode:04o}, so other users may read it; it must be \
         0600 (or 0400), with no access for group or others. Fix: chmod 600 {}",
        path.display(),
        shell_quote(path)
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error(
        "the vault key file {} is {len} bytes, but a vault key is exactly {KEY_LEN} raw bytes \
         (not hex or base64 text). If this file once held the key your connections were \
         stored with, restore that file; otherwise create a new key with: \
         head -c {KEY_LEN} /dev/urandom > {q} && chmod 600 {q}",
        path.display(),
        q = shell_quote(path)
    )]
    WrongSize { path: PathBuf, len: u64 },
    #[error("cannot create a new vault key at {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("the system's secure random number generator failed")]
    Random,
}

/// Loads the vault key. The first that applies wins:
///
/// 1. `key_file` (`--key-file`), which must exist;
/// 2. `<credentials_dir>/token-vault.key`, if `credentials_dir`
///    (`$CREDENTIALS_DIRECTORY`) is given and the file exists;
/// 3. `<state_dir>/vault.key`, if it exists;
/// 4. a new random key, written atomically to `<state_dir>/vault.key` with
///    mode 0600 (creating `state_dir` with mode 0700 if needed).
///
/// A key file must be a regular file of exactly [`KEY_LEN`] bytes with no
/// group or other permission bits; anything else is refused, never replaced.
pub fn load_key(
    key_file: Option<&Path>,
    credentials_dir: Option<&Path>,
    state_dir: &Path,
) -> Result<(VaultKey, KeySource), KeyError> {
    if let Some(path) = key_file {
        return match read_key_file(path, 0o077)? {
            Some(key) => Ok((key, KeySource::KeyFile(path.to_owned()))),
            None => Err(KeyError::Read {
                path: path.to_owned(),
                source: io::Error::new(io::ErrorKind::NotFound, "no such file"),
            }),
        };
    }
    if let Some(dir) = credentials_dir {
        let path = dir.join(CREDENTIAL_NAME);
        // systemd grants the service's user read access to a credential
        // (mode 0400) with an ACL where the file system has them, and an ACL
        // shows as group bits (0440): the credentials directory is the
        // service's alone, so only bits for others are refused there.
        if let Some(key) = read_key_file(&path, 0o007)? {
            return Ok((key, KeySource::Credential(path)));
        }
    }
    let path = state_dir.join(KEY_FILE_NAME);
    if let Some(key) = read_key_file(&path, 0o077)? {
        return Ok((key, KeySource::StateDir(path)));
    }
    generate_key_file(state_dir, path)
}

/// Reads a key file; `Ok(None)` when there is no file at `path`. A mode
/// with any of the `forbidden` bits is refused.
fn read_key_file(path: &Path, forbidden: u32) -> Result<Option<VaultKey>, KeyError> {
    let read_err = |source| KeyError::Read {
        path: path.to_owned(),
        source,
    };
    // O_NONBLOCK: a FIFO at the path must not hang the daemon before the
    // file-type check below. It has no effect on regular files.
    let mut file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    // Check the file that was opened, not the path, so nothing can be
    // swapped in between the check and the read.
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(KeyError::NotAFile {
            path: path.to_owned(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & forbidden != 0 {
        return Err(KeyError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    if meta.len() != KEY_LEN as u64 {
        return Err(KeyError::WrongSize {
            path: path.to_owned(),
            len: meta.len(),
        });
    }
    let mut key = VaultKey {
        bytes: Box::new([0; KEY_LEN]),
    };
    let wrong_size = |file: &File| KeyError::WrongSize {
        path: path.to_owned(),
        len: file.metadata().map(|m| m.len()).unwrap_or(0),
    };
    match file.read_exact(&mut key.bytes[..]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(wrong_size(&file)),
        Err(e) => return Err(read_err(e)),
    }
    // The file may have grown since the size check.
    let mut extra = [0u8; 1];
    match file.read(&mut extra) {
        Ok(0) => Ok(Some(key)),
        Ok(_) => {
            extra.zeroize();
            Err(wrong_size(&file))
        }
        Err(e) => Err(read_err(e)),
    }
}

/// Generates a key and writes it to `path` (in `state_dir`): temp file with
/// mode 0600, fsync, rename without replacing, fsync the directory. If
/// another process created `path` meanwhile, that key is loaded instead.
fn generate_key_file(state_dir: &Path, path: PathBuf) -> Result<(VaultKey, KeySource), KeyError> {
    let create_err = |source| KeyError::Create {
        path: path.clone(),
        source,
    };
    create_private_dir(state_dir).map_err(create_err)?;
    remove_leftover_temp_files(state_dir);

    let key = VaultKey::generate()?;
    let mut tmp = tempfile::Builder::new()
        .prefix(KEY_TMP_PREFIX)
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(state_dir)
        .map_err(create_err)?;
    tmp.write_all(key.expose()).map_err(create_err)?;
    tmp.as_file().sync_all().map_err(create_err)?;
    match tmp.persist_noclobber(&path) {
        Ok(_) => {}
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
            // Another process won the race; its key is the key. Dropping
            // `e` deletes our temp file.
            drop(e);
            return match read_key_file(&path, 0o077)? {
                Some(existing) => Ok((existing, KeySource::StateDir(path))),
                None => Err(create_err(io::Error::from(io::ErrorKind::AlreadyExists))),
            };
        }
        Err(e) => return Err(create_err(e.error)),
    }
    sync_dir(state_dir).map_err(create_err)?;
    Ok((key, KeySource::Generated(path)))
}

/// Removes temp files a crash left while writing a new key. Best effort.
fn remove_leftover_temp_files(state_dir: &Path) {
    let Ok(entries) = fs::read_dir(state_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(KEY_TMP_PREFIX))
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// `path` as one shell word, for commands in messages.
fn shell_quote(path: &Path) -> String {
    let s = path.to_string_lossy();
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:,=@%".contains(&b))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write_key(path: &Path, bytes: &[u8], mode: u32) {
        fs::write(path, bytes).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn generates_once_then_reuses() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");

        let (first, source) = load_key(None, None, &state).unwrap();
        let key_path = state.join(KEY_FILE_NAME);
        assert_eq!(source, KeySource::Generated(key_path.clone()));
        assert_eq!(mode_of(&key_path), 0o600);
        assert_eq!(mode_of(&state), 0o700);
        assert_eq!(fs::read(&key_path).unwrap(), first.expose());
        assert_eq!(
            fs::read_dir(&state).unwrap().count(),
            1,
            "no temp file left"
        );

        let (second, source) = load_key(None, None, &state).unwrap();
        assert_eq!(source, KeySource::StateDir(key_path));
        assert_eq!(first.expose(), second.expose());
    }

    #[test]
    fn generated_keys_differ() {
        let a = VaultKey::generate().unwrap();
        let b = VaultKey::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn refuses_wrong_size_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("short.key");
        write_key(&path, &[7; 31], 0o600);
        let err = load_key(Some(&path), None, tmp.path()).unwrap_err();
        assert!(
            matches!(err, KeyError::WrongSize { len: 31, .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(
            msg.contains("31 bytes") && msg.contains("exactly 32"),
            "{msg}"
        );
        assert!(msg.contains("head -c 32 /dev/urandom"), "{msg}");

        write_key(&path, &[7; 33], 0o600);
        let err = load_key(Some(&path), None, tmp.path()).unwrap_err();
        assert!(
            matches!(err, KeyError::WrongSize { len: 33, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn refuses_loose_mode_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("open.key");
        write_key(&path, &[7; 32], 0o644);
        let err = load_key(Some(&path), None, tmp.path()).unwrap_err();
        assert!(
            matches!(err, KeyError::Permissions { mode: 0o644, .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("0644") && msg.contains("chmod 600"), "{msg}");

        // In the state dir too: an existing bad key is refused, never replaced.
        let state_key = tmp.path().join(KEY_FILE_NAME);
        write_key(&state_key, &[7; 32], 0o640);
        let err = load_key(None, None, tmp.path()).unwrap_err();
        assert!(matches!(err, KeyError::Permissions { .. }), "{err:?}");
        assert_eq!(fs::read(&state_key).unwrap(), [7; 32]);
    }

    #[test]
    fn accepts_0400() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ro.key");
        write_key(&path, &[9; 32], 0o400);
        let (key, source) = load_key(Some(&path), None, tmp.path()).unwrap();
        assert_eq!(key.expose(), &[9; 32]);
        assert_eq!(source, KeySource::KeyFile(path));
    }

    #[test]
    fn refuses_a_directory_and_a_missing_key_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dir.key");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let err = load_key(Some(&dir), None, tmp.path()).unwrap_err();
        assert!(matches!(err, KeyError::NotAFile { .. }), "{err:?}");

        let missing = tmp.path().join("missing.key");
        let err = load_key(Some(&missing), None, tmp.path()).unwrap_err();
        assert!(matches!(err, KeyError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains("missing.key"), "{err}");
        assert!(!tmp.path().join(KEY_FILE_NAME).exists(), "no key generated");
    }

    #[test]
    fn a_fifo_is_refused_not_waited_on() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("fifo.key");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = load_key(Some(&fifo), None, tmp.path()).unwrap_err();
        assert!(matches!(err, KeyError::NotAFile { .. }), "{err:?}");
    }

    #[test]
    fn precedence_key_file_then_credential_then_state_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let key_file = tmp.path().join("explicit.key");
        let creds = tmp.path().join("creds");
        let state = tmp.path().join("state");
        fs::create_dir(&creds).unwrap();
        fs::create_dir(&state).unwrap();
        write_key(&key_file, &[1; 32], 0o600);
        write_key(&creds.join(CREDENTIAL_NAME), &[2; 32], 0o400);
        write_key(&state.join(KEY_FILE_NAME), &[3; 32], 0o600);

        let (key, source) = load_key(Some(&key_file), Some(&creds), &state).unwrap();
        assert_eq!((key.expose()[0], source), (1, KeySource::KeyFile(key_file)));

        let (key, source) = load_key(None, Some(&creds), &state).unwrap();
        let cred = creds.join(CREDENTIAL_NAME);
        assert_eq!(
            (key.expose()[0], source),
            (2, KeySource::Credential(cred.clone()))
        );
        // A credential readable through an ACL (newer systemd) shows 0440:
        // accepted; bits for others never are.
        fs::set_permissions(&cred, fs::Permissions::from_mode(0o440)).unwrap();
        assert!(load_key(None, Some(&creds), &state).is_ok());
        fs::set_permissions(&cred, fs::Permissions::from_mode(0o404)).unwrap();
        assert!(matches!(
            load_key(None, Some(&creds), &state).unwrap_err(),
            KeyError::Permissions { mode: 0o404, .. }
        ));
        fs::set_permissions(&cred, fs::Permissions::from_mode(0o400)).unwrap();

        let (key, source) = load_key(None, None, &state).unwrap();
        let own = state.join(KEY_FILE_NAME);
        assert_eq!(
            (key.expose()[0], source),
            (3, KeySource::StateDir(own.clone()))
        );

        // A credentials directory without our credential falls through.
        let empty = tmp.path().join("empty-creds");
        fs::create_dir(&empty).unwrap();
        let (key, source) = load_key(None, Some(&empty), &state).unwrap();
        assert_eq!((key.expose()[0], source), (3, KeySource::StateDir(own)));
    }

    #[test]
    fn cleans_leftover_temp_files_when_generating() {
        let tmp = tempfile::tempdir().unwrap();
        let leftover = tmp.path().join(format!("{KEY_TMP_PREFIX}abc123"));
        fs::write(&leftover, [5; 32]).unwrap();
        load_key(None, None, tmp.path()).unwrap();
        assert!(!leftover.exists());
    }

    #[test]
    fn debug_and_source_display_print_no_key() {
        let key = VaultKey::from_bytes([0xAB; 32]);
        let printed = format!("{key:?} {key:#?}");
        assert!(!printed.to_lowercase().contains("ab, "), "{printed}");
        assert!(!printed.contains("171"), "{printed}");
        assert!(printed.contains("redacted"));

        let p = PathBuf::from("/x");
        assert_eq!(KeySource::KeyFile(p.clone()).to_string(), "--key-file /x");
        assert_eq!(
            KeySource::Credential(p.clone()).to_string(),
            "systemd credential /x"
        );
        assert_eq!(
            KeySource::Generated(p.clone()).to_string(),
            "new key generated at /x"
        );
        assert_eq!(KeySource::StateDir(p).to_string(), "key file /x");
    }

    #[test]
    fn quotes_paths_with_spaces_in_the_fix() {
        let err = KeyError::WrongSize {
            path: PathBuf::from("/my dir/it's.key"),
            len: 3,
        };
        let msg = err.to_string();
        assert!(
            msg.contains(r"> '/my dir/it'\''s.key' && chmod 600 '/my dir/it'\''s.key'"),
            "{msg}"
        );
    }
}
