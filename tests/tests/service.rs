//! Running `token-vault` as a service: systemd readiness (`Type=notify`)
//! with a test standing in for `NOTIFY_SOCKET`, the unit file checked by
//! `systemd-analyze verify`, the socket group, `exec`, the completion
//! scripts, and the checked-in man pages.

use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tests::fake::{FakeProvider, Style};
use tests::vault_harness::{blob, http, wait_with_deadline, Vault, CLIENT_ID, CLIENT_SECRET};

/// How long the daemon may take to say it is ready.
const READY_DEADLINE: Duration = Duration::from_secs(20);

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(out.status.success(), "command failed: {}", stderr(out));
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn own_gid() -> u32 {
    std::fs::metadata("/proc/self").expect("/proc/self").gid()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

fn fake() -> FakeProvider {
    let fake = FakeProvider::start(Style::Box);
    fake.register_client(CLIENT_ID, CLIENT_SECRET, &["http://127.0.0.1:53682/"]);
    fake
}

/// A daemon started by hand (not through the harness, which polls the
/// socket itself); killed on drop.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Receives notifications on `sock` until one holds `wanted`; all of
/// them, in order. Fails after [`READY_DEADLINE`] or if the daemon exits.
fn receive_until(sock: &UnixDatagram, daemon: &mut Daemon, wanted: &str) -> Vec<String> {
    let deadline = Instant::now() + READY_DEADLINE;
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = message.lines().any(|l| l == wanted);
                messages.push(message);
                if done {
                    return messages;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("reading the notify socket: {e}"),
        }
        if let Ok(Some(status)) = daemon.child.try_wait() {
            panic!(
                "the daemon exited with {status} before sending {wanted}; got {messages:?}\n{}",
                daemon.log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no {wanted} within {READY_DEADLINE:?}; got {messages:?}\n{}",
            daemon.log()
        );
    }
}

#[test]
fn readiness_is_notified_once_the_socket_listens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind the stand-in NOTIFY_SOCKET");
    let socket = dir.path().join("run").join("vault.sock");
    let log = dir.path().join("daemon.log");
    let child = Command::new(tests::bins::path("token-vault"))
        .arg("--socket")
        .arg(&socket)
        .arg("serve")
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("NOTIFY_SOCKET", &notify_path)
        .env("TOKEN_VAULT_LOG", "debug")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("TOKEN_VAULT_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start token-vault serve");
    let mut daemon = Daemon { child, log };

    let messages = receive_until(&notify, &mut daemon, "READY=1");
    // Ready means ready: the socket takes a connection at once, no retry.
    UnixStream::connect(&socket).expect("the socket is listening when READY=1 arrives");
    let (status, _) = http(&socket, "GET", "/v1/health", None).expect("health");
    assert_eq!(status, 200);
    assert_eq!(
        messages.len(),
        1,
        "READY=1 is the first message: {messages:?}"
    );
    assert!(
        messages[0].lines().any(|l| l.starts_with("STATUS=")),
        "{messages:?}"
    );
    // Without a socket group: 0660 in a 0700 directory.
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").mode() & 0o7777;
    assert_eq!(mode(&socket), 0o660);
    assert_eq!(mode(socket.parent().expect("dir")), 0o700);

    // SIGTERM: STOPPING=1, then a clean exit.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(daemon.child.id().to_string())
        .status();
    receive_until(&notify, &mut daemon, "STOPPING=1");
    let status = wait_with_deadline(&mut daemon.child, Duration::from_secs(20));
    assert!(status.success(), "{status}\n{}", daemon.log());
}

/// The unit file as shipped.
fn unit_text() -> String {
    std::fs::read_to_string(workspace().join("dist/systemd/token-vault.service"))
        .expect("dist/systemd/token-vault.service")
}

#[test]
fn unit_file_has_what_the_daemon_needs() {
    let unit = unit_text();
    for line in [
        "Type=notify",
        "StateDirectory=token-vault",
        "RuntimeDirectory=token-vault",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "MemoryDenyWriteExecute=yes",
        "LockPersonality=yes",
        "RestrictRealtime=yes",
        "SystemCallArchitectures=native",
        "ProtectKernelTunables=yes",
        "CapabilityBoundingSet=",
        "SupplementaryGroups=token-vault-clients",
        "#LoadCredentialEncrypted=token-vault.key:/etc/credstore.encrypted/token-vault.key",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks `{line}`");
    }
    // Under PrivateUsers= every peer would be "nobody": the ACLs go by uid.
    assert!(!unit.lines().any(|l| l.starts_with("PrivateUsers=")));
    // Nor ProtectProc=invisible: a caller's supplementary groups come from
    // /proc/PID/status, which would then be hidden.
    assert!(!unit.lines().any(|l| l.starts_with("ProtectProc=")));

    // Every ExecStart= parses with the real binary: `--help` after the
    // arguments makes clap check them and stop.
    let execs: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.trim_start_matches('#').strip_prefix("ExecStart="))
        .collect();
    assert!(!execs.is_empty());
    for exec in execs {
        let mut words = exec.split_whitespace();
        assert_eq!(words.next(), Some("/usr/local/bin/token-vault"), "{exec}");
        let out = Command::new(tests::bins::path("token-vault"))
            .args(words)
            .arg("--help")
            .output()
            .expect("run token-vault");
        assert_ok(&out);
    }
}

#[test]
fn unit_file_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        if std::env::var("TOKEN_VAULT_SKIP_SYSTEMD").as_deref() == Ok("1") {
            eprintln!("skipped: systemd-analyze is not installed (TOKEN_VAULT_SKIP_SYSTEMD=1)");
            return;
        }
        panic!(
            "systemd-analyze is not installed: install Debian's `systemd` package \
             (scripts/test does), or set TOKEN_VAULT_SKIP_SYSTEMD=1 to skip this test"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // The unit's binary path must exist: point it at the one just built.
    let binary = tests::bins::path("token-vault");
    let unit = unit_text().replace(
        "/usr/local/bin/token-vault",
        binary.to_str().expect("UTF-8 path"),
    );
    let path = dir.path().join("token-vault.service");
    std::fs::write(&path, unit).expect("write the unit");
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify");
    // Documentation=man:… pages are checked against the checked-in ones
    // when `man` is there to look them up.
    if Command::new("man").arg("--version").output().is_ok() {
        cmd.arg("--man=yes").env("MANPATH", workspace().join("man"));
    } else {
        cmd.arg("--man=no");
    }
    let out = cmd.arg(&path).output().expect("run systemd-analyze");
    let text = stderr(&out);
    // Unknown or malformed settings are warnings with exit status 0: any
    // line about this unit counts as a failure.
    let about_unit: Vec<&str> = text.lines().filter(|l| l.contains("token-vault")).collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify failed ({}):\n{text}",
        out.status
    );

    // The sysusers.d snippet is valid and creates the user and the group.
    let sysusers = workspace().join("dist/sysusers.d/token-vault.conf");
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc")).expect("mkdir");
    let out = Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.display()))
        .arg(&sysusers)
        .output()
        .expect("run systemd-sysusers");
    assert_ok(&out);
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).expect("passwd");
    let group = std::fs::read_to_string(root.join("etc/group")).expect("group");
    assert!(passwd.starts_with("token-vault:"), "{passwd}");
    assert!(group.contains("token-vault-clients:"), "{group}");
}

#[test]
fn a_socket_group_lets_its_members_connect() {
    // Root may give the socket to any gid; others to a group of their own.
    const GID: u32 = 4242;
    const MEMBER: u32 = 4243;
    let gid = if is_root() { GID } else { own_gid() };
    let gid_text = gid.to_string();
    let vault = Vault::start(&["--socket-group", &gid_text, "--socket-mode", "0660"]);
    let socket_meta = std::fs::metadata(&vault.socket).expect("stat socket");
    let dir_meta = std::fs::metadata(vault.socket.parent().expect("dir")).expect("stat dir");
    assert_eq!(socket_meta.mode() & 0o7777, 0o660);
    assert_eq!(socket_meta.gid(), gid);
    assert_eq!(dir_meta.mode() & 0o7777, 0o710);
    assert_eq!(dir_meta.gid(), gid);
    if !is_root() {
        eprintln!("skipped the connection part: needs root to run a client as another uid");
        return;
    }
    // The test's own directory is private; a deployment's /run is not.
    std::fs::set_permissions(vault.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let client = |gid: u32| {
        Command::new(tests::bins::path("token-vault"))
            .arg("--socket")
            .arg(&vault.socket)
            .args(["list", "--json"])
            .uid(MEMBER)
            .gid(gid)
            .stdin(Stdio::null())
            .output()
            .expect("run token-vault as another uid")
    };
    let member = client(GID);
    assert_ok(&member);
    let json: serde_json::Value = serde_json::from_slice(&member.stdout).expect("list JSON");
    assert!(json["connections"].is_array(), "{json}");
    // Not in the group (std drops root's supplementary groups): refused by
    // the file system, before the daemon even sees it.
    let outsider = client(MEMBER);
    assert!(!outsider.status.success());
    assert!(
        stderr(&outsider).contains("Permission denied"),
        "{}",
        stderr(&outsider)
    );
}

#[test]
fn a_socket_group_that_does_not_exist_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(tests::bins::path("token-vault"))
        .arg("--socket")
        .arg(dir.path().join("run/vault.sock"))
        .arg("serve")
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args(["--socket-group", "no-such-group-tv"])
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdin(Stdio::null())
        .output()
        .expect("run token-vault serve");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no-such-group-tv"),
        "{}",
        stderr(&out)
    );
    let out = Command::new(tests::bins::path("token-vault"))
        .args(["serve", "--socket-mode", "0666"])
        .output()
        .expect("run token-vault serve");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("every local user"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn exec_passes_a_fresh_token_in_the_environment() {
    let fake = fake();
    let vault = Vault::start(&[]);
    // An expired token: exec must get a fresh one, not the stale one.
    let (stale, rt) = fake.seed_tokens(CLIENT_ID, 3600);
    assert_ok(&vault.import("box", &fake, &blob(&stale, Some(&rt), -60), &[]));

    let out_file = vault.dir.path().join("exec-env");
    let script = format!(
        "printf '%s\\n%s\\n' \"$ACCESS_TOKEN\" \"$ACCESS_TOKEN_EXPIRY\" > '{}'; \
         tr '\\0' ' ' < /proc/$$/cmdline >> '{}'; exit 7",
        out_file.display(),
        out_file.display()
    );
    let out = vault.cli(&["exec", "box", "--", "sh", "-c", &script]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "CMD's exit status: {}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&out_file).expect("the command ran");
    let mut lines = written.lines();
    let token = lines.next().expect("ACCESS_TOKEN line");
    let expiry = lines.next().expect("ACCESS_TOKEN_EXPIRY line");
    let cmdline = lines.collect::<Vec<_>>().join("\n");
    assert!(
        !token.is_empty() && token != stale,
        "a refreshed token: {token}"
    );
    assert!(fake.counters().refreshes >= 1);
    assert_eq!(token, vault.token("box"), "the vault's current token");
    let expiry = chrono::DateTime::parse_from_rfc3339(expiry).expect("RFC 3339 expiry");
    assert!(expiry > chrono::Utc::now(), "{expiry}");
    // The token is never on a command line.
    assert!(cmdline.contains("ACCESS_TOKEN"), "{cmdline}");
    assert!(!cmdline.contains(token), "{cmdline}");

    // `--` is optional; the arguments reach CMD as they are.
    let out = vault.cli(&[
        "exec",
        "box",
        "sh",
        "-c",
        "test -n \"$ACCESS_TOKEN\"",
        "--x",
    ]);
    assert_ok(&out);

    // A CMD that cannot be run: a shell's 127, a clear message, no token.
    let out = vault.cli(&["exec", "box", "--", "/nonexistent/tool", "arg"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot run `/nonexistent/tool`"),
        "{}",
        stderr(&out)
    );
    let not_executable = vault.dir.path().join("not-executable");
    std::fs::write(&not_executable, "#!/bin/sh\n").expect("write");
    let out = vault.cli(&["exec", "box", "--", not_executable.to_str().expect("UTF-8")]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));

    // An unknown connection runs nothing.
    let marker = vault.dir.path().join("ran");
    let out = vault.cli(&[
        "exec",
        "nope",
        "--",
        "touch",
        marker.to_str().expect("UTF-8"),
    ]);
    assert!(!out.status.success());
    assert!(!marker.exists());
    vault.assert_no_secrets(&fake);
}

#[test]
fn completions_for_every_shell() {
    for (binary, name) in [
        ("token-vault", "token-vault"),
        ("oauth-authorize", "oauth-authorize"),
    ] {
        for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
            let out = Command::new(tests::bins::path(binary))
                .args(["completions", shell])
                .env("OAUTH_CLIENT_ID", "set-in-the-environment")
                .output()
                .expect("run completions");
            assert_ok(&out);
            let script = String::from_utf8(out.stdout).expect("UTF-8 script");
            assert!(script.contains(name), "{binary} {shell}");
        }
        // The bash script is valid bash.
        if Command::new("bash").arg("--version").output().is_ok() {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "{} completions bash | bash -n",
                    tests::bins::path(binary).display()
                ))
                .output()
                .expect("bash -n");
            assert_ok(&out);
        }
    }
    // Every subcommand is completed.
    let out = Command::new(tests::bins::path("token-vault"))
        .args(["completions", "bash"])
        .output()
        .expect("run completions");
    let script = String::from_utf8_lossy(&out.stdout);
    for sub in ["serve", "import", "exec", "completions", "put"] {
        assert!(script.contains(sub), "{sub}");
    }
}

#[test]
fn checked_in_man_pages_are_up_to_date() {
    let dir = docs::man_dir();
    let stale = docs::stale_pages(&dir).expect("read man/");
    assert!(
        stale.is_empty(),
        "the man pages in {} are stale: {}\nregenerate them with `{}`",
        dir.display(),
        stale.join(", "),
        docs::REGENERATE
    );
}
