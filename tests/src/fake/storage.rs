//! The file store behind the fake Box and Dropbox file APIs.
//!
//! File *contents* live on disk, in a temporary directory owned by the fake:
//! request bodies are streamed to a temporary file while being hashed
//! ([`BlobWriter`]), and downloads are streamed back from disk
//! ([`file_response`]), so tests can move files of hundreds of megabytes
//! without holding them in memory. A finished file is a [`Blob`]: its path
//! is a [`TempPath`], so the bytes disappear from disk when the last
//! reference to the blob goes (the file is deleted or replaced, an upload
//! session is dropped). A request whose body breaks off never produces a
//! blob: its temporary file is deleted when the writer is dropped.
//!
//! The *metadata* (the tree of folders and files, their ids, names, sizes,
//! hashes, versions and times) is in memory, in a [`Tree`] that both
//! providers share: names compare case-insensitively (Box and Dropbox agree
//! on that), and each node carries the provider-specific id (`"12345"` for
//! Box, `"id:…"` for Dropbox).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use ring::digest::{Context, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use sha1::{Digest as _, Sha1};
use tempfile::{TempDir, TempPath};

use super::box_files::BoxFiles;
use super::dropbox_files::DropboxFiles;
use super::{ApiFault, Style};

/// Dropbox's content hash works on blocks of 4 MiB.
pub(crate) const DROPBOX_BLOCK: usize = 4 * 1024 * 1024;

/// Writes are batched to this size before they go to disk (and through the
/// hashers) off the async worker.
const WRITE_BATCH: usize = 1024 * 1024;

/// Early error answers read (and discard) at most this much of a request
/// body first, so that the client sees the answer rather than a reset
/// connection. Bigger bodies are cut short.
const DRAIN_LIMIT: u64 = 400 * 1024 * 1024;

/// The default page size of listings (Box `limit`, Dropbox `limit`).
pub(crate) const DEFAULT_PAGE_SIZE: usize = 1000;

// ------------------------------------------------------------------- blobs

/// The stored contents of one file (or of one upload part), on disk, with
/// the hashes both providers report. Deleted from disk when dropped.
///
/// Only the hashes the fake's style needs are computed (see [`BlobDir`]);
/// the others are all zeros.
pub(crate) struct Blob {
    path: TempPath,
    pub size: u64,
    /// Box's `sha1` (Box style only).
    pub sha1: [u8; 20],
    /// For [`super::FakeProvider::file_sha256`] (always).
    pub sha256: [u8; 32],
    /// Dropbox's `content_hash`: SHA-256 over the SHA-256 digests of each
    /// 4 MiB block (Dropbox style only).
    pub content_hash: [u8; 32],
}

impl Blob {
    pub fn open(&self) -> io::Result<File> {
        File::open(&self.path)
    }

    pub fn sha1_hex(&self) -> String {
        hex(&self.sha1)
    }

    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256)
    }

    pub fn content_hash_hex(&self) -> String {
        hex(&self.content_hash)
    }
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blob")
            .field("size", &self.size)
            .field("sha1", &self.sha1_hex())
            .finish()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Where blobs go, and which hashes they get: each style's own (SHA-1 only
/// for Box, the content hash only for Dropbox), since hashing every byte
/// of every upload is most of the fake's work.
#[derive(Clone, Debug)]
pub(crate) struct BlobDir {
    path: PathBuf,
    sha1: bool,
    content_hash: bool,
}

impl BlobDir {
    fn new(path: &Path, style: Style) -> BlobDir {
        BlobDir {
            path: path.to_path_buf(),
            sha1: style == Style::Box,
            content_hash: style == Style::Dropbox,
        }
    }
}

/// Dropbox's block hasher.
struct ContentHasher {
    block: Context,
    block_len: usize,
    blocks: Context,
}

impl ContentHasher {
    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let n = data.len().min(DROPBOX_BLOCK - self.block_len);
            self.block.update(&data[..n]);
            self.block_len += n;
            data = &data[n..];
            if self.block_len == DROPBOX_BLOCK {
                let block = std::mem::replace(&mut self.block, Context::new(&SHA256)).finish();
                self.blocks.update(block.as_ref());
                self.block_len = 0;
            }
        }
    }

    fn finish(mut self) -> [u8; 32] {
        if self.block_len > 0 {
            let block = self.block.finish();
            self.blocks.update(block.as_ref());
        }
        let mut out = [0; 32];
        out.copy_from_slice(self.blocks.finish().as_ref());
        out
    }
}

/// Streams bytes into a new temporary file in the store's directory,
/// hashing them on the way. Dropping it without [`finish`](Self::finish)
/// deletes the file: nothing of an interrupted upload remains.
pub(crate) struct BlobWriter {
    file: File,
    path: TempPath,
    size: u64,
    sha1: Option<Sha1>,
    sha256: Context,
    content: Option<ContentHasher>,
    pending: Vec<u8>,
}

impl BlobWriter {
    pub fn new(dir: &BlobDir) -> io::Result<BlobWriter> {
        let (file, path) = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&dir.path)?
            .into_parts();
        Ok(BlobWriter {
            file,
            path,
            size: 0,
            sha1: dir.sha1.then(Sha1::new),
            sha256: Context::new(&SHA256),
            content: dir.content_hash.then(|| ContentHasher {
                block: Context::new(&SHA256),
                block_len: 0,
                blocks: Context::new(&SHA256),
            }),
            pending: Vec::new(),
        })
    }

    /// Bytes written so far (buffered ones included).
    pub fn len(&self) -> u64 {
        self.size + self.pending.len() as u64
    }

    /// Writes and hashes `data` now, on the calling thread.
    pub fn write_sync(&mut self, data: &[u8]) -> io::Result<()> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.write_through(&pending)?;
        }
        self.write_through(data)
    }

    fn write_through(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        if let Some(sha1) = &mut self.sha1 {
            sha1.update(data);
        }
        self.sha256.update(data);
        if let Some(content) = &mut self.content {
            content.update(data);
        }
        self.size += data.len() as u64;
        Ok(())
    }

    /// Buffers `data`, and writes and hashes full batches without stalling
    /// the async runtime's other tasks.
    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(data);
        if self.pending.len() >= WRITE_BATCH {
            let pending = std::mem::take(&mut self.pending);
            let result = tokio::task::block_in_place(|| self.write_through(&pending));
            self.pending = pending;
            self.pending.clear();
            result?;
        }
        Ok(())
    }

    /// Writes what is buffered and returns the finished blob.
    pub fn finish(mut self) -> io::Result<Blob> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.write_through(&pending)?;
        }
        self.file.flush()?;
        let mut blob = Blob {
            path: self.path,
            size: self.size,
            sha1: [0; 20],
            sha256: [0; 32],
            content_hash: self.content.map(ContentHasher::finish).unwrap_or([0; 32]),
        };
        if let Some(sha1) = self.sha1 {
            blob.sha1 = sha1.finalize().into();
        }
        blob.sha256.copy_from_slice(self.sha256.finish().as_ref());
        Ok(blob)
    }

    /// [`finish`](Self::finish) off the async worker.
    pub async fn finish_async(self) -> io::Result<Blob> {
        tokio::task::block_in_place(|| self.finish())
    }
}

/// Concatenates `parts` (in order) into a new blob. Blocking: call it from
/// `spawn_blocking`.
pub(crate) fn concat_blobs(dir: &BlobDir, parts: &[Arc<Blob>]) -> io::Result<Blob> {
    let mut writer = BlobWriter::new(dir)?;
    let mut buf = vec![0u8; WRITE_BATCH];
    for part in parts {
        let mut file = part.open()?;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            writer.write_sync(&buf[..n])?;
        }
    }
    writer.finish()
}

// ------------------------------------------------------------ request bodies

/// Why a request body could not be stored.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The body broke off (the client went away) or was malformed at the
    /// HTTP level. Nobody will read the answer.
    Broken,
    /// The body was longer than allowed. It was read to the end (up to a
    /// bound) and discarded.
    TooLarge,
    /// The fake could not write to its own disk.
    Io(io::Error),
}

impl From<io::Error> for BodyError {
    fn from(e: io::Error) -> BodyError {
        BodyError::Io(e)
    }
}

/// A request body, read chunk by chunk.
pub(crate) struct Incoming {
    stream: axum::body::BodyDataStream,
}

impl Incoming {
    pub fn new(body: Body) -> Incoming {
        Incoming {
            stream: body.into_data_stream(),
        }
    }

    /// The next chunk, `None` at the end, `Err` if the body broke off.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        match self.stream.next().await {
            None => Ok(None),
            Some(Ok(bytes)) => Ok(Some(bytes)),
            Some(Err(_)) => Err(BodyError::Broken),
        }
    }

    /// Reads and discards the rest of the body (up to a bound).
    pub async fn drain(mut self) {
        let mut seen = 0u64;
        while let Ok(Some(chunk)) = self.chunk().await {
            seen += chunk.len() as u64;
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    }
}

/// Reads and discards `body` (up to a bound), then answers `response`:
/// answering before the client has sent its whole body would make most
/// clients see a reset connection instead of the answer.
pub(crate) async fn reject(body: Body, response: Response) -> Response {
    Incoming::new(body).drain().await;
    response
}

/// Streams a whole body into a new blob. More than `limit` bytes: the rest
/// is drained and [`BodyError::TooLarge`] returned.
pub(crate) async fn body_to_blob(dir: &BlobDir, body: Body, limit: u64) -> Result<Blob, BodyError> {
    let mut incoming = Incoming::new(body);
    let mut writer = BlobWriter::new(dir)?;
    while let Some(chunk) = incoming.chunk().await? {
        if writer.len() + chunk.len() as u64 > limit {
            drop(writer);
            incoming.drain().await;
            return Err(BodyError::TooLarge);
        }
        writer.write(&chunk).await?;
    }
    Ok(writer.finish_async().await?)
}

// --------------------------------------------------------------- downloads

/// A parsed `Range: bytes=…` header, resolved against a size.
enum RangeSpec {
    /// No usable Range header: the whole content, 200.
    Full,
    /// `start..=end`, 206.
    Part(u64, u64),
    /// 416.
    Unsatisfiable,
}

fn parse_range(headers: &HeaderMap, size: u64) -> RangeSpec {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeSpec::Full;
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeSpec::Full;
    };
    if spec.contains(',') {
        // Multiple ranges: allowed to ignore (RFC 9110 §14.2).
        return RangeSpec::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeSpec::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    match (first.is_empty(), last.is_empty()) {
        (true, true) => RangeSpec::Full,
        (true, false) => match parse(last) {
            // A suffix: the last N bytes.
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if size == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Part(size.saturating_sub(n), size - 1),
            None => RangeSpec::Full,
        },
        (false, _) => {
            let Some(start) = parse(first) else {
                return RangeSpec::Full;
            };
            let end = if last.is_empty() {
                u64::MAX
            } else {
                match parse(last) {
                    Some(end) if end >= start => end,
                    _ => return RangeSpec::Full,
                }
            };
            if start >= size {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Part(start, end.min(size - 1))
            }
        }
    }
}

/// Streams `blob` from disk as a response, honouring a `Range` header
/// (one range; 206 with `Content-Range`, or 416). `extra` headers are added
/// to the 200 and 206 answers.
pub(crate) fn file_response(
    blob: &Arc<Blob>,
    request: &HeaderMap,
    extra: Vec<(header::HeaderName, HeaderValue)>,
) -> Response {
    let size = blob.size;
    let (status, start, len) = match parse_range(request, size) {
        RangeSpec::Full => (StatusCode::OK, 0, size),
        RangeSpec::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        RangeSpec::Unsatisfiable => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{size}"))],
            )
                .into_response()
        }
    };
    let file = match blob.open().and_then(|mut f| {
        f.seek(SeekFrom::Start(start))?;
        Ok(f)
    }) {
        Ok(file) => file,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("fake provider: cannot read a stored file: {e}"),
            )
                .into_response()
        }
    };
    let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), len);
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024);
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1)) {
            headers.insert(header::CONTENT_RANGE, v);
        }
    }
    for (name, value) in extra {
        headers.insert(name, value);
    }
    response
}

// -------------------------------------------------------------------- tree

/// A node's index in the [`Tree`].
pub(crate) type NodeId = u64;

/// The root folder.
pub(crate) const ROOT: NodeId = 0;

pub(crate) struct Node {
    pub name: String,
    pub parent: Option<NodeId>,
    /// Box: a numeric string (`"0"` for the root). Dropbox: `"id:…"`.
    pub ext_id: String,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub kind: Kind,
}

pub(crate) enum Kind {
    /// Children by lower-cased name.
    Folder(BTreeMap<String, NodeId>),
    File(FileData),
}

pub(crate) struct FileData {
    pub blob: Arc<Blob>,
    /// 1 after the first upload, +1 per new version.
    pub versions: u32,
    /// Box `file_version.id`.
    pub version_id: String,
    /// Dropbox `rev`.
    pub rev: String,
    /// Box `content_modified_at`, Dropbox `client_modified`.
    pub content_modified: DateTime<Utc>,
}

impl Node {
    pub fn is_folder(&self) -> bool {
        matches!(self.kind, Kind::Folder(_))
    }

    pub fn file(&self) -> Option<&FileData> {
        match &self.kind {
            Kind::File(data) => Some(data),
            Kind::Folder(_) => None,
        }
    }

    pub fn children(&self) -> Option<&BTreeMap<String, NodeId>> {
        match &self.kind {
            Kind::Folder(children) => Some(children),
            Kind::File(_) => None,
        }
    }
}

/// The key a name is compared by: both providers ignore case.
pub(crate) fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// The folders and files of the account.
pub(crate) struct Tree {
    style: Style,
    nodes: HashMap<NodeId, Node>,
    by_ext: HashMap<String, NodeId>,
    next_node: NodeId,
    next_ext: u64,
    next_version: u64,
}

impl Tree {
    fn new(style: Style) -> Tree {
        let now = Utc::now();
        let root = Node {
            name: match style {
                Style::Box => "All Files".into(),
                Style::Dropbox => String::new(),
            },
            parent: None,
            ext_id: match style {
                Style::Box => "0".into(),
                Style::Dropbox => "id:root".into(),
            },
            created: now,
            modified: now,
            kind: Kind::Folder(BTreeMap::new()),
        };
        let mut tree = Tree {
            style,
            nodes: HashMap::new(),
            by_ext: HashMap::new(),
            next_node: ROOT + 1,
            next_ext: 1,
            next_version: 1,
        };
        tree.by_ext.insert(root.ext_id.clone(), ROOT);
        tree.nodes.insert(ROOT, root);
        tree
    }

    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(&id)
    }

    /// The node with the provider's id `ext` (Box `"123"`, Dropbox `"id:…"`).
    pub fn find_ext(&self, ext: &str) -> Option<NodeId> {
        self.by_ext.get(ext).copied()
    }

    /// The child of `folder` called `name` (ignoring case).
    pub fn child(&self, folder: NodeId, name: &str) -> Option<NodeId> {
        self.node(folder)?.children()?.get(&name_key(name)).copied()
    }

    /// The children of `folder`, ordered by lower-cased name.
    pub fn children(&self, folder: NodeId) -> Vec<NodeId> {
        self.node(folder)
            .and_then(Node::children)
            .map(|c| c.values().copied().collect())
            .unwrap_or_default()
    }

    /// The node at `path` (`"/a/b"`, ignoring case; `""` and `"/"` are the
    /// root). `None` if missing or if the path has an empty component.
    pub fn lookup(&self, path: &str) -> Option<NodeId> {
        let path = path.strip_prefix('/').unwrap_or(path);
        if path.is_empty() {
            return Some(ROOT);
        }
        let mut at = ROOT;
        for component in path.split('/') {
            if component.is_empty() {
                return None;
            }
            at = self.child(at, component)?;
        }
        Some(at)
    }

    /// `"/a/b"` with each name as stored; `""` for the root.
    pub fn path_display(&self, id: NodeId) -> String {
        let mut names = Vec::new();
        let mut at = Some(id);
        while let Some(node) = at.and_then(|i| self.node(i)) {
            if node.parent.is_none() {
                break;
            }
            names.push(node.name.as_str());
            at = node.parent;
        }
        let mut path = String::new();
        for name in names.iter().rev() {
            path.push('/');
            path.push_str(name);
        }
        path
    }

    /// The folders from the root down to `id`'s parent.
    pub fn ancestors(&self, id: NodeId) -> Vec<NodeId> {
        let mut chain = Vec::new();
        let mut at = self.node(id).and_then(|n| n.parent);
        while let Some(parent) = at {
            chain.push(parent);
            at = self.node(parent).and_then(|n| n.parent);
        }
        chain.reverse();
        chain
    }

    /// Whether `ancestor` is `id` or above it.
    pub fn is_within(&self, id: NodeId, ancestor: NodeId) -> bool {
        id == ancestor || self.ancestors(id).contains(&ancestor)
    }

    /// The total size of the files at and under `id`.
    pub fn subtree_size(&self, id: NodeId) -> u64 {
        match self.node(id).map(|n| &n.kind) {
            Some(Kind::File(data)) => data.blob.size,
            Some(Kind::Folder(children)) => children.values().map(|&c| self.subtree_size(c)).sum(),
            None => 0,
        }
    }

    /// Every node under `id` (not `id` itself), parents before children,
    /// siblings by lower-cased name.
    pub fn descendants(&self, id: NodeId) -> Vec<NodeId> {
        let mut out = Vec::new();
        for child in self.children(id) {
            out.push(child);
            out.extend(self.descendants(child));
        }
        out
    }

    fn new_ext_id(&mut self) -> String {
        let n = self.next_ext;
        self.next_ext += 1;
        match self.style {
            Style::Box => (1_200_000_000_000 + n * 7).to_string(),
            Style::Dropbox => {
                let mut bytes = [0u8; 16];
                bytes[..8].copy_from_slice(b"FAKEdbx1");
                bytes[8..].copy_from_slice(&n.to_be_bytes());
                format!("id:{}", URL_SAFE_NO_PAD.encode(bytes))
            }
        }
    }

    /// A fresh `(version_id, rev)` pair.
    fn new_version(&mut self) -> (String, String) {
        let n = self.next_version;
        self.next_version += 1;
        (
            (1_300_000_000_000 + n * 11).to_string(),
            format!("{:012x}", 0x015f_0000_0000u64 + n),
        )
    }

    fn insert(&mut self, parent: NodeId, name: &str, kind: Kind) -> NodeId {
        let id = self.next_node;
        self.next_node += 1;
        let now = Utc::now();
        let ext_id = self.new_ext_id();
        self.by_ext.insert(ext_id.clone(), id);
        self.nodes.insert(
            id,
            Node {
                name: name.to_owned(),
                parent: Some(parent),
                ext_id,
                created: now,
                modified: now,
                kind,
            },
        );
        if let Some(Node {
            kind: Kind::Folder(children),
            modified,
            ..
        }) = self.nodes.get_mut(&parent)
        {
            children.insert(name_key(name), id);
            *modified = now;
        }
        id
    }

    /// Creates a folder. The caller has checked that `parent` is a folder
    /// without a child of that name.
    pub fn add_folder(&mut self, parent: NodeId, name: &str) -> NodeId {
        self.insert(parent, name, Kind::Folder(BTreeMap::new()))
    }

    /// Creates a file (version 1). The caller has checked that `parent` is a
    /// folder without a child of that name.
    pub fn add_file(
        &mut self,
        parent: NodeId,
        name: &str,
        blob: Arc<Blob>,
        content_modified: Option<DateTime<Utc>>,
    ) -> NodeId {
        let (version_id, rev) = self.new_version();
        self.insert(
            parent,
            name,
            Kind::File(FileData {
                blob,
                versions: 1,
                version_id,
                rev,
                content_modified: content_modified.unwrap_or_else(Utc::now),
            }),
        )
    }

    /// Gives file `id` new contents: a new version.
    pub fn replace(
        &mut self,
        id: NodeId,
        blob: Arc<Blob>,
        content_modified: Option<DateTime<Utc>>,
    ) {
        let (version_id, rev) = self.new_version();
        if let Some(node) = self.nodes.get_mut(&id) {
            if let Kind::File(data) = &mut node.kind {
                data.blob = blob;
                data.versions += 1;
                data.version_id = version_id;
                data.rev = rev;
                data.content_modified = content_modified.unwrap_or_else(Utc::now);
                node.modified = Utc::now();
            }
        }
    }

    /// Renames `id` in place. The caller has checked for conflicts.
    pub fn rename(&mut self, id: NodeId, name: &str) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let old_key = name_key(&node.name);
        node.name = name.to_owned();
        let parent = node.parent;
        if let Some(Node {
            kind: Kind::Folder(children),
            ..
        }) = parent.and_then(|p| self.nodes.get_mut(&p))
        {
            children.remove(&old_key);
            children.insert(name_key(name), id);
        }
    }

    /// Deletes `id` and everything under it. The root cannot be deleted.
    pub fn remove(&mut self, id: NodeId) {
        if id == ROOT {
            return;
        }
        let Some(node) = self.nodes.get(&id) else {
            return;
        };
        let key = name_key(&node.name);
        if let Some(Node {
            kind: Kind::Folder(children),
            modified,
            ..
        }) = node.parent.and_then(|p| self.nodes.get_mut(&p))
        {
            children.remove(&key);
            *modified = Utc::now();
        }
        let mut doomed = vec![id];
        doomed.extend(self.descendants(id));
        for gone in doomed {
            if let Some(node) = self.nodes.remove(&gone) {
                self.by_ext.remove(&node.ext_id);
            }
        }
    }

    /// Every file and folder but the root, in display case, folders with a
    /// trailing `/`, sorted.
    pub fn all_paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .descendants(ROOT)
            .into_iter()
            .filter_map(|id| {
                let node = self.node(id)?;
                let mut path = self.path_display(id);
                if node.is_folder() {
                    path.push('/');
                }
                Some(path)
            })
            .collect();
        paths.sort();
        paths
    }

    /// The file at `path`, if it is one.
    pub fn file_at(&self, path: &str) -> Option<&FileData> {
        self.node(self.lookup(path)?)?.file()
    }
}

// -------------------------------------------------------------- all of it

/// Everything the file APIs keep: the store, the sessions, the settings and
/// the queued faults. Lives in [`super::State`].
pub(crate) struct Files {
    dir: TempDir,
    style: Style,
    pub tree: Tree,
    /// `http://127.0.0.1:PORT`, for URLs the fake hands out.
    pub base_url: String,
    pub page_size: usize,
    pub faults: VecDeque<(String, ApiFault)>,
    pub boxed: BoxFiles,
    pub dropbox: DropboxFiles,
    rng: SystemRandom,
    next_request: u64,
}

impl Files {
    pub fn new(style: Style) -> Files {
        Files {
            dir: tempfile::Builder::new()
                .prefix("fake-provider-files-")
                .tempdir()
                .expect("the fake provider can create its storage directory"),
            style,
            tree: Tree::new(style),
            base_url: String::new(),
            page_size: DEFAULT_PAGE_SIZE,
            faults: VecDeque::new(),
            boxed: BoxFiles::default(),
            dropbox: DropboxFiles::default(),
            rng: SystemRandom::new(),
            next_request: 1,
        }
    }

    /// The directory the blobs live in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where new blobs go, with the hashes this style needs.
    pub fn blob_dir(&self) -> BlobDir {
        BlobDir::new(self.dir(), self.style)
    }

    /// `bytes` random bytes, hex-encoded.
    pub fn random_hex(&self, bytes: usize) -> String {
        let mut buf = vec![0u8; bytes];
        self.rng
            .fill(&mut buf)
            .expect("the system random number generator works");
        hex(&buf)
    }

    /// A request id for error bodies.
    pub fn request_id(&mut self) -> String {
        let n = self.next_request;
        self.next_request += 1;
        format!("fake{n:012x}")
    }

    /// Takes the first queued fault whose pattern is in `path`.
    pub fn take_fault(&mut self, path: &str) -> Option<ApiFault> {
        let at = self.faults.iter().position(|(p, _)| path.contains(p))?;
        self.faults.remove(at).map(|(_, fault)| fault)
    }

    /// Upload sessions neither committed, finished nor aborted.
    pub fn open_sessions(&self) -> usize {
        self.boxed.sessions.len() + self.dropbox.sessions.len()
    }

    /// How many files are in the storage directory right now (stored
    /// files, parts, and uploads in flight).
    pub fn files_on_disk(&self) -> usize {
        std::fs::read_dir(self.dir())
            .map(|entries| entries.filter(|e| e.is_ok()).count())
            .unwrap_or(0)
    }

    /// Seeds a file at `path`, creating missing parent folders, or gives an
    /// existing file new contents. Panics on a bad path (a test bug).
    pub fn put_file(&mut self, path: &str, bytes: &[u8]) {
        let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let Some((name, parents)) = components.split_last() else {
            panic!("put_file: {path:?} names no file");
        };
        let mut at = ROOT;
        for component in parents {
            at = match self.tree.child(at, component) {
                Some(id) => {
                    assert!(
                        self.tree.node(id).is_some_and(Node::is_folder),
                        "put_file: {component:?} in {path:?} is a file"
                    );
                    id
                }
                None => self.tree.add_folder(at, component),
            };
        }
        let blob = (|| {
            let mut writer = BlobWriter::new(&self.blob_dir())?;
            writer.write_sync(bytes)?;
            writer.finish()
        })()
        .expect("put_file: the fake can write its storage directory");
        let blob = Arc::new(blob);
        match self.tree.child(at, name) {
            Some(id) => {
                assert!(
                    self.tree.node(id).and_then(Node::file).is_some(),
                    "put_file: {path:?} is a folder"
                );
                self.tree.replace(id, blob, None);
            }
            None => {
                self.tree.add_file(at, name, blob, None);
            }
        }
    }
}

// ------------------------------------------------------------------ times

/// Box's timestamp format: RFC 3339, seconds, with an offset.
pub(crate) fn box_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// Dropbox's timestamp format: `%Y-%m-%dT%H:%M:%SZ`.
pub(crate) fn dropbox_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content_hash_by_hand(data: &[u8]) -> String {
        let mut all = Vec::new();
        for block in data.chunks(DROPBOX_BLOCK) {
            all.extend_from_slice(ring::digest::digest(&SHA256, block).as_ref());
        }
        hex(ring::digest::digest(&SHA256, &all).as_ref())
    }

    #[test]
    fn blob_writer_hashes_across_block_boundaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data: Vec<u8> = (0..(DROPBOX_BLOCK * 2 + 12345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let blob_dir = BlobDir {
            path: dir.path().to_path_buf(),
            sha1: true,
            content_hash: true,
        };
        let mut writer = BlobWriter::new(&blob_dir).expect("writer");
        for piece in data.chunks(999_983) {
            writer.write_sync(piece).expect("write");
        }
        let blob = writer.finish().expect("finish");
        assert_eq!(blob.size, data.len() as u64);
        assert_eq!(
            blob.sha256_hex(),
            hex(ring::digest::digest(&SHA256, &data).as_ref())
        );
        assert_eq!(
            blob.sha1_hex(),
            hex(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &data).as_ref())
        );
        assert_eq!(blob.content_hash_hex(), content_hash_by_hand(&data));
        let mut back = Vec::new();
        blob.open()
            .expect("open")
            .read_to_end(&mut back)
            .expect("read");
        assert_eq!(back, data);
        let path = blob.path.to_path_buf();
        drop(blob);
        assert!(!path.exists(), "a dropped blob leaves nothing on disk");
    }

    #[test]
    fn ranges() {
        let mut h = HeaderMap::new();
        let mut check = |v: &str, size: u64| {
            h.insert(header::RANGE, HeaderValue::from_str(v).expect("ascii"));
            match parse_range(&h, size) {
                RangeSpec::Full => "full".to_owned(),
                RangeSpec::Part(a, b) => format!("{a}-{b}"),
                RangeSpec::Unsatisfiable => "416".to_owned(),
            }
        };
        assert_eq!(check("bytes=0-9", 100), "0-9");
        assert_eq!(check("bytes=90-", 100), "90-99");
        assert_eq!(check("bytes=90-200", 100), "90-99");
        assert_eq!(check("bytes=-10", 100), "90-99");
        assert_eq!(check("bytes=-1000", 100), "0-99");
        assert_eq!(check("bytes=100-", 100), "416");
        assert_eq!(check("bytes=5-2", 100), "full");
        assert_eq!(check("bytes=0-1,5-6", 100), "full");
        assert_eq!(check("items=0-1", 100), "full");
    }
}
