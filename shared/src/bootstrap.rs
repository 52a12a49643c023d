//! Bootstrap mode's two strings, which carry an authorization between the
//! headless host and the workstation without the tokens ever crossing.
//!
//! - **The bootstrap string** (host → workstation), printed by
//!   `token-vault authorize` inside `oauth-authorize --bootstrap '…'`:
//!   `tvboot1.` + base64url(JSON `{"v":1,"name","provider","authorize_url",
//!   "redirect_uri","state","expires_at"}`). The authorize URL already holds
//!   the client id, scopes, state, PKCE challenge and redirect URI. It never
//!   holds the client secret or the PKCE verifier: those stay in the daemon.
//! - **The response line** (workstation → host), printed by
//!   `oauth-authorize --bootstrap`: `tvcode1.` + base64url(JSON
//!   `{"code","state"}`). The daemon checks the state and exchanges the code
//!   itself. The redirect URL the browser ended on
//!   (`http://127.0.0.1:53682/?code=…&state=…`) is accepted too, for a
//!   workstation without oauth-authorize.
//!
//! Invariant: no error here quotes the input (a response holds a code).

use crate::providers::ProviderKind;
use crate::secret::Secret;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The prefix of a bootstrap string, version 1.
pub const BOOTSTRAP_PREFIX: &str = "tvboot1.";
/// The prefix of a response line, version 1.
pub const RESPONSE_PREFIX: &str = "tvcode1.";
/// The largest bootstrap string or response accepted.
pub const MAX_LEN: usize = 16 * 1024;

/// What the workstation needs to run the browser half of an authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// The format version inside the JSON, always 1 here.
    pub v: u32,
    /// The connection being authorized, for the user's information.
    pub name: String,
    pub provider: ProviderKind,
    /// The full authorize URL, query included.
    pub authorize_url: String,
    /// Where the provider sends the browser back: a loopback URL.
    pub redirect_uri: String,
    /// The `state` the callback must carry (also in the authorize URL).
    pub state: String,
    /// When the pending authorization expires, RFC 3339, for the user.
    pub expires_at: String,
}

/// Why a bootstrap string or a response was refused. Never quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapError {
    #[error("not a bootstrap string (one starts with `{BOOTSTRAP_PREFIX}`): copy the whole `oauth-authorize --bootstrap '…'` line that `token-vault authorize` printed")]
    NotBootstrap,
    #[error("the bootstrap string is damaged (cut short or altered when copied); copy the whole line again")]
    BadBootstrap,
    #[error(
        "this bootstrap string is format {0}, which this oauth-authorize does not know: upgrade it"
    )]
    BootstrapVersion(String),
    #[error("the bootstrap string is inconsistent: {0}")]
    Inconsistent(&'static str),
    #[error("not the response line: paste the one line `oauth-authorize --bootstrap` printed (it starts with `{RESPONSE_PREFIX}`), or the whole URL the browser ended on")]
    NotResponse,
    #[error("the response line is damaged (cut short or altered when copied); paste the whole line again")]
    BadResponse,
    #[error("the provider refused the authorization: {0}")]
    Denied(String),
    #[error("the input is larger than {} KiB", MAX_LEN / 1024)]
    TooLarge,
}

impl Bootstrap {
    /// `tvboot1.…`.
    pub fn encode(&self) -> String {
        // Serialising strings cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{BOOTSTRAP_PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    /// Parses and checks a bootstrap string (whitespace and surrounding
    /// quotes, as copied from the printed command, are ignored).
    pub fn parse(text: &str) -> Result<Bootstrap, BootstrapError> {
        if text.len() > MAX_LEN {
            return Err(BootstrapError::TooLarge);
        }
        let compact: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '\'' && *c != '"')
            .collect();
        let Some(body) = compact.strip_prefix(BOOTSTRAP_PREFIX) else {
            return Err(
                match compact
                    .strip_prefix("tvboot")
                    .and_then(|r| r.split_once('.'))
                {
                    Some((v, _)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                        BootstrapError::BootstrapVersion(v.chars().take(4).collect())
                    }
                    _ => BootstrapError::NotBootstrap,
                },
            );
        };
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| BootstrapError::BadBootstrap)?;
        let b: Bootstrap =
            serde_json::from_slice(&json).map_err(|_| BootstrapError::BadBootstrap)?;
        if b.v != 1 {
            return Err(BootstrapError::BootstrapVersion(b.v.to_string()));
        }
        b.check()?;
        Ok(b)
    }

    /// The authorize URL must carry this state and redirect URI, and the
    /// redirect must be a loopback http URL.
    fn check(&self) -> Result<(), BootstrapError> {
        let url = url::Url::parse(&self.authorize_url)
            .map_err(|_| BootstrapError::Inconsistent("the authorize URL is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(BootstrapError::Inconsistent(
                "the authorize URL is not http(s)",
            ));
        }
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if self.state.is_empty() || param("state").as_deref() != Some(self.state.as_str()) {
            return Err(BootstrapError::Inconsistent(
                "the authorize URL does not carry the state",
            ));
        }
        if param("redirect_uri").as_deref() != Some(self.redirect_uri.as_str()) {
            return Err(BootstrapError::Inconsistent(
                "the authorize URL does not carry the redirect URI",
            ));
        }
        if !is_loopback_http(&self.redirect_uri) {
            return Err(BootstrapError::Inconsistent(
                "the redirect URI is not http://127.0.0.1:PORT/ or http://localhost:PORT/",
            ));
        }
        Ok(())
    }
}

/// Whether `text` is an `http://` URL on a loopback host with a port, no
/// query and no fragment: the only redirect a loopback listener can catch.
pub fn is_loopback_http(text: &str) -> bool {
    let Ok(url) = url::Url::parse(text) else {
        return false;
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    url.scheme() == "http"
        && loopback
        && url.port_or_known_default().is_some()
        && url.query().is_none()
        && url.fragment().is_none()
}

/// The response line: the code and the state, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapResponse {
    pub code: Secret,
    pub state: String,
}

impl BootstrapResponse {
    /// `tvcode1.…`.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{RESPONSE_PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    /// Parses a pasted response: the `tvcode1.` line, or the URL (or just
    /// its query) that the browser ended on. A URL carrying the provider's
    /// `error` gives [`BootstrapError::Denied`].
    pub fn parse(text: &str) -> Result<BootstrapResponse, BootstrapError> {
        if text.len() > MAX_LEN {
            return Err(BootstrapError::TooLarge);
        }
        let compact: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '\'' && *c != '"')
            .collect();
        if let Some(body) = compact.strip_prefix(RESPONSE_PREFIX) {
            let json = zeroize::Zeroizing::new(
                URL_SAFE_NO_PAD
                    .decode(body)
                    .map_err(|_| BootstrapError::BadResponse)?,
            );
            let r: BootstrapResponse =
                serde_json::from_slice(&json).map_err(|_| BootstrapError::BadResponse)?;
            if r.code.is_empty() || r.state.is_empty() {
                return Err(BootstrapError::BadResponse);
            }
            return Ok(r);
        }
        // The redirect URL, or its query.
        let query = match compact.split_once('?') {
            Some((_, q)) => q,
            None => compact.as_str(),
        };
        let query = query.split('#').next().unwrap_or_default();
        let (mut code, mut state, mut error, mut description) = (None, None, None, None);
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match k.as_ref() {
                "code" => &mut code,
                "state" => &mut state,
                "error" => &mut error,
                "error_description" => &mut description,
                _ => continue,
            };
            if slot.is_some() {
                return Err(BootstrapError::NotResponse);
            }
            *slot = Some(v.into_owned());
        }
        match (code, state, error) {
            (_, Some(_), Some(error)) => {
                let said = match description {
                    Some(d) => format!("{error} ({d})"),
                    None => error,
                };
                Err(BootstrapError::Denied(
                    said.chars().filter(|c| !c.is_control()).take(300).collect(),
                ))
            }
            (Some(code), Some(state), None) if !code.is_empty() && !state.is_empty() => {
                Ok(BootstrapResponse {
                    code: Secret::new(code),
                    state,
                })
            }
            _ => Err(BootstrapError::NotResponse),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bootstrap {
        Bootstrap {
            v: 1,
            name: "box".into(),
            provider: ProviderKind::Box,
            authorize_url: "https://account.box.com/api/oauth2/authorize?response_type=code&client_id=abc&redirect_uri=http%3A%2F%2F127.0.0.1%3A53682%2F&state=S1".into(),
            redirect_uri: "http://127.0.0.1:53682/".into(),
            state: "S1".into(),
            expires_at: "2030-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn bootstrap_round_trip() {
        let b = sample();
        let text = b.encode();
        assert!(text.starts_with(BOOTSTRAP_PREFIX));
        assert!(text
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c)));
        assert_eq!(Bootstrap::parse(&text).unwrap(), b);
        // As copied from `oauth-authorize --bootstrap '…'`, quotes and all.
        assert_eq!(Bootstrap::parse(&format!(" '{text}'\n")).unwrap(), b);
    }

    #[test]
    fn bootstrap_refusals() {
        assert_eq!(Bootstrap::parse("hello"), Err(BootstrapError::NotBootstrap));
        assert_eq!(
            Bootstrap::parse("tvboot2.abc"),
            Err(BootstrapError::BootstrapVersion("2".into()))
        );
        let text = sample().encode();
        assert_eq!(
            Bootstrap::parse(&text[..text.len() - 10]),
            Err(BootstrapError::BadBootstrap)
        );
        let mut b = sample();
        b.state = "other".into();
        assert!(matches!(
            Bootstrap::parse(&b.encode()),
            Err(BootstrapError::Inconsistent(_))
        ));
        let mut b = sample();
        b.redirect_uri = "http://evil.example:53682/".into();
        b.authorize_url = b.authorize_url.replace(
            "http%3A%2F%2F127.0.0.1%3A53682%2F",
            "http%3A%2F%2Fevil.example%3A53682%2F",
        );
        assert!(matches!(
            Bootstrap::parse(&b.encode()),
            Err(BootstrapError::Inconsistent(_))
        ));
    }

    #[test]
    fn response_forms() {
        let r = BootstrapResponse {
            code: Secret::new("code-xyz/1"),
            state: "S1".into(),
        };
        let line = r.encode();
        assert!(line.starts_with(RESPONSE_PREFIX) && !line.contains("code-xyz"));
        assert_eq!(BootstrapResponse::parse(&format!("{line}\n")).unwrap(), r);
        for pasted in [
            "http://127.0.0.1:53682/?code=code-xyz%2F1&state=S1",
            "  http://localhost:53682/?state=S1&code=code-xyz%2F1#_=_ ",
            "code=code-xyz%2F1&state=S1",
        ] {
            assert_eq!(BootstrapResponse::parse(pasted).unwrap(), r, "{pasted}");
        }
        assert!(matches!(
            BootstrapResponse::parse("http://127.0.0.1:53682/?error=access_denied&state=S1"),
            Err(BootstrapError::Denied(d)) if d == "access_denied"
        ));
        for bad in ["", "hello", "code=x", "tvcode1.!!", &line[..line.len() - 4]] {
            let err = BootstrapResponse::parse(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    BootstrapError::NotResponse | BootstrapError::BadResponse
                ),
                "{bad}: {err:?}"
            );
        }
        let err = BootstrapResponse::parse("code=topsecret&code=again&state=S").unwrap_err();
        assert!(!format!("{err} {err:?}").contains("topsecret"));
        assert!(!format!("{r:?}").contains("code-xyz"));
    }

    #[test]
    fn loopback_redirects() {
        assert!(is_loopback_http("http://127.0.0.1:53682/"));
        assert!(is_loopback_http("http://localhost:8080/cb"));
        assert!(is_loopback_http("http://[::1]:1234/"));
        assert!(!is_loopback_http("https://127.0.0.1:53682/"));
        assert!(!is_loopback_http("http://example.com:53682/"));
        assert!(!is_loopback_http("http://127.0.0.1:53682/?x=1"));
    }
}
