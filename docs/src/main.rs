//! `gen-man [--check] [DIR]`: writes the man pages of `token-vault` and
//! `oauth-authorize` into DIR (default: the workspace's `man/`), or with
//! `--check` only says whether the pages there are up to date.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut check = false;
    let mut dir = None;
    for arg in std::env::args_os().skip(1) {
        match arg.to_str() {
            Some("--check") => check = true,
            Some("-h" | "--help") => {
                println!(
                    "usage: gen-man [--check] [DIR]\n\nWrites the man pages into DIR (default: \
                     {}), or with --check exits non-zero if they are out of date.",
                    docs::man_dir().display()
                );
                return ExitCode::SUCCESS;
            }
            _ if dir.is_none() => dir = Some(PathBuf::from(arg)),
            _ => {
                eprintln!("gen-man: unexpected argument {arg:?}; see gen-man --help");
                return ExitCode::from(2);
            }
        }
    }
    let dir = dir.unwrap_or_else(docs::man_dir);
    let result = if check {
        docs::stale_pages(&dir).map(|stale| {
            for page in &stale {
                eprintln!("gen-man: stale: {page}");
            }
            if stale.is_empty() {
                eprintln!("gen-man: the man pages in {} are up to date", dir.display());
            } else {
                eprintln!("gen-man: run `{}` to regenerate them", docs::REGENERATE);
            }
            stale.is_empty()
        })
    } else {
        docs::write_pages(&dir).map(|written| {
            for path in &written {
                println!("{}", path.display());
            }
            true
        })
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("gen-man: {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
