//! What the API refuses before a route looks at a request, and axum's own
//! refusals put in the API's JSON error shape.
//!
//! Invariants:
//! - a path segment or query parameter that is not UTF-8 once
//!   percent-decoded, or that holds a control character (NUL above all),
//!   gets 400 before any lookup; so does a connection name that is not a
//!   valid name;
//! - a body declared larger than the JSON limit gets 413 at once, without
//!   waiting for bytes that may never come (uploads have no limit);
//! - every 4xx answer is JSON, and none quotes the request: axum's
//!   rejection texts can quote a body, so they are replaced, not wrapped.

use super::error::ApiError;
use super::MAX_JSON_BODY;
use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use shared::api::valid_connection_name;

pub(super) async fn guard(request: Request, next: Next) -> Response {
    if let Err(refusal) = check(&request) {
        return refusal.into_response();
    }
    let response = next.run(request).await;
    if response.status().is_client_error() && !is_json(&response) {
        let mut json = as_json(response.status());
        if let Some(allow) = response.headers().get(header::ALLOW) {
            json.headers_mut().insert(header::ALLOW, allow.clone());
        }
        return json;
    }
    response
}

fn check(request: &Request) -> Result<(), ApiError> {
    let uri = request.uri();
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    for segment in &segments {
        clean(segment).map_err(|why| {
            ApiError::bad_request(format!("the request path has a segment that {why}"))
        })?;
    }
    if let ["v1", "connections", name, ..] = segments.as_slice() {
        let name = clean(name).unwrap_or_default();
        if !valid_connection_name(&name) {
            return Err(ApiError::bad_request(format!(
                "`{}` is not a valid connection name: 1 to 64 of A-Z a-z 0-9 . _ -, not starting with . or -",
                name.chars().take(64).collect::<String>()
            )));
        }
    }
    for pair in uri.query().unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        for part in [key, value] {
            clean(&part.replace('+', " ")).map_err(|why| {
                ApiError::bad_request(format!(
                    "the query has a parameter that {why}; paths must be UTF-8 without control characters"
                ))
            })?;
        }
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_JSON_BODY as u64) && !is_upload(request.method(), &segments)
    {
        return Err(too_large());
    }
    Ok(())
}

/// A path segment or query part, percent-decoded, if it is UTF-8 without
/// control characters; otherwise what is wrong with it.
fn clean(part: &str) -> Result<String, &'static str> {
    let decoded = percent_decode_str(part)
        .decode_utf8()
        .map_err(|_| "is not UTF-8")?;
    if decoded.chars().any(char::is_control) {
        return Err("holds a control character");
    }
    Ok(decoded.into_owned())
}

/// The one route whose body is not JSON and has no size limit.
fn is_upload(method: &Method, segments: &[&str]) -> bool {
    method == Method::PUT && matches!(segments, ["v1", "connections", _, "content"])
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the request body is larger than {MAX_JSON_BODY} bytes; an import is a few KiB"),
    )
}

/// axum's refusal (a plain-text rejection, or an empty 405) as a JSON error.
fn as_json(status: StatusCode) -> Response {
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        StatusCode::NOT_FOUND => ApiError::new(status, "not_found", "no such endpoint"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method_not_allowed",
            "this endpoint does not take that method; the socket API is documented in the README",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            status,
            "unsupported_media_type",
            "the request body must be JSON (Content-Type: application/json)",
        ),
        _ => ApiError::new(
            status,
            "bad_request",
            "the request is malformed: a path segment, query parameter or body does not parse; the socket API is documented in the README",
        ),
    };
    error.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_must_be_utf8_without_controls() {
        assert_eq!(clean("a%20b%C3%A9").as_deref(), Ok("a bé"));
        assert!(clean("%FF").is_err());
        assert!(clean("a%00b").is_err());
        assert!(clean("%1B[31m").is_err());
        assert!(clean("%C2%85").is_err(), "C1 controls too");
    }

    #[test]
    fn only_uploads_take_big_bodies() {
        let up = ["v1", "connections", "box", "content"];
        assert!(is_upload(&Method::PUT, &up));
        assert!(!is_upload(&Method::GET, &up));
        assert!(!is_upload(&Method::PUT, &["v1", "connections", "box"]));
    }
}
