//! Operating the daemon: event hooks, `/metrics`, and the config file.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tests::fake::{Fault, Style};
use tests::transfer_harness::{eventually, fake, import_connection, import_expiring};
use tests::vault_harness::{http, Vault, CLIENT_SECRET};

/// The environment a hook saw for `connection`/`event`, once it ran.
fn hook_env(dir: &Path, connection: &str, event: &str) -> String {
    let file = dir.join(format!("{connection}.{event}.env"));
    eventually(15, &format!("hook {event} for {connection}"), || {
        file.exists()
    });
    // The hook writes with a rename, so the file is complete once it exists.
    std::fs::read_to_string(&file).expect("hook env")
}

#[test]
fn every_event_runs_the_hook_with_its_variables_and_no_secret() {
    let dbx = fake(Style::Dropbox);
    let boxf = fake(Style::Box);
    let hooks = tempfile::tempdir().expect("tempdir");
    let dir = hooks.path().display().to_string();
    let command = format!(
        "f=\"{dir}/$TOKEN_VAULT_CONNECTION.$TOKEN_VAULT_EVENT\"; env > \"$f.tmp\" && mv \"$f.tmp\" \"$f.env\""
    );
    let mut vault = Vault::start(&[
        "--on-event",
        &command,
        "--refresh-failing-after",
        "2",
        "--refresh-token-aging",
        "1s",
    ]);
    // imported, then refreshed.
    import_connection(&vault, &dbx, "a", &[]);
    let env = hook_env(hooks.path(), "a", "imported");
    assert!(
        env.contains("TOKEN_VAULT_EVENT=imported") && env.contains("TOKEN_VAULT_CONNECTION=a"),
        "{env}"
    );
    assert!(env.contains("TOKEN_VAULT_DETAIL=new"), "{env}");
    assert!(vault.cli(&["refresh", "a"]).status.success());
    hook_env(hooks.path(), "a", "refreshed");
    // needs-reauth: the provider refuses the grant.
    import_connection(&vault, &dbx, "d", &[]);
    dbx.inject_token_fault(Fault::InvalidGrant);
    assert!(!vault.cli(&["refresh", "d"]).status.success());
    let env = hook_env(hooks.path(), "d", "needs-reauth");
    assert!(
        env.contains("TOKEN_VAULT_DETAIL=") && env.contains("invalid_grant"),
        "{env}"
    );
    // refresh-failing and refresh-token-aging: a Box connection whose refreshes keep failing.
    for _ in 0..30 {
        boxf.inject_token_fault(Fault::ServerError);
    }
    import_expiring(&vault, &boxf, "b", 8, &[]);
    let env = hook_env(hooks.path(), "b", "refresh-failing");
    assert!(
        env.contains("2 consecutive failures") && env.contains("HTTP 500"),
        "{env}"
    );
    let env = hook_env(hooks.path(), "b", "refresh-token-aging");
    assert!(env.contains("days old"), "{env}");
    // removed.
    assert!(vault.cli(&["remove", "a"]).status.success());
    hook_env(hooks.path(), "a", "removed");
    // corrupt: tamper with a record while the daemon is down.
    import_connection(&vault, &dbx, "e", &[]);
    vault.stop();
    let file = vault.state_dir.join("connections").join("e.tvr");
    let mut bytes = std::fs::read(&file).expect("record");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).expect("tamper");
    vault.restart();
    hook_env(hooks.path(), "e", "corrupt");
    // No hook ever saw a secret: not a token, not the client secret.
    let mut secrets = dbx.issued_secrets();
    secrets.extend(boxf.issued_secrets());
    secrets.push(CLIENT_SECRET.to_string());
    for entry in std::fs::read_dir(hooks.path()).expect("read_dir").flatten() {
        let env = std::fs::read_to_string(entry.path()).expect("env");
        for secret in &secrets {
            assert!(
                !env.contains(secret.as_str()),
                "{} holds a secret",
                entry.path().display()
            );
        }
        assert!(
            !env.contains("TOKEN_VAULT_LOG="),
            "the daemon's own environment leaked into a hook"
        );
    }
    vault.assert_no_secrets(&dbx);
    vault.assert_no_secrets(&boxf);
}

fn scrape(vault: &Vault) -> prometheus_parse::Scrape {
    let (status, body) = http(&vault.socket, "GET", "/metrics", None).expect("GET /metrics");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).expect("utf-8");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text")
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[test]
fn metrics_parse_and_move() {
    let fake = fake(Style::Box);
    let vault = Vault::start(&[]);
    import_connection(&vault, &fake, "box", &[]);
    let before = scrape(&vault);
    let tokens_before = value(
        &before,
        "token_vault_requests_total",
        &[("operation", "token"), ("result", "ok")],
    )
    .unwrap_or(0.0);
    for _ in 0..3 {
        vault.token("box");
    }
    assert!(vault.cli(&["refresh", "box"]).status.success());
    let after = scrape(&vault);
    assert_eq!(
        value(
            &after,
            "token_vault_requests_total",
            &[("operation", "token"), ("result", "ok")]
        ),
        Some(tokens_before + 3.0)
    );
    assert_eq!(
        value(
            &after,
            "token_vault_refreshes_total",
            &[("connection", "box"), ("result", "refreshed")]
        ),
        Some(1.0)
    );
    let expiry = value(
        &after,
        "token_vault_access_token_expiry_seconds",
        &[("connection", "box")],
    )
    .expect("expiry gauge");
    assert!(expiry > 3000.0 && expiry <= 3600.0, "{expiry}");
    assert_eq!(
        value(&after, "token_vault_connections", &[("state", "ok")]),
        Some(1.0)
    );
    assert!(
        after
            .samples
            .iter()
            .any(|s| s.metric.starts_with("token_vault_request_duration_seconds")),
        "no latency histogram"
    );
    vault.assert_no_secrets(&fake);
}

/// Starts `token-vault serve` with a config file; its stderr goes to `log`.
fn serve_with_config(dir: &Path, config: &str, extra: &[&str]) -> std::process::Child {
    let path = dir.join("token-vault.toml");
    std::fs::write(&path, config).expect("write config");
    Command::new(tests::bins::path("token-vault"))
        .args(["serve", "--config"])
        .arg(&path)
        .args(extra)
        .env_remove("TOKEN_VAULT_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("log")).expect("log"))
        .spawn()
        .expect("spawn serve")
}

#[test]
fn config_file_flags_win_and_unknown_keys_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("run").join("v.sock");
    let config = format!(
        "socket = \"{}\"\nstate_dir = \"{}\"\nlog_format = \"json\"\n[refresh]\nbackoff_min = \"7s\"\nbackoff_max = \"9m\"\n[limits]\nmax_concurrent_refreshes = 3\nworker_threads = 7\n",
        socket.display(),
        dir.path().join("state").display()
    );
    let mut child = serve_with_config(dir.path(), &config, &["--backoff-max", "3s"]);
    eventually(20, "the daemon from the config file", || {
        matches!(http(&socket, "GET", "/v1/health", None), Ok((200, _)))
    });
    let log = std::fs::read_to_string(dir.path().join("log")).expect("log");
    let start = log
        .lines()
        .find(|l| l.contains("token-vault is serving"))
        .expect("startup line");
    let line: serde_json::Value =
        serde_json::from_str(start).expect("the config file chose JSON logs");
    let fields = &line["fields"];
    assert_eq!(fields["backoff_min"], "7s", "{line}");
    assert_eq!(
        fields["backoff_max"], "3s",
        "the flag must beat the file: {line}"
    );
    assert_eq!(fields["max_concurrent_refreshes"], 3, "{line}");
    assert_eq!(
        fields["worker_threads"], 7,
        "the runtime runs the file's worker threads: {line}"
    );
    let _ = child.kill();
    let _ = child.wait();

    // A typo is an error that names the key, and the daemon does not start.
    let bad = tempfile::tempdir().expect("tempdir");
    let mut child = serve_with_config(bad.path(), "[refresh]\nbakcoff_min = \"1s\"\n", &[]);
    let status = tests::vault_harness::wait_with_deadline(&mut child, Duration::from_secs(20));
    assert!(!status.success());
    let log = std::fs::read_to_string(bad.path().join("log")).expect("log");
    assert!(log.contains("bakcoff_min"), "{log}");
}
