//! Box's error shape (`{"type":"error","status","code","message",…}`, a
//! [`BoxError`]) and the small helpers every Box route shares: the
//! bearer-token check, JSON answers, reading a JSON request body and its
//! fields, Box's rules for item names, and the errors that both simple
//! uploads and upload sessions return.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::items::mini;
use crate::fake::api::{bearer_token, box_unauthorized};
use crate::fake::storage::{NodeId, Tree};
use crate::fake::{AccessCheck, State};

/// A Box error: `{"type":"error","status","code","message","context_info",
/// "help_url","request_id"}`.
#[derive(Debug)]
pub(super) struct BoxError {
    status: StatusCode,
    code: &'static str,
    message: String,
    context_info: Value,
}

impl BoxError {
    pub(super) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> BoxError {
        BoxError {
            status,
            code,
            message: message.into(),
            context_info: Value::Null,
        }
    }

    fn context(mut self, context_info: Value) -> BoxError {
        self.context_info = context_info;
        self
    }

    pub(super) fn bad_request(message: impl Into<String>) -> BoxError {
        BoxError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404 for an item (`"file"`, `"folder"`) or session that does not
    /// exist, with Box's `context_info.errors`.
    pub(super) fn not_found(kind: &str, id: &str) -> BoxError {
        BoxError::new(StatusCode::NOT_FOUND, "not_found", "Not Found").context(json!({
            "errors": [{
                "reason": "invalid_parameter",
                "name": kind,
                "message": format!("Invalid value '{id}'. '{kind}' with value '{id}' not found"),
            }]
        }))
    }

    pub(super) fn name_in_use(conflicts: Value) -> BoxError {
        BoxError::new(
            StatusCode::CONFLICT,
            "item_name_in_use",
            "Item with the same name already exists",
        )
        .context(json!({ "conflicts": conflicts }))
    }
}

impl IntoResponse for BoxError {
    fn into_response(self) -> Response {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let request_id = format!("fakebox{:010x}", NEXT.fetch_add(1, Ordering::Relaxed));
        let body = json!({
            "type": "error",
            "status": self.status.as_u16(),
            "code": self.code,
            "message": self.message,
            "context_info": self.context_info,
            "help_url": "http://developers.box.com/docs/#errors",
            "request_id": request_id,
        });
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

pub(super) type BoxResult = Result<Response, BoxError>;

pub(super) fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Box's 401 unless the request carries a valid access token.
pub(super) fn check_auth(st: &State, headers: &HeaderMap) -> Result<(), Response> {
    let Some(token) = bearer_token(headers) else {
        return Err(box_unauthorized(false));
    };
    match st.check_access(token) {
        AccessCheck::Valid(_) => Ok(()),
        _ => Err(box_unauthorized(true)),
    }
}

/// Parses a JSON request body.
pub(super) fn json_body(body: &[u8]) -> Result<Map<String, Value>, BoxError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(BoxError::bad_request("Invalid input JSON")),
    }
}

pub(super) fn str_field<'a>(
    map: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, BoxError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(BoxError::bad_request(format!("'{name}' must be a string"))),
    }
}

pub(super) fn parent_id(map: &Map<String, Value>) -> Result<Option<String>, BoxError> {
    match map.get("parent") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(parent)) => Ok(str_field(parent, "id")?.map(str::to_owned)),
        Some(_) => Err(BoxError::bad_request("'parent' must be an object")),
    }
}

pub(super) fn time_field(
    map: &Map<String, Value>,
    name: &str,
) -> Result<Option<DateTime<Utc>>, BoxError> {
    match str_field(map, name)? {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| BoxError::bad_request(format!("'{name}' is not an RFC 3339 date"))),
    }
}

/// Box's rules for item names.
pub(super) fn check_name(name: &str) -> Result<(), BoxError> {
    if name.chars().count() > 255 {
        return Err(BoxError::new(
            StatusCode::BAD_REQUEST,
            "item_name_too_long",
            "Item name too long",
        ));
    }
    let invalid = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\\')
        || name.ends_with(' ')
        || name.chars().any(char::is_control);
    if invalid {
        return Err(BoxError::new(
            StatusCode::BAD_REQUEST,
            "item_name_invalid",
            "Item name invalid",
        ));
    }
    Ok(())
}

pub(super) fn io_error(e: std::io::Error) -> BoxError {
    BoxError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_server_error",
        format!("fake provider storage error: {e}"),
    )
}

/// A 409 `item_name_in_use` for an upload: `conflicts` is the one item.
pub(super) fn upload_conflict(tree: &Tree, existing: NodeId) -> BoxError {
    BoxError::name_in_use(mini(tree, existing))
}

pub(super) fn too_big() -> BoxError {
    BoxError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file_size_limit_exceeded",
        "File size exceeds the folder owner's file size limit",
    )
}
