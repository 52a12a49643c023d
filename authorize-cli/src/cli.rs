//! The command line of `oauth-authorize`, as `spec/interface.md` gives it.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the loopback listener binds by default: rclone's port, so apps
/// already registered for `rclone authorize` work unchanged.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:53682";

#[derive(Debug, Parser)]
#[command(
    name = "oauth-authorize",
    version,
    about = "Authorize an OAuth 2.0 app in this machine's browser and print the token blob for a headless host",
    long_about = "Runs the OAuth 2.0 authorization-code flow on a workstation with a browser: \
        it listens on 127.0.0.1:53682, opens the browser at the provider's consent page, \
        checks the redirect's state, exchanges the code (with PKCE where the provider takes it) \
        and prints the token blob as one line of JSON on stdout. The blob is the one \
        `rclone authorize` prints, so it pastes into `token-vault import`, rclone, Pluton and the like.\n\n\
        Instructions go to stderr, so `oauth-authorize box > token.json` works.",
    after_help = "Examples:\n  \
        OAUTH_CLIENT_ID=abc oauth-authorize box --client-secret-file ~/box.secret > box.json\n  \
        oauth-authorize dropbox --client-secret-file dbx.secret --redirect-url http://localhost:53682/\n  \
        oauth-authorize box --no-browser     # over ssh -L 53682:127.0.0.1:53682, or paste the final URL back\n  \
        oauth-authorize box --client-credentials --param box_subject_type=enterprise --param box_subject_id=123\n  \
        oauth-authorize completions bash > /etc/bash_completion.d/oauth-authorize",
    // `completions` is the only subcommand; a PROVIDER given first rules it out, so
    // `oauth-authorize box …` parses exactly as it always did.
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    disable_help_subcommand = true
)]
pub struct Args {
    /// The provider: box, dropbox, drive, onedrive, or custom (with --auth-url and --token-url).
    // Required unless a subcommand is given; `None` only then.
    #[arg(required_unless_present = "bootstrap")]
    pub provider: Option<String>,

    /// The app's client id. Also read from OAUTH_CLIENT_ID.
    #[arg(env = "OAUTH_CLIENT_ID")]
    pub client_id: Option<String>,

    /// The app's client secret. WARNING: an argument is visible to every local user in the
    /// process list; prefer OAUTH_CLIENT_SECRET or --client-secret-file.
    pub client_secret: Option<String>,

    /// Read the client secret from this file (surrounding whitespace is ignored).
    #[arg(long, value_name = "FILE")]
    pub client_secret_file: Option<PathBuf>,

    /// Override the provider's authorize endpoint (required for custom).
    #[arg(long, value_name = "URL")]
    pub auth_url: Option<String>,

    /// Override the provider's token endpoint (required for custom).
    #[arg(long, value_name = "URL")]
    pub token_url: Option<String>,

    /// A scope to request; repeatable. Default: the provider's usual scopes.
    #[arg(long = "scope", value_name = "S")]
    pub scopes: Vec<String>,

    /// Where the loopback listener binds. Loopback addresses only.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// The redirect URI sent to the provider; must point at the listener.
    /// Default: http://<listen address>/. Use http://localhost:53682/ for apps registered that way.
    #[arg(long, value_name = "URL")]
    pub redirect_url: Option<String>,

    /// Print the URL instead of opening a browser (for `ssh -L 53682:127.0.0.1:53682`). You can
    /// also paste the URL the browser ended on into this terminal, when no tunnel is possible.
    #[arg(long)]
    pub no_browser: bool,

    /// Give up after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,

    /// Write the blob to FILE (mode 0600) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Wrap the blob in rclone's "Paste the following…" / "<---End paste" lines.
    #[arg(long)]
    pub rclone: bool,

    /// Proxy for the token request. HTTPS_PROXY is honoured anyway.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,

    /// Use the client-credentials grant (no browser, no user); see --param.
    #[arg(long)]
    pub client_credentials: bool,

    /// An extra KEY=VALUE parameter: sent to the token endpoint with --client-credentials
    /// (e.g. Box's box_subject_type and box_subject_id), added to the authorize URL otherwise.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,

    /// The connection name to use in the suggested `token-vault import` command.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Bootstrap mode: run the browser half of an authorization that `token-vault authorize`
    /// started on a headless host (it prints this whole command), then print one line, the
    /// code and the state, to paste back there. Nothing is exchanged here, and no client id
    /// or secret is needed: the host keeps them and makes the tokens itself. `--bootstrap -`
    /// reads the string from stdin instead, which keeps its state out of the process list
    /// on a workstation shared with other users.
    #[arg(
        long,
        value_name = "STRING",
        conflicts_with_all = ["provider", "client_credentials", "seal_to", "rclone", "output", "auth_url", "token_url", "redirect_url"]
    )]
    pub bootstrap: Option<String>,

    /// Print the blob sealed to this vault recipient (what `token-vault recipient` prints,
    /// tvr1.…) instead of the plain JSON: a `tvsealed1.…` line that only that vault can
    /// open, safe to paste anywhere. `token-vault import` opens it.
    #[arg(long, value_name = "RECIPIENT", conflicts_with = "rclone")]
    pub seal_to: Option<String>,

    #[command(subcommand)]
    pub command: Option<Tool>,
}

/// What `oauth-authorize` does besides authorizing.
#[derive(Debug, Subcommand)]
pub enum Tool {
    /// Print a shell completion script.
    #[command(after_help = "Examples:\n  \
        oauth-authorize completions bash > /etc/bash_completion.d/oauth-authorize\n  \
        oauth-authorize completions zsh > /usr/local/share/zsh/site-functions/_oauth-authorize\n  \
        oauth-authorize completions fish > ~/.config/fish/completions/oauth-authorize.fish")]
    Completions {
        /// The shell to complete for.
        #[arg(value_name = "SHELL", value_enum)]
        shell: clap_complete::Shell,
    },
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE".to_string()),
    }
}
