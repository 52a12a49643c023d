//! Where the release binaries are, for a bench that runs from
//! `target/release/` itself (unlike [`crate::bins`], which serves test
//! executables in `target/<profile>/deps/`), and their sizes (measurement
//! 5).

use super::stats::grouped;
use super::table::{failed_row, plain_row, Row};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The command that builds every binary the bench runs.
pub const BUILD_COMMAND: &str = "cargo build --release --workspace --bins";

/// The folder the running executable is in; for an executable in a `deps`
/// folder (a test harness), the profile folder above it.
pub fn own_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    } else {
        dir
    }
}

/// The path of workspace binary `name`: in the executable's own folder
/// first, then in the folder above (when run from `deps`).
pub fn find(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the bench's path: {e}"))?;
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent() {
        candidates.push(dir.join(name));
        if let Some(up) = dir.parent() {
            candidates.push(up.join(name));
        }
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        format!(
            "`{name}` is not built next to {}; run `{BUILD_COMMAND}` first",
            exe.display()
        )
    })
}

/// A warning when `bin` is older than the newest file under one of the
/// workspace `sources` folders: `cargo run -p tests` does not rebuild the
/// other packages' binaries, and a stale binary measures old code.
pub fn stale_warning(bin: &Path, sources: &[&str]) -> Option<String> {
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok()?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let newest = sources
        .iter()
        .filter_map(|s| newest_mtime(&workspace.join(s), 8))
        .max()?;
    (newest > built).then(|| {
        format!(
            "{} is older than its sources; run `{BUILD_COMMAND}` to measure the current code",
            bin.display()
        )
    })
}

/// The newest modification time of a file under `path`, `depth` levels down.
fn newest_mtime(path: &Path, depth: u32) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    if depth == 0 {
        return None;
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .filter_map(|e| newest_mtime(&e.path(), depth - 1))
        .max()
}

/// The size of `path` in bytes and whether it has a symbol table (`.symtab`
/// section); `None` for the latter when it is not a 64-bit ELF file.
pub fn size_and_symbols(path: &Path) -> std::io::Result<(u64, Option<bool>)> {
    let bytes = std::fs::read(path)?;
    Ok((bytes.len() as u64, elf64_has_section(&bytes, b".symtab")))
}

/// Whether a little-endian ELF64 image has a section called `wanted`.
fn elf64_has_section(elf: &[u8], wanted: &[u8]) -> Option<bool> {
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?));
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let shentsize = usize::from(u16_at(0x3a)?);
    let shnum = usize::from(u16_at(0x3c)?);
    let shstrndx = usize::from(u16_at(0x3e)?);
    let header = |i: usize| shoff + i * shentsize;
    let names_at = usize::try_from(u64_at(header(shstrndx) + 0x18)?).ok()?;
    let names_len = usize::try_from(u64_at(header(shstrndx) + 0x20)?).ok()?;
    let names = elf.get(names_at..names_at + names_len)?;
    for i in 0..shnum {
        let name_at = usize::try_from(u32_at(header(i))?).ok()?;
        let name = names.get(name_at..)?;
        let end = name.iter().position(|&b| b == 0)?;
        if &name[..end] == wanted {
            return Some(true);
        }
    }
    Some(false)
}

/// The rows of measurement 5: each binary's size, and whether it is
/// stripped.
pub fn size_rows(bins: &[&Path]) -> Vec<Row> {
    let what = "5 binary size";
    let mut rows = Vec::new();
    for bin in bins {
        let name = bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (bytes, symbols) = match size_and_symbols(bin) {
            Ok(found) => found,
            Err(e) => {
                rows.push(failed_row(what, &anyhow::anyhow!(e)));
                continue;
            }
        };
        let symbols = match symbols {
            Some(false) => "stripped (no .symtab)",
            Some(true) => "NOT stripped (has .symtab)",
            None => "not an ELF64 file",
        };
        rows.push(plain_row(
            what,
            &name,
            format!("{:.2} MB", bytes as f64 / 1e6),
            format!("{} bytes; {symbols}", grouped(bytes)),
        ));
    }
    rows
}
