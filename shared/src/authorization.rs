//! The socket API's types for authorizing a connection from the headless
//! host itself: bootstrap mode and the device grant (`token-vault
//! authorize`), and the recipient key for sealed blobs (`token-vault
//! recipient`).
//!
//! Routes (admin only):
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /v1/authorizations` | [`AuthorizationRequest`] | 201 [`AuthorizationInfo`] |
//! | `GET /v1/authorizations` | | [`AuthorizationList`] |
//! | `GET /v1/authorizations/{id}` | | [`AuthorizationInfo`] |
//! | `POST /v1/authorizations/{id}/complete` | [`CompleteRequest`] | 201 (new connection) or 200 [`AuthorizationInfo`] |
//! | `DELETE /v1/authorizations/{id}` | | [`AuthorizationInfo`] |
//! | `GET /v1/recipient` | | [`RecipientResponse`] |
//!
//! Invariant: only [`AuthorizationRequest`] (the client secret) and
//! [`CompleteRequest`] (the pasted code) carry secrets, inwards. No answer
//! carries the client secret, the PKCE verifier, a code, the device code or
//! a token.

use crate::api::{ConnectionStatus, ErrorDetail};
use crate::providers::{EndpointOverrides, ProviderKind};
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How the user authorizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthorizationMode {
    /// The browser runs on a workstation (`oauth-authorize --bootstrap`);
    /// the code comes back pasted, and the daemon exchanges it.
    Bootstrap,
    /// RFC 8628: the user enters a code at the provider's page; the daemon polls.
    Device,
}

/// Where a pending authorization stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthorizationState {
    /// Waiting for the pasted response (bootstrap) or the user's approval (device).
    Pending,
    /// Bootstrap: the response was accepted and the code is being exchanged.
    Exchanging,
    /// The tokens are stored as the connection.
    Completed,
    /// It ended without tokens; `error` says why.
    Failed,
    /// Its time ran out before it completed.
    Expired,
    /// Cancelled by the operator.
    Cancelled,
}

impl AuthorizationState {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorizationState::Pending => "pending",
            AuthorizationState::Exchanging => "exchanging",
            AuthorizationState::Completed => "completed",
            AuthorizationState::Failed => "failed",
            AuthorizationState::Expired => "expired",
            AuthorizationState::Cancelled => "cancelled",
        }
    }

    /// Whether nothing more will happen.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            AuthorizationState::Pending | AuthorizationState::Exchanging
        )
    }
}

/// `POST /v1/authorizations`: start authorizing connection `name`. The
/// settings are those of an import, kept by the daemon until the tokens
/// arrive.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationRequest {
    pub name: String,
    pub mode: AuthorizationMode,
    /// Required for a new connection; on replace, defaults to the old one.
    pub provider: Option<ProviderKind>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    #[serde(default)]
    pub endpoints: EndpointOverrides,
    /// Scopes to request; the provider's defaults when empty.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Bootstrap: the redirect URI (a loopback URL registered with the
    /// provider); default `http://127.0.0.1:53682/`.
    #[serde(default)]
    pub redirect_uri: Option<String>,
    #[serde(default)]
    pub root: Option<String>,
    #[serde(default)]
    pub allow_uids: Option<Vec<u32>>,
    #[serde(default)]
    pub allow_gids: Option<Vec<u32>>,
    #[serde(default)]
    pub upload_cutoff: Option<u64>,
    #[serde(default)]
    pub chunk_size: Option<u64>,
    #[serde(default)]
    pub replace: bool,
    /// How long the pending authorization may wait, in seconds (default
    /// 600, at most 3600). A device code's own lifetime also bounds it.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// A pending (or finished) authorization, without any secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuthorizationInfo {
    pub id: String,
    pub name: String,
    pub provider: ProviderKind,
    pub mode: AuthorizationMode,
    pub state: AuthorizationState,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Bootstrap, in the answer to the start only: the `tvboot1.…` string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<String>,
    /// Bootstrap, in the answer to the start only: the command to run on
    /// the workstation, `oauth-authorize --bootstrap '…'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Device: where the user goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri: Option<String>,
    /// Device: the same page with the code filled in, when the provider gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri_complete: Option<String>,
    /// Device: what the user types there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_code: Option<String>,
    /// Device: the current polling interval, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_secs: Option<u64>,
    /// Why it failed (state `failed` or `expired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
    /// The stored connection (state `completed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionStatus>,
    /// Whether the completion created the connection (rather than replacing it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// `GET /v1/authorizations`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuthorizationList {
    pub authorizations: Vec<AuthorizationInfo>,
}

/// `POST /v1/authorizations/{id}/complete`: the line pasted back from the
/// workstation (`tvcode1.…`, or the URL the browser ended on).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    pub response: Secret,
}

/// `GET /v1/recipient`: the vault's public key for sealed blobs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecipientResponse {
    /// `tvr1.…`, for `oauth-authorize … --seal-to`.
    pub recipient: String,
    /// A short fingerprint, as sealed blobs name their recipient.
    pub key_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_redact_their_secrets() {
        let r = AuthorizationRequest {
            name: "box".into(),
            mode: AuthorizationMode::Bootstrap,
            provider: Some(ProviderKind::Box),
            client_id: Some("id".into()),
            client_secret: Some(Secret::new("CS-789")),
            endpoints: EndpointOverrides::default(),
            scopes: vec![],
            redirect_uri: None,
            root: None,
            allow_uids: None,
            allow_gids: None,
            upload_cutoff: None,
            chunk_size: None,
            replace: false,
            ttl_secs: Some(5),
        };
        assert!(!format!("{r:?}").contains("CS-789"));
        let json = serde_json::to_string(&r).unwrap();
        let back: AuthorizationRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back.ttl_secs, Some(5));
        let c = CompleteRequest {
            response: Secret::new("tvcode1.xyz"),
        };
        assert!(!format!("{c:?}").contains("xyz"));
    }

    #[test]
    fn minimal_request_and_states() {
        let r: AuthorizationRequest =
            serde_json::from_str(r#"{"name":"d","mode":"device","provider":"onedrive","client_id":"c","client_secret":null}"#)
                .unwrap();
        assert_eq!(r.mode, AuthorizationMode::Device);
        assert!(r.scopes.is_empty() && !r.replace);
        assert!(AuthorizationState::Completed.is_final());
        assert!(!AuthorizationState::Exchanging.is_final());
        assert_eq!(
            serde_json::to_string(&AuthorizationState::Expired).unwrap(),
            "\"expired\""
        );
    }
}
