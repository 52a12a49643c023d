//! The generated source file and the hashing of what comes back: the
//! content is written and SHA-256'd once, then read back in pieces (upload
//! bodies, Box's per-part SHA-1s) without ever being held in memory, and
//! downloads are SHA-256'd on a thread of their own so that the receiving
//! task only counts and forwards them.

use anyhow::{anyhow, Context as _};
use hyper::body::Bytes;
use ring::digest::{Context, SHA256};
use sha1::{Digest as _, Sha1};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_util::io::ReaderStream;

/// Reads of upload bodies: `token-vault put`'s and the vault spool's size.
const IO_CHUNK: usize = 256 * 1024;
/// Pieces of the generated file, and of hashing passes over it.
const GEN_PIECE: usize = 1 << 20;
/// Chunks queued for the download hasher thread.
const HASH_QUEUE: usize = 64;

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
    pub(super) fn stream(
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
    pub(super) async fn sha1_of(
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
pub(super) struct Hasher {
    pub(super) tx: mpsc::Sender<Bytes>,
    thread: std::thread::JoinHandle<String>,
}

impl Hasher {
    /// A hasher for at most `max_chunks` chunks (each at least a byte).
    pub(super) fn start(max_chunks: u64) -> anyhow::Result<Hasher> {
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

    pub(super) fn finish(self) -> anyhow::Result<String> {
        drop(self.tx);
        self.thread
            .join()
            .map_err(|_| anyhow!("the hashing thread panicked"))
    }
}
