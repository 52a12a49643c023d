//! Where the blob goes: one line on stdout, or a 0600 file written
//! atomically; and the next step, for the human, on stderr.

use anyhow::Context;
use shared::{Provider, ProviderKind, TokenBlob};
use std::io::Write;
use std::path::Path;

/// Writes the blob (plain or in rclone's marker lines) to `output` or stdout.
pub fn emit(blob: &TokenBlob, rclone: bool, output: Option<&Path>) -> anyhow::Result<()> {
    let text = if rclone {
        blob.to_rclone_paste()
    } else {
        blob.to_json()
    };
    match output {
        None => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{text}").context("cannot write the blob to stdout")?;
            out.flush().context("cannot write the blob to stdout")?;
        }
        Some(path) => write_private(path, &text)
            .with_context(|| format!("cannot write the blob to {}", path.display()))?,
    }
    Ok(())
}

/// Writes `text` to `path` with mode 0600: a temp file in the same folder
/// (tempfile creates it 0600), fsynced, then renamed over the target, so the
/// blob is never readable by others, not even for a moment.
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    writeln!(tmp, "{text}")?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Tells the user, on stderr, what to run on the headless host.
pub fn print_next_steps(
    blob: &TokenBlob,
    provider: &Provider,
    client_id: &str,
    name: &str,
    output: Option<&Path>,
) {
    let mut import = format!(
        "token-vault import {name} --provider {} --client-id {client_id} --client-secret-file /path/to/client-secret",
        provider.kind
    );
    if provider.kind == ProviderKind::Custom {
        import.push_str(&format!(
            " --auth-url {} --token-url {}",
            provider.endpoints.authorize, provider.endpoints.token
        ));
    }
    match output {
        Some(path) => eprintln!(
            "\nWrote the token blob to {} (mode 0600). Copy it to the headless host and run:\n\n    {import} < {}\n",
            path.display(),
            path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default()
        ),
        None => eprintln!(
            "\nThe token blob is the line above (stdout). On the headless host, run\n\n    {import}\n\nthen paste the blob and press Ctrl-D. It also pastes into rclone's config_token prompt.\n"
        ),
    }
    if blob.refresh_token.is_none() {
        eprintln!("Warning: the provider issued no refresh token, so this token stops working at its expiry and cannot be renewed.");
    }
}
