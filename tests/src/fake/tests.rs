//! The fake's own tests: it must behave like the real providers, or the
//! end-to-end tests prove nothing.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::blocking::{Client as Http, Response};
use reqwest::header::{LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::redirect::Policy;
use serde_json::Value;

use super::*;

const ID: &str = "client-id-1";
const SECRET: &str = "client-secret-1";
const REDIRECT: &str = "http://127.0.0.1:53682/";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk0123";

fn http() -> Http {
    Http::builder()
        .redirect(Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

fn fake(style: Style) -> FakeProvider {
    let fake = FakeProvider::start(style);
    fake.register_client(ID, SECRET, &[REDIRECT]);
    fake
}

fn get_authorize(fake: &FakeProvider, params: &[(&str, &str)]) -> Response {
    http()
        .get(fake.auth_url())
        .query(params)
        .send()
        .expect("authorize request")
}

/// The query of a 302's Location, as pairs.
fn location_query(resp: &Response) -> Vec<(String, String)> {
    assert_eq!(resp.status(), 302, "expected a redirect");
    let location = resp.headers()[LOCATION].to_str().expect("ascii Location");
    assert!(
        location.starts_with(REDIRECT),
        "redirects to the registered URI: {location}"
    );
    url::Url::parse(location)
        .expect("Location is a URL")
        .query_pairs()
        .into_owned()
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Runs the consent step and returns the code.
fn box_code(fake: &FakeProvider) -> String {
    let resp = get_authorize(
        fake,
        &[
            ("response_type", "code"),
            ("client_id", ID),
            ("redirect_uri", REDIRECT),
            ("state", "st4te"),
        ],
    );
    let q = location_query(&resp);
    assert_eq!(param(&q, "state"), Some("st4te"));
    param(&q, "code").expect("a code").to_owned()
}

fn dropbox_code(fake: &FakeProvider, offline: bool) -> String {
    let challenge = challenge(VERIFIER);
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", ID),
        ("redirect_uri", REDIRECT),
        ("state", "a b&c=d/é"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    if offline {
        params.push(("token_access_type", "offline"));
    }
    let q = location_query(&get_authorize(fake, &params));
    assert_eq!(
        param(&q, "state"),
        Some("a b&c=d/é"),
        "state echoed verbatim"
    );
    param(&q, "code").expect("a code").to_owned()
}

fn post_token(fake: &FakeProvider, form: &[(&str, &str)]) -> Response {
    http()
        .post(fake.token_url())
        .form(form)
        .send()
        .expect("token request")
}

fn box_exchange(fake: &FakeProvider, code: &str) -> Response {
    post_token(
        fake,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", ID),
            ("client_secret", SECRET),
        ],
    )
}

fn box_refresh(fake: &FakeProvider, refresh: &str) -> Response {
    post_token(
        fake,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", ID),
            ("client_secret", SECRET),
        ],
    )
}

fn dropbox_refresh(fake: &FakeProvider, refresh: &str) -> Response {
    http()
        .post(fake.token_url())
        .basic_auth(ID, Some(SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .expect("token request")
}

fn json(resp: Response) -> Value {
    resp.json().expect("a JSON body")
}

/// Asserts a 400 OAuth error with the given code, and returns its
/// description.
fn expect_oauth_error(resp: Response, status: u16, error: &str) -> String {
    assert_eq!(resp.status(), status);
    let body = json(resp);
    assert_eq!(body["error"], error, "{body}");
    body["error_description"]
        .as_str()
        .expect("an error_description")
        .to_owned()
}

fn keys(body: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = body
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn box_whoami(fake: &FakeProvider, access: &str) -> Response {
    http()
        .get(format!("{}/users/me", fake.api_url()))
        .bearer_auth(access)
        .send()
        .expect("who-am-I request")
}

fn dropbox_whoami(fake: &FakeProvider, access: &str) -> Response {
    http()
        .post(format!("{}/users/get_current_account", fake.api_url()))
        .bearer_auth(access)
        .header("content-type", "application/json")
        .body("null")
        .send()
        .expect("who-am-I request")
}

#[test]
fn box_code_flow_rotates_refresh_tokens() {
    let fake = fake(Style::Box);
    let code = box_code(&fake);
    let resp = box_exchange(&fake, &code);
    assert_eq!(resp.status(), 200);
    let body = json(resp);
    assert_eq!(
        keys(&body),
        [
            "access_token",
            "expires_in",
            "refresh_token",
            "restricted_to",
            "token_type"
        ]
    );
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["restricted_to"], serde_json::json!([]));
    let access = body["access_token"].as_str().unwrap().to_owned();
    let first_refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert!(access.starts_with("box-at-") && access.len() >= "box-at-".len() + 32);
    assert!(first_refresh.starts_with("box-rt-"));

    let me = box_whoami(&fake, &access);
    assert_eq!(me.status(), 200);
    let me = json(me);
    assert_eq!(me["type"], "user");
    for field in [
        "id",
        "name",
        "login",
        "space_amount",
        "space_used",
        "max_upload_size",
    ] {
        assert!(!me[field].is_null(), "users/me has {field}");
    }

    let resp = box_refresh(&fake, &first_refresh);
    assert_eq!(resp.status(), 200);
    let body = json(resp);
    let second_refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first_refresh, "Box rotates refresh tokens");
    assert_eq!(body["restricted_to"], serde_json::json!([]));

    // The old one is dead, and using it is a chain break.
    let description = expect_oauth_error(box_refresh(&fake, &first_refresh), 400, "invalid_grant");
    assert!(description.contains("expired"), "{description}");
    assert_eq!(fake.refresh_chain_breaks(), 1);

    // The new one still works, once.
    assert_eq!(box_refresh(&fake, &second_refresh).status(), 200);
    expect_oauth_error(box_refresh(&fake, &second_refresh), 400, "invalid_grant");
    assert_eq!(fake.refresh_chain_breaks(), 2);

    // An unknown token is not a chain break.
    expect_oauth_error(box_refresh(&fake, "box-rt-nonsense"), 400, "invalid_grant");
    assert_eq!(fake.refresh_chain_breaks(), 2);

    let c = fake.counters();
    assert_eq!(c.authorize, 1);
    assert_eq!(c.code_exchanges, 1);
    assert_eq!(c.refreshes, 2);
    assert_eq!(c.token_requests, 6);
    assert_eq!(c.token_errors, 3);
    assert_eq!(c.whoami, 1);
    assert_eq!(c.pkce_verified, 0);

    let form = fake.last_token_form().expect("a token form was recorded");
    assert_eq!(param(&form, "grant_type"), Some("refresh_token"));
    let query = fake.last_authorize_query().expect("an authorize query");
    assert_eq!(param(&query, "redirect_uri"), Some(REDIRECT));

    let secrets = fake.issued_secrets();
    for s in [&code, &access, &first_refresh, &second_refresh] {
        assert!(secrets.contains(s), "{s} is among the issued secrets");
    }
    assert!(secrets.iter().any(|s| s == SECRET));
}

#[test]
fn box_ignores_pkce_and_basic_auth() {
    let fake = fake(Style::Box);
    let challenge = challenge(VERIFIER);
    let resp = get_authorize(
        &fake,
        &[
            ("response_type", "code"),
            ("client_id", ID),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let q = location_query(&resp);
    assert_eq!(param(&q, "state"), None, "no state given, none echoed");
    let code = param(&q, "code").unwrap().to_owned();

    // Box does not read HTTP Basic: the secret must be in the body.
    let resp = http()
        .post(fake.token_url())
        .basic_auth(ID, Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .unwrap();
    expect_oauth_error(resp, 401, "invalid_client");

    // And needs no verifier.
    assert_eq!(box_exchange(&fake, &code).status(), 200);
    assert_eq!(fake.counters().pkce_verified, 0);
}

#[test]
fn wrong_client_secret_is_invalid_client() {
    let fake = fake(Style::Box);
    let resp = post_token(
        &fake,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", ID),
            ("client_secret", "wrong"),
        ],
    );
    expect_oauth_error(resp, 400, "invalid_client");

    let fake = self::fake(Style::Dropbox);
    let resp = http()
        .post(fake.token_url())
        .basic_auth(ID, Some("wrong"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .unwrap();
    assert!(resp.headers().contains_key(WWW_AUTHENTICATE));
    expect_oauth_error(resp, 401, "invalid_client");
}

#[test]
fn dropbox_pkce_wrong_verifier_is_refused() {
    let fake = fake(Style::Dropbox);
    let code = dropbox_code(&fake, true);
    let exchange = |verifier: Option<&str>| {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", ID),
            ("client_secret", SECRET),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v));
        }
        post_token(&fake, &form)
    };
    let wrong = "X".repeat(50);
    expect_oauth_error(exchange(Some(&wrong)), 400, "invalid_grant");
    expect_oauth_error(exchange(None), 400, "invalid_grant");
    assert_eq!(fake.counters().pkce_verified, 0);

    let resp = exchange(Some(VERIFIER));
    assert_eq!(resp.status(), 200);
    let body = json(resp);
    assert_eq!(
        keys(&body),
        [
            "access_token",
            "account_id",
            "expires_in",
            "refresh_token",
            "scope",
            "token_type",
            "uid"
        ]
    );
    assert_eq!(body["expires_in"], 14400);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(fake.counters().pkce_verified, 1);
    assert_eq!(
        param(&fake.last_token_form().unwrap(), "code_verifier"),
        Some(VERIFIER)
    );
}

#[test]
fn dropbox_authorize_requires_pkce() {
    let fake = fake(Style::Dropbox);
    for extra in [
        vec![],
        vec![("code_challenge", challenge(VERIFIER))],
        vec![
            ("code_challenge", challenge(VERIFIER)),
            ("code_challenge_method", "plain".to_owned()),
        ],
    ] {
        let mut params = vec![
            ("response_type", "code".to_owned()),
            ("client_id", ID.to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("state", "s".to_owned()),
        ];
        params.extend(extra);
        let resp = http().get(fake.auth_url()).query(&params).send().unwrap();
        assert_eq!(resp.status(), 400);
        assert!(!resp.headers().contains_key(LOCATION));
    }
}

#[test]
fn dropbox_refresh_does_not_rotate() {
    let fake = fake(Style::Dropbox);
    let code = dropbox_code(&fake, true);
    let resp = http()
        .post(fake.token_url())
        .basic_auth(ID, Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let refresh = json(resp)["refresh_token"].as_str().unwrap().to_owned();
    assert!(refresh.starts_with("dbx-rt-"));

    for _ in 0..2 {
        let resp = dropbox_refresh(&fake, &refresh);
        assert_eq!(resp.status(), 200);
        let body = json(resp);
        assert_eq!(
            keys(&body),
            [
                "access_token",
                "account_id",
                "expires_in",
                "scope",
                "token_type",
                "uid"
            ]
        );
        let access = body["access_token"].as_str().unwrap();
        assert_eq!(dropbox_whoami(&fake, access).status(), 200);
    }
    assert_eq!(fake.counters().refreshes, 2);
    assert_eq!(fake.refresh_chain_breaks(), 0);
}

#[test]
fn dropbox_online_access_gets_no_refresh_token() {
    let fake = fake(Style::Dropbox);
    let code = dropbox_code(&fake, false);
    let resp = post_token(
        &fake,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", ID),
            ("client_secret", SECRET),
        ],
    );
    assert_eq!(resp.status(), 200);
    let body = json(resp);
    assert!(body.get("refresh_token").is_none(), "{body}");
}

#[test]
fn redirect_uri_must_match_exactly() {
    let fake = fake(Style::Box);
    for wrong in [
        "http://localhost:53682/",
        "http://127.0.0.1:53682",
        "http://127.0.0.1:9/",
    ] {
        let resp = get_authorize(
            &fake,
            &[
                ("response_type", "code"),
                ("client_id", ID),
                ("redirect_uri", wrong),
                ("state", "s"),
            ],
        );
        assert_eq!(resp.status(), 400, "{wrong} is refused");
        assert!(!resp.headers().contains_key(LOCATION));
    }
    // Unknown client: no redirect either.
    let resp = get_authorize(
        &fake,
        &[
            ("response_type", "code"),
            ("client_id", "nobody"),
            ("redirect_uri", REDIRECT),
        ],
    );
    assert_eq!(resp.status(), 400);

    // The token request must repeat the authorize redirect_uri.
    fake.register_client(ID, SECRET, &[REDIRECT, "http://localhost:53682/"]);
    let code = box_code(&fake);
    let resp = post_token(
        &fake,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://localhost:53682/"),
            ("client_id", ID),
            ("client_secret", SECRET),
        ],
    );
    let description = expect_oauth_error(resp, 400, "invalid_grant");
    assert!(description.contains("redirect_uri"), "{description}");
    assert_eq!(fake.counters().authorize, 5);
}

#[test]
fn codes_are_single_use() {
    let fake = fake(Style::Box);
    let code = box_code(&fake);
    assert_eq!(box_exchange(&fake, &code).status(), 200);
    expect_oauth_error(box_exchange(&fake, &code), 400, "invalid_grant");
    expect_oauth_error(box_exchange(&fake, "code-forged"), 400, "invalid_grant");
    assert_eq!(fake.counters().code_exchanges, 1);
}

#[test]
fn denied_authorization_redirects_with_access_denied() {
    let fake = fake(Style::Box);
    fake.deny_next_authorization();
    let resp = get_authorize(
        &fake,
        &[
            ("response_type", "code"),
            ("client_id", ID),
            ("redirect_uri", REDIRECT),
            ("state", "xyz"),
        ],
    );
    let q = location_query(&resp);
    assert_eq!(param(&q, "error"), Some("access_denied"));
    assert_eq!(
        param(&q, "error_description"),
        Some("The user denied access")
    );
    assert_eq!(param(&q, "state"), Some("xyz"));
    assert_eq!(param(&q, "code"), None);
    // Only the next one.
    box_code(&fake);
}

#[test]
fn injected_faults_come_in_order_then_normal_service_resumes() {
    let fake = fake(Style::Box);
    let (_, refresh) = fake.seed_tokens(ID, 3600);
    fake.inject_token_fault(Fault::ServerError);
    fake.inject_token_fault(Fault::TooManyRequests {
        retry_after_secs: 7,
    });
    fake.inject_token_fault(Fault::InvalidGrant);

    let resp = box_refresh(&fake, &refresh);
    assert_eq!(resp.status(), 500);

    let resp = box_refresh(&fake, &refresh);
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()[RETRY_AFTER], "7");
    assert_eq!(json(resp)["code"], "rate_limit_exceeded");

    expect_oauth_error(box_refresh(&fake, &refresh), 400, "invalid_grant");

    // The faults did not touch the refresh token.
    assert_eq!(box_refresh(&fake, &refresh).status(), 200);
    let c = fake.counters();
    assert_eq!((c.token_requests, c.token_errors, c.refreshes), (4, 3, 1));
    assert_eq!(fake.refresh_chain_breaks(), 0);
}

#[test]
fn dropbox_rate_limit_body() {
    let fake = fake(Style::Dropbox);
    fake.inject_token_fault(Fault::TooManyRequests {
        retry_after_secs: 3,
    });
    let resp = dropbox_refresh(&fake, "whatever");
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()[RETRY_AFTER], "3");
    let body = json(resp);
    assert_eq!(body["error"]["retry_after"], 3);
    assert_eq!(body["error"]["reason"][".tag"], "too_many_requests");
}

#[test]
fn hang_times_out_without_blocking_other_requests_or_shutdown() {
    let fake = fake(Style::Box);
    let (access, refresh) = fake.seed_tokens(ID, 3600);
    fake.inject_token_fault(Fault::Hang);
    let impatient = Http::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = impatient
        .post(fake.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", ID),
            ("client_secret", SECRET),
        ])
        .send()
        .expect_err("a hanging request times out");
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Meanwhile, other requests are served, while the hung one is still
    // open server-side.
    assert_eq!(box_whoami(&fake, &access).status(), 200);
    assert_eq!(box_refresh(&fake, &refresh).status(), 200);
    let c = fake.counters();
    assert_eq!((c.token_requests, c.token_errors), (2, 0));

    // And a hanging request does not hold up shutdown.
    fake.inject_token_fault(Fault::Hang);
    let url = fake.token_url();
    let hanger = std::thread::spawn(move || {
        let _ = Http::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
            .post(url)
            .form(&[("grant_type", "refresh_token")])
            .send();
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.counters().token_requests < 3 {
        assert!(Instant::now() < deadline, "the hanging request arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    drop(fake);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown is quick"
    );
    hanger.join().unwrap();
}

#[test]
fn box_client_credentials() {
    let fake = fake(Style::Box);
    let resp = post_token(
        &fake,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", ID),
            ("client_secret", SECRET),
            ("box_subject_type", "user"),
            ("box_subject_id", "777"),
        ],
    );
    assert_eq!(resp.status(), 200);
    let body = json(resp);
    assert_eq!(
        keys(&body),
        ["access_token", "expires_in", "restricted_to", "token_type"]
    );
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(json(box_whoami(&fake, access))["id"], "777");

    let resp = post_token(
        &fake,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", ID),
            ("client_secret", SECRET),
        ],
    );
    expect_oauth_error(resp, 400, "invalid_request");
    let resp = post_token(
        &fake,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", ID),
            ("client_secret", "nope"),
            ("box_subject_type", "enterprise"),
            ("box_subject_id", "1"),
        ],
    );
    expect_oauth_error(resp, 400, "invalid_client");
    assert_eq!(fake.counters().client_credentials, 1);

    // Dropbox has no such grant.
    let fake = self::fake(Style::Dropbox);
    let resp = post_token(
        &fake,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", ID),
            ("client_secret", SECRET),
        ],
    );
    expect_oauth_error(resp, 400, "unsupported_grant_type");
}

/// Polls `check` until it returns true, for at most 10 seconds.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn box_whoami_refuses_an_expired_token() {
    let fake = fake(Style::Box);
    fake.set_access_lifetime(1);
    let code = box_code(&fake);
    let body = json(box_exchange(&fake, &code));
    assert_eq!(body["expires_in"], 1);
    let access = body["access_token"].as_str().unwrap().to_owned();
    eventually("the access token expires", || {
        box_whoami(&fake, &access).status() == 401
    });
    let resp = box_whoami(&fake, &access);
    let challenge = resp.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_eq!(resp.text().unwrap(), "");

    let resp = http()
        .get(format!("{}/users/me", fake.api_url()))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401, "no token at all");
}

#[test]
fn dropbox_whoami_refuses_an_expired_token() {
    let fake = fake(Style::Dropbox);
    let (access, _) = fake.seed_tokens(ID, 3600);
    let resp = dropbox_whoami(&fake, &access);
    assert_eq!(resp.status(), 200);
    let me = json(resp);
    assert_eq!(me["account_type"][".tag"], "basic");
    assert!(me["name"]["display_name"].is_string());
    for field in ["account_id", "email", "root_info"] {
        assert!(!me[field].is_null(), "get_current_account has {field}");
    }

    fake.expire_access_tokens();
    let resp = dropbox_whoami(&fake, &access);
    assert_eq!(resp.status(), 401);
    assert_eq!(json(resp)["error"][".tag"], "expired_access_token");

    let resp = dropbox_whoami(&fake, "dbx-at-unknown");
    assert_eq!(resp.status(), 401);
    assert_eq!(json(resp)["error_summary"], "invalid_access_token/..");

    // Not an RPC call without a null body.
    let resp = http()
        .post(format!("{}/users/get_current_account", fake.api_url()))
        .bearer_auth(&access)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(fake.counters().whoami, 4);
}

#[test]
fn box_revoke_kills_the_grant() {
    let fake = fake(Style::Box);
    let (access, refresh) = fake.seed_tokens(ID, 3600);
    let revoke = |token: &str, secret: &str| {
        http()
            .post(fake.revoke_url())
            .form(&[
                ("client_id", ID),
                ("client_secret", secret),
                ("token", token),
            ])
            .send()
            .unwrap()
    };
    expect_oauth_error(revoke(&refresh, "wrong"), 400, "invalid_client");
    assert_eq!(box_refresh(&fake, &refresh).status(), 200, "still alive");
    let (access2, refresh2) = fake.seed_tokens(ID, 3600);
    assert_eq!(revoke(&refresh2, SECRET).status(), 200);
    expect_oauth_error(box_refresh(&fake, &refresh2), 400, "invalid_grant");
    assert_eq!(box_whoami(&fake, &access2).status(), 401);
    assert_eq!(
        box_whoami(&fake, &access).status(),
        200,
        "other grants live"
    );
    assert_eq!(revoke(&access, SECRET).status(), 200);
    assert_eq!(box_whoami(&fake, &access).status(), 401);
    assert_eq!(revoke("unknown", SECRET).status(), 200);
    assert_eq!(fake.counters().revokes, 3);
    assert_eq!(fake.refresh_chain_breaks(), 0);
}

#[test]
fn dropbox_revoke_kills_the_grant() {
    let fake = fake(Style::Dropbox);
    let (access, refresh) = fake.seed_tokens(ID, 3600);
    let revoke = |token: &str| {
        http()
            .post(fake.revoke_url())
            .bearer_auth(token)
            .send()
            .unwrap()
    };
    let resp = revoke(&access);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "null");
    assert_eq!(dropbox_whoami(&fake, &access).status(), 401);
    expect_oauth_error(dropbox_refresh(&fake, &refresh), 400, "invalid_grant");
    assert_eq!(revoke(&access).status(), 401);
    assert_eq!(fake.counters().revokes, 1);
}

#[test]
fn malformed_requests_get_400_not_a_panic() {
    let fake = fake(Style::Dropbox);
    let h = http();
    let resp = h.get(fake.auth_url()).send().unwrap();
    assert_eq!(resp.status(), 400);
    let resp = h
        .get(format!(
            "{}?client_id={ID}&client_id=x&redirect_uri=%ZZ%FF",
            fake.auth_url()
        ))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);

    let resp = h
        .post(fake.token_url())
        .body("\u{0}\u{ff}garbage")
        .send()
        .unwrap();
    expect_oauth_error(resp, 400, "invalid_request");
    let resp = h
        .post(fake.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=refresh_token&grant_type=authorization_code")
        .send()
        .unwrap();
    expect_oauth_error(resp, 400, "invalid_request");
    let resp = post_token(&fake, &[("client_id", ID), ("client_secret", SECRET)]);
    expect_oauth_error(resp, 400, "invalid_request");
    let resp = h
        .post(fake.token_url())
        .header("authorization", "Basic !!!not-base64")
        .form(&[("grant_type", "refresh_token")])
        .send()
        .unwrap();
    expect_oauth_error(resp, 401, "invalid_client");
    let resp = h
        .post(fake.revoke_url())
        .header("authorization", "Bearer")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = h
        .get(format!("{}/nowhere", fake.base_url()))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404);
    // Still serving.
    dropbox_code(&fake, true);
}

#[test]
fn urls_have_the_documented_shapes() {
    let b = FakeProvider::start(Style::Box);
    let base = b.base_url();
    assert!(base.starts_with("http://127.0.0.1:") && !base.ends_with('/'));
    assert_eq!(b.auth_url(), format!("{base}/oauth2/authorize"));
    assert_eq!(b.token_url(), format!("{base}/oauth2/token"));
    assert_eq!(b.revoke_url(), format!("{base}/oauth2/revoke"));
    assert_eq!(b.api_url(), format!("{base}/2.0"));
    assert_eq!(b.upload_url(), format!("{base}/api/2.0"));
    let d = FakeProvider::start(Style::Dropbox);
    let base = d.base_url();
    assert_eq!(d.revoke_url(), format!("{base}/2/auth/token/revoke"));
    assert_eq!(d.api_url(), format!("{base}/2"));
    assert_eq!(d.upload_url(), format!("{base}/content/2"));
    assert_ne!(b.base_url(), d.base_url());
}
