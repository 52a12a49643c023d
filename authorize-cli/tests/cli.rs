//! Smoke tests of the `oauth-authorize` binary's command line. Their being
//! here also makes `cargo test` build the binary before the end-to-end tests
//! in the `tests` crate run it.

use std::process::{Command, Output};

fn oauth_authorize(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oauth-authorize"))
        .args(args)
        .env_remove("OAUTH_CLIENT_ID")
        .env_remove("OAUTH_CLIENT_SECRET")
        .output()
        .expect("run oauth-authorize")
}

#[test]
fn help_lists_the_options_and_warns_about_secrets_on_argv() {
    let out = oauth_authorize(&["--help"]);
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8(out.stdout).expect("UTF-8 help");
    for option in [
        "--auth-url",
        "--token-url",
        "--scope",
        "--listen",
        "--redirect-url",
        "--no-browser",
        "--timeout",
        "--output",
        "--rclone",
        "--proxy",
        "--client-secret-file",
        "--client-credentials",
        "OAUTH_CLIENT_ID",
    ] {
        assert!(help.contains(option), "--help mentions {option}:\n{help}");
    }
    assert!(
        help.contains("process list"),
        "--help warns that a secret on the command line is visible:\n{help}"
    );
}

#[test]
fn version_prints_name_and_version() {
    let out = oauth_authorize(&["--version"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("UTF-8 version");
    assert_eq!(
        text.trim(),
        format!("oauth-authorize {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_non_zero_on_stderr() {
    let out = oauth_authorize(&["box", "--timeout", "soon"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--timeout"));

    let out = oauth_authorize(&["box"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("OAUTH_CLIENT_ID"),
        "a missing client id says where to put it"
    );
}
