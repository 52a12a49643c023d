//! The provider registry: every fact about an OAuth provider that both
//! programs need (endpoints, scopes, PKCE, client authentication, rotation).
//!
//! Invariant: built-in defaults live here and nowhere else, and every
//! endpoint can be overridden through [`EndpointOverrides`], so tests point
//! at fakes and users at proxies or regional hosts.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use url::Url;

/// The providers token-vault knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Box,
    Dropbox,
    /// Google Drive.
    Drive,
    /// Microsoft OneDrive (Microsoft identity platform).
    OneDrive,
    /// Any OAuth 2.0 server; its authorize and token URLs must be given.
    Custom,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 5] = [
        ProviderKind::Box,
        ProviderKind::Dropbox,
        ProviderKind::Drive,
        ProviderKind::OneDrive,
        ProviderKind::Custom,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Box => "box",
            ProviderKind::Dropbox => "dropbox",
            ProviderKind::Drive => "drive",
            ProviderKind::OneDrive => "onedrive",
            ProviderKind::Custom => "custom",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ProviderKind {
    type Err = ProviderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ProviderError::UnknownProvider(s.to_string()))
    }
}

/// How the client proves itself at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` as form fields (Box accepts only this).
    RequestBody,
    /// HTTP Basic with the id and secret.
    BasicAuth,
}

/// A provider's endpoints, after defaults and overrides are combined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    pub authorize: String,
    pub token: String,
    pub revoke: Option<String>,
    /// RFC 8628 device authorization endpoint, where the provider has one.
    pub device: Option<String>,
    /// The API base, e.g. `https://api.box.com/2.0`.
    pub api: Option<String>,
    /// The upload or content base, e.g. `https://upload.box.com/api/2.0`.
    pub upload: Option<String>,
}

/// Endpoints a user or test replaces. `None` keeps the provider's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointOverrides {
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
    pub revoke_url: Option<String>,
    pub device_url: Option<String>,
    pub api_url: Option<String>,
    pub upload_url: Option<String>,
}

impl EndpointOverrides {
    pub fn is_empty(&self) -> bool {
        *self == EndpointOverrides::default()
    }

    /// This set, with each field that `newer` gives replaced by it.
    pub fn merged_with(&self, newer: &EndpointOverrides) -> EndpointOverrides {
        let pick = |new: &Option<String>, old: &Option<String>| new.clone().or_else(|| old.clone());
        EndpointOverrides {
            auth_url: pick(&newer.auth_url, &self.auth_url),
            token_url: pick(&newer.token_url, &self.token_url),
            revoke_url: pick(&newer.revoke_url, &self.revoke_url),
            device_url: pick(&newer.device_url, &self.device_url),
            api_url: pick(&newer.api_url, &self.api_url),
            upload_url: pick(&newer.upload_url, &self.upload_url),
        }
    }
}

/// Everything known about one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub kind: ProviderKind,
    pub endpoints: Endpoints,
    /// Scopes requested when the user names none.
    pub default_scopes: Vec<String>,
    /// Extra query parameters on the authorize URL, without which the
    /// provider would not issue a refresh token.
    pub extra_auth_params: Vec<(String, String)>,
    /// Whether the provider takes PKCE (S256).
    pub pkce: bool,
    pub client_auth: ClientAuth,
    /// Whether each refresh returns a new refresh token and kills the old
    /// one, so losing a refresh response loses the account.
    pub rotating_refresh_tokens: bool,
}

/// A provider that cannot be built from what was given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    #[error("unknown provider `{0}`: expected one of box, dropbox, drive, onedrive, custom")]
    UnknownProvider(String),
    #[error("the custom provider needs --auth-url and --token-url")]
    CustomNeedsEndpoints,
    #[error("{option} `{value}` is not an http(s) URL")]
    BadUrl { option: &'static str, value: String },
}

fn s(v: &str) -> String {
    v.to_string()
}

fn scopes(list: &[&str]) -> Vec<String> {
    list.iter().map(|v| s(v)).collect()
}

impl Provider {
    /// The provider's built-in facts, with no overrides. For `custom` the
    /// authorize and token endpoints are empty: [`Provider::resolve`] needs them.
    pub fn builtin(kind: ProviderKind) -> Provider {
        match kind {
            ProviderKind::Box => Provider {
                kind,
                endpoints: Endpoints {
                    authorize: s("https://account.box.com/api/oauth2/authorize"),
                    token: s("https://api.box.com/oauth2/token"),
                    revoke: Some(s("https://api.box.com/oauth2/revoke")),
                    device: None,
                    api: Some(s("https://api.box.com/2.0")),
                    upload: Some(s("https://upload.box.com/api/2.0")),
                },
                // Box grants the scopes configured on the app.
                default_scopes: vec![],
                extra_auth_params: vec![],
                pkce: false,
                client_auth: ClientAuth::RequestBody,
                rotating_refresh_tokens: true,
            },
            ProviderKind::Dropbox => Provider {
                kind,
                endpoints: Endpoints {
                    authorize: s("https://www.dropbox.com/oauth2/authorize"),
                    token: s("https://api.dropboxapi.com/oauth2/token"),
                    revoke: Some(s("https://api.dropboxapi.com/2/auth/token/revoke")),
                    device: None,
                    api: Some(s("https://api.dropboxapi.com/2")),
                    upload: Some(s("https://content.dropboxapi.com/2")),
                },
                // Without `scope`, Dropbox grants every permission the app has;
                // naming one the app lacks would fail the whole flow.
                default_scopes: vec![],
                extra_auth_params: vec![(s("token_access_type"), s("offline"))],
                pkce: true,
                client_auth: ClientAuth::RequestBody,
                rotating_refresh_tokens: false,
            },
            ProviderKind::Drive => Provider {
                kind,
                endpoints: Endpoints {
                    authorize: s("https://accounts.google.com/o/oauth2/v2/auth"),
                    token: s("https://oauth2.googleapis.com/token"),
                    revoke: Some(s("https://oauth2.googleapis.com/revoke")),
                    device: Some(s("https://oauth2.googleapis.com/device/code")),
                    api: Some(s("https://www.googleapis.com/drive/v3")),
                    upload: Some(s("https://www.googleapis.com/upload/drive/v3")),
                },
                default_scopes: scopes(&["https://www.googleapis.com/auth/drive"]),
                extra_auth_params: vec![
                    (s("access_type"), s("offline")),
                    (s("prompt"), s("consent")),
                ],
                pkce: true,
                client_auth: ClientAuth::RequestBody,
                rotating_refresh_tokens: false,
            },
            ProviderKind::OneDrive => Provider {
                kind,
                endpoints: Endpoints {
                    authorize: s("https://login.microsoftonline.com/common/oauth2/v2.0/authorize"),
                    token: s("https://login.microsoftonline.com/common/oauth2/v2.0/token"),
                    // Microsoft has no RFC 7009 endpoint for personal tokens.
                    revoke: None,
                    device: Some(s(
                        "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
                    )),
                    api: Some(s("https://graph.microsoft.com/v1.0")),
                    upload: Some(s("https://graph.microsoft.com/v1.0")),
                },
                default_scopes: scopes(&["Files.ReadWrite.All", "User.Read", "offline_access"]),
                extra_auth_params: vec![],
                pkce: true,
                client_auth: ClientAuth::RequestBody,
                // Microsoft returns a new refresh token on every refresh.
                rotating_refresh_tokens: true,
            },
            ProviderKind::Custom => Provider {
                kind,
                endpoints: Endpoints {
                    authorize: String::new(),
                    token: String::new(),
                    revoke: None,
                    device: None,
                    api: None,
                    upload: None,
                },
                default_scopes: vec![],
                extra_auth_params: vec![],
                // Servers that don't know PKCE ignore its parameters.
                pkce: true,
                client_auth: ClientAuth::RequestBody,
                // Assume the worst: persist every refresh token we are given.
                rotating_refresh_tokens: true,
            },
        }
    }

    /// The provider with `overrides` applied and every URL checked.
    pub fn resolve(
        kind: ProviderKind,
        overrides: &EndpointOverrides,
    ) -> Result<Provider, ProviderError> {
        let mut p = Provider::builtin(kind);
        let e = &mut p.endpoints;
        let o = overrides;
        if let Some(v) = &o.auth_url {
            e.authorize = check_url("--auth-url", v)?;
        }
        if let Some(v) = &o.token_url {
            e.token = check_url("--token-url", v)?;
        }
        for (option, value, slot) in [
            ("--revoke-url", &o.revoke_url, &mut e.revoke),
            ("--device-url", &o.device_url, &mut e.device),
            ("--api-url", &o.api_url, &mut e.api),
            ("--upload-url", &o.upload_url, &mut e.upload),
        ] {
            if let Some(v) = value {
                *slot = Some(check_url(option, v)?);
            }
        }
        if e.authorize.is_empty() || e.token.is_empty() {
            return Err(ProviderError::CustomNeedsEndpoints);
        }
        Ok(p)
    }
}

/// Checks that `value` is an http(s) URL and returns it without a trailing
/// slash, so bases join predictably.
fn check_url(option: &'static str, value: &str) -> Result<String, ProviderError> {
    let bad = || ProviderError::BadUrl {
        option,
        value: value.to_string(),
    };
    let url = Url::parse(value.trim()).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad());
    }
    Ok(value.trim().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in ProviderKind::ALL {
            assert_eq!(kind.name().parse::<ProviderKind>().unwrap(), kind);
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.name())
            );
        }
        assert_eq!("Box".parse::<ProviderKind>().unwrap(), ProviderKind::Box);
        let err = "gdrive".parse::<ProviderKind>().unwrap_err();
        assert!(err
            .to_string()
            .contains("box, dropbox, drive, onedrive, custom"));
    }

    #[test]
    fn builtin_facts_match_the_spec() {
        let b = Provider::resolve(ProviderKind::Box, &EndpointOverrides::default()).unwrap();
        assert!(!b.pkce && b.rotating_refresh_tokens);
        assert_eq!(b.client_auth, ClientAuth::RequestBody);
        assert_eq!(b.endpoints.token, "https://api.box.com/oauth2/token");
        let d = Provider::builtin(ProviderKind::Dropbox);
        assert!(d.pkce && !d.rotating_refresh_tokens);
        assert!(d
            .extra_auth_params
            .contains(&(s("token_access_type"), s("offline"))));
        let g = Provider::builtin(ProviderKind::Drive);
        assert!(g
            .extra_auth_params
            .contains(&(s("access_type"), s("offline"))));
        assert!(g.extra_auth_params.contains(&(s("prompt"), s("consent"))));
        assert!(g.endpoints.device.is_some());
        assert!(Provider::builtin(ProviderKind::OneDrive)
            .default_scopes
            .contains(&s("offline_access")));
    }

    #[test]
    fn every_endpoint_can_be_overridden() {
        let o = EndpointOverrides {
            auth_url: Some(s("http://127.0.0.1:1/authorize")),
            token_url: Some(s("http://127.0.0.1:1/token/")),
            revoke_url: Some(s("http://127.0.0.1:1/revoke")),
            device_url: Some(s("http://127.0.0.1:1/device")),
            api_url: Some(s("http://127.0.0.1:1/2.0/")),
            upload_url: Some(s("https://proxy.example/upload")),
        };
        for kind in ProviderKind::ALL {
            let p = Provider::resolve(kind, &o).unwrap();
            assert_eq!(p.endpoints.authorize, "http://127.0.0.1:1/authorize");
            assert_eq!(p.endpoints.token, "http://127.0.0.1:1/token");
            assert_eq!(
                p.endpoints.revoke.as_deref(),
                Some("http://127.0.0.1:1/revoke")
            );
            assert_eq!(
                p.endpoints.device.as_deref(),
                Some("http://127.0.0.1:1/device")
            );
            assert_eq!(p.endpoints.api.as_deref(), Some("http://127.0.0.1:1/2.0"));
            assert_eq!(
                p.endpoints.upload.as_deref(),
                Some("https://proxy.example/upload")
            );
        }
    }

    #[test]
    fn custom_needs_its_endpoints_and_urls_are_checked() {
        assert_eq!(
            Provider::resolve(ProviderKind::Custom, &EndpointOverrides::default()).unwrap_err(),
            ProviderError::CustomNeedsEndpoints
        );
        let bad = EndpointOverrides {
            token_url: Some(s("ftp://x/token")),
            ..Default::default()
        };
        let err = Provider::resolve(ProviderKind::Box, &bad).unwrap_err();
        assert!(err.to_string().contains("--token-url"), "{err}");
        let merged = bad.merged_with(&EndpointOverrides {
            api_url: Some(s("http://a")),
            ..Default::default()
        });
        assert_eq!(merged.token_url.as_deref(), Some("ftp://x/token"));
        assert_eq!(merged.api_url.as_deref(), Some("http://a"));
    }
}
