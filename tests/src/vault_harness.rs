//! Runs the real `token-vault` daemon and its client commands for
//! end-to-end tests: a private state directory and socket per test, the
//! daemon's log captured, and every client's stderr kept for the secret
//! sweep.

use crate::fake::FakeProvider;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the daemon may take to come up.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// The client id and secret every vault test registers at its fake.
pub const CLIENT_ID: &str = "vault-test-client";
pub const CLIENT_SECRET: &str = "vault-test-client-secret-0123456789";

/// A running (or stopped) `token-vault serve` with its own directories.
pub struct Vault {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub log_path: PathBuf,
    pub secret_file: PathBuf,
    serve_args: Vec<String>,
    /// The daemon's `TOKEN_VAULT_LOG`, when not the default.
    log_filter: Option<String>,
    child: Option<Child>,
    /// Every client command's stderr, for the secret sweep.
    stderrs: Mutex<Vec<String>>,
}

impl Vault {
    /// Starts a daemon with fast backoff (tests must not wait minutes) and
    /// any `extra` serve flags.
    pub fn start(extra: &[&str]) -> Vault {
        Vault::start_logging(extra, None)
    }

    /// Like [`Vault::start`], with the daemon's log filter
    /// (`TOKEN_VAULT_LOG`) set to `filter` (e.g. `trace`, for the secret sweep).
    pub fn start_with_log(extra: &[&str], filter: &str) -> Vault {
        Vault::start_logging(extra, Some(filter))
    }

    fn start_logging(extra: &[&str], log_filter: Option<&str>) -> Vault {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("run").join("vault.sock");
        let state_dir = dir.path().join("state");
        let log_path = dir.path().join("daemon.log");
        let secret_file = dir.path().join("client-secret");
        std::fs::write(&secret_file, CLIENT_SECRET).expect("write secret file");
        let mut serve_args: Vec<String> = vec![
            "--backoff-min".into(),
            "100ms".into(),
            "--backoff-max".into(),
            "1s".into(),
        ];
        serve_args.extend(extra.iter().map(|s| s.to_string()));
        let mut vault = Vault {
            dir,
            socket,
            state_dir,
            log_path,
            secret_file,
            serve_args,
            log_filter: log_filter.map(str::to_owned),
            child: None,
            stderrs: Mutex::new(Vec::new()),
        };
        vault.spawn();
        vault
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open daemon log");
        let child = Command::new(crate::bins::path("token-vault"))
            .arg("--socket")
            .arg(&self.socket)
            .arg("serve")
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(&self.serve_args)
            .env(
                "TOKEN_VAULT_LOG",
                self.log_filter
                    .as_deref()
                    .unwrap_or("info,vault_server=debug"),
            )
            .env_remove("CREDENTIALS_DIRECTORY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start token-vault serve");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Polls the health endpoint until it answers (or the daemon died).
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok((200, _)) = http(&self.socket, "GET", "/v1/health", None) {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "token-vault serve exited with {status} before it was ready:\n{}",
                        self.log()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "token-vault serve not ready in time:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the daemon with SIGTERM and returns its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        let pid = nix_pid(&child);
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        wait_with_deadline(&mut child, Duration::from_secs(20))
    }

    /// Kills the daemon with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The audit log so far.
    pub fn audit(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("audit.log")).unwrap_or_default()
    }

    /// A client command, e.g. `["list", "--json"]`.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with(args, None, None)
    }

    /// A client command with `stdin` fed, optionally run as another uid.
    pub fn cli_with(&self, args: &[&str], stdin: Option<&str>, uid: Option<u32>) -> Output {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(crate::bins::path("token-vault"));
        cmd.arg("--socket").arg(&self.socket).args(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.env_remove("TOKEN_VAULT_CLIENT_SECRET")
            .env_remove("OAUTH_CLIENT_SECRET");
        if let Some(uid) = uid {
            cmd.uid(uid).gid(uid);
        }
        let mut child = cmd.spawn().expect("run token-vault");
        if let Some(mut input) = child.stdin.take() {
            if let Some(text) = stdin {
                let _ = input.write_all(text.as_bytes());
            }
        }
        let out = child.wait_with_output().expect("token-vault output");
        self.stderrs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(String::from_utf8_lossy(&out.stderr).into_owned());
        out
    }

    /// Imports `blob` as `name` for `fake`'s provider, with all of the
    /// fake's endpoints and the test client's id and secret.
    pub fn import(&self, name: &str, fake: &FakeProvider, blob: &str, extra: &[&str]) -> Output {
        let secret_file = self.secret_file.to_string_lossy().into_owned();
        let endpoints = endpoint_flags(fake);
        let mut args = vec![
            "import",
            name,
            "--provider",
            provider_name(fake.style()),
            "--client-id",
            CLIENT_ID,
            "--client-secret-file",
            &secret_file,
        ];
        args.extend(endpoints.iter().map(String::as_str));
        args.extend_from_slice(extra);
        self.cli_with(&args, Some(blob), None)
    }

    /// `token-vault token NAME`, asserting success; the token.
    pub fn token(&self, name: &str) -> String {
        let out = self.cli(&["token", name]);
        assert!(
            out.status.success(),
            "token {name} failed: {}\n--- daemon log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `status NAME --json` as JSON.
    pub fn status(&self, name: &str) -> serde_json::Value {
        let out = self.cli(&["status", name, "--json"]);
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// Every client command's stderr so far, one after the other.
    pub fn client_stderr(&self) -> String {
        self.stderrs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// Asserts that no secret the fake issued (nor the client secret) is in
    /// the daemon log, the audit log, or any client's stderr so far.
    pub fn assert_no_secrets(&self, fake: &FakeProvider) {
        let stderrs = self
            .stderrs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n");
        let log = self.log();
        let audit = self.audit();
        let mut secrets = fake.issued_secrets();
        secrets.push(CLIENT_SECRET.to_string());
        for secret in secrets {
            for (what, text) in [
                ("daemon log", &log),
                ("audit log", &audit),
                ("client stderr", &stderrs),
            ] {
                assert!(
                    !text.contains(&secret),
                    "a secret leaked into the {what}:\n{text}"
                );
            }
        }
    }
}

impl Drop for Vault {
    fn drop(&mut self) {
        self.kill();
    }
}

fn nix_pid(child: &Child) -> u32 {
    child.id()
}

/// Waits for `child` to exit, killing it after `deadline`.
/// The `token-vault` provider name for a fake's style.
pub fn provider_name(style: crate::fake::Style) -> &'static str {
    match style {
        crate::fake::Style::Box => "box",
        crate::fake::Style::Dropbox => "dropbox",
    }
}

/// The flags that point a connection at every one of `fake`'s endpoints
/// (`import` and `authorize` take the same ones).
pub fn endpoint_flags(fake: &FakeProvider) -> Vec<String> {
    [
        ("--auth-url", fake.auth_url()),
        ("--token-url", fake.token_url()),
        ("--revoke-url", fake.revoke_url()),
        ("--api-url", fake.api_url()),
        ("--upload-url", fake.upload_url()),
    ]
    .into_iter()
    .flat_map(|(flag, url)| [flag.to_owned(), url])
    .collect()
}

pub fn wait_with_deadline(child: &mut Child, deadline: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + deadline;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("process did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A token blob in rclone's form for tokens the fake issued, expiring
/// `expires_in` seconds from now (negative: already expired; then the
/// blob carries no `expires_in`, as an old paste would not).
pub fn blob(access: &str, refresh: Option<&str>, expires_in: i64) -> String {
    let expiry = chrono_like_expiry(expires_in);
    let mut fields = vec![
        format!(r#""access_token":"{access}""#),
        r#""token_type":"bearer""#.to_string(),
    ];
    if let Some(r) = refresh {
        fields.push(format!(r#""refresh_token":"{r}""#));
    }
    fields.push(format!(r#""expiry":"{expiry}""#));
    if expires_in > 0 {
        fields.push(format!(r#""expires_in":{expires_in}"#));
    }
    format!("{{{}}}", fields.join(","))
}

/// now + `secs` as RFC 3339 UTC, without pulling in a time crate.
fn chrono_like_expiry(secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let t = now + secs;
    let (days, rem) = (t.div_euclid(86400), t.rem_euclid(86400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// One HTTP/1.1 request over the vault's socket; (status, body).
pub fn http(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> std::io::Result<(u16, Vec<u8>)> {
    http_with_head(socket, method, path, body).map(|(status, _, body)| (status, body))
}

/// Like [`http`], with the answer's head too (status line and headers, as
/// text); the body is as sent, so only for answers with a Content-Length.
pub fn http_with_head(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: vault\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // A server may answer (413, say) and close before the body is all sent;
    // then the answer is still there to read.
    let sent = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body));
    if let Err(e) = sent {
        if !matches!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ) {
            return Err(e);
        }
    }
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw) {
        if raw.is_empty() {
            return Err(e);
        }
    }
    let text_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..text_end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))?;
    let body = raw.get(text_end + 4..).unwrap_or_default().to_vec();
    Ok((status, head, body))
}
