//! `authorize` and `recipient`: the headless ways in that keep the refresh
//! token off every terminal.
//!
//! - `token-vault authorize NAME …` asks the daemon to start a pending
//!   authorization. In bootstrap mode it prints the one line to run on a
//!   workstation (`oauth-authorize --bootstrap '…'`, on stdout), then reads
//!   the line that prints back (stdin) and hands it to the daemon, which
//!   checks the state and exchanges the code itself. With `--device` it
//!   prints the provider's verification URL and user code (stderr) and
//!   waits while the daemon polls.
//! - `token-vault recipient` prints the vault's public key for
//!   `oauth-authorize … --seal-to`.
//!
//! Invariant: the client secret goes only to the daemon; nothing here
//! prints a code or a token (the pasted line is passed on, never echoed).

use super::import::{client_secret, confirmation, CLIENT_SECRET_ENV};
use super::{print_stdout, relative_time, sanitize, warn};
use crate::cli::ImportArgs;
use crate::client::{encode_component, ClientError, VaultClient};
use anyhow::{bail, Context};
use chrono::Utc;
use clap::Args;
use hyper::{Method, StatusCode};
use shared::api::ImportResponse;
use shared::authorization::{
    AuthorizationInfo, AuthorizationMode, AuthorizationRequest, AuthorizationState,
    CompleteRequest, RecipientResponse,
};
use shared::bootstrap::{BootstrapError, BootstrapResponse, RESPONSE_PREFIX};
use shared::{EndpointOverrides, Provider, Secret};
use std::io::{BufRead, IsTerminal};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the device mode asks the daemon how it is going.
const STATUS_POLL: Duration = Duration::from_millis(500);

/// `token-vault authorize`'s options: an import's, and how to authorize.
#[derive(Args, Debug, Clone)]
pub struct AuthorizeArgs {
    #[command(flatten)]
    pub import: ImportArgs,

    /// Use the device grant (RFC 8628): print a URL and a code for any browser, on any
    /// device; no workstation command at all. For providers with a device endpoint
    /// (drive, onedrive; custom with --device-url).
    #[arg(long)]
    pub device: bool,

    /// Override the provider's device authorization endpoint.
    #[arg(long, value_name = "U")]
    pub device_url: Option<String>,

    /// A scope to request; repeatable. Default: the provider's usual scopes.
    #[arg(long = "scope", value_name = "S")]
    pub scopes: Vec<String>,

    /// Bootstrap mode: the redirect URI registered with the provider, where
    /// `oauth-authorize --bootstrap` will listen on the workstation.
    /// [default: http://127.0.0.1:53682/]
    #[arg(long, value_name = "URL", conflicts_with = "device")]
    pub redirect_url: Option<String>,

    /// How long the pending authorization waits for the response (bootstrap) or the
    /// approval (device; the provider's own limit also applies). At most 1h. [default: 10m]
    #[arg(long, value_name = "DUR", value_parser = parse_ttl)]
    pub ttl: Option<Duration>,
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e}; expected a duration such as 90s, 10m or 1h"))?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(crate::pending::MAX_TTL_SECS) {
        return Err("expected a duration from 1s to 1h".into());
    }
    Ok(d)
}

/// `token-vault authorize NAME …`.
pub async fn run_authorize(client: &VaultClient, args: &AuthorizeArgs) -> anyhow::Result<()> {
    let request = build_request(args)?;
    let started: AuthorizationInfo = client
        .send_json(Method::POST, "/v1/authorizations", &request)
        .await?;
    match started.mode {
        AuthorizationMode::Bootstrap => bootstrap(client, &started).await,
        AuthorizationMode::Device => device(client, &started).await,
    }
}

/// The request for `args`, checked locally where that is possible.
pub fn build_request(args: &AuthorizeArgs) -> anyhow::Result<AuthorizationRequest> {
    let a = &args.import;
    let [primary, fallback] = CLIENT_SECRET_ENV.map(|k| std::env::var(k).ok().map(Secret::new));
    let secret = client_secret(a.client_secret_file.as_deref(), primary, fallback)?;
    let endpoints = EndpointOverrides {
        auth_url: a.auth_url.clone(),
        token_url: a.token_url.clone(),
        revoke_url: a.revoke_url.clone(),
        device_url: args.device_url.clone(),
        api_url: a.api_url.clone(),
        upload_url: a.upload_url.clone(),
    };
    match a.provider {
        // On replace the daemon merges with the old endpoints, so only it can tell.
        Some(kind) if !a.replace => {
            let provider = Provider::resolve(kind, &endpoints).context("nothing was started")?;
            if args.device && provider.endpoints.device.is_none() {
                bail!(
                    "{kind} has no device authorization endpoint (RFC 8628), so --device cannot be used with it. \
                     Use bootstrap mode instead: run this command without --device, then the \
                     `oauth-authorize --bootstrap '…'` line it prints on a machine with a browser"
                );
            }
        }
        None if !a.replace => bail!("--provider is required for a new connection"),
        _ => {}
    }
    let ids = |v: &Vec<u32>| (!v.is_empty()).then(|| v.clone());
    Ok(AuthorizationRequest {
        name: a.name.clone(),
        mode: if args.device {
            AuthorizationMode::Device
        } else {
            AuthorizationMode::Bootstrap
        },
        provider: a.provider,
        client_id: a.client_id.clone(),
        client_secret: secret,
        endpoints,
        scopes: args.scopes.clone(),
        redirect_uri: args.redirect_url.clone(),
        root: a.root.clone(),
        allow_uids: ids(&a.allow_uids),
        allow_gids: ids(&a.allow_gids),
        upload_cutoff: a.upload_cutoff,
        chunk_size: a.chunk_size,
        replace: a.replace,
        ttl_secs: args.ttl.map(|d| d.as_secs()),
    })
}

fn authorization_path(id: &str, suffix: &str) -> String {
    format!("/v1/authorizations/{}{suffix}", encode_component(id))
}

/// What stdin gave: a line, or its end.
enum Input {
    Line(Secret),
    End,
}

/// Reads stdin lines on a thread (stdin blocks), for the async wait.
fn stdin_lines() -> mpsc::UnboundedReceiver<Input> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(Input::Line(Secret::new(line))).is_err() {
                return;
            }
        }
        let _ = tx.send(Input::End);
    });
    rx
}

async fn bootstrap(client: &VaultClient, started: &AuthorizationInfo) -> anyhow::Result<()> {
    let name = sanitize(&started.name);
    let Some(command) = &started.command else {
        bail!("the vault did not return a bootstrap command");
    };
    let expires = started.expires_at;
    eprintln!(
        "Authorizing `{name}` ({provider}) in bootstrap mode: the tokens are made on this host, and only \
         a one-time code crosses.\n\nOn a machine with a browser and oauth-authorize, run this line:\n",
        provider = started.provider
    );
    print_stdout(&format!("{command}\n"))?;
    eprintln!(
        "\nThen paste here the one line it prints ({RESPONSE_PREFIX}…) and press Enter. \
         This authorization expires {} ({}).",
        relative_time(expires, Utc::now()),
        expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let mut lines = stdin_lines();
    let mut pasted = String::new();
    let left = (expires - Utc::now()).to_std().unwrap_or_default();
    let deadline = tokio::time::Instant::now() + left;
    loop {
        let input = tokio::select! {
            input = lines.recv() => input.unwrap_or(Input::End),
            _ = tokio::time::sleep_until(deadline) => {
                let info: AuthorizationInfo = client.get_json(&authorization_path(&started.id, "")).await?;
                if info.state == AuthorizationState::Pending {
                    // Our clock ran ahead of the daemon's: look again shortly.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                return Err(ended(&info));
            }
            _ = tokio::signal::ctrl_c() => {
                cancel(client, &started.id).await;
                bail!("interrupted; the pending authorization was cancelled");
            }
        };
        let line = match input {
            Input::Line(line) => line,
            Input::End => {
                cancel(client, &started.id).await;
                bail!(
                    "no response was pasted before stdin ended; the pending authorization of `{name}` was cancelled"
                );
            }
        };
        let text = line.expose().trim();
        if text.is_empty() {
            continue;
        }
        // A terminal may break a long line: join a continuation to what came before.
        if text.starts_with(RESPONSE_PREFIX) || pasted.is_empty() {
            pasted = text.to_string();
        } else {
            pasted.push_str(text);
        }
        match BootstrapResponse::parse(&pasted) {
            Ok(_) => {}
            Err(BootstrapError::BadResponse) => {
                eprintln!("token-vault: that line is incomplete or damaged; paste the rest of it, or the whole line again.");
                continue;
            }
            Err(BootstrapError::Denied(_)) => {}
            Err(e) => {
                eprintln!("token-vault: {e}");
                pasted.clear();
                continue;
            }
        }
        let response = CompleteRequest {
            response: Secret::new(std::mem::take(&mut pasted)),
        };
        match client
            .send_json_status::<_, AuthorizationInfo>(
                Method::POST,
                &authorization_path(&started.id, "/complete"),
                &response,
            )
            .await
        {
            Ok((status, info)) => return report_completed(status, info),
            Err(ClientError::Api { code, message, .. })
                if code == "state_mismatch" || code == "bad_request" =>
            {
                eprintln!("token-vault: {}", sanitize(&message));
                eprintln!("token-vault: still waiting for the right line.");
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn device(client: &VaultClient, started: &AuthorizationInfo) -> anyhow::Result<()> {
    let name = sanitize(&started.name);
    let (Some(uri), Some(code)) = (&started.verification_uri, &started.user_code) else {
        bail!("the vault did not return a verification URL and user code");
    };
    eprintln!(
        "To authorize `{name}` ({provider}), open this page in any browser, on any device:\n\n    {uri}\n\nand enter the code:\n\n    {code}\n",
        uri = sanitize(uri),
        code = sanitize(code),
        provider = started.provider
    );
    if let Some(complete) = &started.verification_uri_complete {
        eprintln!(
            "(Or open {}, which has the code filled in.)\n",
            sanitize(complete)
        );
    }
    eprintln!(
        "Waiting for the approval; it expires {}. Ctrl-C cancels.",
        relative_time(started.expires_at, Utc::now())
    );
    loop {
        tokio::select! {
            _ = tokio::time::sleep(STATUS_POLL) => {}
            _ = tokio::signal::ctrl_c() => {
                cancel(client, &started.id).await;
                bail!("interrupted; the device authorization was cancelled");
            }
        }
        let info: AuthorizationInfo = client
            .get_json(&authorization_path(&started.id, ""))
            .await?;
        match info.state {
            AuthorizationState::Pending | AuthorizationState::Exchanging => {}
            AuthorizationState::Completed => {
                let status = if info.created == Some(true) {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                return report_completed(status, info);
            }
            _ => return Err(ended(&info)),
        }
    }
}

/// The error for an authorization that ended without tokens.
fn ended(info: &AuthorizationInfo) -> anyhow::Error {
    match &info.error {
        Some(e) => anyhow::anyhow!("{}", sanitize(&e.message)),
        None => anyhow::anyhow!(
            "the authorization of `{}` ended: {}",
            sanitize(&info.name),
            info.state.as_str()
        ),
    }
}

fn report_completed(status: StatusCode, info: AuthorizationInfo) -> anyhow::Result<()> {
    let Some(connection) = info.connection else {
        return Err(ended(&info));
    };
    let answer = ImportResponse {
        connection,
        warnings: info.warnings,
    };
    for w in &answer.warnings {
        warn(w);
    }
    eprintln!("token-vault: {}", confirmation(status, &answer));
    Ok(())
}

/// Cancels a pending authorization; best effort (it expires anyway).
async fn cancel(client: &VaultClient, id: &str) {
    let _ = client
        .delete::<AuthorizationInfo>(&authorization_path(id, ""))
        .await;
}

/// `token-vault recipient`: the vault's public key on stdout.
pub async fn run_recipient(client: &VaultClient) -> anyhow::Result<()> {
    let r: RecipientResponse = client.get_json("/v1/recipient").await?;
    print_stdout(&format!("{}\n", r.recipient))?;
    if std::io::stderr().is_terminal() {
        eprintln!(
            "\nOn the workstation, seal a token blob to this vault with\n\n    oauth-authorize PROVIDER … --seal-to {}\n\n\
             and paste the `tvsealed1.…` line it prints into `token-vault import NAME …` here. \
             Only this vault can open it (key id {}).",
            r.recipient,
            sanitize(&r.key_id)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: AuthorizeArgs,
    }

    fn parse(argv: &[&str]) -> Result<AuthorizeArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("authorize").chain(argv.iter().copied()))
            .map(|c| c.args)
    }

    #[test]
    fn options() {
        let a = parse(&[
            "box",
            "--provider",
            "box",
            "--client-id",
            "cid",
            "--redirect-url",
            "http://127.0.0.1:5555/",
            "--ttl",
            "2s",
            "--scope",
            "a",
            "--allow-uid",
            "7",
        ])
        .unwrap();
        assert_eq!(a.ttl, Some(Duration::from_secs(2)));
        let r = build_request(&a).unwrap();
        assert_eq!(r.mode, AuthorizationMode::Bootstrap);
        assert_eq!(r.ttl_secs, Some(2));
        assert_eq!(r.scopes, vec!["a".to_string()]);
        assert_eq!(r.allow_uids, Some(vec![7]));
        assert!(parse(&["box", "--provider", "box", "--ttl", "2h"]).is_err());
        assert!(parse(&[
            "d",
            "--provider",
            "onedrive",
            "--device",
            "--redirect-url",
            "x"
        ])
        .is_err());
        // There is no way to pass a secret on the command line.
        assert!(parse(&["box", "--provider", "box", "--client-secret", "s"]).is_err());
    }

    #[test]
    fn device_needs_a_device_endpoint() {
        let a = parse(&["b", "--provider", "box", "--client-id", "c", "--device"]).unwrap();
        let err = build_request(&a).unwrap_err().to_string();
        assert!(
            err.contains("no device authorization endpoint") && err.contains("bootstrap"),
            "{err}"
        );
        let a = parse(&[
            "o",
            "--provider",
            "onedrive",
            "--client-id",
            "c",
            "--device",
        ])
        .unwrap();
        assert_eq!(build_request(&a).unwrap().mode, AuthorizationMode::Device);
        let a = parse(&[
            "c",
            "--provider",
            "custom",
            "--client-id",
            "c",
            "--auth-url",
            "https://a.example/auth",
            "--token-url",
            "https://a.example/token",
            "--device-url",
            "https://a.example/device",
            "--device",
        ])
        .unwrap();
        assert_eq!(
            build_request(&a).unwrap().endpoints.device_url.as_deref(),
            Some("https://a.example/device")
        );
    }
}
