//! The limits and refusals of transfers, end to end through the real
//! daemon: an upload body that stops mid-way is given up (and its provider
//! session with it), what is in the way of a transfer is 400 with a code of
//! its own (409 means re-authorize, and only that), `get` and `mkdir` of the
//! connection's root are refused, and nonsense chunk sizes and cutoffs are
//! refused at import.
//!
//! The daemons here run with the upload idle bound shortened by
//! `serve --upload-idle-timeout`.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};
use tests::fake::Style;
use tests::transfer_harness::{eventually, partial_upload, setup, start, STYLES};
use tests::vault_harness::{blob, http, Vault, CLIENT_ID, CLIENT_SECRET};

/// The shortened idle bound on an upload body (the default is a minute),
/// as `serve --upload-idle-timeout` sets it.
const IDLE: &str = "2s";
/// The daemons' serve flags: [`IDLE`].
const SERVE: [&str; 2] = ["--upload-idle-timeout", IDLE];
/// How long the vault may take to give up a stalled body: the idle bound
/// and a generous margin for a loaded machine, far below the real minute.
const STALL_ANSWER_DEADLINE: Duration = Duration::from_secs(30);
/// Declared by the stalled uploads: above Box's 50 MB simple-upload limit
/// and Dropbox's default 48 MiB chunk, so Box opens an upload session.
const DECLARED: usize = 60 * 1000 * 1000;
/// What a stalled upload sends before it stops.
const SENT: usize = 1 << 20;

/// The socket API's JSON error: (code, message).
fn error_of(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not a JSON error: {:?}", String::from_utf8_lossy(body)));
    let field = |f: &str| v["error"][f].as_str().unwrap_or_default().to_string();
    (field("code"), field("message"))
}

/// Asserts `method target` answers `status` with error `code`; the message.
fn refused(vault: &Vault, method: &str, target: &str, status: u16, code: &str) -> String {
    let (got, body) = http(&vault.socket, method, target, None).expect("http");
    let (got_code, message) = error_of(&body);
    assert_eq!(
        (got, got_code.as_str()),
        (status, code),
        "{method} {target}: {message}"
    );
    message
}

/// Reads `stream` until the vault closes it (or `deadline` passes): what it
/// answered, as (status, body).
fn answer_then_close(stream: &mut UnixStream, deadline: Duration) -> (u16, Vec<u8>) {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let end = Instant::now() + deadline;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // Closed with our unsent bytes unread: the answer is already in.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading the vault's answer: {e}"),
        }
        assert!(
            Instant::now() < end,
            "the vault neither answered nor closed a stalled upload within {deadline:?}; got {:?}",
            String::from_utf8_lossy(&raw)
        );
    }
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no answer before the close: {:?}",
                String::from_utf8_lossy(&raw)
            )
        });
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    (status, raw[head_end + 4..].to_vec())
}

#[test]
fn an_upload_body_that_stalls_is_given_up_and_nothing_stays_open() {
    for (style, name) in STYLES {
        let (fake, vault) = setup(style, name, &SERVE, &[]);
        let started = Instant::now();
        let mut stream = partial_upload(&vault.socket, name, "/stalled.bin", DECLARED, SENT);
        // Others are served while it stalls.
        let (status, _) = http(
            &vault.socket,
            "GET",
            &format!("/v1/connections/{name}/items?path=/"),
            None,
        )
        .expect("http");
        assert_eq!(status, 200, "{name}: a listing during the stall");

        let (status, body) = answer_then_close(&mut stream, STALL_ANSWER_DEADLINE);
        let (code, message) = error_of(&body);
        assert_eq!(
            (status, code.as_str()),
            (408, "body_stalled"),
            "{name}: {message}"
        );
        assert!(
            message.contains(&format!("after {SENT} of {DECLARED} bytes"))
                && message.contains("nothing was committed"),
            "{name}: {message}"
        );
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "{name}: given up before the idle bound: {:?}",
            started.elapsed()
        );

        assert_eq!(
            fake.file_sha256("/stalled.bin"),
            None,
            "{name}: nothing committed"
        );
        eventually(20, "no upload session left open", || {
            fake.open_upload_sessions() == 0
        });
        if style == Style::Box {
            // The stall came inside a Box upload session, which was aborted.
            assert!(
                vault.log().contains("aborted a Box upload session"),
                "{name}: {}",
                vault.log()
            );
        }
        // And the daemon still transfers.
        let work = tempfile::tempdir().expect("tempdir");
        let local = work.path().join("small");
        std::fs::write(&local, b"still here").expect("write");
        let out = vault.cli(&[
            "put",
            local.to_str().expect("utf-8"),
            &format!("{name}:/small"),
        ]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(fake.file_sha256("/small").is_some(), "{name}");
        vault.assert_no_secrets(&fake);
    }
}

/// A folder that is not empty, a file in the way and an upload over a
/// folder are the caller's to fix: 400, each with its own code and its next
/// step. 409 stays for a connection that needs re-authorization
/// (`vault.rs`, `invalid_grant_needs_reauth_until_replaced`).
#[test]
fn what_is_in_the_way_is_400_with_its_own_code() {
    for (style, name) in STYLES {
        let (fake, vault) = setup(style, name, &SERVE, &[]);
        fake.put_file("/full/inside.txt", b"inside");
        fake.put_file("/file.txt", b"a file");
        let base = format!("/v1/connections/{name}");

        let message = refused(
            &vault,
            "DELETE",
            &format!("{base}/items?path=/full"),
            400,
            "folder_not_empty",
        );
        assert!(message.contains("--recursive"), "{name}: {message}");
        let message = refused(
            &vault,
            "POST",
            &format!("{base}/folders?path=/file.txt"),
            400,
            "in_the_way",
        );
        assert!(message.contains("token-vault rm"), "{name}: {message}");
        let message = refused(
            &vault,
            "PUT",
            &format!("{base}/content?path=/full"),
            400,
            "is_a_folder",
        );
        assert!(message.contains("inside it"), "{name}: {message}");
        assert!(
            fake.file_sha256("/full/inside.txt").is_some(),
            "{name}: kept"
        );

        // The CLI says the same and exits non-zero, with nothing on stdout.
        let work = tempfile::tempdir().expect("tempdir");
        let local = work.path().join("f");
        std::fs::write(&local, b"x").expect("write");
        for (args, says) in [
            (
                vec!["rm".to_string(), format!("{name}:/full")],
                "--recursive",
            ),
            (
                vec!["mkdir".to_string(), format!("{name}:/file.txt")],
                "token-vault rm",
            ),
            (
                vec![
                    "put".to_string(),
                    local.to_str().expect("utf-8").into(),
                    format!("{name}:/full"),
                ],
                "is a folder",
            ),
        ] {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = vault.cli(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && out.stdout.is_empty(),
                "{args:?}: {stderr}"
            );
            assert!(stderr.contains(says), "{args:?}: {stderr}");
        }
    }
}

/// `ls NAME:` lists the connection's root; `get` and `mkdir` of the root
/// itself make no sense and get a 400 that says what to name instead.
#[test]
fn get_and_mkdir_of_the_root_are_refused_and_ls_lists_it() {
    for (style, name) in STYLES {
        let (fake, vault) = setup(style, name, &SERVE, &[]);
        fake.put_file("/a.txt", b"hello");
        let base = format!("/v1/connections/{name}");
        for path in ["", "/", "%2F%2F"] {
            let (status, body) = http(
                &vault.socket,
                "GET",
                &format!("{base}/items?path={path}"),
                None,
            )
            .expect("http");
            assert_eq!(
                status,
                200,
                "{name} ls {path:?}: {}",
                String::from_utf8_lossy(&body)
            );
            let listing: serde_json::Value = serde_json::from_slice(&body).expect("listing");
            assert_eq!(listing["entries"][0]["name"], "a.txt", "{name}: {listing}");

            let message = refused(
                &vault,
                "GET",
                &format!("{base}/content?path={path}"),
                400,
                "bad_request",
            );
            assert!(
                message.contains("not a file") && message.contains("ls"),
                "{message}"
            );
            let message = refused(
                &vault,
                "POST",
                &format!("{base}/folders?path={path}"),
                400,
                "bad_request",
            );
            assert!(message.contains("always exists"), "{message}");
        }
        let out = vault.cli(&["mkdir", &format!("{name}:")]);
        assert!(
            !out.status.success() && out.stdout.is_empty(),
            "{name}: mkdir of the root"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("always exists"));
    }
}

/// A chunk size outside 1 MiB to 150 MiB, and an upload cutoff of 0, are
/// refused at import with the range, whether from the CLI or the socket.
#[test]
fn nonsense_chunk_sizes_and_cutoffs_are_refused_at_import() {
    let (fake, vault) = start(Style::Dropbox, &[]);
    let (at, rt) = fake.seed_tokens(CLIENT_ID, 3600);
    let paste = blob(&at, Some(&rt), 3600);
    for size in ["1", "1000KB", "151MiB"] {
        let out = vault.import("dbx", &fake, &paste, &["--chunk-size", size]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--chunk-size {size} was accepted");
        assert!(stderr.contains("from 1MiB to 150MiB"), "{size}: {stderr}");
    }
    // 0 never reaches the daemon from the CLI; over the socket it is refused.
    let out = vault.import("dbx", &fake, &paste, &["--chunk-size", "0"]);
    assert!(!out.status.success(), "--chunk-size 0 was accepted");
    for (field, says) in [
        ("chunk_size", "from 1MiB to 150MiB"),
        ("upload_cutoff", "--upload-cutoff 0"),
    ] {
        let request = serde_json::json!({
            "blob": paste,
            "provider": "dropbox",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            field: 0,
        });
        let (status, body) = http(
            &vault.socket,
            "PUT",
            "/v1/connections/dbx",
            Some(request.to_string().as_bytes()),
        )
        .expect("http");
        let (code, message) = error_of(&body);
        assert_eq!(
            (status, code.as_str()),
            (400, "bad_request"),
            "{field}: {message}"
        );
        assert!(message.contains(says), "{field}: {message}");
    }
    assert!(
        !vault.cli(&["status", "dbx"]).status.success(),
        "nothing was imported"
    );
    // The smallest sane chunk is taken.
    let out = vault.import("dbx", &fake, &paste, &["--chunk-size", "1MiB"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Importing over it without --replace is bad input too (400 `exists`,
    // never 409, which means re-authorize), and says how to replace it.
    let out = vault.import("dbx", &fake, &paste, &[]);
    assert!(
        !out.status.success(),
        "imported over an existing connection"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--replace"));
    let request = serde_json::json!({"blob": paste, "provider": "dropbox", "client_id": CLIENT_ID});
    let (status, body) = http(
        &vault.socket,
        "PUT",
        "/v1/connections/dbx",
        Some(request.to_string().as_bytes()),
    )
    .expect("http");
    let (code, message) = error_of(&body);
    assert_eq!((status, code.as_str()), (400, "exists"), "{message}");
}
