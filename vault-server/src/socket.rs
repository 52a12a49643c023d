//! The daemon's Unix socket: created 0660 inside a 0700 directory, with a
//! stale socket from a dead daemon cleaned up and a live one refused.
//!
//! With a socket group (`serve --socket-group GROUP`), the socket and its
//! directory are handed to that group, and the directory becomes 0710 so
//! the group's members can reach the socket (but not list the directory).
//!
//! Invariant: the socket is never reachable by every local user: its mode
//! never has bits for others, and its directory never lets others in.

use anyhow::{bail, Context};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// The socket file's mode: owner and group may connect, others may not.
pub const SOCKET_MODE: u32 = 0o660;
/// The socket directory's mode.
pub const SOCKET_DIR_MODE: u32 = 0o700;
/// The socket directory's mode with a socket group: its members may
/// traverse it to the socket, but not list it.
pub const SOCKET_GROUP_DIR_MODE: u32 = 0o710;

/// Who may reach the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketAccess {
    /// The socket file's mode; [`SOCKET_MODE`] by default.
    pub mode: u32,
    /// The group the socket and its directory are given to: a name or a
    /// numeric gid. `None` keeps the daemon's group and a 0700 directory.
    pub group: Option<String>,
}

impl Default for SocketAccess {
    fn default() -> Self {
        SocketAccess {
            mode: SOCKET_MODE,
            group: None,
        }
    }
}

/// Parses a socket mode given in octal (`0660`, `660`, `0o660`). Refuses
/// bits for others (every local user could then reach the socket) and bits
/// beyond rwx for owner and group.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.trim();
    let digits = digits.strip_prefix("0o").unwrap_or(digits);
    let mode = u32::from_str_radix(digits, 8)
        .ok()
        .filter(|_| !digits.is_empty() && digits.len() <= 4)
        .ok_or_else(|| format!("`{text}` is not an octal mode like 0660"))?;
    if mode & 0o007 != 0 {
        return Err(format!(
            "mode {mode:04o} would let every local user reach the socket; use 0660 (with \
             --socket-group) or tighter"
        ));
    }
    if mode & !0o770 != 0 {
        return Err(format!(
            "mode {mode:04o} has bits a socket has no use for; use read and write bits for \
             owner and group only, e.g. 0660"
        ));
    }
    if mode & 0o200 == 0 {
        return Err(format!(
            "mode {mode:04o} does not let the daemon's own user connect (admin commands need \
             it); include 0600"
        ));
    }
    Ok(mode)
}

/// Finds a group by name, or takes a numeric gid as it is.
pub fn resolve_group(group: &str) -> anyhow::Result<nix::unistd::Gid> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(nix::unistd::Gid::from_raw(gid));
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => bail!(
            "--socket-group {group}: no such group; create it (groupadd {group}, or the \
             sysusers.d file in dist/) or give a numeric gid"
        ),
        Err(e) => bail!("--socket-group {group}: cannot look the group up: {e}"),
    }
}

/// Binds the listening socket at `path` with the default access: 0660 in
/// a 0700 directory.
pub fn bind(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    bind_with(path, &SocketAccess::default())
}

/// Binds the listening socket at `path`, with `access`'s mode and group.
/// The directory is created if need be; it must belong to the daemon's
/// user, and must not be a shared one such as /tmp.
pub fn bind_with(path: &Path, access: &SocketAccess) -> anyhow::Result<tokio::net::UnixListener> {
    if let Err(e) = parse_mode(&format!("{:o}", access.mode)) {
        bail!("socket mode: {e}");
    }
    let gid = access.group.as_deref().map(resolve_group).transpose()?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .context("the socket path has no directory")?;
    let dir_mode = if gid.is_some() {
        SOCKET_GROUP_DIR_MODE
    } else {
        SOCKET_DIR_MODE
    };
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
    // The directory's mode is about to be set: never that of a shared
    // directory such as /tmp (sticky, or writable by others).
    if meta.mode() & 0o1002 != 0 {
        bail!(
            "the socket directory {} is shared (sticky or writable by others); the socket needs \
             a directory of its own, e.g. {}/token-vault/vault.sock",
            dir.display(),
            dir.display()
        );
    }
    if let Some(gid) = gid {
        nix::unistd::chown(dir, None, Some(gid))
            .map_err(|e| group_error(dir, access.group.as_deref().unwrap_or_default(), e))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode))
        .with_context(|| format!("cannot set the mode of {} to {dir_mode:04o}", dir.display()))?;
    remove_stale(path)?;
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    if let Some(gid) = gid {
        nix::unistd::chown(path, None, Some(gid))
            .map_err(|e| group_error(path, access.group.as_deref().unwrap_or_default(), e))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(access.mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    listener.set_nonblocking(true)?;
    Ok(tokio::net::UnixListener::from_std(listener)?)
}

fn group_error(path: &Path, group: &str, errno: nix::errno::Errno) -> anyhow::Error {
    if errno == nix::errno::Errno::EPERM {
        anyhow::anyhow!(
            "cannot give {} to group {group}: the daemon (uid {}) is not a member of it; add the \
             daemon's user to the group (systemd: SupplementaryGroups={group}) or run as root",
            path.display(),
            nix::unistd::geteuid()
        )
    } else {
        anyhow::anyhow!("cannot give {} to group {group}: {errno}", path.display())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0660"), Ok(0o660));
        assert_eq!(parse_mode("660"), Ok(0o660));
        assert_eq!(parse_mode("0o600"), Ok(0o600));
        assert_eq!(parse_mode("0620"), Ok(0o620));
        for (bad, says) in [
            ("0666", "every local user"),
            ("0662", "every local user"),
            ("4660", "no use for"),
            ("0060", "own user"),
            ("rw", "not an octal mode"),
            ("", "not an octal mode"),
            ("0889", "not an octal mode"),
            ("106600", "not an octal mode"),
        ] {
            let err = parse_mode(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn groups() {
        assert_eq!(resolve_group("4242").unwrap().as_raw(), 4242);
        assert_eq!(resolve_group("root").unwrap().as_raw(), 0);
        let err = resolve_group("no-such-group-here").unwrap_err().to_string();
        assert!(err.contains("no such group"), "{err}");
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[tokio::test]
    async fn default_access_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run").join("vault.sock");
        let _listener = bind(&path).unwrap();
        assert_eq!(mode_of(&path), 0o660);
        assert_eq!(mode_of(path.parent().unwrap()), 0o700);
    }

    #[tokio::test]
    async fn a_socket_group_opens_the_directory_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run").join("vault.sock");
        // The daemon's own group: always allowed, root or not.
        let gid = nix::unistd::getegid();
        let access = SocketAccess {
            mode: 0o640,
            group: Some(gid.as_raw().to_string()),
        };
        let _listener = bind_with(&path, &access).unwrap();
        let (sock, run) = (
            std::fs::metadata(&path).unwrap(),
            std::fs::metadata(path.parent().unwrap()).unwrap(),
        );
        assert_eq!(sock.mode() & 0o7777, 0o640);
        assert_eq!(run.mode() & 0o7777, 0o710);
        assert_eq!((sock.gid(), run.gid()), (gid.as_raw(), gid.as_raw()));
    }

    #[tokio::test]
    async fn refuses_shared_directories_and_open_modes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = bind(&dir.path().join("vault.sock"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is shared"), "{err}");
        assert_eq!(mode_of(dir.path()), 0o1777, "left as it was");

        let access = SocketAccess {
            mode: 0o666,
            group: None,
        };
        let err = bind_with(&dir.path().join("x").join("vault.sock"), &access)
            .unwrap_err()
            .to_string();
        assert!(err.contains("every local user"), "{err}");
    }
}
