//! The vault's recipient key for sealed blobs: an X25519 key pair whose
//! private half lives in `<state dir>/recipient.key` (32 raw bytes, mode
//! 0600, made on first use) and whose public half `token-vault recipient`
//! prints.
//!
//! Why not ring for the key agreement here: ring 0.17 only has
//! `EphemeralPrivateKey`, which cannot be loaded from bytes and is consumed
//! by its one agreement, so it cannot be the vault's long-lived key. The
//! static key agreement uses `x25519-dalek`'s `StaticSecret`; everything
//! else (HKDF-SHA256, ChaCha20-Poly1305, the sealing side's ephemeral key)
//! is ring's, in `shared::sealed`.
//!
//! Invariants: the private key is never printed, logged or sent; it is read
//! only from a regular 32-byte file with no group or other access, and a new
//! one never replaces an existing file.

use shared::sealed::{Recipient, SealError, SealedBlob};
use shared::Secret;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// The file name of the private key in the state directory.
pub const RECIPIENT_KEY_FILE: &str = "recipient.key";
const KEY_LEN: usize = 32;
const TMP_PREFIX: &str = ".recipient.key.tmp-";

/// Why the recipient key cannot be used. Names the file, never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum RecipientError {
    #[error("cannot read the recipient key {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("the recipient key {} has mode {mode:04o}; it must be 0600 with no access for group or others (chmod 600 it)", path.display())]
    Permissions { path: PathBuf, mode: u32 },
    #[error("the recipient key {} is not a regular file of exactly {KEY_LEN} bytes; restore it from a backup, or remove it to make a new one (blobs sealed to the old key can then no longer be opened)", path.display())]
    Malformed { path: PathBuf },
    #[error("cannot create the recipient key {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("this vault has no recipient key yet, so nothing can have been sealed to it: run `token-vault recipient` and seal the blob to the recipient it prints")]
    NoKey,
    #[error("the system's secure random number generator failed")]
    Random,
}

/// Why a sealed import was refused.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Key(#[from] RecipientError),
    #[error(transparent)]
    Sealed(#[from] SealError),
}

/// The vault's recipient key, loaded (or made) on first use.
pub struct RecipientKey {
    path: PathBuf,
    loaded: Mutex<Option<StaticSecret>>,
}

impl RecipientKey {
    pub fn new(state_dir: &Path) -> RecipientKey {
        RecipientKey {
            path: state_dir.join(RECIPIENT_KEY_FILE),
            loaded: Mutex::new(None),
        }
    }

    /// The public recipient, making the key pair if there is none yet.
    pub fn recipient(&self) -> Result<Recipient, RecipientError> {
        let mut slot = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(match read_key(&self.path)? {
                Some(key) => key,
                None => create_key(&self.path)?,
            });
        }
        let secret = slot.as_ref().ok_or(RecipientError::NoKey)?;
        Ok(Recipient::from_public_key(
            PublicKey::from(secret).to_bytes(),
        ))
    }

    /// Opens a sealed blob; the plaintext (a token blob) stays a [`Secret`].
    /// Never makes a key: a vault without one cannot have been sealed to.
    pub fn open(&self, text: &str) -> Result<Secret, OpenError> {
        let sealed = SealedBlob::parse(text)?;
        let mut slot = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(read_key(&self.path)?.ok_or(RecipientError::NoKey)?);
        }
        let secret = slot.as_ref().ok_or(RecipientError::NoKey)?;
        let recipient = Recipient::from_public_key(PublicKey::from(secret).to_bytes());
        let plain = sealed.open(&recipient, |ephemeral| {
            let shared = secret.diffie_hellman(&PublicKey::from(*ephemeral));
            // A low-order ephemeral key gives an all-zero secret: a forgery.
            shared
                .was_contributory()
                .then(|| Zeroizing::new(shared.to_bytes()))
        })?;
        Ok(plain)
    }
}

/// Reads the key; `Ok(None)` if there is no file.
fn read_key(path: &Path) -> Result<Option<StaticSecret>, RecipientError> {
    let read_err = |source| RecipientError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() || meta.len() != KEY_LEN as u64 {
        return Err(RecipientError::Malformed {
            path: path.to_owned(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(RecipientError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    file.read_exact(&mut bytes[..])
        .map_err(|_| RecipientError::Malformed {
            path: path.to_owned(),
        })?;
    Ok(Some(StaticSecret::from(*bytes)))
}

/// Makes a key: temp file 0600, fsync, link without replacing, fsync the
/// directory. If another process made one meanwhile, that one is the key.
fn create_key(path: &Path) -> Result<StaticSecret, RecipientError> {
    use ring::rand::{SecureRandom, SystemRandom};
    let create_err = |source| RecipientError::Create {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    SystemRandom::new()
        .fill(&mut bytes[..])
        .map_err(|_| RecipientError::Random)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(create_err)?;
    tmp.write_all(&bytes[..]).map_err(create_err)?;
    tmp.as_file().sync_all().map_err(create_err)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {}
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
            drop(e);
            return read_key(path)?.ok_or(RecipientError::NoKey);
        }
        Err(e) => return Err(create_err(e.error)),
    }
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(create_err)?;
    tracing::info!(path = %path.display(), "made the recipient key for sealed blobs; back it up with the vault key");
    Ok(StaticSecret::from(*bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOB: &str =
        r#"{"access_token":"AT-r","refresh_token":"RT-r","expiry":"2030-01-01T00:00:00Z"}"#;

    #[test]
    fn made_once_0600_and_opens_what_is_sealed_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let key = RecipientKey::new(dir.path());
        // No key yet: nothing can have been sealed to this vault.
        let other = RecipientKey::new(&dir.path().join("x"));
        std::fs::create_dir(dir.path().join("x")).unwrap();
        let foreign = shared::sealed::seal(BLOB.as_bytes(), &other.recipient().unwrap()).unwrap();
        assert!(matches!(
            key.open(&foreign),
            Err(OpenError::Key(RecipientError::NoKey))
        ));

        let r = key.recipient().unwrap();
        let path = dir.path().join(RECIPIENT_KEY_FILE);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A fresh instance (a restart) reads the same key.
        let again = RecipientKey::new(dir.path());
        assert_eq!(again.recipient().unwrap(), r);

        let sealed = shared::sealed::seal(BLOB.as_bytes(), &r).unwrap();
        assert_eq!(again.open(&sealed).unwrap().expose(), BLOB);
        let err = again.open(&foreign).unwrap_err();
        assert!(err.to_string().contains("another vault"), "{err}");
    }

    #[test]
    fn a_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECIPIENT_KEY_FILE);
        fs::write(&path, [7u8; KEY_LEN]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = RecipientKey::new(dir.path()).recipient().unwrap_err();
        assert!(matches!(err, RecipientError::Permissions { .. }), "{err}");
        fs::write(&path, [7u8; 5]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = RecipientKey::new(dir.path()).recipient().unwrap_err();
        assert!(matches!(err, RecipientError::Malformed { .. }), "{err}");
    }
}
