//! A small client of the daemon's socket API: HTTP/1.1 over a Unix socket,
//! JSON in and out, one connection per request.
//!
//! Invariants: every JSON answer body is bounded ([`MAX_BODY`]); a download
//! is streamed chunk by chunk to the caller, never collected; error messages
//! never quote a response body (a body may hold a token), only the daemon's
//! own `ErrorBody` message; path segments and query values are
//! percent-encoded by [`connection_path`], [`transfer_path`] and
//! [`encode_component`].

use crate::transfer::hash::{ContentHasher, Observer};
use futures_util::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, HOST};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use indicatif::ProgressBar;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shared::api::{ErrorBody, HashKind, API_PREFIX, HASH_HEADER, HASH_KIND_HEADER};
use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::io::ReaderStream;

/// The largest answer body the client reads.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// How long one request may take by default, connection to last byte. A
/// token request may wait for a refresh, and `test` calls the provider.
///
/// Transfers have no overall limit: an upload may take hours. A download
/// waits at most this long for its headers and for each chunk.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How much of a file an upload reads at a time.
pub const UPLOAD_CHUNK: usize = 256 * 1024;

/// The body of an upload: a file, streamed.
pub type UploadBody = BoxBody<Bytes, std::io::Error>;

/// Why a request to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket cannot be connected to: no daemon, wrong path, or no permission.
    #[error(
        "cannot reach the vault at {} ({cause}): is `token-vault serve` running? \
         (set --socket or TOKEN_VAULT_SOCKET)",
        socket.display()
    )]
    Unreachable {
        socket: PathBuf,
        /// Not `#[source]`: the message already includes it.
        cause: std::io::Error,
    },
    /// The daemon answered with an error; the message names the cause and the fix.
    #[error("{message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
    /// The daemon's answer made no sense, or the connection broke.
    #[error("{0}")]
    Protocol(String),
}

impl ClientError {
    /// The daemon's error code, for an API error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A client of one daemon socket.
#[derive(Debug, Clone)]
pub struct VaultClient {
    socket: PathBuf,
    timeout: Duration,
}

impl VaultClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        VaultClient {
            socket: socket.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same client with another per-request time limit.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET path`, answer decoded as `T`.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let (_, body) = self.request(Method::GET, path, None).await?;
        decode(&Method::GET, path, &body)
    }

    /// `method path` with a JSON body, answer decoded as `T`.
    pub async fn send_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send_json_status(method, path, body)
            .await
            .map(|(_, t)| t)
    }

    /// Like [`send_json`](Self::send_json), also giving the success status (201 vs 200).
    pub async fn send_json_status<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<(StatusCode, T), ClientError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ClientError::Protocol(format!("cannot encode the request: {e}")))?;
        let (status, answer) = self.request(method.clone(), path, Some(bytes)).await?;
        Ok((status, decode(&method, path, &answer)?))
    }

    /// `POST path` without a body, answer decoded as `T`.
    pub async fn post<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let (_, body) = self.request(Method::POST, path, None).await?;
        decode(&Method::POST, path, &body)
    }

    /// `DELETE path`, answer decoded as `T`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let (_, body) = self.request(Method::DELETE, path, None).await?;
        decode(&Method::DELETE, path, &body)
    }

    /// One request on a fresh connection; the body of a success, or the error.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        match tokio::time::timeout(self.timeout, self.request_inner(method, path, body)).await {
            Ok(result) => result,
            Err(_) => Err(self.no_answer()),
        }
    }

    async fn request_inner(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let (mut sender, _conn) = self.connect::<Full<Bytes>>().await?;
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(HOST, "localhost")
            .header(ACCEPT, "application/json");
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Protocol(format!("bad request {method} {path}: {e}")))?;
        let response = sender.send_request(request).await.map_err(|e| {
            ClientError::Protocol(format!(
                "the vault closed the connection during {method} {path}: {}",
                error_chain(&e)
            ))
        })?;
        read_answer(&method, path, response).await
    }

    /// A fresh connection to the daemon, and the task driving it (aborted
    /// when dropped).
    async fn connect<B>(&self) -> Result<(SendRequest<B>, ConnTask), ClientError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|cause| ClientError::Unreachable {
                    socket: self.socket.clone(),
                    cause,
                })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| {
                ClientError::Protocol(format!("HTTP handshake with the vault failed: {e}"))
            })?;
        let task = tokio::spawn(async move {
            // Its errors also surface through `send_request` or the body.
            let _ = conn.await;
        });
        Ok((sender, ConnTask(task)))
    }

    /// `PUT path` with `file` as the body, streamed: `len` bytes from the
    /// file's current position, announced in `Content-Length`. `progress`
    /// advances as chunks are read. The answer is decoded as `T`, with the
    /// success status (201 created, 200 replaced).
    ///
    /// The request carries `Expect: 100-continue` and the body waits for
    /// the daemon's `100 Continue` (hyper's server sends it when the
    /// handler starts reading the body; after the client's timeout it is
    /// sent anyway), so an early refusal (403, 404, 409, 411…) arrives as
    /// the daemon's error rather than as a broken pipe mid-body.
    ///
    /// No overall time limit: a large upload may take hours. If the file
    /// does not hold exactly `len` bytes (it changed meanwhile), the upload
    /// is broken off before its last byte and fails.
    pub async fn upload_file<T: DeserializeOwned>(
        &self,
        path: &str,
        file: tokio::fs::File,
        len: u64,
        progress: ProgressBar,
    ) -> Result<(StatusCode, T), ClientError> {
        let method = Method::PUT;
        // An empty body is not worth the round trip, and hyper's server
        // sends no 100 for one.
        let gate = (len > 0).then(|| Gate {
            go: Arc::new(Notify::new()),
            wait: self.timeout,
        });
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(HOST, "localhost")
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, len);
        if gate.is_some() {
            builder = builder.header(EXPECT, "100-continue");
        }
        let go = gate.as_ref().map(|g| g.go.clone());
        let mut request = builder
            .body(file_body(file, len, progress, gate))
            .map_err(|e| ClientError::Protocol(format!("bad request {method} {path}: {e}")))?;
        if let Some(go) = go {
            hyper::ext::on_informational(&mut request, move |answer| {
                if answer.status() == StatusCode::CONTINUE {
                    go.notify_one();
                }
            });
        }
        let (mut sender, _conn) = self.connect::<UploadBody>().await?;
        let response = sender.send_request(request).await.map_err(|e| {
            ClientError::Protocol(format!(
                "the upload {method} {path} broke off: {}",
                error_chain(&e)
            ))
        })?;
        let (status, body) = read_answer(&method, path, response).await?;
        Ok((status, decode(&method, path, &body)?))
    }

    /// `GET path` for a download: the answer's headers, and its body to
    /// read with [`Download::next_chunk`]. An error answer (JSON, bounded)
    /// is returned as the error.
    pub async fn download(&self, path: &str) -> Result<Download, ClientError> {
        let method = Method::GET;
        let (mut sender, conn) = self.connect::<Full<Bytes>>().await?;
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(HOST, "localhost")
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Protocol(format!("bad request {method} {path}: {e}")))?;
        let response = match tokio::time::timeout(self.timeout, sender.send_request(request)).await
        {
            Ok(result) => result.map_err(|e| {
                ClientError::Protocol(format!(
                    "the vault closed the connection during {method} {path}: {}",
                    error_chain(&e)
                ))
            })?,
            Err(_) => return Err(self.no_answer()),
        };
        let status = response.status();
        if !status.is_success() {
            // Reads the (bounded) error body and turns it into the error.
            return Err(match read_answer(&method, path, response).await {
                Err(e) => e,
                Ok(_) => ClientError::Protocol(format!(
                    "the vault answered {method} {path} with {status}"
                )),
            });
        }
        let headers = response.headers();
        let content_length = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let hash = headers
            .get(HASH_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .filter(|h| !h.is_empty());
        let kind = headers
            .get(HASH_KIND_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(HashKind::parse);
        let check = hash
            .clone()
            .zip(kind)
            .map(|(hash, kind)| (hash, ContentHasher::new(kind)));
        Ok(Download {
            what: format!("{method} {path}"),
            status,
            content_length,
            hash,
            check,
            received: 0,
            stall: self.timeout,
            body: response.into_body(),
            _conn: conn,
        })
    }

    fn no_answer(&self) -> ClientError {
        ClientError::Protocol(format!(
            "the vault at {} did not answer within {}",
            self.socket.display(),
            humantime::format_duration(self.timeout)
        ))
    }
}

/// The task that drives one connection; aborted when dropped, so a
/// connection lives exactly as long as its request (or download) does.
#[derive(Debug)]
struct ConnTask(JoinHandle<()>);

impl Drop for ConnTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An answer's body, bounded by [`MAX_BODY`], with its status; the error
/// for an error status.
async fn read_answer(
    method: &Method,
    path: &str,
    response: Response<Incoming>,
) -> Result<(StatusCode, Bytes), ClientError> {
    let status = response.status();
    let bytes = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            ClientError::Protocol(format!(
                "cannot read the vault's answer to {method} {path} (at most {} MiB): {e}",
                MAX_BODY / (1024 * 1024)
            ))
        })?
        .to_bytes();
    if status.is_success() {
        return Ok((status, bytes));
    }
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(e) => Err(ClientError::Api {
            status,
            code: e.error.code,
            message: e.error.message,
        }),
        Err(_) => Err(ClientError::Protocol(format!(
            "the vault answered {method} {path} with {status} and no error description"
        ))),
    }
}

/// What an upload's body waits for before its first byte: the daemon's
/// `100 Continue`, or `wait` to pass.
struct Gate {
    go: Arc<Notify>,
    wait: Duration,
}

/// The streamed body of `file`: `len` bytes, then the end. A read error,
/// or a file that turns out shorter or longer than `len`, ends the body
/// with an error before its last byte, which breaks the upload off (the
/// daemon never sees a complete body).
fn file_body(
    file: tokio::fs::File,
    len: u64,
    progress: ProgressBar,
    gate: Option<Gate>,
) -> UploadBody {
    let chunks = ReaderStream::with_capacity(file, UPLOAD_CHUNK);
    let changed = move |now: &str| {
        std::io::Error::other(format!(
            "the file {now} while being uploaded ({len} bytes were announced); upload it \
             again once it no longer changes"
        ))
    };
    let frames = futures_util::stream::try_unfold(
        (chunks, 0u64, progress, gate),
        move |(mut chunks, sent, progress, gate)| async move {
            if let Some(gate) = gate {
                // Timing out just means sending anyway.
                let _ = tokio::time::timeout(gate.wait, gate.go.notified()).await;
            }
            let Some(chunk) = chunks.next().await else {
                return if sent == len {
                    Ok(None)
                } else {
                    Err(changed(&format!("shrank to {sent} bytes")))
                };
            };
            let chunk = chunk?;
            let sent = sent + chunk.len() as u64;
            if sent > len {
                return Err(changed("grew"));
            }
            if sent == len {
                // The last announced bytes go only if the file ends here.
                if let Some(more) = chunks.next().await {
                    more?;
                    return Err(changed("grew"));
                }
            }
            progress.inc(chunk.len() as u64);
            Ok(Some((Frame::data(chunk), (chunks, sent, progress, None))))
        },
    );
    BoxBody::new(StreamBody::new(frames))
}

/// A download in progress: the answer's headers and its streamed body.
#[derive(Debug)]
pub struct Download {
    what: String,
    pub status: StatusCode,
    /// The body's size, when the daemon knows it.
    pub content_length: Option<u64>,
    /// The provider's hash of the content (`x-token-vault-hash`), if given.
    pub hash: Option<String>,
    /// The provider's hash and the running hash of what arrived, when the
    /// daemon said which hash it is: checked at the end of the body.
    check: Option<(String, ContentHasher)>,
    received: u64,
    stall: Duration,
    body: Incoming,
    _conn: ConnTask,
}

impl Download {
    /// The next chunk of the body, or `None` at its end. A body that ends
    /// short of its `Content-Length`, breaks off, or stalls longer than the
    /// client's timeout is an error.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            let frame = match tokio::time::timeout(self.stall, self.body.frame()).await {
                Ok(frame) => frame,
                Err(_) => {
                    return Err(ClientError::Protocol(format!(
                        "the download {} stalled: no data for {} after {} bytes",
                        self.what,
                        humantime::format_duration(self.stall),
                        self.received
                    )))
                }
            };
            match frame {
                Some(Ok(frame)) => {
                    // Trailers carry no content.
                    if let Ok(data) = frame.into_data() {
                        self.received += data.len() as u64;
                        if self.content_length.is_some_and(|n| self.received > n) {
                            return Err(ClientError::Protocol(format!(
                                "the download {} sent more than the {} bytes announced",
                                self.what,
                                self.content_length.unwrap_or_default()
                            )));
                        }
                        if !data.is_empty() {
                            if let Some((_, hasher)) = &mut self.check {
                                hasher.observe(&data);
                            }
                            return Ok(Some(data));
                        }
                    }
                }
                Some(Err(e)) => {
                    return Err(ClientError::Protocol(format!(
                        "the download {} broke off after {}: {}",
                        self.what,
                        self.progress_text(),
                        error_chain(&e)
                    )))
                }
                None => {
                    return match self.content_length {
                        Some(n) if self.received != n => Err(ClientError::Protocol(format!(
                            "the download {} ended early, after {}",
                            self.what,
                            self.progress_text()
                        ))),
                        _ => self.check_content().map(|()| None),
                    };
                }
            }
        }
    }

    /// At the end of the body: the bytes that arrived must have the
    /// provider's hash (once; a body read past its end is not checked again).
    fn check_content(&mut self) -> Result<(), ClientError> {
        let Some((expected, hasher)) = self.check.take() else {
            return Ok(());
        };
        let got = hasher.finish();
        if got.eq_ignore_ascii_case(&expected) {
            return Ok(());
        }
        Err(ClientError::Protocol(format!(
            "the download {} is damaged: the {} bytes that arrived hash to {got}, but the provider's hash of the file is {expected}; run it again",
            self.what, self.received
        )))
    }

    /// How many bytes have arrived so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    fn progress_text(&self) -> String {
        match self.content_length {
            Some(n) => format!("{} of {n} bytes", self.received),
            None => format!("{} bytes", self.received),
        }
    }
}

/// An error and its sources, `: `-separated: hyper's own messages are terse
/// ("error from user's Body stream") and the cause is in the source.
pub fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Decodes a success body. The error never quotes the body: it may hold a token.
fn decode<T: DeserializeOwned>(method: &Method, path: &str, body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| {
        ClientError::Protocol(format!(
            "the vault's answer to {method} {path} is not what this client expects \
             ({:?} error at line {}, column {}); are the daemon and the client the same version?",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

/// Percent-encodes `s` for a URL path segment or query value: everything but
/// RFC 3986's unreserved characters.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `/v1/connections/{name}{suffix}`, the name percent-encoded. `suffix` is
/// trusted text such as `/token` or `?revoke=true`.
pub fn connection_path(name: &str, suffix: &str) -> String {
    format!(
        "{API_PREFIX}/connections/{}{suffix}",
        encode_component(name)
    )
}

/// `/v1/connections/{name}/{endpoint}?path={path}{extra}`, the name and the
/// path percent-encoded. `endpoint` (`items`, `content`, `folders`) and
/// `extra` (e.g. `&recursive=true`) are trusted text.
pub fn transfer_path(name: &str, endpoint: &str, path: &str, extra: &str) -> String {
    connection_path(
        name,
        &format!("/{endpoint}?path={}{extra}", encode_component(path)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Path as AxPath;
    use axum::http::StatusCode as AxStatus;
    use axum::routing::{get, put};
    use axum::{Json, Router};
    use shared::api::{ErrorDetail, RemoveResponse};

    #[test]
    fn encoding() {
        assert_eq!(encode_component("box-1.a_b~"), "box-1.a_b~");
        assert_eq!(encode_component("a b/c?d#e%f"), "a%20b%2Fc%3Fd%23e%25f");
        assert_eq!(encode_component("é"), "%C3%A9");
        assert_eq!(encode_component(".."), "..");
        assert_eq!(
            connection_path("box", "/token"),
            "/v1/connections/box/token"
        );
        assert_eq!(connection_path("a/b", ""), "/v1/connections/a%2Fb");
    }

    async fn serve(router: Router) -> (tempfile::TempDir, VaultClient) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        (dir, VaultClient::new(path))
    }

    #[tokio::test]
    async fn json_round_trip_and_errors() {
        let router = Router::new()
            .route(
                "/v1/connections/{name}",
                put(
                    |AxPath(name): AxPath<String>, Json(v): Json<serde_json::Value>| async move {
                        (
                            AxStatus::CREATED,
                            Json(serde_json::json!({"name": name, "echo": v})),
                        )
                    },
                )
                .get(|AxPath(name): AxPath<String>| async move {
                    (
                        AxStatus::NOT_FOUND,
                        Json(ErrorBody {
                            error: ErrorDetail {
                                code: "not_found".into(),
                                message: format!("no connection named {name}"),
                            },
                        }),
                    )
                })
                .delete(|AxPath(name): AxPath<String>| async move {
                    Json(RemoveResponse {
                        removed: name,
                        revoked: false,
                        revoke_error: None,
                    })
                }),
            )
            .route(
                "/v1/health",
                get(|| async { (AxStatus::INTERNAL_SERVER_ERROR, "boom") }),
            )
            .route("/v1/big", get(|| async { vec![b'x'; MAX_BODY + 1] }));
        let (_dir, client) = serve(router).await;

        let (status, v): (StatusCode, serde_json::Value) = client
            .send_json_status(
                Method::PUT,
                &connection_path("a b", ""),
                &serde_json::json!({"k": 1}),
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(v, serde_json::json!({"name": "a b", "echo": {"k": 1}}));

        let removed: RemoveResponse = client.delete(&connection_path("box", "")).await.unwrap();
        assert_eq!(removed.removed, "box");

        let err = client
            .get_json::<serde_json::Value>(&connection_path("box", ""))
            .await
            .unwrap_err();
        match &err {
            ClientError::Api {
                status,
                code,
                message,
            } => {
                assert_eq!(*status, StatusCode::NOT_FOUND);
                assert_eq!(code, "not_found");
                assert_eq!(message, "no connection named box");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(err.to_string(), "no connection named box");
        assert_eq!(err.code(), Some("not_found"));

        let err = client
            .get_json::<serde_json::Value>("/v1/health")
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
        assert!(!err.to_string().contains("boom"), "{err}");

        // A success body of the wrong shape is a protocol error that does not quote it.
        let err = client
            .delete::<Vec<u32>>(&connection_path("secret-ish", ""))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");

        let err = client
            .get_json::<serde_json::Value>("/v1/big")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("16 MiB"), "{err}");
    }

    #[tokio::test]
    async fn missing_socket_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nothing.sock");
        let client = VaultClient::new(&path);
        let err = client
            .get_json::<serde_json::Value>("/v1/health")
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("is `token-vault serve` running?"), "{text}");
        assert!(text.contains("TOKEN_VAULT_SOCKET"), "{text}");
    }

    #[tokio::test]
    async fn timeout() {
        let router = Router::new().route(
            "/v1/health",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
        let (_dir, client) = serve(router).await;
        let client = client.with_timeout(Duration::from_millis(100));
        let err = client
            .get_json::<serde_json::Value>("/v1/health")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("did not answer"), "{err}");
    }
}
