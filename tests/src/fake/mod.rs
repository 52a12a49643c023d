//! A fake OAuth provider for end-to-end tests.
//!
//! The real binaries (`oauth-authorize`, `token-vault`) talk to Box and
//! Dropbox. Tests cannot use the real providers: they need accounts, a
//! browser, a network, and they cannot make a provider fail on demand. So the
//! tests point the binaries' overridable provider URLs at a [`FakeProvider`]
//! instead: a small, stateful authorization server plus the few API calls the
//! binaries make, listening on loopback.
//!
//! The fake speaks the *real* wire formats described in
//! `shared/spec/providers.md`, errors included, and is deliberately strict
//! where the real providers are strict (exact redirect URI matching, single-use
//! codes, Box's rotating refresh tokens, Dropbox's mandatory PKCE), so that a
//! client bug shows up as a test failure rather than in production. It also
//! lets a test inject faults at the token endpoint (500, 429, `invalid_grant`,
//! a request that never gets an answer) and inspect what the client sent.
//!
//! The server runs on its own multi-thread tokio runtime, on a background
//! thread, so plain synchronous `#[test]` functions can use it. Dropping the
//! [`FakeProvider`] shuts it down, even while requests are hanging.
//!
//! The same server also plays the providers' *file* APIs (the style decides
//! which): Box's folders/files/uploads/upload sessions and Dropbox's RPC and
//! content calls, with file contents on disk in a temporary directory and
//! metadata in memory. Tests seed files with [`FakeProvider::put_file`],
//! inspect them with [`FakeProvider::paths`], [`FakeProvider::file_sha256`]
//! and friends, and inject failures into API calls with
//! [`FakeProvider::inject_api_fault`].
//!
//! Layout: this module holds the handle, the runtime and the shared state;
//! `oauth` the authorize, token and revoke endpoints; `api` the who-am-I
//! calls and the bearer-token checks; `gate` the request counting and API
//! fault injection in front of every non-OAuth route; `storage` the on-disk
//! file store and the in-memory tree; `box_files` and `dropbox_files` the
//! providers' file APIs; `multipart` a streaming form-data parser for Box
//! uploads.

mod api;
mod box_files;
mod counted;
mod device;
mod dropbox_files;
#[cfg(test)]
mod files_tests;
mod gate;
mod multipart;
mod oauth;
mod storage;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ring::rand::{SecureRandom, SystemRandom};

use storage::Files;

pub use device::{DeviceAnswer, DevicePoll};

/// Which provider's behaviour the fake imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Box: client secret in the form body only, no PKCE, refresh tokens
    /// rotate (single use), `client_credentials` grant, who-am-I at
    /// `GET /2.0/users/me`.
    Box,
    /// Dropbox: client auth in the body or HTTP Basic, mandatory PKCE (S256),
    /// refresh tokens only with `token_access_type=offline` and never rotated,
    /// who-am-I at `POST /2/users/get_current_account`.
    Dropbox,
}

/// A failure injected at the token endpoint with
/// [`FakeProvider::inject_token_fault`]. Each queued fault is consumed by
/// exactly one token request, before the request is otherwise looked at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 500 with a short HTML body, like a provider's front end in
    /// trouble. Transient.
    ServerError,
    /// HTTP 429 with a `Retry-After: N` header and the provider's JSON
    /// rate-limit body. Transient.
    TooManyRequests {
        /// The value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// HTTP 400 `{"error":"invalid_grant",…}`, whatever the grant. Permanent.
    InvalidGrant,
    /// Never answer. The request stays open until the client gives up or the
    /// fake is dropped; other requests are served meanwhile.
    Hang,
    /// HTTP 200 `application/json` whose body is not JSON (a half-written
    /// object with junk bytes after it). Transient. The body quotes a
    /// canary token (among [`FakeProvider::issued_secrets`]) that must
    /// never be logged.
    GarbageJson,
    /// An HTML page with this status, as a captive portal (200) or a proxy
    /// in trouble (502) serves; it quotes a canary token. Transient.
    HtmlPage {
        /// The HTTP status of the page.
        status: u16,
    },
    /// HTTP 200 with `Content-Length` of a whole token response, then the
    /// connection drops after half of it. Transient.
    TruncatedBody,
    /// HTTP 200 with a JSON object that has no `access_token` (but a canary
    /// `refresh_token`, which must not be stored). Transient.
    MissingFields,
    /// HTTP 200 with a well-formed token response padded to this many
    /// bytes (say 10 MB): a client must refuse it without reading it all.
    Oversized {
        /// The body's size in bytes.
        bytes: usize,
    },
    /// Box: carry out the refresh (the presented refresh token is rotated
    /// away and a new one issued), then never answer, as when the reply is
    /// lost in transit or the client dies before it arrives. The client is
    /// left holding a dead refresh token; for the crash soak.
    RotateThenHang,
}

/// A failure injected into the file and who-am-I APIs with
/// [`FakeProvider::inject_api_fault`]: the next API, upload, content or
/// download request whose path contains the given string gets it, before
/// anything else (authorization included) is looked at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiFault {
    /// HTTP 429 with `Retry-After: N` and the provider's real body: Box
    /// `{"type":"error","status":429,"code":"rate_limit_exceeded",…}`,
    /// Dropbox `{"error_summary":"too_many_requests/..","error":{"reason":
    /// {".tag":"too_many_requests"},"retry_after":N}}`.
    TooManyRequests {
        /// The value of the `Retry-After` header (and Dropbox's
        /// `retry_after`), in seconds.
        retry_after_secs: u64,
    },
    /// HTTP 500 with a short HTML body.
    ServerError,
    /// The request is handled as usual (an upload chunk stored, a folder
    /// made), then its answer is replaced by [`ApiFault::ServerError`]'s: the
    /// provider did the work but the client never heard, as when a
    /// connection drops after the request. A client that retries sees the
    /// provider's own answer to the repeat (Dropbox `incorrect_offset`, say).
    LostAnswer,
    /// Only the first `bytes` of the request's body reach the handler, which
    /// takes them for the whole body (a Dropbox append stores them); then
    /// the answer is lost as with [`ApiFault::LostAnswer`]. A connection
    /// that broke mid-body after the provider had kept part of it: a client
    /// that retries the chunk hears Dropbox's `incorrect_offset` with a
    /// `correct_offset` inside the chunk. (The gate holds the body in memory
    /// to cut it, so this is for test-sized requests.)
    KeptPrefix { bytes: usize },
    /// The provider's real 401 for an expired token: Box's empty body with
    /// `WWW-Authenticate: Bearer … error="invalid_token"`, Dropbox's
    /// `{"error_summary":"expired_access_token/..",…}`. The token itself
    /// stays valid: a client that refreshes (or simply retries) succeeds.
    Unauthorized,
    /// The provider's real "busy, try again" 409, with `Retry-After: N`:
    /// Box `{"type":"error","status":409,"code":"operation_blocked_temporary",…}`
    /// (another operation holds the item), Dropbox
    /// `{"error_summary":"too_many_write_operations/..","error":{"reason":
    /// {".tag":"too_many_write_operations"},"retry_after":N}}` (too many
    /// writes in the namespace at once). Nothing is done; a client that
    /// waits and retries succeeds. A client that takes every 409 for a
    /// conflict fails instead.
    Busy {
        /// The value of the `Retry-After` header (and Dropbox's
        /// `retry_after`), in seconds.
        retry_after_secs: u64,
    },
    /// Dropbox listings (`list_folder`, `list_folder/continue`): the page
    /// comes back with no entries but `has_more: true` and a cursor that
    /// continues where it was, as Dropbox may answer. A client that takes
    /// the empty page for the end of the listing misses every entry.
    /// Other requests are handled as usual (the fault is used up).
    EmptyPage,
    /// The request is handled as usual, but the first byte of the answer's
    /// body arrives changed (its bits flipped), the length the same: content
    /// damaged on its way, by a broken proxy or disk. Only a client that
    /// checks the provider's hash notices.
    DamagedBody,
}

/// A snapshot of what the fake has seen, from [`FakeProvider::counters`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests to `/oauth2/authorize`, whatever their outcome.
    pub authorize: u64,
    /// Successful `authorization_code` exchanges.
    pub code_exchanges: u64,
    /// Successful `refresh_token` grants.
    pub refreshes: u64,
    /// Successful `client_credentials` grants.
    pub client_credentials: u64,
    /// Requests to the token endpoint, whatever their outcome (injected
    /// faults included).
    pub token_requests: u64,
    /// Token endpoint answers that carried no token: errors, and injected
    /// faults (broken 200s too), except [`Fault::Hang`] and
    /// [`Fault::RotateThenHang`], which never answer.
    pub token_errors: u64,
    /// Code exchanges whose PKCE `code_verifier` matched the recorded
    /// challenge (and that succeeded).
    pub pkce_verified: u64,
    /// Who-am-I requests, whatever their outcome.
    pub whoami: u64,
    /// Revoke requests answered with 200.
    pub revokes: u64,
    /// Requests to anything but `/oauth2/…` (file APIs, uploads, downloads,
    /// who-am-I, Dropbox's revoke), whatever their outcome, injected faults
    /// included.
    pub api_requests: u64,
    /// Requests answered with an injected [`ApiFault`].
    pub api_faults: u64,
    /// API, upload and content requests whose body came chunked
    /// (`Transfer-Encoding: chunked`) instead of with a `Content-Length`.
    /// rclone states every upload's length; a client should too.
    pub chunked_requests: u64,
    /// Files created or given a new version by an upload (Box simple upload
    /// or commit, Dropbox upload or session finish). Seeding with
    /// [`FakeProvider::put_file`] does not count.
    pub uploads: u64,
    /// Downloads started (Box `/dl/…` fetches, Dropbox `files/download`).
    pub downloads: u64,
}

/// A running fake provider. Start one with [`FakeProvider::start`]; drop it
/// to shut it down.
pub struct FakeProvider {
    shared: Shared,
    style: Style,
    addr: SocketAddr,
    /// Client connections open right now (see [`FakeProvider::open_connections`]).
    open_connections: Arc<std::sync::atomic::AtomicUsize>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The fake's whole state, behind one mutex, shared with the handlers.
pub(crate) type Shared = Arc<Mutex<State>>;

/// Locks the state. A handler that panicked while holding the lock (a bug in
/// the fake) must not take every later request down with it, so poisoning is
/// ignored.
pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How long an authorization code stays valid.
const CODE_LIFETIME: Duration = Duration::from_secs(600);

/// Bytes of randomness in every issued code and token (hex-encoded: 40
/// characters).
const SECRET_BYTES: usize = 20;

/// A registered OAuth client (an "app" in the providers' consoles).
pub(crate) struct Client {
    pub secret: String,
    pub redirect_uris: Vec<String>,
}

/// An authorization code handed out by `/oauth2/authorize`.
pub(crate) struct Code {
    pub client_id: String,
    pub redirect_uri: String,
    /// The PKCE S256 challenge, if one was given.
    pub challenge: Option<String>,
    /// Whether the exchange issues a refresh token.
    pub offline: bool,
    pub scope: Option<String>,
    pub expires_at: Instant,
    pub used: bool,
}

/// The account a grant gives access to.
#[derive(Clone)]
pub(crate) struct Account {
    /// Box user id, or Dropbox `account_id` (`dbid:…`).
    pub id: String,
    /// Dropbox's legacy numeric `uid` (unused for Box).
    pub uid: String,
    pub name: String,
    pub email: String,
}

/// One authorization: a client's access to an account. Access and refresh
/// tokens point at their grant; revoking the grant kills them all.
pub(crate) struct Grant {
    pub client_id: String,
    pub account: Account,
    pub scope: String,
    pub revoked: bool,
    /// Successful `refresh_token` grants on this grant.
    pub refreshes: u64,
    /// The access token issued last on this grant.
    pub latest_access: Option<String>,
}

pub(crate) struct AccessToken {
    pub grant: usize,
    pub expires_at: Instant,
}

pub(crate) struct RefreshToken {
    pub grant: usize,
    /// Box only: this token was used once and replaced by a new one.
    pub rotated: bool,
}

/// The outcome of looking up a bearer access token.
pub(crate) enum AccessCheck {
    /// Valid; the index of its grant.
    Valid(usize),
    /// Known, but past its lifetime.
    Expired,
    /// Unknown, or its grant was revoked.
    Invalid,
}

/// Everything the fake knows. Only ever touched with the lock held, and the
/// lock is never held across an `.await`.
pub(crate) struct State {
    pub style: Style,
    pub access_lifetime: u64,
    pub clients: HashMap<String, Client>,
    pub codes: HashMap<String, Code>,
    pub grants: Vec<Grant>,
    pub access_tokens: HashMap<String, AccessToken>,
    pub refresh_tokens: HashMap<String, RefreshToken>,
    pub faults: VecDeque<Fault>,
    pub deny_next: bool,
    pub counters: Counters,
    pub issued: Vec<String>,
    pub last_authorize_query: Option<Vec<(String, String)>>,
    pub last_token_form: Option<Vec<(String, String)>>,
    pub refresh_chain_breaks: u64,
    /// How long the token endpoint takes before it answers, like a real one.
    pub token_delay: Duration,
    /// Token requests being handled right now, and the most ever at once.
    pub token_in_flight: u64,
    pub token_in_flight_max: u64,
    /// The file APIs' store, sessions, settings and queued faults.
    pub files: Files,
    /// The device authorization grant's codes, script and recorded polls.
    pub device: device::DeviceState,
    rng: SystemRandom,
}

impl State {
    fn new(style: Style) -> State {
        State {
            style,
            access_lifetime: match style {
                Style::Box => 3600,
                Style::Dropbox => 14400,
            },
            clients: HashMap::new(),
            codes: HashMap::new(),
            grants: Vec::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            faults: VecDeque::new(),
            deny_next: false,
            counters: Counters::default(),
            issued: Vec::new(),
            last_authorize_query: None,
            last_token_form: None,
            refresh_chain_breaks: 0,
            token_delay: Duration::ZERO,
            token_in_flight: 0,
            token_in_flight_max: 0,
            files: Files::new(style),
            device: device::DeviceState::default(),
            rng: SystemRandom::new(),
        }
    }

    /// A fresh random secret with a recognisable prefix, remembered in
    /// `issued` so tests can look for leaks.
    pub fn new_secret(&mut self, prefix: &str) -> String {
        let mut bytes = [0u8; SECRET_BYTES];
        self.rng
            .fill(&mut bytes)
            .expect("the system random number generator works");
        let mut secret = String::with_capacity(prefix.len() + 2 * SECRET_BYTES);
        secret.push_str(prefix);
        for b in bytes {
            secret.push_str(&format!("{b:02x}"));
        }
        self.issued.push(secret.clone());
        secret
    }

    fn token_prefix(&self) -> &'static str {
        match self.style {
            Style::Box => "box",
            Style::Dropbox => "dbx",
        }
    }

    /// The account every interactive authorization logs in as.
    pub fn default_account(&self) -> Account {
        match self.style {
            Style::Box => Account {
                id: "11446498".into(),
                uid: String::new(),
                name: "Fake Box User".into(),
                email: "fake.user@example.com".into(),
            },
            Style::Dropbox => Account {
                id: "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc".into(),
                uid: "12345678".into(),
                name: "Fake Dropbox User".into(),
                email: "fake.user@example.com".into(),
            },
        }
    }

    /// The scope string granted when the client asked for none.
    pub fn default_scope(&self) -> String {
        match self.style {
            Style::Box => "root_readwrite".into(),
            Style::Dropbox => "account_info.read files.content.read files.content.write \
                               files.metadata.read files.metadata.write"
                .into(),
        }
    }

    pub fn new_grant(&mut self, client_id: &str, account: Account, scope: String) -> usize {
        self.grants.push(Grant {
            client_id: client_id.to_owned(),
            account,
            scope,
            revoked: false,
            refreshes: 0,
            latest_access: None,
        });
        self.grants.len() - 1
    }

    /// Issues an access token for `grant`, valid for `lifetime` seconds.
    pub fn issue_access(&mut self, grant: usize, lifetime: u64) -> String {
        let token = self.new_secret(&format!("{}-at-", self.token_prefix()));
        let expires_at = Instant::now() + Duration::from_secs(lifetime);
        self.access_tokens
            .insert(token.clone(), AccessToken { grant, expires_at });
        self.grants[grant].latest_access = Some(token.clone());
        token
    }

    pub fn issue_refresh(&mut self, grant: usize) -> String {
        let token = self.new_secret(&format!("{}-rt-", self.token_prefix()));
        self.refresh_tokens.insert(
            token.clone(),
            RefreshToken {
                grant,
                rotated: false,
            },
        );
        token
    }

    pub fn check_access(&self, token: &str) -> AccessCheck {
        let Some(at) = self.access_tokens.get(token) else {
            return AccessCheck::Invalid;
        };
        if self.grants[at.grant].revoked {
            AccessCheck::Invalid
        } else if Instant::now() >= at.expires_at {
            AccessCheck::Expired
        } else {
            AccessCheck::Valid(at.grant)
        }
    }
}

/// Query or form parameters, checked for repeats (which OAuth forbids).
/// Parameters with an empty value count as absent, as RFC 6749 §3.1 says.
pub(crate) struct Params<'a>(&'a [(String, String)]);

impl<'a> Params<'a> {
    /// Fails with the name of the first parameter given more than once.
    pub fn new(pairs: &'a [(String, String)]) -> Result<Params<'a>, String> {
        for (i, (name, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(name.clone());
            }
        }
        Ok(Params(pairs))
    }

    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.0
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `application/x-www-form-urlencoded` bytes (a query string or a
/// form body). Never fails: invalid percent-escapes and UTF-8 are replaced.
pub(crate) fn parse_form(bytes: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

impl FakeProvider {
    /// Starts a fake provider of the given style on `127.0.0.1`, on a free
    /// port, and returns once it accepts connections.
    pub fn start(style: Style) -> FakeProvider {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("the fake provider can bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("the listener can be made non-blocking");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let shared: Shared = Arc::new(Mutex::new(State::new(style)));
        lock(&shared).files.base_url = format!("http://{addr}");
        let app = router(style, shared.clone());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-provider-worker")
            .enable_all()
            .build()
            .expect("the fake provider can build a tokio runtime");
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let open_connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let open = open_connections.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fake-provider-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(inner) => counted::CountedListener { inner, open },
                        Err(e) => {
                            eprintln!("fake provider: cannot use its listener: {e}");
                            return;
                        }
                    };
                    // Not a graceful shutdown: that would wait for hanging
                    // requests. Dropping the runtime cancels them.
                    tokio::select! {
                        served = axum::serve(listener, app).into_future() => {
                            if let Err(e) = served {
                                eprintln!("fake provider: server failed: {e}");
                            }
                        }
                        _ = stop => {}
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("the fake provider can start its thread");
        FakeProvider {
            shared,
            style,
            addr,
            open_connections,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }

    /// The style this fake was started with.
    pub fn style(&self) -> Style {
        self.style
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The authorization endpoint: `{base}/oauth2/authorize`.
    pub fn auth_url(&self) -> String {
        format!("{}/oauth2/authorize", self.base_url())
    }

    /// The token endpoint: `{base}/oauth2/token`.
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/token", self.base_url())
    }

    /// The revocation endpoint: Box `{base}/oauth2/revoke`, Dropbox
    /// `{base}/2/auth/token/revoke`.
    pub fn revoke_url(&self) -> String {
        match self.style {
            Style::Box => format!("{}/oauth2/revoke", self.base_url()),
            Style::Dropbox => format!("{}/2/auth/token/revoke", self.base_url()),
        }
    }

    /// The API base: Box `{base}/2.0`, Dropbox `{base}/2`.
    pub fn api_url(&self) -> String {
        match self.style {
            Style::Box => format!("{}/2.0", self.base_url()),
            Style::Dropbox => format!("{}/2", self.base_url()),
        }
    }

    /// The upload (content) base: Box `{base}/api/2.0`, Dropbox
    /// `{base}/content/2`.
    pub fn upload_url(&self) -> String {
        match self.style {
            Style::Box => format!("{}/api/2.0", self.base_url()),
            Style::Dropbox => format!("{}/content/2", self.base_url()),
        }
    }

    /// Registers (or replaces) an OAuth client. Redirect URIs are matched
    /// by exact string equality, so `http://localhost:53682/` and
    /// `http://127.0.0.1:53682/` are different. The secret is added to
    /// [`issued_secrets`](Self::issued_secrets).
    ///
    /// Panics if a redirect URI is not an absolute URL (a test bug).
    pub fn register_client(&self, client_id: &str, client_secret: &str, redirect_uris: &[&str]) {
        for uri in redirect_uris {
            if let Err(e) = url::Url::parse(uri) {
                panic!("register_client: redirect URI {uri:?} is not a URL: {e}");
            }
        }
        let mut st = self.state();
        st.issued.push(client_secret.to_owned());
        st.clients.insert(
            client_id.to_owned(),
            Client {
                secret: client_secret.to_owned(),
                redirect_uris: redirect_uris.iter().map(|u| u.to_string()).collect(),
            },
        );
    }

    /// Sets the lifetime, in seconds, of access tokens issued from now on
    /// (and the `expires_in` reported with them). Defaults: Box 3600,
    /// Dropbox 14400. `0` makes new tokens expired at once.
    pub fn set_access_lifetime(&self, secs: u64) {
        self.state().access_lifetime = secs;
    }

    /// Makes the token endpoint take `delay` before answering each request,
    /// so concurrent callers overlap a refresh in flight.
    pub fn set_token_delay(&self, delay: Duration) {
        self.state().token_delay = delay;
    }

    /// The most token requests the fake has had in flight at once (from
    /// arrival to answer, the token delay included) since it started.
    pub fn max_token_requests_in_flight(&self) -> u64 {
        self.state().token_in_flight_max
    }

    /// Makes every access token issued so far expired, right now, so the
    /// next API call gets the provider's 401 and the client must refresh.
    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        for at in self.state().access_tokens.values_mut() {
            at.expires_at = now;
        }
    }

    /// Queues a fault for the token endpoint. Faults are consumed first in,
    /// first out, one per token request, before anything else is checked.
    pub fn inject_token_fault(&self, fault: Fault) {
        self.state().faults.push_back(fault);
    }

    /// How many queued token faults no request has taken yet.
    pub fn pending_token_faults(&self) -> usize {
        self.state().faults.len()
    }

    /// Drops every queued token fault; returns how many there were.
    pub fn clear_token_faults(&self) -> usize {
        let mut st = self.state();
        let n = st.faults.len();
        st.faults.clear();
        n
    }

    /// The next `/oauth2/authorize` request with a valid client and redirect
    /// URI redirects back with `error=access_denied`, as when the user clicks
    /// "Deny".
    pub fn deny_next_authorization(&self) {
        self.state().deny_next = true;
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.state().counters.clone()
    }

    /// Every code, access token and refresh token ever issued, plus every
    /// registered client secret: strings that must never show up in logs or
    /// output where they don't belong.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.state().issued.clone()
    }

    /// The query parameters of the last `/oauth2/authorize` request, in
    /// order, decoded.
    pub fn last_authorize_query(&self) -> Option<Vec<(String, String)>> {
        self.state().last_authorize_query.clone()
    }

    /// The form fields of the last token request, in order, decoded
    /// (recorded even when a fault was injected into that request). A
    /// client secret sent with HTTP Basic is not among them.
    pub fn last_token_form(&self) -> Option<Vec<(String, String)>> {
        self.state().last_token_form.clone()
    }

    /// Creates a grant for `client_id` directly, as if the user had
    /// authorized it, and returns `(access_token, refresh_token)`. The access
    /// token expires after `expires_in` seconds. For vault tests that start
    /// from an imported token.
    ///
    /// Panics if the client is not registered (a test bug).
    pub fn seed_tokens(&self, client_id: &str, expires_in: u64) -> (String, String) {
        let mut st = self.state();
        assert!(
            st.clients.contains_key(client_id),
            "seed_tokens: client {client_id:?} is not registered"
        );
        let account = st.default_account();
        let scope = st.default_scope();
        let grant = st.new_grant(client_id, account, scope);
        let access = st.issue_access(grant, expires_in);
        let refresh = st.issue_refresh(grant);
        (access, refresh)
    }

    /// Box: how many refresh attempts presented a refresh token that was
    /// valid once but had already been rotated away (a client that lost the
    /// new token, or two clients racing on one token). Always 0 for Dropbox.
    pub fn refresh_chain_breaks(&self) -> u64 {
        self.state().refresh_chain_breaks
    }

    /// How many successful refreshes the grant of `refresh_token` (any
    /// refresh token it ever had, rotated or not) has seen; `None` for an
    /// unknown token. For Box this is how many times its chain rotated.
    pub fn grant_refreshes(&self, refresh_token: &str) -> Option<u64> {
        let st = self.state();
        let grant = st.refresh_tokens.get(refresh_token)?.grant;
        Some(st.grants[grant].refreshes)
    }

    /// The access token issued last on the grant of `refresh_token` (see
    /// [`grant_refreshes`](Self::grant_refreshes)).
    pub fn latest_access_token(&self, refresh_token: &str) -> Option<String> {
        let st = self.state();
        let grant = st.refresh_tokens.get(refresh_token)?.grant;
        st.grants[grant].latest_access.clone()
    }

    /// How many client connections the fake has open right now. Once a
    /// client process is dead and this is 0, every request it sent has been
    /// answered or abandoned: nothing of it can still change the fake.
    pub fn open_connections(&self) -> usize {
        self.open_connections
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    // ------------------------------------------------------------ file APIs

    /// Queues `fault` for the next API, upload, content or download request
    /// (anything but `/oauth2/…`) whose URL path contains `path_contains`
    /// (`""` matches every request). Queued faults are taken first in, first
    /// out: a request gets the oldest fault that matches it, one fault per
    /// request, before authorization or anything else is checked. A request
    /// with a body has it read and discarded first, so the client sees the
    /// answer.
    pub fn inject_api_fault(&self, path_contains: &str, fault: ApiFault) {
        self.state()
            .files
            .faults
            .push_back((path_contains.to_owned(), fault));
    }

    /// How many injected API faults are still waiting for a request.
    pub fn pending_api_faults(&self) -> usize {
        self.state().files.faults.len()
    }

    /// Caps the number of entries in one page of a listing (Box
    /// `folders/{id}/items`, Dropbox `list_folder` and `continue`), whatever
    /// `limit` the client asks for (the response still echoes the client's
    /// `limit`). Default 1000; `0` counts as 1. Tiny values make clients
    /// paginate.
    pub fn set_page_size(&self, n: usize) {
        self.state().files.page_size = n.max(1);
    }

    /// Box: the `part_size` of upload sessions created from now on. Default
    /// 8 MiB (8388608); `0` counts as 1.
    pub fn set_box_part_size(&self, bytes: u64) {
        self.state().files.boxed.part_size = bytes.max(1);
    }

    /// Box: how many commits of each upload session created from now on are
    /// answered 202 with `Retry-After: 1` ("still processing") before the
    /// real commit happens. Default 1. A commit with a bad parts list is
    /// refused (400 `parts_mismatch`) without using up a 202.
    pub fn set_box_commit_202s(&self, n: u32) {
        self.state().files.boxed.commit_202s = n;
    }

    /// Box: while on, every upload (simple or committed, new file or new
    /// version) makes the next `GET /2.0/files/{id}/content` of that file
    /// answer 202 with `Retry-After: 1` instead of the 302, as Box does
    /// while it processes a fresh upload. Default off.
    pub fn box_download_202_once(&self, on: bool) {
        self.state().files.boxed.download_202_once = on;
    }

    /// The SHA-256 (hex) of the file at `path` (from the account root, like
    /// `"/a/b.txt"`, case-insensitive), if there is a file there.
    pub fn file_sha256(&self, path: &str) -> Option<String> {
        self.state()
            .files
            .tree
            .file_at(path)
            .map(|f| f.blob.sha256_hex())
    }

    /// The size in bytes of the file at `path` (see
    /// [`file_sha256`](Self::file_sha256)), if there is a file there.
    pub fn file_size(&self, path: &str) -> Option<u64> {
        self.state().files.tree.file_at(path).map(|f| f.blob.size)
    }

    /// Every file and folder in the account (not the root), as
    /// `"/a/b.txt"` in display case, folders with a trailing `/`
    /// (`"/a/"`), sorted.
    pub fn paths(&self) -> Vec<String> {
        self.state().files.tree.all_paths()
    }

    /// How many versions the file at `path` has: 1 after its first upload,
    /// +1 per new content (Box new version, Dropbox overwrite with different
    /// bytes). `None` if there is no file there. Counts for both styles.
    pub fn box_versions(&self, path: &str) -> Option<u32> {
        self.state().files.tree.file_at(path).map(|f| f.versions)
    }

    /// Upload sessions still open: Box sessions neither committed nor
    /// aborted, plus Dropbox sessions not finished.
    pub fn open_upload_sessions(&self) -> usize {
        self.state().files.open_sessions()
    }

    /// Seeds a file at `path` (like `"/a/b.txt"`) with `bytes`, creating
    /// missing parent folders; an existing file gets a new version. Not
    /// counted as an upload. Panics if a folder is in the way (a test bug).
    pub fn put_file(&self, path: &str, bytes: &[u8]) {
        self.state().files.put_file(path, bytes);
    }

    /// Shorthand for `counters().api_requests`.
    pub fn api_requests(&self) -> u64 {
        self.state().counters.api_requests
    }

    /// How many files are in the fake's storage directory right now: stored
    /// files, uploaded session parts, and request bodies being received.
    /// Lets tests check that an interrupted upload left nothing behind.
    pub fn files_on_disk(&self) -> usize {
        self.state().files.files_on_disk()
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The routes of a fake of the given style.
fn router(style: Style, shared: Shared) -> Router {
    let common = Router::new()
        .route("/oauth2/authorize", get(oauth::authorize))
        .route("/oauth2/token", post(oauth::token))
        .route("/oauth2/device/code", post(device::authorize))
        .route("/oauth2/device", get(device::page));
    let styled = match style {
        Style::Box => common
            .route("/oauth2/revoke", post(oauth::revoke_box))
            .route("/2.0/users/me", get(api::box_users_me))
            .merge(box_files::routes()),
        Style::Dropbox => common
            .route("/2/auth/token/revoke", post(oauth::revoke_dropbox))
            .route(
                "/2/users/get_current_account",
                post(api::dropbox_get_current_account),
            )
            .merge(dropbox_files::routes()),
    };
    styled
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            gate::gate,
        ))
        .with_state(shared)
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not Found").into_response()
}
