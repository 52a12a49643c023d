//! The properties the fuzz targets check, shared by `fuzz/` (cargo-fuzz,
//! nightly features) and `tests/tests/fuzz_corpus.rs` (which replays the
//! committed corpus on stable in CI).
//!
//! Each `check_*` function takes the raw fuzz input and panics when a
//! property fails; an input that merely gets refused is fine.
//!
//! The "never echoes a secret" checks look for every run of at least
//! [`MIN_SECRET_LEN`] token-like characters the input carried (decoded the
//! ways the parser decodes it) in the error's Display and Debug. They stay
//! sound by skipping runs that also occur in the error type's own fixed
//! texts (variant names such as `MissingAccessToken` are 18 letters long):
//! finding one of those proves nothing.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use serde_json::{json, Value};

use authorize_cli::callback::{interpret, interpret_pasted, Callback};
use shared::blob::{RCLONE_END_MARKER, RCLONE_START_MARKER};
use shared::{BlobError, TokenBlob};
use vault_server::providers::dropbox_arg;
use vault_server::record::{Record, RECORD_VERSION};
use vault_server::store::{RecordCodec, RecordError, VaultKey, MAGIC};
use vault_server::transfer::path::RemotePath;

/// The fuzz targets, as named under `fuzz/fuzz_targets/` and `fuzz/corpus/`.
pub const TARGETS: [&str; 5] = [
    "blob_parse",
    "callback_query",
    "path_normalise",
    "dropbox_arg",
    "record_decode",
];

/// Runs the target called `name` on `data`.
pub fn check(name: &str, data: &[u8]) {
    match name {
        "blob_parse" => check_blob_parse(data),
        "callback_query" => check_callback_query(data),
        "path_normalise" => check_path_normalise(data),
        "dropbox_arg" => check_dropbox_arg(data),
        "record_decode" => check_record_decode(data),
        other => panic!("no fuzz target {other:?}"),
    }
}

/// Shortest string treated as a secret by the echo checks.
pub const MIN_SECRET_LEN: usize = 16;

/// Characters of OAuth tokens (RFC 6750's b64token, without `:` so that
/// times such as `03:04:05` in fixed messages never form a long run).
pub fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~+/=".contains(c)
}

/// Every maximal run of at least [`MIN_SECRET_LEN`] token-like characters.
fn secret_runs(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c| !is_token_char(c))
        .filter(|run| run.len() >= MIN_SECRET_LEN)
}

/// Every string in a JSON value, keys included, and recursively the strings
/// of any string that is itself JSON (rclone's config nests the token so).
fn json_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            if let Ok(inner) = serde_json::from_str::<Value>(s.trim()) {
                json_strings(&inner, out);
            }
            out.push(s.clone());
        }
        Value::Array(items) => items.iter().for_each(|v| json_strings(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                json_strings(v, out);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------- blob_parse

/// rclone's base64 config map, decoded as leniently as the parser does.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const B64_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const B64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Turns fuzz input into a paste: the first byte picks the paste form the
/// rest is wrapped in, so every form's inner layer is reached.
pub fn blob_paste(data: &[u8]) -> String {
    let (form, body) = match data.split_first() {
        Some((f, rest)) => (*f, String::from_utf8_lossy(rest).into_owned()),
        None => return String::new(),
    };
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    match form % 6 {
        // Bare JSON, or whatever else the fuzzer made.
        0 => body,
        // Between rclone's marker lines.
        1 => format!("{RCLONE_START_MARKER}\n{body}\n{RCLONE_END_MARKER}\n"),
        // Wrapped by a terminal every 1..=32 characters.
        2 => {
            let width = usize::from(form / 6 % 32) + 1;
            let chars: Vec<char> = body.chars().collect();
            chars
                .chunks(width)
                .map(|c| c.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join("\r\n")
        }
        // rclone's config map, the token as a JSON string.
        3 => STANDARD.encode(json!({ "token": body, "client_id": "x" }).to_string()),
        // The token as a JSON object inside the map, URL-safe alphabet.
        4 => URL_SAFE_NO_PAD.encode(format!(r#"{{"token":{body}}}"#)),
        // The map's text as the fuzzer wrote it.
        _ => STANDARD_NO_PAD.encode(body.as_bytes()),
    }
}

/// The texts the blob parser may look at for `paste`, decoded every way it
/// decodes them: the secrets the paste carried are runs inside these.
fn blob_texts(paste: &str) -> Vec<String> {
    let mut texts = vec![paste.to_string()];
    let mut body = paste;
    if let Some(i) = body.find("--->") {
        body = &body[i + 4..];
    }
    if let Some(i) = body.find("<---") {
        body = &body[..i];
    }
    let joined: String = body.chars().filter(|c| *c != '\n' && *c != '\r').collect();
    let joined = joined.trim().to_string();
    for bytes in [B64_STANDARD.decode(&joined), B64_URL_SAFE.decode(&joined)]
        .into_iter()
        .flatten()
    {
        texts.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    texts.push(joined);
    let mut strings = Vec::new();
    for text in &texts {
        if let Ok(value) = serde_json::from_str::<Value>(text.trim()) {
            json_strings(&value, &mut strings);
        }
    }
    texts.extend(strings);
    texts
}

/// Display and Debug of every `BlobError`, with every field name and
/// expectation it is built with: the texts that say nothing about the input.
fn blob_error_texts() -> String {
    let mut all = vec![
        BlobError::Empty,
        BlobError::NotRecognised,
        BlobError::InvalidJson { column: 0 },
        BlobError::NotAnObject,
        BlobError::MissingAccessToken,
        BlobError::BadExpiry,
        BlobError::ConfigWithoutToken,
    ];
    for field in [
        "access_token",
        "token_type",
        "refresh_token",
        "expiry",
        "expires_in",
        "token",
    ] {
        for expected in ["a string", "a whole number of seconds", "a JSON string"] {
            all.push(BlobError::WrongType { field, expected });
        }
    }
    all.iter()
        .map(|e| format!("{e}\n{e:?}\n{e:#?}\n"))
        .collect()
}

/// `TokenBlob::parse` on every paste form: it never panics, no error's
/// Display or Debug contains a token-like string the paste carried, a
/// parsed blob's Debug shows no token, and a parsed blob's `to_json` parses
/// back to the same blob.
pub fn check_blob_parse(data: &[u8]) {
    let paste = blob_paste(data);
    match TokenBlob::parse(&paste) {
        Err(err) => {
            let printed = format!("{err} {err:?} {err:#?}");
            let fixed = blob_error_texts();
            for text in blob_texts(&paste) {
                for secret in secret_runs(&text) {
                    assert!(
                        fixed.contains(secret) || !printed.contains(secret),
                        "the error {printed:?} echoes {secret:?} from the paste {paste:?}"
                    );
                }
            }
        }
        Ok(blob) => {
            let debug = format!("{blob:?}");
            let shown = [
                blob.token_type.clone().unwrap_or_default(),
                format!("{:?}", blob.token_type),
                format!("{:?}", blob.expiry),
            ]
            .concat();
            let secrets = std::iter::once(blob.access_token.expose())
                .chain(blob.refresh_token.as_ref().map(|s| s.expose()));
            for secret in secrets {
                for run in secret_runs(secret) {
                    assert!(
                        shown.contains(run) || !debug.contains(run),
                        "the blob's Debug {debug:?} shows a token"
                    );
                }
            }
            let json = blob.to_json();
            assert_eq!(
                TokenBlob::parse(&json).as_ref(),
                Ok(&blob),
                "to_json gave {json:?}, which does not parse back (paste {paste:?})"
            );
        }
    }
}

// ------------------------------------------------------------ callback_query

/// The `state` the callback fuzz target's run "sent".
pub const CALLBACK_STATE: &str = "fz-state_0123456789abcdef";

/// `interpret` (even first byte) or `interpret_pasted` (odd) with a fixed
/// state: never panics; a code or a provider error only when the query
/// carried exactly one `state`, equal to ours, and the code or error it
/// returns is the one sent; a well-formed callback of this run is believed.
pub fn check_callback_query(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let input = String::from_utf8_lossy(rest);
    let (result, query) = if mode % 2 == 0 {
        (interpret(&input, CALLBACK_STATE), &*input)
    } else {
        let line = input.trim();
        let query = line.split_once('?').map_or(line, |(_, q)| q);
        let query = query.split('#').next().unwrap_or_default();
        (interpret_pasted(&input, CALLBACK_STATE), query)
    };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let values = |key: &str| -> Vec<&str> {
        pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let (states, codes, errors) = (values("state"), values("code"), values("error"));
    let descriptions = values("error_description");
    let ours = states == [CALLBACK_STATE];
    match &result {
        Callback::Code(code) => {
            assert!(ours, "a code without our state from {query:?}");
            assert_eq!(codes, [code.expose()], "{query:?}");
            assert!(!code.is_empty() && errors.is_empty(), "{query:?}");
        }
        Callback::ProviderError { error, description } => {
            assert!(ours, "a provider error without our state from {query:?}");
            assert_eq!(errors.len(), 1, "{query:?}");
            for text in std::iter::once(error).chain(description) {
                assert!(!text.chars().any(char::is_control), "{text:?}");
                assert!(text.chars().count() <= 300, "{text:?}");
            }
        }
        Callback::Rejected(_) => {
            let unique = [&states, &codes, &errors, &descriptions]
                .iter()
                .all(|v| v.len() <= 1);
            let genuine = !errors.is_empty() || codes.first().is_some_and(|c| !c.is_empty());
            assert!(
                !(ours && unique && genuine),
                "a genuine callback was rejected: {query:?} gave {result:?}"
            );
        }
    }
}

// ------------------------------------------------------------ path_normalise

/// The connection root the path fuzz target uses.
pub const PATH_ROOT: &str = "/root";

/// `RemotePath::new(Some("/root"), input)`: never panics; an accepted path
/// starts with the root's segment, its segments are plain names (not
/// empty, `.` or `..`, no `/`, NUL, backslash or control character, not only
/// spaces), and its client path parses back to the same path.
pub fn check_path_normalise(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let path = match RemotePath::new(Some(PATH_ROOT), &input) {
        Ok(path) => path,
        Err(err) => {
            let _ = format!("{err} {err:?}");
            return;
        }
    };
    let segments = path.segments();
    assert_eq!(
        segments.first().map(String::as_str),
        Some("root"),
        "{input:?}"
    );
    for s in segments {
        assert!(
            !s.is_empty() && s != "." && s != "..",
            "{input:?} gave {s:?}"
        );
        assert!(!s.contains(['/', '\\', '\0']), "{input:?} gave {s:?}");
        assert!(!s.chars().any(char::is_control), "{input:?} gave {s:?}");
        assert!(!s.trim().is_empty(), "{input:?} gave {s:?}");
    }
    assert!(path.account_path().starts_with("/root"), "{input:?}");
    let again = RemotePath::new(Some(PATH_ROOT), &path.client_path());
    assert_eq!(again.as_ref(), Ok(&path), "{input:?}");
    if let Some(parent) = path.parent() {
        assert_eq!(parent.segments().first(), segments.first());
        let name = path.name().expect("a path with a parent has a name");
        assert_eq!(parent.child(name).as_ref(), Ok(&path), "{input:?}");
    } else {
        assert!(path.is_root() && path.name().is_none(), "{input:?}");
    }
}

// --------------------------------------------------------------- dropbox_arg

/// `dropbox_arg` with the input as a path inside a JSON object (and as a
/// key): the header is pure printable ASCII, so a valid HTTP header value,
/// and a JSON parser gives back the same value.
pub fn check_dropbox_arg(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut values = vec![json!({ "path": &*text, "mode": "add" })];
    // serde_json (with its `raw_value` feature, which the workspace enables)
    // reads an object whose only key is its private RawValue marker as a
    // raw value, so that one key cannot round-trip through any `Value`,
    // whatever the escaper does.
    if !text.starts_with("$serde_json::private::") {
        values.push(json!({ &*text: [&*text, 1] }));
    }
    for value in values {
        let header = dropbox_arg(&value);
        assert!(
            header.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "not printable ASCII: {header:?}"
        );
        let back: Value =
            serde_json::from_str(&header).unwrap_or_else(|e| panic!("{header:?} is not JSON: {e}"));
        assert_eq!(back, value, "{header:?}");
    }
}

// ------------------------------------------------------------- record_decode

/// The vault key of the record fuzz target.
pub const RECORD_KEY: [u8; 32] = *b"token-vault fuzzing key 32 bytes";
/// The connection the record fuzz target opens.
pub const RECORD_NAME: &str = "box";

/// Seals `plaintext` the way `RecordCodec::seal` lays records out (magic,
/// nonce, AES-256-GCM with the name as associated data), so the fuzzer can
/// reach the JSON layer behind the AEAD. The nonce is fixed: fine for a
/// fuzzer, never for real data. If the codec's layout changes,
/// [`check_record_decode`] fails at once on every such input.
pub fn seal_for_fuzzing(name: &str, plaintext: &[u8]) -> Vec<u8> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &RECORD_KEY).expect("32 bytes"));
    let nonce = [7u8; NONCE_LEN];
    let mut aad = b"token-vault record v1\0".to_vec();
    aad.extend_from_slice(name.as_bytes());
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&nonce);
    let mut body = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut body,
    )
    .expect("sealing cannot fail");
    out.extend_from_slice(&body);
    out
}

/// `RecordCodec::open` with a fixed key. First byte even: the rest is the
/// stored bytes. Odd: the rest is the record's plaintext, sealed first.
/// Never panics; what opens is a record of this connection and layout that
/// seals and opens again to itself; an error never shows a token-like
/// string of the plaintext (other than within the record's name, which the
/// wrong-connection error names on purpose).
pub fn check_record_decode(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let codec = RecordCodec::new(&VaultKey::from_bytes(RECORD_KEY));
    let plaintext = (mode % 2 == 1).then_some(rest);
    let sealed = match plaintext {
        Some(plain) => seal_for_fuzzing(RECORD_NAME, plain),
        None => rest.to_vec(),
    };
    match codec.open(RECORD_NAME, &sealed) {
        Ok(record) => {
            check_opened(&codec, &record);
        }
        Err(err) => {
            let Some(plain) = plaintext else {
                return;
            };
            assert!(
                matches!(err, RecordError::Format(_)),
                "bytes sealed like the codec seals did not decrypt ({err:?}): \
                 has the record layout changed? Update seal_for_fuzzing."
            );
            let printed = format!("{err} {err:?} {err:#?}");
            let plain = String::from_utf8_lossy(plain);
            let name = serde_json::from_str::<Value>(&plain)
                .ok()
                .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_string))
                .map(|n| format!("{n} {n:?}"))
                .unwrap_or_default();
            let mut texts = vec![plain.to_string()];
            if let Ok(value) = serde_json::from_str::<Value>(&plain) {
                json_strings(&value, &mut texts);
            }
            let fixed = record_error_texts();
            for text in &texts {
                for secret in secret_runs(text) {
                    assert!(
                        name.contains(secret)
                            || fixed.contains(secret)
                            || !printed.contains(secret),
                        "the error {printed:?} shows {secret:?} from the plaintext"
                    );
                }
            }
        }
    }
}

/// Display and Debug of the codec's fixed errors and the fixed parts of
/// its `Format` messages.
fn record_error_texts() -> String {
    let all = [
        RecordError::BadMagic,
        RecordError::Decrypt,
        RecordError::Format("Syntax Data Eof Io error at line 0, column 0".into()),
        RecordError::Format(format!(
            "layout version 0 is newer than this build understands ({RECORD_VERSION}); \
             upgrade token-vault"
        )),
        RecordError::Format(format!("it holds the connection \"\", not {RECORD_NAME:?}")),
        RecordError::Io(String::new()),
    ];
    all.iter()
        .map(|e| format!("{e}\n{e:?}\n{e:#?}\n"))
        .collect()
}

fn check_opened(codec: &RecordCodec, record: &Record) {
    assert_eq!(record.name, RECORD_NAME);
    assert!(record.version <= RECORD_VERSION);
    let resealed = codec.seal(record).expect("an opened record seals");
    assert_eq!(codec.open(RECORD_NAME, &resealed).as_ref(), Ok(record));
}

// --------------------------------------------------------------------- seeds

/// A valid record of [`RECORD_NAME`], as the store writes it.
pub fn sample_record() -> Record {
    use chrono::{TimeZone, Utc};
    use shared::{EndpointOverrides, ProviderKind, Secret};
    use vault_server::record::Tokens;
    Record {
        version: RECORD_VERSION,
        name: RECORD_NAME.into(),
        provider: ProviderKind::Box,
        endpoints: EndpointOverrides {
            token_url: Some("http://127.0.0.1:9/token".into()),
            ..Default::default()
        },
        client_id: "client-id-box".into(),
        client_secret: Some(Secret::new("client-secret-0123456789abcdef")),
        tokens: Tokens {
            access_token: Secret::new("access-token-0123456789abcdefghij"),
            token_type: "bearer".into(),
            refresh_token: Some(Secret::new("refresh-token-0123456789abcdefghij")),
            expires_at: Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).single(),
            lifetime_secs: Some(3600),
        },
        root: Some("/backups".into()),
        transfer: Default::default(),
        allow_uids: vec![1000],
        allow_gids: vec![100],
        needs_reauth: None,
        last_error: Some("the provider said no".into()),
        created_at: Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap(),
        last_refresh: None,
        refresh_token_issued_at: Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).single(),
        refreshes: 3,
    }
}

/// Hand-written starting inputs for each target: every paste form, genuine
/// and forged callbacks, path tricks, awkward Unicode, and a valid sealed
/// record (so the fuzzer starts past the AEAD) and its plaintext.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let at = "sl.AbCdEf-access-token_0123456789";
    let rt = "refresh-token-9876543210";
    let full = format!(
        r#"{{"access_token":"{at}","token_type":"bearer","refresh_token":"{rt}","expiry":"2017-07-08T23:40:08.059167677+01:00","expires_in":3600}}"#
    );
    let legacy = format!(
        r#"{{"AccessToken":"{at}","TokenType":"Bearer","RefreshToken":"{rt}","Expiry":"0001-01-01T00:00:00Z"}}"#
    );
    let config = json!({ "token": full, "client_id": "abc" }).to_string();
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut blob = |form: u8, body: &str| {
        let mut data = vec![form];
        data.extend_from_slice(body.as_bytes());
        out.push(("blob_parse", data));
    };
    for form in 0..6 {
        blob(form, &full);
    }
    blob(0, &legacy);
    blob(
        0,
        &format!("{RCLONE_START_MARKER}\n{full}\n{RCLONE_END_MARKER}\n"),
    );
    blob(4, &legacy);
    blob(5, &config);
    blob(6 * 16 + 2, &full);
    blob(0, &format!(r#"{{"access_token":"{at}","expiry":"{rt}"}}"#));
    blob(0, &format!(r#"{{"access_token":"{at}","expires_in":"x"}}"#));
    blob(0, &format!(r#"{{"access_token":"{at}""#));
    // rclone's markers inside a token, which only base64 pastes can carry.
    blob(3, &format!(r#"{{"access_token":"{at}--->x<---y&z"}}"#));

    let s = CALLBACK_STATE;
    for (mode, q) in [
        (0, format!("code=abc%2F1&state={s}&extra=1")),
        (
            0,
            format!("error=access_denied&error_description=No+way%0A&state={s}"),
        ),
        (0, "code=x&state=other".to_string()),
        (0, format!("code=x&code=y&state={s}")),
        (
            1,
            format!("  http://127.0.0.1:53682/?state={s}&code=abc#_=_ "),
        ),
        (1, format!("?code=abc&state={s}")),
    ] {
        let mut data = vec![mode];
        data.extend_from_slice(q.as_bytes());
        out.push(("callback_query", data));
    }

    for p in [
        "//a///b/",
        "/a/../../etc",
        "a\\..\\b",
        "/.hidden/my file.txt",
        "/ünïcødé/😀",
        "/a/ /b",
        "/x\0y",
    ] {
        out.push(("path_normalise", p.as_bytes().to_vec()));
    }

    for s in [
        "/Ünïcødé/日本/😀 \u{7f} tab\t\"q\"\\",
        "/plain/ascii.txt",
        "\u{2028}\u{ffff}\u{10ffff}",
    ] {
        out.push(("dropbox_arg", s.as_bytes().to_vec()));
    }

    let record = sample_record();
    let codec = RecordCodec::new(&VaultKey::from_bytes(RECORD_KEY));
    let mut sealed = vec![0u8];
    sealed.extend(codec.seal(&record).expect("the sample record seals"));
    out.push(("record_decode", sealed));
    let mut plain = vec![1u8];
    plain.extend(serde_json::to_vec(&record).expect("the sample record serialises"));
    out.push(("record_decode", plain));
    out.push(("record_decode", b"\x00TVR1".to_vec()));
    out
}
