//! The direct route: the requests the vault itself makes to the provider
//! for a file of this size, made by reqwest straight to the fake over
//! loopback TCP, so that the vault route has a baseline that pays for the
//! same protocol and nothing else.

use super::source::{hex, Hasher, Source};
use super::{excerpt, size_label, BOX_UPLOAD_CUTOFF, DROPBOX_CHUNK};
use anyhow::{anyhow, bail, ensure, Context as _};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use sha1::{Digest as _, Sha1};
use std::time::Duration;

/// How many 202s (still processing) a commit or download waits through.
const MAX_PROCESSING_WAITS: u32 = 60;

/// What the direct route needs: the fake's URLs and a token.
pub(super) struct Direct<'a> {
    pub(super) http: &'a reqwest::Client,
    pub(super) api: String,
    pub(super) upload: String,
    pub(super) token: String,
    pub(super) source: &'a Source,
}

/// Streams a provider's answer to `hasher`; the bytes received.
async fn direct_body(
    mut response: reqwest::Response,
    expected: u64,
    hasher: &Hasher,
) -> anyhow::Result<u64> {
    let mut received = 0u64;
    for _ in 0..=expected.saturating_add(1) {
        match response.chunk().await.context("the download broke off")? {
            Some(chunk) => {
                received += chunk.len() as u64;
                hasher.tx.send(chunk).await.context("the hasher stopped")?;
            }
            None => return Ok(received),
        }
    }
    bail!("the download sent more chunks than it has bytes")
}

/// A reqwest answer's status and (small) JSON body, or an error.
async fn json_answer(what: &str, response: reqwest::Response) -> anyhow::Result<(u16, Value)> {
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    ensure!(
        (200..300).contains(&status),
        "{what}: the fake answered {status}: {}",
        excerpt(&body)
    );
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .with_context(|| format!("{what}: the answer is not JSON: {}", excerpt(&body)))?
    };
    Ok((status, value))
}

fn retry_after(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1))
        .min(Duration::from_secs(10))
}

impl Direct<'_> {
    /// The source from `offset`, `len` bytes, as a streamed body (the
    /// request states the length).
    fn body(&self, offset: u64, len: u64) -> anyhow::Result<reqwest::Body> {
        Ok(reqwest::Body::wrap_stream(self.source.stream(offset, len)?))
    }

    /// Box: the upload the vault makes for this size; the new file's id and
    /// a description.
    pub(super) async fn box_upload(&self, name: &str) -> anyhow::Result<(String, String)> {
        let len = self.source.len;
        if len > BOX_UPLOAD_CUTOFF {
            return self.box_session_upload(name).await;
        }
        let (sha1, _) = self.source.sha1_of(0, len, None).await?;
        let form = reqwest::multipart::Form::new()
            .text(
                "attributes",
                json!({"name": name, "parent": {"id": "0"}}).to_string(),
            )
            .part(
                "file",
                reqwest::multipart::Part::stream_with_length(self.body(0, len)?, len)
                    .file_name(name.to_string()),
            );
        let response = self
            .http
            .post(format!("{}/files/content", self.upload))
            .bearer_auth(&self.token)
            .header("Content-MD5", hex(sha1.as_ref()))
            .multipart(form)
            .send()
            .await?;
        let (_, answer) = json_answer("Box upload", response).await?;
        Ok((
            file_id(&answer)?,
            "one multipart POST /api/2.0/files/content (the vault's route at or below its 50 MiB cutoff), SHA-1 first".into(),
        ))
    }

    async fn box_session_upload(&self, name: &str) -> anyhow::Result<(String, String)> {
        let len = self.source.len;
        let response = self
            .http
            .post(format!("{}/files/upload_sessions", self.upload))
            .bearer_auth(&self.token)
            .json(&json!({"folder_id": "0", "file_size": len, "file_name": name}))
            .send()
            .await?;
        let (_, session) = json_answer("Box upload session", response).await?;
        let sid = session
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("an upload session without an id"))?
            .to_string();
        let part_size = session
            .get("part_size")
            .and_then(Value::as_u64)
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow!("an upload session without a part size"))?;
        let url = format!("{}/files/upload_sessions/{sid}", self.upload);
        let mut whole = Some(Sha1::new());
        let mut parts = Vec::new();
        let count = len.div_ceil(part_size);
        for index in 0..count {
            let offset = index * part_size;
            let part_len = part_size.min(len - offset);
            let (sha1, w) = self.source.sha1_of(offset, part_len, whole.take()).await?;
            whole = w;
            let response = self
                .http
                .put(&url)
                .bearer_auth(&self.token)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .header(reqwest::header::CONTENT_LENGTH, part_len)
                .header(
                    reqwest::header::CONTENT_RANGE,
                    format!("bytes {offset}-{}/{len}", offset + part_len - 1),
                )
                .header("Digest", format!("sha={}", STANDARD.encode(sha1.as_ref())))
                .body(self.body(offset, part_len)?)
                .send()
                .await?;
            let (_, answer) = json_answer("Box part", response).await?;
            parts.push(
                answer
                    .get("part")
                    .cloned()
                    .ok_or_else(|| anyhow!("a part answer without its part"))?,
            );
        }
        let whole = whole.ok_or_else(|| anyhow!("the whole-file SHA-1 went missing"))?;
        let digest = format!("sha={}", STANDARD.encode(whole.finalize()));
        let commit = json!({"parts": parts, "attributes": {"name": name, "parent": {"id": "0"}}});
        for _ in 0..MAX_PROCESSING_WAITS {
            let response = self
                .http
                .post(format!("{url}/commit"))
                .bearer_auth(&self.token)
                .header("Digest", digest.clone())
                .json(&commit)
                .send()
                .await?;
            if response.status() == reqwest::StatusCode::ACCEPTED {
                tokio::time::sleep(retry_after(&response)).await;
                continue;
            }
            let (_, answer) = json_answer("Box commit", response).await?;
            return Ok((
                file_id(&answer)?,
                format!(
                    "upload session: {count} × {} parts PUT one after another, each SHA-1'd first (its Digest), then the commit with the whole file's SHA-1",
                    size_label(part_size)
                ),
            ));
        }
        bail!("the fake kept answering 202 to the commit")
    }

    /// Box: `GET /2.0/files/{id}/content`, then the 302's URL, without the
    /// token (as the vault does).
    pub(super) async fn box_download(&self, id: &str, hasher: &Hasher) -> anyhow::Result<u64> {
        let url = format!("{}/files/{id}/content", self.api);
        for _ in 0..MAX_PROCESSING_WAITS {
            let response = self.http.get(&url).bearer_auth(&self.token).send().await?;
            match response.status().as_u16() {
                301 | 302 | 303 | 307 => {
                    let location = response
                        .headers()
                        .get(reqwest::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .ok_or_else(|| anyhow!("a redirect without a Location"))?
                        .to_string();
                    let content = self.http.get(&location).send().await?;
                    ensure!(
                        content.status().is_success(),
                        "the download URL answered {}",
                        content.status()
                    );
                    return direct_body(content, self.source.len, hasher).await;
                }
                200 => return direct_body(response, self.source.len, hasher).await,
                202 => tokio::time::sleep(retry_after(&response)).await,
                status => bail!("the fake answered the download with {status}"),
            }
        }
        bail!("the fake kept answering 202 to the download")
    }

    /// Dropbox: one content-host call with `Dropbox-API-Arg`, carrying the
    /// source's bytes `range` (or an empty body).
    async fn dropbox_call(
        &self,
        function: &str,
        arg: &Value,
        range: Option<(u64, u64)>,
    ) -> anyhow::Result<Value> {
        let (body, len) = match range {
            Some((offset, len)) => (self.body(offset, len)?, len),
            None => (reqwest::Body::from(Vec::new()), 0),
        };
        let response = self
            .http
            .post(format!("{}/{function}", self.upload))
            .bearer_auth(&self.token)
            .header("Dropbox-API-Arg", arg.to_string())
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body)
            .send()
            .await?;
        Ok(json_answer(function, response).await?.1)
    }

    /// Dropbox: the upload the vault makes for this size; a description.
    pub(super) async fn dropbox_upload(&self, path: &str) -> anyhow::Result<String> {
        let len = self.source.len;
        let commit = json!({"path": path, "mode": "overwrite", "autorename": false, "mute": false});
        if len <= DROPBOX_CHUNK {
            self.dropbox_call("files/upload", &commit, Some((0, len)))
                .await?;
            return Ok(
                "one POST files/upload (the vault's route at or below one 48 MiB chunk)".into(),
            );
        }
        let started = self
            .dropbox_call(
                "files/upload_session/start",
                &json!({"close": false}),
                Some((0, DROPBOX_CHUNK)),
            )
            .await?;
        let session = started
            .get("session_id")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("an upload session without an id"))?
            .to_string();
        let chunks = len.div_ceil(DROPBOX_CHUNK);
        for index in 1..chunks {
            let offset = index * DROPBOX_CHUNK;
            let n = DROPBOX_CHUNK.min(len - offset);
            self.dropbox_call(
                "files/upload_session/append_v2",
                &json!({"cursor": {"session_id": session, "offset": offset}, "close": false}),
                Some((offset, n)),
            )
            .await?;
        }
        self.dropbox_call(
            "files/upload_session/finish",
            &json!({"cursor": {"session_id": session, "offset": len}, "commit": commit}),
            None,
        )
        .await?;
        Ok(format!(
            "upload_session/start + {} × append_v2 + finish (empty), {} chunks one after another",
            chunks - 1,
            size_label(DROPBOX_CHUNK)
        ))
    }

    pub(super) async fn dropbox_download(
        &self,
        path: &str,
        hasher: &Hasher,
    ) -> anyhow::Result<u64> {
        let response = self
            .http
            .post(format!("{}/files/download", self.upload))
            .bearer_auth(&self.token)
            .header("Dropbox-API-Arg", json!({"path": path}).to_string())
            .send()
            .await?;
        ensure!(
            response.status().is_success(),
            "the fake answered the download with {}",
            response.status()
        );
        direct_body(response, self.source.len, hasher).await
    }
}

/// The file id in a Box upload answer `{"entries":[{"id":…}]}`.
fn file_id(answer: &Value) -> anyhow::Result<String> {
    answer
        .pointer("/entries/0/id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| anyhow!("an upload answer without the file's id"))
}
