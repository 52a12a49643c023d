//! The daemon's Unix socket: created 0660 inside a 0700 directory, with a
//! stale socket from a dead daemon cleaned up and a live one refused.

use anyhow::{bail, Context};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// The socket file's mode: owner and group may connect, others may not.
pub const SOCKET_MODE: u32 = 0o660;
/// The socket directory's mode.
pub const SOCKET_DIR_MODE: u32 = 0o700;

/// Binds the listening socket at `path`.
pub fn bind(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .context("the socket path has no directory")?;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(SOCKET_DIR_MODE)
            .create(dir)
            .with_context(|| format!("cannot create the socket directory {}", dir.display()))?;
    }
    let meta = std::fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        bail!(
            "the socket directory {} belongs to another user; choose another place with --socket or TOKEN_VAULT_SOCKET",
            dir.display()
        );
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(SOCKET_DIR_MODE))
        .with_context(|| format!("cannot make {} private (0700)", dir.display()))?;
    remove_stale(path)?;
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    listener.set_nonblocking(true)?;
    Ok(tokio::net::UnixListener::from_std(listener)?)
}

/// Removes a socket file left by a dead daemon; refuses a live one.
fn remove_stale(path: &Path) -> anyhow::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        bail!(
            "{} exists and is not a socket; remove it or choose another --socket",
            path.display()
        );
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => bail!(
            "another token-vault daemon is already serving on {}; stop it first (or use another --socket)",
            path.display()
        ),
        Err(_) => {
            tracing::info!(path = %path.display(), "removing a stale socket from a daemon that is gone");
            std::fs::remove_file(path).with_context(|| format!("cannot remove the stale socket {}", path.display()))
        }
    }
}
