//! The daemon's own grants at a provider's token endpoint, for
//! authorizations started on this host: the authorization-code exchange of
//! bootstrap mode, and RFC 8628's device authorization request and token
//! polls.
//!
//! Invariant: like `oauth`, nothing returned here quotes a request or a
//! response body; only the provider's `error` and `error_description` are
//! repeated, made printable. The client secret, the PKCE verifier, the code
//! and the device code go only into the request to the provider.

use crate::http::{read_limited, HttpClient};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::Deserialize;
use shared::{Provider, ProviderKind, Secret, TokenBlob};
use std::time::Duration;

/// RFC 8628's grant type.
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The largest answer read from a provider's token or device endpoint.
const MAX_ANSWER: usize = 1024 * 1024;
/// RFC 8628 §3.2: the interval when the provider gives none.
pub const DEFAULT_DEVICE_INTERVAL: u64 = 5;

/// Tokens the provider issued.
pub struct Granted {
    pub access_token: Secret,
    pub token_type: Option<String>,
    pub refresh_token: Option<Secret>,
    pub expires_in: Option<i64>,
}

impl Granted {
    /// The token blob for `Engine::import`, its expiry counted from
    /// `asked_at` (when the request went out), by this host's clock.
    pub fn into_blob(self, asked_at: DateTime<Utc>) -> TokenBlob {
        TokenBlob {
            access_token: self.access_token,
            token_type: self.token_type,
            refresh_token: self.refresh_token,
            expiry: self
                .expires_in
                .map(|s| (asked_at + ChronoDuration::seconds(s)).fixed_offset()),
            expires_in: self.expires_in,
        }
    }
}

/// What the token endpoint said.
pub enum Answer {
    Granted(Granted),
    /// An OAuth error answer (`{"error": …}`), with the HTTP status.
    Refused {
        status: u16,
        error: String,
        description: Option<String>,
        retry_after: Option<Duration>,
    },
    /// No usable answer: the network, a 5xx without an OAuth error, a
    /// garbled body. Worth another try.
    Transient(String),
}

impl Answer {
    /// A one-line description of a failure, for errors shown to the user.
    pub fn describe(&self) -> String {
        match self {
            Answer::Granted(_) => "the provider issued tokens".into(),
            Answer::Refused {
                status,
                error,
                description,
                ..
            } => match description {
                Some(d) => format!("HTTP {status}: {error} ({d})"),
                None => format!("HTTP {status}: {error}"),
            },
            Answer::Transient(reason) => reason.clone(),
        }
    }
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

/// Bootstrap: exchanges `code` (with the PKCE verifier the daemon kept).
pub async fn exchange_code(
    http: &HttpClient,
    provider: &Provider,
    client_id: &str,
    client_secret: Option<&Secret>,
    code: &Secret,
    redirect_uri: &str,
    verifier: Option<&Secret>,
) -> Answer {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.expose()),
        ("redirect_uri", redirect_uri),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v.expose()));
    }
    token_request(http, provider, client_id, client_secret, form).await
}

/// Device: one poll of the token endpoint with the device code.
pub async fn poll_device(
    http: &HttpClient,
    provider: &Provider,
    client_id: &str,
    client_secret: Option<&Secret>,
    device_code: &Secret,
) -> Answer {
    let form = vec![
        ("grant_type", DEVICE_GRANT),
        ("device_code", device_code.expose()),
    ];
    token_request(http, provider, client_id, client_secret, form).await
}

async fn token_request(
    http: &HttpClient,
    provider: &Provider,
    client_id: &str,
    client_secret: Option<&Secret>,
    form: Vec<(&str, &str)>,
) -> Answer {
    match crate::oauth::post_token_form(http, provider, client_id, client_secret, form, MAX_ANSWER)
        .await
    {
        Ok(answer) => classify(answer.status, answer.retry_after, &answer.body),
        Err(failure) => Answer::Transient(failure.reason),
    }
}

fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Answer {
    if status == 200 {
        let Ok(raw) = serde_json::from_slice::<RawGrant>(body) else {
            return Answer::Transient(
                "the token endpoint answered 200 with a body that is not a token response".into(),
            );
        };
        let Some(access_token) = raw.access_token.filter(|t| !t.is_empty()) else {
            return Answer::Transient(
                "the token endpoint answered 200 without an access_token".into(),
            );
        };
        let expires_in = match raw.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        return Answer::Granted(Granted {
            access_token: Secret::new(access_token),
            token_type: raw.token_type.filter(|t| !t.is_empty()),
            refresh_token: raw.refresh_token.filter(|t| !t.is_empty()).map(Secret::new),
            expires_in: expires_in.filter(|n| *n > 0),
        });
    }
    match serde_json::from_slice::<RawError>(body)
        .ok()
        .and_then(|e| Some((e.error?, e.error_description)))
    {
        Some((error, description)) if status != 429 && status < 500 => Answer::Refused {
            status,
            error: printable(&error),
            description: description.map(|d| printable(&d)),
            retry_after,
        },
        _ => Answer::Transient(format!("the token endpoint answered HTTP {status}")),
    }
}

/// The device authorization response (RFC 8628 §3.2).
pub struct DeviceStart {
    pub device_code: Secret,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    pub interval: u64,
}

#[derive(Deserialize)]
struct RawDevice {
    device_code: Option<String>,
    user_code: Option<String>,
    verification_uri: Option<String>,
    /// Google's older name for `verification_uri`.
    verification_url: Option<String>,
    verification_uri_complete: Option<String>,
    expires_in: Option<serde_json::Value>,
    interval: Option<serde_json::Value>,
}

/// What to do when a device authorization is refused for its scopes:
/// providers grant only some scopes through the device flow.
fn device_scope_hint(kind: ProviderKind, asked: &str) -> String {
    let asked = if asked.is_empty() {
        "the provider's default scopes".to_string()
    } else {
        format!("`{}`", printable(asked))
    };
    let example = match kind {
        ProviderKind::Drive => {
            " (Google Drive's device flow grants https://www.googleapis.com/auth/drive.file, files this client created, but not …/auth/drive)"
        }
        _ => "",
    };
    format!(
        "; it does not grant {asked} through the device flow: run `token-vault authorize` again with --scope naming scopes it does{example}, or without --device (bootstrap mode) for full access"
    )
}

/// Asks the provider's device authorization endpoint for a user code.
pub async fn start_device(
    http: &HttpClient,
    provider: &Provider,
    device_url: &str,
    client_id: &str,
    scopes: &[String],
) -> Result<DeviceStart, String> {
    let scope = scopes.join(" ");
    let mut form = vec![("client_id", client_id)];
    if !scope.is_empty() {
        form.push(("scope", scope.as_str()));
    }
    let response = http
        .inner()
        .post(device_url)
        .form(&form)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot reach the device authorization endpoint: {}",
                crate::http::describe(&e)
            )
        })?;
    let status = response.status().as_u16();
    let body = read_limited(response, MAX_ANSWER)
        .await
        .map_err(|r| format!("the device authorization endpoint answered HTTP {status}, {r}"))?;
    if status != 200 {
        let refusal = serde_json::from_slice::<RawError>(&body).ok();
        let error = refusal.as_ref().and_then(|e| e.error.as_deref());
        let said = match (
            error,
            refusal
                .as_ref()
                .and_then(|e| e.error_description.as_deref()),
        ) {
            (Some(e), Some(d)) => format!(": {} ({})", printable(e), printable(d)),
            (Some(e), None) => format!(": {}", printable(e)),
            (None, _) => String::new(),
        };
        let hint = match error {
            Some("invalid_scope") => device_scope_hint(provider.kind, &scope),
            _ => String::new(),
        };
        return Err(format!(
            "the device authorization endpoint of {} refused the request (HTTP {status}{said}){hint}",
            provider.kind
        ));
    }
    let raw: RawDevice = serde_json::from_slice(&body).map_err(|_| {
        "the device authorization endpoint answered 200 with a body that is not a device authorization response".to_string()
    })?;
    let number = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let missing = |what: &str| format!("the device authorization response has no {what}");
    let device_code = raw
        .device_code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| missing("device_code"))?;
    let user_code = raw
        .user_code
        .filter(|c| !c.is_empty())
        .map(|c| printable(&c))
        .ok_or_else(|| missing("user_code"))?;
    let verification_uri = raw
        .verification_uri
        .or(raw.verification_url)
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .map(|u| printable(&u))
        .ok_or_else(|| missing("verification_uri"))?;
    Ok(DeviceStart {
        device_code: Secret::new(device_code),
        user_code,
        verification_uri,
        verification_uri_complete: raw
            .verification_uri_complete
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .map(|u| printable(&u)),
        expires_in: number(raw.expires_in)
            .filter(|s| *s > 0)
            .ok_or_else(|| missing("expires_in"))?,
        interval: number(raw.interval)
            .filter(|s| *s > 0)
            .unwrap_or(DEFAULT_DEVICE_INTERVAL),
    })
}

/// Provider text made safe to show: no control characters, bounded length.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let ok = br#"{"access_token":"AT","token_type":"Bearer","expires_in":3599,"refresh_token":"RT","scope":"x"}"#;
        match classify(200, None, ok) {
            Answer::Granted(g) => {
                let blob = g.into_blob(Utc::now());
                assert_eq!(blob.access_token.expose(), "AT");
                assert_eq!(blob.expires_in, Some(3599));
                assert!(blob.expiry.is_some() && blob.refresh_token.is_some());
            }
            _ => panic!("not granted"),
        }
        for (status, body, error) in [
            (
                400,
                &br#"{"error":"authorization_pending"}"#[..],
                "authorization_pending",
            ),
            (
                400,
                br#"{"error":"slow_down","error_description":"x"}"#,
                "slow_down",
            ),
            (400, br#"{"error":"access_denied"}"#, "access_denied"),
            (400, br#"{"error":"expired_token"}"#, "expired_token"),
            (401, br#"{"error":"invalid_client"}"#, "invalid_client"),
        ] {
            match classify(status, None, body) {
                Answer::Refused { error: e, .. } => assert_eq!(e, error),
                _ => panic!("{error} not refused"),
            }
        }
        for (status, body) in [
            (500, &b"<html>"[..]),
            (503, br#"{"error":"temporarily_unavailable"}"#),
            (429, br#"{"error":"slow_down"}"#),
            (200, b"garbage"),
            (400, b"garbage"),
        ] {
            assert!(
                matches!(classify(status, None, body), Answer::Transient(_)),
                "{status}"
            );
        }
    }

    #[test]
    fn descriptions_never_quote_tokens() {
        let body = br#"{"access_token":"SECRET-AT","refresh_token":"SECRET-RT"}"#;
        for status in [400, 500] {
            let text = classify(status, None, body).describe();
            assert!(!text.contains("SECRET"), "{text}");
        }
    }
}
