//! What differs between providers beyond OAuth itself: the who-am-I call
//! and revocation (transfers follow). Each provider has its own file; this
//! one dispatches and holds the shared error type.
//!
//! Invariant: no error here quotes a response body or a token.

mod box_;
pub mod call;
mod dropbox;
mod google;
mod onedrive;

pub use box_::{BoxCache, BoxFiles, MAX_SIMPLE_UPLOAD as BOX_MAX_SIMPLE_UPLOAD};
pub use dropbox::{dropbox_arg, DropboxFiles};

/// Dropbox's default upload chunk (rclone's).
pub fn dropbox_default_chunk() -> u64 {
    dropbox::DEFAULT_CHUNK
}

/// The most one Dropbox upload request may carry.
pub fn dropbox_max_chunk() -> u64 {
    dropbox::MAX_CHUNK
}

use crate::http::HttpClient;
use crate::record::Record;
use crate::transfer::path::RemotePath;
use crate::transfer::spool::Incoming;
use crate::transfer::TransferError;
use shared::api::{Entry, HashKind, WhoAmI};
use shared::{Provider, ProviderKind, Secret};
use std::path::Path;

/// The largest who-am-I or revoke answer we read.
pub const MAX_SMALL_RESPONSE: usize = 1024 * 1024;

/// A provider call that did not work.
#[derive(Debug, thiserror::Error)]
pub enum ProviderCallError {
    /// The access token was refused (401): refresh and retry once.
    #[error("the provider refused the access token (HTTP 401)")]
    Unauthorized,
    #[error("the provider answered HTTP {status}{detail}")]
    Status { status: u16, detail: String },
    #[error("cannot reach the provider: {0}")]
    Transport(String),
    #[error("the provider's answer is not what it should be: {0}")]
    BadAnswer(String),
    #[error("{0}")]
    Unsupported(String),
    /// The vault has no usable token for the connection (needs-reauth, backing off…).
    #[error("{message}")]
    Token {
        status: u16,
        code: &'static str,
        message: String,
    },
}

impl ProviderCallError {
    pub fn from_reqwest(e: &reqwest::Error) -> Self {
        ProviderCallError::Transport(crate::http::describe(e))
    }
}

/// The base URL of `kind`'s API, or an error saying it has none.
fn api_base(provider: &Provider) -> Result<&str, ProviderCallError> {
    provider.endpoints.api.as_deref().ok_or_else(|| {
        ProviderCallError::Unsupported(format!(
            "the {} provider has no API URL; import it with --api-url",
            provider.kind
        ))
    })
}

/// A download in progress: the provider's streaming answer.
pub struct Download {
    pub size: Option<u64>,
    /// The provider's hash of the content, hex (Box SHA-1, Dropbox
    /// `content_hash`), and which it is.
    pub hash: Option<(HashKind, String)>,
    pub response: reqwest::Response,
}

/// File operations on one connection's account. Paths are already checked
/// and joined with the connection's root.
#[async_trait::async_trait]
pub trait FileApi: Send + Sync {
    async fn list(&self, path: &RemotePath) -> Result<Vec<Entry>, TransferError>;
    /// Creates the folder and any missing parents; `(id, created)`.
    async fn mkdir(&self, path: &RemotePath) -> Result<(String, bool), TransferError>;
    async fn delete(&self, path: &RemotePath, recursive: bool) -> Result<(), TransferError>;
    async fn download(&self, path: &RemotePath) -> Result<Download, TransferError>;
    /// Stores `incoming` at `path` (a new version if a file is there);
    /// `(entry, replaced)`.
    async fn upload(
        &self,
        path: &RemotePath,
        incoming: &mut Incoming,
        spool_dir: &Path,
    ) -> Result<(Entry, bool), TransferError>;
}

/// Reads a bounded answer body; a failure to read is a transport error.
pub(crate) async fn read_body(response: reqwest::Response) -> Result<Vec<u8>, ProviderCallError> {
    crate::http::read_limited(response, MAX_SMALL_RESPONSE)
        .await
        .map_err(ProviderCallError::BadAnswer)
}

/// A provider error status with its safe summary.
pub(crate) fn status_error(status: u16, body: &[u8]) -> ProviderCallError {
    ProviderCallError::Status {
        status,
        detail: error_summary(body),
    }
}

/// Reads a JSON answer, mapping 401 and other failures.
async fn json_answer(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<serde_json::Value, ProviderCallError> {
    let response = response.map_err(|e| ProviderCallError::from_reqwest(&e))?;
    let status = response.status().as_u16();
    let body = crate::http::read_limited(response, MAX_SMALL_RESPONSE)
        .await
        .map_err(ProviderCallError::BadAnswer)?;
    if status == 401 {
        return Err(ProviderCallError::Unauthorized);
    }
    if !(200..300).contains(&status) {
        return Err(ProviderCallError::Status {
            status,
            detail: error_summary(&body),
        });
    }
    serde_json::from_slice(&body).map_err(|_| ProviderCallError::BadAnswer("not JSON".into()))
}

/// A short, safe summary of a provider error body: its error code fields
/// only (Box `code`, Dropbox `error_summary`, OAuth `error`), never the body.
fn error_summary(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    ["code", "error_summary", "error"]
        .iter()
        .find_map(|k| v.get(k).and_then(|x| x.as_str()))
        .map(|s| {
            format!(
                " ({})",
                s.chars()
                    .filter(|c| !c.is_control())
                    .take(120)
                    .collect::<String>()
            )
        })
        .unwrap_or_default()
}

/// Sends a who-am-I request and describes the account as `name <email>`
/// from the two JSON pointers given.
async fn account(
    request: reqwest::RequestBuilder,
    token: &Secret,
    name_at: &str,
    email_at: &str,
) -> Result<WhoAmI, ProviderCallError> {
    let details = json_answer(request.bearer_auth(token.expose()).send().await).await?;
    let field = |at: &str| {
        details
            .pointer(at)
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string()
    };
    Ok(WhoAmI {
        account: format!("{} <{}>", field(name_at), field(email_at)),
        details,
    })
}

/// Asks the provider who the access token belongs to.
pub async fn whoami(
    http: &HttpClient,
    record: &Record,
    access_token: &Secret,
) -> Result<WhoAmI, ProviderCallError> {
    let provider = Provider::resolve(record.provider, &record.endpoints)
        .map_err(|e| ProviderCallError::Unsupported(e.to_string()))?;
    let base = api_base(&provider)?;
    match record.provider {
        ProviderKind::Box => box_::whoami(http, base, access_token).await,
        ProviderKind::Dropbox => dropbox::whoami(http, base, access_token).await,
        ProviderKind::Drive => google::whoami(http, base, access_token).await,
        ProviderKind::OneDrive => onedrive::whoami(http, base, access_token).await,
        ProviderKind::Custom => Err(ProviderCallError::Unsupported(
            "`test` does not know the who-am-I call of a custom provider".into(),
        )),
    }
}

/// Revokes the connection's grant upstream (RFC 7009, or Dropbox's call).
pub async fn revoke(http: &HttpClient, record: &Record) -> Result<(), ProviderCallError> {
    let provider = Provider::resolve(record.provider, &record.endpoints)
        .map_err(|e| ProviderCallError::Unsupported(e.to_string()))?;
    let Some(url) = provider.endpoints.revoke.as_deref() else {
        return Err(ProviderCallError::Unsupported(format!(
            "the {} provider has no revoke endpoint; revoke the app's access in the provider's account settings",
            record.provider
        )));
    };
    match record.provider {
        ProviderKind::Dropbox => dropbox::revoke(http, url, &record.tokens.access_token).await,
        _ => {
            // RFC 7009: revoking the refresh token ends the whole grant.
            let token = record
                .tokens
                .refresh_token
                .as_ref()
                .unwrap_or(&record.tokens.access_token);
            let mut form = vec![
                ("token", token.expose()),
                ("client_id", record.client_id.as_str()),
            ];
            if let Some(s) = &record.client_secret {
                form.push(("client_secret", s.expose()));
            }
            let response = http.inner().post(url).form(&form).send().await;
            expect_success(response).await
        }
    }
}

/// Checks that a call succeeded, without reading more than a bounded body.
async fn expect_success(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<(), ProviderCallError> {
    let response = response.map_err(|e| ProviderCallError::from_reqwest(&e))?;
    let status = response.status().as_u16();
    let body = crate::http::read_limited(response, MAX_SMALL_RESPONSE)
        .await
        .unwrap_or_default();
    match status {
        200..=299 => Ok(()),
        401 => Err(ProviderCallError::Unauthorized),
        _ => Err(ProviderCallError::Status {
            status,
            detail: error_summary(&body),
        }),
    }
}
