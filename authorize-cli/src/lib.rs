//! `oauth-authorize`: the workstation half of token-vault. It runs the
//! OAuth 2.0 authorization-code flow (or the client-credentials grant) and
//! prints the token blob that `token-vault import` and rclone read.
//!
//! The binary only parses arguments and reports errors; each step lives in
//! its own module: [`callback`] reads redirects, [`listener`] catches them,
//! [`flow`] runs the wait, [`exchange`] talks to the token endpoint,
//! [`output`] writes the blob.

pub mod bootstrap;
pub mod callback;
pub mod cli;
pub mod exchange;
pub mod flow;
pub mod listener;
pub mod output;
pub mod pages;
pub mod port_owner;
pub mod seal;

use anyhow::{bail, Context};
use cli::Args;
use exchange::TokenClient;
use shared::{EndpointOverrides, Provider, ProviderKind, Secret};
use std::time::Duration;
use url::Url;

pub use flow::FlowError;

/// Runs `oauth-authorize` with parsed arguments.
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(cli::Tool::Completions { shell }) = args.command {
        return print_completions(shell);
    }
    if let Some(text) = &args.bootstrap {
        return bootstrap::run(&args, text);
    }
    let seal_to = seal::recipient(&args)?;
    let kind: ProviderKind = args
        .provider
        .as_deref()
        .context("no provider given: oauth-authorize PROVIDER …")?
        .parse()?;
    let provider = Provider::resolve(
        kind,
        &EndpointOverrides {
            auth_url: args.auth_url.clone(),
            token_url: args.token_url.clone(),
            ..Default::default()
        },
    )?;
    let client_id = args
        .client_id
        .clone()
        .filter(|id| !id.trim().is_empty())
        .context("no client id: give it as the second argument or in OAUTH_CLIENT_ID")?;
    let client_secret = client_secret(&args)?;
    if client_secret.is_none() && (kind == ProviderKind::Box || args.client_credentials) {
        bail!(
            "{} needs the client secret: use --client-secret-file FILE or OAUTH_CLIENT_SECRET",
            if args.client_credentials {
                "--client-credentials"
            } else {
                "box"
            }
        );
    }
    if !args.listen.ip().is_loopback() {
        bail!("--listen {} is not a loopback address: the listener only binds 127.0.0.1, ::1 or another loopback address", args.listen);
    }
    let redirect = redirect_url(&args)?;

    let blob = if args.client_credentials {
        let client = TokenClient::new(
            &provider,
            &client_id,
            client_secret.as_ref(),
            None,
            args.proxy.as_deref(),
        )?;
        client.client_credentials(&args.scopes, &args.params)?
    } else {
        let client = TokenClient::new(
            &provider,
            &client_id,
            client_secret.as_ref(),
            Some(redirect.as_str()),
            args.proxy.as_deref(),
        )?;
        flow::CodeFlow {
            provider: &provider,
            client: &client,
            scopes: &args.scopes,
            extra_params: &args.params,
            listen: args.listen,
            callback_path: redirect.path().to_string(),
            open_browser: !args.no_browser,
            paste_back: args.no_browser,
            timeout: Duration::from_secs(args.timeout),
        }
        .run()?
    };
    if let Some(recipient) = &seal_to {
        let name = args.name.clone().unwrap_or_else(|| kind.to_string());
        return seal::emit(
            &blob,
            recipient,
            &provider,
            &client_id,
            &name,
            args.output.as_deref(),
        );
    }
    output::emit(&blob, args.rclone, args.output.as_deref())?;
    let name = args.name.clone().unwrap_or_else(|| kind.to_string());
    output::print_next_steps(&blob, &provider, &client_id, &name, args.output.as_deref());
    Ok(())
}

/// Writes the completion script for `shell` to stdout.
fn print_completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    use clap::CommandFactory;
    use std::io::Write;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Args::command(), "oauth-authorize", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(())
}

/// The client secret from `--client-secret-file`, `OAUTH_CLIENT_SECRET`, or
/// (with a warning) the command line, in that order.
fn client_secret(args: &Args) -> anyhow::Result<Option<Secret>> {
    if let Some(path) = &args.client_secret_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --client-secret-file {}", path.display()))?;
        let secret = text.trim();
        if secret.is_empty() {
            bail!("--client-secret-file {} is empty", path.display());
        }
        return Ok(Some(Secret::new(secret)));
    }
    if let Ok(secret) = std::env::var("OAUTH_CLIENT_SECRET") {
        if !secret.trim().is_empty() {
            return Ok(Some(Secret::new(secret.trim())));
        }
    }
    if let Some(secret) = &args.client_secret {
        eprintln!("Warning: a client secret on the command line is visible to other local users in the process list; prefer --client-secret-file or OAUTH_CLIENT_SECRET.");
        return Ok(Some(Secret::new(secret.trim())));
    }
    Ok(None)
}

/// The redirect URI, checked to point at the listener.
fn redirect_url(args: &Args) -> anyhow::Result<Url> {
    let text = args
        .redirect_url
        .clone()
        .unwrap_or_else(|| format!("http://{}/", args.listen));
    let url = Url::parse(&text).with_context(|| format!("--redirect-url `{text}` is not a URL"))?;
    let loopback_host = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if url.scheme() != "http" || !loopback_host {
        bail!("--redirect-url `{text}` must be http://127.0.0.1:PORT/ or http://localhost:PORT/: it has to reach the listener on this machine");
    }
    if url.port_or_known_default() != Some(args.listen.port()) {
        bail!(
            "--redirect-url `{text}` does not point at the listener's port {}: give --listen 127.0.0.1:PORT with the same port",
            args.listen.port()
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("--redirect-url `{text}` must not have a query or fragment");
    }
    Ok(url)
}
