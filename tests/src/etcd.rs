//! A real etcd on loopback for the shared-store tests: its own ports and
//! temporary data directory, stopped on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd may take to become healthy.
const START_DEADLINE: Duration = Duration::from_secs(30);

pub struct Etcd {
    pub client_port: u16,
    peer_port: u16,
    data: tempfile::TempDir,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Etcd {
    /// Starts etcd (Debian's `etcd-server`); panics with a hint if it is missing.
    pub fn start() -> Etcd {
        let mut etcd = Etcd {
            client_port: free_port(),
            peer_port: free_port(),
            data: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        etcd.spawn();
        etcd
    }

    /// `etcd://127.0.0.1:PORT`, for `serve --store`.
    pub fn store_url(&self) -> String {
        format!("etcd://127.0.0.1:{}", self.client_port)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn spawn(&mut self) {
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let client = self.endpoint();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.path().join("etcd.log"))
            .expect("etcd log");
        let child = Command::new("etcd")
            .args(["--name", "test"])
            .arg("--data-dir")
            .arg(self.data_dir())
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("test={peer}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot run `etcd`: install Debian's etcd-server (scripts/install-deps does)");
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if self.healthy() {
                return;
            }
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.data.path().join("data")
    }

    /// etcd's `/health` answers `{"health":"true"}`.
    pub fn healthy(&self) -> bool {
        reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .ok()
            .and_then(|c| c.get(format!("{}/health", self.endpoint())).send().ok())
            .and_then(|r| r.text().ok())
            .is_some_and(|t| t.contains("true"))
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Every key and value under the cluster, as raw bytes (via the v3
    /// JSON gateway), for the "no secrets in etcd" check.
    pub fn dump(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        // key "\0" with range_end "\0" means every key.
        let body = serde_json::json!({"key": b64.encode([0u8]), "range_end": b64.encode([0u8])});
        let resp: serde_json::Value = reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .post(format!("{}/v3/kv/range", self.endpoint()))
            .json(&body)
            .send()
            .and_then(|r| r.json())
            .expect("etcd range");
        resp["kvs"]
            .as_array()
            .map(|kvs| {
                kvs.iter()
                    .map(|kv| {
                        let get = |f: &str| {
                            b64.decode(kv[f].as_str().unwrap_or_default())
                                .unwrap_or_default()
                        };
                        (get("key"), get("value"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
