//! The handlers: each checks who may, asks the engine, and answers JSON.

use super::error::ApiError;
use super::peer::{is_admin, may_use, Peer};
use super::AppState;
use crate::providers::ProviderCallError;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use shared::api::{ConnectionList, ImportRequest, ImportResponse, TokenResponse};

type Caller = ConnectInfo<Peer>;

pub async fn health() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// Prometheus text. Anyone who can reach the socket may read it: it holds
/// connection names and counts, never a secret.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let now = chrono::Utc::now();
    let samples: Vec<crate::metrics::ConnectionSample> = state
        .engine
        .registry()
        .all()
        .iter()
        .map(|c| {
            let status = state.engine.status_of(c);
            crate::metrics::ConnectionSample {
                name: status.name,
                expires_in: status
                    .expiry
                    .map(|e| (e - now).num_milliseconds() as f64 / 1000.0),
                state: status.state.as_str(),
            }
        })
        .collect();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&samples),
    )
        .into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; the socket API is documented in the README",
    )
}

/// Checks that the caller may use `name`'s tokens. Corrupt connections
/// (no readable ACL) are the admins' only.
pub(super) fn check_use(state: &AppState, peer: &Peer, name: &str) -> Result<(), ApiError> {
    let conn =
        state.engine.registry().get(name).ok_or_else(|| {
            ApiError::from(crate::refresh::EngineError::NotFound(name.to_string()))
        })?;
    let allowed = match &conn.lock().record {
        Some(record) => may_use(peer, record),
        None => is_admin(peer, state.daemon_uid),
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::forbidden(&format!("connection `{name}`")))
    }
}

fn check_admin(state: &AppState, peer: &Peer, what: &str) -> Result<(), ApiError> {
    if is_admin(peer, state.daemon_uid) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("{what} is for the vault's own user and root only"),
        ))
    }
}

pub async fn list(
    State(state): State<AppState>,
    ConnectInfo(peer): Caller,
) -> Json<ConnectionList> {
    let admin = is_admin(&peer, state.daemon_uid);
    let connections = state
        .engine
        .registry()
        .all()
        .into_iter()
        .filter(|c| admin || c.lock().record.as_ref().is_some_and(|r| may_use(&peer, r)))
        .map(|c| state.engine.status_of(&c))
        .collect();
    Json(ConnectionList { connections })
}

pub async fn status(
    State(state): State<AppState>,
    ConnectInfo(peer): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if !is_admin(&peer, state.daemon_uid) {
        check_use(&state, &peer, &name)?;
    }
    Ok(Json(state.engine.status(&name)?).into_response())
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    rejected: bool,
}

pub async fn token(
    State(state): State<AppState>,
    ConnectInfo(peer): Caller,
    Path(name): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Result<Json<TokenResponse>, ApiError> {
    check_use(&state, &peer, &name)?;
    let t = state.engine.token(&name, q.rejected).await?;
    Ok(Json(TokenResponse {
        access_token: t.access_token,
        token_type: t.token_type,
        expiry: t.expiry,
    }))
}

pub async fn import(
    State(state): State<AppState>,
    ConnectInfo(peer): Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_admin(&state, &peer, "import")?;
    // serde's messages can quote the input (the blob); report the position only.
    let req: ImportRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not a valid import request (JSON error at line {} column {}); see the README's socket API",
            e.line(),
            e.column()
        ))
    })?;
    let req = super::authorize::unseal(&state, req)?;
    let (connection, warnings, created) = state.engine.import(&name, req).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(ImportResponse {
            connection,
            warnings,
        }),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct RemoveQuery {
    #[serde(default)]
    revoke: bool,
}

pub async fn remove(
    State(state): State<AppState>,
    ConnectInfo(peer): Caller,
    Path(name): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Result<Response, ApiError> {
    check_admin(&state, &peer, "remove")?;
    Ok(Json(state.engine.remove(&name, q.revoke).await?).into_response())
}

pub async fn refresh(
    State(state): State<AppState>,
    ConnectInfo(peer): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    check_admin(&state, &peer, "refresh")?;
    state.engine.refresh_now(&name).await?;
    Ok(Json(state.engine.status(&name)?).into_response())
}

pub async fn whoami(
    State(state): State<AppState>,
    ConnectInfo(peer): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    check_use(&state, &peer, &name)?;
    let provider_error = |e: ProviderCallError| {
        ApiError::new(StatusCode::BAD_GATEWAY, "provider_error", e.to_string())
    };
    let mut rejected = false;
    loop {
        let token = state.engine.token(&name, rejected).await?;
        let record = state
            .engine
            .registry()
            .get(&name)
            .and_then(|c| c.lock().record.clone())
            .ok_or_else(|| ApiError::from(crate::refresh::EngineError::NotFound(name.clone())))?;
        match crate::providers::whoami(&state.engine.http, &record, &token.access_token).await {
            Ok(who) => return Ok(Json(who).into_response()),
            // A 401 earns one refresh and one retry.
            Err(ProviderCallError::Unauthorized) if !rejected => rejected = true,
            Err(e) => return Err(provider_error(e)),
        }
    }
}
