//! Smoke tests of the `token-vault` binary's command line. (Their presence
//! also makes `cargo test` build the binary for the end-to-end tests.)

use std::process::Command;

fn token_vault(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_token-vault"))
        .args(args)
        .env("TOKEN_VAULT_SOCKET", "/nonexistent/token-vault-test.sock")
        .output()
        .expect("run token-vault")
}

#[test]
fn help_lists_every_command() {
    let out = token_vault(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "serve", "import", "list", "status", "test", "token", "refresh", "remove",
    ] {
        assert!(help.contains(cmd), "--help lacks {cmd}:\n{help}");
    }
}

#[test]
fn a_client_without_a_daemon_says_what_to_do() {
    let out = token_vault(&["list"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "stdout must carry only results");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("token-vault serve"), "{err}");
}
