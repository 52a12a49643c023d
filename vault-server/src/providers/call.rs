//! The one place provider API calls are made from: a fresh token on every
//! attempt, one refresh-and-retry on 401, Retry-After on 429 and on a
//! provider's "busy" 409 (Dropbox `too_many_write_operations`, Box
//! `operation_blocked_temporary`), jittered exponential backoff on 5xx and
//! network errors, and a per-connection bound on requests in flight.
//!
//! Invariants:
//! - A request is rebuilt from scratch for every attempt (so a streamed
//!   body is re-read from its spool, never half-sent twice).
//! - No error quotes a body or a token.
//! - Every 409 is read (at most [`MAX_CONFLICT_BODY`] bytes into memory) to
//!   tell a busy answer from a real conflict; a 409 that is not retried
//!   reaches the caller as an equivalent response (same status, version,
//!   headers and body bytes), so callers parse conflicts, `incorrect_offset`
//!   and `not_found` as before.
//! - An in-flight slot is taken before the first attempt and kept across
//!   every retry and wait. How long it is kept after the answer depends on
//!   the method:
//!   - [`Caller::send`] gives it back when the answer's headers arrive: for
//!     answers whose body is read at once (JSON, error bodies).
//!   - [`Caller::send_streaming`] keeps it inside the answer's body until the
//!     body ends, fails or is dropped: for a download streamed on to a
//!     client, which is a request in flight for as long as it streams.
//!   - [`Caller::send_holding`] hands the slot back with the answer, for a
//!     body that comes from a second request made without the caller (Box's
//!     download redirect to a token-less URL): attach the slot to that
//!     second answer with [`hold_until_body_ends`].

use super::ProviderCallError;
use crate::policy::random_unit;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;
use shared::Secret;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Attempts per call for 429s, busy 409s, 5xx and network errors before
/// giving up.
const MAX_ATTEMPTS: u32 = 6;
/// The longest Retry-After honoured; a provider asking for more is failing.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
/// The first backoff after a 5xx, a busy 409 or a network error.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The most of a 409's body read into memory to see whether it is a busy
/// answer (those are a few hundred bytes); the rest of a longer one is
/// streamed to the caller untouched.
pub const MAX_CONFLICT_BODY: usize = 64 * 1024;

/// Where a provider call gets its access token: the vault's refresh engine.
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// A valid token; `rejected` says the last one got a 401.
    async fn token(&self, rejected: bool) -> Result<Secret, ProviderCallError>;
}

/// A connection's handle for provider calls.
#[derive(Clone)]
pub struct Caller {
    pub http: reqwest::Client,
    pub tokens: Arc<dyn TokenSource>,
    /// Requests in flight for this connection.
    pub in_flight: Arc<Semaphore>,
}

/// One of a connection's in-flight slots; the slot is free again when this
/// is dropped.
pub type InFlightSlot = OwnedSemaphorePermit;

/// The longest wait before attempt `attempt + 1` when the answer gave no
/// Retry-After: exponential from [`FIRST_BACKOFF`] up to [`MAX_BACKOFF`].
fn backoff_ceiling(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(MAX_BACKOFF)
}

/// The wait before attempt `attempt + 1` after a 5xx, a busy 409 without a
/// wait, or a network error: [`backoff_ceiling`] with jitter (50 % to just
/// under 100 % of it), so that parallel calls do not retry in step.
fn backoff(attempt: u32) -> Duration {
    backoff_ceiling(attempt).mul_f64(0.5 + 0.5 * random_unit())
}

/// Whether a 409 body is a provider's "busy, try again" answer rather than
/// a real conflict: `None` if not; if so, the wait its body asks for
/// (Dropbox's `retry_after`), if any.
///
/// - Dropbox: `too_many_write_operations` as a tag of `error_summary`
///   (`too_many_write_operations/..`, or nested as in
///   `path/too_many_write_operations/..`).
/// - Box: `{"type":"error","code":"operation_blocked_temporary",…}`.
fn busy_conflict(body: &[u8]) -> Option<Option<Duration>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let dropbox = v
        .get("error_summary")
        .and_then(Value::as_str)
        .is_some_and(|s| s.split('/').any(|tag| tag == "too_many_write_operations"));
    let boxed = v.get("code").and_then(Value::as_str) == Some("operation_blocked_temporary");
    if !dropbox && !boxed {
        return None;
    }
    Some(
        v.pointer("/error/retry_after")
            .and_then(Value::as_u64)
            .map(Duration::from_secs),
    )
}

/// How an attempt failed, for [`retry_delay`].
enum Failed<'a> {
    /// No answer: the connection failed or timed out.
    Unreachable,
    /// An answer that is not a success: its status, its headers and, for a
    /// 409, its body.
    Answer {
        status: StatusCode,
        headers: &'a HeaderMap,
        conflict_body: &'a [u8],
    },
}

/// Whether a failed attempt should be retried, and after how long: a
/// network error, a 429 and a 5xx always, a 409 if its body says the
/// provider is busy. The `Retry-After` header wins, then a wait the body
/// asks for, then [`backoff`]; never more than [`MAX_RETRY_AFTER`].
fn retry_delay(failed: Failed<'_>, attempt: u32) -> Option<Duration> {
    let Failed::Answer {
        status,
        headers,
        conflict_body,
    } = failed
    else {
        return Some(backoff(attempt));
    };
    let asked = match status.as_u16() {
        429 | 500 | 502 | 503 | 504 | 509 => None,
        409 => busy_conflict(conflict_body)?,
        _ => return None,
    };
    Some(
        crate::http::retry_after(headers)
            .or(asked)
            .map(|d| d.min(MAX_RETRY_AFTER))
            .unwrap_or_else(|| backoff(attempt)),
    )
}

/// Reads up to [`MAX_CONFLICT_BODY`] bytes of `response`'s body; returns
/// them with a response equal to `response` (status, version, headers, the
/// whole body: what was read, then whatever was not).
async fn buffer_body(mut response: Response) -> Result<(Response, Bytes), ProviderCallError> {
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let mut read = Vec::new();
    let complete = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                read.extend_from_slice(&chunk);
                if read.len() > MAX_CONFLICT_BODY {
                    break false;
                }
            }
            Ok(None) => break true,
            Err(e) => {
                return Err(ProviderCallError::BadAnswer(format!(
                    "HTTP {}, and its body broke off: {}",
                    status.as_u16(),
                    crate::http::describe(&e)
                )))
            }
        }
    };
    let read = Bytes::from(read);
    let body = if complete {
        reqwest::Body::from(read.clone())
    } else {
        let head = futures_util::stream::iter([Ok::<Bytes, reqwest::Error>(read.clone())]);
        reqwest::Body::wrap_stream(head.chain(response.bytes_stream()))
    };
    let mut rebuilt = hyper::Response::new(body);
    *rebuilt.status_mut() = status;
    *rebuilt.version_mut() = version;
    *rebuilt.headers_mut() = headers;
    Ok((Response::from(rebuilt), read))
}

/// `response` with `slot` moved into its body: the slot is given back when
/// the body has been read to its end, fails, or is dropped. Status, headers
/// and `content_length()` are unchanged (`url()` is not kept).
pub fn hold_until_body_ends(response: Response, slot: InFlightSlot) -> Response {
    let (parts, body) = hyper::Response::<reqwest::Body>::from(response).into_parts();
    let held = SlotBody {
        inner: body,
        slot: Some(slot),
    };
    Response::from(hyper::Response::from_parts(
        parts,
        reqwest::Body::wrap(held),
    ))
}

/// A body that keeps an in-flight slot until it ends, fails or is dropped.
struct SlotBody {
    inner: reqwest::Body,
    slot: Option<InFlightSlot>,
}

impl HttpBody for SlotBody {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) || this.inner.is_end_stream() {
            this.slot = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Caller {
    /// Sends the request that `build` makes with a token, retrying as the
    /// module doc says. Returns the first answer that is not retried
    /// (success or a final error status): the caller interprets it. The
    /// in-flight slot is given back when the answer's headers are in: read
    /// the body at once, or use [`Caller::send_streaming`].
    pub async fn send<F>(&self, build: F) -> Result<Response, ProviderCallError>
    where
        F: Fn(&reqwest::Client, &Secret) -> Result<RequestBuilder, ProviderCallError>,
    {
        self.send_holding(build)
            .await
            .map(|(response, _slot)| response)
    }

    /// [`Caller::send`] for an answer whose body is streamed on (a
    /// download): the in-flight slot stays taken until the body has been
    /// read to its end, fails, or is dropped.
    pub async fn send_streaming<F>(&self, build: F) -> Result<Response, ProviderCallError>
    where
        F: Fn(&reqwest::Client, &Secret) -> Result<RequestBuilder, ProviderCallError>,
    {
        let (response, slot) = self.send_holding(build).await?;
        Ok(hold_until_body_ends(response, slot))
    }

    /// [`Caller::send`], handing back the in-flight slot the call was made
    /// under, still taken: drop it when the work it stands for is done, or
    /// give it to [`hold_until_body_ends`] with the answer whose body is
    /// streamed on.
    pub async fn send_holding<F>(
        &self,
        build: F,
    ) -> Result<(Response, InFlightSlot), ProviderCallError>
    where
        F: Fn(&reqwest::Client, &Secret) -> Result<RequestBuilder, ProviderCallError>,
    {
        let slot = self.in_flight.clone().acquire_owned().await.map_err(|_| {
            ProviderCallError::Transport(
                "the daemon is shutting down; run the transfer again once it is back".into(),
            )
        })?;
        // `force`: the next token must be a new one (after a 401); at most once.
        let mut force = false;
        let mut retried_401 = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.tokens.token(std::mem::take(&mut force)).await?;
            let sent = build(&self.http, &token)?.send().await;
            let response = match sent {
                Ok(r) => r,
                Err(e) if attempt < MAX_ATTEMPTS && (e.is_connect() || e.is_timeout()) => {
                    let wait = retry_delay(Failed::Unreachable, attempt).unwrap_or(MAX_BACKOFF);
                    tracing::debug!(error = %crate::http::describe(&e), ?wait, "provider unreachable; retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => return Err(ProviderCallError::from_reqwest(&e)),
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED {
                if retried_401 {
                    return Err(ProviderCallError::Unauthorized);
                }
                // Once: the token may have expired in flight, or been revoked.
                retried_401 = true;
                force = true;
                continue;
            }
            // A 409 may be "busy, try again": its body says.
            let (response, conflict_body) = if status == StatusCode::CONFLICT {
                buffer_body(response).await?
            } else {
                (response, Bytes::new())
            };
            if attempt < MAX_ATTEMPTS {
                let failed = Failed::Answer {
                    status,
                    headers: response.headers(),
                    conflict_body: &conflict_body,
                };
                if let Some(wait) = retry_delay(failed, attempt) {
                    tracing::info!(
                        status = status.as_u16(),
                        ?wait,
                        "provider asked us to slow down, was busy, or failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            return Ok((response, slot));
        }
    }
}

/// A loopback server and a caller for tests of provider calls.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Hands out a fixed token and counts how often it was asked.
    #[derive(Default)]
    pub struct CountingTokens(AtomicUsize);

    impl CountingTokens {
        pub fn asked(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl TokenSource for CountingTokens {
        async fn token(&self, _rejected: bool) -> Result<Secret, ProviderCallError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Secret::new("test-token"))
        }
    }

    /// A caller with `slots` in-flight slots, and its token source.
    pub fn caller(slots: usize) -> (Caller, Arc<CountingTokens>) {
        let tokens = Arc::new(CountingTokens::default());
        let caller = Caller {
            http: reqwest::Client::new(),
            tokens: tokens.clone(),
            in_flight: Arc::new(Semaphore::new(slots)),
        };
        (caller, tokens)
    }

    /// Serves `router` on a loopback port; its base URL.
    pub async fn serve(router: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        base
    }

    /// A body whose chunks are what is sent on the returned sender; it ends
    /// when the sender is dropped.
    pub fn channel_body() -> (tokio::sync::mpsc::Sender<Bytes>, axum::body::Body) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let chunks = futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx).map(|c| c.map(Ok::<_, std::io::Error>))
        });
        (tx, axum::body::Body::from_stream(chunks))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{caller, channel_body, serve, CountingTokens};
    use super::*;
    use axum::extract::{Path, State};
    use axum::http::StatusCode as AxStatus;
    use axum::response::{IntoResponse, Response as AxResponse};
    use axum::routing::get;
    use axum::Router;
    use std::collections::VecDeque;
    use std::future::Future;
    use std::sync::Mutex;

    /// How long a test waits for something that must happen.
    const DEADLINE: Duration = Duration::from_secs(10);

    /// What the test server knows: requests per route, and the bodies the
    /// `/stream` route hands out (one per request).
    #[derive(Default)]
    struct Server {
        hits: Mutex<std::collections::HashMap<String, usize>>,
        streams: Mutex<VecDeque<axum::body::Body>>,
    }

    impl Server {
        /// The next `/stream` answer's body: what is sent on the sender.
        fn next_stream(&self) -> tokio::sync::mpsc::Sender<Bytes> {
            let (tx, body) = channel_body();
            let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
            streams.push_back(body);
            tx
        }

        fn hit(&self, route: &str) -> usize {
            let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
            let n = hits.entry(route.to_string()).or_default();
            *n += 1;
            *n
        }

        fn hits(&self, route: &str) -> usize {
            let hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
            hits.get(route).copied().unwrap_or_default()
        }
    }

    /// A 409 of the given JSON body, with `Retry-After: 0` when `busy` so
    /// that retries do not wait.
    fn conflict(body: Value, busy: bool) -> AxResponse {
        let mut response = (AxStatus::CONFLICT, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.insert("x-request-id", "kept-on-409".parse().unwrap());
        if busy {
            headers.insert("retry-after", "0".parse().unwrap());
        }
        response
    }

    async fn route(State(server): State<Arc<Server>>, Path(route): Path<String>) -> AxResponse {
        let n = server.hit(&route);
        match route.as_str() {
            // Busy twice, then done.
            "dropbox-busy" if n <= 2 => conflict(
                serde_json::json!({
                    "error_summary": "too_many_write_operations/..",
                    "error": {"reason": {".tag": "too_many_write_operations"}, "retry_after": 0},
                }),
                true,
            ),
            "box-busy" if n <= 2 => conflict(
                serde_json::json!({
                    "type": "error", "status": 409, "code": "operation_blocked_temporary",
                    "message": "The operation is blocked by another on-going operation.",
                }),
                true,
            ),
            "dropbox-busy" | "box-busy" | "ok" => "done".into_response(),
            "conflict" => conflict(
                serde_json::json!({
                    "error_summary": "path/conflict/folder/..",
                    "error": {".tag": "path", "path": {".tag": "conflict"}},
                }),
                false,
            ),
            "big-conflict" => conflict(Value::String(big_text()), false),
            "stream" => {
                let next = server
                    .streams
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .pop_front();
                next.map_or_else(
                    || AxStatus::GONE.into_response(),
                    IntoResponse::into_response,
                )
            }
            _ => AxStatus::NOT_FOUND.into_response(),
        }
    }

    /// Well over [`MAX_CONFLICT_BODY`].
    fn big_text() -> String {
        (0..30_000).map(|i| format!("{i:x}")).collect()
    }

    /// A test server on loopback and a caller with `slots` in-flight slots.
    async fn start(slots: usize) -> (Arc<Server>, Caller, Arc<CountingTokens>, String) {
        let server = Arc::new(Server::default());
        let router = Router::new()
            .route("/{route}", get(route))
            .with_state(server.clone());
        let (caller, tokens) = caller(slots);
        (server, caller, tokens, serve(router).await)
    }

    /// `caller.send` to `GET {base}/{route}`, bounded by [`DEADLINE`].
    async fn get_route(caller: &Caller, base: &str, route: &str) -> Response {
        let url = format!("{base}/{route}");
        let sent = caller.send(|http, token| Ok(http.get(&url).bearer_auth(token.expose())));
        tokio::time::timeout(DEADLINE, sent)
            .await
            .expect("the call finished in time")
            .expect("the call succeeded")
    }

    /// Polls `future` once.
    async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
    }

    #[test]
    fn busy_409_bodies_are_told_from_conflicts() {
        let dropbox = br#"{"error_summary":"too_many_write_operations/..","error":{"reason":{".tag":"too_many_write_operations"},"retry_after":3}}"#;
        assert_eq!(busy_conflict(dropbox), Some(Some(Duration::from_secs(3))));
        let nested =
            br#"{"error_summary":"path/too_many_write_operations/...","error":{".tag":"path"}}"#;
        assert_eq!(busy_conflict(nested), Some(None));
        let boxed = br#"{"type":"error","status":409,"code":"operation_blocked_temporary"}"#;
        assert_eq!(busy_conflict(boxed), Some(None));
        for not_busy in [
            &br#"{"error_summary":"path/conflict/folder/..","error":{".tag":"path"}}"#[..],
            br#"{"error_summary":"incorrect_offset/..","error":{".tag":"incorrect_offset","correct_offset":5}}"#,
            br#"{"type":"error","status":409,"code":"item_name_in_use"}"#,
            b"<html>409</html>",
            b"",
        ] {
            assert_eq!(
                busy_conflict(not_busy),
                None,
                "{}",
                String::from_utf8_lossy(not_busy)
            );
        }
    }

    /// [`retry_delay`] for an answer.
    fn answer_delay(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Duration> {
        let failed = Failed::Answer {
            status,
            headers,
            conflict_body: body,
        };
        retry_delay(failed, 1)
    }

    #[test]
    fn retry_after_header_beats_the_body_and_is_capped() {
        let conflict = StatusCode::CONFLICT;
        let busy = br#"{"error_summary":"too_many_write_operations/..","error":{"retry_after":7}}"#;
        let mut headers = HeaderMap::new();
        assert_eq!(
            answer_delay(conflict, &headers, busy),
            Some(Duration::from_secs(7))
        );
        headers.insert(reqwest::header::RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(
            answer_delay(conflict, &headers, busy),
            Some(Duration::from_secs(2))
        );
        headers.insert(reqwest::header::RETRY_AFTER, "100000".parse().unwrap());
        assert_eq!(
            answer_delay(StatusCode::TOO_MANY_REQUESTS, &headers, b""),
            Some(MAX_RETRY_AFTER)
        );
        let conflict_body = br#"{"type":"error","code":"item_name_in_use"}"#;
        assert_eq!(answer_delay(conflict, &headers, conflict_body), None);
        assert_eq!(answer_delay(StatusCode::BAD_REQUEST, &headers, b""), None);
    }

    /// Network errors and answers without a wait (a 5xx, a busy 409) back
    /// off alike: exponentially, jittered, capped.
    #[test]
    fn backoff_is_jittered_exponential_for_network_errors_and_answers() {
        let no_wait = HeaderMap::new();
        let busy = br#"{"type":"error","status":409,"code":"operation_blocked_temporary"}"#;
        for attempt in 1..=10 {
            let ceiling = backoff_ceiling(attempt);
            assert_eq!(
                ceiling,
                (FIRST_BACKOFF * (1 << (attempt - 1))).min(MAX_BACKOFF)
            );
            let answer = |status| Failed::Answer {
                status,
                headers: &no_wait,
                conflict_body: busy,
            };
            for failed in [
                Failed::Unreachable,
                answer(StatusCode::BAD_GATEWAY),
                answer(StatusCode::CONFLICT),
            ] {
                let wait = retry_delay(failed, attempt).expect("retried");
                assert!(
                    wait >= ceiling / 2 && wait < ceiling,
                    "attempt {attempt}: {wait:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn busy_409s_are_retried_and_other_409s_reach_the_caller_intact() {
        let (server, caller, _, base) = start(4).await;
        for busy in ["dropbox-busy", "box-busy"] {
            let response = get_route(&caller, &base, busy).await;
            assert_eq!(response.status(), StatusCode::OK, "{busy}");
            assert_eq!(server.hits(busy), 3, "{busy}: two busy answers, then done");
        }
        let response = get_route(&caller, &base, "conflict").await;
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(response.headers()["x-request-id"], "kept-on-409");
        let body: Value = serde_json::from_slice(&response.bytes().await.expect("body"))
            .expect("the 409 body is still JSON");
        assert_eq!(body["error_summary"], "path/conflict/folder/..");
        assert_eq!(server.hits("conflict"), 1, "a real conflict is not retried");
        // A 409 longer than what is read to check it arrives whole.
        let response = get_route(&caller, &base, "big-conflict").await;
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body = response.bytes().await.expect("body");
        assert_eq!(body, Value::String(big_text()).to_string().as_bytes());
    }

    #[tokio::test]
    async fn a_streamed_body_keeps_its_slot_and_the_next_request_waits() {
        let (server, caller, tokens, base) = start(1).await;
        let url = format!("{base}/stream");
        let build =
            |http: &reqwest::Client, token: &Secret| Ok(http.get(&url).bearer_auth(token.expose()));
        // The body streams: the connection's one slot stays taken.
        let tx = server.next_stream();
        tx.send(Bytes::from_static(b"first")).await.expect("send");
        let mut download = caller.send_streaming(build).await.expect("download");
        assert_eq!(
            download.chunk().await.expect("chunk").as_deref(),
            Some(&b"first"[..])
        );
        assert_eq!(caller.in_flight.available_permits(), 0);
        // A second request waits for the slot, before it even takes a token.
        let asked = tokens.asked();
        let mut next = Box::pin(get_route(&caller, &base, "ok"));
        assert!(poll_once(&mut next).await.is_pending());
        assert_eq!(tokens.asked(), asked);
        assert_eq!(server.hits("ok"), 0);
        // The body ends: the slot goes to the waiting request, which runs.
        tx.send(Bytes::from_static(b"last")).await.expect("send");
        drop(tx);
        assert_eq!(
            download.chunk().await.expect("chunk").as_deref(),
            Some(&b"last"[..])
        );
        assert_eq!(download.chunk().await.expect("end").as_deref(), None);
        assert_eq!(next.await.status(), StatusCode::OK);
        assert_eq!(server.hits("ok"), 1);
        assert_eq!(caller.in_flight.available_permits(), 1);
        // A download dropped half-way gives its slot back too.
        let tx = server.next_stream();
        tx.send(Bytes::from_static(b"first")).await.expect("send");
        let download = caller.send_streaming(build).await.expect("download");
        assert_eq!(caller.in_flight.available_permits(), 0);
        drop(download);
        assert_eq!(caller.in_flight.available_permits(), 1);
        // `send` alone gives the slot back once the headers are in.
        let _tx = server.next_stream();
        let streaming = caller.send(build).await.expect("send");
        assert_eq!(streaming.status(), StatusCode::OK);
        assert_eq!(caller.in_flight.available_permits(), 1);
    }
}
