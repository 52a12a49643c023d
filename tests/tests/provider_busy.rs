//! A provider that is busy, and a listing that fails or pages oddly, in the
//! middle of file operations:
//!
//! - Dropbox's 409 `too_many_write_operations` and Box's 409
//!   `operation_blocked_temporary` (the fake's [`ApiFault::Busy`]) on an
//!   upload part, a one-request upload or a `mkdir` are waited out and
//!   retried, and the operation succeeds.
//! - Dropbox's `rm` without `--recursive` deletes a folder only once it
//!   has seen it is empty (`delete_v2` is always recursive): a listing that
//!   keeps failing deletes nothing, and an empty first page with `has_more`
//!   ([`ApiFault::EmptyPage`]) is followed to the folder's first entry.
//!
//! The helpers (`setup`, `ok`, `fails`, …) are `tests::transfer_harness`'s.

use std::time::{Duration, Instant};
use tests::fake::{ApiFault, FakeProvider, Style};
use tests::transfer_harness::{fails, make_file, ok, s, setup, sha256_file};
use tests::vault_harness::Vault;

/// Above the 21MB Box cutoff and the 4MB Dropbox chunk the cases set: an
/// upload session with several parts or chunks.
const SESSION_LEN: usize = 25_000_000;
/// Under both: one request.
const SMALL_LEN: usize = 1_000_000;
/// The vault's attempts per provider call (`providers/call.rs`).
const ATTEMPTS: usize = 6;

#[test]
fn busy_409s_mid_upload_are_waited_out() {
    for (style, name, extra, busy_path, len) in [
        (
            Style::Box,
            "box",
            ["--upload-cutoff", "21MB"],
            "upload_sessions/",
            SESSION_LEN,
        ),
        (
            Style::Box,
            "box",
            ["--upload-cutoff", "21MB"],
            "/files/content",
            SMALL_LEN,
        ),
        (
            Style::Dropbox,
            "dbx",
            ["--chunk-size", "4MB"],
            "append_v2",
            SESSION_LEN,
        ),
        (
            Style::Dropbox,
            "dbx",
            ["--chunk-size", "4MB"],
            "files/upload",
            SMALL_LEN,
        ),
    ] {
        let what = format!("{name} {busy_path}");
        let (fake, vault) = setup(style, name, &[], &extra);
        let work = tempfile::tempdir().expect("tempdir");
        let local = make_file(work.path(), "busy.bin", len);
        // Busy twice in a row: the first asks for a second's wait.
        for retry_after_secs in [1, 0] {
            fake.inject_api_fault(busy_path, ApiFault::Busy { retry_after_secs });
        }
        let faults_before = fake.counters().api_faults;
        let started = Instant::now();
        let out = ok(&vault, &["put", s(&local), &format!("{name}:/busy.bin")]);
        assert!(out.contains("uploaded /busy.bin"), "{what}: {out}");
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{what}: the Retry-After was not waited out"
        );
        assert_eq!(fake.pending_api_faults(), 0, "{what}: a fault was not hit");
        assert_eq!(fake.counters().api_faults, faults_before + 2, "{what}");
        assert_eq!(
            fake.file_sha256("/busy.bin"),
            Some(sha256_file(&local)),
            "{what}: the file must be the source, byte for byte"
        );
        assert_eq!(fake.paths(), ["/busy.bin"], "{what}: no duplicate");
        assert_eq!(fake.open_upload_sessions(), 0, "{what}");
    }
}

/// On Box the busy answer lands on the first request of the `mkdir` whose
/// path holds `folders`: the listing that looks the new folder up (the
/// fake matches faults by a substring of the path, and the listing's
/// `/folders/{id}/items` holds every substring of `POST /folders`).
#[test]
fn busy_409s_on_mkdir_are_waited_out() {
    for (style, name, busy_path) in [
        (Style::Box, "box", "folders"),
        (Style::Dropbox, "dbx", "create_folder_v2"),
    ] {
        let (fake, vault) = setup(style, name, &[], &[]);
        fake.inject_api_fault(
            busy_path,
            ApiFault::Busy {
                retry_after_secs: 0,
            },
        );
        ok(&vault, &["mkdir", &format!("{name}:/made")]);
        assert_eq!(
            fake.pending_api_faults(),
            0,
            "{name}: the fault was not hit"
        );
        assert_eq!(fake.counters().api_faults, 1, "{name}");
        assert_eq!(fake.paths(), ["/made/"], "{name}");
        // A second mkdir meets the folder (on Dropbox, as the 409
        // `path/conflict/folder` that the busy check reads and hands on).
        ok(&vault, &["mkdir", &format!("{name}:/made")]);
        assert_eq!(fake.paths(), ["/made/"], "{name}");
    }
}

/// What `/keep` holds while nothing deletes it.
const KEPT: [&str; 2] = ["/keep/", "/keep/data.txt"];

/// `rm dbx:/keep` fails with an error that says every one of `says`, every
/// injected fault was met, and `/keep` is as it was.
fn refused(fake: &FakeProvider, vault: &Vault, says: &[&str]) {
    let err = fails(vault, &["rm", "dbx:/keep"]);
    assert!(says.iter().all(|s| err.contains(s)), "{says:?}: {err}");
    assert_eq!(
        fake.pending_api_faults(),
        0,
        "{says:?}: a fault was not met"
    );
    assert_eq!(fake.paths(), KEPT, "{says:?}");
}

#[test]
fn dropbox_rm_deletes_no_folder_it_has_not_seen_empty() {
    let (fake, vault) = setup(Style::Dropbox, "dbx", &[], &[]);
    fake.put_file("/keep/data.txt", b"must survive");
    // The emptiness check fails on every attempt: an error, nothing deleted.
    for _ in 0..ATTEMPTS {
        fake.inject_api_fault("list_folder", ApiFault::ServerError);
    }
    refused(&fake, &vault, &["HTTP 500", "nothing was deleted"]);
    // The first page is empty but has more: the entry after it counts.
    fake.inject_api_fault("list_folder", ApiFault::EmptyPage);
    refused(&fake, &vault, &["not empty", "--recursive"]);
    // The plain refusal.
    refused(&fake, &vault, &["not empty"]);
    // `ls` follows the empty page too.
    fake.inject_api_fault("list_folder", ApiFault::EmptyPage);
    assert!(ok(&vault, &["ls", "dbx:/keep"]).contains("data.txt"));
    // An empty folder goes, empty first page or not; `--recursive` takes
    // the rest.
    ok(&vault, &["mkdir", "dbx:/keep/empty"]);
    fake.inject_api_fault("list_folder", ApiFault::EmptyPage);
    ok(&vault, &["rm", "dbx:/keep/empty"]);
    assert_eq!(fake.pending_api_faults(), 0);
    assert_eq!(fake.paths(), KEPT);
    ok(&vault, &["rm", "dbx:/keep", "--recursive"]);
    assert!(fake.paths().is_empty(), "{:?}", fake.paths());
}
