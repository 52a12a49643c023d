//! The ceiling the vault is compared with: a minimal hyper 1 HTTP/1.1
//! server on a Unix socket that answers every request with the same small
//! JSON body. It runs as a process of its own (the bench re-executed with
//! `--baseline-server SOCKET`), on a multi-thread runtime like the daemon's,
//! so it shares neither a runtime nor a process with the clients.

use anyhow::{bail, Context};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The hidden flag that turns the bench into the baseline server.
pub const SERVER_FLAG: &str = "--baseline-server";
/// The hidden flag that gives the body's length.
pub const BODY_LEN_FLAG: &str = "--body-len";

/// The longest the server lives, should its parent never stop it.
const MAX_LIFETIME: Duration = Duration::from_secs(600);
/// The most connections it accepts.
const MAX_CONNECTIONS: usize = 1_000_000;

/// A token-response-shaped JSON body of exactly `len` bytes (or the
/// shortest such body, if `len` is smaller).
pub fn body(len: usize) -> String {
    let shell = r#"{"access_token":"","token_type":"bearer","expiry":"2030-01-01T00:00:00Z"}"#;
    let token = "x".repeat(len.saturating_sub(shell.len()));
    format!(r#"{{"access_token":"{token}","token_type":"bearer","expiry":"2030-01-01T00:00:00Z"}}"#)
}

/// Runs the server on `socket` until stdin closes (the parent went away),
/// the parent kills it, or `MAX_LIFETIME` passes.
pub fn serve(socket: &Path, body_len: usize) -> anyhow::Result<()> {
    let body = Bytes::from(body(body_len));
    std::thread::spawn(|| {
        // The parent never writes: this returns when its end closes.
        let mut byte = [0u8; 1];
        let _ = std::io::stdin().read(&mut byte);
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot build the baseline server's runtime")?;
    runtime.block_on(async move {
        let _ = std::fs::remove_file(socket);
        let listener = tokio::net::UnixListener::bind(socket)
            .with_context(|| format!("cannot listen on {}", socket.display()))?;
        let accept_all = async {
            for _ in 0..MAX_CONNECTIONS {
                let (stream, _) = listener.accept().await?;
                let body = body.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_request: Request<Incoming>| {
                        let body = body.clone();
                        async move {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header(header::CONTENT_TYPE, "application/json")
                                    .body(Full::new(body))
                                    .expect("a 200 with a content type is a valid response"),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Ok::<(), std::io::Error>(())
        };
        match tokio::time::timeout(MAX_LIFETIME, accept_all).await {
            Ok(accepted) => accepted.context("the baseline server failed"),
            Err(_) => Ok(()),
        }
    })
}

/// The baseline server as a child process of the bench.
pub struct Baseline {
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
    child: Child,
}

impl Baseline {
    /// Starts the bench executable as the server and waits until it accepts.
    pub fn start(body_len: usize) -> anyhow::Result<Baseline> {
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        let socket = dir.path().join("baseline.sock");
        let exe = std::env::current_exe().context("cannot find the bench's own path")?;
        let child = Command::new(exe)
            .arg(SERVER_FLAG)
            .arg(&socket)
            .arg(BODY_LEN_FLAG)
            .arg(body_len.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the baseline server")?;
        let mut baseline = Baseline {
            _dir: dir,
            socket,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&baseline.socket).is_ok() {
                return Ok(baseline);
            }
            if let Some(status) = baseline.child.try_wait()? {
                bail!("the baseline server exited with {status}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!("the baseline server did not start listening in time")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
