//! End-to-end transfers through the `token-vault` CLI and daemon against
//! the fake Box and Dropbox file APIs.

use std::path::Path;
use tests::fake::{ApiFault, Style};
use tests::transfer_harness::{
    eventually, fails, hex, import_connection, make_file, ok, partial_upload, s, setup,
    sha256_file, STYLES,
};
use tests::vault_harness::{http, http_with_head};

/// Above Box's 50 MiB cutoff and Dropbox's 48 MiB chunk: the chunked paths.
const BIG: usize = 60 * 1000 * 1000;

#[test]
fn mkdir_put_get_ls_rm_on_both_providers() {
    for (style, name) in STYLES {
        let (fake, vault) = setup(style, name, &[], &[]);
        let work = tempfile::tempdir().expect("tempdir");
        // mkdir -p, twice (the second finds it there).
        ok(&vault, &["mkdir", &format!("{name}:/a/b/c")]);
        ok(&vault, &["mkdir", &format!("{name}:/a/b/c")]);
        assert!(
            fake.paths()
                .iter()
                .any(|p| p.eq_ignore_ascii_case("/a/b/c/")),
            "{:?}",
            fake.paths()
        );
        // A small file and a big (chunked) one, byte for byte.
        for (file, len) in [("small.bin", 1234usize), ("big.bin", BIG)] {
            let local = make_file(work.path(), file, len);
            ok(&vault, &["put", s(&local), &format!("{name}:/a/b/{file}")]);
            assert_eq!(
                fake.file_sha256(&format!("/a/b/{file}")),
                Some(sha256_file(&local)),
                "{name} {file}"
            );
            let back = work.path().join(format!("back-{file}"));
            ok(&vault, &["get", &format!("{name}:/a/b/{file}"), s(&back)]);
            assert_eq!(
                sha256_file(&back),
                sha256_file(&local),
                "{name} {file} round trip"
            );
        }
        // Every upload request said its length (parts and chunks are
        // streamed from the spool, but never sent chunked).
        assert_eq!(fake.counters().chunked_requests, 0, "{name}");
        // ls --json describes both files.
        let listing: serde_json::Value =
            serde_json::from_str(&ok(&vault, &["ls", &format!("{name}:/a/b"), "--json"]))
                .expect("ls json");
        let entries = listing.as_array().expect("entries array");
        let big = entries
            .iter()
            .find(|e| e["name"] == "big.bin")
            .expect("big.bin listed");
        assert_eq!(big["type"], "file");
        assert_eq!(big["size"], BIG as u64);
        assert!(
            big["id"].as_str().is_some_and(|i| !i.is_empty()) && big["hash"].is_string(),
            "{big}"
        );
        assert!(entries
            .iter()
            .any(|e| e["name"] == "c" && e["type"] == "folder"));
        // rm a file; a non-empty folder needs --recursive.
        ok(&vault, &["rm", &format!("{name}:/a/b/small.bin")]);
        assert_eq!(fake.file_sha256("/a/b/small.bin"), None);
        let err = fails(&vault, &["rm", &format!("{name}:/a")]);
        assert!(err.contains("recursive"), "{err}");
        ok(&vault, &["rm", &format!("{name}:/a"), "--recursive"]);
        assert!(
            fake.paths()
                .iter()
                .all(|p| !p.to_lowercase().starts_with("/a/")),
            "{:?}",
            fake.paths()
        );
        assert_eq!(fake.open_upload_sessions(), 0);
        vault.assert_no_secrets(&fake);
    }
}

#[test]
fn ls_follows_pagination() {
    for (style, name) in STYLES {
        let (fake, vault) = setup(style, name, &[], &[]);
        for i in 0..7 {
            fake.put_file(&format!("/many/f{i}.txt"), format!("file {i}").as_bytes());
        }
        fake.set_page_size(3);
        let listing: serde_json::Value =
            serde_json::from_str(&ok(&vault, &["ls", &format!("{name}:/many"), "--json"]))
                .expect("ls json");
        let mut names: Vec<String> = listing
            .as_array()
            .expect("array")
            .iter()
            .map(|e| e["name"].as_str().unwrap_or_default().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            (0..7).map(|i| format!("f{i}.txt")).collect::<Vec<_>>(),
            "{name}"
        );
    }
}

#[test]
fn overwriting_makes_a_new_version_or_overwrites() {
    for (style, name) in STYLES {
        let (fake, vault) = setup(style, name, &[], &[]);
        let work = tempfile::tempdir().expect("tempdir");
        let one = make_file(work.path(), "one", 1000);
        let two = make_file(work.path(), "two", 2000);
        ok(&vault, &["put", s(&one), &format!("{name}:/doc.bin")]);
        ok(&vault, &["put", s(&two), &format!("{name}:/doc.bin")]);
        assert_eq!(fake.file_sha256("/doc.bin"), Some(sha256_file(&two)));
        assert_eq!(
            fake.paths()
                .iter()
                .filter(|p| p.to_lowercase().contains("doc"))
                .count(),
            1,
            "{:?}",
            fake.paths()
        );
        if style == Style::Box {
            assert_eq!(fake.box_versions("/doc.bin"), Some(2));
        }
    }
}

#[test]
fn names_with_spaces_accents_and_emoji() {
    for (style, name) in STYLES {
        let (fake, vault) = setup(style, name, &[], &[]);
        let work = tempfile::tempdir().expect("tempdir");
        let local = make_file(work.path(), "x", 4321);
        let remote = "/Dossier été/naïve file 😀 日本.txt";
        ok(&vault, &["put", s(&local), &format!("{name}:{remote}")]);
        assert_eq!(
            fake.file_sha256(remote),
            Some(sha256_file(&local)),
            "{name}"
        );
        let listing = ok(&vault, &["ls", &format!("{name}:/Dossier été")]);
        assert!(listing.contains("naïve file 😀 日本.txt"), "{listing}");
        let back = work.path().join("back");
        ok(&vault, &["get", &format!("{name}:{remote}"), s(&back)]);
        assert_eq!(sha256_file(&back), sha256_file(&local));
    }
}

#[test]
fn rate_limits_and_expired_tokens_mid_upload_are_survived() {
    for (style, name, part_path) in [
        (Style::Box, "box", "upload_sessions/"),
        (Style::Dropbox, "dbx", "append_v2"),
    ] {
        let (fake, vault) = setup(style, name, &[], &[]);
        let work = tempfile::tempdir().expect("tempdir");
        let local = make_file(work.path(), "big", BIG);
        fake.inject_api_fault(
            part_path,
            ApiFault::TooManyRequests {
                retry_after_secs: 1,
            },
        );
        fake.inject_api_fault(part_path, ApiFault::Unauthorized);
        let refreshes_before = fake.counters().refreshes;
        ok(&vault, &["put", s(&local), &format!("{name}:/big.bin")]);
        assert_eq!(
            fake.file_sha256("/big.bin"),
            Some(sha256_file(&local)),
            "{name}"
        );
        assert!(
            fake.counters().refreshes > refreshes_before,
            "{name}: the 401 did not cause a refresh"
        );
        assert_eq!(fake.open_upload_sessions(), 0);
        vault.assert_no_secrets(&fake);
    }
}

#[test]
fn the_root_folder_cannot_be_escaped() {
    for (style, name) in STYLES {
        let (fake, vault) = setup(style, name, &[], &["--root", "/jail"]);
        fake.put_file("/secret.txt", b"outside the root");
        fake.put_file("/jail/inside.txt", b"inside");
        let listing = ok(&vault, &["ls", &format!("{name}:/")]);
        assert!(
            listing.contains("inside.txt") && !listing.contains("secret.txt"),
            "{listing}"
        );
        for bad in [
            "/../secret.txt",
            "/./inside.txt",
            "..",
            "/a/../../secret.txt",
            "\\..\\secret.txt",
        ] {
            let err = fails(&vault, &["get", &format!("{name}:{bad}"), "-"]);
            assert!(err.contains("path"), "{bad}: {err}");
        }
        for query in [
            "%2F..%2Fsecret.txt",
            "%2Fa%00b",
            "%FF%FE",
            "..%5Csecret.txt",
        ] {
            let (status, body) = http(
                &vault.socket,
                "GET",
                &format!("/v1/connections/{name}/content?path={query}"),
                None,
            )
            .expect("http");
            assert_eq!(status, 400, "{query}: {}", String::from_utf8_lossy(&body));
        }
        let err = fails(&vault, &["rm", &format!("{name}:/"), "--recursive"]);
        assert!(err.contains("root"), "{err}");
        assert!(fake.file_sha256("/secret.txt").is_some());
    }
}

#[test]
fn a_client_that_disconnects_mid_upload_leaves_nothing() {
    for (style, name) in STYLES {
        let (fake, vault) = setup(style, name, &[], &[]);
        // Half the file (in whole MiB), then the client is gone.
        let half = (BIG / 2) / (1 << 20) * (1 << 20);
        let stream = partial_upload(&vault.socket, name, "/partial.bin", BIG, half);
        if style == Style::Box {
            eventually(20, "a Box upload session to open", || {
                fake.open_upload_sessions() > 0
            });
        }
        drop(stream);
        eventually(20, "the upload session to be abandoned", || {
            fake.open_upload_sessions() == 0 || style == Style::Dropbox
        });
        // Nothing committed, and the daemon is fine.
        assert_eq!(fake.file_sha256("/partial.bin"), None);
        assert!(
            !fake.paths().iter().any(|p| p.contains("partial")),
            "{:?}",
            fake.paths()
        );
        let listing = ok(&vault, &["ls", &format!("{name}:/")]);
        assert!(!listing.contains("partial"));
    }
}

#[test]
fn a_failing_provider_is_reported_to_the_uploader() {
    let (fake, vault) = setup(Style::Box, "box", &[], &["--upload-cutoff", "21MB"]);
    let work = tempfile::tempdir().expect("tempdir");
    // 25 MB: above this connection's cutoff, so an upload session.
    let local = make_file(work.path(), "mid", 25_000_000);
    for _ in 0..6 {
        fake.inject_api_fault("upload_sessions/", ApiFault::ServerError);
    }
    let err = fails(&vault, &["put", s(&local), "box:/mid.bin"]);
    assert!(
        err.contains("HTTP 500"),
        "the provider's failure must reach the client: {err}"
    );
    assert_eq!(fake.file_sha256("/mid.bin"), None);
    eventually(10, "the failed session to be aborted", || {
        fake.open_upload_sessions() == 0
    });
    // With the faults used up, the same upload goes through the session path.
    ok(&vault, &["put", s(&local), "box:/mid.bin"]);
    assert_eq!(fake.file_sha256("/mid.bin"), Some(sha256_file(&local)));
    vault.assert_no_secrets(&fake);
}

/// The provider stores a part or chunk but its answer is lost (the fake
/// answers 500 after doing the work): the vault's retry must not corrupt or
/// duplicate anything. Box takes the identical part again; Dropbox answers
/// the repeated append with `incorrect_offset`, and the vault resyncs to
/// the offset Dropbox gives.
#[test]
fn a_part_whose_answer_is_lost_is_not_sent_twice_into_the_file() {
    for (style, name, extra, part_path) in [
        (
            Style::Box,
            "box",
            ["--upload-cutoff", "21MB"],
            "upload_sessions/",
        ),
        (Style::Dropbox, "dbx", ["--chunk-size", "4MB"], "append_v2"),
    ] {
        let (fake, vault) = setup(style, name, &[], &extra);
        let work = tempfile::tempdir().expect("tempdir");
        // 25 MB: an upload session on both, with several parts or chunks.
        let local = make_file(work.path(), "lost", 25_000_000);
        fake.inject_api_fault(part_path, ApiFault::LostAnswer);
        ok(&vault, &["put", s(&local), &format!("{name}:/lost.bin")]);
        assert_eq!(fake.pending_api_faults(), 0, "{name}: the fault was used");
        assert_eq!(
            fake.file_sha256("/lost.bin"),
            Some(sha256_file(&local)),
            "{name}: the file must be the source, byte for byte"
        );
        assert_eq!(fake.open_upload_sessions(), 0, "{name}");
        let back = work.path().join("back");
        ok(&vault, &["get", &format!("{name}:/lost.bin"), s(&back)]);
        assert_eq!(sha256_file(&back), sha256_file(&local), "{name}");
    }
}

/// A Dropbox append broke off after Dropbox had kept the first part of the
/// chunk: the retry hears `incorrect_offset` with an offset inside the
/// chunk, and the vault sends only the rest of it. Resending the whole
/// chunk from there would duplicate its start; refusing the offset would
/// fail the upload.
#[test]
fn a_chunk_dropbox_kept_in_part_is_resumed_inside_it() {
    let (fake, vault) = setup(Style::Dropbox, "dbx", &[], &["--chunk-size", "4MB"]);
    let work = tempfile::tempdir().expect("tempdir");
    let local = make_file(work.path(), "kept", 25_000_000);
    // Not a multiple of anything the vault reads or sends in.
    let kept = 1_000_003;
    fake.inject_api_fault("append_v2", ApiFault::KeptPrefix { bytes: kept });
    ok(&vault, &["put", s(&local), "dbx:/kept.bin"]);
    assert_eq!(fake.pending_api_faults(), 0, "the fault was used");
    assert_eq!(
        fake.file_sha256("/kept.bin"),
        Some(sha256_file(&local)),
        "the file must be the source, byte for byte"
    );
    assert_eq!(fake.open_upload_sessions(), 0);
    assert!(
        vault.log().contains("offset resync"),
        "the vault resynced: {}",
        vault.log()
    );
}

/// The commit (Box) or finish (Dropbox) is done but its answer is lost:
/// the retry finds the session gone, and the vault still reports the
/// upload, because the file holds exactly the bytes it sent. The same for
/// a one-request upload, which the retry simply makes again.
#[test]
fn a_commit_whose_answer_is_lost_still_reports_the_upload() {
    for (style, name, extra, commit_path, len) in [
        (
            Style::Box,
            "box",
            ["--upload-cutoff", "21MB"],
            "/commit",
            25_000_000,
        ),
        (
            Style::Dropbox,
            "dbx",
            ["--chunk-size", "4MB"],
            "finish",
            25_000_000,
        ),
        (
            Style::Box,
            "box",
            ["--upload-cutoff", "21MB"],
            "/files/content",
            1_000_000,
        ),
        (
            Style::Dropbox,
            "dbx",
            ["--chunk-size", "4MB"],
            "files/upload",
            1_000_000,
        ),
    ] {
        let (fake, vault) = setup(style, name, &[], &extra);
        // The lost answer is the commit's 201 itself, not a 202 before it.
        fake.set_box_commit_202s(0);
        let work = tempfile::tempdir().expect("tempdir");
        let local = make_file(work.path(), "lost", len);
        fake.inject_api_fault(commit_path, ApiFault::LostAnswer);
        let out = ok(&vault, &["put", s(&local), &format!("{name}:/lost.bin")]);
        assert!(
            out.contains("uploaded /lost.bin") && out.contains("new file"),
            "{name} {len}: {out}"
        );
        assert_eq!(fake.pending_api_faults(), 0, "{name} {len}: fault unused");
        assert_eq!(
            fake.file_sha256("/lost.bin"),
            Some(sha256_file(&local)),
            "{name} {len}"
        );
        assert_eq!(fake.paths(), ["/lost.bin"], "{name} {len}: no duplicate");
        if style == Style::Box {
            assert_eq!(fake.box_versions("/lost.bin"), Some(1), "{len}: no version");
        }
    }
}

/// Box takes at most 50 MB (not MiB) in one request: a file just above
/// that goes through an upload session with the default cutoff.
#[test]
fn a_box_file_just_over_50_mb_takes_an_upload_session() {
    let (fake, vault) = setup(Style::Box, "box", &[], &[]);
    let work = tempfile::tempdir().expect("tempdir");
    let local = make_file(work.path(), "over", 50_100_000);
    ok(&vault, &["put", s(&local), "box:/over.bin"]);
    assert_eq!(fake.file_sha256("/over.bin"), Some(sha256_file(&local)));
    // A cutoff above Box's limit is capped to it, not obeyed.
    let (fake, vault) = setup(Style::Box, "box", &[], &["--upload-cutoff", "60MB"]);
    ok(&vault, &["put", s(&local), "box:/over.bin"]);
    assert_eq!(fake.file_sha256("/over.bin"), Some(sha256_file(&local)));
}

/// The vault caches Box's path→id answers. When something else deletes
/// the file or its folder (here a second connection to the same account),
/// Box answers the upload 404; the vault resolves the path afresh and the
/// upload goes through, by one request or by a session.
#[test]
fn box_uploads_survive_ids_deleted_behind_the_vaults_back() {
    let (fake, vault) = setup(Style::Box, "box", &[], &["--upload-cutoff", "21MB"]);
    import_connection(&vault, &fake, "other", &[]);
    let work = tempfile::tempdir().expect("tempdir");
    let small = make_file(work.path(), "small", 1000);
    let big = make_file(work.path(), "big", 25_000_000);
    for (local, what) in [(&small, "one request"), (&big, "a session")] {
        // The file's id goes stale: its cached id is for a deleted file.
        ok(&vault, &["put", s(local), "box:/dir/a.bin"]);
        ok(&vault, &["rm", "other:/dir/a.bin"]);
        let out = ok(&vault, &["put", s(local), "box:/dir/a.bin"]);
        assert!(out.contains("new file"), "{what}: {out}");
        assert_eq!(fake.file_sha256("/dir/a.bin"), Some(sha256_file(local)));
        assert_eq!(fake.box_versions("/dir/a.bin"), Some(1), "{what}");
        // The folder's id goes stale: the folder is gone with the file.
        ok(&vault, &["rm", "other:/dir", "--recursive"]);
        ok(&vault, &["put", s(local), "box:/dir/a.bin"]);
        assert_eq!(
            fake.file_sha256("/dir/a.bin"),
            Some(sha256_file(local)),
            "{what}"
        );
        ok(&vault, &["rm", "box:/dir", "--recursive"]);
    }
    assert!(vault.log().contains("resolving the path again"));
}

/// A client that sent a whole Box upload and hung up before the answer
/// cancels the upload mid-session (here while Box keeps answering the
/// commit 202): the vault aborts the session rather than leave Box
/// holding the parts, and commits nothing.
#[test]
fn a_client_that_hangs_up_after_its_body_leaves_no_box_session() {
    let (fake, vault) = setup(Style::Box, "box", &[], &["--upload-cutoff", "21MB"]);
    // Each 202 holds the commit back a second: long enough to hang up in.
    fake.set_box_commit_202s(30);
    let len = 25_000_000;
    let stream = partial_upload(&vault.socket, "box", "/gone.bin", len, len);
    assert_eq!(fake.open_upload_sessions(), 1);
    // Hung up with the whole body sent (some of it maybe still buffered).
    drop(stream);
    eventually(20, "the upload session to be aborted", || {
        fake.open_upload_sessions() == 0
    });
    assert_eq!(fake.file_sha256("/gone.bin"), None, "nothing committed");
    assert!(
        vault.log().contains("dropped unfinished"),
        "{}",
        vault.log()
    );
}

/// Box downloads go by id, and the vault caches ids and hashes. A file
/// replaced behind its back (a new file under the name, a new id; then a
/// new version, the same id) is still found, and the hash the vault hands
/// on is Box's current one. A download server that fails is asked again
/// with a fresh URL, and a 202 (still processing) is waited out.
#[test]
fn box_downloads_find_replaced_files_and_retry_the_download_server() {
    use sha1::{Digest, Sha1};
    let (fake, vault) = setup(Style::Box, "box", &[], &[]);
    import_connection(&vault, &fake, "other", &[]);
    let work = tempfile::tempdir().expect("tempdir");
    let fetch = |wanted: &Path, what: &str| {
        let (status, head, body) = http_with_head(
            &vault.socket,
            "GET",
            "/v1/connections/box/content?path=/a.bin",
            None,
        )
        .expect("download");
        let bytes = std::fs::read(wanted).expect("read");
        assert_eq!(status, 200, "{what}: {head}");
        assert!(body == bytes, "{what}: the bytes are the current file's");
        let sha1 = hex(&Sha1::digest(&bytes));
        assert!(
            head.to_lowercase()
                .contains(&format!("x-token-vault-hash: {sha1}")),
            "{what}: {head}"
        );
    };
    let one = make_file(work.path(), "one", 1000);
    ok(&vault, &["put", s(&one), "box:/a.bin"]);
    fetch(&one, "as uploaded");
    let two = make_file(work.path(), "two", 2000);
    ok(&vault, &["rm", "other:/a.bin"]);
    ok(&vault, &["put", s(&two), "other:/a.bin"]);
    fetch(&two, "a new file under the name");
    let three = make_file(work.path(), "three", 3000);
    ok(&vault, &["put", s(&three), "other:/a.bin"]);
    fetch(&three, "a new version");

    fake.inject_api_fault("/dl/", ApiFault::ServerError);
    fake.box_download_202_once(true);
    let back = work.path().join("back");
    ok(&vault, &["get", "box:/a.bin", s(&back)]);
    assert_eq!(sha256_file(&back), sha256_file(&three));
    assert_eq!(
        fake.pending_api_faults(),
        0,
        "the download server failed once"
    );
}

/// Box decides an upload session's part size; the vault cuts the file in
/// parts of the size Box returned (the fake refuses any other), whatever
/// it would have chosen itself.
#[test]
fn box_parts_are_the_size_the_session_says() {
    let (fake, vault) = setup(Style::Box, "box", &[], &["--upload-cutoff", "21MB"]);
    let work = tempfile::tempdir().expect("tempdir");
    let local = make_file(work.path(), "odd", 25_000_000);
    for part_size in [5 * 1024 * 1024, 12_345_679] {
        fake.set_box_part_size(part_size);
        ok(&vault, &["put", s(&local), "box:/odd.bin"]);
        assert_eq!(
            fake.file_sha256("/odd.bin"),
            Some(sha256_file(&local)),
            "{part_size}"
        );
    }
}

/// Box names match whatever their case, as in Box itself: a path written
/// in another case reaches the same file and folder, and an upload to it
/// makes a new version rather than a second file.
#[test]
fn box_paths_match_names_in_any_case() {
    let (fake, vault) = setup(Style::Box, "box", &[], &[]);
    let work = tempfile::tempdir().expect("tempdir");
    let one = make_file(work.path(), "one", 1000);
    let two = make_file(work.path(), "two", 2000);
    ok(&vault, &["put", s(&one), "box:/Reports/Q1.bin"]);
    let back = work.path().join("back");
    ok(&vault, &["get", "box:/reports/q1.BIN", s(&back)]);
    assert_eq!(sha256_file(&back), sha256_file(&one));
    let out = ok(&vault, &["put", s(&two), "box:/REPORTS/q1.bin"]);
    assert!(out.contains("new version"), "{out}");
    let q1s: Vec<String> = fake
        .paths()
        .into_iter()
        .filter(|p| p.to_lowercase().contains("q1"))
        .collect();
    assert_eq!(q1s, ["/Reports/Q1.bin"], "one file, under its first name");
    assert_eq!(fake.box_versions("/Reports/Q1.bin"), Some(2));
    // A second connection has nothing cached: matching by listing, too;
    // and a version sent by upload session keeps the name as well.
    import_connection(&vault, &fake, "other", &["--upload-cutoff", "21MB"]);
    ok(&vault, &["get", "other:/rEpOrTs/Q1.bin", s(&back)]);
    assert_eq!(sha256_file(&back), sha256_file(&two));
    let big = make_file(work.path(), "big", 25_000_000);
    ok(&vault, &["put", s(&big), "other:/reports/Q1.BIN"]);
    assert_eq!(fake.file_sha256("/Reports/Q1.bin"), Some(sha256_file(&big)));
    assert_eq!(fake.box_versions("/Reports/Q1.bin"), Some(3));
    assert!(fake
        .paths()
        .iter()
        .all(|p| !p.contains("q1") && !p.contains("BIN")));
}

/// `get` checks what arrived against the provider's hash (Box's SHA-1,
/// Dropbox's `content_hash`): a download damaged on its way fails, says
/// so, and saves nothing; to stdout it fails too, after the fact.
#[test]
fn a_damaged_download_is_caught_by_the_providers_hash() {
    for (style, name, download) in [
        (Style::Box, "box", "/dl/"),
        (Style::Dropbox, "dbx", "files/download"),
    ] {
        let (fake, vault) = setup(style, name, &[], &[]);
        let work = tempfile::tempdir().expect("tempdir");
        let local = make_file(work.path(), "f", 100_000);
        let remote = format!("{name}:/f.bin");
        ok(&vault, &["put", s(&local), &remote]);
        let back = work.path().join("back");

        fake.inject_api_fault(download, ApiFault::DamagedBody);
        let err = fails(&vault, &["get", &remote, s(&back)]);
        assert!(
            err.contains("damaged") && err.contains("run it again"),
            "{name}: {err}"
        );
        let left: Vec<_> = std::fs::read_dir(work.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, ["f"], "{name}: nothing saved, no temp file left");

        fake.inject_api_fault(download, ApiFault::DamagedBody);
        let out = vault.cli(&["get", &remote, "-"]);
        assert!(!out.status.success(), "{name}: a damaged `get -` succeeded");
        assert!(String::from_utf8_lossy(&out.stderr).contains("damaged"));
        assert_eq!(fake.pending_api_faults(), 0, "{name}");

        ok(&vault, &["get", &remote, s(&back)]);
        assert_eq!(sha256_file(&back), sha256_file(&local), "{name}");
    }
}
