//! A release `token-vault serve` in a temporary directory, for the bench:
//! its own state directory, socket, key and log, killed when dropped.

use crate::fake::FakeProvider;
use crate::vault_harness::{endpoint_flags, http, provider_name, CLIENT_ID, CLIENT_SECRET};
use anyhow::{bail, Context};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the daemon may take to answer its health check.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// A running daemon.
pub struct Daemon {
    bin: PathBuf,
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub log_path: PathBuf,
    secret_file: PathBuf,
    child: Child,
}

impl Daemon {
    /// Starts `bin serve` with the default flags (as an operator would run
    /// it, at the default log level) and waits until it answers.
    pub fn start(bin: &Path) -> anyhow::Result<Daemon> {
        Daemon::start_with(bin, &[])
    }

    /// [`start`](Self::start) with `serve_args` added after `serve`.
    pub fn start_with(bin: &Path, serve_args: &[&str]) -> anyhow::Result<Daemon> {
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        let socket = dir.path().join("run").join("vault.sock");
        let state_dir = dir.path().join("state");
        let log_path = dir.path().join("daemon.log");
        let secret_file = dir.path().join("client-secret");
        std::fs::write(&secret_file, CLIENT_SECRET)?;
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(bin)
            .arg("--socket")
            .arg(&socket)
            .arg("serve")
            .arg("--state-dir")
            .arg(&state_dir)
            .args(serve_args)
            .env_remove("TOKEN_VAULT_LOG")
            .env_remove("CREDENTIALS_DIRECTORY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut daemon = Daemon {
            bin: bin.to_path_buf(),
            _dir: dir,
            socket,
            state_dir,
            log_path,
            secret_file,
            child,
        };
        daemon.wait_ready()?;
        Ok(daemon)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_DEADLINE;
        while Instant::now() < deadline {
            if let Ok((200, _)) = http(&self.socket, "GET", "/v1/health", None) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("token-vault serve exited with {status}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!("token-vault serve did not answer in time:\n{}", self.log())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// How many lines the audit log holds so far.
    pub fn audit_lines(&self) -> usize {
        std::fs::read(self.state_dir.join("audit.log"))
            .map(|b| b.iter().filter(|&&c| c == b'\n').count())
            .unwrap_or(0)
    }

    /// `token-vault import NAME` of `blob` for the Box-style `fake`, as a
    /// user would run it; fails with the command's stderr.
    pub fn import(&self, name: &str, fake: &FakeProvider, blob: &str) -> anyhow::Result<()> {
        let mut child = Command::new(&self.bin)
            .arg("--socket")
            .arg(&self.socket)
            .args(["import", name, "--provider", provider_name(fake.style())])
            .args(["--client-id", CLIENT_ID])
            .arg("--client-secret-file")
            .arg(&self.secret_file)
            .args(endpoint_flags(fake))
            .env_remove("TOKEN_VAULT_CLIENT_SECRET")
            .env_remove("OAUTH_CLIENT_SECRET")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run token-vault import")?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(blob.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "token-vault import {name} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
