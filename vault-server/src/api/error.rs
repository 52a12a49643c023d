//! Every error the socket answers, in the one shape of `interface.md`:
//! `{"error":{"code","message"}}` with a fitting status.

use crate::refresh::EngineError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use shared::api::{ErrorBody, ErrorDetail};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn forbidden(what: &str) -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("{what}: your uid is not allowed; the connection's --allow-uid/--allow-gid list (set at import) decides who may"),
        )
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let (status, code) = match &e {
            EngineError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            EngineError::NeedsReauth { .. } => (StatusCode::CONFLICT, "needs_reauth"),
            EngineError::Corrupt { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "corrupt"),
            EngineError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            EngineError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            // 409 means "needs re-authorization" and only that (interface.md).
            EngineError::Conflict(_) => (StatusCode::BAD_REQUEST, "exists"),
            EngineError::Provider(_) => (StatusCode::BAD_GATEWAY, "provider_error"),
            EngineError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store_error"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
