//! The refresh call to a provider's token endpoint, and what its answer
//! means.
//!
//! Invariant: nothing this module returns quotes a request or response
//! body; a failure is classified as transitory (retry, keep the old tokens)
//! or permanent (the grant is gone) and described in our own words plus the
//! provider's `error` and `error_description`.

use crate::http::{read_limited, HttpClient};
use serde::Deserialize;
use shared::{ClientAuth, Provider, Secret};
use std::time::Duration;

/// The largest token response we read; real ones are under 4 KiB.
pub const MAX_TOKEN_RESPONSE: usize = 1024 * 1024;

/// New tokens from the provider.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub access_token: Secret,
    pub token_type: String,
    /// `None` when the provider does not rotate (Dropbox, Google).
    pub refresh_token: Option<Secret>,
    pub expires_in: Option<i64>,
}

/// What one refresh attempt came to.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// The provider issued new tokens.
    Refreshed(TokenGrant),
    /// A failure that may pass (network, 5xx, 429, a garbled answer): keep
    /// the old tokens and retry, no sooner than `retry_after` if given.
    TransitoryError {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The provider refused the grant (`invalid_grant`) or the client: only
    /// the user can fix it, by authorizing again.
    PermanentError { reason: String },
}

#[derive(Deserialize)]
struct RawGrant {
    access_token: Option<String>,
    token_type: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawError {
    error: Option<String>,
    error_description: Option<String>,
}

/// Spends `refresh_token` at the provider's token endpoint.
pub async fn refresh(
    http: &HttpClient,
    provider: &Provider,
    client_id: &str,
    client_secret: Option<&Secret>,
    refresh_token: &Secret,
) -> RefreshOutcome {
    let form: Vec<(&str, &str)> = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
    ];
    match post_token_form(
        http,
        provider,
        client_id,
        client_secret,
        form,
        MAX_TOKEN_RESPONSE,
    )
    .await
    {
        Ok(answer) => classify(answer.status, answer.retry_after, &answer.body),
        Err(failure) => RefreshOutcome::TransitoryError {
            reason: failure.reason,
            retry_after: failure.retry_after,
        },
    }
}

/// A token endpoint's raw answer. The body may hold tokens: it is zeroed on drop.
pub(crate) struct TokenAnswer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: zeroize::Zeroizing<Vec<u8>>,
}

/// Why no answer could be read: always transitory.
pub(crate) struct NoAnswer {
    pub reason: String,
    pub retry_after: Option<Duration>,
}

/// POSTs `form` to the provider's token endpoint with the provider's client
/// authentication, reading at most `limit` bytes of the answer. Shared by
/// every grant (refresh, code, device), so they authenticate alike.
pub(crate) async fn post_token_form(
    http: &HttpClient,
    provider: &Provider,
    client_id: &str,
    client_secret: Option<&Secret>,
    mut form: Vec<(&str, &str)>,
    limit: usize,
) -> Result<TokenAnswer, NoAnswer> {
    let mut request = http.inner().post(&provider.endpoints.token);
    match provider.client_auth {
        ClientAuth::RequestBody => {
            form.push(("client_id", client_id));
            if let Some(s) = client_secret {
                form.push(("client_secret", s.expose()));
            }
        }
        ClientAuth::BasicAuth => {
            request = request.basic_auth(client_id, client_secret.map(Secret::expose));
        }
    }
    let response = request.form(&form).send().await.map_err(|e| NoAnswer {
        reason: format!(
            "cannot reach the token endpoint: {}",
            crate::http::describe(&e)
        ),
        retry_after: None,
    })?;
    let status = response.status().as_u16();
    let retry_after = crate::http::retry_after(response.headers());
    let body = read_limited(response, limit)
        .await
        .map_err(|reason| NoAnswer {
            reason: format!("the token endpoint answered HTTP {status}, {reason}"),
            retry_after,
        })?;
    Ok(TokenAnswer {
        status,
        retry_after,
        body: zeroize::Zeroizing::new(body),
    })
}

/// What a token endpoint's answer means.
fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> RefreshOutcome {
    let transitory = |reason: String| RefreshOutcome::TransitoryError {
        reason,
        retry_after,
    };
    if status == 200 {
        let Ok(raw) = serde_json::from_slice::<RawGrant>(body) else {
            let what = if is_html(body) {
                "an HTML page (a proxy or captive portal in the way?)"
            } else {
                "a body that is not JSON"
            };
            return transitory(format!(
                "the token endpoint answered 200 with {what}, not a token response"
            ));
        };
        let Some(access_token) = raw.access_token.filter(|t| !t.is_empty()) else {
            return transitory("the token endpoint answered 200 without an access_token".into());
        };
        let expires_in = match raw.expires_in {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            // Some servers send the number as a string.
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        return RefreshOutcome::Refreshed(TokenGrant {
            access_token: Secret::new(access_token),
            token_type: raw.token_type.unwrap_or_else(|| "bearer".into()),
            refresh_token: raw.refresh_token.filter(|t| !t.is_empty()).map(Secret::new),
            expires_in: expires_in.filter(|n| *n > 0),
        });
    }
    let err = serde_json::from_slice::<RawError>(body).ok();
    let code = err
        .as_ref()
        .and_then(|e| e.error.clone())
        .map(|c| printable(&c));
    let description = err.and_then(|e| e.error_description).map(|d| printable(&d));
    let said = match (&code, &description) {
        (Some(c), Some(d)) => format!(": {c} ({d})"),
        (Some(c), None) => format!(": {c}"),
        _ if is_html(body) => " with an HTML page".to_string(),
        _ => String::new(),
    };
    let permanent = matches!(
        code.as_deref(),
        Some("invalid_grant" | "invalid_client" | "unauthorized_client")
    ) && (400..500).contains(&status);
    if permanent {
        RefreshOutcome::PermanentError {
            reason: format!("the provider refused the refresh (HTTP {status}{said})"),
        }
    } else {
        transitory(format!("the token endpoint answered HTTP {status}{said}"))
    }
}

/// Whether a body is an HTML page (an error page or a portal), not an answer.
fn is_html(body: &[u8]) -> bool {
    let start = body.trim_ascii_start();
    let head = &start[..start.len().min(15)];
    head.starts_with(b"<") && {
        let lower = head.to_ascii_lowercase();
        lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html")
    }
}

/// Provider text made safe to show: no control characters, bounded length.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_shapes() {
        let box_ = br#"{"access_token":"A","expires_in":3600,"token_type":"bearer","refresh_token":"R","restricted_to":[]}"#;
        match classify(200, None, box_) {
            RefreshOutcome::Refreshed(g) => {
                assert_eq!(g.access_token.expose(), "A");
                assert_eq!(g.refresh_token.unwrap().expose(), "R");
                assert_eq!(g.expires_in, Some(3600));
            }
            other => panic!("{other:?}"),
        }
        let dropbox = br#"{"access_token":"A","expires_in":"14400","token_type":"bearer"}"#;
        match classify(200, None, dropbox) {
            RefreshOutcome::Refreshed(g) => {
                assert!(g.refresh_token.is_none());
                assert_eq!(g.expires_in, Some(14400));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn failures_are_classified() {
        let grant = br#"{"error":"invalid_grant","error_description":"Refresh token has expired"}"#;
        match classify(400, None, grant) {
            RefreshOutcome::PermanentError { reason } => {
                assert!(
                    reason.contains("invalid_grant") && reason.contains("expired"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        for (status, body) in [
            (500, &b"<html>oops</html>"[..]),
            (429, &br#"{"error":"rate_limited"}"#[..]),
            (200, &b"garbage"[..]),
            (200, &br#"{"token_type":"bearer"}"#[..]),
            (400, &br#"{"error":"invalid_request"}"#[..]),
        ] {
            assert!(
                matches!(
                    classify(status, Some(Duration::from_secs(3)), body),
                    RefreshOutcome::TransitoryError {
                        retry_after: Some(_),
                        ..
                    }
                ),
                "{status}"
            );
        }
    }

    #[test]
    fn html_pages_are_named() {
        let page = b"\n<!DOCTYPE html><html><body>Sign in to the network</body></html>";
        for (status, expect) in [
            (200, "200 with an HTML page"),
            (502, "HTTP 502 with an HTML page"),
        ] {
            match classify(status, None, page) {
                RefreshOutcome::TransitoryError { reason, .. } => {
                    assert!(reason.contains(expect), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
        match classify(200, None, b"{\"access_token\":,,") {
            RefreshOutcome::TransitoryError { reason, .. } => {
                assert!(reason.contains("not JSON"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reasons_never_quote_tokens() {
        let body = br#"{"access_token":"SECRET-AT","refresh_token":"SECRET-RT"}"#;
        for status in [200, 400, 500] {
            let text = format!("{:?}", classify(status, None, body));
            assert!(!text.contains("SECRET"), "{text}");
        }
    }
}
