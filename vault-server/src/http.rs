//! The daemon's one HTTP client for talking to providers, and the small
//! helpers every provider call shares: bounded body reads, Retry-After,
//! and error text without URLs' query strings.
//!
//! Invariant: providers are reached with rustls, without following
//! redirects for token calls (a redirect could carry a secret elsewhere),
//! and no response is read past its size bound.

use reqwest::header::HeaderMap;
use std::time::Duration;

/// How long a connection to a provider may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a token-endpoint call may take in all; a hung endpoint becomes
/// a transitory error instead of a stuck refresh.
const TOKEN_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The daemon's HTTP client for token endpoints and small API calls.
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
}

impl HttpClient {
    pub fn new() -> Result<HttpClient, reqwest::Error> {
        let inner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOKEN_CALL_TIMEOUT)
            .user_agent(concat!("token-vault/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpClient { inner })
    }

    pub fn inner(&self) -> &reqwest::Client {
        &self.inner
    }
}

/// Reads a response body, refusing more than `limit` bytes.
pub async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(format!("and its body is larger than {limit} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(format!("and its body broke off: {}", describe(&e))),
        }
    }
}

/// The `Retry-After` header in seconds, when present and numeric.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A transport error in words, without the URL's query (which may carry a
/// token for some providers) and with its root cause.
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
