//! Running the real `oauth-authorize` binary against a [`FakeProvider`],
//! with `fake-browser` playing the user, for `tests/tests/authorize.rs`.
//!
//! Each [`Setup`] owns a fake provider, a temporary folder (client secret
//! file, browser log, outputs) and its own loopback port for the binary's
//! listener, so tests can run in parallel. Children run under a guard
//! ([`Running`]) that kills them if the test fails, and every wait has a
//! deadline; nothing sleeps for a fixed time.
//!
//! Invariant: every run that goes through [`Running::wait`] has had its
//! stderr checked for every secret the fake ever issued (codes, tokens, the
//! client secret) and for the PKCE verifier the binary sent.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use ring::rand::{SecureRandom, SystemRandom};

use crate::bins;
use crate::fake::{FakeProvider, Style};

/// The client id registered at every fake. Not a secret.
pub const CLIENT_ID: &str = "oauth-authorize-test-client";

/// rclone's (and our) default listener port, which tests must not pick.
pub const DEFAULT_PORT: u16 = 53682;

/// How long a run that should succeed (or fail fast) may take. Generous:
/// the real work takes well under a second.
pub const RUN_DEADLINE: Duration = Duration::from_secs(20);

/// How often a wait on a child process looks again.
const POLL: Duration = Duration::from_millis(10);

/// Environment variables that must not leak from the developer's shell into
/// the binary: proxies would send loopback requests elsewhere, and a client
/// secret in the environment would override the test's.
const SCRUBBED_ENV: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "OAUTH_CLIENT_ID",
    "OAUTH_CLIENT_SECRET",
    "FAKE_BROWSER_MODE",
    "FAKE_BROWSER_LOG",
    "FAKE_BROWSER_CAPTURE",
];

/// A loopback port that was free a moment ago, for the binary's listener:
/// never the default port, never one handed out before in this process, and
/// outside the kernel's ephemeral range, so that neither a parallel test's
/// `bind(0)` nor an outgoing connection can take it before the binary binds.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    let (low, high) = ephemeral_range();
    let rng = SystemRandom::new();
    for _ in 0..1000 {
        let mut bytes = [0u8; 2];
        rng.fill(&mut bytes).expect("the system RNG works");
        let port = u16::from_be_bytes(bytes);
        let usable = port >= 1024
            && !(low..=high).contains(&port)
            && port != DEFAULT_PORT
            && !handed_out.contains(&port)
            && TcpListener::bind(("127.0.0.1", port)).is_ok();
        if usable {
            handed_out.insert(port);
            return port;
        }
    }
    // The ephemeral range covers (nearly) everything: take what bind(0) gives.
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("can bind a loopback port")
            .port();
        if port != DEFAULT_PORT && handed_out.insert(port) {
            return port;
        }
    }
}

/// The kernel's ephemeral port range (Linux's default when unreadable).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut it = text.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// The `oauth-authorize` binary, checked to be newer than its sources: `cargo
/// test -p tests` does not rebuild it, and testing a stale binary would
/// prove nothing.
pub fn authorize_binary() -> PathBuf {
    let bin = bins::path("oauth-authorize");
    let built = modified(&bin).expect("the binary has a modification time");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace");
    for sources in [
        "authorize-cli/src",
        "authorize-cli/Cargo.toml",
        "shared/src",
    ] {
        if let Some(newest) = newest_mtime(&workspace.join(sources)) {
            assert!(
                newest <= built,
                "{} is older than {sources}: run `cargo build -p authorize-cli` (or \
                 `cargo test --workspace`) before these tests",
                bin.display()
            );
        }
    }
    bin
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of a file, or of any file under a folder.
fn newest_mtime(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .filter_map(|entry| newest_mtime(&entry.path()))
        .max()
}

/// One test's world: a fake provider with [`CLIENT_ID`] registered for
/// `http://127.0.0.1:PORT/`, a temporary folder, and a port of its own.
pub struct Setup {
    pub fake: FakeProvider,
    pub dir: tempfile::TempDir,
    /// The port the binary's listener is told to use.
    pub port: u16,
    pub client_secret: String,
    pub secret_file: PathBuf,
    /// Where `fake-browser` logs its requests.
    pub browser_log: PathBuf,
}

impl Setup {
    /// A fake of `style` with the client registered for the 127.0.0.1
    /// redirect URI on a fresh port.
    pub fn new(style: Style) -> Setup {
        let port = free_port();
        Self::with_redirects(style, port, &[format!("http://127.0.0.1:{port}/").as_str()])
    }

    /// A fake of `style` with the client registered for exactly
    /// `redirect_uris`; the binary's listener will use `port`.
    pub fn with_redirects(style: Style, port: u16, redirect_uris: &[&str]) -> Setup {
        let fake = FakeProvider::start(style);
        let dir = tempfile::tempdir().expect("a temporary folder");
        // A fresh secret per test, so a leak is attributable.
        let client_secret = format!("client-secret-{port}-{}", std::process::id());
        fake.register_client(CLIENT_ID, &client_secret, redirect_uris);
        let secret_file = dir.path().join("client.secret");
        std::fs::write(&secret_file, format!("{client_secret}\n")).expect("write the secret file");
        let browser_log = dir.path().join("browser.log");
        Setup {
            fake,
            dir,
            port,
            client_secret,
            secret_file,
            browser_log,
        }
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn redirect_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// `oauth-authorize PROVIDER` pointed at the fake, with the client id in
    /// `OAUTH_CLIENT_ID`, the secret in a file, the listener on this setup's
    /// port, and `BROWSER` set to `fake-browser` in `follow` mode. Add
    /// arguments and environment to taste.
    pub fn command(&self, provider: &str) -> Command {
        let mut cmd = Command::new(authorize_binary());
        cmd.arg(provider)
            .arg("--auth-url")
            .arg(self.fake.auth_url())
            .arg("--token-url")
            .arg(self.fake.token_url())
            .arg("--client-secret-file")
            .arg(&self.secret_file)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port));
        for name in SCRUBBED_ENV {
            cmd.env_remove(name);
        }
        cmd.env("NO_PROXY", "127.0.0.1,localhost,::1")
            .env("OAUTH_CLIENT_ID", CLIENT_ID)
            .env("BROWSER", bins::path("fake-browser"))
            .env("FAKE_BROWSER_MODE", "follow")
            .env("FAKE_BROWSER_LOG", &self.browser_log);
        cmd
    }

    /// Starts `cmd` with its output captured and stdin closed.
    pub fn spawn(&self, cmd: Command) -> Running<'_> {
        Running::start(self, cmd, false)
    }

    /// Starts `cmd` with its output captured and stdin a pipe.
    pub fn spawn_with_stdin(&self, cmd: Command) -> Running<'_> {
        Running::start(self, cmd, true)
    }

    /// Runs `cmd` to the end (within [`RUN_DEADLINE`]).
    pub fn run(&self, cmd: Command) -> Outcome {
        self.spawn(cmd).wait(RUN_DEADLINE)
    }

    /// Everything that must never appear on the binary's stderr: whatever
    /// the fake issued (codes, tokens, the client secret) and the secret
    /// fields of the last token request (the PKCE verifier above all).
    pub fn secrets(&self) -> Vec<(String, String)> {
        let mut secrets = vec![("the client secret".to_string(), self.client_secret.clone())];
        for (name, value) in self.fake.last_token_form().unwrap_or_default() {
            if matches!(
                name.as_str(),
                "code" | "code_verifier" | "client_secret" | "refresh_token"
            ) && !value.is_empty()
            {
                secrets.push((format!("the token request's {name}"), value));
            }
        }
        secrets.extend(
            self.fake
                .issued_secrets()
                .into_iter()
                .map(|s| ("a code or token the fake issued".to_string(), s)),
        );
        secrets
    }

    /// Panics if `text` contains any of [`Setup::secrets`]. The panic names
    /// the kind of secret, not its value.
    pub fn assert_no_secrets(&self, text: &str, what: &str) {
        for (kind, secret) in self.secrets() {
            assert!(
                !text.contains(&secret),
                "{what} contains {kind} (starting {:?}):\n{text}",
                &secret[..secret.len().min(8)]
            );
        }
    }

    /// The lines `fake-browser` logged so far.
    pub fn browser_log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.browser_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits until `fake-browser` has logged at least `n` lines. It runs in
    /// the background, so it may log its last request after the binary
    /// exits.
    pub fn wait_for_browser_log(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.browser_log_lines();
            if lines.len() >= n {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "fake-browser logged {} lines within {timeout:?}, expected {n}: {lines:#?}",
                lines.len()
            );
            std::thread::sleep(POLL);
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Panics, showing stderr, unless the run exited 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "expected success, got {}; stdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the run exited non-zero with nothing on stdout.
    pub fn assert_failure(&self) -> &Self {
        assert!(
            !self.status.success() && self.status.code().is_some(),
            "expected a non-zero exit, got {}; stdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        assert_eq!(self.stdout, "", "nothing on stdout after a failure");
        self
    }

    /// Panics unless stderr contains every one of `needles`
    /// (case-insensitively).
    pub fn assert_stderr_mentions(&self, needles: &[&str]) -> &Self {
        let lower = self.stderr.to_lowercase();
        for needle in needles {
            assert!(
                lower.contains(&needle.to_lowercase()),
                "stderr does not mention {needle:?}:\n{}",
                self.stderr
            );
        }
        self
    }
}

/// What a reader thread has collected, and a way to wait for more.
#[derive(Default)]
struct Collected {
    text: Mutex<(String, bool)>,
    grew: Condvar,
}

impl Collected {
    fn reader(self: &Arc<Self>, mut from: impl Read + Send + 'static) -> JoinHandle<()> {
        let me = Arc::clone(self);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = from.read(&mut buf).unwrap_or(0);
                let mut guard = me.text.lock().unwrap_or_else(PoisonError::into_inner);
                if n == 0 {
                    guard.1 = true;
                } else {
                    guard.0.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
                drop(guard);
                me.grew.notify_all();
                if n == 0 {
                    return;
                }
            }
        })
    }

    fn snapshot(&self) -> String {
        self.text
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone()
    }

    /// Waits until the stream ends (or `timeout` passes); returns the text.
    fn wait_closed(&self, timeout: Duration) -> String {
        self.wait_until(timeout, |_| false).0
    }

    /// Waits until the text satisfies `done`, or the stream ends, or the
    /// deadline passes; returns the text and whether `done` held.
    fn wait_until(&self, timeout: Duration, done: impl Fn(&str) -> bool) -> (String, bool) {
        let deadline = Instant::now() + timeout;
        let mut guard = self.text.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if done(&guard.0) {
                return (guard.0.clone(), true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if guard.1 || left.is_zero() {
                return (guard.0.clone(), false);
            }
            guard = self
                .grew
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// A running child. Dropping it (a failed test) kills the child.
pub struct Running<'a> {
    setup: &'a Setup,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Collected>,
    stderr: Arc<Collected>,
    readers: Vec<JoinHandle<()>>,
    finished: bool,
}

impl<'a> Running<'a> {
    fn start(setup: &'a Setup, mut cmd: Command, piped_stdin: bool) -> Running<'a> {
        cmd.stdin(if piped_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdout = Arc::new(Collected::default());
        let stderr = Arc::new(Collected::default());
        let readers = vec![
            stdout.reader(child.stdout.take().expect("piped stdout")),
            stderr.reader(child.stderr.take().expect("piped stderr")),
        ];
        Running {
            setup,
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            readers,
            finished: false,
        }
    }

    /// Waits until stderr contains `needle`; returns all of stderr so far.
    /// Panics if the child ends or the deadline passes first.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> String {
        let (text, found) = self.stderr.wait_until(timeout, |t| t.contains(needle));
        assert!(
            found,
            "stderr did not show {needle:?} within {timeout:?}:\n{text}"
        );
        text
    }

    /// Waits until stdout contains `needle`; returns all of stdout so far.
    /// Panics if the child ends or the deadline passes first.
    pub fn wait_for_stdout(&self, needle: &str, timeout: Duration) -> String {
        let (text, found) = self.stdout.wait_until(timeout, |t| t.contains(needle));
        assert!(
            found,
            "stdout did not show {needle:?} within {timeout:?}:\n{text}\nstderr:\n{}",
            self.stderr.snapshot()
        );
        text
    }

    /// Closes the child's stdin (end of input).
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Writes one line to the child's stdin.
    pub fn write_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("started with spawn_with_stdin");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .expect("write to the child's stdin");
    }

    /// Waits for the child to exit and its output to end, and checks stderr
    /// for secrets. Panics (killing the child) after `timeout`.
    pub fn wait(self, timeout: Duration) -> Outcome {
        let setup = self.setup;
        let outcome = self.wait_unchecked(timeout);
        setup.assert_no_secrets(&outcome.stderr, "the child's stderr");
        outcome
    }

    /// [`Running::wait`] without the secret check, for children that are not
    /// ours (rclone).
    pub fn wait_unchecked(mut self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait on the child") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the child did not exit within {timeout:?}; stdout:\n{}\nstderr:\n{}",
                    self.stdout.snapshot(),
                    self.stderr.snapshot()
                );
            }
            std::thread::sleep(POLL);
        };
        self.finished = true;
        drop(self.stdin.take());
        // The pipes close when the child exits, unless a grandchild (the
        // background browser) kept them; webbrowser gives it null stdio, but
        // do not wait forever on that assumption.
        let grace = Duration::from_secs(5);
        let stdout = self.stdout.wait_closed(grace);
        let stderr = self.stderr.wait_closed(grace);
        for reader in self.readers.drain(..) {
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
        Outcome {
            status,
            stdout,
            stderr,
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
