//! `--seal-to RECIPIENT`: the blob encrypted to one vault's public key
//! (`shared::sealed`), so the line is safe to paste anywhere and only that
//! vault's `token-vault import` can open it.
//!
//! Invariant: the plain blob never reaches stdout, stderr or a file; only
//! the sealed line does.

use crate::output::write_private;
use anyhow::Context;
use shared::sealed::{seal, Recipient};
use shared::{Provider, ProviderKind, Secret, TokenBlob};
use std::io::Write;
use std::path::Path;

/// The recipient of `--seal-to`, checked before any browser opens.
pub fn recipient(args: &crate::cli::Args) -> anyhow::Result<Option<Recipient>> {
    args.seal_to
        .as_deref()
        .map(|r| Recipient::parse(r).context("--seal-to"))
        .transpose()
}

/// Seals `blob` to `recipient` and writes the line to `output` (mode 0600)
/// or stdout; tells the user on stderr what to do with it.
pub fn emit(
    blob: &TokenBlob,
    recipient: &Recipient,
    provider: &Provider,
    client_id: &str,
    name: &str,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let json = Secret::new(blob.to_json());
    let sealed = seal(json.expose().as_bytes(), recipient).context("cannot seal the blob")?;
    match output {
        None => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{sealed}").context("cannot write the sealed blob to stdout")?;
            out.flush()
                .context("cannot write the sealed blob to stdout")?;
        }
        Some(path) => write_private(path, &sealed)
            .with_context(|| format!("cannot write the sealed blob to {}", path.display()))?,
    }
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
    let place = match output {
        Some(path) => format!("is in {}", path.display()),
        None => "is the line above (stdout)".to_string(),
    };
    eprintln!(
        "\nThe sealed blob {place}. Only the vault with recipient id {} can open it, so it is safe to \
         paste anywhere. On that host, run\n\n    {import}\n\nthen paste it and press Ctrl-D.\n",
        recipient.key_id_hex()
    );
    if blob.refresh_token.is_none() {
        eprintln!("Warning: the provider issued no refresh token, so this token stops working at its expiry and cannot be renewed.");
    }
    Ok(())
}
