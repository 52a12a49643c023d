//! Where the workspace's real binaries are, for tests that run them.
//!
//! `cargo test --workspace` builds every binary of a package that has an
//! integration test before any test runs, and every binary crate here has
//! one, so the binaries sit next to the test executable's `deps` folder.

use std::path::PathBuf;

/// The path of a workspace binary (`oauth-authorize`, `token-vault`,
/// `fake-browser`) in the target directory the running test was built into.
pub fn path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    // target/debug/deps/<test>-<hash> → target/debug/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is not built; run `cargo test --workspace` (or `cargo build --workspace --bins`) first",
        bin.display()
    );
    bin
}
