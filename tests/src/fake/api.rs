//! The providers' "who am I" calls, which the binaries use to test a
//! connection, and the Bearer-token checks every API call shares.

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{lock, AccessCheck, Shared};

/// The token of an `Authorization: Bearer …` header, if there is one.
pub(super) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Box's 401 for a missing, unknown, expired or revoked access token: a
/// `WWW-Authenticate` challenge and an empty body.
pub(super) fn box_unauthorized(with_token: bool) -> Response {
    let challenge = if with_token {
        "Bearer realm=\"Service\", error=\"invalid_token\", \
         error_description=\"The access token provided is invalid.\""
    } else {
        "Bearer realm=\"Service\""
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
    )
        .into_response()
}

/// `GET /2.0/users/me`.
pub(super) async fn box_users_me(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
) -> Response {
    let mut st = lock(&shared);
    st.counters.whoami += 1;
    let Some(token) = bearer_token(&headers) else {
        return box_unauthorized(false);
    };
    let AccessCheck::Valid(grant) = st.check_access(token) else {
        return box_unauthorized(true);
    };
    let account = &st.grants[grant].account;
    let body = json!({
        "type": "user",
        "id": account.id,
        "name": account.name,
        "login": account.email,
        "created_at": "2024-01-15T09:30:00-08:00",
        "modified_at": "2026-11-01T12:00:00-08:00",
        "language": "en",
        "timezone": "America/Los_Angeles",
        "space_amount": 10_737_418_240u64,
        "space_used": 1_048_576u64,
        "max_upload_size": super::box_files::MAX_FILE_SIZE,
        "status": "active",
        "job_title": "",
        "phone": "",
        "address": "",
        "avatar_url": "https://app.box.com/api/avatar/large/11446498",
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Dropbox's 400 for a call without an `Authorization` header: plain text,
/// like all of Dropbox's "bad request" answers.
pub(super) fn dropbox_missing_auth(function: &str) -> Response {
    dropbox_bad_request(
        function,
        "Must provide HTTP header \"Authorization\" or URL parameter \"authorization\".",
    )
}

/// Dropbox's 400 for a malformed request: plain text naming the function.
pub(super) fn dropbox_bad_request(function: &str, problem: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("Error in call to API function \"{function}\": {problem}"),
    )
        .into_response()
}

/// Dropbox's 401 for a token that is not [`AccessCheck::Valid`]:
/// `expired_access_token` when it is past its lifetime,
/// `invalid_access_token` when it is unknown or revoked.
pub(super) fn dropbox_auth_error(check: &AccessCheck) -> Response {
    let tag = match check {
        AccessCheck::Expired => "expired_access_token",
        _ => "invalid_access_token",
    };
    let body = json!({
        "error_summary": format!("{tag}/.."),
        "error": {".tag": tag},
    });
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `POST /2/users/get_current_account`, an RPC call with no argument: the
/// body must be `null` with `Content-Type: application/json`.
pub(super) async fn dropbox_get_current_account(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const FUNCTION: &str = "users/get_current_account";
    let mut st = lock(&shared);
    st.counters.whoami += 1;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return dropbox_bad_request(
            FUNCTION,
            &format!(
                "Bad HTTP \"Content-Type\" header: \"{content_type}\".  Expecting one of \
                 \"application/json\", \"application/json; charset=utf-8\", \
                 \"text/plain; charset=dropbox-cors-hack\"."
            ),
        );
    }
    if body.trim_ascii() != b"null" {
        return dropbox_bad_request(
            FUNCTION,
            "request body: could not decode input as JSON (this function takes no \
             argument: send null)",
        );
    }
    let Some(token) = bearer_token(&headers) else {
        return dropbox_missing_auth(FUNCTION);
    };
    let grant = match st.check_access(token) {
        AccessCheck::Valid(grant) => grant,
        check => return dropbox_auth_error(&check),
    };
    let account = &st.grants[grant].account;
    let body = json!({
        "account_id": account.id,
        "name": {
            "given_name": "Fake",
            "surname": "User",
            "familiar_name": "Fake",
            "display_name": account.name,
            "abbreviated_name": "FU",
        },
        "email": account.email,
        "email_verified": true,
        "disabled": false,
        "country": "US",
        "locale": "en",
        "referral_link": "https://db.tt/fakeuser",
        "is_paired": false,
        "account_type": {".tag": "basic"},
        "root_info": {
            ".tag": "user",
            "root_namespace_id": "3235641",
            "home_namespace_id": "3235641",
        },
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
