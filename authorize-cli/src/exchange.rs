//! Talking to the token endpoint: the code exchange and the
//! client-credentials grant, through the `oauth2` crate over a rustls
//! `reqwest` client, with each provider's client-authentication style.
//!
//! Invariant: no error built here contains a response body or a request
//! form, since either may hold a code, a token or the client secret; only
//! the provider's `error` and `error_description` are repeated.

use chrono::{Duration as ChronoDuration, Local};
use oauth2::basic::{BasicClient, BasicErrorResponse, BasicTokenResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    HttpRequest, HttpResponse, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    TokenResponse, TokenUrl,
};
use shared::{ClientAuth, Provider, Secret, TokenBlob};
use std::cell::Cell;
use std::io::Read;
use std::time::Duration;

/// How long one token request may take. A hung endpoint must not keep the
/// user waiting forever, and a real one answers in well under this.
const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest token response we read; real ones are under 4 KiB.
const MAX_RESPONSE_BYTES: u64 = 1024 * 1024;
/// How many times a 429 is retried: the code is not consumed by a 429.
const MAX_RATE_LIMIT_RETRIES: u32 = 2;
/// The longest Retry-After we honour before giving up.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

type ConfiguredClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Why no token came back.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("the token endpoint refused the request: {error}{}{hint}", description.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        error: String,
        description: Option<String>,
        hint: &'static str,
    },
    #[error("the token endpoint answered HTTP {status}{}", retry_after.map(|s| format!(" (Retry-After {s} s)")).unwrap_or_default())]
    HttpStatus {
        status: u16,
        retry_after: Option<u64>,
    },
    #[error("the token endpoint answered HTTP {status} with a body that is not a token response")]
    BadResponse { status: u16 },
    #[error("could not reach the token endpoint {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{0}")]
    Setup(String),
}

/// What the token endpoint needs to know about this client.
pub struct TokenClient {
    client: ConfiguredClient,
    http: reqwest::blocking::Client,
    token_url: String,
}

/// What the last HTTP exchange looked like, for error messages and retries.
#[derive(Default)]
struct LastResponse {
    status: Cell<u16>,
    retry_after: Cell<Option<u64>>,
}

impl TokenClient {
    pub fn new(
        provider: &Provider,
        client_id: &str,
        client_secret: Option<&Secret>,
        redirect_url: Option<&str>,
        proxy: Option<&str>,
    ) -> Result<TokenClient, ExchangeError> {
        let setup =
            |what: &str, e: &dyn std::fmt::Display| ExchangeError::Setup(format!("{what}: {e}"));
        let mut client = BasicClient::new(ClientId::new(client_id.to_string()))
            .set_auth_uri(
                AuthUrl::new(provider.endpoints.authorize.clone())
                    .map_err(|e| setup("bad authorize URL", &e))?,
            )
            .set_token_uri(
                TokenUrl::new(provider.endpoints.token.clone())
                    .map_err(|e| setup("bad token URL", &e))?,
            )
            .set_auth_type(match provider.client_auth {
                ClientAuth::RequestBody => AuthType::RequestBody,
                ClientAuth::BasicAuth => AuthType::BasicAuth,
            });
        if let Some(secret) = client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_string()));
        }
        if let Some(url) = redirect_url {
            client = client.set_redirect_uri(
                RedirectUrl::new(url.to_string()).map_err(|e| setup("bad redirect URL", &e))?,
            );
        }
        let mut http = reqwest::blocking::Client::builder()
            // The token endpoint must answer itself; a redirect could carry the code elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TOKEN_REQUEST_TIMEOUT)
            .user_agent(concat!("oauth-authorize/", env!("CARGO_PKG_VERSION")));
        if let Some(proxy) = proxy {
            let proxy = reqwest::Proxy::all(proxy).map_err(|e| setup("bad --proxy URL", &e))?;
            http = http.proxy(proxy);
        }
        let http = http
            .build()
            .map_err(|e| setup("cannot build the HTTP client", &e))?;
        Ok(TokenClient {
            client,
            http,
            token_url: provider.endpoints.token.clone(),
        })
    }

    /// The configured oauth2 client, for building the authorize URL.
    pub fn oauth(&self) -> &ConfiguredClient {
        &self.client
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens.
    pub fn exchange_code(
        &self,
        code: &Secret,
        verifier: Option<&Secret>,
    ) -> Result<TokenBlob, ExchangeError> {
        self.with_retries(|http| {
            let mut request = self
                .client
                .exchange_code(AuthorizationCode::new(code.expose().to_string()));
            if let Some(v) = verifier {
                request = request.set_pkce_verifier(PkceCodeVerifier::new(v.expose().to_string()));
            }
            request.request(&http)
        })
    }

    /// The client-credentials grant: no user, no browser.
    pub fn client_credentials(
        &self,
        scopes: &[String],
        params: &[(String, String)],
    ) -> Result<TokenBlob, ExchangeError> {
        self.with_retries(|http| {
            let mut request = self
                .client
                .exchange_client_credentials()
                .add_scopes(scopes.iter().map(|s| Scope::new(s.clone())));
            for (k, v) in params {
                request = request.add_extra_param(k.clone(), v.clone());
            }
            request.request(&http)
        })
    }

    fn with_retries<F>(&self, attempt: F) -> Result<TokenBlob, ExchangeError>
    where
        F: Fn(
            &dyn Fn(HttpRequest) -> Result<HttpResponse, HttpError>,
        )
            -> Result<BasicTokenResponse, RequestTokenError<HttpError, BasicErrorResponse>>,
    {
        let mut retries = 0;
        loop {
            let last = LastResponse::default();
            let send = |req: HttpRequest| self.send(req, &last);
            match attempt(&send) {
                Ok(response) => return Ok(blob_from(&response)),
                Err(e) => {
                    let err = self.classify(e, &last);
                    match err {
                        ExchangeError::HttpStatus {
                            status: 429,
                            retry_after,
                        } if retries < MAX_RATE_LIMIT_RETRIES
                            && Duration::from_secs(retry_after.unwrap_or(1)) <= MAX_RETRY_AFTER =>
                        {
                            retries += 1;
                            let wait = retry_after.unwrap_or(1);
                            eprintln!(
                                "The token endpoint is rate limiting (429); retrying in {wait} s."
                            );
                            std::thread::sleep(Duration::from_secs(wait));
                        }
                        other => return Err(other),
                    }
                }
            }
        }
    }

    fn send(&self, request: HttpRequest, last: &LastResponse) -> Result<HttpResponse, HttpError> {
        let request: reqwest::blocking::Request = request.try_into().map_err(HttpError::from)?;
        let response = self.http.execute(request)?;
        let status = response.status();
        last.status.set(status.as_u16());
        last.retry_after.set(
            response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok()),
        );
        let mut builder = oauth2::http::Response::builder().status(status.as_u16());
        for (name, value) in response.headers() {
            builder = builder.header(name.as_str(), value.as_bytes());
        }
        let mut body = Vec::new();
        response
            .take(MAX_RESPONSE_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|e| HttpError(e.to_string()))?;
        if body.len() as u64 > MAX_RESPONSE_BYTES {
            return Err(HttpError(format!(
                "response larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        builder.body(body).map_err(|e| HttpError(e.to_string()))
    }

    fn classify(
        &self,
        error: RequestTokenError<HttpError, BasicErrorResponse>,
        last: &LastResponse,
    ) -> ExchangeError {
        let status = last.status.get();
        match error {
            RequestTokenError::ServerResponse(r) => {
                let error = r.error().as_ref().to_string();
                let description = r.error_description().cloned();
                if status == 429 || status >= 500 {
                    return ExchangeError::HttpStatus {
                        status,
                        retry_after: last.retry_after.get(),
                    };
                }
                let hint = hint_for(&error, description.as_deref());
                ExchangeError::Refused {
                    error,
                    description,
                    hint,
                }
            }
            RequestTokenError::Request(e) => ExchangeError::Unreachable {
                url: self.token_url.clone(),
                reason: e.0,
            },
            RequestTokenError::Parse(..) if status == 200 => ExchangeError::BadResponse { status },
            RequestTokenError::Parse(..) | RequestTokenError::Other(_) => {
                ExchangeError::HttpStatus {
                    status,
                    retry_after: last.retry_after.get(),
                }
            }
        }
    }
}

/// The next step to suggest for a token-endpoint error.
fn hint_for(error: &str, description: Option<&str>) -> &'static str {
    let mentions_redirect = error.contains("redirect")
        || description.is_some_and(|d| d.to_ascii_lowercase().contains("redirect"));
    if mentions_redirect {
        ". The redirect URL must match the one registered with the provider exactly: use --redirect-url (e.g. http://localhost:53682/) to send the registered one"
    } else if error == "invalid_client" || error == "unauthorized_client" {
        ". Check the client id and client secret"
    } else if error == "invalid_grant" {
        ". The code was refused (used twice, expired, or a PKCE mismatch): run oauth-authorize again"
    } else {
        ""
    }
}

/// The blob for a token response, with the expiry computed by this clock.
fn blob_from(response: &BasicTokenResponse) -> TokenBlob {
    let expires_in = response.expires_in().map(|d| d.as_secs() as i64);
    TokenBlob {
        access_token: Secret::new(response.access_token().secret().clone()),
        token_type: Some(response.token_type().as_ref().to_string()),
        refresh_token: response
            .refresh_token()
            .map(|r| Secret::new(r.secret().clone())),
        expiry: expires_in.map(|s| (Local::now() + ChronoDuration::seconds(s)).fixed_offset()),
        expires_in,
    }
}

/// A transport failure, described without any request or response content.
#[derive(Debug)]
pub struct HttpError(String);

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpError {}

impl From<reqwest::Error> for HttpError {
    fn from(e: reqwest::Error) -> Self {
        // reqwest's message names the URL (no body); add the root cause.
        let e = e.without_url();
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        HttpError(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints() {
        assert!(hint_for("invalid_grant", Some("redirect_uri mismatch")).contains("--redirect-url"));
        assert!(hint_for("redirect_uri_mismatch", None).contains("--redirect-url"));
        assert!(hint_for("invalid_client", None).contains("client secret"));
        assert!(hint_for("invalid_grant", Some("code expired")).contains("again"));
    }
}
