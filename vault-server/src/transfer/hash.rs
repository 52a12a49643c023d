//! The digests each provider wants of an upload, computed as its bytes
//! stream past on their way to the spool (see [`Observer`]), so the vault
//! never reads an upload twice to hash it; and the same hashes of a
//! download, which `token-vault get` checks ([`ContentHasher`]).
//!
//! Invariant: every byte the client sends reaches the observer of its
//! upload exactly once, in order; a part's digest covers exactly the bytes
//! of that part.
//!
//! SHA-1 comes from the `sha1` crate, which uses the CPU's SHA extensions
//! where they exist: ring's SHA-1 is portable code only, and at roughly
//! 0.4 GB/s it was most of the vault's CPU during a Box upload (which
//! hashes each byte twice, for its part and for the whole file) and, before
//! this module, during Dropbox uploads too. SHA-256 stays with ring, which
//! has the hardware path.

use ring::digest;
use sha1::{Digest as _, Sha1};
use shared::api::HashKind;

/// Sees every byte of an upload, in order, as it arrives.
pub trait Observer {
    fn observe(&mut self, bytes: &[u8]);
}

/// A SHA-1 digest.
pub type Sha1Digest = [u8; 20];

/// Box's digests: each part's SHA-1 (its `Digest: sha=` header) and the
/// whole file's (the commit's `Digest`, or a simple upload's
/// `Content-MD5`).
#[derive(Default)]
pub struct BoxDigests {
    part: Sha1,
    whole: Sha1,
}

impl BoxDigests {
    pub fn new() -> Self {
        Self::default()
    }

    /// The SHA-1 of the bytes seen since the last call (or the start): the
    /// part just spooled. The next part starts from here.
    pub fn finish_part(&mut self) -> Sha1Digest {
        self.part.finalize_reset().into()
    }

    /// The SHA-1 of every byte seen.
    pub fn finish(self) -> Sha1Digest {
        self.whole.finalize().into()
    }
}

/// A plain SHA-1 of everything seen: a Box simple upload's `Content-MD5`.
impl Observer for Sha1 {
    fn observe(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Observer for BoxDigests {
    fn observe(&mut self, bytes: &[u8]) {
        self.part.update(bytes);
        self.whole.update(bytes);
    }
}

/// Dropbox's `content_hash`: SHA-256 over the SHA-256 digests of each
/// 4 MiB block.
pub struct DropboxHasher {
    overall: digest::Context,
    block: digest::Context,
    block_len: usize,
}

/// Dropbox's content-hash block size.
const DROPBOX_BLOCK: usize = 4 * 1024 * 1024;

impl DropboxHasher {
    pub fn new() -> Self {
        DropboxHasher {
            overall: digest::Context::new(&digest::SHA256),
            block: digest::Context::new(&digest::SHA256),
            block_len: 0,
        }
    }

    pub fn finish(mut self) -> String {
        if self.block_len > 0 {
            self.overall.update(self.block.finish().as_ref());
        }
        hex(self.overall.finish().as_ref())
    }
}

impl Default for DropboxHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl Observer for DropboxHasher {
    fn observe(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = (DROPBOX_BLOCK - self.block_len).min(bytes.len());
            self.block.update(&bytes[..take]);
            self.block_len += take;
            bytes = &bytes[take..];
            if self.block_len == DROPBOX_BLOCK {
                let full =
                    std::mem::replace(&mut self.block, digest::Context::new(&digest::SHA256));
                self.overall.update(full.finish().as_ref());
                self.block_len = 0;
            }
        }
    }
}

/// The running hash of a download, of the kind its provider keeps, to
/// check the bytes that arrived against the provider's.
pub enum ContentHasher {
    Sha1(Sha1),
    Dropbox(Box<DropboxHasher>),
}

impl ContentHasher {
    pub fn new(kind: HashKind) -> ContentHasher {
        match kind {
            HashKind::Sha1 => ContentHasher::Sha1(Sha1::new()),
            HashKind::DropboxContentHash => ContentHasher::Dropbox(Box::default()),
        }
    }

    /// The hash of every byte seen, hex, as the provider writes it.
    pub fn finish(self) -> String {
        match self {
            ContentHasher::Sha1(sha1) => hex(&sha1.finalize()),
            ContentHasher::Dropbox(dropbox) => dropbox.finish(),
        }
    }
}

impl Observer for ContentHasher {
    fn observe(&mut self, bytes: &[u8]) {
        match self {
            ContentHasher::Sha1(sha1) => sha1.update(bytes),
            ContentHasher::Dropbox(dropbox) => dropbox.observe(bytes),
        }
    }
}

impl std::fmt::Debug for ContentHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ContentHasher::Sha1(_) => "ContentHasher::Sha1",
            ContentHasher::Dropbox(_) => "ContentHasher::Dropbox",
        })
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_digests_of_parts_and_the_whole() {
        // FIPS 180's "abc".
        let mut d = BoxDigests::new();
        d.observe(b"ab");
        d.observe(b"c");
        assert_eq!(
            hex(&d.finish_part()),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        // Parts in odd pieces agree with ring's SHA-1 of each part and of
        // the whole.
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (a, b) = data.split_at(1_234_567);
        let mut d = BoxDigests::new();
        for piece in a.chunks(99_999) {
            d.observe(piece);
        }
        let part_a = d.finish_part();
        for piece in b.chunks(65_536) {
            d.observe(piece);
        }
        let part_b = d.finish_part();
        let ring_sha1 = |bytes: &[u8]| {
            digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, bytes)
                .as_ref()
                .to_vec()
        };
        assert_eq!(part_a.to_vec(), ring_sha1(a));
        assert_eq!(part_b.to_vec(), ring_sha1(b));
        assert_eq!(d.finish().to_vec(), ring_sha1(&data));
    }

    #[test]
    fn a_content_hasher_is_the_providers_hash() {
        let mut sha1 = ContentHasher::new(HashKind::Sha1);
        sha1.observe(b"a");
        sha1.observe(b"bc");
        assert_eq!(sha1.finish(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        let dropbox = ContentHasher::new(HashKind::DropboxContentHash);
        assert_eq!(dropbox.finish(), DropboxHasher::new().finish());
    }

    #[test]
    fn dropbox_hash_of_known_inputs() {
        // Empty: SHA-256 of nothing.
        assert_eq!(
            DropboxHasher::new().finish(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // 5 MiB in odd pieces equals the definition computed directly.
        let data: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let mut h = DropboxHasher::new();
        for piece in data.chunks(777_777) {
            h.observe(piece);
        }
        let mut concat = Vec::new();
        for block in data.chunks(DROPBOX_BLOCK) {
            concat.extend_from_slice(digest::digest(&digest::SHA256, block).as_ref());
        }
        assert_eq!(
            h.finish(),
            hex(digest::digest(&digest::SHA256, &concat).as_ref())
        );
    }
}
