//! The vault route: the transfers `token-vault put` and `get` make, each on
//! a fresh HTTP/1.1 connection over the daemon's Unix socket, so that the
//! bench times what a local program would see.

use super::excerpt;
use super::source::{Hasher, Source};
use anyhow::{bail, ensure, Context as _};
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::error::Error as StdError;
use std::path::Path;
use tokio::net::UnixStream;

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
pub(super) fn content_path(name: &str, path: &str) -> String {
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

/// `PUT …/content?path=remote` with the whole source, streamed.
pub(super) async fn vault_upload(
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
pub(super) async fn vault_download(
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
