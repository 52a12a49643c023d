//! Box downloads: Box serves a file's content from a short-lived URL on
//! its download servers, so a download asks `/content`, waits out 202s
//! and follows the redirect, apart from the id-and-path work elsewhere.
//!
//! Invariants: the hash given is Box's current SHA-1 of the file, never a
//! cached one; the in-flight slot is held until the content has been read;
//! a failing download server is asked again, with a fresh URL, a bounded
//! number of times.

use super::{processing_wait, BoxFiles, MAX_PROCESSING_WAITS};
use crate::providers::call::hold_until_body_ends;
use crate::providers::{read_body, status_error, Download, ProviderCallError};
use crate::transfer::TransferError;
use reqwest::header::LOCATION;
use serde_json::Value;
use shared::api::HashKind;
use std::time::Duration;

/// Tries of a download's redirect target (Box's download servers) before
/// giving up; each try asks `/content` for a fresh URL, after a pause.
const MAX_REDIRECT_ATTEMPTS: u32 = 3;
const REDIRECT_RETRY_WAIT: Duration = Duration::from_secs(1);

impl BoxFiles {
    /// File `id`'s content, streamed, with its SHA-1 as Box has it now (a
    /// cached one may predate a new version). `NotFound` if the id is gone.
    /// The in-flight slot is held until the content has been read.
    pub(super) async fn download_file(&self, id: &str) -> Result<Download, TransferError> {
        let info_url = format!("{}/files/{id}", self.api);
        let response = self
            .caller
            .send(|http, token| {
                Ok(http
                    .get(&info_url)
                    .bearer_auth(token.expose())
                    .query(&[("fields", "sha1,size")]))
            })
            .await?;
        let status = response.status().as_u16();
        let body = read_body(response).await?;
        match status {
            200 => {}
            404 => return Err(TransferError::NotFound(format!("Box file {id}"))),
            _ => return Err(status_error(status, &body).into()),
        }
        let sha1 = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("sha1")?.as_str().map(str::to_string));
        let url = format!("{}/files/{id}/content", self.api);
        let mut redirects_failed = 0;
        for _ in 0..MAX_PROCESSING_WAITS {
            let (response, slot) = self
                .caller
                .send_holding(|http, token| Ok(http.get(&url).bearer_auth(token.expose())))
                .await?;
            let status = response.status().as_u16();
            let content = match status {
                // The content lives elsewhere; the short-lived URL needs no
                // token. A failure there is retried with a fresh URL.
                301 | 302 | 303 | 307 => match self.follow(&response).await {
                    Ok(content) => content,
                    Err(e) if redirects_failed + 1 < MAX_REDIRECT_ATTEMPTS => {
                        redirects_failed += 1;
                        tracing::info!(error = %e, "Box's download URL failed; asking for a new one");
                        drop(slot);
                        tokio::time::sleep(REDIRECT_RETRY_WAIT).await;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                },
                200 => response,
                202 => {
                    drop(slot);
                    tokio::time::sleep(processing_wait(&response)).await;
                    continue;
                }
                404 => return Err(TransferError::NotFound(format!("Box file {id}"))),
                _ => {
                    let body = read_body(response).await.unwrap_or_default();
                    return Err(status_error(status, &body).into());
                }
            };
            return Ok(Download {
                size: content.content_length(),
                hash: sha1.map(|h| (HashKind::Sha1, h)),
                response: hold_until_body_ends(content, slot),
            });
        }
        Err(ProviderCallError::BadAnswer("Box kept answering 202 to the download".into()).into())
    }

    /// The answer of the URL a download redirect points to, if it is a
    /// success.
    async fn follow(
        &self,
        redirect: &reqwest::Response,
    ) -> Result<reqwest::Response, ProviderCallError> {
        let location = redirect
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ProviderCallError::BadAnswer("a redirect without a Location".into()))?;
        let content = self
            .caller
            .http
            .get(location)
            .send()
            .await
            .map_err(|e| ProviderCallError::from_reqwest(&e))?;
        if !content.status().is_success() {
            let status = content.status().as_u16();
            return Err(status_error(
                status,
                &read_body(content).await.unwrap_or_default(),
            ));
        }
        Ok(content)
    }
}
