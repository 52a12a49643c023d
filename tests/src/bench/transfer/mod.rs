//! Transfer throughput: SIZE bytes up and down through the vault's
//! `…/content` route on its Unix socket, and the same transfer made directly
//! to the fake provider the way the vault makes it, for Box and Dropbox; the
//! daemon's resident memory meanwhile; every byte checked by SHA-256.
//!
//! - The content is a generated file (pseudo-random, so incompressible) in
//!   `$TMPDIR`, hashed once while it is written; it is never held in memory.
//! - Vault route: one HTTP/1.1 connection per request over the socket, like
//!   `token-vault put`/`get`: `PUT …/content?path=…` with `Content-Length`,
//!   the body read from the file 256 KiB at a time; `GET …/content?path=…`,
//!   the body SHA-256'd on a thread of its own as it arrives.
//! - Direct route: reqwest over loopback TCP, with the bearer token that
//!   `seed_tokens` issued, making the vault's own requests: Box, an upload
//!   session with the fake's part size (each part SHA-1'd before it is sent,
//!   as its `Digest` must be, and the whole file's SHA-1 for the commit), or
//!   one multipart upload at or below the vault's 50 MiB cutoff, then
//!   `GET /2.0/files/{id}/content` and the 302's one-time URL; Dropbox,
//!   `upload_session/start`, `append_v2` and `finish` in 48 MiB chunks (one
//!   `files/upload` at or below that), then `files/download`. Upload bodies
//!   are streamed from the file with their `Content-Length`, as the vault
//!   streams its spool.
//! - Each upload is made once per route, the vault's first; each download
//!   [`DOWNLOAD_ROUNDS`] times per route, alternating (they are short, so
//!   noisier).
//! - Before each transfer, `sync`, so none inherits another's dirty pages;
//!   the daemon's peak RSS is reset (`/proc/PID/clear_refs`) and read back
//!   (`VmHWM`) after it.

use super::daemon::Daemon;
use super::machine;
use crate::fake::{FakeProvider, Style};
use crate::vault_harness::{blob, CLIENT_ID, CLIENT_SECRET};
use anyhow::{anyhow, bail, ensure, Context as _};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ring::digest::{Context, SHA256};
use serde_json::{json, Value};
use sha1::{Digest as _, Sha1};
use std::error::Error as StdError;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio_util::io::ReaderStream;

/// The default transfer size: 1 GiB.
pub const DEFAULT_SIZE: u64 = 1 << 30;
/// The size with `--quick`: 64 MiB.
pub const QUICK_SIZE: u64 = 64 << 20;
/// The largest size: the fake Box account's `max_upload_size`.
pub const MAX_SIZE: u64 = 2 << 30;

/// The vault's defaults that the direct route mirrors
/// (`vault-server/src/files.rs`, `providers/box_.rs`, `providers/dropbox.rs`):
/// Box files above the cutoff go through an upload session (the vault also
/// wants at least Box's 20 MB minimum, which the cutoff exceeds), Dropbox
/// files above one chunk through an upload session.
pub const BOX_UPLOAD_CUTOFF: u64 = 50 * 1024 * 1024;
pub const DROPBOX_CHUNK: u64 = 48 * 1024 * 1024;
/// The fake's default Box part size (it is never changed here).
pub const BOX_PART_SIZE: u64 = 8 * 1024 * 1024;

/// Reads of upload bodies: `token-vault put`'s and the vault spool's size.
const IO_CHUNK: usize = 256 * 1024;
/// Pieces of the generated file, and of hashing passes over it.
const GEN_PIECE: usize = 1 << 20;
/// Chunks queued for the download hasher thread.
const HASH_QUEUE: usize = 64;
/// Downloads are cheap and short: each route's is made this many times,
/// alternating, and the median reported.
pub const DOWNLOAD_ROUNDS: usize = 3;
/// How many 202s (still processing) a commit or download waits through.
const MAX_PROCESSING_WAITS: u32 = 60;
/// A transfer gets at least this long…
const MIN_DEADLINE: Duration = Duration::from_secs(120);
/// …and at least as long as it takes at this rate (bytes/s).
const SLOWEST_RATE: u64 = 4_000_000;
/// How long the untimed `sync` before a transfer may take.
const SYNC_DEADLINE: Duration = Duration::from_secs(120);

/// Which way the bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Upload,
    Download,
}

/// Through the vault, or straight to the fake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Vault,
    Direct,
}

/// CPU time used during one transfer.
#[derive(Clone, Copy, Debug, Default)]
pub struct LegCpu {
    /// The daemon process.
    pub vault: Duration,
    /// The fake provider's threads (it runs inside the bench process).
    pub fake: Duration,
    /// The rest of the bench process: the client and its hasher.
    pub client: Duration,
    /// The whole machine, every process included.
    pub machine: Duration,
}

/// One timed transfer that completed.
#[derive(Debug)]
pub struct Timed {
    pub wall: Duration,
    pub bytes: u64,
    pub cpu: Option<LegCpu>,
    /// `Ok` when the SHA-256 (and size) of what arrived is the source's.
    pub check: Result<(), String>,
    /// The daemon's `VmHWM` after this transfer, in KiB (reset before it
    /// when `Figures::hwm_reset` says so).
    pub daemon_hwm_kib: Option<u64>,
    /// What exactly was sent (parts, chunks…).
    pub how: String,
}

impl Timed {
    /// Decimal megabytes (10^6 bytes) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.wall.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// One transfer and how it went.
#[derive(Debug)]
pub struct Leg {
    pub style: Style,
    pub direction: Direction,
    pub route: Route,
    pub outcome: Result<Timed, String>,
}

/// Everything the transfer measurement found.
#[derive(Debug)]
pub struct Figures {
    pub size: u64,
    pub legs: Vec<Leg>,
    /// The daemon's `VmRSS` before the first transfer, KiB.
    pub rss_before_kib: Option<u64>,
    /// The daemon's `VmHWM` before the first transfer (its start and the
    /// imports), KiB.
    pub startup_hwm_kib: Option<u64>,
    /// The daemon's `VmRSS` after the last transfer, KiB.
    pub rss_after_kib: Option<u64>,
    /// Whether `VmHWM` could be reset before each transfer; if not, each
    /// transfer's figure is the peak since the daemon started.
    pub hwm_reset: bool,
    /// Time spent generating and hashing the source file.
    pub generate: Duration,
    /// Time spent in the untimed `sync`s.
    pub syncs: Duration,
}

impl Figures {
    /// The daemon's highest `VmHWM` seen: startup or any transfer.
    pub fn peak_hwm_kib(&self) -> Option<u64> {
        self.legs
            .iter()
            .filter_map(|l| l.outcome.as_ref().ok()?.daemon_hwm_kib)
            .chain(self.startup_hwm_kib)
            .max()
    }

    /// Every run of one transfer, in order.
    pub fn legs_of(&self, style: Style, direction: Direction, route: Route) -> Vec<&Leg> {
        self.legs
            .iter()
            .filter(|l| l.style == style && l.direction == direction && l.route == route)
            .collect()
    }
}

/// The generated content, on disk.
pub struct Source {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub len: u64,
    pub sha256: String,
}

impl Source {
    /// Writes `len` pseudo-random bytes (xorshift64) to a new file in
    /// `$TMPDIR`, hashing them on the way.
    pub fn generate(len: u64) -> anyhow::Result<Source> {
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        let path = dir.path().join("source.bin");
        let mut file = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut sha = Context::new(&SHA256);
        let mut buf = vec![0u8; GEN_PIECE];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut left = len;
        for _ in 0..len.div_ceil(GEN_PIECE as u64) {
            for word in buf.chunks_exact_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes());
            }
            let n = left.min(GEN_PIECE as u64) as usize;
            sha.update(&buf[..n]);
            file.write_all(&buf[..n])
                .with_context(|| format!("cannot write {}", path.display()))?;
            left -= n as u64;
        }
        file.flush()?;
        Ok(Source {
            _dir: dir,
            path,
            len,
            sha256: hex(sha.finish().as_ref()),
        })
    }

    /// The file, opened and positioned at `offset`, as a stream of at most
    /// `len` bytes in [`IO_CHUNK`] pieces.
    fn stream(
        &self,
        offset: u64,
        len: u64,
    ) -> anyhow::Result<ReaderStream<tokio::io::Take<tokio::fs::File>>> {
        let mut file = std::fs::File::open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(ReaderStream::with_capacity(
            tokio::fs::File::from_std(file).take(len),
            IO_CHUNK,
        ))
    }

    /// The SHA-1 of `len` bytes from `offset`, also fed to `whole`, read on
    /// a blocking thread (from the page cache, normally).
    async fn sha1_of(
        &self,
        offset: u64,
        len: u64,
        mut whole: Option<Sha1>,
    ) -> anyhow::Result<([u8; 20], Option<Sha1>)> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(&path)?;
            file.seek(SeekFrom::Start(offset))?;
            let mut part = Sha1::new();
            let mut buf = vec![0u8; GEN_PIECE];
            let mut left = len;
            for _ in 0..len.div_ceil(GEN_PIECE as u64) {
                let n = left.min(GEN_PIECE as u64) as usize;
                file.read_exact(&mut buf[..n])?;
                part.update(&buf[..n]);
                if let Some(w) = &mut whole {
                    w.update(&buf[..n]);
                }
                left -= n as u64;
            }
            std::io::Result::Ok((part.finalize().into(), whole))
        })
        .await
        .context("the hashing thread failed")?
        .context("cannot read the source file")
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A thread that SHA-256s downloaded chunks as they arrive, so that the
/// receiving task only counts and forwards them.
struct Hasher {
    tx: mpsc::Sender<Bytes>,
    thread: std::thread::JoinHandle<String>,
}

impl Hasher {
    /// A hasher for at most `max_chunks` chunks (each at least a byte).
    fn start(max_chunks: u64) -> anyhow::Result<Hasher> {
        let (tx, mut rx) = mpsc::channel::<Bytes>(HASH_QUEUE);
        let thread = std::thread::Builder::new()
            .name("bench-hasher".into())
            .spawn(move || {
                let mut sha = Context::new(&SHA256);
                // Ends when the sender is dropped.
                for _ in 0..max_chunks {
                    let Some(chunk) = rx.blocking_recv() else {
                        break;
                    };
                    sha.update(&chunk);
                }
                hex(sha.finish().as_ref())
            })
            .context("cannot start the hashing thread")?;
        Ok(Hasher { tx, thread })
    }

    fn finish(self) -> anyhow::Result<String> {
        drop(self.tx);
        self.thread
            .join()
            .map_err(|_| anyhow!("the hashing thread panicked"))
    }
}

/// Aborts a connection task when dropped.
struct ConnTask(tokio::task::JoinHandle<()>);

impl Drop for ConnTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One request on a fresh HTTP/1.1 connection to the daemon's socket.
async fn vault_send<B>(
    socket: &Path,
    request: Request<B>,
) -> anyhow::Result<(Response<Incoming>, ConnTask)>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let stream = UnixStream::connect(socket)
        .await
        .with_context(|| format!("cannot connect to {}", socket.display()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake with the vault failed")?;
    let task = ConnTask(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = sender
        .send_request(request)
        .await
        .context("the vault broke the connection off")?;
    Ok((response, task))
}

/// `/v1/connections/{name}/content?path={path}` (both plain ASCII here).
fn content_path(name: &str, path: &str) -> String {
    format!(
        "/v1/connections/{name}/content?path={}",
        path.replace('/', "%2F")
    )
}

/// Reads a whole small answer body.
async fn small_body(response: Response<Incoming>) -> anyhow::Result<(StatusCode, Bytes)> {
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// The first line of a body, for an error message.
fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

/// `PUT …/content?path=remote` with the whole source, streamed.
async fn vault_upload(
    socket: &Path,
    name: &str,
    remote: &str,
    source: &Source,
) -> anyhow::Result<()> {
    let body = StreamBody::new(source.stream(0, source.len)?.map_ok(Frame::data));
    let request = Request::put(content_path(name, remote))
        .header(header::HOST, "vault")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, source.len)
        .header(header::ACCEPT, "application/json")
        .body(body)?;
    let (response, _conn) = vault_send(socket, request).await?;
    let (status, body) = small_body(response).await?;
    ensure!(
        status.is_success(),
        "the vault answered the upload with {status}: {}",
        excerpt(&body)
    );
    Ok(())
}

/// `GET …/content?path=remote`, every chunk to `hasher`; the bytes received.
async fn vault_download(
    socket: &Path,
    name: &str,
    remote: &str,
    expected: u64,
    hasher: &Hasher,
) -> anyhow::Result<u64> {
    let request = Request::get(content_path(name, remote))
        .header(header::HOST, "vault")
        .body(Empty::<Bytes>::new())?;
    let (response, _conn) = vault_send(socket, request).await?;
    if response.status() != StatusCode::OK {
        let (status, body) = small_body(response).await?;
        bail!(
            "the vault answered the download with {status}: {}",
            excerpt(&body)
        );
    }
    let mut body = response.into_body();
    let mut received = 0u64;
    // Each frame carries at least one byte, or ends the body.
    for _ in 0..=expected.saturating_add(1) {
        let Some(frame) = body.frame().await else {
            return Ok(received);
        };
        if let Ok(data) = frame.context("the download broke off")?.into_data() {
            received += data.len() as u64;
            hasher.tx.send(data).await.context("the hasher stopped")?;
        }
    }
    bail!("the download sent more frames than it has bytes")
}

/// Streams a provider's answer to `hasher`; the bytes received.
async fn direct_body(
    mut response: reqwest::Response,
    expected: u64,
    hasher: &Hasher,
) -> anyhow::Result<u64> {
    let mut received = 0u64;
    for _ in 0..=expected.saturating_add(1) {
        match response.chunk().await.context("the download broke off")? {
            Some(chunk) => {
                received += chunk.len() as u64;
                hasher.tx.send(chunk).await.context("the hasher stopped")?;
            }
            None => return Ok(received),
        }
    }
    bail!("the download sent more chunks than it has bytes")
}

/// What the direct route needs: the fake's URLs and a token.
struct Direct<'a> {
    http: &'a reqwest::Client,
    api: String,
    upload: String,
    token: String,
    source: &'a Source,
}

/// A reqwest answer's status and (small) JSON body, or an error.
async fn json_answer(what: &str, response: reqwest::Response) -> anyhow::Result<(u16, Value)> {
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    ensure!(
        (200..300).contains(&status),
        "{what}: the fake answered {status}: {}",
        excerpt(&body)
    );
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .with_context(|| format!("{what}: the answer is not JSON: {}", excerpt(&body)))?
    };
    Ok((status, value))
}

fn retry_after(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1))
        .min(Duration::from_secs(10))
}

impl Direct<'_> {
    /// The source from `offset`, `len` bytes, as a streamed body (the
    /// request states the length).
    fn body(&self, offset: u64, len: u64) -> anyhow::Result<reqwest::Body> {
        Ok(reqwest::Body::wrap_stream(self.source.stream(offset, len)?))
    }

    /// Box: the upload the vault makes for this size; the new file's id and
    /// a description.
    async fn box_upload(&self, name: &str) -> anyhow::Result<(String, String)> {
        let len = self.source.len;
        if len > BOX_UPLOAD_CUTOFF {
            return self.box_session_upload(name).await;
        }
        let (sha1, _) = self.source.sha1_of(0, len, None).await?;
        let form = reqwest::multipart::Form::new()
            .text(
                "attributes",
                json!({"name": name, "parent": {"id": "0"}}).to_string(),
            )
            .part(
                "file",
                reqwest::multipart::Part::stream_with_length(self.body(0, len)?, len)
                    .file_name(name.to_string()),
            );
        let response = self
            .http
            .post(format!("{}/files/content", self.upload))
            .bearer_auth(&self.token)
            .header("Content-MD5", hex(sha1.as_ref()))
            .multipart(form)
            .send()
            .await?;
        let (_, answer) = json_answer("Box upload", response).await?;
        Ok((
            file_id(&answer)?,
            "one multipart POST /api/2.0/files/content (the vault's route at or below its 50 MiB cutoff), SHA-1 first".into(),
        ))
    }

    async fn box_session_upload(&self, name: &str) -> anyhow::Result<(String, String)> {
        let len = self.source.len;
        let response = self
            .http
            .post(format!("{}/files/upload_sessions", self.upload))
            .bearer_auth(&self.token)
            .json(&json!({"folder_id": "0", "file_size": len, "file_name": name}))
            .send()
            .await?;
        let (_, session) = json_answer("Box upload session", response).await?;
        let sid = session
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("an upload session without an id"))?
            .to_string();
        let part_size = session
            .get("part_size")
            .and_then(Value::as_u64)
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow!("an upload session without a part size"))?;
        let url = format!("{}/files/upload_sessions/{sid}", self.upload);
        let mut whole = Some(Sha1::new());
        let mut parts = Vec::new();
        let count = len.div_ceil(part_size);
        for index in 0..count {
            let offset = index * part_size;
            let part_len = part_size.min(len - offset);
            let (sha1, w) = self.source.sha1_of(offset, part_len, whole.take()).await?;
            whole = w;
            let response = self
                .http
                .put(&url)
                .bearer_auth(&self.token)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .header(reqwest::header::CONTENT_LENGTH, part_len)
                .header(
                    reqwest::header::CONTENT_RANGE,
                    format!("bytes {offset}-{}/{len}", offset + part_len - 1),
                )
                .header("Digest", format!("sha={}", STANDARD.encode(sha1.as_ref())))
                .body(self.body(offset, part_len)?)
                .send()
                .await?;
            let (_, answer) = json_answer("Box part", response).await?;
            parts.push(
                answer
                    .get("part")
                    .cloned()
                    .ok_or_else(|| anyhow!("a part answer without its part"))?,
            );
        }
        let whole = whole.ok_or_else(|| anyhow!("the whole-file SHA-1 went missing"))?;
        let digest = format!("sha={}", STANDARD.encode(whole.finalize()));
        let commit = json!({"parts": parts, "attributes": {"name": name, "parent": {"id": "0"}}});
        for _ in 0..MAX_PROCESSING_WAITS {
            let response = self
                .http
                .post(format!("{url}/commit"))
                .bearer_auth(&self.token)
                .header("Digest", digest.clone())
                .json(&commit)
                .send()
                .await?;
            if response.status() == reqwest::StatusCode::ACCEPTED {
                tokio::time::sleep(retry_after(&response)).await;
                continue;
            }
            let (_, answer) = json_answer("Box commit", response).await?;
            return Ok((
                file_id(&answer)?,
                format!(
                    "upload session: {count} × {} parts PUT one after another, each SHA-1'd first (its Digest), then the commit with the whole file's SHA-1",
                    size_label(part_size)
                ),
            ));
        }
        bail!("the fake kept answering 202 to the commit")
    }

    /// Box: `GET /2.0/files/{id}/content`, then the 302's URL, without the
    /// token (as the vault does).
    async fn box_download(&self, id: &str, hasher: &Hasher) -> anyhow::Result<u64> {
        let url = format!("{}/files/{id}/content", self.api);
        for _ in 0..MAX_PROCESSING_WAITS {
            let response = self.http.get(&url).bearer_auth(&self.token).send().await?;
            match response.status().as_u16() {
                301 | 302 | 303 | 307 => {
                    let location = response
                        .headers()
                        .get(reqwest::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .ok_or_else(|| anyhow!("a redirect without a Location"))?
                        .to_string();
                    let content = self.http.get(&location).send().await?;
                    ensure!(
                        content.status().is_success(),
                        "the download URL answered {}",
                        content.status()
                    );
                    return direct_body(content, self.source.len, hasher).await;
                }
                200 => return direct_body(response, self.source.len, hasher).await,
                202 => tokio::time::sleep(retry_after(&response)).await,
                status => bail!("the fake answered the download with {status}"),
            }
        }
        bail!("the fake kept answering 202 to the download")
    }

    /// Dropbox: one content-host call with `Dropbox-API-Arg`, carrying the
    /// source's bytes `range` (or an empty body).
    async fn dropbox_call(
        &self,
        function: &str,
        arg: &Value,
        range: Option<(u64, u64)>,
    ) -> anyhow::Result<Value> {
        let (body, len) = match range {
            Some((offset, len)) => (self.body(offset, len)?, len),
            None => (reqwest::Body::from(Vec::new()), 0),
        };
        let response = self
            .http
            .post(format!("{}/{function}", self.upload))
            .bearer_auth(&self.token)
            .header("Dropbox-API-Arg", arg.to_string())
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body)
            .send()
            .await?;
        Ok(json_answer(function, response).await?.1)
    }

    /// Dropbox: the upload the vault makes for this size; a description.
    async fn dropbox_upload(&self, path: &str) -> anyhow::Result<String> {
        let len = self.source.len;
        let commit = json!({"path": path, "mode": "overwrite", "autorename": false, "mute": false});
        if len <= DROPBOX_CHUNK {
            self.dropbox_call("files/upload", &commit, Some((0, len)))
                .await?;
            return Ok(
                "one POST files/upload (the vault's route at or below one 48 MiB chunk)".into(),
            );
        }
        let started = self
            .dropbox_call(
                "files/upload_session/start",
                &json!({"close": false}),
                Some((0, DROPBOX_CHUNK)),
            )
            .await?;
        let session = started
            .get("session_id")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("an upload session without an id"))?
            .to_string();
        let chunks = len.div_ceil(DROPBOX_CHUNK);
        for index in 1..chunks {
            let offset = index * DROPBOX_CHUNK;
            let n = DROPBOX_CHUNK.min(len - offset);
            self.dropbox_call(
                "files/upload_session/append_v2",
                &json!({"cursor": {"session_id": session, "offset": offset}, "close": false}),
                Some((offset, n)),
            )
            .await?;
        }
        self.dropbox_call(
            "files/upload_session/finish",
            &json!({"cursor": {"session_id": session, "offset": len}, "commit": commit}),
            None,
        )
        .await?;
        Ok(format!(
            "upload_session/start + {} × append_v2 + finish (empty), {} chunks one after another",
            chunks - 1,
            size_label(DROPBOX_CHUNK)
        ))
    }

    async fn dropbox_download(&self, path: &str, hasher: &Hasher) -> anyhow::Result<u64> {
        let response = self
            .http
            .post(format!("{}/files/download", self.upload))
            .bearer_auth(&self.token)
            .header("Dropbox-API-Arg", json!({"path": path}).to_string())
            .send()
            .await?;
        ensure!(
            response.status().is_success(),
            "the fake answered the download with {}",
            response.status()
        );
        direct_body(response, self.source.len, hasher).await
    }
}

/// The file id in a Box upload answer `{"entries":[{"id":…}]}`.
fn file_id(answer: &Value) -> anyhow::Result<String> {
    answer
        .pointer("/entries/0/id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| anyhow!("an upload answer without the file's id"))
}

/// `1073741824` as `1 GiB`, `8388608` as `8 MiB`, else bytes.
pub fn size_label(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if bytes >= GIB && bytes & (GIB - 1) == 0 {
        format!("{} GiB", bytes / GIB)
    } else if bytes >= MIB && bytes & (MIB - 1) == 0 {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} B")
    }
}

/// Resets `pid`'s `VmHWM` to its current RSS (Linux ≥ 4.0, same user).
fn reset_hwm(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Flushes dirty pages, so that no transfer pays for another's writes.
fn sync() -> Duration {
    let start = Instant::now();
    if let Ok(mut child) = std::process::Command::new("sync").spawn() {
        for _ in 0..SYNC_DEADLINE.as_millis() / 10 {
            if !matches!(child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    start.elapsed()
}

/// CPU counters at one moment.
#[derive(Clone, Copy)]
struct CpuSample {
    vault: Option<Duration>,
    own: Option<Duration>,
    fake: Option<Duration>,
    machine: Option<Duration>,
}

impl CpuSample {
    fn take(pid: u32) -> CpuSample {
        CpuSample {
            vault: machine::cpu_time(pid),
            own: machine::cpu_time(std::process::id()),
            fake: machine::own_threads_cpu_time("fake-provider"),
            machine: machine::machine_busy(),
        }
    }

    fn since(self, before: CpuSample) -> Option<LegCpu> {
        let d = |a: Option<Duration>, b: Option<Duration>| Some(a?.saturating_sub(b?));
        let fake = d(self.fake, before.fake)?;
        Some(LegCpu {
            vault: d(self.vault, before.vault)?,
            fake,
            client: d(self.own, before.own)?.saturating_sub(fake),
            machine: d(self.machine, before.machine)?,
        })
    }
}

/// Runs the whole measurement: both providers, both directions, both
/// routes, on a daemon of its own.
pub fn run(
    runtime: &tokio::runtime::Runtime,
    vault_bin: &Path,
    size: u64,
    progress: &dyn Fn(&str),
) -> anyhow::Result<Figures> {
    ensure!(
        (1..=MAX_SIZE).contains(&size),
        "the transfer size must be 1 to {MAX_SIZE} bytes"
    );
    progress(&format!(
        "transfers: generating {} of content",
        size_label(size)
    ));
    let start = Instant::now();
    let source = Source::generate(size)?;
    let generate = start.elapsed();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build the HTTP client")?;
    let vault = Daemon::start(vault_bin)?;
    let pid = vault.pid();
    let deadline = MIN_DEADLINE.max(Duration::from_secs(size / SLOWEST_RATE));
    let mut figures = Figures {
        size,
        legs: Vec::new(),
        rss_before_kib: None,
        startup_hwm_kib: None,
        rss_after_kib: None,
        hwm_reset: true,
        generate,
        syncs: Duration::ZERO,
    };
    for style in [Style::Box, Style::Dropbox] {
        let (name, label) = match style {
            Style::Box => ("box", "Box"),
            Style::Dropbox => ("dropbox", "Dropbox"),
        };
        let fake = FakeProvider::start(style);
        fake.register_client(CLIENT_ID, CLIENT_SECRET, &["http://127.0.0.1:53682/"]);
        // Its one "still processing" 202 per commit would add the same
        // 1 s Retry-After sleep to both routes.
        fake.set_box_commit_202s(0);
        let (access, refresh) = fake.seed_tokens(CLIENT_ID, 86_400);
        let imported = vault.import(name, &fake, &blob(&access, Some(&refresh), 86_400));
        if figures.rss_before_kib.is_none() {
            figures.rss_before_kib = machine::status_kib(pid, "VmRSS");
            figures.startup_hwm_kib = machine::status_kib(pid, "VmHWM");
        }
        let direct = Direct {
            http: &http,
            api: fake.api_url(),
            upload: fake.upload_url(),
            token: access,
            source: &source,
        };
        let (vault_path, direct_path) = ("/vault.bin", "/direct.bin");
        let mut box_id = None;
        let mut plan = vec![
            (Direction::Upload, Route::Vault),
            (Direction::Upload, Route::Direct),
        ];
        for _ in 0..DOWNLOAD_ROUNDS {
            plan.push((Direction::Download, Route::Vault));
            plan.push((Direction::Download, Route::Direct));
        }
        for (direction, route) in plan {
            progress(&format!(
                "transfers: {label} {} {} through {}",
                size_label(size),
                match direction {
                    Direction::Upload => "upload",
                    Direction::Download => "download",
                },
                match route {
                    Route::Vault => "the vault",
                    Route::Direct => "direct requests to the fake",
                }
            ));
            figures.syncs += sync();
            figures.hwm_reset &= reset_hwm(pid);
            let before = CpuSample::take(pid);
            let started = Instant::now();
            let outcome: anyhow::Result<(u64, Option<String>, String)> = (|| {
                if let (Route::Vault, Err(e)) = (route, &imported) {
                    bail!("{e:#}");
                }
                match direction {
                    Direction::Upload => {
                        let how = runtime.block_on(async {
                            tokio::time::timeout(deadline, async {
                                match (route, style) {
                                    (Route::Vault, _) => {
                                        vault_upload(&vault.socket, name, vault_path, &source)
                                            .await?;
                                        Ok(format!(
                                            "PUT {} with Content-Length, one connection, body read 256 KiB at a time (like token-vault put)",
                                            content_path(name, vault_path)
                                        ))
                                    }
                                    (Route::Direct, Style::Box) => {
                                        let (id, how) = direct.box_upload("direct.bin").await?;
                                        box_id = Some(id);
                                        Ok(how)
                                    }
                                    (Route::Direct, Style::Dropbox) => {
                                        direct.dropbox_upload(direct_path).await
                                    }
                                }
                            })
                            .await
                            .map_err(|_| anyhow!("no answer within {} s", deadline.as_secs()))?
                        })?;
                        Ok((size, None, how))
                    }
                    Direction::Download => {
                        let hasher = Hasher::start(size.saturating_add(1))?;
                        let received = runtime.block_on(async {
                            tokio::time::timeout(deadline, async {
                                match (route, style) {
                                    (Route::Vault, _) => {
                                        vault_download(
                                            &vault.socket,
                                            name,
                                            vault_path,
                                            size,
                                            &hasher,
                                        )
                                        .await
                                    }
                                    (Route::Direct, Style::Box) => match &box_id {
                                        Some(id) => direct.box_download(id, &hasher).await,
                                        None => bail!("nothing to download: the upload failed"),
                                    },
                                    (Route::Direct, Style::Dropbox) => {
                                        direct.dropbox_download(direct_path, &hasher).await
                                    }
                                }
                            })
                            .await
                            .map_err(|_| anyhow!("no answer within {} s", deadline.as_secs()))?
                        });
                        let sha = hasher.finish()?;
                        let received = received?;
                        let how = match (route, style) {
                            (Route::Vault, _) => format!(
                                "GET {}, streamed and SHA-256'd on a thread",
                                content_path(name, vault_path)
                            ),
                            (Route::Direct, Style::Box) => "GET /2.0/files/{id}/content, then the 302's one-time URL without the token (as the vault does)".into(),
                            (Route::Direct, Style::Dropbox) => "POST files/download".into(),
                        };
                        Ok((received, Some(sha), how))
                    }
                }
            })();
            let wall = started.elapsed();
            let cpu = CpuSample::take(pid).since(before);
            let daemon_hwm_kib = machine::status_kib(pid, "VmHWM");
            let outcome = outcome
                .map(|(bytes, downloaded_sha, how)| {
                    let check = match downloaded_sha {
                        Some(sha) => {
                            if bytes != size {
                                Err(format!("{bytes} bytes arrived, not {size}"))
                            } else if sha != source.sha256 {
                                Err(format!(
                                    "SHA-256 of the bytes that arrived is {sha}, not {}",
                                    source.sha256
                                ))
                            } else {
                                Ok(())
                            }
                        }
                        None => {
                            let path = match route {
                                Route::Vault => vault_path,
                                Route::Direct => direct_path,
                            };
                            match (fake.file_sha256(path), fake.file_size(path)) {
                                (Some(sha), Some(len)) if sha == source.sha256 && len == size => {
                                    Ok(())
                                }
                                (Some(sha), len) => Err(format!(
                                    "the fake's {path} has SHA-256 {sha} and {len:?} bytes, not {} and {size}",
                                    source.sha256
                                )),
                                (None, _) => Err(format!("the fake has no {path}")),
                            }
                        }
                    };
                    Timed {
                        wall,
                        bytes,
                        cpu,
                        check,
                        daemon_hwm_kib,
                        how,
                    }
                })
                .map_err(|e| format!("{e:#}"));
            figures.legs.push(Leg {
                style,
                direction,
                route,
                outcome,
            });
        }
    }
    figures.rss_after_kib = machine::status_kib(pid, "VmRSS");
    Ok(figures)
}
