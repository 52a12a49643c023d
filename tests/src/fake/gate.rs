//! The gate every API, upload, content and download request goes through
//! (everything but `/oauth2/…`): it counts the request and, if a queued
//! [`ApiFault`] matches the request's path, answers with that fault before
//! anything else is looked at (or, for [`ApiFault::LostAnswer`] and
//! [`ApiFault::KeptPrefix`], after the request, or part of it, has been
//! handled; [`ApiFault::EmptyPage`] is passed to the handler, which
//! answers it).

use axum::body::Body;
use axum::extract::{Request, State as AxumState};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde_json::json;

use super::api::{box_unauthorized, dropbox_auth_error};
use super::storage::reject;
use super::{lock, AccessCheck, ApiFault, Shared, Style};

pub(super) async fn gate(
    AxumState(shared): AxumState<Shared>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with("/oauth2/") {
        return next.run(request).await;
    }
    let (style, fault, request_id) = {
        let mut st = lock(&shared);
        st.counters.api_requests += 1;
        if request.headers().contains_key(header::TRANSFER_ENCODING) {
            st.counters.chunked_requests += 1;
        }
        let fault = st.files.take_fault(&path);
        if fault.is_some() {
            st.counters.api_faults += 1;
        }
        let request_id = st.files.request_id();
        (st.style, fault, request_id)
    };
    match fault {
        Some(ApiFault::LostAnswer) => handled_then_lost(next, request, style, &request_id).await,
        Some(ApiFault::KeptPrefix { bytes }) => {
            let (mut parts, body) = request.into_parts();
            let Ok(whole) = axum::body::to_bytes(body, MAX_CUT_BODY).await else {
                return fault_response(style, ApiFault::ServerError, &request_id);
            };
            let kept = whole.slice(..whole.len().min(bytes));
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(kept.len()));
            let request = Request::from_parts(parts, Body::from(kept));
            handled_then_lost(next, request, style, &request_id).await
        }
        Some(ApiFault::EmptyPage) => {
            let mut request = request;
            request.extensions_mut().insert(EmptyPage);
            next.run(request).await
        }
        Some(ApiFault::DamagedBody) => {
            let (parts, body) = next.run(request).await.into_parts();
            let mut first = true;
            let damaged = body.into_data_stream().map_ok(move |mut chunk| {
                if first && !chunk.is_empty() {
                    first = false;
                    let mut bytes = chunk.to_vec();
                    bytes[0] ^= 0xff;
                    chunk = bytes.into();
                }
                chunk
            });
            Response::from_parts(parts, Body::from_stream(damaged))
        }
        Some(fault) => {
            reject(
                request.into_body(),
                fault_response(style, fault, &request_id),
            )
            .await
        }
        None => next.run(request).await,
    }
}

/// Marks a request that got [`ApiFault::EmptyPage`]: a listing handler
/// that finds it answers an empty page that has more.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EmptyPage;

/// The largest body [`ApiFault::KeptPrefix`] reads whole to cut it: test
/// chunks are a few MB.
const MAX_CUT_BODY: usize = 64 << 20;

/// Lets the handler do its work on `request`, then drops its answer for a
/// 500, as when the connection breaks before the answer gets through.
async fn handled_then_lost(
    next: Next,
    request: Request,
    style: Style,
    request_id: &str,
) -> Response {
    let done = next.run(request).await;
    // The work is done once the handler answers; the answer goes.
    let _ = axum::body::to_bytes(done.into_body(), usize::MAX).await;
    fault_response(style, ApiFault::ServerError, request_id)
}

/// The provider's real answer for an injected fault.
fn fault_response(style: Style, fault: ApiFault, request_id: &str) -> Response {
    match fault {
        // (`gate` hands EmptyPage to the listing handler and damages a
        // DamagedBody answer itself: they never get here.)
        ApiFault::ServerError
        | ApiFault::LostAnswer
        | ApiFault::KeptPrefix { .. }
        | ApiFault::DamagedBody
        | ApiFault::EmptyPage => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><head><title>500 Internal Server Error</title></head>\
             <body><h1>Internal Server Error</h1></body></html>\n",
        )
            .into_response(),
        ApiFault::Unauthorized => match style {
            Style::Box => box_unauthorized(true),
            Style::Dropbox => dropbox_auth_error(&AccessCheck::Expired),
        },
        ApiFault::TooManyRequests { retry_after_secs } => slow_down(
            style,
            StatusCode::TOO_MANY_REQUESTS,
            (
                "rate_limit_exceeded",
                "Request rate limit exceeded, please try again later",
            ),
            "too_many_requests",
            retry_after_secs,
            request_id,
        ),
        ApiFault::Busy { retry_after_secs } => slow_down(
            style,
            StatusCode::CONFLICT,
            (
                "operation_blocked_temporary",
                "The operation is blocked by another on-going operation.",
            ),
            "too_many_write_operations",
            retry_after_secs,
            request_id,
        ),
    }
}

/// A "slow down" answer with `Retry-After: retry_after_secs`: Box's error
/// body with `box_error` as its `(code, message)`, or Dropbox's rate-limit
/// body with `dropbox_reason` as its `reason` tag (and `retry_after`).
fn slow_down(
    style: Style,
    status: StatusCode,
    box_error: (&str, &str),
    dropbox_reason: &str,
    retry_after_secs: u64,
    request_id: &str,
) -> Response {
    let body = match style {
        Style::Box => json!({
            "type": "error",
            "status": status.as_u16(),
            "code": box_error.0,
            "message": box_error.1,
            "context_info": null,
            "help_url": "http://developers.box.com/docs/#errors",
            "request_id": request_id,
        }),
        Style::Dropbox => json!({
            "error_summary": format!("{dropbox_reason}/.."),
            "error": {
                "reason": {".tag": dropbox_reason},
                "retry_after": retry_after_secs,
            },
        }),
    };
    (
        status,
        [
            (header::RETRY_AFTER, retry_after_secs.to_string()),
            (header::CONTENT_TYPE, "application/json".to_owned()),
        ],
        body.to_string(),
    )
        .into_response()
}
