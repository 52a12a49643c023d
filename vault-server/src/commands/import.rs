//! `import`: reads a pasted token blob on stdin and sends it to the daemon.
//!
//! Invariant: the blob is parsed here before anything is sent, so a bad
//! paste fails at once, with the parser's message (which never quotes the
//! paste), and the daemon is not contacted. The client secret comes from a
//! file or the environment, never from the command line.

use super::{relative_time, sanitize, warn};
use crate::cli::ImportArgs;
use crate::client::{connection_path, VaultClient};
use anyhow::{bail, Context};
use chrono::Utc;
use hyper::{Method, StatusCode};
use shared::api::{ImportRequest, ImportResponse};
use shared::{EndpointOverrides, Provider, Secret, TokenBlob};
use std::io::{IsTerminal, Read};
use std::path::Path;

/// The largest paste read from stdin; a blob is a few kilobytes.
pub const MAX_PASTE: usize = 1024 * 1024;

/// The environment variables the client secret may come from, in order.
pub const CLIENT_SECRET_ENV: [&str; 2] = ["TOKEN_VAULT_CLIENT_SECRET", "OAUTH_CLIENT_SECRET"];

/// `token-vault import NAME …`: the blob from stdin, the secret from
/// `--client-secret-file` or the environment.
pub async fn run_import(client: &VaultClient, args: &ImportArgs) -> anyhow::Result<()> {
    // The secret first, so a wrong file name fails before the user pastes.
    let env = CLIENT_SECRET_ENV.map(|k| std::env::var(k).ok().map(Secret::new));
    let [primary, fallback] = env;
    let client_secret = client_secret(args.client_secret_file.as_deref(), primary, fallback)?;

    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("Paste the token blob, then press Ctrl-D");
    }
    let paste = read_paste(stdin.lock())?;
    import_paste(client, args, paste, client_secret).await
}

/// Checks the paste, sends it, and reports the outcome on stderr.
pub async fn import_paste(
    client: &VaultClient,
    args: &ImportArgs,
    paste: Secret,
    client_secret: Option<Secret>,
) -> anyhow::Result<()> {
    let request = build_request(args, paste, client_secret)?;
    let (status, answer): (StatusCode, ImportResponse) = client
        .send_json_status(Method::PUT, &connection_path(&args.name, ""), &request)
        .await?;
    for w in &answer.warnings {
        warn(w);
    }
    eprintln!("token-vault: {}", confirmation(status, &answer));
    Ok(())
}

/// The request for `args` and the paste, after checking the paste (and,
/// for a new connection, the provider's endpoints) locally.
pub fn build_request(
    args: &ImportArgs,
    paste: Secret,
    client_secret: Option<Secret>,
) -> anyhow::Result<ImportRequest> {
    if shared::sealed::is_sealed(paste.expose()) {
        // Only the daemon holds the key to open it; check its shape here.
        if let Err(e) = shared::sealed::SealedBlob::parse(paste.expose()) {
            bail!("nothing was imported: {e}");
        }
    } else if let Err(e) = TokenBlob::parse(paste.expose()) {
        bail!("nothing was imported: {e}");
    }
    let endpoints = EndpointOverrides {
        auth_url: args.auth_url.clone(),
        token_url: args.token_url.clone(),
        revoke_url: args.revoke_url.clone(),
        device_url: None,
        api_url: args.api_url.clone(),
        upload_url: args.upload_url.clone(),
    };
    match args.provider {
        // On replace the daemon merges with the old endpoints, so only it can tell.
        Some(kind) if !args.replace => {
            Provider::resolve(kind, &endpoints).context("nothing was imported")?;
        }
        None if !args.replace => bail!("--provider is required for a new connection"),
        _ => {}
    }
    let ids = |v: &Vec<u32>| (!v.is_empty()).then(|| v.clone());
    Ok(ImportRequest {
        blob: paste,
        provider: args.provider,
        client_id: args.client_id.clone(),
        client_secret,
        endpoints,
        root: args.root.clone(),
        allow_uids: ids(&args.allow_uids),
        allow_gids: ids(&args.allow_gids),
        upload_cutoff: args.upload_cutoff,
        chunk_size: args.chunk_size,
        replace: args.replace,
    })
}

/// The client secret: the file's content (trimmed) if a file is given,
/// else the first non-empty of the environment values.
pub fn client_secret(
    file: Option<&Path>,
    primary_env: Option<Secret>,
    fallback_env: Option<Secret>,
) -> anyhow::Result<Option<Secret>> {
    if let Some(path) = file {
        let text =
            Secret::new(std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the client secret from {}", path.display())
            })?);
        let trimmed = Secret::new(text.expose().trim());
        if trimmed.is_empty() {
            bail!("the client secret file {} is empty", path.display());
        }
        return Ok(Some(trimmed));
    }
    Ok([primary_env, fallback_env]
        .into_iter()
        .flatten()
        .map(|s| Secret::new(s.expose().trim()))
        .find(|s| !s.is_empty()))
}

/// Reads the whole paste (up to [`MAX_PASTE`]) until EOF.
pub fn read_paste(reader: impl Read) -> anyhow::Result<Secret> {
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(64 * 1024));
    reader
        .take(MAX_PASTE as u64 + 1)
        .read_to_end(&mut buf)
        .context("cannot read the token blob from stdin")?;
    if buf.len() > MAX_PASTE {
        bail!(
            "the paste is larger than {} KiB; a token blob is a few kilobytes",
            MAX_PASTE / 1024
        );
    }
    match std::str::from_utf8(&buf) {
        Ok(text) => Ok(Secret::new(text)),
        Err(_) => {
            bail!("the paste is not text (not UTF-8); paste the blob `oauth-authorize` printed")
        }
    }
}

/// The one-line report of a successful import.
pub fn confirmation(status: StatusCode, answer: &ImportResponse) -> String {
    let c = &answer.connection;
    let verb = if status == StatusCode::CREATED {
        "imported"
    } else {
        "replaced"
    };
    let provider = c.provider.map_or("?", |p| p.name());
    let expiry = match c.expiry {
        Some(t) => format!("access token expires {}", relative_time(t, Utc::now())),
        None => "access token does not expire".to_string(),
    };
    let refresh = if c.has_refresh_token {
        "with a refresh token"
    } else {
        "without a refresh token"
    };
    format!(
        "{verb} {} ({provider}, {}; {expiry}, {refresh})",
        sanitize(&c.name),
        c.state.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientError;
    use shared::ProviderKind;

    const GOOD: &str = r#"{"access_token":"AT-xyz","token_type":"bearer","refresh_token":"RT-abc","expiry":"2030-01-02T03:04:05Z"}"#;

    fn args(provider: Option<ProviderKind>, replace: bool) -> ImportArgs {
        ImportArgs {
            name: "box".into(),
            provider,
            client_id: Some("cid".into()),
            client_secret_file: None,
            auth_url: None,
            token_url: None,
            revoke_url: None,
            api_url: None,
            upload_url: None,
            root: None,
            allow_uids: vec![],
            allow_gids: vec![5],
            upload_cutoff: None,
            chunk_size: None,
            replace,
        }
    }

    fn missing_socket() -> (tempfile::TempDir, VaultClient) {
        let dir = tempfile::tempdir().unwrap();
        let client = VaultClient::new(dir.path().join("none.sock"));
        (dir, client)
    }

    #[tokio::test]
    async fn garbage_is_refused_without_contacting_the_vault() {
        let (_dir, client) = missing_socket();
        for paste in [
            "",
            "hello",
            "{not json",
            "[1,2]",
            r#"{"token_type":"bearer"}"#,
        ] {
            let err = import_paste(
                &client,
                &args(Some(ProviderKind::Box), false),
                Secret::new(paste),
                None,
            )
            .await
            .unwrap_err();
            assert!(
                err.downcast_ref::<ClientError>().is_none(),
                "{paste}: {err:#}"
            );
            let text = format!("{err:#}");
            assert!(text.starts_with("nothing was imported: "), "{text}");
        }
        // A good paste does get sent (and here finds no daemon).
        let err = import_paste(
            &client,
            &args(Some(ProviderKind::Box), false),
            Secret::new(GOOD),
            None,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err.downcast_ref::<ClientError>(),
                Some(ClientError::Unreachable { .. })
            ),
            "{err:#}"
        );
    }

    #[test]
    fn request_fields() {
        let paste =
            format!("Paste the following into your remote machine --->\n{GOOD}\n<---End paste\n");
        let r = build_request(
            &args(Some(ProviderKind::Box), false),
            Secret::new(paste.clone()),
            Some(Secret::new("cs")),
        )
        .unwrap();
        assert_eq!(r.provider, Some(ProviderKind::Box));
        assert_eq!(r.allow_uids, None);
        assert_eq!(r.allow_gids, Some(vec![5]));
        assert_eq!(r.client_secret.as_ref().map(Secret::expose), Some("cs"));
        assert_eq!(r.blob.expose(), paste);
        // The JSON is what the daemon's `deny_unknown_fields` type accepts.
        let json = serde_json::to_string(&r).unwrap();
        let back: ImportRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back.blob.expose(), paste);

        // A custom provider needs its endpoints, checked here for a new connection.
        let err = build_request(
            &args(Some(ProviderKind::Custom), false),
            Secret::new(GOOD),
            None,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("--auth-url"), "{err:#}");
        let mut bad_url = args(Some(ProviderKind::Box), false);
        bad_url.token_url = Some("ftp://x".into());
        assert!(build_request(&bad_url, Secret::new(GOOD), None).is_err());
        // On replace the provider may be omitted.
        assert!(build_request(&args(None, true), Secret::new(GOOD), None).is_ok());
        assert!(build_request(&args(None, false), Secret::new(GOOD), None).is_err());
    }

    #[test]
    fn secret_sources() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "  from-file\n").unwrap();
        let s = |v: &str| Some(Secret::new(v));
        let got = client_secret(Some(&file), s("env"), None).unwrap().unwrap();
        assert_eq!(got.expose(), "from-file");
        let got = client_secret(None, s(" "), s("fallback")).unwrap().unwrap();
        assert_eq!(got.expose(), "fallback");
        let got = client_secret(None, s("primary"), s("fallback"))
            .unwrap()
            .unwrap();
        assert_eq!(got.expose(), "primary");
        assert!(client_secret(None, None, None).unwrap().is_none());
        std::fs::write(&file, "\n").unwrap();
        assert!(client_secret(Some(&file), None, None).is_err());
        assert!(client_secret(Some(&dir.path().join("missing")), None, None).is_err());
    }

    #[test]
    fn paste_reading() {
        assert_eq!(
            read_paste(&b"abc\ndef\n"[..]).unwrap().expose(),
            "abc\ndef\n"
        );
        assert!(read_paste(&vec![b'x'; MAX_PASTE + 1][..]).is_err());
        assert!(read_paste(&[0xffu8, 0xfe][..]).is_err());
    }
}
