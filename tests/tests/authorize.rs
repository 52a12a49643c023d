//! End-to-end tests of `oauth-authorize`: the real binary, run as a child
//! process against a fake Box or Dropbox, with `fake-browser` as `BROWSER`
//! playing the user. See `spec/interface.md` (oauth-authorize) and
//! `spec/token-blob.md`.
//!
//! Every test gets its own fake and its own listener port (`--listen`), so
//! they run in parallel; only the `rclone authorize` test uses the default
//! port 53682, under [`DEFAULT_PORT_LOCK`]. Every run of our binary has its
//! stderr checked for secrets by the harness (`Running::wait`).

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shared::blob::{RCLONE_END_MARKER, RCLONE_START_MARKER};
use shared::TokenBlob;
use tests::authorize_harness::{Outcome, Setup, CLIENT_ID, DEFAULT_PORT, RUN_DEADLINE};
use tests::bins;
use tests::fake::{Fault, Style};
use url::Url;

/// Serialises the tests that listen on the default port 53682.
static DEFAULT_PORT_LOCK: Mutex<()> = Mutex::new(());

fn default_port_lock() -> MutexGuard<'static, ()> {
    DEFAULT_PORT_LOCK
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The value of `name` among decoded query or form pairs.
fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Checks that a successful run printed exactly one line of JSON that is a
/// blob, that it round-trips through `to_json`, that it holds a token the
/// fake issued and never the client secret; returns the blob.
fn single_line_blob(setup: &Setup, outcome: &Outcome) -> TokenBlob {
    outcome.assert_success();
    let out = &outcome.stdout;
    assert!(
        out.ends_with('\n') && out.matches('\n').count() == 1,
        "stdout is exactly one line: {out:?}"
    );
    let line = out.trim_end_matches('\n');
    assert!(line.starts_with('{') && line.ends_with('}'), "JSON: {line}");
    let blob = TokenBlob::parse(line).expect("stdout parses as a token blob");
    let again = TokenBlob::parse(&blob.to_json()).expect("to_json output parses again");
    assert_eq!(again, blob, "parse → to_json → parse round-trips");
    assert_eq!(again.to_json(), line, "to_json reproduces the printed line");
    assert_issued(setup, &blob);
    assert!(
        !out.contains(&setup.client_secret),
        "the blob never carries the client secret"
    );
    blob
}

/// The blob's tokens are ones the fake issued.
fn assert_issued(setup: &Setup, blob: &TokenBlob) {
    let issued = setup.fake.issued_secrets();
    assert!(
        issued.iter().any(|s| s == blob.access_token.expose()),
        "the access token was issued by the fake"
    );
    if let Some(rt) = &blob.refresh_token {
        assert!(
            issued.iter().any(|s| s == rt.expose()),
            "the refresh token was issued by the fake"
        );
    }
}

/// The authorize URL the binary printed on stderr (`--no-browser`).
fn printed_auth_url(setup: &Setup, stderr: &str) -> Url {
    let prefix = setup.fake.auth_url();
    let line = stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no authorize URL on stderr:\n{stderr}"));
    Url::parse(line).expect("the printed authorize URL parses")
}

/// `url` with query parameter `name` set to `value` (order kept).
fn with_param(url: &Url, name: &str, value: &str) -> Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == name {
                (k, value.to_owned())
            } else {
                (k, v)
            }
        })
        .collect();
    let mut out = url.clone();
    out.query_pairs_mut().clear().extend_pairs(pairs);
    out
}

/// Plays the user of `--no-browser`: opens `auth_url` with `fake-browser` in
/// capture mode and returns the callback URL it ended on, without
/// requesting it.
fn capture_callback(setup: &Setup, auth_url: &Url) -> String {
    let capture = setup.dir.path().join("captured-url");
    let _ = std::fs::remove_file(&capture);
    let mut cmd = Command::new(bins::path("fake-browser"));
    cmd.arg(auth_url.as_str())
        .env("FAKE_BROWSER_MODE", "capture")
        .env("FAKE_BROWSER_CAPTURE", &capture)
        .env("FAKE_BROWSER_LOG", &setup.browser_log);
    let outcome = setup.spawn(cmd).wait_unchecked(RUN_DEADLINE);
    outcome.assert_success();
    std::fs::read_to_string(&capture)
        .unwrap_or_else(|e| panic!("fake-browser captured no URL ({e}):\n{}", outcome.stderr))
}

// ------------------------------------------------------------- the flows

#[test]
fn box_flow_prints_one_line_blob() {
    let setup = Setup::new(Style::Box);
    let outcome = setup.run(setup.command("box"));
    let blob = single_line_blob(&setup, &outcome);

    assert!(blob.refresh_token.is_some(), "Box issues a refresh token");
    assert_eq!(blob.token_type.as_deref(), Some("bearer"));
    assert_eq!(blob.expires_in, Some(3600));
    let expiry = blob.expiry_utc().expect("an expiry").timestamp();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs() as i64;
    assert!(
        (3500..=3600).contains(&(expiry - now)),
        "expiry is now + expires_in: {} s from now",
        expiry - now
    );

    let counters = setup.fake.counters();
    assert_eq!(counters.authorize, 1);
    assert_eq!(counters.code_exchanges, 1);
    assert_eq!(counters.token_requests, 1);
    let query = setup
        .fake
        .last_authorize_query()
        .expect("an authorize request");
    assert_eq!(param(&query, "client_id"), Some(CLIENT_ID));
    assert_eq!(
        param(&query, "redirect_uri"),
        Some(setup.redirect_url().as_str())
    );
    assert!(
        param(&query, "state").is_some_and(|s| s.len() >= 43),
        "a long random state"
    );
    let form = setup.fake.last_token_form().expect("a token request");
    assert_eq!(param(&form, "grant_type"), Some("authorization_code"));

    // The browser went to the provider and came back to the listener.
    let log = setup.wait_for_browser_log(2, RUN_DEADLINE);
    assert_eq!(
        log,
        [
            format!("302 GET {}", setup.fake.auth_url()),
            format!("200 GET {}", setup.redirect_url()),
        ]
    );
    outcome.assert_stderr_mentions(&["token-vault import"]);
}

#[test]
fn dropbox_flow_sends_and_checks_pkce() {
    let setup = Setup::new(Style::Dropbox);
    let outcome = setup.run(setup.command("dropbox"));
    let blob = single_line_blob(&setup, &outcome);
    assert!(
        blob.refresh_token.is_some(),
        "token_access_type=offline gives a refresh token"
    );
    assert_eq!(blob.expires_in, Some(14400));

    let query = setup
        .fake
        .last_authorize_query()
        .expect("an authorize request");
    assert_eq!(param(&query, "code_challenge_method"), Some("S256"));
    assert_eq!(param(&query, "token_access_type"), Some("offline"));
    assert!(param(&query, "code_challenge").is_some_and(|c| c.len() == 43));
    let form = setup.fake.last_token_form().expect("a token request");
    let verifier = param(&form, "code_verifier").expect("the exchange sent code_verifier");
    assert!(verifier.len() >= 43);
    // The harness checks stderr for the verifier too; say it here as well.
    assert!(!outcome.stderr.contains(verifier));

    let counters = setup.fake.counters();
    assert_eq!(counters.pkce_verified, 1);
    assert_eq!(counters.code_exchanges, 1);
}

#[test]
fn forged_callbacks_are_refused_and_the_real_one_completes() {
    let setup = Setup::new(Style::Box);
    let mut cmd = setup.command("box");
    cmd.env("FAKE_BROWSER_MODE", "forge");
    let outcome = setup.run(cmd);
    single_line_blob(&setup, &outcome);
    assert_eq!(setup.fake.counters().code_exchanges, 1);

    let callback = setup.redirect_url();
    let log = setup.wait_for_browser_log(6, RUN_DEADLINE);
    assert_eq!(
        log,
        [
            format!("400 GET {callback}"),
            format!("400 GET {callback}"),
            format!("404 GET {callback}favicon.ico"),
            format!("404 GET {callback}other"),
            format!("302 GET {}", setup.fake.auth_url()),
            format!("200 GET {callback}"),
        ],
        "forged code (wrong state), forged code (no state), two other paths, then the real flow"
    );
    assert_eq!(
        outcome.stderr.matches("Ignored a request").count(),
        2,
        "both forged codes are reported:\n{}",
        outcome.stderr
    );
    assert!(
        !outcome.stderr.contains("forged"),
        "the forged code is not echoed"
    );
}

#[test]
fn denial_exits_non_zero() {
    let setup = Setup::new(Style::Box);
    setup.fake.deny_next_authorization();
    let outcome = setup.run(setup.command("box"));
    outcome
        .assert_failure()
        .assert_stderr_mentions(&["access_denied", "denied"]);
    let counters = setup.fake.counters();
    assert_eq!(counters.authorize, 1);
    assert_eq!(counters.token_requests, 0, "no exchange after a denial");
}

#[test]
fn timeout_exits_non_zero_and_names_the_option() {
    let setup = Setup::new(Style::Box);
    let mut cmd = setup.command("box");
    cmd.env("FAKE_BROWSER_MODE", "none")
        .args(["--timeout", "2"]);
    let started = Instant::now();
    let outcome = setup.run(cmd);
    let took = started.elapsed();
    outcome
        .assert_failure()
        .assert_stderr_mentions(&["timed out", "--timeout"]);
    assert!(
        took >= Duration::from_millis(1900),
        "waited the whole timeout: {took:?}"
    );
    assert_eq!(setup.fake.counters().authorize, 0);
}

#[test]
fn ctrl_c_exits_130_and_writes_nothing() {
    let setup = Setup::new(Style::Box);
    let output = setup.dir.path().join("never.json");
    let mut cmd = setup.command("box");
    cmd.env("FAKE_BROWSER_MODE", "none")
        .arg("--output")
        .arg(&output);
    let running = setup.spawn(cmd);
    // The Ctrl-C handler is installed before the browser is opened.
    running.wait_for_stderr("Opening the browser", RUN_DEADLINE);
    // The shell's builtin `kill`: no dependency on procps.
    let status = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", running.id())])
        .status()
        .expect("run sh -c kill");
    assert!(status.success());
    let outcome = running.wait(RUN_DEADLINE);
    assert_eq!(outcome.status.code(), Some(130), "{}", outcome.stderr);
    assert_eq!(outcome.stdout, "");
    outcome.assert_stderr_mentions(&["interrupted"]);
    assert!(!output.exists(), "nothing was written");
}

#[test]
fn port_in_use_names_the_holder_and_suggests_listen() {
    let setup = Setup::new(Style::Box);
    let held = TcpListener::bind(("127.0.0.1", setup.port)).expect("hold the port");
    let outcome = setup.run(setup.command("box"));
    drop(held);
    outcome.assert_failure().assert_stderr_mentions(&[
        "already in use",
        &format!("pid {}", std::process::id()),
        "--listen",
    ]);
    assert_eq!(
        setup.fake.counters().authorize,
        0,
        "the browser is not opened when the listener cannot bind"
    );
    assert!(setup.browser_log_lines().is_empty());
}

#[test]
fn localhost_redirect_url_works() {
    let port = tests::authorize_harness::free_port();
    let redirect = format!("http://localhost:{port}/");
    let setup = Setup::with_redirects(Style::Dropbox, port, &[redirect.as_str()]);
    let mut cmd = setup.command("dropbox");
    cmd.args(["--redirect-url", &redirect]);
    let outcome = setup.run(cmd);
    single_line_blob(&setup, &outcome);
    let query = setup
        .fake
        .last_authorize_query()
        .expect("an authorize request");
    assert_eq!(param(&query, "redirect_uri"), Some(redirect.as_str()));
    let form = setup.fake.last_token_form().expect("a token request");
    assert_eq!(param(&form, "redirect_uri"), Some(redirect.as_str()));
    let log = setup.wait_for_browser_log(2, RUN_DEADLINE);
    assert_eq!(log.last(), Some(&format!("200 GET {redirect}")));
}

// ------------------------------------------------------------- output

#[test]
fn output_file_is_private_and_stdout_stays_empty() {
    let setup = Setup::new(Style::Box);
    let path = setup.dir.path().join("box-token.json");
    let mut cmd = setup.command("box");
    cmd.arg("--output").arg(&path);
    let outcome = setup.run(cmd);
    outcome.assert_success();
    assert_eq!(outcome.stdout, "", "the blob goes to the file only");
    let mode = std::fs::metadata(&path)
        .expect("the output file exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let text = std::fs::read_to_string(&path).expect("read the output file");
    assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
    let blob = TokenBlob::parse(&text).expect("the file holds a blob");
    assert_issued(&setup, &blob);
    assert!(!text.contains(&setup.client_secret));
    outcome.assert_stderr_mentions(&["box-token.json", "0600"]);
    // Nothing but the output file was left in the folder (no temp files).
    let mut names: Vec<String> = std::fs::read_dir(setup.dir.path())
        .expect("list the folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["box-token.json", "browser.log", "client.secret"]);
}

#[test]
fn rclone_flag_wraps_the_blob_in_marker_lines() {
    let setup = Setup::new(Style::Box);
    let mut cmd = setup.command("box");
    cmd.arg("--rclone");
    let outcome = setup.run(cmd);
    outcome.assert_success();
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{:?}", outcome.stdout);
    assert_eq!(lines[0], RCLONE_START_MARKER);
    assert_eq!(lines[2], RCLONE_END_MARKER);
    let whole = TokenBlob::parse(&outcome.stdout).expect("the paste parses");
    let inner = TokenBlob::parse(lines[1]).expect("the middle line parses alone");
    assert_eq!(whole, inner);
    assert_eq!(inner.to_json(), lines[1]);
    assert_issued(&setup, &whole);
}

// ------------------------------------------------------------- paste-back

#[test]
fn paste_back_rejects_a_wrong_state_then_completes() {
    let setup = Setup::new(Style::Dropbox);
    let mut cmd = setup.command("dropbox");
    cmd.arg("--no-browser");
    let mut running = setup.spawn_with_stdin(cmd);
    let stderr = running.wait_for_stderr("paste here", RUN_DEADLINE);
    let auth_url = printed_auth_url(&setup, &stderr);
    let callback = capture_callback(&setup, &auth_url);
    assert!(callback.starts_with(&setup.redirect_url()), "{callback}");
    assert!(
        setup
            .browser_log_lines()
            .iter()
            .all(|l| !l.contains(&format!(":{}/", setup.port))),
        "capture mode never reached the listener"
    );

    // A URL with another run's state is refused, and the wait goes on.
    let wrong = with_param(
        &Url::parse(&callback).expect("a URL"),
        "state",
        "not-this-run",
    );
    running.write_line(wrong.as_str());
    running.wait_for_stderr("That is not the URL from this authorization", RUN_DEADLINE);
    assert_eq!(setup.fake.counters().token_requests, 0);

    // The real one, as pasted from a terminal: surrounding blanks.
    running.write_line(&format!("  {callback}  "));
    let outcome = running.wait(RUN_DEADLINE);
    single_line_blob(&setup, &outcome);
    let counters = setup.fake.counters();
    assert_eq!(counters.code_exchanges, 1);
    assert_eq!(counters.pkce_verified, 1);
    assert!(
        outcome.stderr.contains("ssh -L"),
        "--no-browser explains the tunnel:\n{}",
        outcome.stderr
    );
}

#[test]
fn paste_back_of_a_code_for_another_redirect_uri_suggests_redirect_url() {
    // The token endpoint's redirect_uri check is provoked by pasting back
    // a code that was issued for another registered redirect URI (with this
    // run's state): the exchange then sends a redirect_uri that does not
    // match the code's.
    let port = tests::authorize_harness::free_port();
    let ip = format!("http://127.0.0.1:{port}/");
    let localhost = format!("http://localhost:{port}/");
    let setup = Setup::with_redirects(Style::Box, port, &[ip.as_str(), localhost.as_str()]);
    let mut cmd = setup.command("box");
    cmd.arg("--no-browser");
    let mut running = setup.spawn_with_stdin(cmd);
    let stderr = running.wait_for_stderr("paste here", RUN_DEADLINE);
    let auth_url = printed_auth_url(&setup, &stderr);
    let detour = with_param(&auth_url, "redirect_uri", &localhost);
    let callback = capture_callback(&setup, &detour);
    assert!(callback.starts_with(&localhost), "{callback}");
    running.write_line(&callback);
    let outcome = running.wait(RUN_DEADLINE);
    outcome.assert_failure().assert_stderr_mentions(&[
        "invalid_grant",
        "redirect",
        "--redirect-url",
    ]);
    assert_eq!(setup.fake.counters().code_exchanges, 0);
}

// ------------------------------------------------------------- grants and errors

#[test]
fn box_client_credentials_give_a_blob_without_refresh_token() {
    let setup = Setup::new(Style::Box);
    let mut cmd = setup.command("box");
    cmd.args([
        "--client-credentials",
        "--param",
        "box_subject_type=enterprise",
        "--param",
        "box_subject_id=123",
    ]);
    let outcome = setup.run(cmd);
    let blob = single_line_blob(&setup, &outcome);
    assert!(blob.refresh_token.is_none());
    let counters = setup.fake.counters();
    assert_eq!(counters.client_credentials, 1);
    assert_eq!(counters.token_requests, 1);
    assert_eq!(counters.authorize, 0, "no browser for client credentials");
    let form = setup.fake.last_token_form().expect("a token request");
    assert_eq!(param(&form, "grant_type"), Some("client_credentials"));
    assert_eq!(param(&form, "box_subject_type"), Some("enterprise"));
    assert_eq!(param(&form, "box_subject_id"), Some("123"));
    outcome.assert_stderr_mentions(&["no refresh token"]);
    assert!(setup.browser_log_lines().is_empty());
}

#[test]
fn invalid_grant_at_the_token_endpoint_is_reported() {
    let setup = Setup::new(Style::Box);
    setup.fake.inject_token_fault(Fault::InvalidGrant);
    let outcome = setup.run(setup.command("box"));
    outcome
        .assert_failure()
        .assert_stderr_mentions(&["invalid_grant", "run oauth-authorize again"]);
    let counters = setup.fake.counters();
    assert_eq!(counters.token_requests, 1, "invalid_grant is not retried");
    assert_eq!(counters.code_exchanges, 0);
}

#[test]
fn rate_limited_token_request_is_retried() {
    let setup = Setup::new(Style::Dropbox);
    setup.fake.inject_token_fault(Fault::TooManyRequests {
        retry_after_secs: 1,
    });
    let outcome = setup.run(setup.command("dropbox"));
    single_line_blob(&setup, &outcome);
    outcome.assert_stderr_mentions(&["429", "retrying in 1 s"]);
    let counters = setup.fake.counters();
    assert_eq!(counters.token_requests, 2);
    assert_eq!(counters.code_exchanges, 1);
    assert_eq!(
        counters.pkce_verified, 1,
        "the retry sends the same code and verifier"
    );
}

// ------------------------------------------------------------- the harness

/// The secret check itself: a child that leaks the client secret on stderr
/// fails the run.
#[test]
#[should_panic(expected = "the child's stderr contains the client secret")]
fn harness_catches_a_secret_on_stderr() {
    let setup = Setup::new(Style::Box);
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo \"oops: $LEAK\" >&2"])
        .env("LEAK", &setup.client_secret);
    setup.spawn(cmd).wait(RUN_DEADLINE);
}

// ------------------------------------------------------------- rclone interop

/// rclone on PATH. Missing rclone fails the test, unless
/// `TOKEN_VAULT_SKIP_RCLONE=1` says to skip; `None` means skip.
fn rclone() -> Option<PathBuf> {
    if std::env::var("TOKEN_VAULT_SKIP_RCLONE").as_deref() == Ok("1") {
        eprintln!("skipped: TOKEN_VAULT_SKIP_RCLONE=1");
        return None;
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("rclone"))
            .find(|p| p.is_file())
    });
    Some(found.unwrap_or_else(|| {
        panic!(
            "rclone is not on PATH: the blob-compatibility tests need it (Debian: \
             `apt-get install rclone`). Set TOKEN_VAULT_SKIP_RCLONE=1 to skip them."
        )
    }))
}

/// `rclone` with a private config file and no inherited RCLONE_* settings.
fn rclone_command(rclone: &Path, config: &Path) -> Command {
    let mut cmd = Command::new(rclone);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("RCLONE_") {
            cmd.env_remove(name);
        }
    }
    for name in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"] {
        cmd.env_remove(name);
    }
    cmd.arg("--config").arg(config);
    cmd
}

#[test]
fn rclone_authorize_output_parses_as_a_blob() {
    let Some(rclone) = rclone() else { return };
    let _port = default_port_lock();
    let redirect = format!("http://127.0.0.1:{DEFAULT_PORT}/");
    let setup = Setup::with_redirects(Style::Box, DEFAULT_PORT, &[redirect.as_str()]);
    if let Err(e) = TcpListener::bind(("127.0.0.1", DEFAULT_PORT)) {
        panic!("rclone authorize needs 127.0.0.1:{DEFAULT_PORT}, which is busy: {e}");
    }

    // rclone opens the browser with `xdg-open URL`: make that fake-browser.
    let bin = setup.dir.path().join("bin");
    std::fs::create_dir(&bin).expect("create a bin folder");
    std::os::unix::fs::symlink(bins::path("fake-browser"), bin.join("xdg-open"))
        .expect("link xdg-open to fake-browser");
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("a PATH");

    let config = setup.dir.path().join("rclone.conf");
    let mut cmd = rclone_command(&rclone, &config);
    cmd.args(["authorize", "box"])
        .env("PATH", path)
        .env("BROWSER", bins::path("fake-browser"))
        .env("FAKE_BROWSER_MODE", "follow")
        .env("FAKE_BROWSER_LOG", &setup.browser_log)
        .env("RCLONE_BOX_AUTH_URL", setup.fake.auth_url())
        .env("RCLONE_BOX_TOKEN_URL", setup.fake.token_url())
        .env("RCLONE_BOX_CLIENT_ID", CLIENT_ID)
        .env("RCLONE_BOX_CLIENT_SECRET", &setup.client_secret);
    let outcome = setup.spawn(cmd).wait_unchecked(RUN_DEADLINE);
    outcome.assert_success();
    assert!(
        outcome.stdout.contains(RCLONE_START_MARKER) && outcome.stdout.contains(RCLONE_END_MARKER),
        "rclone prints its marker lines:\n{}",
        outcome.stdout
    );
    let blob = TokenBlob::parse(&outcome.stdout).expect("rclone's paste parses as a blob");
    assert_issued(&setup, &blob);
    assert!(blob.refresh_token.is_some());
    assert!(blob.expiry.is_some());
    assert_eq!(setup.fake.counters().code_exchanges, 1);
}

#[test]
fn our_blob_loads_into_rclone() {
    let Some(rclone) = rclone() else { return };
    let setup = Setup::new(Style::Box);
    let outcome = setup.run(setup.command("box"));
    let blob = single_line_blob(&setup, &outcome);
    let line = outcome.stdout.trim_end();

    let config = setup.dir.path().join("rclone.conf");
    let mut create = rclone_command(&rclone, &config);
    create
        .args([
            "config",
            "create",
            "ourbox",
            "box",
            "token",
            line,
            "token_url",
        ])
        .arg(setup.fake.token_url())
        .args(["config_refresh_token", "false", "--non-interactive"]);
    let created = setup.spawn(create).wait_unchecked(RUN_DEADLINE);
    created.assert_success();

    let mut dump = rclone_command(&rclone, &config);
    dump.args(["config", "dump"]);
    let dumped = setup.spawn(dump).wait_unchecked(RUN_DEADLINE);
    dumped.assert_success();
    let config: serde_json::Value =
        serde_json::from_str(&dumped.stdout).expect("rclone config dump prints JSON");
    let remote = &config["ourbox"];
    assert_eq!(remote["type"], "box", "{config}");
    let token = remote["token"]
        .as_str()
        .expect("the remote has a token string");
    let loaded = TokenBlob::parse(token).expect("rclone's stored token parses");
    assert_eq!(loaded.access_token, blob.access_token);
    assert_eq!(loaded.refresh_token, blob.refresh_token);
    assert_eq!(loaded.expiry_utc(), blob.expiry_utc());
    assert_eq!(
        setup.fake.counters().refreshes,
        0,
        "config_refresh_token false: rclone did not refresh"
    );
}
