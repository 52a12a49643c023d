//! The OAuth endpoints: `/oauth2/authorize`, `/oauth2/token` and revocation,
//! with the providers' real request checks, response shapes and errors.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, State as AxumState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::api::{bearer_token, dropbox_auth_error, dropbox_missing_auth};
use super::{
    lock, parse_form, AccessCheck, Code, Fault, Params, Shared, State, Style, CODE_LIFETIME,
};

// ---------------------------------------------------------------- authorize

/// `GET /oauth2/authorize`: plays the provider's consent page. The user
/// always consents (unless [`super::FakeProvider::deny_next_authorization`]),
/// so a valid request is answered with the redirect back to the client.
pub(super) async fn authorize(
    AxumState(shared): AxumState<Shared>,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = parse_form(query.unwrap_or_default().as_bytes());
    let mut st = lock(&shared);
    st.counters.authorize += 1;
    st.last_authorize_query = Some(pairs.clone());
    authorize_inner(&mut st, &pairs)
}

fn authorize_inner(st: &mut State, pairs: &[(String, String)]) -> Response {
    let p = match Params::new(pairs) {
        Ok(p) => p,
        Err(name) => {
            return error_page(&format!("The parameter “{name}” was given more than once."))
        }
    };
    // Until the client and its redirect URI are known good, errors are shown
    // to the user and never redirected (RFC 6749 §4.1.2.1).
    let Some(client_id) = p.get("client_id") else {
        return error_page("Invalid request: the client_id parameter is missing.");
    };
    let Some(client) = st.clients.get(client_id) else {
        return error_page("Invalid client_id: this app does not exist or has been disabled.");
    };
    let Some(redirect_uri) = p.get("redirect_uri") else {
        return error_page("Invalid request: the redirect_uri parameter is missing.");
    };
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return error_page(&format!(
            "Invalid redirect_uri: “{redirect_uri}” does not match any redirect URI \
             registered for this app. It must match exactly."
        ));
    }
    let state = p.get("state");

    if p.get("response_type") != Some("code") {
        return redirect_back(
            redirect_uri,
            &[
                ("error", "unsupported_response_type"),
                ("error_description", "Only response_type=code is supported"),
            ],
            state,
        );
    }

    let mut challenge = None;
    let mut offline = true;
    if st.style == Style::Dropbox {
        match (p.get("code_challenge"), p.get("code_challenge_method")) {
            (Some(c), Some("S256")) if is_s256_challenge(c) => challenge = Some(c.to_owned()),
            (Some(_), Some("S256")) => {
                return error_page(
                    "Invalid code_challenge: an S256 challenge is 43 characters of \
                     unpadded base64url.",
                )
            }
            (Some(_), Some(m)) => {
                return error_page(&format!(
                    "Invalid code_challenge_method “{m}”: only S256 is accepted."
                ))
            }
            _ => {
                return error_page(
                    "Invalid request: this app must use PKCE (code_challenge with \
                     code_challenge_method=S256).",
                )
            }
        }
        offline = match p.get("token_access_type") {
            Some("offline") => true,
            None | Some("online") | Some("legacy") => false,
            Some(other) => {
                return error_page(&format!(
                    "Invalid token_access_type “{other}”: expected offline, online or legacy."
                ))
            }
        };
    }

    if st.deny_next {
        st.deny_next = false;
        return redirect_back(
            redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "The user denied access"),
            ],
            state,
        );
    }

    let record = Code {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        challenge,
        offline,
        scope: p.get("scope").map(str::to_owned),
        expires_at: Instant::now() + CODE_LIFETIME,
        used: false,
    };
    let code = st.new_secret("code-");
    st.codes.insert(code.clone(), record);
    redirect_back(redirect_uri, &[("code", &code)], state)
}

/// Whether `c` looks like an S256 challenge: 43 base64url characters.
fn is_s256_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A 302 back to the client's redirect URI with `params` and `state`
/// appended to its query.
fn redirect_back(redirect_uri: &str, params: &[(&str, &str)], state: Option<&str>) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        // Registered URIs are checked at registration; this cannot happen.
        return error_page("The registered redirect URI is not a URL.");
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
    }
    let Ok(location) = HeaderValue::from_str(url.as_str()) else {
        return error_page("The redirect URI cannot be put in a Location header.");
    };
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
        ],
        "<!DOCTYPE html><html><body>Redirecting…</body></html>",
    )
        .into_response()
}

/// The provider's HTML error page, status 400: what a user sees when the
/// authorize request is too broken to redirect back.
fn error_page(message: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html>\n<html><head><title>Error</title></head><body>\
         <h1>Something went wrong</h1><p>{}</p></body></html>\n",
        html_escape(message)
    );
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------- token

/// An OAuth error answer from the token or revoke endpoint.
pub(super) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// The client tried HTTP Basic: a 401 must say how to authenticate.
    basic_challenge: bool,
}

impl OAuthError {
    pub(super) fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }

    fn invalid_request(description: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_request", description)
    }

    fn invalid_grant(description: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_grant", description)
    }

    fn invalid_client(style: Style, used_basic: bool) -> OAuthError {
        let description = match style {
            Style::Box => "The client credentials are invalid",
            Style::Dropbox => "Invalid client_id or client_secret",
        };
        OAuthError {
            status: if used_basic {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            },
            error: "invalid_client",
            description: description.into(),
            basic_challenge: used_basic,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = (self.status, no_store_json(body)).into_response();
        if self.basic_challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"oauth2\""),
            );
        }
        response
    }
}

/// A JSON response with the no-cache headers RFC 6749 §5.1 asks of token
/// responses.
fn no_store_json(body: Value) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// Counts a token request in flight from its arrival until its answer (or
/// until the client gives up on it), and keeps the highest count seen.
struct InFlight(Shared);

impl InFlight {
    fn enter(shared: &Shared) -> InFlight {
        let mut st = lock(shared);
        st.token_in_flight += 1;
        st.token_in_flight_max = st.token_in_flight_max.max(st.token_in_flight);
        InFlight(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&self.0).token_in_flight -= 1;
    }
}

/// `POST /oauth2/token`.
pub(super) async fn token(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _in_flight = InFlight::enter(&shared);
    let form = parse_form(&body);
    let delay = lock(&shared).token_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (style, fault, canary) = {
        let mut st = lock(&shared);
        st.counters.token_requests += 1;
        st.last_token_form = Some(form.clone());
        let fault = st.faults.pop_front();
        if matches!(fault, Some(ref f) if !matches!(f, Fault::Hang | Fault::RotateThenHang)) {
            st.counters.token_errors += 1;
        }
        if fault == Some(Fault::RotateThenHang) {
            // The refresh is carried out; only its answer is lost.
            let _ = token_inner(&mut st, &headers, &form);
        }
        // A token-like string the broken answers quote: a client that logs
        // or repeats a body it could not use leaks it, and the sweep sees it.
        let canary = match fault {
            Some(_) => {
                let prefix = format!("{}-canary-", st.token_prefix());
                st.new_secret(&prefix)
            }
            None => String::new(),
        };
        (st.style, fault, canary)
    };
    if let Some(fault) = fault {
        return fault_response(style, fault, &canary).await;
    }
    let mut st = lock(&shared);
    match token_inner(&mut st, &headers, &form) {
        Ok(body) => no_store_json(body),
        Err(e) => {
            st.counters.token_errors += 1;
            e.into_response()
        }
    }
}

async fn fault_response(style: Style, fault: Fault, canary: &str) -> Response {
    match fault {
        Fault::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><head><title>500 Internal Server Error</title></head>\
             <body><h1>Internal Server Error</h1></body></html>\n",
        )
            .into_response(),
        Fault::TooManyRequests { retry_after_secs } => {
            let body = match style {
                Style::Box => json!({
                    "type": "error",
                    "status": 429,
                    "code": "rate_limit_exceeded",
                    "message": "Request rate limit exceeded, please try again later",
                    "request_id": "fake0rate0limit",
                }),
                Style::Dropbox => json!({
                    "error_summary": "too_many_requests/..",
                    "error": {
                        "reason": {".tag": "too_many_requests"},
                        "retry_after": retry_after_secs,
                    },
                }),
            };
            (
                StatusCode::TOO_MANY_REQUESTS,
                [
                    (header::RETRY_AFTER, retry_after_secs.to_string()),
                    (header::CONTENT_TYPE, "application/json".to_owned()),
                ],
                body.to_string(),
            )
                .into_response()
        }
        Fault::InvalidGrant => OAuthError::invalid_grant(
            "The provided authorization grant is invalid, expired, or revoked",
        )
        .into_response(),
        Fault::Hang | Fault::RotateThenHang => {
            // Cancelled when the fake shuts down (its runtime is dropped).
            tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Fault::GarbageJson => {
            let mut body =
                format!(r#"{{"access_token":"{canary}","token_type":bearer,,"expires_in":"#)
                    .into_bytes();
            body.extend_from_slice(b"\x00\xff\xfe\x1b[31m}}");
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
        Fault::HtmlPage { status } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            format!(
                "<!DOCTYPE html>\n<html><head><title>Sign in to the network</title></head>\
                 <body><h1>Network login required</h1><form method=post>\
                 <input type=hidden name=session value=\"{canary}\"></form></body></html>\n"
            ),
        )
            .into_response(),
        Fault::TruncatedBody => {
            let whole = json!({
                "access_token": canary,
                "expires_in": 3600,
                "token_type": "bearer",
                "refresh_token": canary,
            })
            .to_string();
            let half = axum::body::Bytes::from(whole.as_bytes()[..whole.len() / 2].to_vec());
            // Half the body, a pause so it is flushed, then the connection drops.
            let first = futures_util::stream::iter([Ok::<_, std::io::Error>(half)]);
            let then_drop = futures_util::stream::once(async {
                tokio::task::yield_now().await;
                Err(std::io::Error::other("the connection dropped"))
            });
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/json".to_owned()),
                    (header::CONTENT_LENGTH, whole.len().to_string()),
                ],
                axum::body::Body::from_stream(futures_util::StreamExt::chain(first, then_drop)),
            )
                .into_response()
        }
        Fault::MissingFields => no_store_json(json!({
            "token_type": "bearer",
            "expires_in": 3600,
            "refresh_token": canary,
        })),
        Fault::Oversized { bytes } => {
            let head = format!(
                r#"{{"access_token":"{canary}","token_type":"bearer","expires_in":3600,"padding":""#
            );
            let tail = r#""}"#;
            let mut body = String::with_capacity(bytes.max(head.len() + tail.len()));
            body.push_str(&head);
            let pad = bytes.saturating_sub(head.len() + tail.len());
            body.extend(std::iter::repeat_n('x', pad));
            body.push_str(tail);
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
    }
}

fn token_inner(
    st: &mut State,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<Value, OAuthError> {
    check_form_content_type(headers)?;
    let p = Params::new(form).map_err(|name| {
        OAuthError::invalid_request(format!("Parameter {name} was given more than once"))
    })?;
    let Some(grant_type) = p.get("grant_type") else {
        return Err(OAuthError::invalid_request(
            "Invalid grant_type parameter or parameter missing",
        ));
    };
    if grant_type == super::device::GRANT_TYPE {
        // Public clients poll with their id alone (RFC 8628 §3.4).
        return super::device::token(st, &p);
    }
    let client_id = authenticate_client(st, headers, &p)?;
    match (grant_type, st.style) {
        ("authorization_code", _) => exchange_code(st, &client_id, &p),
        ("refresh_token", _) => refresh(st, &client_id, &p),
        ("client_credentials", Style::Box) => client_credentials(st, &client_id, &p),
        (other, _) => Err(OAuthError::new(
            "unsupported_grant_type",
            format!("Grant type \"{other}\" is not supported"),
        )),
    }
}

fn check_form_content_type(headers: &HeaderMap) -> Result<(), OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "The request body must be application/x-www-form-urlencoded",
        ))
    }
}

/// Credentials from an `Authorization: Basic` header, form-urldecoded as
/// RFC 6749 §2.3.1 requires. `Ok(None)` if there is no Basic header; an
/// error if there is one that cannot be decoded.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| ())?;
    let decoded = String::from_utf8(decoded).map_err(|_| ())?;
    let (id, secret) = decoded.split_once(':').ok_or(())?;
    Ok(Some((form_decode(id), form_decode(secret))))
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a
/// space, `%XX` a byte). Invalid escapes are kept as they are.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks the client's credentials and returns its id. Box reads them from
/// the body only; Dropbox from the body or HTTP Basic, but not both.
fn authenticate_client(
    st: &State,
    headers: &HeaderMap,
    p: &Params<'_>,
) -> Result<String, OAuthError> {
    let basic = basic_credentials(headers);
    let used_basic = !matches!(basic, Ok(None));
    let (id, secret) = match st.style {
        Style::Box => (
            p.get("client_id"),
            p.get("client_secret").map(str::to_owned),
        ),
        Style::Dropbox => match basic {
            Err(()) => return Err(OAuthError::invalid_client(st.style, true)),
            Ok(Some((id, secret))) => {
                if p.get("client_secret").is_some() {
                    return Err(OAuthError::invalid_request(
                        "Only one client authentication method may be used: \
                         HTTP Basic or client_secret in the body, not both",
                    ));
                }
                if p.get("client_id").is_some_and(|body_id| body_id != id) {
                    return Err(OAuthError::invalid_request(
                        "client_id in the body does not match the Authorization header",
                    ));
                }
                let Some(client) = st.clients.get_key_value(id.as_str()) else {
                    return Err(OAuthError::invalid_client(st.style, true));
                };
                (Some(client.0.as_str()), Some(secret))
            }
            Ok(None) => (
                p.get("client_id"),
                p.get("client_secret").map(str::to_owned),
            ),
        },
    };
    let (Some(id), Some(secret)) = (id, secret) else {
        return Err(OAuthError::invalid_client(st.style, used_basic));
    };
    match st.clients.get(id) {
        Some(client) if client.secret == secret => Ok(id.to_owned()),
        _ => Err(OAuthError::invalid_client(st.style, used_basic)),
    }
}

fn exchange_code(st: &mut State, client_id: &str, p: &Params<'_>) -> Result<Value, OAuthError> {
    let Some(code) = p.get("code") else {
        return Err(OAuthError::invalid_request("Missing parameter: code"));
    };
    let unknown = || match st.style {
        Style::Box => {
            OAuthError::invalid_grant("Auth code doesn't exist or is invalid for the client")
        }
        Style::Dropbox => OAuthError::invalid_grant("code doesn't exist or has expired"),
    };
    let Some(record) = st.codes.get(code) else {
        return Err(unknown());
    };
    if record.client_id != client_id {
        return Err(unknown());
    }
    if record.used {
        return Err(OAuthError::invalid_grant("code has already been used"));
    }
    if Instant::now() >= record.expires_at {
        return Err(OAuthError::invalid_grant("code has expired"));
    }
    if p.get("redirect_uri") != Some(record.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri mismatch: the redirect_uri must be the one given at /oauth2/authorize",
        ));
    }
    let pkce = record.challenge.is_some();
    if let Some(challenge) = &record.challenge {
        let Some(verifier) = p.get("code_verifier") else {
            return Err(OAuthError::invalid_grant(
                "code_verifier is required: the authorization used a code_challenge",
            ));
        };
        // As secret as the code: the sweeps look for it too.
        st.issued.push(verifier.to_owned());
        if !is_valid_verifier(verifier) {
            return Err(OAuthError::invalid_grant(
                "invalid code_verifier: it must be 43 to 128 characters of [A-Za-z0-9-._~]",
            ));
        }
        if s256(verifier) != *challenge {
            return Err(OAuthError::invalid_grant(
                "invalid code_verifier: it does not match the code_challenge",
            ));
        }
    }
    let offline = record.offline;
    let scope = record.scope.clone();
    if let Some(record) = st.codes.get_mut(code) {
        record.used = true;
    }

    let account = st.default_account();
    let scope = scope.unwrap_or_else(|| st.default_scope());
    let grant = st.new_grant(client_id, account, scope);
    let lifetime = st.access_lifetime;
    let access = st.issue_access(grant, lifetime);
    let refresh = offline.then(|| st.issue_refresh(grant));
    if pkce {
        st.counters.pkce_verified += 1;
    }
    st.counters.code_exchanges += 1;
    Ok(token_body(st, grant, access, refresh))
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn is_valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The S256 challenge of a verifier: base64url-no-pad(SHA-256(verifier)).
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

fn refresh(st: &mut State, client_id: &str, p: &Params<'_>) -> Result<Value, OAuthError> {
    let Some(presented) = p.get("refresh_token") else {
        return Err(OAuthError::invalid_request(
            "Missing parameter: refresh_token",
        ));
    };
    let invalid = match st.style {
        Style::Box => "Invalid refresh token",
        Style::Dropbox => "refresh token is invalid or revoked",
    };
    let Some(record) = st.refresh_tokens.get(presented) else {
        return Err(OAuthError::invalid_grant(invalid));
    };
    let grant = record.grant;
    let rotated = record.rotated;
    if st.grants[grant].client_id != client_id {
        return Err(OAuthError::invalid_grant(invalid));
    }
    if rotated {
        st.refresh_chain_breaks += 1;
        return Err(OAuthError::invalid_grant("Refresh token has expired"));
    }
    if st.grants[grant].revoked {
        return Err(OAuthError::invalid_grant(invalid));
    }
    let new_refresh = match st.style {
        Style::Box => {
            if let Some(record) = st.refresh_tokens.get_mut(presented) {
                record.rotated = true;
            }
            Some(st.issue_refresh(grant))
        }
        Style::Dropbox => None,
    };
    let lifetime = st.access_lifetime;
    let access = st.issue_access(grant, lifetime);
    st.counters.refreshes += 1;
    st.grants[grant].refreshes += 1;
    Ok(token_body(st, grant, access, new_refresh))
}

fn client_credentials(
    st: &mut State,
    client_id: &str,
    p: &Params<'_>,
) -> Result<Value, OAuthError> {
    let subject_type = p.get("box_subject_type");
    let Some(subject_id) = p.get("box_subject_id") else {
        return Err(OAuthError::invalid_request("Missing box_subject_id"));
    };
    let account = match subject_type {
        Some("enterprise") => super::Account {
            id: "20000000".into(),
            uid: String::new(),
            name: "Fake Service Account".into(),
            email: format!("AutomationUser_{subject_id}@boxdevedition.com"),
        },
        Some("user") => super::Account {
            id: subject_id.to_owned(),
            ..st.default_account()
        },
        Some(other) => {
            return Err(OAuthError::invalid_request(format!(
                "Invalid box_subject_type \"{other}\": expected enterprise or user"
            )))
        }
        None => return Err(OAuthError::invalid_request("Missing box_subject_type")),
    };
    let scope = st.default_scope();
    let grant = st.new_grant(client_id, account, scope);
    let lifetime = st.access_lifetime;
    let access = st.issue_access(grant, lifetime);
    st.counters.client_credentials += 1;
    Ok(token_body(st, grant, access, None))
}

/// The provider's token response, exactly as `providers.md` gives it.
pub(super) fn token_body(
    st: &State,
    grant: usize,
    access: String,
    refresh: Option<String>,
) -> Value {
    let mut body = Map::new();
    body.insert("access_token".into(), access.into());
    body.insert("expires_in".into(), st.access_lifetime.into());
    body.insert("token_type".into(), "bearer".into());
    if let Some(refresh) = refresh {
        body.insert("refresh_token".into(), refresh.into());
    }
    match st.style {
        Style::Box => {
            body.insert("restricted_to".into(), json!([]));
        }
        Style::Dropbox => {
            let g = &st.grants[grant];
            body.insert("scope".into(), g.scope.clone().into());
            body.insert("account_id".into(), g.account.id.clone().into());
            body.insert("uid".into(), g.account.uid.clone().into());
        }
    }
    Value::Object(body)
}

// ---------------------------------------------------------------- revoke

/// Box `POST /oauth2/revoke`, form `client_id, client_secret, token`. The
/// token may be an access or a refresh token; its whole grant dies. An
/// unknown token is not an error (RFC 7009 §2.2).
pub(super) async fn revoke_box(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = parse_form(&body);
    let mut st = lock(&shared);
    match revoke_box_inner(&mut st, &headers, &form) {
        Ok(()) => {
            st.counters.revokes += 1;
            StatusCode::OK.into_response()
        }
        Err(e) => e.into_response(),
    }
}

fn revoke_box_inner(
    st: &mut State,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<(), OAuthError> {
    check_form_content_type(headers)?;
    let p = Params::new(form).map_err(|name| {
        OAuthError::invalid_request(format!("Parameter {name} was given more than once"))
    })?;
    let client_id = authenticate_client(st, headers, &p)?;
    let Some(token) = p.get("token") else {
        return Err(OAuthError::invalid_request("Missing parameter: token"));
    };
    let grant = st
        .access_tokens
        .get(token)
        .map(|t| t.grant)
        .or_else(|| st.refresh_tokens.get(token).map(|t| t.grant));
    if let Some(grant) = grant {
        if st.grants[grant].client_id == client_id {
            st.grants[grant].revoked = true;
        }
    }
    Ok(())
}

/// Dropbox `POST /2/auth/token/revoke` with a Bearer access token and no
/// body: the token's whole grant (access and refresh tokens) dies.
pub(super) async fn revoke_dropbox(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
) -> Response {
    let mut st = lock(&shared);
    let Some(token) = bearer_token(&headers) else {
        return dropbox_missing_auth("auth/token/revoke");
    };
    match st.check_access(token) {
        AccessCheck::Valid(grant) => {
            st.grants[grant].revoked = true;
            st.counters.revokes += 1;
            ([(header::CONTENT_TYPE, "application/json")], "null").into_response()
        }
        check => dropbox_auth_error(&check),
    }
}
