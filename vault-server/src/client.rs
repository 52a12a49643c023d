//! A small client of the daemon's socket API: HTTP/1.1 over a Unix socket,
//! JSON in and out, one connection per request.
//!
//! Invariants: every answer body is bounded ([`MAX_BODY`]); error messages
//! never quote a response body (a body may hold a token), only the daemon's
//! own `ErrorBody` message; path segments and query values are
//! percent-encoded by [`connection_path`] and [`encode_component`].

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shared::api::{ErrorBody, API_PREFIX};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UnixStream;

/// The largest answer body the client reads.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// How long one request may take by default, connection to last byte. A
/// token request may wait for a refresh, and `test` calls the provider.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

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
            Err(_) => Err(ClientError::Protocol(format!(
                "the vault at {} did not answer within {}",
                self.socket.display(),
                humantime::format_duration(self.timeout)
            ))),
        }
    }

    async fn request_inner(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|cause| ClientError::Unreachable {
                    socket: self.socket.clone(),
                    cause,
                })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| {
                ClientError::Protocol(format!("HTTP handshake with the vault failed: {e}"))
            })?;
        let conn_task = tokio::spawn(async move {
            // Its errors also surface through `send_request`.
            let _ = conn.await;
        });

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

        let result = async {
            let response = sender.send_request(request).await.map_err(|e| {
                ClientError::Protocol(format!(
                    "the vault closed the connection during {method} {path}: {e}"
                ))
            })?;
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
            Ok((status, bytes))
        }
        .await;
        conn_task.abort();

        let (status, bytes) = result?;
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
