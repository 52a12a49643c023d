//! Moving an upload from the client to the provider a part at a time.
//!
//! Invariants:
//! - at most one part of an upload is held by the vault, and it is held on
//!   disk (an unnamed temp file, gone on close or crash), not in memory; a
//!   part is only sent once it has fully arrived, so a client that
//!   disconnects mid-part never causes a partial part to reach the provider;
//! - the vault never waits on a client's body without a bound: when no byte
//!   of it comes for the idle bound (by default [`BODY_IDLE_TIMEOUT`]),
//!   reading it fails with
//!   [`TransferError::BodyStalled`], which ends the upload (and its provider
//!   session) like a body that broke off;
//! - once a body failed, nothing more is read from it.

use super::hash::Observer;
use super::TransferError;
use axum::body::{Body, BodyDataStream};
use bytes::Bytes;
use futures_util::StreamExt;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How long an upload may wait for the next byte of the client's body, by
/// default (`serve --upload-idle-timeout`, `[limits] upload_idle_timeout`).
/// Clients on the socket are local and send as fast as they read
/// (`token-vault put` spools stdin to a file first, so not even a slow
/// pipeline pauses it): a minute without a single byte is a client that
/// stopped, and without this bound it would keep a connection slot, a
/// spool file and (Box) an open upload session for ever. It bounds
/// silence, not speed: every byte that arrives restarts it.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How a client's body failed; kept so that it is not read again.
#[derive(Debug, Clone, Copy)]
enum Failure {
    BrokeOff,
    Stalled,
}

/// The client's upload body, read with an exact byte count.
pub struct Incoming {
    stream: BodyDataStream,
    pending: Bytes,
    /// What the client declared (Content-Length).
    pub total: u64,
    pub received: u64,
    /// The longest wait for the next bytes of the body.
    idle: Duration,
    failure: Option<Failure>,
}

impl Incoming {
    /// `body`, of `total` declared bytes, given up when no byte of it comes
    /// for `idle`.
    pub fn new(body: Body, total: u64, idle: Duration) -> Incoming {
        Incoming {
            stream: body.into_data_stream(),
            pending: Bytes::new(),
            total,
            received: 0,
            idle,
            failure: None,
        }
    }

    /// The error for `failure`, remembered: the body is not read again.
    fn fail(&mut self, failure: Failure) -> TransferError {
        self.failure = Some(failure);
        let (received, declared) = (self.received, self.total);
        match failure {
            Failure::BrokeOff => TransferError::BodyBrokeOff { received, declared },
            Failure::Stalled => TransferError::BodyStalled {
                received,
                declared,
                idle: self.idle,
            },
        }
    }

    /// Reads and drops up to `limit` more bytes of the body (none once it
    /// failed: a stalled client is not waited for twice).
    pub async fn discard(&mut self, limit: u64) {
        let stop = self.received.saturating_add(limit).min(self.total);
        while self.received < stop {
            let max = (stop - self.received).min(1 << 20) as usize;
            match self.next_piece(max).await {
                Ok(Some(_)) => {}
                _ => return,
            }
        }
    }

    /// The next piece of at most `max` bytes; `None` once `total` bytes came.
    async fn next_piece(&mut self, max: usize) -> Result<Option<Bytes>, TransferError> {
        if let Some(failure) = self.failure {
            return Err(self.fail(failure));
        }
        if self.received >= self.total {
            return Ok(None);
        }
        if self.pending.is_empty() {
            match tokio::time::timeout(self.idle, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.pending = chunk,
                Ok(Some(Err(_)) | None) => return Err(self.fail(Failure::BrokeOff)),
                Err(_) => return Err(self.fail(Failure::Stalled)),
            }
        }
        let left = (self.total - self.received) as usize;
        let take = self.pending.len().min(max).min(left);
        let piece = self.pending.split_to(take);
        self.received += take as u64;
        Ok(Some(piece))
    }
}

/// One part of an upload, on disk.
pub struct Spool {
    file: std::fs::File,
    pub len: u64,
}

impl Spool {
    /// Reads the next `part_len` bytes (fewer at the end) of `incoming` into
    /// a temp file in `dir`, feeding each byte to `observer` (the provider's
    /// digests: see [`super::hash`]).
    pub async fn fill(
        dir: &Path,
        incoming: &mut Incoming,
        part_len: u64,
        observer: &mut (dyn Observer + Send),
    ) -> Result<Spool, TransferError> {
        let std_file =
            tempfile::tempfile_in(dir).map_err(|e| TransferError::Spool(dir.to_path_buf(), e))?;
        let writer_handle = std_file
            .try_clone()
            .map_err(|e| TransferError::Spool(dir.to_path_buf(), e))?;
        let mut writer = tokio::fs::File::from_std(writer_handle);
        let mut len = 0u64;
        while len < part_len {
            let max = (part_len - len).min(1 << 20) as usize;
            let Some(piece) = incoming.next_piece(max).await? else {
                break;
            };
            observer.observe(&piece);
            writer
                .write_all(&piece)
                .await
                .map_err(|e| TransferError::Spool(dir.to_path_buf(), e))?;
            len += piece.len() as u64;
        }
        writer
            .flush()
            .await
            .map_err(|e| TransferError::Spool(dir.to_path_buf(), e))?;
        Ok(Spool {
            file: std_file,
            len,
        })
    }

    /// `request` carrying the part from `offset` on as its body, with its
    /// `Content-Length`: a streamed body would otherwise go out chunked,
    /// which rclone never sends and a provider need not take.
    pub fn send_from(
        &self,
        request: reqwest::RequestBuilder,
        offset: u64,
    ) -> Result<reqwest::RequestBuilder, std::io::Error> {
        Ok(request
            .header(reqwest::header::CONTENT_LENGTH, self.len - offset)
            .body(self.body_from(offset)?))
    }

    /// The part from `offset` on, as a fresh request body (one per attempt).
    /// Its length is not in it: see [`Spool::send_from`].
    pub fn body_from(&self, offset: u64) -> Result<reqwest::Body, std::io::Error> {
        let mut handle = self.file.try_clone()?;
        handle.seek(SeekFrom::Start(offset))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(
            tokio::fs::File::from_std(handle),
            256 * 1024,
        );
        Ok(reqwest::Body::wrap_stream(stream))
    }
}

/// Where spooled parts go: `<state>/spool`, private.
pub fn spool_dir(state_dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = state_dir.join("spool");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps every byte it sees.
    struct Everything(Vec<u8>);

    impl Observer for Everything {
        fn observe(&mut self, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
        }
    }

    #[tokio::test]
    async fn spools_parts_and_detects_a_short_body() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 7) as u8).collect();
        let mut incoming = Incoming::new(
            Body::from(data.clone()),
            data.len() as u64,
            BODY_IDLE_TIMEOUT,
        );
        let mut whole = Everything(Vec::new());
        let a = Spool::fill(dir.path(), &mut incoming, 4096, &mut whole)
            .await
            .unwrap();
        let b = Spool::fill(dir.path(), &mut incoming, 4096, &mut whole)
            .await
            .unwrap();
        let c = Spool::fill(dir.path(), &mut incoming, 4096, &mut whole)
            .await
            .unwrap();
        assert_eq!((a.len, b.len, c.len), (4096, 4096, 10_000 - 8192));
        assert_eq!(whole.0, data, "the observer saw every byte, in order");
        let mut back = Vec::new();
        for spool in [&a, &b, &c] {
            let mut file = spool.file.try_clone().unwrap();
            file.seek(SeekFrom::Start(0)).unwrap();
            std::io::Read::read_to_end(&mut file, &mut back).unwrap();
        }
        assert_eq!(back, data, "the parts hold the body, in order");
        // Nothing is left in the spool directory: the files have no names.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // A body shorter than declared is an error, not a short part.
        let mut short = Incoming::new(Body::from(vec![1u8; 100]), 200, BODY_IDLE_TIMEOUT);
        let err = Spool::fill(dir.path(), &mut short, 4096, &mut Everything(Vec::new())).await;
        assert!(matches!(err, Err(TransferError::BodyBrokeOff { .. })));
    }

    #[tokio::test]
    async fn a_body_that_stops_is_given_up_after_the_idle_bound() {
        let dir = tempfile::tempdir().unwrap();
        let idle = Duration::from_millis(300);
        // 100 of 200 declared bytes, then silence with the connection open.
        let first = Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 100]));
        let body = futures_util::stream::iter([first]).chain(futures_util::stream::pending());
        let mut incoming = Incoming::new(Body::from_stream(body), 200, idle);
        let started = std::time::Instant::now();
        let err = Spool::fill(dir.path(), &mut incoming, 4096, &mut Everything(Vec::new())).await;
        assert!(
            matches!(
                err,
                Err(TransferError::BodyStalled { received: 100, declared: 200, idle: i }) if i == idle
            ),
            "{:?}",
            err.err()
        );
        assert!(started.elapsed() >= idle);
        // Given up once, the body is not waited for again (the drain after
        // a failed upload returns at once).
        let again = std::time::Instant::now();
        incoming.discard(1000).await;
        assert!(again.elapsed() < idle, "{:?}", again.elapsed());
        let err = Spool::fill(dir.path(), &mut incoming, 4096, &mut Everything(Vec::new())).await;
        assert!(matches!(err, Err(TransferError::BodyStalled { .. })));
    }
}
