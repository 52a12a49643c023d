//! The secret sweep: the suite's scenarios in one run, with the daemon
//! logging at trace level (every dependency's too), then a grep of the
//! daemon log, the audit log and every client's stderr for every secret the
//! fakes issued: access and refresh tokens, codes, PKCE verifiers, the
//! canary tokens that broken provider answers quote, and the client
//! secrets. It must find none.
//!
//! Scenarios: an `oauth-authorize` run pasted into the vault; import in
//! good and bad forms; token, forced refresh, a refresh storm, a 401 seen
//! by a client, `invalid_grant` and re-import; transient and broken
//! provider answers; who-am-I; transfers small and chunked, with 401s and
//! 429s mid-upload; errors of every kind; remove with revoke; a clean stop.
//! `SWEEP_KEEP_LOG=FILE` keeps the daemon's trace log for a look.

use std::time::Duration;
use tests::authorize_harness::{self, Setup};
use tests::fake::{ApiFault, Fault, Style};
use tests::transfer_harness::{
    eventually, fails, fake, import_connection, import_expiring, make_file, ok, s,
};
use tests::vault_harness::{blob, endpoint_flags, http, Vault, CLIENT_ID, CLIENT_SECRET};

/// `oauth-authorize dropbox` against its own fake, the blob pasted into
/// the vault as `authorized`; the authorize run's stderr.
fn authorize_and_paste(vault: &Vault, setup: &Setup) -> String {
    let outcome = setup.run(setup.command("dropbox"));
    outcome.assert_success();
    let id_arg = authorize_harness::CLIENT_ID;
    let secret_file = setup.secret_file.to_str().expect("utf-8").to_string();
    let endpoints = endpoint_flags(&setup.fake);
    let mut args = vec![
        "import",
        "authorized",
        "--provider",
        "dropbox",
        "--client-id",
        id_arg,
        "--client-secret-file",
        &secret_file,
    ];
    args.extend(endpoints.iter().map(String::as_str));
    let out = vault.cli_with(&args, Some(&outcome.stdout), None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(vault, &["token", "authorized"]);
    ok(vault, &["refresh", "authorized"]);
    ok(vault, &["test", "authorized"]);
    outcome.stderr
}

#[test]
fn no_secret_reaches_any_log_or_message_even_at_trace_level() {
    let bx = fake(Style::Box);
    let dbx = fake(Style::Dropbox);
    let setup = Setup::new(Style::Dropbox);
    let mut vault = Vault::start_with_log(&[], "trace");
    let work = tempfile::tempdir().expect("tempdir");

    // oauth-authorize on the "workstation", pasted into the vault.
    let authorize_stderr = authorize_and_paste(&vault, &setup);

    // Import, token, forced refresh, who-am-I, on both providers.
    import_connection(&vault, &bx, "b", &[]);
    import_connection(&vault, &dbx, "d", &[]);
    for name in ["b", "d"] {
        ok(&vault, &["token", name]);
        ok(&vault, &["token", name, "--json"]);
        ok(&vault, &["refresh", name]);
        ok(&vault, &["test", name]);
        ok(&vault, &["status", name, "--json"]);
        // A 401 seen by a client: the vault refreshes early.
        ok(&vault, &["token", name, "--rejected"]);
    }
    ok(&vault, &["list"]);
    ok(&vault, &["list", "--json"]);

    // A refresh storm on an expired Box token.
    import_expiring(&vault, &bx, "storm", -60, &[]);
    bx.set_token_delay(Duration::from_millis(300));
    let storm: Vec<_> = (0..32)
        .map(|_| {
            let socket = vault.socket.clone();
            std::thread::spawn(move || http(&socket, "GET", "/v1/connections/storm/token", None))
        })
        .collect();
    for h in storm {
        let (status, _) = h.join().expect("thread").expect("request");
        assert_eq!(status, 200);
    }
    bx.set_token_delay(Duration::ZERO);

    // invalid_grant: needs-reauth, then a fresh paste.
    bx.inject_token_fault(Fault::InvalidGrant);
    fails(&vault, &["refresh", "b"]);
    fails(&vault, &["token", "b"]);
    ok(&vault, &["list"]);
    let (at, rt) = bx.seed_tokens(CLIENT_ID, 3600);
    let out = vault.cli_with(
        &["import", "b", "--replace"],
        Some(&blob(&at, Some(&rt), 3600)),
        None,
    );
    assert!(out.status.success());

    // Transient and broken answers from the token endpoint.
    for fault in [
        Fault::ServerError,
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        Fault::GarbageJson,
        Fault::HtmlPage { status: 200 },
        Fault::HtmlPage { status: 503 },
        Fault::TruncatedBody,
        Fault::MissingFields,
        Fault::Oversized {
            bytes: 10 * 1000 * 1000,
        },
    ] {
        dbx.inject_token_fault(fault);
        fails(&vault, &["refresh", "d"]);
        ok(&vault, &["status", "d"]);
        ok(&vault, &["token", "d"]);
        dbx.clear_token_faults();
        eventually(20, "the retry to succeed", || {
            vault.status("d")["state"] == "ok"
        });
    }

    // Transfers: small ones on both providers.
    let small_file = make_file(work.path(), "small", 100_000);
    let small = s(&small_file);
    for name in ["b", "d"] {
        ok(&vault, &["mkdir", &format!("{name}:/sweep/dir")]);
        ok(&vault, &["put", small, &format!("{name}:/sweep/small.bin")]);
        ok(&vault, &["ls", &format!("{name}:/sweep")]);
        ok(&vault, &["get", &format!("{name}:/sweep/small.bin"), "-"]);
        let back = work.path().join(format!("back-{name}"));
        ok(
            &vault,
            &[
                "get",
                &format!("{name}:/sweep/small.bin"),
                back.to_str().expect("utf-8"),
            ],
        );
        ok(&vault, &["rm", &format!("{name}:/sweep/small.bin")]);
    }
    // Chunked ones, with a 401 and a 429 in the middle.
    import_connection(&vault, &bx, "bc", &["--upload-cutoff", "21MB"]);
    import_connection(&vault, &dbx, "dc", &["--chunk-size", "4MiB"]);
    let big_file = make_file(work.path(), "big", 25_000_000);
    let big = s(&big_file);
    for (name, part) in [("bc", "upload_sessions/"), ("dc", "append_v2")] {
        dbx.inject_api_fault(part, ApiFault::Unauthorized);
        bx.inject_api_fault(part, ApiFault::Unauthorized);
        dbx.inject_api_fault(
            part,
            ApiFault::TooManyRequests {
                retry_after_secs: 1,
            },
        );
        bx.inject_api_fault(
            part,
            ApiFault::TooManyRequests {
                retry_after_secs: 1,
            },
        );
        ok(&vault, &["put", big, &format!("{name}:/big.bin")]);
        ok(&vault, &["get", &format!("{name}:/big.bin"), "-"]);
    }
    // A download that meets a 401 and a 500.
    bx.inject_api_fault("", ApiFault::Unauthorized);
    ok(&vault, &["ls", "b:/"]);
    bx.inject_api_fault("", ApiFault::ServerError);
    bx.inject_api_fault("", ApiFault::ServerError);
    bx.inject_api_fault("", ApiFault::ServerError);
    bx.inject_api_fault("", ApiFault::ServerError);
    bx.inject_api_fault("", ApiFault::ServerError);
    bx.inject_api_fault("", ApiFault::ServerError);
    let _ = vault.cli(&["ls", "b:/"]);

    // Errors of every kind.
    fails(&vault, &["get", "b:/no/such/file", "-"]);
    fails(&vault, &["get", "d:/../escape", "-"]);
    fails(&vault, &["rm", "b:/", "--recursive"]);
    fails(&vault, &["token", "nosuch"]);
    fails(&vault, &["refresh", "nosuch"]);
    // A broken paste that holds real tokens: the error must not quote it.
    let (at, rt) = dbx.seed_tokens(CLIENT_ID, 3600);
    let broken = format!(r#"{{"access_token":"{at}","refresh_token":"{rt}","expiry":"#);
    let out = vault.cli_with(
        &["import", "x", "--provider", "dropbox", "--client-id", "c"],
        Some(&broken),
        None,
    );
    assert!(!out.status.success());
    let out = vault.cli_with(
        &["import", "d", "--provider", "dropbox", "--client-id", "c"],
        Some(&blob(&at, Some(&rt), 3600)),
        None,
    );
    assert!(!out.status.success(), "an existing name needs --replace");
    // The same over the raw socket, and oversized, and with bad bytes.
    let body = format!(r#"{{"blob":"{at}","bogus":"{rt}"}}"#);
    let (status, answer) = http(
        &vault.socket,
        "PUT",
        "/v1/connections/y",
        Some(body.as_bytes()),
    )
    .expect("http");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&answer));
    let huge = format!(r#"{{"blob":"{at}","pad":"{}"}}"#, "x".repeat(2 << 20));
    let (status, _) = http(
        &vault.socket,
        "PUT",
        "/v1/connections/y",
        Some(huge.as_bytes()),
    )
    .expect("http");
    assert_eq!(status, 413);
    let (status, _) = http(
        &vault.socket,
        "GET",
        &format!("/v1/connections/{at}%00/token"),
        None,
    )
    .expect("http");
    assert_eq!(status, 400);

    // Remove with revoke; then stop cleanly, so every log line is written.
    ok(&vault, &["remove", "d", "--revoke"]);
    ok(&vault, &["remove", "authorized", "--revoke"]);
    let status = vault.stop();
    assert!(status.success(), "{status}");

    // The sweep.
    let texts = [
        ("the daemon log", vault.log()),
        ("the audit log", vault.audit()),
        ("a client's stderr", vault.client_stderr()),
        ("oauth-authorize's stderr", authorize_stderr),
    ];
    assert!(
        texts[0].1.contains("TRACE"),
        "the daemon did not log at trace level"
    );
    if let Ok(dump) = std::env::var("SWEEP_KEEP_LOG") {
        std::fs::write(dump, &texts[0].1).expect("keep the log");
    }
    let mut secrets: Vec<(String, String)> = Vec::new();
    for (who, fake) in [("Box", &bx), ("Dropbox", &dbx), ("authorize", &setup.fake)] {
        secrets.extend(
            fake.issued_secrets()
                .into_iter()
                .map(|s| (format!("a secret the {who} fake issued"), s)),
        );
    }
    secrets.push((
        "the vault tests' client secret".into(),
        CLIENT_SECRET.into(),
    ));
    secrets.push((
        "the authorize test's client secret".into(),
        setup.client_secret.clone(),
    ));
    let mut leaks = Vec::new();
    for (kind, secret) in &secrets {
        for (what, text) in &texts {
            for line in text.lines().filter(|l| l.contains(secret.as_str())) {
                let shown: String = line.replace(secret.as_str(), "<SECRET>");
                leaks.push(format!(
                    "{kind} ({}…) in {what}: {}",
                    &secret[..secret.len().min(10)],
                    &shown[..shown.len().min(600)]
                ));
            }
        }
    }
    eprintln!(
        "secret sweep: {} secrets against {} bytes of logs and messages",
        secrets.len(),
        texts.iter().map(|(_, t)| t.len()).sum::<usize>()
    );
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}
