//! Sealing a record for storage, and opening it again.
//!
//! Layout: `b"TVR1"` ‖ 96-bit nonce ‖ AES-256-GCM(JSON of the record) ‖ tag.
//! The associated data is `b"token-vault record v1\0"` ‖ the connection
//! name, so bytes sealed for one connection do not open as another.
//!
//! Invariants: every seal draws a fresh random nonce; the plaintext JSON
//! only ever lives in a buffer that is encrypted in place or zeroed; no
//! error message carries plaintext (serde's messages can quote their input,
//! so only the error's category, line and column are kept).

use std::fmt;
use std::io;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::{StoreError, VaultKey};
use crate::record::{Record, RECORD_VERSION};

/// The first bytes of every sealed record.
pub const MAGIC: &[u8; 4] = b"TVR1";
/// Domain separation for the associated data; followed by the name.
const AAD_PREFIX: &[u8] = b"token-vault record v1\0";
const HEADER_LEN: usize = MAGIC.len() + NONCE_LEN;

/// Why one stored record cannot be read. Messages never contain plaintext
/// or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// It does not start with [`MAGIC`]: not a record, or damaged.
    #[error("not a token-vault record: it does not start with TVR1 (a stray or damaged file)")]
    BadMagic,
    /// Authentication failed.
    #[error(
        "cannot decrypt: wrong key, or the file was tampered with or swapped from another connection"
    )]
    Decrypt,
    /// It decrypted, but is not a record this build can use.
    #[error("the decrypted record is malformed: {0}")]
    Format(String),
    /// The backend could not read it (e.g. a permission error on its file).
    #[error("cannot read the record: {0}")]
    Io(String),
}

/// Seals and opens records with the vault key (AES-256-GCM via ring).
pub struct RecordCodec {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl RecordCodec {
    pub fn new(key: &VaultKey) -> RecordCodec {
        let unbound = UnboundKey::new(&AES_256_GCM, key.expose())
            .expect("a 32-byte key is always a valid AES-256-GCM key");
        RecordCodec {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        }
    }

    /// The record as JSON, encrypted under a fresh random nonce with its
    /// name as associated data.
    pub fn seal(&self, record: &Record) -> Result<Vec<u8>, StoreError> {
        let serialise_err = |e: serde_json::Error| {
            StoreError::Seal(format!(
                "cannot serialise the record for {:?} ({:?} error)",
                record.name,
                e.classify()
            ))
        };
        // Measure first, so the JSON is written straight into a buffer that
        // never reallocates (a reallocation would leave a plaintext copy in
        // freed memory), and is then encrypted in place.
        let mut counter = ByteCounter(0);
        serde_json::to_writer(&mut counter, record).map_err(serialise_err)?;
        let mut out = Zeroizing::new(Vec::with_capacity(
            HEADER_LEN + counter.0 + self.key.algorithm().tag_len(),
        ));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[0; NONCE_LEN]);
        serde_json::to_writer(&mut *out, record).map_err(serialise_err)?;
        self.seal_in_place(&record.name, out)
    }

    /// Encrypts `out[HEADER_LEN..]` in place, fills in the nonce and appends
    /// the tag. `out` starts with the magic and room for the nonce.
    fn seal_in_place(
        &self,
        name: &str,
        mut out: Zeroizing<Vec<u8>>,
    ) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| {
            StoreError::Seal("the system's secure random number generator failed".into())
        })?;
        out[MAGIC.len()..HEADER_LEN].copy_from_slice(&nonce);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                aad(name),
                &mut out[HEADER_LEN..],
            )
            .map_err(|_| StoreError::Seal("encryption failed".into()))?;
        out.extend_from_slice(tag.as_ref());
        // Now ciphertext only: hand the buffer out without a copy.
        Ok(std::mem::take(&mut *out))
    }

    /// Opens bytes sealed for the connection `name`.
    pub fn open(&self, name: &str, bytes: &[u8]) -> Result<Record, RecordError> {
        if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
            return Err(RecordError::BadMagic);
        }
        if bytes.len() < HEADER_LEN + self.key.algorithm().tag_len() {
            return Err(RecordError::Decrypt);
        }
        let nonce = Nonce::try_assume_unique_for_key(&bytes[MAGIC.len()..HEADER_LEN])
            .map_err(|_| RecordError::Decrypt)?;
        let mut buf = Zeroizing::new(bytes[HEADER_LEN..].to_vec());
        let plain = self
            .key
            .open_in_place(nonce, aad(name), &mut buf[..])
            .map_err(|_| RecordError::Decrypt)?;
        let record: Record = serde_json::from_slice(plain).map_err(|e| {
            // Not `e.to_string()`: serde quotes the offending input.
            RecordError::Format(format!(
                "{:?} error at line {}, column {}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        if record.version > RECORD_VERSION {
            return Err(RecordError::Format(format!(
                "layout version {} is newer than this build understands ({RECORD_VERSION}); \
                 upgrade token-vault",
                record.version
            )));
        }
        if record.name != name {
            return Err(RecordError::Format(format!(
                "it holds the connection {:?}, not {name:?}",
                record.name
            )));
        }
        Ok(record)
    }

    /// Seals arbitrary plaintext as if it were a record's JSON.
    #[cfg(test)]
    pub(crate) fn seal_raw(&self, name: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Zeroizing::new(Vec::new());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[0; NONCE_LEN]);
        out.extend_from_slice(plaintext);
        self.seal_in_place(name, out).unwrap()
    }
}

impl fmt::Debug for RecordCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecordCodec(AES-256-GCM, key redacted)")
    }
}

fn aad(name: &str) -> Aad<Vec<u8>> {
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + name.len());
    aad.extend_from_slice(AAD_PREFIX);
    aad.extend_from_slice(name.as_bytes());
    Aad::from(aad)
}

/// A writer that only counts.
struct ByteCounter(usize);

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{contains, record, secrets};

    fn codec() -> RecordCodec {
        RecordCodec::new(&VaultKey::generate().unwrap())
    }

    /// Asserts that neither the error's message nor its Debug shows a secret of `name`.
    fn assert_no_secret(err: &RecordError, name: &str) {
        let printed = format!("{err} {err:?} {err:#?}");
        for s in secrets(name) {
            assert!(!printed.contains(&s), "{printed}");
        }
    }

    #[test]
    fn round_trip() {
        let codec = codec();
        let r = record("box");
        let sealed = codec.seal(&r).unwrap();
        assert!(sealed.starts_with(MAGIC));
        assert_eq!(codec.open("box", &sealed).unwrap(), r);
    }

    #[test]
    fn sealed_bytes_hold_no_secret_or_name_in_clear() {
        let codec = codec();
        let sealed = codec.seal(&record("box")).unwrap();
        for s in secrets("box") {
            assert!(!contains(&sealed, s.as_bytes()));
        }
        assert!(!contains(&sealed, b"client-id-box"));
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let codec = codec();
        let r = record("box");
        let a = codec.seal(&r).unwrap();
        let b = codec.seal(&r).unwrap();
        assert_ne!(a, b);
        assert_ne!(a[MAGIC.len()..HEADER_LEN], b[MAGIC.len()..HEADER_LEN]);
        assert_eq!(
            codec.open("box", &a).unwrap(),
            codec.open("box", &b).unwrap()
        );
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let codec = codec();
        let sealed = codec.seal(&record("box")).unwrap();
        for i in 0..sealed.len() {
            for bit in [0x01, 0x80] {
                let mut bad = sealed.clone();
                bad[i] ^= bit;
                let err = codec.open("box", &bad).unwrap_err();
                let want = if i < MAGIC.len() {
                    RecordError::BadMagic
                } else {
                    RecordError::Decrypt
                };
                assert_eq!(err, want, "byte {i}");
            }
        }
    }

    #[test]
    fn truncated_or_empty_is_refused() {
        let codec = codec();
        let sealed = codec.seal(&record("box")).unwrap();
        for len in [0, 2, 4, 10, HEADER_LEN, HEADER_LEN + 15, sealed.len() - 1] {
            let err = codec.open("box", &sealed[..len]).unwrap_err();
            let want = if len < MAGIC.len() {
                RecordError::BadMagic
            } else {
                RecordError::Decrypt
            };
            assert_eq!(err, want, "length {len}");
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(codec.open("box", &longer), Err(RecordError::Decrypt));
    }

    #[test]
    fn bytes_sealed_for_one_name_do_not_open_as_another() {
        let codec = codec();
        let sealed = codec.seal(&record("a")).unwrap();
        assert_eq!(codec.open("b", &sealed), Err(RecordError::Decrypt));
        assert_eq!(codec.open("a ", &sealed), Err(RecordError::Decrypt));
        assert!(codec.open("a", &sealed).is_ok());
    }

    #[test]
    fn wrong_key_is_refused() {
        let sealed = codec().seal(&record("box")).unwrap();
        let err = codec().open("box", &sealed).unwrap_err();
        assert_eq!(err, RecordError::Decrypt);
        assert!(err.to_string().contains("wrong key"), "{err}");
    }

    #[test]
    fn malformed_plaintext_errors_quote_nothing() {
        let codec = codec();
        let [access, refresh, _] = secrets("box");
        // Each of these makes serde's own message quote the secret.
        let cases = [
            format!(r#"{{"version":"{access}","name":"box"}}"#),
            format!(r#"{{"version":1,"name":"box","provider":"{access}"}}"#),
            format!(r#"{{"version":1,"{refresh}":2"#),
            format!("{access} not json"),
        ];
        for plain in cases {
            let sealed = codec.seal_raw("box", plain.as_bytes());
            let err = codec.open("box", &sealed).unwrap_err();
            assert!(matches!(err, RecordError::Format(_)), "{err:?}");
            assert!(err.to_string().contains("line 1"), "{err}");
            assert_no_secret(&err, "box");
        }
    }

    #[test]
    fn a_record_naming_another_connection_is_refused() {
        let codec = codec();
        let json = serde_json::to_vec(&record("other")).unwrap();
        let sealed = codec.seal_raw("box", &json);
        let err = codec.open("box", &sealed).unwrap_err();
        assert!(matches!(err, RecordError::Format(_)), "{err:?}");
        assert_no_secret(&err, "other");
    }

    #[test]
    fn a_newer_layout_is_refused() {
        let codec = codec();
        let mut r = record("box");
        r.version = RECORD_VERSION + 1;
        let sealed = codec.seal(&r).unwrap();
        let err = codec.open("box", &sealed).unwrap_err();
        assert!(err.to_string().contains("upgrade token-vault"), "{err}");
        assert_no_secret(&err, "box");
    }

    #[test]
    fn errors_and_debug_show_no_secret() {
        let codec = codec();
        let sealed = codec.seal(&record("box")).unwrap();
        for err in [
            codec.open("x", &sealed).unwrap_err(),
            RecordCodec::new(&VaultKey::generate().unwrap())
                .open("box", &sealed)
                .unwrap_err(),
            codec.open("box", b"nope").unwrap_err(),
        ] {
            assert_no_secret(&err, "box");
        }
        let printed = format!("{codec:?}");
        assert!(printed.contains("redacted"), "{printed}");
    }
}
