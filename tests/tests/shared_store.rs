//! Several vaults on one etcd: one refresh across hosts, takeover when the
//! lock holder dies, propagation, etcd outages, and no secret in etcd.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tests::etcd::Etcd;
use tests::fake::{FakeProvider, Fault, Style};
use tests::vault_harness::{blob, http, Vault, CLIENT_ID, CLIENT_SECRET};

fn eventually(secs: f64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The one key every vault of a cluster shares, 32 bytes, 0600.
fn shared_key(dir: &Path) -> PathBuf {
    let path = dir.join("cluster.key");
    let key: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    std::fs::write(&path, key).expect("key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

fn vault_on(etcd: &Etcd, key: &Path) -> Vault {
    Vault::start(&[
        "--store",
        &etcd.store_url(),
        "--key-file",
        &key.display().to_string(),
        "--store-lock-ttl",
        "3s",
    ])
}

fn fake() -> FakeProvider {
    let fake = FakeProvider::start(Style::Box);
    fake.register_client(CLIENT_ID, CLIENT_SECRET, &["http://127.0.0.1:53682/"]);
    fake
}

fn token_over_socket(socket: &Path) -> String {
    let (status, body) = http(socket, "GET", "/v1/connections/box/token", None).expect("request");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    v["access_token"].as_str().expect("token").to_string()
}

#[test]
fn a_storm_across_three_hosts_makes_one_refresh_and_etcd_holds_no_secret() {
    let etcd = Etcd::start();
    let keys = tempfile::tempdir().expect("tempdir");
    let key = shared_key(keys.path());
    let fake = fake();
    let vaults: Vec<Vault> = (0..3).map(|_| vault_on(&etcd, &key)).collect();
    let (at, rt) = fake.seed_tokens(CLIENT_ID, 3600);
    fake.set_token_delay(Duration::from_millis(500));
    let out = vaults[0].import("box", &fake, &blob(&at, Some(&rt), -60), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(5.0, "every vault to know the connection", || {
        vaults
            .iter()
            .all(|v| v.cli(&["status", "box"]).status.success())
    });
    let handles: Vec<_> = vaults
        .iter()
        .flat_map(|v| (0..64).map(move |_| v.socket.clone()))
        .map(|socket| std::thread::spawn(move || token_over_socket(&socket)))
        .collect();
    let tokens: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert_eq!(tokens.len(), 192);
    assert_eq!(fake.counters().refreshes, 1, "{:?}", fake.counters());
    assert!(
        tokens.iter().all(|t| t == &tokens[0]),
        "the hosts handed out different tokens"
    );
    assert_ne!(tokens[0], at);
    assert_eq!(fake.refresh_chain_breaks(), 0);
    // etcd never sees a token in the clear.
    let mut secrets = fake.issued_secrets();
    secrets.push(CLIENT_SECRET.to_string());
    let dump = etcd.dump();
    assert!(
        dump.iter()
            .any(|(k, _)| String::from_utf8_lossy(k).contains("records/box")),
        "no record in etcd"
    );
    for (k, v) in &dump {
        for secret in &secrets {
            let s = secret.as_bytes();
            assert!(
                !k.windows(s.len()).any(|w| w == s) && !v.windows(s.len()).any(|w| w == s),
                "a secret is in etcd"
            );
        }
    }
    for v in &vaults {
        v.assert_no_secrets(&fake);
    }
}

#[test]
fn an_import_on_one_host_is_served_by_another_within_a_second() {
    let etcd = Etcd::start();
    let keys = tempfile::tempdir().expect("tempdir");
    let key = shared_key(keys.path());
    let fake = fake();
    let a = vault_on(&etcd, &key);
    let c = vault_on(&etcd, &key);
    let (at, rt) = fake.seed_tokens(CLIENT_ID, 3600);
    let out = a.import("box", &fake, &blob(&at, Some(&rt), 3600), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(1.0, "C to serve A's import", || {
        matches!(
            http(&c.socket, "GET", "/v1/connections/box/token", None),
            Ok((200, _))
        )
    });
    assert_eq!(token_over_socket(&c.socket), at);
    // A removal propagates too.
    assert!(a.cli(&["remove", "box"]).status.success());
    eventually(1.0, "C to forget the removed connection", || {
        matches!(
            http(&c.socket, "GET", "/v1/connections/box/token", None),
            Ok((404, _))
        )
    });
}

#[test]
fn when_the_lock_holder_dies_another_host_takes_over() {
    let etcd = Etcd::start();
    let keys = tempfile::tempdir().expect("tempdir");
    let key = shared_key(keys.path());
    let fake = fake();
    let mut a = vault_on(&etcd, &key);
    let b = vault_on(&etcd, &key);
    let (at, rt) = fake.seed_tokens(CLIENT_ID, 3600);
    assert!(a
        .import("box", &fake, &blob(&at, Some(&rt), 3600), &[])
        .status
        .success());
    eventually(5.0, "B to know the connection", || {
        b.cli(&["status", "box"]).status.success()
    });
    // A starts a refresh, takes the lock, and the provider never answers.
    fake.inject_token_fault(Fault::Hang);
    let mut hung = Command::new(tests::bins::path("token-vault"))
        .arg("--socket")
        .arg(&a.socket)
        .args(["refresh", "box"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("refresh on A");
    eventually(10.0, "A's refresh to reach the provider", || {
        fake.counters().token_requests >= 1
    });
    a.kill();
    let _ = hung.kill();
    let _ = hung.wait();
    // B waits for the dead holder's lease to expire, then refreshes from what etcd holds.
    let out = b.cli(&["refresh", "box"]);
    assert!(
        out.status.success(),
        "B's refresh: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        b.log()
    );
    assert_eq!(fake.counters().refreshes, 1);
    assert_eq!(
        fake.refresh_chain_breaks(),
        0,
        "the chain broke on takeover"
    );
    assert_ne!(token_over_socket(&b.socket), at);
    assert_eq!(b.status("box")["state"], "ok");
}

#[test]
fn with_etcd_down_valid_tokens_are_served_and_refreshes_resume_after() {
    let mut etcd = Etcd::start();
    let keys = tempfile::tempdir().expect("tempdir");
    let key = shared_key(keys.path());
    let fake = fake();
    let a = vault_on(&etcd, &key);
    let (at, rt) = fake.seed_tokens(CLIENT_ID, 3600);
    assert!(a
        .import("box", &fake, &blob(&at, Some(&rt), 3600), &[])
        .status
        .success());
    etcd.stop();
    assert_eq!(a.token("box"), at, "a valid token is served from memory");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = a.status("box");
        if status["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("unreachable"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status does not say etcd is unreachable: {status}\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (at2, rt2) = fake.seed_tokens(CLIENT_ID, 3600);
    let out = a.import("other", &fake, &blob(&at2, Some(&rt2), 3600), &[]);
    assert!(
        !out.status.success(),
        "an import must be refused while etcd is down"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unreachable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    etcd.restart();
    eventually(20.0, "a refresh once etcd is back", || {
        a.cli(&["refresh", "box"]).status.success()
    });
    assert_eq!(fake.counters().refreshes, 1);
    assert_ne!(a.token("box"), at);
    eventually(10.0, "the unreachable note to clear", || {
        a.status("box")["last_error"].is_null()
    });
}
