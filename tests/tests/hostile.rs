//! Hostile clients against the real daemon: idle and trickling
//! connections, huge heads and bodies, bad bytes in paths, clients that
//! vanish mid-transfer, and many connections in a row. The daemon must keep
//! serving everyone else, answer with the right status, and hold no fd,
//! memory or provider session for a client that is gone.
//!
//! The tests share one lock: each loads the daemon on purpose, and the
//! latency bound must not measure a neighbour's load.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tests::fake::{FakeProvider, Style};
use tests::transfer_harness::{eventually, import_connection, partial_upload, start};
use tests::vault_harness::Vault;

/// The bound on a normal client's token latency while others misbehave.
const TOKEN_LATENCY_BOUND: Duration = Duration::from_millis(50);
/// Idle connections held open in the latency test.
const IDLE_CONNECTIONS: usize = 500;
/// Connections made one after another in the fd-leak test.
const SEQUENTIAL_CONNECTIONS: usize = 10_000;
/// Fds the daemon may legitimately gain between two quiet moments: a
/// provider connection kept in a pool, the audit log reopened, and so on.
const FD_SLACK: usize = 6;
/// Memory the daemon may keep after the work is done (allocator caches,
/// connection pools); far below the sizes moved, so held buffers show.
const RSS_SLACK_KB: u64 = 24 * 1024;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fake of `style` and a vault with connection `name` imported for it;
/// the access token the vault serves.
fn setup(style: Style, name: &str, extra: &[&str]) -> (FakeProvider, Vault, String) {
    let (fake, vault) = start(style, &[]);
    let at = import_connection(&vault, &fake, name, extra);
    (fake, vault, at)
}

/// How many fds the process has open.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the daemon's /proc/PID/fd")
        .count()
}

/// The process's fd count once it stops changing (connections of a
/// finished command may still be closing).
fn settled_fds(pid: u32) -> usize {
    let mut last = usize::MAX;
    eventually(10, "the daemon's fds to settle", || {
        let now = fds(pid);
        let settled = now == last;
        last = now;
        settled
    });
    last
}

/// The process's resident memory in KiB (`VmRSS`).
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a VmRSS line")
}

/// Sends raw `request` bytes on a new connection and reads the answer to
/// its end: (status, body). The daemon may answer and close before all of
/// the request is sent (a 431, a 413); the answer is read all the same.
fn exchange(socket: &Path, request: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = UnixStream::connect(socket).expect("connect to the vault");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .expect("write timeout");
    // A write error means the daemon stopped reading: its answer says why.
    let _ = stream.write_all(request);
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A Unix socket closed with our unread bytes in it reports a
            // reset after the answer; the answer is what counts.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "no answer to {:?}: {e}",
                String::from_utf8_lossy(&request[..request.len().min(80)])
            ),
        }
    }
    parse_answer(&raw)
}

fn parse_answer(raw: &[u8]) -> (u16, Vec<u8>) {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    (status, raw.get(head_end + 4..).unwrap_or_default().to_vec())
}

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: vault\r\nConnection: close\r\n\r\n").into_bytes()
}

/// A GET whose request target is `target` byte for byte.
fn get_raw(target: &[u8]) -> Vec<u8> {
    let mut request = b"GET ".to_vec();
    request.extend_from_slice(target);
    request.extend_from_slice(b" HTTP/1.1\r\nHost: vault\r\nConnection: close\r\n\r\n");
    request
}

/// Asserts a JSON error body of the socket API with `code`.
fn assert_json_error(body: &[u8], code: &str, what: &str) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|_| {
        panic!(
            "{what}: the error is not JSON: {:?}",
            String::from_utf8_lossy(body)
        )
    });
    assert_eq!(v["error"]["code"], code, "{what}: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {v}"
    );
}

#[test]
fn idle_and_trickling_connections_neither_slow_others_nor_stay_forever() {
    let _serial = serial();
    let (_fake, vault, at) = setup(Style::Box, "box", &[]);
    let pid = vault.pid().expect("daemon pid");
    let base_fds = settled_fds(pid);
    let mut held = Vec::with_capacity(IDLE_CONNECTIONS);
    for i in 0..IDLE_CONNECTIONS {
        let mut stream = UnixStream::connect(&vault.socket).expect("connect");
        if i % 2 == 1 {
            // A request head that never ends (slowloris).
            stream
                .write_all(b"GET /v1/connections/box/token HTTP/1.1\r\nHost: vault\r\nX-Slow: ")
                .expect("partial head");
        }
        held.push(stream);
    }
    eventually(20, "the daemon to take all the idle connections", || {
        fds(pid) + FD_SLACK >= base_fds + IDLE_CONNECTIONS
    });
    let request = get("/v1/connections/box/token");
    let mut latencies: Vec<Duration> = (0..15)
        .map(|_| {
            let started = Instant::now();
            let (status, body) = exchange(&vault.socket, &request);
            let took = started.elapsed();
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            let v: serde_json::Value = serde_json::from_slice(&body).expect("token JSON");
            assert_eq!(v["access_token"], at.as_str());
            took
        })
        .collect();
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    eprintln!(
        "token latency with {IDLE_CONNECTIONS} idle connections: best {:?}, median {median:?}, worst {:?}",
        latencies[0],
        latencies[latencies.len() - 1]
    );
    assert!(
        median < TOKEN_LATENCY_BOUND,
        "a normal client waited {median:?} (median) for a token beside {IDLE_CONNECTIONS} idle connections"
    );
    // The daemon does not keep them forever: each is closed once its
    // request head is overdue.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (i, stream) in held.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        let mut rest = Vec::new();
        match stream.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("idle connection {i} is still open after a minute: {e}"),
        }
        assert!(
            !String::from_utf8_lossy(&rest).contains(&at),
            "an unfinished request was answered with the token"
        );
    }
    drop(held);
    eventually(20, "the daemon to release the idle connections", || {
        fds(pid) <= base_fds + FD_SLACK
    });
    assert_eq!(vault.token("box"), at);
}

#[test]
fn a_huge_request_head_gets_431() {
    let _serial = serial();
    let (_fake, vault, at) = setup(Style::Box, "box", &[]);
    let mib = 1024 * 1024;
    // One header of 1 MiB.
    let mut one = b"GET /v1/connections/box/token HTTP/1.1\r\nHost: vault\r\nX-Big: ".to_vec();
    one.resize(one.len() + mib, b'a');
    one.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    // 1 MiB spread over a thousand headers of 1 KiB.
    let mut many = b"GET /v1/connections/box/token HTTP/1.1\r\nHost: vault\r\n".to_vec();
    for i in 0..1024 {
        many.extend_from_slice(format!("X-H{i}: {}\r\n", "b".repeat(1000)).as_bytes());
    }
    many.extend_from_slice(b"Connection: close\r\n\r\n");
    for (what, request) in [("one 1 MiB header", one), ("a thousand headers", many)] {
        let (status, _) = exchange(&vault.socket, &request);
        assert_eq!(status, 431, "{what}");
    }
    // A 1 MiB request target is refused too (414 or 431, both fine).
    let mut long = b"/v1/connections/box/token?x=".to_vec();
    long.resize(long.len() + mib, b'c');
    let (status, _) = exchange(&vault.socket, &get_raw(&long));
    assert!(matches!(status, 414 | 431), "a 1 MiB URL got {status}");
    assert_eq!(vault.token("box"), at, "the daemon still serves");
}

#[test]
fn an_oversized_json_body_gets_413() {
    let _serial = serial();
    let (_fake, vault, at) = setup(Style::Box, "box", &[]);
    let big = 2 * 1024 * 1024;
    let head = |extra: &str| {
        format!(
            "PUT /v1/connections/other HTTP/1.1\r\nHost: vault\r\nConnection: close\r\nContent-Type: application/json\r\n{extra}\r\n"
        )
        .into_bytes()
    };
    // Declared and sent.
    let mut sized = head(&format!("Content-Length: {big}\r\n"));
    sized.resize(sized.len() + big, b'x');
    // Chunked, so the size is only known while reading.
    let mut chunked = head("Transfer-Encoding: chunked\r\n");
    for _ in 0..(big / 65536) {
        chunked.extend_from_slice(b"10000\r\n");
        chunked.resize(chunked.len() + 65536, b'y');
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    for (what, request) in [("a 2 MiB body", sized), ("a 2 MiB chunked body", chunked)] {
        let (status, body) = exchange(&vault.socket, &request);
        assert_eq!(status, 413, "{what}: {}", String::from_utf8_lossy(&body));
        assert_json_error(&body, "too_large", what);
    }
    // A body declared as 10 GB, of which a few bytes come: refused at
    // once, from the declaration, without waiting for the rest.
    let mut promised = head("Content-Length: 10000000000\r\n");
    promised.extend_from_slice(b"{\"blob\":");
    let started = Instant::now();
    let (status, body) = exchange(&vault.socket, &promised);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the 413 waited for a body that never comes"
    );
    let list = vault.cli(&["list", "--json"]);
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains("\"other\""),
        "an oversized import created a connection"
    );
    assert_eq!(vault.token("box"), at, "the daemon still serves");
}

#[test]
fn invalid_utf8_and_nul_in_paths_get_400() {
    let _serial = serial();
    let (fake, vault, at) = setup(Style::Box, "box", &[]);
    fake.put_file("/a.txt", b"hello");
    // Percent-encoded: the daemon decodes them and must refuse them, in
    // the connection name and in `?path=`, with a JSON error.
    let encoded = [
        "/v1/connections/%FF/token",
        "/v1/connections/%C3%28/token",
        "/v1/connections/box%00/token",
        "/v1/connections/a%00b",
        "/v1/connections/%00/content?path=/a.txt",
        "/v1/connections/box%FF/items?path=/",
        "/v1/connections/box/content?path=%FF%FE",
        "/v1/connections/box/content?path=%2Fa.txt%00",
        "/v1/connections/box/items?path=%00",
        "/v1/connections/box/items?path=%2F%C3%28",
    ];
    for target in encoded {
        let (status, body) = exchange(&vault.socket, &get(target));
        assert_eq!(status, 400, "{target}: {}", String::from_utf8_lossy(&body));
        assert_json_error(&body, "bad_request", target);
    }
    // Raw bytes that are not UTF-8, or NUL, in the request line itself.
    let raw: [&[u8]; 6] = [
        b"/v1/connections/\xff\xfe/token",
        b"/v1/connections/box\x00/token",
        b"/v1/connections/b\xc3\x28x/token",
        b"/v1/connections/box/content?path=/\xff",
        b"/v1/connections/box/content?path=/a\x00.txt",
        b"/v1/connections/box/items?path=\xc3\x28",
    ];
    for target in raw {
        let (status, body) = exchange(&vault.socket, &get_raw(target));
        assert_eq!(
            status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(target),
            String::from_utf8_lossy(&body)
        );
    }
    // axum's own refusals come in the API's JSON shape too.
    let (status, body) = exchange(
        &vault.socket,
        b"POST /v1/connections/box/token HTTP/1.1\r\nHost: vault\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status, 405);
    assert_json_error(&body, "method_not_allowed", "POST token");
    // The same routes with good bytes work.
    let (status, body) = exchange(
        &vault.socket,
        &get("/v1/connections/box/content?path=%2Fa.txt"),
    );
    assert_eq!(status, 200);
    assert_eq!(body, b"hello");
    assert_eq!(vault.token("box"), at);
}

#[test]
fn clients_that_vanish_mid_transfer_leave_no_session_fd_or_memory() {
    let _serial = serial();
    const BIG: usize = 60 * 1000 * 1000;
    for (style, name, extra) in [
        (Style::Box, "box", &[][..]),
        // Small chunks, so the half-sent upload is already in a session.
        (Style::Dropbox, "dbx", &["--chunk-size", "8MiB"][..]),
    ] {
        let (fake, vault, _) = setup(style, name, extra);
        let pid = vault.pid().expect("daemon pid");
        let work = tempfile::tempdir().expect("tempdir");
        let local = work.path().join("small");
        std::fs::write(&local, vec![1u8; 1 << 20]).expect("write");
        let local = local.to_str().expect("utf-8");
        // Warm up: one whole upload and download, so pools and buffers
        // that are meant to stay exist before the baseline is taken.
        for args in [
            vec!["put", local, &format!("{name}:/small")],
            vec!["get", &format!("{name}:/small"), "-"],
        ] {
            let out = vault.cli(&args);
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let base_fds = settled_fds(pid);
        let base_rss = rss_kb(pid);
        fake.put_file("/big.bin", &vec![9u8; BIG]);

        // Mid-download: read 4 MB of 60, then hang up.
        let mut stream = UnixStream::connect(&vault.socket).expect("connect");
        stream
            .write_all(
                format!(
                    "GET /v1/connections/{name}/content?path=/big.bin HTTP/1.1\r\nHost: vault\r\n\r\n"
                )
                .as_bytes(),
            )
            .expect("request");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut got = 0;
        let mut buf = vec![0u8; 1 << 16];
        while got < 4_000_000 {
            let n = stream.read(&mut buf).expect("download");
            assert!(n > 0, "the download ended early");
            got += n;
        }
        drop(stream);

        // Mid-upload: declare 60 MB, send half, hang up once a provider
        // session is open for it.
        let stream = partial_upload(&vault.socket, name, "/partial.bin", BIG, BIG / 2);
        eventually(30, "an upload session to open", || {
            fake.open_upload_sessions() > 0
        });
        drop(stream);

        if style == Style::Box {
            eventually(20, "the Box upload session to be aborted", || {
                fake.open_upload_sessions() == 0
            });
        } else {
            // Dropbox has no call that cancels a session: an abandoned one
            // lapses upstream (after a week) and holds nothing here. It
            // must not have been finished into a file.
            assert!(fake.open_upload_sessions() <= 1);
        }
        assert_eq!(fake.file_sha256("/partial.bin"), None, "{name}");
        eventually(20, "the daemon to release the transfers' fds", || {
            fds(pid) <= base_fds + FD_SLACK
        });
        eventually(20, "the daemon's memory to come back down", || {
            rss_kb(pid) <= base_rss + RSS_SLACK_KB
        });
        eprintln!(
            "{name}: after two abandoned transfers of 60 MB: fds {} (was {base_fds}), RSS {} KiB (was {base_rss} KiB)",
            fds(pid),
            rss_kb(pid)
        );
        // And it still transfers.
        let out = vault.cli(&["get", &format!("{name}:/small"), "-"]);
        assert!(out.status.success(), "{name}");
        assert_eq!(out.stdout.len(), 1 << 20);
        vault.assert_no_secrets(&fake);
    }
}

#[test]
fn ten_thousand_connections_in_a_row_leak_no_fd() {
    let _serial = serial();
    let (_fake, vault, at) = setup(Style::Box, "box", &[]);
    let pid = vault.pid().expect("daemon pid");
    let socket = vault.socket.clone();
    let token = get("/v1/connections/box/token");
    let health = get("/v1/health");
    let one = |i: usize| match i % 10 {
        // A token request (audited).
        0 => {
            let (status, body) = exchange(&socket, &token);
            assert_eq!(status, 200);
            assert!(String::from_utf8_lossy(&body).contains(&at));
        }
        // Connect and hang up at once.
        1 => drop(UnixStream::connect(&socket).expect("connect")),
        // Not HTTP at all.
        2 => {
            let (status, _) = exchange(&socket, b"HELLO THERE\r\n\r\n");
            assert_eq!(status, 400);
        }
        // Half a head, then hang up.
        3 => {
            let mut s = UnixStream::connect(&socket).expect("connect");
            let _ = s.write_all(b"GET /v1/connections/box/token HTTP/1.1\r\nHo");
        }
        // Two requests on one kept-alive connection.
        4 => {
            let mut both = b"GET /v1/health HTTP/1.1\r\nHost: vault\r\n\r\n".to_vec();
            both.extend_from_slice(&health);
            let mut s = UnixStream::connect(&socket).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(30)))
                .expect("timeout");
            s.write_all(&both).expect("write");
            let mut all = Vec::new();
            s.read_to_end(&mut all).expect("read");
            assert_eq!(
                String::from_utf8_lossy(&all)
                    .matches("HTTP/1.1 200")
                    .count(),
                2
            );
        }
        _ => {
            let (status, _) = exchange(&socket, &health);
            assert_eq!(status, 200);
        }
    };
    // Warm up, then take the baseline once the daemon is quiet.
    (0..200).for_each(one);
    let base_fds = settled_fds(pid);
    let base_rss = rss_kb(pid);
    let started = Instant::now();
    (0..SEQUENTIAL_CONNECTIONS).for_each(one);
    let took = started.elapsed();
    eventually(20, "the daemon's fds to come back to the baseline", || {
        fds(pid) <= base_fds + FD_SLACK
    });
    eprintln!(
        "{SEQUENTIAL_CONNECTIONS} connections in {took:?}: fds {} (was {base_fds}), RSS {} KiB (was {base_rss} KiB)",
        fds(pid),
        rss_kb(pid)
    );
    eventually(20, "the daemon's memory to come back down", || {
        rss_kb(pid) <= base_rss + RSS_SLACK_KB
    });
    assert_eq!(vault.token("box"), at);
}
