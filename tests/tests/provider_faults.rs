//! A broken provider at the token endpoint: garbage JSON, HTML pages, a
//! body cut off half-way, a 200 without the token, a 10 MB answer. Each
//! must be a clear error (in `status`'s `last_error` and the caller's
//! message), lose no token (the old access token is still served, the
//! refresh token the vault holds is the one the provider still honours),
//! and leave the daemon serving; once the provider recovers, the next
//! refresh succeeds without breaking the rotation chain.

use tests::fake::{FakeProvider, Fault, Style};
use tests::transfer_harness::{eventually, start};
use tests::vault_harness::{blob, http, CLIENT_ID};

/// Copies of a fault queued per case: more than the daemon's retries
/// (100 ms to 1 s apart in tests) can use up while the test looks.
const FAULT_SUPPLY: usize = 100;

/// The refresh token the last token request presented.
fn presented(fake: &FakeProvider) -> String {
    fake.last_token_form()
        .expect("a token request")
        .into_iter()
        .find(|(k, _)| k == "refresh_token")
        .map(|(_, v)| v)
        .expect("a refresh_token field")
}

#[test]
fn broken_token_answers_are_clear_errors_and_lose_no_token() {
    let (fake, vault) = start(Style::Box, &[]);
    let (at, rt) = fake.seed_tokens(CLIENT_ID, 3600);
    let out = vault.import("box", &fake, &blob(&at, Some(&rt), 3600), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases = [
        (Fault::GarbageJson, "not JSON"),
        (Fault::HtmlPage { status: 200 }, "HTML page"),
        (Fault::HtmlPage { status: 502 }, "HTTP 502"),
        (Fault::TruncatedBody, "broke off"),
        (Fault::MissingFields, "without an access_token"),
        (
            Fault::Oversized {
                bytes: 10 * 1000 * 1000,
            },
            "larger than",
        ),
    ];
    let mut current = at;
    for (fault, expect) in cases {
        let what = format!("{fault:?}");
        for _ in 0..FAULT_SUPPLY {
            fake.inject_token_fault(fault.clone());
        }
        // A forced refresh meets the fault, and says what went wrong.
        let out = vault.cli(&["refresh", "box"]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{what}: the refresh succeeded");
        assert!(err.contains(expect), "{what}: unclear error: {err}");
        eprintln!("{what}: {}", err.trim());
        let spent = presented(&fake);
        // `status` shows it too.
        let status = vault.status("box");
        let last_error = status["last_error"].as_str().unwrap_or_default();
        assert!(last_error.contains(expect), "{what}: last_error: {status}");
        // The current access token is still served, the daemon is up.
        assert_eq!(vault.token("box"), current, "{what}");
        let (code, _) = http(&vault.socket, "GET", "/v1/health", None).expect("health");
        assert_eq!(code, 200, "{what}");
        // Every failed attempt presented the same refresh token: nothing
        // from a broken answer replaced it.
        assert_eq!(presented(&fake), spent, "{what}");
        // The provider recovers: the scheduled retry succeeds with that
        // same refresh token, and the chain goes on.
        fake.clear_token_faults();
        eventually(20, &format!("{what}: the retry to succeed"), || {
            let s = vault.status("box");
            s["state"] == "ok" && s["last_error"].is_null()
        });
        assert_eq!(
            presented(&fake),
            spent,
            "{what}: the retry spent another token"
        );
        let fresh = vault.token("box");
        assert_ne!(fresh, current, "{what}: no new token after the retry");
        current = fresh;
        assert_eq!(fake.refresh_chain_breaks(), 0, "{what}: the chain broke");
        assert_eq!(
            fake.grant_refreshes(&rt),
            vault.status("box")["refreshes"].as_u64(),
            "{what}: the provider and the vault disagree on the refreshes"
        );
    }
    // A final refresh on demand works, and nothing the broken answers
    // quoted (their canary tokens) reached a log or a message.
    let out = vault.cli(&["refresh", "box"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fake.refresh_chain_breaks(), 0);
    vault.assert_no_secrets(&fake);
}
