//! The device authorization grant (RFC 8628), as Microsoft and Google run
//! it: `POST /oauth2/device/code` hands out a device code and a user code,
//! and the token endpoint answers `grant_type=urn:ietf:params:oauth:grant-type:device_code`
//! polls with `authorization_pending`, `slow_down`, `access_denied`,
//! `expired_token` (each a 400 with the OAuth error JSON) or the tokens.
//!
//! There is no user here: a test scripts what the "user" does with
//! [`FakeProvider::script_device`], one [`DeviceAnswer`] per poll (an empty
//! script answers `authorization_pending` until the code expires). The fake
//! is strict like the real servers: a poll sooner than the current interval
//! after the previous one gets `slow_down` (and the interval grows by 5 s),
//! and is counted in [`FakeProvider::device_polls_too_soon`]. Every poll's
//! arrival time is recorded, so a test can check the client's intervals.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use ring::rand::SecureRandom;
use serde_json::{json, Value};

use super::oauth::{token_body, OAuthError};
use super::{lock, parse_form, FakeProvider, Params, Shared, State};

/// RFC 8628's grant type at the token endpoint.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// What the scripted user has done by the time of one poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceAnswer {
    /// Not yet: `authorization_pending`.
    Pending,
    /// The server wants fewer polls: `slow_down`, and the interval grows by 5 s.
    SlowDown,
    /// The user clicked "Deny": `access_denied`; the device code is spent.
    Deny,
    /// The code ran out: `expired_token`; the device code is spent.
    Expire,
    /// The user approved: the tokens (with a refresh token).
    Approve,
}

/// One poll as the fake saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevicePoll {
    /// When it arrived, counted from when its device code was issued.
    pub after_issue: Duration,
    /// The OAuth error it was answered with, or `"tokens"`.
    pub answer: &'static str,
}

pub(crate) struct DeviceState {
    interval: u64,
    expires_in: u64,
    script: VecDeque<DeviceAnswer>,
    codes: HashMap<String, DeviceCode>,
    polls: Vec<DevicePoll>,
    user_codes: Vec<String>,
    too_soon: u64,
    requests: u64,
    /// The scopes a device code may be asked for; `None`: any.
    allowed_scopes: Option<Vec<String>>,
}

impl Default for DeviceState {
    fn default() -> Self {
        DeviceState {
            // Microsoft's defaults.
            interval: 5,
            expires_in: 900,
            script: VecDeque::new(),
            codes: HashMap::new(),
            polls: Vec::new(),
            user_codes: Vec::new(),
            too_soon: 0,
            requests: 0,
            allowed_scopes: None,
        }
    }
}

struct DeviceCode {
    client_id: String,
    scope: Option<String>,
    issued_at: Instant,
    expires_at: Instant,
    /// The current interval: the issued one plus 5 s per `slow_down`.
    interval: Duration,
    last_poll: Option<Instant>,
    /// Approved, denied or expired: no further poll gets anything.
    spent: bool,
}

/// `POST /oauth2/device/code`: form `client_id`, `scope`.
pub(super) async fn authorize(AxumState(shared): AxumState<Shared>, body: Bytes) -> Response {
    let form = parse_form(&body);
    let mut st = lock(&shared);
    st.device.requests += 1;
    let p = match Params::new(&form) {
        Ok(p) => p,
        Err(name) => {
            return OAuthError::new(
                "invalid_request",
                format!("{name} was given more than once"),
            )
            .into_response()
        }
    };
    let Some(client_id) = p.get("client_id").filter(|id| st.clients.contains_key(*id)) else {
        return OAuthError::new("invalid_client", "Unknown client_id").into_response();
    };
    let client_id = client_id.to_owned();
    if let (Some(allowed), Some(scope)) = (&st.device.allowed_scopes, p.get("scope")) {
        // Google's answer to a scope its device flow does not grant.
        if let Some(bad) = scope.split(' ').find(|s| !allowed.iter().any(|a| a == s)) {
            return OAuthError::new("invalid_scope", format!("Invalid device flow scope: {bad}"))
                .into_response();
        }
    }
    let device_code = st.new_secret("device-");
    let user_code = user_code(&st);
    let base = st.files.base_url.clone();
    let now = Instant::now();
    let (interval, expires_in) = (st.device.interval, st.device.expires_in);
    st.device.user_codes.push(user_code.clone());
    st.device.codes.insert(
        device_code.clone(),
        DeviceCode {
            client_id,
            scope: p.get("scope").map(str::to_owned),
            issued_at: now,
            expires_at: now + Duration::from_secs(expires_in),
            interval: Duration::from_secs(interval),
            last_poll: None,
            spent: false,
        },
    );
    let body = json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": format!("{base}/oauth2/device"),
        "verification_uri_complete": format!("{base}/oauth2/device?user_code={user_code}"),
        "expires_in": expires_in,
        "interval": interval,
        "message": format!("To sign in, use a web browser to open the page {base}/oauth2/device and enter the code {user_code} to authenticate."),
    });
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// `GET /oauth2/device`: the page where the user would enter the code.
pub(super) async fn page() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!DOCTYPE html><html><body><h1>Enter code</h1><form><input name=user_code></form></body></html>\n",
    )
        .into_response()
}

/// A user code like `WDJB-MJHT`: eight letters without look-alikes.
fn user_code(st: &State) -> String {
    const LETTERS: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let mut bytes = [0u8; 8];
    st.rng.fill(&mut bytes).expect("the system RNG works");
    let letters: String = bytes
        .iter()
        .map(|b| LETTERS[*b as usize % LETTERS.len()] as char)
        .collect();
    format!("{}-{}", &letters[..4], &letters[4..])
}

/// The device-code grant at the token endpoint. Public clients send only
/// `client_id`; a confidential one's `client_secret` must be right.
pub(super) fn token(st: &mut State, p: &Params<'_>) -> Result<Value, OAuthError> {
    let client_id = match p.get("client_id") {
        Some(id) if st.clients.contains_key(id) => id.to_owned(),
        _ => return Err(OAuthError::new("invalid_client", "Unknown client_id")),
    };
    if let Some(secret) = p.get("client_secret") {
        if st.clients.get(&client_id).map(|c| c.secret.as_str()) != Some(secret) {
            return Err(OAuthError::new("invalid_client", "Invalid client secret"));
        }
    }
    let Some(code) = p.get("device_code") else {
        return Err(OAuthError::new(
            "invalid_request",
            "Missing parameter: device_code",
        ));
    };
    let now = Instant::now();
    let Some(rec) = st.device.codes.get_mut(code) else {
        return Err(OAuthError::new("invalid_grant", "Unknown device_code"));
    };
    if rec.client_id != client_id || rec.spent {
        return Err(OAuthError::new(
            "invalid_grant",
            "The device_code is invalid or was already used",
        ));
    }
    let after_issue = now - rec.issued_at;
    let too_soon = rec
        .last_poll
        .is_some_and(|last| now.duration_since(last) < rec.interval);
    rec.last_poll = Some(now);
    let answer = if now >= rec.expires_at {
        DeviceAnswer::Expire
    } else if too_soon {
        st.device.too_soon += 1;
        DeviceAnswer::SlowDown
    } else {
        st.device
            .script
            .pop_front()
            .unwrap_or(DeviceAnswer::Pending)
    };
    let Some(rec) = st.device.codes.get_mut(code) else {
        return Err(OAuthError::new("invalid_grant", "Unknown device_code"));
    };
    let (error, description) = match answer {
        DeviceAnswer::Pending => (
            "authorization_pending",
            "The user has not yet finished authorizing",
        ),
        DeviceAnswer::SlowDown => {
            rec.interval += Duration::from_secs(5);
            (
                "slow_down",
                "Polling too often: add 5 seconds to the interval",
            )
        }
        DeviceAnswer::Deny => {
            rec.spent = true;
            ("access_denied", "The user denied the authorization request")
        }
        DeviceAnswer::Expire => {
            rec.spent = true;
            ("expired_token", "The device_code has expired")
        }
        DeviceAnswer::Approve => {
            rec.spent = true;
            let scope = rec.scope.clone();
            st.device.polls.push(DevicePoll {
                after_issue,
                answer: "tokens",
            });
            let account = st.default_account();
            let scope = scope.unwrap_or_else(|| st.default_scope());
            let grant = st.new_grant(&client_id, account, scope);
            let lifetime = st.access_lifetime;
            let access = st.issue_access(grant, lifetime);
            let refresh = st.issue_refresh(grant);
            return Ok(token_body(st, grant, access, Some(refresh)));
        }
    };
    st.device.polls.push(DevicePoll {
        after_issue,
        answer: error,
    });
    Err(OAuthError::new(error, description))
}

impl FakeProvider {
    /// The device authorization endpoint: `{base}/oauth2/device/code`.
    pub fn device_url(&self) -> String {
        format!("{}/oauth2/device/code", self.base_url())
    }

    /// The `interval` and `expires_in` (seconds) of device codes issued
    /// from now on. Defaults 5 and 900, as Microsoft's.
    pub fn set_device_timing(&self, interval_secs: u64, expires_in_secs: u64) {
        let mut st = self.state();
        st.device.interval = interval_secs;
        st.device.expires_in = expires_in_secs;
    }

    /// Limits the scopes a device code may be asked for, as Google does
    /// (its device flow grants `…/auth/drive.file` but not `…/auth/drive`):
    /// a request for any other gets 400 `invalid_scope`. Default: any.
    pub fn set_device_scopes(&self, allowed: &[&str]) {
        self.state().device.allowed_scopes = Some(allowed.iter().map(|s| s.to_string()).collect());
    }

    /// Queues what the user does, one answer per poll in order; once the
    /// script is used up, polls get `authorization_pending`.
    pub fn script_device(&self, answers: &[DeviceAnswer]) {
        self.state().device.script.extend(answers.iter().copied());
    }

    /// Every device-code poll so far, in order.
    pub fn device_polls(&self) -> Vec<DevicePoll> {
        self.state().device.polls.clone()
    }

    /// The user codes handed out so far.
    pub fn device_user_codes(&self) -> Vec<String> {
        self.state().device.user_codes.clone()
    }

    /// Polls that came sooner than the interval allowed (answered `slow_down`).
    pub fn device_polls_too_soon(&self) -> u64 {
        self.state().device.too_soon
    }

    /// Requests to the device authorization endpoint.
    pub fn device_requests(&self) -> u64 {
        self.state().device.requests
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Style;
    use reqwest::blocking::Client;

    const ID: &str = "device-client";
    const SECRET: &str = "device-client-secret";

    fn fake() -> FakeProvider {
        let fake = FakeProvider::start(Style::Box);
        fake.register_client(ID, SECRET, &["http://127.0.0.1:53682/"]);
        fake
    }

    fn post(url: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let resp = Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .post(url)
            .form(form)
            .send()
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().expect("JSON body"))
    }

    fn start(fake: &FakeProvider) -> String {
        let (status, body) = post(
            &fake.device_url(),
            &[
                ("client_id", ID),
                ("scope", "Files.ReadWrite.All offline_access"),
            ],
        );
        assert_eq!(status, 200, "{body}");
        body["device_code"]
            .as_str()
            .expect("device_code")
            .to_owned()
    }

    fn poll(fake: &FakeProvider, code: &str) -> (u16, Value) {
        post(
            &fake.token_url(),
            &[
                ("grant_type", GRANT_TYPE),
                ("device_code", code),
                ("client_id", ID),
            ],
        )
    }

    #[test]
    fn the_device_authorization_response_is_rfc_8628s() {
        let fake = fake();
        fake.set_device_timing(3, 600);
        let (status, body) = post(&fake.device_url(), &[("client_id", ID)]);
        assert_eq!(status, 200, "{body}");
        let user_code = body["user_code"].as_str().expect("user_code");
        assert!(
            user_code.len() == 9 && user_code.as_bytes()[4] == b'-',
            "{user_code}"
        );
        assert_eq!(
            body["verification_uri"],
            format!("{}/oauth2/device", fake.base_url())
        );
        assert!(body["verification_uri_complete"]
            .as_str()
            .is_some_and(|u| u.ends_with(user_code)));
        assert_eq!(body["expires_in"], 600);
        assert_eq!(body["interval"], 3);
        let code = body["device_code"].as_str().expect("device_code");
        assert!(fake.issued_secrets().iter().any(|s| s == code));
        assert_eq!(fake.device_user_codes(), [user_code]);

        let (status, body) = post(&fake.device_url(), &[("client_id", "nobody")]);
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_client"))
        );
    }

    #[test]
    fn scripted_answers_then_tokens_once() {
        let fake = fake();
        fake.set_device_timing(0, 600);
        fake.script_device(&[DeviceAnswer::Pending, DeviceAnswer::Approve]);
        let code = start(&fake);
        let (status, body) = poll(&fake, &code);
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("authorization_pending"))
        );
        let (status, body) = poll(&fake, &code);
        assert_eq!(status, 200, "{body}");
        assert!(body["access_token"].is_string() && body["refresh_token"].is_string());
        assert_eq!(body["token_type"], "bearer");
        let (status, body) = poll(&fake, &code);
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        let answers: Vec<&str> = fake.device_polls().iter().map(|p| p.answer).collect();
        assert_eq!(answers, ["authorization_pending", "tokens"]);
    }

    #[test]
    fn polling_too_soon_is_slowed_down() {
        let fake = fake();
        fake.set_device_timing(0, 600);
        fake.script_device(&[DeviceAnswer::SlowDown, DeviceAnswer::Approve]);
        let code = start(&fake);
        let (_, body) = poll(&fake, &code);
        assert_eq!(body["error"], "slow_down");
        // The interval is now 5 s: polling again at once is too soon, and
        // the script is not consumed.
        let (_, body) = poll(&fake, &code);
        assert_eq!(body["error"], "slow_down");
        assert_eq!(fake.device_polls_too_soon(), 1);
    }

    #[test]
    fn denial_expiry_and_bad_clients() {
        let fake = fake();
        fake.set_device_timing(0, 600);
        fake.script_device(&[DeviceAnswer::Deny]);
        let code = start(&fake);
        assert_eq!(poll(&fake, &code).1["error"], "access_denied");
        assert_eq!(poll(&fake, &code).1["error"], "invalid_grant");

        fake.set_device_timing(0, 0);
        let code = start(&fake);
        assert_eq!(poll(&fake, &code).1["error"], "expired_token");

        fake.set_device_timing(0, 600);
        let code = start(&fake);
        let (status, body) = post(
            &fake.token_url(),
            &[
                ("grant_type", GRANT_TYPE),
                ("device_code", &code),
                ("client_id", ID),
                ("client_secret", "wrong"),
            ],
        );
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_client"))
        );
        let (_, body) = post(
            &fake.token_url(),
            &[
                ("grant_type", GRANT_TYPE),
                ("device_code", "nope"),
                ("client_id", ID),
            ],
        );
        assert_eq!(body["error"], "invalid_grant");
        // A confidential client's right secret is fine.
        let (status, body) = post(
            &fake.token_url(),
            &[
                ("grant_type", GRANT_TYPE),
                ("device_code", &code),
                ("client_id", ID),
                ("client_secret", SECRET),
            ],
        );
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("authorization_pending"))
        );
    }
}
