//! End-to-end tests of `token-vault serve` and its client commands against
//! the fake providers: import, refresh, rotation, failures, corruption,
//! permissions, access control and the secret sweep.

use base64::Engine as _;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use tests::fake::{Fault, Style};
use tests::transfer_harness::{eventually, fake};
use tests::vault_harness::{blob, http, Vault, CLIENT_ID, CLIENT_SECRET};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &std::process::Output) {
    assert!(out.status.success(), "command failed: {}", stderr(out));
}

#[test]
fn every_paste_form_imports() {
    let fake = fake(Style::Box);
    let vault = Vault::start(&[]);
    let mut expected = Vec::new();
    type PasteForm = Box<dyn Fn(&str) -> String>;
    let forms: Vec<PasteForm> = vec![
        Box::new(|b| b.to_string()),
        Box::new(|b| {
            format!("Paste the following into your remote machine --->\n{b}\n<---End paste\n")
        }),
        Box::new(|b| {
            b.as_bytes()
                .chunks(20)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("\n")
        }),
        Box::new(|b| {
            b.replace("access_token", "AccessToken")
                .replace("token_type", "TokenType")
                .replace("refresh_token", "RefreshToken")
                .replace("\"expiry\"", "\"Expiry\"")
        }),
        Box::new(|b| {
            let map = serde_json::json!({ "token": b }).to_string();
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(map)
        }),
        Box::new(|b| {
            let map = serde_json::json!({ "token": b, "x": "??>>" }).to_string();
            base64::engine::general_purpose::URL_SAFE.encode(map)
        }),
    ];
    for (i, form) in forms.iter().enumerate() {
        let (at, rt) = fake.seed_tokens(CLIENT_ID, 3600);
        let name = format!("form{i}");
        assert_ok(&vault.import(&name, &fake, &form(&blob(&at, Some(&rt), 3600)), &[]));
        expected.push((name, at));
    }
    for (name, at) in &expected {
        assert_eq!(&vault.token(name), at, "{name}");
    }
    assert_eq!(fake.counters().refreshes, 0, "fresh tokens need no refresh");
    vault.assert_no_secrets(&fake);
}

#[test]
fn refreshes_before_expiry_once_per_half_lifetime() {
    let fake = fake(Style::Box);
    fake.set_access_lifetime(4);
    let vault = Vault::start(&[]);
    let (at, rt) = fake.seed_tokens(CLIENT_ID, 4);
    assert_ok(&vault.import("box", &fake, &blob(&at, Some(&rt), 4), &[]));
    assert_eq!(vault.token("box"), at);
    // The scheduler refreshes at half-life (2 s) without any caller asking.
    eventually(10, "a proactive refresh", || fake.counters().refreshes >= 1);
    // Served once it is on disk.
    eventually(10, "the refreshed token to be served", || {
        vault.token("box") != at
    });
    // Many calls in a row do not each refresh.
    let before = fake.counters().refreshes;
    for _ in 0..20 {
        let t = vault.token("box");
        assert!(!t.is_empty());
    }
    assert!(
        fake.counters().refreshes <= before + 1,
        "refreshed on every call: {:?}",
        fake.counters()
    );
    assert_eq!(fake.refresh_chain_breaks(), 0);
    vault.assert_no_secrets(&fake);
}

#[test]
fn refresh_storm_makes_one_provider_call() {
    let fake = fake(Style::Box);
    let vault = Vault::start(&[]);
    let (at, rt) = fake.seed_tokens(CLIENT_ID, 3600);
    // The refresh takes a while, so every caller arrives while it is in flight.
    fake.set_token_delay(Duration::from_millis(500));
    // The pasted access token expired a minute ago.
    assert_ok(&vault.import("box", &fake, &blob(&at, Some(&rt), -60), &[]));
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let socket = vault.socket.clone();
            std::thread::spawn(move || http(&socket, "GET", "/v1/connections/box/token", None))
        })
        .collect();
    let tokens: Vec<String> = handles
        .into_iter()
        .map(|h| {
            let (status, body) = h.join().expect("thread").expect("request");
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
            v["access_token"].as_str().expect("token").to_string()
        })
        .collect();
    assert_eq!(fake.counters().refreshes, 1, "{:?}", fake.counters());
    assert_eq!(fake.counters().token_requests, 1, "{:?}", fake.counters());
    assert!(
        tokens.iter().all(|t| t == &tokens[0]),
        "callers got different tokens"
    );
    assert_ne!(tokens[0], at, "the expired token was handed out");
    vault.assert_no_secrets(&fake);
}

#[test]
fn rotation_survives_a_restart() {
    let fake = fake(Style::Box);
    fake.set_access_lifetime(2);
    let mut vault = Vault::start(&[]);
    let (at, rt) = fake.seed_tokens(CLIENT_ID, 2);
    assert_ok(&vault.import("box", &fake, &blob(&at, Some(&rt), 2), &[]));
    eventually(10, "the first rotation", || fake.counters().refreshes >= 1);
    eventually(10, "the rotated token to be served", || {
        vault.token("box") != at
    });
    let rotated_once = vault.token("box");
    vault.restart();
    // The next refresh must spend the rotated refresh token, read back from disk.
    eventually(10, "a refresh after the restart", || {
        fake.counters().refreshes >= 2
    });
    assert_eq!(
        fake.refresh_chain_breaks(),
        0,
        "a stale refresh token was spent"
    );
    eventually(10, "the newly rotated token to be served", || {
        vault.token("box") != rotated_once
    });
    eventually(10, "the connection to settle", || {
        vault.status("box")["state"] == "ok"
    });
    vault.assert_no_secrets(&fake);
}

#[test]
fn invalid_grant_needs_reauth_until_replaced() {
    let fake = fake(Style::Box);
    let vault = Vault::start(&[]);
    let (at, rt) = fake.seed_tokens(CLIENT_ID, 3600);
    assert_ok(&vault.import("box", &fake, &blob(&at, Some(&rt), 3600), &[]));
    fake.inject_token_fault(Fault::InvalidGrant);
    let out = vault.cli(&["refresh", "box"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("re-authorization"),
        "{}",
        stderr(&out)
    );
    let status = vault.status("box");
    assert_eq!(status["state"], "needs-reauth");
    let fix = status["fix"].as_str().expect("fix");
    assert!(
        fix.contains("oauth-authorize box vault-test-client")
            && fix.contains("token-vault import box --replace"),
        "{fix}"
    );
    let list = String::from_utf8_lossy(&vault.cli(&["list"]).stdout).into_owned();
    assert!(
        list.contains("needs-reauth") && list.contains("oauth-authorize"),
        "{list}"
    );
    // Token requests get 409 with the fix, and the CLI exits non-zero with nothing on stdout.
    let (code, body) = http(&vault.socket, "GET", "/v1/connections/box/token", None).expect("http");
    assert_eq!(code, 409);
    let err: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(err["error"]["code"], "needs_reauth");
    let out = vault.cli(&["token", "box"]);
    assert!(!out.status.success() && out.stdout.is_empty());
    // A fresh authorization brings it back, keeping its settings.
    let (at2, rt2) = fake.seed_tokens(CLIENT_ID, 3600);
    let out = vault.cli_with(
        &["import", "box", "--replace"],
        Some(&blob(&at2, Some(&rt2), 3600)),
        None,
    );
    assert_ok(&out);
    assert_eq!(vault.token("box"), at2);
    assert_eq!(vault.status("box")["state"], "ok");
    vault.assert_no_secrets(&fake);
}

#[test]
fn transient_failures_back_off_and_serve_the_old_token() {
    let fake = fake(Style::Dropbox);
    fake.set_access_lifetime(3600);
    let vault = Vault::start(&[]);
    let (at, rt) = fake.seed_tokens(CLIENT_ID, 3600);
    fake.inject_token_fault(Fault::ServerError);
    fake.inject_token_fault(Fault::TooManyRequests {
        retry_after_secs: 1,
    });
    // Expires in 8 s, so the refresh is due at once (margin 5 min) but the token stays valid.
    assert_ok(&vault.import("dbx", &fake, &blob(&at, Some(&rt), 8), &[]));
    eventually(10, "the first failure", || {
        fake.counters().token_errors >= 1
    });
    assert_eq!(
        vault.token("dbx"),
        at,
        "the old token must be served while the provider fails"
    );
    eventually(10, "the retries to succeed", || {
        fake.counters().refreshes == 1
    });
    assert_eq!(fake.counters().token_errors, 2);
    eventually(5, "the new token", || vault.token("dbx") != at);
    let status = vault.status("dbx");
    assert_eq!(status["state"], "ok");
    assert!(status["last_error"].is_null(), "{status}");
    vault.assert_no_secrets(&fake);
}

#[test]
fn a_tampered_record_is_corrupt_and_the_others_work() {
    let fake = fake(Style::Box);
    let mut vault = Vault::start(&[]);
    let (a_at, a_rt) = fake.seed_tokens(CLIENT_ID, 3600);
    let (b_at, b_rt) = fake.seed_tokens(CLIENT_ID, 3600);
    assert_ok(&vault.import("a", &fake, &blob(&a_at, Some(&a_rt), 3600), &[]));
    assert_ok(&vault.import("b", &fake, &blob(&b_at, Some(&b_rt), 3600), &[]));
    vault.stop();
    let file = vault.state_dir.join("connections").join("a.tvr");
    let mut bytes = std::fs::read(&file).expect("record");
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    std::fs::write(&file, &bytes).expect("tamper");
    vault.restart();
    let list: serde_json::Value =
        serde_json::from_slice(&vault.cli(&["list", "--json"]).stdout).expect("list json");
    let states: Vec<(String, String)> = list["connections"]
        .as_array()
        .expect("array")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            ("a".to_string(), "corrupt".to_string()),
            ("b".to_string(), "ok".to_string())
        ]
    );
    assert_eq!(vault.token("b"), b_at);
    let out = vault.cli(&["token", "a"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("corrupt"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(&file).expect("record"),
        bytes,
        "the corrupt file must be left untouched"
    );
    vault.assert_no_secrets(&fake);
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn files_and_socket_have_private_modes_and_hold_no_plaintext() {
    let fake = fake(Style::Box);
    let vault = Vault::start(&[]);
    let (at, rt) = fake.seed_tokens(CLIENT_ID, 3600);
    assert_ok(&vault.import("box", &fake, &blob(&at, Some(&rt), 3600), &[]));
    assert_eq!(vault.token("box"), at);
    assert_eq!(mode(&vault.socket), 0o660);
    assert_eq!(mode(vault.socket.parent().expect("dir")), 0o700);
    assert_eq!(mode(&vault.state_dir), 0o700);
    assert_eq!(mode(&vault.state_dir.join("vault.key")), 0o600);
    assert_eq!(mode(&vault.state_dir.join("audit.log")), 0o600);
    assert_eq!(mode(&vault.state_dir.join("connections")), 0o700);
    assert_eq!(
        mode(&vault.state_dir.join("connections").join("box.tvr")),
        0o600
    );
    // `grep -r` over the state directory finds no token or secret.
    for entry in walk(&vault.state_dir) {
        let bytes = std::fs::read(&entry).expect("read");
        for secret in [at.as_str(), rt.as_str(), CLIENT_SECRET] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a secret in the clear",
                entry.display()
            );
        }
    }
    vault.assert_no_secrets(&fake);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = walk(dir)
        .into_iter()
        .filter(|p| !p.ends_with("audit.log"))
        .map(|p| {
            let b = std::fs::read(&p).expect("read");
            (p, b)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn bad_input_gets_clear_errors_and_changes_nothing() {
    let fake = fake(Style::Box);
    let vault = Vault::start(&[]);
    let (at, rt) = fake.seed_tokens(CLIENT_ID, 3600);
    assert_ok(&vault.import("box", &fake, &blob(&at, Some(&rt), 3600), &[]));
    let before = snapshot(&vault.state_dir);
    // A garbage blob, a blob that is JSON but no token, a bad name, an existing name.
    for (args, input, expect) in [
        (
            vec!["import", "x", "--provider", "box", "--client-id", "c"],
            "not a token",
            "not a token blob",
        ),
        (
            vec!["import", "x", "--provider", "box", "--client-id", "c"],
            r#"{"refresh_token":"zzz"}"#,
            "access_token",
        ),
        (
            vec![
                "import",
                "../etc",
                "--provider",
                "dropbox",
                "--client-id",
                "c",
            ],
            r#"{"access_token":"a"}"#,
            "name",
        ),
        (
            vec!["import", "box", "--provider", "dropbox", "--client-id", "c"],
            r#"{"access_token":"a"}"#,
            "--replace",
        ),
    ] {
        let out = vault.cli_with(&args, Some(input), None);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(out.stdout.is_empty());
        assert!(stderr(&out).contains(expect), "{args:?}: {}", stderr(&out));
    }
    // Raw requests: malformed JSON, unknown fields, a huge body, an unknown path.
    let checks: [(&str, &str, Vec<u8>, u16); 4] = [
        ("PUT", "/v1/connections/y", b"{not json".to_vec(), 400),
        (
            "PUT",
            "/v1/connections/y",
            br#"{"blob":"x","bogus":1}"#.to_vec(),
            400,
        ),
        ("PUT", "/v1/connections/y", vec![b'x'; 4 * 1024 * 1024], 413),
        ("GET", "/v1/nothing/here", Vec::new(), 404),
    ];
    for (method, path, body, code) in checks {
        let (status, answer) = http(&vault.socket, method, path, Some(&body)).expect("http");
        assert_eq!(
            status,
            code,
            "{method} {path}: {}",
            String::from_utf8_lossy(&answer)
        );
        if code != 413 {
            let err: serde_json::Value = serde_json::from_slice(&answer).expect("JSON error body");
            assert!(err["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()));
        }
    }
    assert_eq!(
        snapshot(&vault.state_dir),
        before,
        "bad input changed the store"
    );
    assert_eq!(vault.token("box"), at, "the daemon still serves");
    vault.assert_no_secrets(&fake);
}

#[test]
fn access_control_uses_the_callers_uid() {
    if !nix_is_root() {
        eprintln!("skipped: needs root to run a client as `nobody`");
        return;
    }
    const NOBODY: u32 = 65534;
    let fake = fake(Style::Box);
    let vault = Vault::start(&[]);
    let (a_at, a_rt) = fake.seed_tokens(CLIENT_ID, 3600);
    let (b_at, b_rt) = fake.seed_tokens(CLIENT_ID, 3600);
    assert_ok(&vault.import("mine", &fake, &blob(&a_at, Some(&a_rt), 3600), &[]));
    assert_ok(&vault.import(
        "shared",
        &fake,
        &blob(&b_at, Some(&b_rt), 3600),
        &["--allow-uid", "65534"],
    ));
    // Let `nobody` reach the socket at all (a deployment does this with a group).
    for dir in [vault.dir.path(), vault.socket.parent().expect("dir")] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).expect("chmod");
    }
    std::fs::set_permissions(&vault.socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let refused = vault.cli_with(&["token", "mine"], None, Some(NOBODY));
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty());
    assert!(
        stderr(&refused).contains("not allowed"),
        "{}",
        stderr(&refused)
    );
    let served = vault.cli_with(&["token", "shared"], None, Some(NOBODY));
    assert_ok(&served);
    assert_eq!(String::from_utf8_lossy(&served.stdout).trim(), b_at);
    // Admin commands are the daemon's uid's and root's only.
    let admin = vault.cli_with(&["refresh", "shared"], None, Some(NOBODY));
    assert!(!admin.status.success());
    // Refusals are audited with the caller's uid (the log is written in batches).
    eventually(5, "the refusal in the audit log", || {
        vault.audit().lines().any(|l| {
            l.contains(r#""uid":65534"#)
                && l.contains(r#""connection":"mine""#)
                && l.contains(r#""result":"denied""#)
        })
    });
    vault.assert_no_secrets(&fake);
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

#[test]
fn one_daemon_per_socket_stale_sockets_are_cleaned_and_sigterm_is_clean() {
    let mut vault = Vault::start(&[]);
    // A second daemon on the same socket is refused with a clear error.
    let second = std::process::Command::new(tests::bins::path("token-vault"))
        .arg("--socket")
        .arg(&vault.socket)
        .args(["serve", "--state-dir"])
        .arg(vault.dir.path().join("other-state"))
        .output()
        .expect("run");
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains("already serving"),
        "{}",
        stderr(&second)
    );
    // SIGKILL leaves a stale socket; the next start cleans it up.
    vault.kill();
    assert!(
        vault.socket.exists(),
        "a killed daemon leaves its socket behind"
    );
    vault.restart();
    // SIGTERM exits 0 and removes the socket.
    let status = vault.stop();
    assert!(status.success(), "{status}");
    assert!(!vault.socket.exists());
}

#[test]
fn test_shows_the_account_and_remove_revokes() {
    let fake = fake(Style::Dropbox);
    let vault = Vault::start(&[]);
    let (at, rt) = fake.seed_tokens(CLIENT_ID, 3600);
    assert_ok(&vault.import("dbx", &fake, &blob(&at, Some(&rt), 3600), &[]));
    let out = vault.cli(&["test", "dbx"]);
    assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains('@'),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(fake.counters().whoami, 1);
    let out = vault.cli(&["remove", "dbx", "--revoke"]);
    assert_ok(&out);
    assert_eq!(fake.counters().revokes, 1);
    assert!(!vault.state_dir.join("connections").join("dbx.tvr").exists());
    let out = vault.cli(&["token", "dbx"]);
    assert!(!out.status.success());
    vault.assert_no_secrets(&fake);
}
