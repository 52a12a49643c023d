//! Sealed blobs: a token blob encrypted to one vault's public key, so it can
//! be pasted anywhere (chat, tickets, scrollback) and opened only by that
//! vault.
//!
//! Formats (both base64url without padding, both versioned by their prefix):
//!
//! - **Recipient** (`token-vault recipient` prints it):
//!   `tvr1.` + b64(public key (32) ‖ SHA-256(public key)[..4]). The
//!   checksum catches a mistyped or truncated recipient before anything is
//!   sealed to a key nobody holds.
//! - **Sealed blob** (`oauth-authorize … --seal-to` prints it):
//!   `tvsealed1.` + b64(key id (8) ‖ ephemeral public key (32) ‖ ciphertext ‖ tag (16)).
//!   - key id = SHA-256(recipient public key)[..8], so a blob sealed to
//!     another vault is told apart from a damaged one;
//!   - shared = X25519(ephemeral private key, recipient public key), with a
//!     fresh ephemeral key from ring for every blob;
//!   - key = HKDF-SHA256(salt = [`HKDF_SALT`], ikm = shared,
//!     info = ephemeral public ‖ recipient public), 32 bytes;
//!   - ChaCha20-Poly1305 (ring) with an all-zero nonce, which is safe
//!     because every key is used exactly once, and the header (`tvsealed1`
//!     ‖ key id ‖ ephemeral public key) as associated data, so no byte of
//!     the blob can change unnoticed.
//!
//! Sealing needs only an ephemeral key, which ring provides. Opening needs
//! the recipient's long-lived private key, which ring cannot hold (it only
//! has single-use `EphemeralPrivateKey`s), so [`SealedBlob::open`] takes the
//! X25519 computation as a closure: the vault does it with its static key,
//! and tests with a ring ephemeral key.
//!
//! Invariant: no error here quotes the input, and the plaintext only ever
//! lives in a [`Secret`].

use crate::secret::Secret;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::{aead, agreement, digest, hkdf, rand};
use zeroize::Zeroizing;

/// The prefix of a recipient string, version 1.
pub const RECIPIENT_PREFIX: &str = "tvr1.";
/// The prefix of a sealed blob, version 1.
pub const SEALED_PREFIX: &str = "tvsealed1.";
/// What every sealed blob starts with, whatever its version.
const SEALED_FAMILY: &str = "tvsealed";
/// What every recipient starts with, whatever its version.
const RECIPIENT_FAMILY: &str = "tvr";
/// The HKDF salt: binds the key to this format and version.
pub const HKDF_SALT: &[u8] = b"token-vault sealed blob v1";
/// Associated data tag at the start of the header.
const AAD_TAG: &[u8] = b"tvsealed1";

const KEY_LEN: usize = 32;
const KEY_ID_LEN: usize = 8;
const CHECK_LEN: usize = 4;
const TAG_LEN: usize = 16;
/// The largest sealed blob read: a token blob is a few KiB.
pub const MAX_SEALED_LEN: usize = 256 * 1024;

/// Why a recipient or a sealed blob was refused. Never quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("`{RECIPIENT_PREFIX}…` expected: a recipient is what `token-vault recipient` prints on the vault's host")]
    NotARecipient,
    #[error("the recipient is damaged (wrong length or checksum; it was probably mistyped or cut short): copy it again from `token-vault recipient`")]
    BadRecipient,
    #[error(
        "this is a version {0} recipient, which this oauth-authorize does not know: upgrade it"
    )]
    RecipientVersion(String),
    #[error("not a sealed blob: a sealed blob starts with `{SEALED_PREFIX}`")]
    NotSealed,
    #[error("this blob was sealed in format {0}, which this token-vault cannot open: upgrade token-vault")]
    SealedVersion(String),
    #[error("the sealed blob is damaged (it is not valid base64url or is too short); paste the whole `{SEALED_PREFIX}…` line")]
    Malformed,
    #[error("the sealed blob is larger than {} KiB; a sealed token blob is a few KiB", MAX_SEALED_LEN / 1024)]
    TooLarge,
    #[error("this blob was sealed to another vault (recipient id {sealed_to}), not to this one (recipient id {this}): on the workstation, seal it again with `--seal-to` and the recipient that `token-vault recipient` prints on this host")]
    WrongRecipient { sealed_to: String, this: String },
    #[error("the sealed blob failed its integrity check: it was altered or damaged after sealing (or cut short when pasted), so it was not opened. Paste the whole line again, or seal a new one")]
    Tampered,
    #[error("no secure random numbers available")]
    Random,
}

/// A vault's public key, as `token-vault recipient` prints it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Recipient {
    public: [u8; KEY_LEN],
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipient({})", self.key_id_hex())
    }
}

impl std::fmt::Display for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.encode())
    }
}

impl Recipient {
    pub fn from_public_key(public: [u8; KEY_LEN]) -> Recipient {
        Recipient { public }
    }

    pub fn public_key(&self) -> &[u8; KEY_LEN] {
        &self.public
    }

    /// `tvr1.…`.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(KEY_LEN + CHECK_LEN);
        bytes.extend_from_slice(&self.public);
        bytes.extend_from_slice(&sha256(&self.public).as_ref()[..CHECK_LEN]);
        format!("{RECIPIENT_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Parses `tvr1.…` (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Recipient, SealError> {
        let text = text.trim();
        let Some(body) = text.strip_prefix(RECIPIENT_PREFIX) else {
            return Err(match version_after(text, RECIPIENT_FAMILY) {
                Some(v) if v != "1" => SealError::RecipientVersion(v),
                _ => SealError::NotARecipient,
            });
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SealError::BadRecipient)?;
        if bytes.len() != KEY_LEN + CHECK_LEN {
            return Err(SealError::BadRecipient);
        }
        let (public, check) = bytes.split_at(KEY_LEN);
        if sha256(public).as_ref()[..CHECK_LEN] != *check {
            return Err(SealError::BadRecipient);
        }
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(public);
        Ok(Recipient { public: key })
    }

    /// The 8-byte key id that sealed blobs carry.
    pub fn key_id(&self) -> [u8; KEY_ID_LEN] {
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&sha256(&self.public).as_ref()[..KEY_ID_LEN]);
        id
    }

    /// The key id in hex, for messages.
    pub fn key_id_hex(&self) -> String {
        hex(&self.key_id())
    }
}

/// Whether `text` looks like a sealed blob (of any version), so that
/// `import` can tell it from a plain token blob.
pub fn is_sealed(text: &str) -> bool {
    text.trim_start().starts_with(SEALED_FAMILY)
}

/// Encrypts `plaintext` (a token blob) to `recipient`; returns `tvsealed1.…`.
pub fn seal(plaintext: &[u8], recipient: &Recipient) -> Result<String, SealError> {
    let rng = rand::SystemRandom::new();
    let ephemeral = agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng)
        .map_err(|_| SealError::Random)?;
    let eph_public = ephemeral
        .compute_public_key()
        .map_err(|_| SealError::Random)?;
    let mut eph = [0u8; KEY_LEN];
    eph.copy_from_slice(eph_public.as_ref());
    let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, recipient.public);
    // ring refuses an all-zero shared secret (a low-order recipient key).
    let key = agreement::agree_ephemeral(ephemeral, &peer, |shared| {
        derive_key(shared, &eph, &recipient.public)
    })
    .map_err(|_| SealError::BadRecipient)??;
    let key_id = recipient.key_id();
    let mut data = plaintext.to_vec();
    key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key([0u8; aead::NONCE_LEN]),
        aead::Aad::from(header(&key_id, &eph)),
        &mut data,
    )
    .map_err(|_| SealError::Random)?;
    let mut out = Vec::with_capacity(KEY_ID_LEN + KEY_LEN + data.len());
    out.extend_from_slice(&key_id);
    out.extend_from_slice(&eph);
    out.extend_from_slice(&data);
    Ok(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
}

/// A parsed (not yet opened) sealed blob.
pub struct SealedBlob {
    key_id: [u8; KEY_ID_LEN],
    ephemeral: [u8; KEY_LEN],
    ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SealedBlob(to {}, {} bytes)",
            hex(&self.key_id),
            self.ciphertext.len()
        )
    }
}

impl SealedBlob {
    /// Parses `tvsealed1.…`. Whitespace anywhere (a terminal's line breaks)
    /// is ignored.
    pub fn parse(text: &str) -> Result<SealedBlob, SealError> {
        if text.len() > MAX_SEALED_LEN {
            return Err(SealError::TooLarge);
        }
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let Some(body) = compact.strip_prefix(SEALED_PREFIX) else {
            return Err(match version_after(&compact, SEALED_FAMILY) {
                Some(v) if v != "1" => SealError::SealedVersion(v),
                _ => SealError::NotSealed,
            });
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SealError::Malformed)?;
        if bytes.len() < KEY_ID_LEN + KEY_LEN + TAG_LEN {
            return Err(SealError::Malformed);
        }
        let mut key_id = [0u8; KEY_ID_LEN];
        key_id.copy_from_slice(&bytes[..KEY_ID_LEN]);
        let mut ephemeral = [0u8; KEY_LEN];
        ephemeral.copy_from_slice(&bytes[KEY_ID_LEN..KEY_ID_LEN + KEY_LEN]);
        Ok(SealedBlob {
            key_id,
            ephemeral,
            ciphertext: bytes[KEY_ID_LEN + KEY_LEN..].to_vec(),
        })
    }

    /// The ephemeral public key, for the recipient's X25519 computation.
    pub fn ephemeral_public_key(&self) -> &[u8; KEY_LEN] {
        &self.ephemeral
    }

    /// Opens the blob as `recipient`. `x25519` computes X25519(recipient's
    /// private key, the given ephemeral public key); `None` means the
    /// result was not contributory (a low-order point: a forged blob).
    pub fn open(
        &self,
        recipient: &Recipient,
        x25519: impl FnOnce(&[u8; KEY_LEN]) -> Option<Zeroizing<[u8; KEY_LEN]>>,
    ) -> Result<Secret, SealError> {
        if self.key_id != recipient.key_id() {
            return Err(SealError::WrongRecipient {
                sealed_to: hex(&self.key_id),
                this: recipient.key_id_hex(),
            });
        }
        let shared = x25519(&self.ephemeral).ok_or(SealError::Tampered)?;
        let key = derive_key(shared.as_slice(), &self.ephemeral, &recipient.public)?;
        let mut data = Zeroizing::new(self.ciphertext.clone());
        let plain = key
            .open_in_place(
                aead::Nonce::assume_unique_for_key([0u8; aead::NONCE_LEN]),
                aead::Aad::from(header(&self.key_id, &self.ephemeral)),
                &mut data,
            )
            .map_err(|_| SealError::Tampered)?;
        let text = std::str::from_utf8(plain).map_err(|_| SealError::Tampered)?;
        Ok(Secret::new(text))
    }
}

/// The AEAD key for one blob.
fn derive_key(
    shared: &[u8],
    ephemeral: &[u8; KEY_LEN],
    recipient: &[u8; KEY_LEN],
) -> Result<aead::LessSafeKey, SealError> {
    let mut info = [0u8; 2 * KEY_LEN];
    info[..KEY_LEN].copy_from_slice(ephemeral);
    info[KEY_LEN..].copy_from_slice(recipient);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(shared);
    let info = [&info[..]];
    let okm = prk
        .expand(&info, &aead::CHACHA20_POLY1305)
        .map_err(|_| SealError::Tampered)?;
    Ok(aead::LessSafeKey::new(aead::UnboundKey::from(okm)))
}

fn header(key_id: &[u8; KEY_ID_LEN], ephemeral: &[u8; KEY_LEN]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_TAG.len() + KEY_ID_LEN + KEY_LEN);
    aad.extend_from_slice(AAD_TAG);
    aad.extend_from_slice(key_id);
    aad.extend_from_slice(ephemeral);
    aad
}

/// The version in `tvsealedN.` / `tvrN.`, if `text` has that shape.
fn version_after(text: &str, family: &str) -> Option<String> {
    let rest = text.strip_prefix(family)?;
    let (version, _) = rest.split_once('.')?;
    (!version.is_empty() && version.len() <= 4 && version.bytes().all(|b| b.is_ascii_digit()))
        .then(|| version.to_string())
}

fn sha256(bytes: &[u8]) -> digest::Digest {
    digest::digest(&digest::SHA256, bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOB: &str = r#"{"access_token":"AT-sealed-123","token_type":"bearer","refresh_token":"RT-sealed-456","expiry":"2030-01-01T00:00:00Z"}"#;

    /// A recipient whose private half is a ring ephemeral key: good for
    /// exactly one `open`, which is all a test needs.
    fn recipient() -> (Recipient, agreement::EphemeralPrivateKey) {
        let rng = rand::SystemRandom::new();
        let private = agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng).unwrap();
        let mut public = [0u8; KEY_LEN];
        public.copy_from_slice(private.compute_public_key().unwrap().as_ref());
        (Recipient::from_public_key(public), private)
    }

    fn ring_x25519(
        private: agreement::EphemeralPrivateKey,
    ) -> impl FnOnce(&[u8; KEY_LEN]) -> Option<Zeroizing<[u8; KEY_LEN]>> {
        move |peer| {
            let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, *peer);
            agreement::agree_ephemeral(private, &peer, |shared| {
                let mut out = Zeroizing::new([0u8; KEY_LEN]);
                out.copy_from_slice(shared);
                out
            })
            .ok()
        }
    }

    #[test]
    fn round_trip() {
        let (r, private) = recipient();
        let sealed = seal(BLOB.as_bytes(), &r).unwrap();
        assert!(sealed.starts_with(SEALED_PREFIX) && is_sealed(&sealed));
        assert!(!sealed.contains("AT-sealed") && !sealed.contains('\n'));
        // A terminal may wrap the paste: whitespace is ignored.
        let wrapped: String = sealed
            .as_bytes()
            .chunks(30)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\r\n");
        let parsed = SealedBlob::parse(&format!("  {wrapped}\n")).unwrap();
        let opened = parsed.open(&r, ring_x25519(private)).unwrap();
        assert_eq!(opened.expose(), BLOB);
    }

    #[test]
    fn every_blob_is_fresh() {
        let (r, _) = recipient();
        assert_ne!(
            seal(BLOB.as_bytes(), &r).unwrap(),
            seal(BLOB.as_bytes(), &r).unwrap()
        );
    }

    #[test]
    fn any_changed_byte_is_detected() {
        // A ring private key opens once, so each position gets its own
        // recipient and blob; the opener always holds the right key.
        let len = URL_SAFE_NO_PAD
            .decode(&seal(BLOB.as_bytes(), &recipient().0).unwrap()[SEALED_PREFIX.len()..])
            .unwrap()
            .len();
        for i in KEY_ID_LEN..len {
            let (r, private) = recipient();
            let sealed = seal(BLOB.as_bytes(), &r).unwrap();
            let mut body = URL_SAFE_NO_PAD
                .decode(&sealed[SEALED_PREFIX.len()..])
                .unwrap();
            body[i] ^= 0x01;
            let text = format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(&body));
            let err = SealedBlob::parse(&text)
                .unwrap()
                .open(&r, ring_x25519(private))
                .unwrap_err();
            assert_eq!(err, SealError::Tampered, "byte {i}");
        }
    }

    #[test]
    fn tampering_with_the_right_key_is_detected() {
        let (r, private) = recipient();
        let sealed = seal(BLOB.as_bytes(), &r).unwrap();
        let mut body = URL_SAFE_NO_PAD
            .decode(&sealed[SEALED_PREFIX.len()..])
            .unwrap();
        let last = body.len() - TAG_LEN - 3;
        body[last] ^= 0x80;
        let text = format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(&body));
        let err = SealedBlob::parse(&text)
            .unwrap()
            .open(&r, ring_x25519(private))
            .unwrap_err();
        assert_eq!(err, SealError::Tampered);
        assert!(err.to_string().contains("altered"), "{err}");
    }

    #[test]
    fn another_recipient_is_told_apart() {
        let (a, _) = recipient();
        let (b, b_private) = recipient();
        let sealed = seal(BLOB.as_bytes(), &a).unwrap();
        let err = SealedBlob::parse(&sealed)
            .unwrap()
            .open(&b, ring_x25519(b_private))
            .unwrap_err();
        assert!(
            matches!(err, SealError::WrongRecipient { ref sealed_to, ref this }
                if *sealed_to == a.key_id_hex() && *this == b.key_id_hex()),
            "{err:?}"
        );
        assert!(err.to_string().contains("another vault"), "{err}");
    }

    #[test]
    fn recipients_round_trip_and_catch_typos() {
        let (r, _) = recipient();
        let text = r.encode();
        assert!(
            text.starts_with(RECIPIENT_PREFIX) && text.len() < 60,
            "{text}"
        );
        assert_eq!(Recipient::parse(&format!(" {text}\n")).unwrap(), r);
        // One changed character fails the checksum (or the decoding).
        let mut chars: Vec<char> = text.chars().collect();
        let i = RECIPIENT_PREFIX.len() + 10;
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(Recipient::parse(&typo), Err(SealError::BadRecipient));
        assert_eq!(
            Recipient::parse(&text[..text.len() - 2]),
            Err(SealError::BadRecipient)
        );
        assert_eq!(Recipient::parse("age1xyz"), Err(SealError::NotARecipient));
        assert_eq!(
            Recipient::parse("tvr2.abc"),
            Err(SealError::RecipientVersion("2".into()))
        );
    }

    #[test]
    fn malformed_blobs() {
        assert_eq!(SealedBlob::parse("{}").unwrap_err(), SealError::NotSealed);
        assert_eq!(
            SealedBlob::parse("tvsealed2.AAAA").unwrap_err(),
            SealError::SealedVersion("2".into())
        );
        assert_eq!(
            SealedBlob::parse("tvsealed1.!!!").unwrap_err(),
            SealError::Malformed
        );
        assert_eq!(
            SealedBlob::parse("tvsealed1.AAAA").unwrap_err(),
            SealError::Malformed
        );
        let huge = format!("{SEALED_PREFIX}{}", "A".repeat(MAX_SEALED_LEN));
        assert_eq!(SealedBlob::parse(&huge).unwrap_err(), SealError::TooLarge);
        assert!(!is_sealed(r#"{"access_token":"x"}"#));
    }

    #[test]
    fn a_low_order_ephemeral_key_is_refused() {
        let (r, _) = recipient();
        let sealed = seal(BLOB.as_bytes(), &r).unwrap();
        let parsed = SealedBlob::parse(&sealed).unwrap();
        let err = parsed.open(&r, |_| None).unwrap_err();
        assert_eq!(err, SealError::Tampered);
    }
}
