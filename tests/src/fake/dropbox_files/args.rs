//! How Dropbox calls carry their arguments and answers, for every route:
//! the argument of an RPC call (a JSON body) and of a content call (the
//! pure-ASCII `Dropbox-API-Arg` header), reading its fields (with errors
//! that say where the argument came from, a [`Place`]), the bearer-token
//! check, and the answers: JSON, the 409 with `error_summary` and a tagged
//! `error`, and the 500 for a storage failure.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::fake::api::{
    bearer_token, dropbox_auth_error, dropbox_bad_request, dropbox_missing_auth,
};
use crate::fake::storage::Blob;
use crate::fake::{AccessCheck, State};

/// A 409 with Dropbox's error shape.
pub(super) fn conflict(summary: &str, error: Value) -> Response {
    (
        StatusCode::CONFLICT,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "error_summary": format!("{summary}/.."), "error": error }).to_string(),
    )
        .into_response()
}

pub(super) fn json_ok(body: &Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(super) fn internal(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("fake provider storage error: {e}"),
    )
        .into_response()
}

/// JSON with every code point from U+007F up escaped as `\uXXXX` (UTF-16,
/// surrogate pairs above U+FFFF), as HTTP headers need.
pub(super) fn ascii_json(value: &Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if (c as u32) < 0x7f {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

pub(super) fn check_auth(st: &State, headers: &HeaderMap, function: &str) -> Result<(), Response> {
    let Some(token) = bearer_token(headers) else {
        return Err(dropbox_missing_auth(function));
    };
    match st.check_access(token) {
        AccessCheck::Valid(_) => Ok(()),
        check => Err(dropbox_auth_error(&check)),
    }
}

pub(super) fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

pub(super) fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_cors_hack(content_type: &str) -> bool {
    content_type
        .replace(' ', "")
        .eq_ignore_ascii_case("text/plain;charset=dropbox-cors-hack")
}

/// Where an argument comes from, for error messages.
#[derive(Clone, Copy)]
pub(super) struct Place {
    pub(super) function: &'static str,
    /// `request body` or `HTTP header "Dropbox-API-Arg"`.
    origin: &'static str,
}

impl Place {
    pub(super) fn rpc(function: &'static str) -> Place {
        Place {
            function,
            origin: "request body",
        }
    }

    pub(super) fn content(function: &'static str) -> Place {
        Place {
            function,
            origin: "HTTP header \"Dropbox-API-Arg\"",
        }
    }

    pub(super) fn bad(&self, problem: impl std::fmt::Display) -> Response {
        dropbox_bad_request(self.function, &format!("{}: {problem}", self.origin))
    }
}

/// An RPC call's argument: a JSON object body with
/// `Content-Type: application/json`.
pub(super) fn rpc_arg(
    place: Place,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Map<String, Value>, Response> {
    let ct = content_type(headers);
    if essence(ct) != "application/json" && !is_cors_hack(ct) {
        return Err(dropbox_bad_request(
            place.function,
            &format!(
                "Bad HTTP \"Content-Type\" header: \"{ct}\".  Expecting one of \
                 \"application/json\", \"application/json; charset=utf-8\", \
                 \"text/plain; charset=dropbox-cors-hack\"."
            ),
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(place.bad("could not decode input as JSON")),
    }
}

/// A content call's argument: the `Dropbox-API-Arg` header, pure ASCII
/// JSON.
pub(super) fn content_arg(
    place: Place,
    headers: &HeaderMap,
) -> Result<Map<String, Value>, Response> {
    let Some(raw) = headers.get("dropbox-api-arg") else {
        return Err(dropbox_bad_request(
            place.function,
            "Must provide HTTP header \"Dropbox-API-Arg\" or URL parameter \"arg\".",
        ));
    };
    let text = match raw.to_str() {
        Ok(text) if text.is_ascii() => text,
        _ => {
            return Err(place.bad(
                "could not decode input as JSON: the header must be ASCII (escape \
                 non-ASCII characters as \\uXXXX)",
            ))
        }
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(place.bad("could not decode input as JSON")),
    }
}

/// The `Content-Type` of an upload: raw bytes.
pub(super) fn check_upload_content_type(
    function: &str,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let ct = content_type(headers);
    if essence(ct) == "application/octet-stream" || is_cors_hack(ct) {
        return Ok(());
    }
    Err(dropbox_bad_request(
        function,
        &format!(
            "Bad HTTP \"Content-Type\" header: \"{ct}\".  Expecting one of \
             \"application/octet-stream\", \"text/plain; charset=dropbox-cors-hack\"."
        ),
    ))
}

pub(super) fn get_bool(
    map: &Map<String, Value>,
    field: &str,
    place: Place,
) -> Result<bool, Response> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(place.bad(format!("{field}: expected boolean"))),
    }
}

pub(super) fn get_str<'a>(
    map: &'a Map<String, Value>,
    field: &str,
    place: Place,
) -> Result<Option<&'a str>, Response> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(place.bad(format!("{field}: expected string"))),
    }
}

pub(super) fn get_object<'a>(
    map: &'a Map<String, Value>,
    field: &str,
    place: Place,
) -> Result<&'a Map<String, Value>, Response> {
    match map.get(field) {
        Some(Value::Object(m)) => Ok(m),
        None | Some(Value::Null) => Err(place.bad(format!("missing required field '{field}'"))),
        Some(_) => Err(place.bad(format!("{field}: expected object"))),
    }
}

/// An optional `content_hash` argument: 64 hex digits.
pub(super) fn get_content_hash(
    map: &Map<String, Value>,
    place: Place,
) -> Result<Option<String>, Response> {
    match get_str(map, "content_hash", place)? {
        None => Ok(None),
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(h.to_ascii_lowercase()))
        }
        Some(h) => Err(place.bad(format!("content_hash: '{h}' is not 64 hex digits"))),
    }
}

/// 409 `content_hash_mismatch` if `expected` is given and differs.
pub(super) fn check_content_hash(expected: &Option<String>, blob: &Blob) -> Result<(), Response> {
    match expected {
        Some(h) if *h != blob.content_hash_hex() => Err(conflict(
            "content_hash_mismatch",
            json!({".tag": "content_hash_mismatch"}),
        )),
        _ => Ok(()),
    }
}
