//! Helpers shared by the end-to-end tests (`tests/transfers.rs`,
//! `tests/provider_busy.rs`, `tests/transfer_limits.rs`, `tests/vault.rs`,
//! `tests/hostile.rs` and others): a fake provider, and a vault with a
//! connection imported for it, CLI commands that must
//! succeed or fail, deterministic local files and their hashes, a raw upload
//! that sends only part of its body, and polling with a deadline.
//!
//! Each of those tests used to carry private copies of these, and the
//! copies had begun to drift apart; here there is one of each. The daemon
//! and the socket client underneath are [`crate::vault_harness`]'s.

use crate::fake::{FakeProvider, Style};
use crate::vault_harness::{blob, Vault, CLIENT_ID, CLIENT_SECRET};
use ring::digest;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Lowercase hex of `bytes` (the benchmark's, which is the same thing).
pub use crate::bench::transfer::hex;

/// Both file-API styles, each with the connection name the tests give it.
pub const STYLES: [(Style, &str); 2] = [(Style::Box, "box"), (Style::Dropbox, "dbx")];

/// Polls `check` until it holds; fails the test, naming `what`, once `secs`
/// seconds have passed without it.
pub fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A fake provider of `style` with the test client registered, and a vault
/// started with the `serve` flags besides [`Vault::start`]'s own.
pub fn start(style: Style, serve: &[&str]) -> (FakeProvider, Vault) {
    let fake = fake(style);
    let vault = Vault::start(serve);
    (fake, vault)
}

/// A fake provider of `style` with the test client registered.
pub fn fake(style: Style) -> FakeProvider {
    let fake = FakeProvider::start(style);
    fake.register_client(CLIENT_ID, CLIENT_SECRET, &["http://127.0.0.1:53682/"]);
    fake
}

/// Imports connection `name` into `vault` with fresh tokens from `fake` and
/// the `import` flags besides [`Vault::import`]'s own; asserts it succeeded.
/// The access token imported.
pub fn import_connection(
    vault: &Vault,
    fake: &FakeProvider,
    name: &str,
    import: &[&str],
) -> String {
    import_expiring(vault, fake, name, 3600, import)
}

/// [`import_connection`], with the pasted blob saying the access token
/// expires in `expires_in` seconds (already expired if negative).
pub fn import_expiring(
    vault: &Vault,
    fake: &FakeProvider,
    name: &str,
    expires_in: i64,
    import: &[&str],
) -> String {
    let (at, rt) = fake.seed_tokens(CLIENT_ID, 3600);
    let out = vault.import(name, fake, &blob(&at, Some(&rt), expires_in), import);
    assert!(
        out.status.success(),
        "import {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    at
}

/// A fake provider and a vault (given the `serve` flags) with connection
/// `name` imported for it (given the `import` flags).
pub fn setup(style: Style, name: &str, serve: &[&str], import: &[&str]) -> (FakeProvider, Vault) {
    let (fake, vault) = start(style, serve);
    import_connection(&vault, &fake, name, import);
    (fake, vault)
}

/// Runs a client command that must succeed; its stdout.
pub fn ok(vault: &Vault, args: &[&str]) -> String {
    let out = vault.cli(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}\n--- daemon log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        vault.log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a client command that must fail with nothing on stdout; its stderr.
pub fn fails(vault: &Vault, args: &[&str]) -> String {
    let out = vault.cli(args);
    assert!(!out.status.success(), "{args:?} should have failed");
    assert!(out.stdout.is_empty(), "stdout must carry only results");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Deterministic pseudo-random bytes (xorshift, seeded by `len`), written to
/// `dir/name`; the path.
pub fn make_file(dir: &Path, name: &str, len: usize) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
    let mut left = len;
    let mut buf = vec![0u8; 1 << 16];
    while left > 0 {
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let n = left.min(buf.len());
        f.write_all(&buf[..n]).expect("write");
        left -= n;
    }
    f.flush().expect("flush");
    path
}

/// The SHA-256 of a local file, in hex (as the fake's `file_sha256` gives it).
pub fn sha256_file(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("read");
    hex(digest::digest(&digest::SHA256, &bytes).as_ref())
}

/// A temp path as the `&str` a CLI argument wants.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A raw upload of `declared` bytes (all 7s) to `path` on connection `name`
/// that sends the first `sent` of them; the stream, still open, for the
/// test to stall, hang up or read the answer from.
pub fn partial_upload(
    socket: &Path,
    name: &str,
    path: &str,
    declared: usize,
    sent: usize,
) -> UnixStream {
    let mut stream = UnixStream::connect(socket).expect("connect");
    let head = format!(
        "PUT /v1/connections/{name}/content?path={path} HTTP/1.1\r\nHost: vault\r\nContent-Length: {declared}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream
        .write_all(&vec![7u8; sent])
        .expect("part of the body");
    stream
}
