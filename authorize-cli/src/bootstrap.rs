//! `oauth-authorize --bootstrap STRING`: the workstation half of bootstrap
//! mode. `token-vault authorize` on the headless host made the authorize
//! URL (with its state and PKCE challenge) and keeps the client secret and
//! the verifier; this runs the loopback listener and the browser as usual,
//! checks the state, and prints one line with the code and the state to
//! paste back. It never exchanges the code.
//!
//! Invariant: stdout gets exactly the response line and nothing else; the
//! code appears nowhere else (not on stderr, not in an error).

use crate::cli::{Args, DEFAULT_LISTEN};
use crate::flow::Wait;
use crate::listener::Listener;
use anyhow::{bail, Context};
use shared::bootstrap::{Bootstrap, BootstrapResponse};
use std::io::{BufRead, IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use url::Url;

/// Runs the browser half for the bootstrap string `text`.
pub fn run(args: &Args, text: &str) -> anyhow::Result<()> {
    let bootstrap = if text == "-" {
        // From stdin: then the state is not in the process list, where
        // another local user could read it and race the browser with a
        // callback of their own.
        if std::io::stdin().is_terminal() {
            eprintln!("Paste the bootstrap string (tvboot1.…) and press Enter:");
        }
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the bootstrap string from stdin")?;
        Bootstrap::parse(&line)?
    } else {
        Bootstrap::parse(text)?
    };
    let redirect =
        Url::parse(&bootstrap.redirect_uri).context("the bootstrap string's redirect URI")?;
    let listen = listen_address(args.listen, &redirect)?;
    let auth_url =
        Url::parse(&bootstrap.authorize_url).context("the bootstrap string's authorize URL")?;
    eprintln!(
        "Authorizing `{}` ({}) for a token-vault host. The host keeps the client secret and the PKCE \
         verifier and will make the tokens itself; this machine only catches the one-time code. \
         The host waits until {}.",
        sanitize(&bootstrap.name),
        bootstrap.provider,
        sanitize(&bootstrap.expires_at)
    );
    // Bound before the browser opens, as in every run.
    let listener = Listener::bind(listen)?;
    let code = Wait {
        listen,
        callback_path: redirect.path().to_string(),
        open_browser: !args.no_browser,
        paste_back: args.no_browser,
        timeout: Duration::from_secs(args.timeout),
    }
    .for_code(listener, &auth_url, &bootstrap.state)?;
    let line = BootstrapResponse {
        code,
        state: bootstrap.state,
    }
    .encode();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("cannot write the response line to stdout")?;
    out.flush()
        .context("cannot write the response line to stdout")?;
    eprintln!(
        "\nPaste the line above into the waiting `token-vault authorize` on the host and press Enter. \
         It holds only the one-time code and the state, and works once; the host exchanges it \
         with its own secret and verifier."
    );
    Ok(())
}

/// Where to listen: the redirect URI's port on loopback, unless `--listen`
/// names another loopback address with that same port.
fn listen_address(given: SocketAddr, redirect: &Url) -> anyhow::Result<SocketAddr> {
    let Some(port) = redirect.port_or_known_default() else {
        bail!("the bootstrap string's redirect URI has no port");
    };
    let default: SocketAddr = DEFAULT_LISTEN
        .parse()
        .expect("the default listen address parses");
    if given.port() == port {
        if !given.ip().is_loopback() {
            bail!("--listen {given} is not a loopback address");
        }
        return Ok(given);
    }
    if given == default {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    bail!(
        "--listen {given} does not use the port of the redirect URI the host chose ({redirect}); \
         leave --listen out, or give a loopback address with port {port}"
    )
}

/// Text from the bootstrap string made safe for the terminal.
fn sanitize(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_follows_the_redirect() {
        let default: SocketAddr = DEFAULT_LISTEN.parse().unwrap();
        let r = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            listen_address(default, &r("http://127.0.0.1:53682/")).unwrap(),
            default
        );
        assert_eq!(
            listen_address(default, &r("http://localhost:4000/")).unwrap(),
            "127.0.0.1:4000".parse().unwrap()
        );
        assert_eq!(
            listen_address("[::1]:4000".parse().unwrap(), &r("http://localhost:4000/")).unwrap(),
            "[::1]:4000".parse().unwrap()
        );
        assert!(listen_address(
            "127.0.0.1:5000".parse().unwrap(),
            &r("http://127.0.0.1:4000/")
        )
        .is_err());
    }
}
