//! The socket API: axum routes over the Unix socket, each checked against
//! the caller's peer credentials, each audited.
//!
//! Invariant: every route that touches a connection checks the ACL (or the
//! admin rule) before doing anything, and every error is the JSON shape of
//! `interface.md`. The API uses the engine; the engine never sees HTTP.

mod authorize;
mod error;
mod guard;
pub mod peer;
mod routes;
pub mod server;
mod transfer;

use crate::audit::{Audit, AuditLine};
use crate::files::Files;
use crate::metrics::Metrics;
use crate::refresh::Engine;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
pub use error::ApiError;
use peer::Peer;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The largest JSON body accepted: an import is a few KiB.
const MAX_JSON_BODY: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub files: Arc<Files>,
    pub metrics: Arc<Metrics>,
    pub daemon_uid: u32,
    pub audit: Audit,
    pub shutting_down: Arc<AtomicBool>,
    /// Pending authorizations and the recipient key (`token-vault authorize`, sealed blobs).
    pub authorizations: Arc<crate::pending::Authorizations>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/health", get(routes::health))
        .route("/metrics", get(routes::metrics))
        .route("/v1/connections", get(routes::list))
        .route(
            "/v1/connections/{name}",
            get(routes::status)
                .put(routes::import)
                .delete(routes::remove),
        )
        .route("/v1/connections/{name}/token", get(routes::token))
        .route("/v1/connections/{name}/refresh", post(routes::refresh))
        .route("/v1/connections/{name}/whoami", get(routes::whoami))
        .route(
            "/v1/connections/{name}/items",
            get(transfer::list).delete(transfer::delete),
        )
        .route("/v1/connections/{name}/folders", post(transfer::mkdir))
        .route(
            "/v1/connections/{name}/content",
            get(transfer::download).merge(put(transfer::upload).layer(DefaultBodyLimit::disable())),
        )
        .merge(authorize::routes())
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(middleware::from_fn(guard::guard))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            audit_and_gate,
        ))
        .with_state(state)
}

/// Refuses work while shutting down, and writes the audit line of every request.
async fn audit_and_gate(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    request: Request,
    next: Next,
) -> Response {
    let (connection, operation) = describe(request.method().as_str(), request.uri().path());
    let exists = |name: &str| state.engine.registry().get(name).is_some();
    // A name that names no connection (before or after the request) is not
    // audited: a caller may have typed anything there, a token included.
    let existed = connection.as_deref().is_some_and(exists);
    let started = std::time::Instant::now();
    let response = if state.shutting_down.load(Ordering::Relaxed) {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the vault is shutting down; retry shortly",
        )
        .into_response()
    } else {
        next.run(request).await
    };
    let status = response.status().as_u16();
    state
        .metrics
        .request(&operation, status, started.elapsed().as_secs_f64());
    if operation != "health" && operation != "metrics" {
        let connection = connection.filter(|name| existed || exists(name));
        state.audit.record(AuditLine::new(
            peer.uid,
            peer.pid,
            connection,
            operation,
            response.status().as_u16(),
        ));
    }
    response
}

/// The routes under `/v1/connections/{name}/`, by their last segment.
const CONNECTION_OPERATIONS: [&str; 6] =
    ["token", "refresh", "whoami", "items", "folders", "content"];

/// The audited connection name and operation of a request.
fn describe(method: &str, path: &str) -> (Option<String>, String) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let clip = |s: &str| s.chars().take(64).collect::<String>();
    match segments.as_slice() {
        ["v1", "health"] => (None, "health".into()),
        ["metrics"] => (None, "metrics".into()),
        ["v1", "connections"] => (None, "list".into()),
        ["v1", "authorizations", ..] | ["v1", "recipient"] => {
            (None, authorize::operation(method, &segments))
        }
        ["v1", "connections", name] => (
            Some(clip(name)),
            match method {
                "GET" => "status",
                "PUT" => "import",
                "DELETE" => "remove",
                _ => "unknown",
            }
            .into(),
        ),
        // Only known operations: neither the audit log nor the metrics'
        // labels may carry (or be grown without bound by) what a caller typed.
        ["v1", "connections", name, op] => (
            Some(clip(name)),
            CONNECTION_OPERATIONS
                .iter()
                .find(|known| *known == op)
                .map_or("unknown", |known| *known)
                .into(),
        ),
        _ => (None, "unknown".into()),
    }
}
