//! The token blob: what `oauth-authorize` (and `rclone authorize`) prints on
//! a workstation and what `token-vault import` reads on a server.
//!
//! Invariant: parsing accepts every paste form of `spec/token-blob.md` and
//! nothing else, and no error it returns ever contains any part of the
//! input, since the input is a token. Serialising gives exactly the JSON that
//! Go's `oauth2.Token` (and so rclone) writes.

use crate::secret::Secret;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// The line rclone prints before the blob.
pub const RCLONE_START_MARKER: &str = "Paste the following into your remote machine --->";
/// The line rclone prints after the blob.
pub const RCLONE_END_MARKER: &str = "<---End paste";

/// Go's zero `time.Time`, which rclone writes when a token has no expiry.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `t` as Go's `time.RFC3339Nano` writes it (which rclone's blob uses):
/// nanoseconds with trailing zeros trimmed, no fraction at all on a whole
/// second, and `Z` for a zero offset.
fn go_rfc3339_nano(t: &DateTime<FixedOffset>) -> String {
    let full = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
    // The fraction is the 9 digits after the seconds' `.` (byte 19).
    match full.get(20..29) {
        Some(digits) if full.as_bytes().get(19) == Some(&b'.') => {
            let kept = digits.trim_end_matches('0');
            let dot = if kept.is_empty() { "" } else { "." };
            format!("{}{dot}{kept}{}", &full[..19], &full[29..])
        }
        _ => full,
    }
}

/// What every parse error ends with, so the user knows what to paste instead.
const EXPECTED: &str =
    "expected the one-line JSON printed by `oauth-authorize` or `rclone authorize` \
     (marker lines may be included), or rclone's base64 config string";

/// A parsed token blob. Field names follow rclone's; `Debug` never shows a token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBlob {
    pub access_token: Secret,
    /// `bearer`, usually; absent in some pastes.
    pub token_type: Option<String>,
    /// Absent for client-credentials grants and for providers without offline access.
    pub refresh_token: Option<Secret>,
    /// When the access token expires, as written by the workstation (its clock, its offset).
    pub expiry: Option<DateTime<FixedOffset>>,
    /// The lifetime the provider granted, in seconds, when the blob carries it.
    pub expires_in: Option<i64>,
}

/// Why a paste is not a token blob. Messages never quote the input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlobError {
    #[error("the paste is empty: {EXPECTED}")]
    Empty,
    #[error("the paste is not a token blob: {EXPECTED}")]
    NotRecognised,
    #[error("the token blob is not valid JSON (the error is at character {column}); paste the whole blob: {EXPECTED}")]
    InvalidJson { column: usize },
    #[error("the token blob is JSON but not an object: {EXPECTED}")]
    NotAnObject,
    #[error("the token blob has no `access_token` field: {EXPECTED}")]
    MissingAccessToken,
    #[error("the token blob's `{field}` field has the wrong type (expected {expected})")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("the token blob's `expiry` is not an RFC 3339 time such as 2025-01-02T03:04:05.123456789+01:00")]
    BadExpiry,
    #[error("the base64 paste decodes to an rclone config without a `token` entry: {EXPECTED}")]
    ConfigWithoutToken,
}

impl TokenBlob {
    /// Parses any paste form: bare JSON, rclone's marker lines, terminal line
    /// breaks, the capitalised legacy form, or rclone's base64 config map.
    pub fn parse(paste: &str) -> Result<TokenBlob, BlobError> {
        let body = strip_markers(paste);
        // Terminals wrap long lines; a token never contains a line break.
        let body: String = body.chars().filter(|c| *c != '\n' && *c != '\r').collect();
        let body = body.trim();
        if body.is_empty() {
            return Err(BlobError::Empty);
        }
        if body.starts_with('{') {
            return Self::from_json_text(body);
        }
        let map = decode_config_map(body).ok_or(BlobError::NotRecognised)?;
        match map.get("token") {
            Some(Value::String(inner)) => Self::from_json_text(inner.trim()),
            Some(Value::Object(obj)) => Self::from_object(obj),
            Some(_) => Err(BlobError::WrongType {
                field: "token",
                expected: "a JSON string",
            }),
            None => Err(BlobError::ConfigWithoutToken),
        }
    }

    fn from_json_text(text: &str) -> Result<TokenBlob, BlobError> {
        // serde_json's messages can quote the input, so keep only the position.
        let value: Value = serde_json::from_str(text)
            .map_err(|e| BlobError::InvalidJson { column: e.column() })?;
        match value {
            Value::Object(obj) => Self::from_object(&obj),
            _ => Err(BlobError::NotAnObject),
        }
    }

    fn from_object(obj: &Map<String, Value>) -> Result<TokenBlob, BlobError> {
        let access_token = string_field(obj, "access_token", "AccessToken")?
            .filter(|s| !s.is_empty())
            .ok_or(BlobError::MissingAccessToken)?;
        let token_type = string_field(obj, "token_type", "TokenType")?.filter(|s| !s.is_empty());
        let refresh_token =
            string_field(obj, "refresh_token", "RefreshToken")?.filter(|s| !s.is_empty());
        let expiry = match string_field(obj, "expiry", "Expiry")? {
            None => None,
            Some(text) => parse_expiry(&text)?,
        };
        let expires_in = match obj.get("expires_in") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or(BlobError::WrongType {
                field: "expires_in",
                expected: "a whole number of seconds",
            })?),
        };
        Ok(TokenBlob {
            access_token: Secret::new(access_token),
            token_type,
            refresh_token: refresh_token.map(Secret::new),
            expiry,
            expires_in: expires_in.filter(|n| *n != 0),
        })
    }

    /// The blob as one line of JSON, exactly as Go's `oauth2.Token` marshals
    /// it: `expiry` is always present (Go's zero time when unknown), the
    /// others are omitted when empty.
    pub fn to_json(&self) -> String {
        /// Go's `oauth2.Token` field order and `omitempty` rules.
        #[derive(serde::Serialize)]
        struct GoToken<'a> {
            access_token: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            token_type: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            refresh_token: Option<&'a str>,
            expiry: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            expires_in: Option<i64>,
        }
        let go = GoToken {
            access_token: self.access_token.expose(),
            token_type: self.token_type.as_deref(),
            refresh_token: self.refresh_token.as_ref().map(Secret::expose),
            expiry: match &self.expiry {
                Some(e) => go_rfc3339_nano(e),
                None => GO_ZERO_TIME.to_string(),
            },
            expires_in: self.expires_in,
        };
        // Serialising strings and integers cannot fail.
        let json = serde_json::to_string(&go).unwrap_or_default();
        // Go's encoding/json also escapes these (they can only be inside
        // strings here). Escaping `<` and `>` also keeps a token holding
        // `--->` or `<---` from reading as rclone's marker lines when pasted.
        json.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
            .replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029")
    }

    /// The blob between rclone's marker lines, as `rclone authorize` prints it.
    pub fn to_rclone_paste(&self) -> String {
        format!(
            "{RCLONE_START_MARKER}\n{}\n{RCLONE_END_MARKER}",
            self.to_json()
        )
    }

    /// The expiry in UTC, if known.
    pub fn expiry_utc(&self) -> Option<DateTime<Utc>> {
        self.expiry.map(|e| e.with_timezone(&Utc))
    }
}

/// Keeps what lies between rclone's marker lines, if they are there.
fn strip_markers(paste: &str) -> &str {
    let mut body = paste;
    // The start marker ends with "--->"; take what follows it.
    if let Some(i) = body.find("--->") {
        body = &body[i + "--->".len()..];
    }
    if let Some(i) = body.find("<---") {
        body = &body[..i];
    }
    body
}

/// Reads a field under its rclone name or its capitalised legacy name.
fn string_field(
    obj: &Map<String, Value>,
    name: &'static str,
    legacy: &'static str,
) -> Result<Option<String>, BlobError> {
    match obj.get(name).or_else(|| obj.get(legacy)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(BlobError::WrongType {
            field: name,
            expected: "a string",
        }),
    }
}

fn parse_expiry(text: &str) -> Result<Option<DateTime<FixedOffset>>, BlobError> {
    let parsed = DateTime::parse_from_rfc3339(text.trim()).map_err(|_| BlobError::BadExpiry)?;
    // Go's zero time (in any offset) means "no known expiry".
    if parsed.with_timezone(&Utc).timestamp() <= GO_ZERO_TIME_UNIX + 86_400 {
        return Ok(None);
    }
    Ok(Some(parsed))
}

/// `0001-01-01T00:00:00Z` as a Unix timestamp.
const GO_ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// Decodes rclone's base64 config map (standard or URL-safe alphabet, with
/// or without padding) into its JSON object.
fn decode_config_map(text: &str) -> Option<Map<String, Value>> {
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .ok()?;
    match serde_json::from_slice::<Value>(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: &str = "sl.AbCdEf-access-token_0123456789";
    const RT: &str = "refresh-token-9876543210";

    fn rclone_json() -> String {
        format!(
            r#"{{"access_token":"{AT}","token_type":"bearer","refresh_token":"{RT}","expiry":"2017-07-08T23:40:08.059167677+01:00","expires_in":3600}}"#
        )
    }

    fn assert_full(blob: &TokenBlob) {
        assert_eq!(blob.access_token.expose(), AT);
        assert_eq!(blob.refresh_token.as_ref().map(Secret::expose), Some(RT));
        assert_eq!(blob.token_type.as_deref(), Some("bearer"));
        let expiry = blob.expiry.expect("expiry");
        assert_eq!(
            expiry.to_rfc3339_opts(SecondsFormat::Nanos, true),
            "2017-07-08T23:40:08.059167677+01:00"
        );
    }

    #[test]
    fn expiry_is_written_as_go_writes_it() {
        let at = |text: &str| DateTime::parse_from_rfc3339(text).expect("time");
        for (input, go) in [
            (
                "2017-07-08T23:40:08.059167677+01:00",
                "2017-07-08T23:40:08.059167677+01:00",
            ),
            (
                "2017-07-08T23:40:08.500+01:00",
                "2017-07-08T23:40:08.5+01:00",
            ),
            ("2017-07-08T23:40:08.000+01:00", "2017-07-08T23:40:08+01:00"),
            (
                "2017-07-08T23:40:08.12-05:30",
                "2017-07-08T23:40:08.12-05:30",
            ),
            ("2017-07-08T23:40:08.000001Z", "2017-07-08T23:40:08.000001Z"),
            ("2017-07-08T23:40:08+00:00", "2017-07-08T23:40:08Z"),
        ] {
            assert_eq!(go_rfc3339_nano(&at(input)), go, "{input}");
        }
    }

    #[test]
    fn bare_json() {
        let blob = TokenBlob::parse(&rclone_json()).unwrap();
        assert_full(&blob);
        assert_eq!(blob.expires_in, Some(3600));
    }

    #[test]
    fn rclone_markers_and_whitespace() {
        let paste = format!(
            "\n  {RCLONE_START_MARKER}\n{}\n{RCLONE_END_MARKER}\n\n",
            rclone_json()
        );
        assert_full(&TokenBlob::parse(&paste).unwrap());
        // Markers on the same line as the blob, as some terminals copy them.
        let paste = format!(
            "{RCLONE_START_MARKER} {} {RCLONE_END_MARKER}",
            rclone_json()
        );
        assert_full(&TokenBlob::parse(&paste).unwrap());
    }

    #[test]
    fn terminal_line_breaks_inside_tokens() {
        let json = rclone_json();
        let wrapped: String = json
            .as_bytes()
            .chunks(17)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\r\n");
        assert_full(&TokenBlob::parse(&wrapped).unwrap());
    }

    #[test]
    fn capitalised_legacy_form() {
        let paste = format!(
            r#"{{"AccessToken":"{AT}","TokenType":"bearer","RefreshToken":"{RT}","Expiry":"2017-07-08T23:40:08.059167677+01:00"}}"#
        );
        let blob = TokenBlob::parse(&paste).unwrap();
        assert_full(&blob);
        assert_eq!(blob.expires_in, None);
    }

    #[test]
    fn base64_config_map_every_alphabet_and_padding() {
        let map = serde_json::json!({"token": rclone_json(), "client_id": "abc"}).to_string();
        // Pad the map so its base64 needs padding and uses both '+/' style chars.
        for extra in ["", " ", "  "] {
            let bytes = format!("{map}{extra}").into_bytes();
            for engine in [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::STANDARD_NO_PAD,
                base64::engine::general_purpose::URL_SAFE,
                base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ] {
                let encoded = engine.encode(&bytes);
                assert_full(&TokenBlob::parse(&encoded).unwrap());
                let marked = format!("{RCLONE_START_MARKER}\n{encoded}\n{RCLONE_END_MARKER}\n");
                assert_full(&TokenBlob::parse(&marked).unwrap());
            }
        }
    }

    #[test]
    fn url_safe_only_characters_decode() {
        // Bytes chosen so standard base64 would contain '+' and '/'.
        let map =
            serde_json::json!({"token": rclone_json(), "x": "\u{fbff}\u{fbff}>>>???"}).to_string();
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(map);
        assert!(encoded.contains('-') || encoded.contains('_'));
        assert_full(&TokenBlob::parse(&encoded).unwrap());
    }

    #[test]
    fn expiry_offsets_and_go_zero_time() {
        for (text, unix) in [
            ("2030-01-01T00:00:00Z", Some(1_893_456_000)),
            ("2030-01-01T05:30:00+05:30", Some(1_893_456_000)),
            ("2029-12-31T19:00:00.5-05:00", Some(1_893_456_000)),
            ("0001-01-01T00:00:00Z", None),
            ("0001-01-01T01:00:00+01:00", None),
        ] {
            let paste = format!(r#"{{"access_token":"{AT}","expiry":"{text}"}}"#);
            let blob = TokenBlob::parse(&paste).unwrap();
            assert_eq!(blob.expiry_utc().map(|e| e.timestamp()), unix, "{text}");
        }
        let no_expiry = TokenBlob::parse(&format!(r#"{{"access_token":"{AT}"}}"#)).unwrap();
        assert_eq!(no_expiry.expiry, None);
        assert_eq!(no_expiry.refresh_token, None);
    }

    #[test]
    fn serialises_exactly_like_go_oauth2() {
        let blob = TokenBlob::parse(&rclone_json()).unwrap();
        assert_eq!(blob.to_json(), rclone_json());
        let bare = TokenBlob::parse(&format!(r#"{{"access_token":"{AT}"}}"#)).unwrap();
        assert_eq!(
            bare.to_json(),
            format!(r#"{{"access_token":"{AT}","expiry":"0001-01-01T00:00:00Z"}}"#)
        );
        let utc = TokenBlob::parse(&format!(
            r#"{{"access_token":"{AT}","expiry":"2030-01-01T00:00:00Z"}}"#
        ))
        .unwrap();
        assert!(utc.to_json().contains(r#""expiry":"2030-01-01T00:00:00Z""#));
        let paste = blob.to_rclone_paste();
        assert!(paste.starts_with(RCLONE_START_MARKER));
        assert_eq!(TokenBlob::parse(&paste).unwrap(), blob);
    }

    #[test]
    fn malformed_inputs_are_refused_without_echo() {
        let cases: Vec<(String, BlobError)> = vec![
            (String::new(), BlobError::Empty),
            (
                format!("{RCLONE_START_MARKER}\n\n{RCLONE_END_MARKER}"),
                BlobError::Empty,
            ),
            (format!("{AT} {RT}"), BlobError::NotRecognised),
            (
                format!(r#"{{"access_token":"{AT}""#),
                BlobError::InvalidJson { column: 51 },
            ),
            (
                format!(r#"{{"access_token":{AT}}}"#),
                BlobError::InvalidJson { column: 17 },
            ),
            (
                format!(r#"{{"refresh_token":"{RT}"}}"#),
                BlobError::MissingAccessToken,
            ),
            (
                r#"{"access_token":""}"#.to_string(),
                BlobError::MissingAccessToken,
            ),
            (
                format!(r#"{{"access_token":["{AT}"]}}"#),
                BlobError::WrongType {
                    field: "access_token",
                    expected: "a string",
                },
            ),
            (
                format!(r#"{{"access_token":"{AT}","expiry":"{RT}"}}"#),
                BlobError::BadExpiry,
            ),
            (
                format!(r#"{{"access_token":"{AT}","expires_in":"{RT}"}}"#),
                BlobError::WrongType {
                    field: "expires_in",
                    expected: "a whole number of seconds",
                },
            ),
            (
                base64::engine::general_purpose::STANDARD
                    .encode(format!(r#"{{"client_id":"{AT}"}}"#)),
                BlobError::ConfigWithoutToken,
            ),
            (
                base64::engine::general_purpose::STANDARD.encode(format!("[\"{AT}\"]")),
                BlobError::NotRecognised,
            ),
        ];
        for (paste, expected) in cases {
            let err = TokenBlob::parse(&paste).unwrap_err();
            let message = err.to_string();
            let debug = format!("{err:?}");
            for secret in [AT, RT] {
                assert!(!message.contains(secret), "{message}");
                assert!(!debug.contains(secret), "{debug}");
            }
            assert_eq!(err, expected, "for paste {paste:?}");
        }
    }

    #[test]
    fn to_json_escapes_like_go_so_markers_in_tokens_round_trip() {
        // Caught by the blob_parse fuzz property: a token holding `--->` (here
        // from a base64 config paste) was printed as is, and the printed
        // blob then parsed as the text after a marker.
        let map = serde_json::json!({"token": r#"{"access_token":"a--->b<---c&d\u2028e\u2029"}"#});
        let paste = base64::engine::general_purpose::STANDARD.encode(map.to_string());
        let blob = TokenBlob::parse(&paste).unwrap();
        assert_eq!(blob.access_token.expose(), "a--->b<---c&d\u{2028}e\u{2029}");
        let json = blob.to_json();
        assert!(
            json.starts_with(r#"{"access_token":"a---\u003eb\u003c---c\u0026d\u2028e\u2029","#),
            "{json}"
        );
        assert_eq!(TokenBlob::parse(&json).unwrap(), blob);
        assert_eq!(TokenBlob::parse(&blob.to_rclone_paste()).unwrap(), blob);
    }

    #[test]
    fn debug_of_a_blob_redacts() {
        let blob = TokenBlob::parse(&rclone_json()).unwrap();
        let debug = format!("{blob:?}");
        assert!(!debug.contains(AT) && !debug.contains(RT), "{debug}");
    }
}
