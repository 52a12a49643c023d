//! The man pages of `token-vault` and `oauth-authorize`, rendered from
//! their clap definitions: one page per binary and one per subcommand
//! (`token-vault-serve.1`, …), as the checked-in `man/` holds them.
//!
//! Invariant: rendering is deterministic (no date, nothing from the
//! environment), so the checked-in pages can be compared byte for byte
//! with a fresh rendering; `cargo run -p docs --bin gen-man` rewrites them.

use clap::CommandFactory;
use std::path::{Path, PathBuf};

/// The command that regenerates the checked-in pages.
pub const REGENERATE: &str = "cargo run -p docs --bin gen-man";

/// The checked-in pages' directory: `man/man1/` at the workspace root (so
/// `MANPATH=man` finds them).
pub fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("docs/ sits in the workspace")
        .join("man")
        .join("man1")
}

/// Every page, as (file name, roff text), sorted by file name.
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    let mut pages = Vec::new();
    render_all(vault_server::cli::Cli::command(), &mut pages);
    render_all(authorize_cli::cli::Args::command(), &mut pages);
    pages.sort();
    pages
}

/// Renders `cmd` and, recursively, its visible subcommands.
fn render_all(cmd: clap::Command, pages: &mut Vec<(String, Vec<u8>)>) {
    // As clap_mangen::generate_to does: building names each subcommand
    // `parent-sub` (the page) and `parent sub` (the synopsis).
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    // Every page's footer names the binary and its version.
    let source = format!(
        "{} {}",
        cmd.get_name(),
        cmd.get_version().unwrap_or_default()
    );
    render(&cmd, &source, pages);
}

fn render(cmd: &clap::Command, source: &str, pages: &mut Vec<(String, Vec<u8>)>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        render(sub, source, pages);
    }
    let man = clap_mangen::Man::new(cmd.clone())
        .source(source)
        .manual("token-vault");
    let mut text = Vec::new();
    man.render(&mut text)
        .expect("rendering into memory cannot fail");
    pages.push((man.get_filename(), text));
}

/// The differences between the pages in `dir` and a fresh rendering: the
/// names of pages that are missing, different, or no longer generated.
pub fn stale_pages(dir: &Path) -> std::io::Result<Vec<String>> {
    let pages = man_pages();
    let mut stale = Vec::new();
    for (name, text) in &pages {
        match std::fs::read(dir.join(name)) {
            Ok(on_disk) if on_disk == *text => {}
            Ok(_) => stale.push(format!("{name} (out of date)")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                stale.push(format!("{name} (missing)"))
            }
            Err(e) => return Err(e),
        }
    }
    if dir.exists() {
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.ends_with(".1") && !pages.iter().any(|(n, _)| *n == name) {
                stale.push(format!("{name} (no such command any more)"));
            }
        }
    }
    stale.sort();
    Ok(stale)
}

/// Writes every page into `dir` (created if need be) and removes pages of
/// commands that are gone. Returns the pages written.
pub fn write_pages(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let pages = man_pages();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.ends_with(".1") && !pages.iter().any(|(n, _)| *n == name) {
            std::fs::remove_file(&path)?;
        }
    }
    let mut written = Vec::new();
    for (name, text) in pages {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_per_binary_and_subcommand() {
        let pages = man_pages();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for expected in [
            "token-vault.1",
            "token-vault-serve.1",
            "token-vault-exec.1",
            "token-vault-completions.1",
            "oauth-authorize.1",
            "oauth-authorize-completions.1",
        ] {
            assert!(names.contains(&expected), "{expected} in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
        let serve = &pages
            .iter()
            .find(|(n, _)| n == "token-vault-serve.1")
            .unwrap()
            .1;
        let serve = String::from_utf8_lossy(serve);
        assert!(serve.contains(".TH token-vault-serve 1"), "{serve}");
        assert!(serve.contains(r"\fBtoken\-vault serve\fR"), "{serve}");
        assert_eq!(man_pages(), pages, "rendering is deterministic");
    }

    #[test]
    fn write_then_check() {
        let dir = tempfile_dir();
        assert!(!stale_pages(&dir).unwrap().is_empty());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token-vault-gone.1"), "old").unwrap();
        write_pages(&dir).unwrap();
        assert_eq!(stale_pages(&dir).unwrap(), Vec::<String>::new());
        assert!(!dir.join("token-vault-gone.1").exists());
        std::fs::write(dir.join("token-vault.1"), "edited").unwrap();
        assert_eq!(
            stale_pages(&dir).unwrap(),
            vec!["token-vault.1 (out of date)".to_string()]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("docs-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
