//! The transfer routes: list, download, upload, create folder, delete.
//! Each checks the caller against the connection's ACL, then hands the
//! path (unchecked here: `files` checks it) to the file service.
//!
//! Invariant: every transfer error has the status `interface.md` gives its
//! kind (400 bad input, 403, 404, 502 the provider…); 409 is never one of
//! them, since 409 tells the caller to re-authorize the connection, and a
//! folder that is not empty or a file in the way is not fixed that way.

use super::error::ApiError;
use super::peer::Peer;
use super::routes::check_use;
use super::AppState;
use crate::providers::ProviderCallError;
use crate::transfer::path::RemotePath;
use crate::transfer::TransferError;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::TryStreamExt;
use shared::api::{HASH_HEADER, HASH_KIND_HEADER};

type Caller = ConnectInfo<Peer>;

impl From<TransferError> for ApiError {
    fn from(e: TransferError) -> Self {
        let (status, code) = match &e {
            TransferError::BadPath(_)
            | TransferError::BodyBrokeOff { .. }
            | TransferError::Refused(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            TransferError::BodyStalled { .. } => (StatusCode::REQUEST_TIMEOUT, "body_stalled"),
            TransferError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            TransferError::Conflict { kind, .. } => (StatusCode::BAD_REQUEST, kind.code()),
            TransferError::LengthRequired => (StatusCode::LENGTH_REQUIRED, "length_required"),
            TransferError::Spool(..) => (StatusCode::INTERNAL_SERVER_ERROR, "spool_error"),
            TransferError::Unsupported(_) => (StatusCode::NOT_IMPLEMENTED, "unsupported"),
            TransferError::Provider(ProviderCallError::Token { status, code, .. }) => (
                StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                *code,
            ),
            TransferError::Provider(_) | TransferError::Integrity(_) => {
                (StatusCode::BAD_GATEWAY, "provider_error")
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// The query parameters of a transfer route, strictly decoded: a value
/// that is not UTF-8 after percent-decoding is refused, never replaced.
struct TransferQuery {
    path: String,
    recursive: bool,
}

fn parse_query(raw: Option<String>) -> Result<TransferQuery, ApiError> {
    let raw = raw.unwrap_or_default();
    let mut path = None;
    let mut recursive = false;
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = value.replace('+', " ");
        let value = percent_encoding::percent_decode_str(&value)
            .decode_utf8()
            .map_err(|_| {
                ApiError::bad_request(format!("query parameter `{key}` is not valid UTF-8"))
            })?;
        match key {
            "path" => path = Some(value.into_owned()),
            "recursive" => recursive = matches!(value.as_ref(), "true" | "1" | "yes"),
            _ => {}
        }
    }
    let path = path.ok_or_else(|| {
        ApiError::bad_request("the `path` query parameter is required, e.g. ?path=/folder/file")
    })?;
    Ok(TransferQuery { path, recursive })
}

/// Refuses a request that names the connection's root folder itself
/// (`path=` or `path=/`) where only something inside it makes sense.
/// A path that is not valid is left to `files`, which says why.
fn refuse_root(client_path: &str, refusal: &str) -> Result<(), TransferError> {
    match RemotePath::new(None, client_path) {
        Ok(path) if path.is_root() => Err(TransferError::Refused(refusal.to_string())),
        _ => Ok(()),
    }
}

pub async fn list(
    State(state): State<AppState>,
    ConnectInfo(peer): Caller,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    check_use(&state, &peer, &name)?;
    let q = parse_query(raw)?;
    Ok(Json(state.files.list(&name, &q.path).await?).into_response())
}

pub async fn mkdir(
    State(state): State<AppState>,
    ConnectInfo(peer): Caller,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    check_use(&state, &peer, &name)?;
    let q = parse_query(raw)?;
    refuse_root(
        &q.path,
        "the connection's root folder always exists: name a folder inside it, e.g. ?path=/backups (token-vault mkdir NAME:/backups)",
    )?;
    let result = state.files.mkdir(&name, &q.path).await?;
    let status = if result.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(result)).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    ConnectInfo(peer): Caller,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    check_use(&state, &peer, &name)?;
    let q = parse_query(raw)?;
    Ok(Json(state.files.delete(&name, &q.path, q.recursive).await?).into_response())
}

pub async fn download(
    State(state): State<AppState>,
    ConnectInfo(peer): Caller,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    check_use(&state, &peer, &name)?;
    let q = parse_query(raw)?;
    refuse_root(
        &q.path,
        "the connection's root folder is not a file: name a file inside it, e.g. ?path=/folder/file (token-vault get NAME:/folder/file); to see what is there, list it (token-vault ls NAME:)",
    )?;
    let download = state.files.download(&name, &q.path).await?;
    let stream = download
        .response
        .bytes_stream()
        .map_err(std::io::Error::other);
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(len) = download.size {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if let Some((kind, hash)) = download.hash {
        if let Ok(hash) = HeaderValue::from_str(&hash) {
            headers.insert(HASH_HEADER, hash);
            headers.insert(HASH_KIND_HEADER, HeaderValue::from_static(kind.as_str()));
        }
    }
    Ok(response)
}

pub async fn upload(
    State(state): State<AppState>,
    ConnectInfo(peer): Caller,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_use(&state, &peer, &name)?;
    let q = parse_query(raw)?;
    let len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or(TransferError::LengthRequired)?;
    let result = state.files.upload(&name, &q.path, body, len).await?;
    state.metrics.transfer("upload", len);
    let status = if result.replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(result)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::ConflictKind;

    #[test]
    fn queries_decode_strictly() {
        let q = parse_query(Some("path=%2Fa%20b%2F%C3%A9&recursive=true".into())).unwrap();
        assert_eq!(q.path, "/a b/é");
        assert!(q.recursive);
        assert!(parse_query(Some("path=%FF%FE".into())).is_err());
        assert!(parse_query(Some("recursive=true".into())).is_err());
        assert_eq!(parse_query(Some("path=a+b".into())).unwrap().path, "a b");
    }

    #[test]
    fn conflicts_are_bad_input_with_their_own_code_never_409() {
        for (kind, code) in [
            (ConflictKind::FolderNotEmpty, "folder_not_empty"),
            (ConflictKind::InTheWay, "in_the_way"),
            (ConflictKind::IsAFolder, "is_a_folder"),
            (ConflictKind::NotAFolder, "not_a_folder"),
            (ConflictKind::NotAFile, "not_a_file"),
            (ConflictKind::Other, "conflict"),
        ] {
            let e = ApiError::from(TransferError::conflict(kind, "`/a` is what it is"));
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, code),
                "{kind:?}"
            );
            assert!(e.message.starts_with("`/a` is what it is"), "{}", e.message);
        }
        let stalled = ApiError::from(TransferError::BodyStalled {
            received: 1,
            declared: 2,
            idle: std::time::Duration::from_secs(60),
        });
        assert_eq!(stalled.status, StatusCode::REQUEST_TIMEOUT);
        assert!(stalled.message.contains("1m"), "{}", stalled.message);
    }

    #[test]
    fn only_the_root_itself_is_refused() {
        for root in ["", "/", "//"] {
            assert!(refuse_root(root, "no").is_err(), "{root:?}");
        }
        for other in ["/a", "a/b", "/.."] {
            assert!(refuse_root(other, "no").is_ok(), "{other:?}");
        }
    }
}
