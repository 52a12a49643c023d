//! HTTP/1.1 clients over a Unix socket: hyper's connection-level client on
//! `tokio::net::UnixStream`, one keep-alive connection per client, requests
//! sent one after another on it.

use super::stats::nanos;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{header, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::net::UnixStream;
use tokio::task::JoinSet;

/// The most requests one client sends in one measurement, whatever the
/// deadline: a bound on the loop, far above what a few seconds allow.
const MAX_REQUESTS_PER_CLIENT: usize = 50_000_000;

/// How often a connect refused for a full backlog is retried.
const CONNECT_ATTEMPTS: u32 = 200;

/// One client connection, ready for requests.
pub type Client = SendRequest<Empty<Bytes>>;

/// Opens a keep-alive HTTP/1.1 connection on `socket`; its I/O runs on a
/// task of the current runtime.
pub async fn connect(socket: &Path) -> io::Result<Client> {
    let mut attempt = 0;
    let stream = loop {
        attempt += 1;
        match UnixStream::connect(socket).await {
            Ok(stream) => break stream,
            // A listen backlog overrun answers EAGAIN; give the server a moment.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && attempt < CONNECT_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// One GET on `client`; the status and the whole body.
pub async fn get(client: &mut Client, path: &str) -> Result<(StatusCode, Bytes), hyper::Error> {
    client.ready().await?;
    let request = Request::get(path)
        .header(header::HOST, "vault")
        .body(Empty::new())
        .expect("a GET with a path and a Host header is a valid request");
    let response = client.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// One GET on a connection of its own.
pub async fn get_once(socket: &Path, path: &str) -> io::Result<(StatusCode, Bytes)> {
    let mut client = connect(socket).await?;
    get(&mut client, path).await.map_err(io::Error::other)
}

/// What a steady load came to.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Latencies of the 200 answers, nanoseconds.
    pub latencies: Vec<u64>,
    /// Answers other than 200, and connection failures.
    pub errors: u64,
    /// From the start to the last answer; summed over merged results.
    pub window: Duration,
    /// Every request sent.
    pub sent: u64,
}

impl LoadResult {
    pub fn requests_per_sec(&self) -> f64 {
        let secs = self.window.as_secs_f64();
        if secs > 0.0 {
            self.latencies.len() as f64 / secs
        } else {
            0.0
        }
    }

    /// Adds another slice of the same load to this one.
    pub fn absorb(&mut self, other: LoadResult) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.window += other.window;
        self.sent += other.sent;
    }
}

/// Every connection of `clients` sending `GET path` back to back for
/// `duration`; the connections that are still usable come back with the
/// result, so slices of one load can run on the same connections.
pub async fn steady(
    clients: Vec<Client>,
    path: &str,
    duration: Duration,
) -> (Vec<Client>, io::Result<LoadResult>) {
    let from = Instant::now();
    let until = from + duration;
    let mut tasks = JoinSet::new();
    for mut client in clients {
        let path = path.to_string();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut last = from;
            let mut alive = true;
            for _ in 0..MAX_REQUESTS_PER_CLIENT {
                let start = Instant::now();
                if start >= until {
                    break;
                }
                let answer = get(&mut client, &path).await;
                let done = Instant::now();
                last = done;
                match answer {
                    Ok((StatusCode::OK, _)) => latencies.push(nanos(done - start)),
                    Ok(_) => errors += 1,
                    Err(_) => {
                        // The connection is gone; this client stops.
                        errors += 1;
                        alive = false;
                        break;
                    }
                }
            }
            let sent = latencies.len() as u64 + errors;
            (alive.then_some(client), latencies, errors, last, sent)
        });
    }
    let mut kept = Vec::new();
    let mut result = LoadResult::default();
    let mut last = from;
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((client, latencies, errors, done, sent)) => {
                kept.extend(client);
                result.latencies.extend(latencies);
                result.errors += errors;
                result.sent += sent;
                last = last.max(done);
            }
            Err(e) => failure = Some(io::Error::other(e)),
        }
    }
    result.window = last - from;
    match failure {
        Some(e) => (kept, Err(e)),
        None => (kept, Ok(result)),
    }
}

/// What a storm came to.
#[derive(Debug)]
pub struct StormResult {
    /// Per request, from its own send to its whole answer, nanoseconds (200s only).
    pub waits: Vec<u64>,
    pub errors: usize,
    /// When the signal to fire was given.
    pub fired: Instant,
    /// From the signal to fire to the last answer.
    pub wall: Duration,
}

/// Opens `n` connections, for [`steady`] or [`arm`] (so that a storm does
/// not wait on connection set-up).
pub async fn open(socket: &Path, n: usize) -> io::Result<Vec<Client>> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(connect(socket).await?);
    }
    Ok(clients)
}

/// Requests parked on their connections, waiting for [`Storm::fire`].
pub struct Storm {
    go: tokio::sync::watch::Sender<bool>,
    tasks: JoinSet<(Option<u64>, Instant)>,
}

/// Parks one `GET path` task per connection; [`Storm::fire`] releases them
/// together.
pub fn arm(clients: Vec<Client>, path: &str) -> Storm {
    let (go, ready) = tokio::sync::watch::channel(false);
    let mut tasks = JoinSet::new();
    for mut client in clients {
        let path = path.to_string();
        let mut ready = ready.clone();
        tasks.spawn(async move {
            if ready.wait_for(|go| *go).await.is_err() {
                return (None, Instant::now());
            }
            let start = Instant::now();
            let answer = get(&mut client, &path).await;
            let done = Instant::now();
            match answer {
                Ok((StatusCode::OK, _)) => (Some(nanos(done - start)), done),
                _ => (None, done),
            }
        });
    }
    Storm { go, tasks }
}

impl Storm {
    /// Releases every parked request and waits for every answer, up to
    /// `deadline`.
    pub async fn fire(self, deadline: Duration) -> StormResult {
        let Storm { go, mut tasks } = self;
        let fired = Instant::now();
        let _ = go.send(true);
        let mut waits = Vec::new();
        let mut errors = 0;
        let mut last = fired;
        let all = async {
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok((Some(wait), done)) => {
                        waits.push(wait);
                        last = last.max(done);
                    }
                    Ok((None, done)) => {
                        errors += 1;
                        last = last.max(done);
                    }
                    Err(_) => errors += 1,
                }
            }
        };
        if tokio::time::timeout(deadline, all).await.is_err() {
            errors += tasks.len();
            tasks.abort_all();
        }
        StormResult {
            waits,
            errors,
            fired,
            wall: last - fired,
        }
    }
}
