//! End-to-end tests of the three ways to authorize a headless host without
//! pasting a plaintext refresh token (issue 5): bootstrap mode
//! (`token-vault authorize` + `oauth-authorize --bootstrap`), sealed blobs
//! (`token-vault recipient` + `oauth-authorize --seal-to` + `import`), and
//! the device grant (`token-vault authorize --device`).
//!
//! Everything runs for real: the `token-vault` daemon and its client, the
//! `oauth-authorize` binary with `fake-browser` as the user, and the fake
//! provider (whose device endpoint is scripted). The paste-back step is fed
//! on stdin. Waits poll with deadlines; nothing sleeps for a fixed time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};
use tests::authorize_harness::{authorize_binary, Outcome, Setup, CLIENT_ID, RUN_DEADLINE};
use tests::bins;
use tests::fake::{DeviceAnswer, Style};
use tests::vault_harness::{endpoint_flags, http, provider_name, Vault};

/// How long a device test may take: its polls alone take ~10 s.
const DEVICE_DEADLINE: Duration = Duration::from_secs(60);

/// The command prefix `token-vault authorize` prints on stdout.
const BOOTSTRAP_COMMAND: &str = "oauth-authorize --bootstrap '";

/// `token-vault --socket S ARGS…`, with no client secret from the environment.
fn token_vault(vault: &Vault, args: &[&str]) -> Command {
    let mut cmd = Command::new(bins::path("token-vault"));
    cmd.arg("--socket").arg(&vault.socket).args(args);
    cmd.env_remove("TOKEN_VAULT_CLIENT_SECRET")
        .env_remove("OAUTH_CLIENT_SECRET");
    cmd
}

/// `token-vault authorize NAME` for `setup`'s fake and client, bootstrap
/// mode with the redirect on the setup's own port, plus `extra`.
fn authorize_command(vault: &Vault, setup: &Setup, name: &str, extra: &[&str]) -> Command {
    let fake = &setup.fake;
    let secret_file = setup.secret_file.to_string_lossy().into_owned();
    let redirect = setup.redirect_url();
    let endpoints = endpoint_flags(fake);
    let mut args = vec![
        "authorize",
        name,
        "--provider",
        provider_name(fake.style()),
        "--client-id",
        CLIENT_ID,
        "--client-secret-file",
        &secret_file,
        "--redirect-url",
        &redirect,
    ];
    args.extend(endpoints.iter().map(String::as_str));
    args.extend_from_slice(extra);
    token_vault(vault, &args)
}

/// `oauth-authorize --bootstrap STRING` on the "workstation", with
/// `fake-browser` following every redirect.
fn workstation_command(setup: &Setup, bootstrap: &str) -> Command {
    let mut cmd = Command::new(authorize_binary());
    cmd.arg("--bootstrap").arg(bootstrap);
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "OAUTH_CLIENT_ID",
        "OAUTH_CLIENT_SECRET",
    ] {
        cmd.env_remove(name);
    }
    cmd.env("NO_PROXY", "127.0.0.1,localhost,::1")
        .env("BROWSER", bins::path("fake-browser"))
        .env("FAKE_BROWSER_MODE", "follow")
        .env("FAKE_BROWSER_LOG", &setup.browser_log);
    cmd
}

/// The bootstrap string out of the `oauth-authorize --bootstrap '…'` line.
fn bootstrap_string(stdout: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(BOOTSTRAP_COMMAND))
        .unwrap_or_else(|| panic!("no bootstrap command on stdout:\n{stdout}"));
    line[BOOTSTRAP_COMMAND.len()..]
        .strip_suffix('\'')
        .expect("the string is single-quoted")
        .to_string()
}

/// The JSON inside a `PREFIX` + base64url string.
fn decode(prefix: &str, text: &str) -> Value {
    let body = text
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{text:?} does not start with {prefix}"));
    let bytes = URL_SAFE_NO_PAD.decode(body).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// The same prefix + base64url(JSON), re-encoded.
fn encode(prefix: &str, json: &Value) -> String {
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(json.to_string()))
}

/// The one response line a successful workstation run printed.
fn response_line(outcome: &Outcome) -> String {
    outcome.assert_success();
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one line on stdout: {:?}",
        outcome.stdout
    );
    assert!(lines[0].starts_with("tvcode1."), "{}", lines[0]);
    lines[0].to_string()
}

/// The id of the newest authorization of `name`, from the socket API.
fn authorization_id(vault: &Vault, name: &str) -> String {
    let (status, body) = http(&vault.socket, "GET", "/v1/authorizations", None).expect("list");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let list: Value = serde_json::from_slice(&body).expect("JSON");
    list["authorizations"]
        .as_array()
        .expect("an array")
        .iter()
        .find(|a| a["name"] == name)
        .and_then(|a| a["id"].as_str())
        .unwrap_or_else(|| panic!("no authorization of {name}: {list}"))
        .to_string()
}

/// `POST /v1/authorizations/{id}/complete` with `response`; (status, body).
fn complete(vault: &Vault, id: &str, response: &str) -> (u16, Value) {
    let body = serde_json::json!({ "response": response }).to_string();
    let (status, answer) = http(
        &vault.socket,
        "POST",
        &format!("/v1/authorizations/{id}/complete"),
        Some(body.as_bytes()),
    )
    .expect("complete");
    (
        status,
        serde_json::from_slice(&answer).expect("JSON answer"),
    )
}

/// The access and refresh tokens the fake issued (not codes or secrets).
fn issued_tokens(setup: &Setup) -> Vec<String> {
    setup
        .fake
        .issued_secrets()
        .into_iter()
        .filter(|s| s.contains("-at-") || s.contains("-rt-"))
        .collect()
}

fn assert_absent(text: &str, secret: &str, what: &str, place: &str) {
    assert!(
        !secret.is_empty() && !text.contains(secret),
        "{place} contains {what}:\n{text}"
    );
}

/// One whole bootstrap loop, up to the stored connection.
struct Loop {
    bootstrap: String,
    workstation: Outcome,
    host: Outcome,
}

/// `via_stdin` gives the workstation the string as `--bootstrap -` on
/// stdin (out of the process list) instead of as an argument.
fn bootstrap_loop(vault: &Vault, setup: &Setup, name: &str, via_stdin: bool) -> Loop {
    let mut host = setup.spawn_with_stdin(authorize_command(vault, setup, name, &[]));
    let stdout = host.wait_for_stdout("'\n", RUN_DEADLINE);
    let bootstrap = bootstrap_string(&stdout);
    host.wait_for_stderr("paste here", RUN_DEADLINE);
    assert_eq!(
        setup.fake.counters().token_requests,
        0,
        "nothing is exchanged before the code comes back"
    );

    let workstation = if via_stdin {
        let mut ws = setup.spawn_with_stdin(workstation_command(setup, "-"));
        ws.write_line(&bootstrap);
        ws.wait(RUN_DEADLINE)
    } else {
        setup.run(workstation_command(setup, &bootstrap))
    };
    let response = response_line(&workstation);
    assert_eq!(
        setup.fake.counters().token_requests,
        0,
        "the workstation never exchanges the code"
    );
    assert_eq!(setup.fake.counters().authorize, 1);

    host.write_line(&response);
    let host = host.wait(RUN_DEADLINE);
    host.assert_success()
        .assert_stderr_mentions(&[&format!("imported {name}")]);
    Loop {
        bootstrap,
        workstation,
        host,
    }
}

// ------------------------------------------------------------- bootstrap

#[test]
fn bootstrap_loop_stores_box_and_dropbox_connections() {
    for style in [Style::Box, Style::Dropbox] {
        let vault = Vault::start(&[]);
        let setup = Setup::new(style);
        let name = format!("{}-headless", provider_name(style));
        // Box's workstation reads the string on stdin, Dropbox's as an argument.
        let done = bootstrap_loop(&vault, &setup, &name, style == Style::Box);

        let counters = setup.fake.counters();
        assert_eq!(
            counters.code_exchanges, 1,
            "{style:?}: the host exchanged the code"
        );
        if style == Style::Dropbox {
            assert_eq!(counters.pkce_verified, 1, "the host's verifier matched");
        }
        let form = setup.fake.last_token_form().expect("the host's exchange");
        let field = |n: &str| form.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(field("redirect_uri"), Some(setup.redirect_url()));
        assert_eq!(field("client_secret"), Some(setup.client_secret.clone()));

        // The tokens were born on the host and are served from the vault.
        let token = vault.token(&name);
        assert!(
            issued_tokens(&setup).contains(&token),
            "{style:?}: an issued token"
        );
        for t in issued_tokens(&setup) {
            assert_absent(
                &done.workstation.stdout,
                &t,
                "a token",
                "the workstation's stdout",
            );
            assert_absent(
                &done.workstation.stderr,
                &t,
                "a token",
                "the workstation's stderr",
            );
            assert_absent(
                &done.host.stderr,
                &t,
                "a token",
                "the host command's stderr",
            );
        }
        let status = vault.status(&name);
        assert_eq!(status["state"], "ok");
        assert_eq!(status["has_refresh_token"], true);
        assert_eq!(status["provider"], provider_name(style));
        vault.assert_no_secrets(&setup.fake);
    }
}

#[test]
fn bootstrap_string_and_workstation_output_never_carry_the_secret_or_verifier() {
    let vault = Vault::start(&[]);
    let setup = Setup::new(Style::Dropbox);
    let done = bootstrap_loop(&vault, &setup, "dbx", false);

    let form = setup.fake.last_token_form().expect("the host's exchange");
    let verifier = form
        .iter()
        .find(|(k, _)| k == "code_verifier")
        .map(|(_, v)| v.clone())
        .expect("the host sent the PKCE verifier");
    let decoded = decode("tvboot1.", &done.bootstrap);
    let decoded_text = decoded.to_string();
    for (what, secret) in [
        ("the client secret", setup.client_secret.as_str()),
        ("the PKCE verifier", verifier.as_str()),
    ] {
        for (place, text) in [
            ("the bootstrap string", done.bootstrap.as_str()),
            ("the decoded bootstrap string", decoded_text.as_str()),
            ("the workstation's stdout", done.workstation.stdout.as_str()),
            ("the workstation's stderr", done.workstation.stderr.as_str()),
            ("the host command's stdout", done.host.stdout.as_str()),
            ("the host command's stderr", done.host.stderr.as_str()),
        ] {
            assert_absent(text, secret, what, place);
        }
    }
    // What the string does carry: the authorize URL with the challenge of
    // that verifier, the state and the redirect.
    let url =
        url::Url::parse(decoded["authorize_url"].as_str().expect("authorize_url")).expect("a URL");
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["redirect_uri"], setup.redirect_url());
    assert_eq!(q["state"], decoded["state"].as_str().expect("state"));
    assert_eq!(q["code_challenge_method"], "S256");
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    assert_eq!(
        q["code_challenge"], challenge,
        "the verifier stayed on the host"
    );
    assert_eq!(decoded["provider"], "dropbox");
    assert_eq!(decoded["name"], "dbx");
    // The response line holds only the code and the state.
    let response = decode("tvcode1.", done.workstation.stdout.trim());
    let mut keys: Vec<&str> = response
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "state"]);
    assert_eq!(response["state"], decoded["state"]);
}

#[test]
fn an_altered_or_replayed_response_is_refused() {
    let vault = Vault::start(&[]);
    let setup = Setup::new(Style::Box);
    let mut host = setup.spawn_with_stdin(authorize_command(&vault, &setup, "first", &[]));
    let bootstrap = bootstrap_string(&host.wait_for_stdout("'\n", RUN_DEADLINE));
    let response = response_line(&setup.run(workstation_command(&setup, &bootstrap)));

    // The state altered: refused, nothing exchanged, and the wait goes on.
    let mut altered = decode("tvcode1.", &response);
    let state = altered["state"].as_str().expect("state").to_string();
    let flipped = if state.ends_with('A') { "B" } else { "A" };
    altered["state"] = Value::String(format!("{}{flipped}", &state[..state.len() - 1]));
    host.write_line(&encode("tvcode1.", &altered));
    host.wait_for_stderr("does not match", RUN_DEADLINE);
    assert_eq!(
        setup.fake.counters().token_requests,
        0,
        "an altered state exchanges nothing"
    );

    // The genuine response still completes it.
    host.write_line(&response);
    host.wait(RUN_DEADLINE)
        .assert_success()
        .assert_stderr_mentions(&["imported first"]);
    assert_eq!(setup.fake.counters().code_exchanges, 1);

    // Replayed to the same authorization: already used.
    let id = authorization_id(&vault, "first");
    let (status, body) = complete(&vault, &id, &response);
    assert_eq!(status, 400, "{body}: 409 means re-authorize, and only that");
    assert_eq!(body["error"]["code"], "already_used");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("works once"),
        "{body}"
    );

    // Replayed to a new authorization: its state is not this one's.
    let mut second = setup.spawn_with_stdin(authorize_command(&vault, &setup, "second", &[]));
    second.wait_for_stdout("'\n", RUN_DEADLINE);
    second.write_line(&response);
    second.wait_for_stderr("does not match", RUN_DEADLINE);
    second.close_stdin();
    let outcome = second.wait(RUN_DEADLINE);
    assert!(!outcome.status.success(), "{outcome:?}");
    outcome.assert_stderr_mentions(&["no response was pasted", "cancelled"]);
    assert_eq!(
        setup.fake.counters().token_requests,
        1,
        "no replay reached the provider"
    );
    assert!(!token_vault(&vault, &["status", "second"])
        .output()
        .expect("status")
        .status
        .success());
    let id = authorization_id(&vault, "second");
    let (status, body) = complete(&vault, &id, &response);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("not_pending")),
        "a cancelled authorization takes nothing: {body}"
    );
    vault.assert_no_secrets(&setup.fake);
}

#[test]
fn an_expired_pending_authorization_is_refused() {
    let vault = Vault::start(&[]);
    let setup = Setup::new(Style::Box);
    let started = Instant::now();
    let host = setup.spawn_with_stdin(authorize_command(&vault, &setup, "late", &["--ttl", "2s"]));
    let bootstrap = bootstrap_string(&host.wait_for_stdout("'\n", RUN_DEADLINE));
    let response = response_line(&setup.run(workstation_command(&setup, &bootstrap)));

    // Nobody pastes: the command gives up when the authorization expires.
    let outcome = host.wait(RUN_DEADLINE);
    assert!(!outcome.status.success(), "{outcome:?}");
    outcome.assert_stderr_mentions(&["expired", "token-vault authorize late"]);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited the whole TTL"
    );

    // The response, too late: refused without reaching the provider.
    let id = authorization_id(&vault, "late");
    let (status, body) = complete(&vault, &id, &response);
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["code"], "expired");
    assert_eq!(setup.fake.counters().token_requests, 0);
    assert!(!token_vault(&vault, &["status", "late"])
        .output()
        .expect("status")
        .status
        .success());
}

/// `authorize` checks its transfer settings as `import` does, before any
/// authorization is pending.
#[test]
fn authorize_refuses_the_chunk_sizes_import_refuses() {
    let vault = Vault::start(&[]);
    let setup = Setup::new(Style::Dropbox);
    for size in ["1KB", "151MiB"] {
        let out = authorize_command(&vault, &setup, "dbx", &["--chunk-size", size])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("authorize");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{size}: {stderr}");
        assert!(stderr.contains("from 1MiB to 150MiB"), "{size}: {stderr}");
    }
    assert_eq!(setup.fake.counters().authorize, 0);
}

// ------------------------------------------------------------- sealed

/// `token-vault recipient`, checked.
fn recipient(vault: &Vault) -> String {
    let out = vault.cli(&["recipient"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let r = text.trim().to_string();
    assert!(
        r.starts_with("tvr1.") && r.len() < 64 && !r.contains(char::is_whitespace),
        "{r}"
    );
    r
}

/// `oauth-authorize box … --seal-to RECIPIENT`: the sealed line.
fn sealed_blob(setup: &Setup, recipient: &str) -> String {
    let mut cmd = setup.command("box");
    cmd.arg("--seal-to").arg(recipient);
    let outcome = setup.run(cmd);
    outcome.assert_success();
    let line = outcome.stdout.trim_end_matches('\n');
    assert!(
        !line.contains('\n') && line.starts_with("tvsealed1."),
        "{line}"
    );
    for t in issued_tokens(setup) {
        assert_absent(&outcome.stdout, &t, "a token", "the sealed output");
    }
    line.to_string()
}

/// `token-vault import NAME` of `paste` for the setup's client.
fn import(vault: &Vault, setup: &Setup, name: &str, paste: &str) -> std::process::Output {
    let secret = setup.secret_file.to_string_lossy().into_owned();
    let token = setup.fake.token_url();
    vault.cli_with(
        &[
            "import",
            name,
            "--provider",
            "box",
            "--client-id",
            CLIENT_ID,
            "--client-secret-file",
            &secret,
            "--token-url",
            &token,
        ],
        Some(paste),
        None,
    )
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_sealed_blob_round_trips() {
    let mut vault = Vault::start(&[]);
    let r = recipient(&vault);
    let key = vault.state_dir.join("recipient.key");
    let mode = std::fs::metadata(&key)
        .expect("the key file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the private key is 0600");
    assert_eq!(recipient(&vault), r, "the same key every time");
    vault.restart();
    assert_eq!(recipient(&vault), r, "and after a restart");

    let setup = Setup::new(Style::Box);
    let sealed = sealed_blob(&setup, &r);
    let out = import(&vault, &setup, "sealed", &sealed);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = vault.token("sealed");
    assert!(issued_tokens(&setup).contains(&token));
    assert_eq!(vault.status("sealed")["has_refresh_token"], true);
    vault.assert_no_secrets(&setup.fake);
}

#[test]
fn a_tampered_sealed_blob_is_refused_clearly() {
    let vault = Vault::start(&[]);
    let setup = Setup::new(Style::Box);
    let sealed = sealed_blob(&setup, &recipient(&vault));
    let mut chars: Vec<char> = sealed.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    let out = import(&vault, &setup, "tampered", &tampered);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("nothing was imported") && err.contains("altered"),
        "{err}"
    );
    // Cut short in the paste: also refused, and said so.
    let out = import(&vault, &setup, "tampered", &sealed[..sealed.len() - 7]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nothing was imported"),
        "{}",
        stderr(&out)
    );
    assert!(!token_vault(&vault, &["status", "tampered"])
        .output()
        .expect("status")
        .status
        .success());
    // The untouched blob still opens.
    let out = import(&vault, &setup, "intact", &sealed);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_blob_sealed_to_another_vault_is_refused() {
    let vault = Vault::start(&[]);
    let other = Vault::start(&[]);
    let ours = recipient(&vault);
    let theirs = recipient(&other);
    assert_ne!(ours, theirs);
    let setup = Setup::new(Style::Box);
    let sealed = sealed_blob(&setup, &theirs);
    let out = import(&vault, &setup, "stray", &sealed);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("another vault") && err.contains("--seal-to"),
        "{err}"
    );
    // Its own vault opens it.
    let out = import(&other, &setup, "stray", &sealed);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_plain_blob_still_imports() {
    let vault = Vault::start(&[]);
    recipient(&vault);
    let setup = Setup::new(Style::Box);
    let outcome = setup.run(setup.command("box"));
    outcome.assert_success();
    let out = import(&vault, &setup, "plain", outcome.stdout.trim());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(issued_tokens(&setup).contains(&vault.token("plain")));
}

// ------------------------------------------------------------- device

/// `token-vault authorize NAME --provider onedrive --device` against the
/// setup's fake (its device endpoint, 1 s interval).
fn device_command(vault: &Vault, setup: &Setup, name: &str) -> Command {
    device_command_for(vault, setup, name, "onedrive", &[])
}

/// [`device_command`] for `provider`, plus `extra`.
fn device_command_for(
    vault: &Vault,
    setup: &Setup,
    name: &str,
    provider: &str,
    extra: &[&str],
) -> Command {
    let fake = &setup.fake;
    let secret_file = setup.secret_file.to_string_lossy().into_owned();
    let (auth, token, device) = (fake.auth_url(), fake.token_url(), fake.device_url());
    let mut args = vec![
        "authorize",
        name,
        "--provider",
        provider,
        "--client-id",
        CLIENT_ID,
        "--client-secret-file",
        &secret_file,
        "--auth-url",
        &auth,
        "--token-url",
        &token,
        "--device-url",
        &device,
        "--device",
    ];
    args.extend_from_slice(extra);
    token_vault(vault, &args)
}

/// Google's device flow grants only some scopes, and not Drive's default
/// (`…/auth/drive`): the refusal says what to do instead, and nothing is
/// left behind.
#[test]
fn a_device_scope_the_provider_refuses_says_what_to_do() {
    let vault = Vault::start(&[]);
    let setup = Setup::new(Style::Box);
    setup
        .fake
        .set_device_scopes(&["https://www.googleapis.com/auth/drive.file"]);
    let outcome = setup.run(device_command_for(&vault, &setup, "gd", "drive", &[]));
    outcome.assert_failure().assert_stderr_mentions(&[
        "invalid_scope",
        "--scope",
        "https://www.googleapis.com/auth/drive.file",
        "without --device",
    ]);
    assert!(setup.fake.device_user_codes().is_empty());
    let listed = token_vault(&vault, &["list"]).output().expect("list");
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains("gd"),
        "no connection was made"
    );
    // The scope it grants gets a user code.
    let host = setup.spawn(device_command_for(
        &vault,
        &setup,
        "gd",
        "drive",
        &["--scope", "https://www.googleapis.com/auth/drive.file"],
    ));
    host.wait_for_stderr("Waiting for the approval", RUN_DEADLINE);
    assert_eq!(setup.fake.device_user_codes().len(), 1);
}

#[test]
fn device_grant_respects_the_interval_and_slow_down() {
    let vault = Vault::start(&[]);
    let setup = Setup::new(Style::Box);
    setup.fake.set_device_timing(1, 120);
    setup.fake.script_device(&[
        DeviceAnswer::Pending,
        DeviceAnswer::Pending,
        DeviceAnswer::SlowDown,
        DeviceAnswer::Approve,
    ]);
    let host = setup.spawn(device_command(&vault, &setup, "od"));
    let shown = host.wait_for_stderr("Waiting for the approval", RUN_DEADLINE);
    let codes = setup.fake.device_user_codes();
    assert_eq!(codes.len(), 1);
    assert!(
        shown.contains(&codes[0]),
        "the user code is shown:\n{shown}"
    );
    assert!(
        shown.contains(&format!("{}/oauth2/device", setup.fake.base_url())),
        "the verification URL is shown:\n{shown}"
    );
    let outcome = host.wait(DEVICE_DEADLINE);
    outcome
        .assert_success()
        .assert_stderr_mentions(&["imported od"]);
    assert_eq!(
        outcome.stdout, "",
        "no workstation command, nothing on stdout"
    );

    let polls = setup.fake.device_polls();
    let answers: Vec<&str> = polls.iter().map(|p| p.answer).collect();
    assert_eq!(
        answers,
        [
            "authorization_pending",
            "authorization_pending",
            "slow_down",
            "tokens"
        ]
    );
    assert_eq!(
        setup.fake.device_polls_too_soon(),
        0,
        "never sooner than asked"
    );
    let at: Vec<Duration> = polls.iter().map(|p| p.after_issue).collect();
    let gaps = [at[0], at[1] - at[0], at[2] - at[1], at[3] - at[2]];
    let secs = Duration::from_secs;
    // The first poll waits one interval too; slow_down adds 5 s for good.
    let wanted = [secs(1), secs(1), secs(1), secs(6)];
    for (i, (gap, want)) in gaps.iter().zip(wanted).enumerate() {
        assert!(
            *gap >= want,
            "gap {i} is {gap:?}, less than {want:?}: {polls:?}"
        );
        assert!(
            *gap < want + secs(3),
            "gap {i} is {gap:?}, far more than {want:?}: {polls:?}"
        );
    }

    let token = vault.token("od");
    assert!(
        issued_tokens(&setup).contains(&token),
        "the device grant's token is served"
    );
    let status = vault.status("od");
    assert_eq!(status["provider"], "onedrive");
    assert_eq!(status["has_refresh_token"], true);
    let form = setup.fake.last_token_form().expect("a poll");
    assert!(form
        .iter()
        .any(|(k, v)| k == "grant_type" && v == "urn:ietf:params:oauth:grant-type:device_code"));
    vault.assert_no_secrets(&setup.fake);
}

#[test]
fn device_denial_is_a_clear_error() {
    let vault = Vault::start(&[]);
    let setup = Setup::new(Style::Box);
    setup.fake.set_device_timing(1, 120);
    setup
        .fake
        .script_device(&[DeviceAnswer::Pending, DeviceAnswer::Deny]);
    let outcome = setup
        .spawn(device_command(&vault, &setup, "od"))
        .wait(DEVICE_DEADLINE);
    outcome
        .assert_failure()
        .assert_stderr_mentions(&["denied", "nothing was stored", "--device"]);
    assert_eq!(
        setup.fake.device_polls().len(),
        2,
        "no poll after the denial"
    );
    assert!(!token_vault(&vault, &["status", "od"])
        .output()
        .expect("status")
        .status
        .success());
}

#[test]
fn device_expiry_is_a_clear_error() {
    let vault = Vault::start(&[]);
    let setup = Setup::new(Style::Box);
    setup.fake.set_device_timing(1, 120);
    // The provider says the code expired.
    setup
        .fake
        .script_device(&[DeviceAnswer::Pending, DeviceAnswer::Expire]);
    let outcome = setup
        .spawn(device_command(&vault, &setup, "od"))
        .wait(DEVICE_DEADLINE);
    outcome
        .assert_failure()
        .assert_stderr_mentions(&["expired", "enter the new code sooner"]);

    // The code's own lifetime runs out while the user does nothing.
    setup.fake.set_device_timing(1, 2);
    let outcome = setup
        .spawn(device_command(&vault, &setup, "od2"))
        .wait(DEVICE_DEADLINE);
    outcome
        .assert_failure()
        .assert_stderr_mentions(&["expired"]);
    for name in ["od", "od2"] {
        assert!(!token_vault(&vault, &["status", name])
            .output()
            .expect("status")
            .status
            .success());
    }
}

#[test]
fn a_provider_without_a_device_endpoint_suggests_bootstrap_mode() {
    let vault = Vault::start(&[]);
    let setup = Setup::new(Style::Box);
    let secret_file = setup.secret_file.to_string_lossy().into_owned();
    let cmd = token_vault(
        &vault,
        &[
            "authorize",
            "b",
            "--provider",
            "box",
            "--client-id",
            CLIENT_ID,
            "--client-secret-file",
            &secret_file,
            "--device",
        ],
    );
    let outcome = setup.run(cmd);
    outcome
        .assert_failure()
        .assert_stderr_mentions(&["no device authorization endpoint", "without --device"]);

    // The daemon says the same to a direct request.
    let body = serde_json::json!({
        "name": "b", "mode": "device", "provider": "box",
        "client_id": CLIENT_ID, "client_secret": setup.client_secret,
    })
    .to_string();
    let (status, answer) = http(
        &vault.socket,
        "POST",
        "/v1/authorizations",
        Some(body.as_bytes()),
    )
    .expect("start");
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("bootstrap mode"), "{answer}");
    assert_eq!(setup.fake.device_requests(), 0);
}

#[test]
fn a_connection_is_authorized_again_with_replace_and_keeps_its_settings() {
    let vault = Vault::start(&[]);
    let setup = Setup::new(Style::Box);
    bootstrap_loop(&vault, &setup, "box", false);
    let first = vault.token("box");

    // Only the name, --replace and the redirect: the provider, client,
    // secret and endpoints come from the stored connection.
    let redirect = setup.redirect_url();
    let mut host = setup.spawn_with_stdin(token_vault(
        &vault,
        &["authorize", "box", "--replace", "--redirect-url", &redirect],
    ));
    let bootstrap = bootstrap_string(&host.wait_for_stdout("'\n", RUN_DEADLINE));
    let response = response_line(&setup.run(workstation_command(&setup, &bootstrap)));
    host.write_line(&response);
    host.wait(RUN_DEADLINE)
        .assert_success()
        .assert_stderr_mentions(&["replaced box"]);
    let second = vault.token("box");
    assert_ne!(first, second, "new tokens");
    assert!(issued_tokens(&setup).contains(&second));
    assert_eq!(setup.fake.counters().code_exchanges, 2);

    // Without --replace an existing name is refused before anything starts.
    let out = token_vault(
        &vault,
        &["authorize", "box", "--provider", "box", "--client-id", "x"],
    )
    .output()
    .expect("authorize");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--replace"));
}
