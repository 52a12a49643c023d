//! The routes of the headless ways in: pending authorizations (bootstrap
//! mode and the device grant) and the recipient key for sealed blobs. All
//! are for the daemon's own uid and root, like import.

use super::error::ApiError;
use super::peer::{is_admin, Peer};
use super::AppState;
use crate::pending::AuthorizeError;
use crate::recipient::{OpenError, RecipientError};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use shared::api::ImportRequest;
use shared::authorization::{
    AuthorizationList, AuthorizationRequest, CompleteRequest, RecipientResponse,
};
use shared::sealed::SealError;

type Caller = ConnectInfo<Peer>;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/authorizations", post(start).get(list))
        .route("/v1/authorizations/{id}", get(status).delete(cancel))
        .route("/v1/authorizations/{id}/complete", post(complete))
        .route("/v1/recipient", get(recipient))
}

/// The audit log's operation name for these paths.
pub(super) fn operation(method: &str, segments: &[&str]) -> String {
    match (method, segments) {
        ("POST", ["v1", "authorizations"]) => "authorize",
        ("GET", ["v1", "authorizations"]) => "authorizations",
        ("GET", ["v1", "authorizations", _]) => "authorization",
        ("DELETE", ["v1", "authorizations", _]) => "authorize-cancel",
        ("POST", ["v1", "authorizations", _, "complete"]) => "authorize-complete",
        ("GET", ["v1", "recipient"]) => "recipient",
        _ => "unknown",
    }
    .into()
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

/// Decodes a JSON body without ever quoting it (it may hold a secret).
fn decode<T: DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not a valid {what} (JSON error at line {} column {}); see the README's socket API",
            e.line(),
            e.column()
        ))
    })
}

impl From<AuthorizeError> for ApiError {
    fn from(e: AuthorizeError) -> Self {
        let (status, code) = match &e {
            AuthorizeError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AuthorizeError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            // 409 is reserved for "needs re-authorization" (interface.md):
            // these refusals are bad input, each with a code of its own.
            AuthorizeError::Exists(_) => (StatusCode::BAD_REQUEST, "exists"),
            AuthorizeError::StateMismatch => (StatusCode::BAD_REQUEST, "state_mismatch"),
            AuthorizeError::AlreadyUsed => (StatusCode::BAD_REQUEST, "already_used"),
            AuthorizeError::Expired(_) => (StatusCode::GONE, "expired"),
            AuthorizeError::NotPending(_) => (StatusCode::BAD_REQUEST, "not_pending"),
            AuthorizeError::Denied(_) => (StatusCode::BAD_REQUEST, "access_denied"),
            AuthorizeError::Provider(_) => (StatusCode::BAD_GATEWAY, "provider_error"),
            AuthorizeError::TooMany => (StatusCode::TOO_MANY_REQUESTS, "too_many"),
            AuthorizeError::Engine(_) => {
                let AuthorizeError::Engine(inner) = e else {
                    unreachable!()
                };
                return ApiError::from(inner);
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<OpenError> for ApiError {
    fn from(e: OpenError) -> Self {
        let (status, code) = match &e {
            OpenError::Sealed(SealError::WrongRecipient { .. })
            | OpenError::Key(RecipientError::NoKey) => (StatusCode::BAD_REQUEST, "wrong_recipient"),
            OpenError::Sealed(SealError::Tampered) => (StatusCode::BAD_REQUEST, "tampered"),
            OpenError::Sealed(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            OpenError::Key(_) => (StatusCode::INTERNAL_SERVER_ERROR, "recipient_error"),
        };
        ApiError::new(status, code, format!("nothing was imported: {e}"))
    }
}

/// For `PUT /v1/connections/{name}`: a sealed blob is opened here, with the
/// vault's recipient key, before the import sees it; a plain one passes.
pub(super) fn unseal(state: &AppState, mut req: ImportRequest) -> Result<ImportRequest, ApiError> {
    if shared::sealed::is_sealed(req.blob.expose()) {
        req.blob = state
            .authorizations
            .recipient
            .open(req.blob.expose())
            .map_err(|e| {
                tracing::warn!(error = %e, "a sealed blob was refused");
                ApiError::from(e)
            })?;
    }
    Ok(req)
}

async fn start(
    State(state): State<AppState>,
    ConnectInfo(peer): Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_admin(&state, &peer, "authorize")?;
    let req: AuthorizationRequest = decode(&body, "authorization request")?;
    let info = state
        .authorizations
        .start(&state.engine, req)
        .await
        .map_err(ApiError::from)?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

async fn list(
    State(state): State<AppState>,
    ConnectInfo(peer): Caller,
) -> Result<Json<AuthorizationList>, ApiError> {
    check_admin(&state, &peer, "listing authorizations")?;
    Ok(Json(AuthorizationList {
        authorizations: state.authorizations.list(),
    }))
}

async fn status(
    State(state): State<AppState>,
    ConnectInfo(peer): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    check_admin(&state, &peer, "an authorization's status")?;
    Ok(Json(state.authorizations.status(&id)?).into_response())
}

async fn cancel(
    State(state): State<AppState>,
    ConnectInfo(peer): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    check_admin(&state, &peer, "cancelling an authorization")?;
    Ok(Json(state.authorizations.cancel(&id)?).into_response())
}

async fn complete(
    State(state): State<AppState>,
    ConnectInfo(peer): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_admin(&state, &peer, "completing an authorization")?;
    let req: CompleteRequest = decode(&body, "completion request")?;
    let info = state
        .authorizations
        .complete(&state.engine, &id, &req.response)
        .await?;
    let status = if info.created == Some(true) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info)).into_response())
}

async fn recipient(
    State(state): State<AppState>,
    ConnectInfo(peer): Caller,
) -> Result<Json<RecipientResponse>, ApiError> {
    check_admin(&state, &peer, "the recipient key")?;
    let r = state.authorizations.recipient.recipient().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "recipient_error",
            e.to_string(),
        )
    })?;
    Ok(Json(RecipientResponse {
        recipient: r.encode(),
        key_id: r.key_id_hex(),
    }))
}
