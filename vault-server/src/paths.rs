//! Where `token-vault` looks for its socket, its state and its systemd
//! credentials when the command line does not say.
//!
//! Invariant: each public function reads the process environment once and
//! hands it to a pure `*_from` function, so the precedence is unit-tested
//! without touching the environment.

use anyhow::{bail, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The socket's file name inside its directory.
pub const SOCKET_FILE: &str = "vault.sock";
/// The directory under the XDG base directories and /run, /var/lib.
pub const APP_DIR: &str = "token-vault";

/// The socket path when neither `--socket` nor the command line gives one:
/// `$TOKEN_VAULT_SOCKET`, then `$XDG_RUNTIME_DIR/token-vault/vault.sock`,
/// then `/run/token-vault/vault.sock` for root, else
/// `/tmp/token-vault-<uid>/vault.sock`.
pub fn default_socket() -> Result<PathBuf> {
    Ok(socket_from(
        env_nonempty("TOKEN_VAULT_SOCKET"),
        env_nonempty("XDG_RUNTIME_DIR"),
        effective_uid(),
    ))
}

/// The precedence of [`default_socket`], given the environment's values.
/// A relative `XDG_RUNTIME_DIR` is ignored, as the XDG spec says.
pub fn socket_from(
    explicit: Option<OsString>,
    xdg_runtime_dir: Option<OsString>,
    uid: u32,
) -> PathBuf {
    if let Some(path) = explicit.filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    if let Some(dir) = absolute(xdg_runtime_dir) {
        return dir.join(APP_DIR).join(SOCKET_FILE);
    }
    if uid == 0 {
        return Path::new("/run").join(APP_DIR).join(SOCKET_FILE);
    }
    PathBuf::from(format!("/tmp/{APP_DIR}-{uid}")).join(SOCKET_FILE)
}

/// The daemon's state directory when `--state-dir` is not given:
/// `$STATE_DIRECTORY` (set by systemd's `StateDirectory=`; the first entry
/// if it lists several), then `/var/lib/token-vault` for root, else
/// `$XDG_STATE_HOME/token-vault`, else `$HOME/.local/state/token-vault`.
pub fn default_state_dir() -> Result<PathBuf> {
    state_dir_from(
        env_nonempty("STATE_DIRECTORY"),
        effective_uid(),
        env_nonempty("XDG_STATE_HOME"),
        env_nonempty("HOME"),
    )
}

/// The precedence of [`default_state_dir`], given the environment's values.
pub fn state_dir_from(
    state_directory: Option<OsString>,
    uid: u32,
    xdg_state_home: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf> {
    if let Some(list) = state_directory {
        // systemd joins several StateDirectory= entries with ':'.
        let first = list
            .to_string_lossy()
            .split(':')
            .find(|s| !s.is_empty())
            .map(PathBuf::from);
        if let Some(dir) = first {
            return Ok(dir);
        }
    }
    if uid == 0 {
        return Ok(Path::new("/var/lib").join(APP_DIR));
    }
    if let Some(dir) = absolute(xdg_state_home) {
        return Ok(dir.join(APP_DIR));
    }
    if let Some(home) = absolute(home) {
        return Ok(home.join(".local/state").join(APP_DIR));
    }
    bail!(
        "cannot choose a state directory: none of STATE_DIRECTORY, XDG_STATE_HOME or HOME is set \
         to an absolute path; pass --state-dir DIR"
    )
}

/// systemd's `$CREDENTIALS_DIRECTORY` (from `LoadCredential=`), if set.
pub fn credentials_dir() -> Option<PathBuf> {
    credentials_dir_from(env_nonempty("CREDENTIALS_DIRECTORY"))
}

/// [`credentials_dir`], given the environment's value.
pub fn credentials_dir_from(value: Option<OsString>) -> Option<PathBuf> {
    value.filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// The effective uid of this process.
pub fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn env_nonempty(key: &str) -> Option<OsString> {
    std::env::var_os(key).filter(|v| !v.is_empty())
}

fn absolute(value: Option<OsString>) -> Option<PathBuf> {
    value.map(PathBuf::from).filter(|p| p.is_absolute())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<OsString> {
        Some(OsString::from(s))
    }

    #[test]
    fn socket_precedence() {
        assert_eq!(
            socket_from(os("/x/s.sock"), os("/run/user/1000"), 1000),
            PathBuf::from("/x/s.sock")
        );
        assert_eq!(
            socket_from(None, os("/run/user/1000"), 1000),
            PathBuf::from("/run/user/1000/token-vault/vault.sock")
        );
        assert_eq!(
            socket_from(None, os("/run/user/0"), 0),
            PathBuf::from("/run/user/0/token-vault/vault.sock")
        );
        assert_eq!(
            socket_from(None, None, 0),
            PathBuf::from("/run/token-vault/vault.sock")
        );
        assert_eq!(
            socket_from(None, None, 1000),
            PathBuf::from("/tmp/token-vault-1000/vault.sock")
        );
        // Empty and relative values do not count.
        assert_eq!(
            socket_from(os(""), os("relative"), 1000),
            PathBuf::from("/tmp/token-vault-1000/vault.sock")
        );
    }

    #[test]
    fn state_dir_precedence() {
        let home = os("/home/ann");
        assert_eq!(
            state_dir_from(
                os("/var/lib/token-vault:/var/lib/other"),
                1000,
                os("/x"),
                home.clone()
            )
            .unwrap(),
            PathBuf::from("/var/lib/token-vault")
        );
        assert_eq!(
            state_dir_from(None, 0, os("/x"), home.clone()).unwrap(),
            PathBuf::from("/var/lib/token-vault")
        );
        assert_eq!(
            state_dir_from(None, 1000, os("/home/ann/.st"), home.clone()).unwrap(),
            PathBuf::from("/home/ann/.st/token-vault")
        );
        assert_eq!(
            state_dir_from(None, 1000, None, home.clone()).unwrap(),
            PathBuf::from("/home/ann/.local/state/token-vault")
        );
        assert_eq!(
            state_dir_from(os(":"), 1000, os("rel"), home).unwrap(),
            PathBuf::from("/home/ann/.local/state/token-vault")
        );
        let err = state_dir_from(None, 1000, None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--state-dir"), "{err}");
    }

    #[test]
    fn credentials() {
        assert_eq!(credentials_dir_from(None), None);
        assert_eq!(credentials_dir_from(os("")), None);
        assert_eq!(
            credentials_dir_from(os("/run/credentials/token-vault.service")),
            Some(PathBuf::from("/run/credentials/token-vault.service"))
        );
    }
}
