//! The command line of `token-vault`, as `spec/interface.md` gives it.
//!
//! Invariant: no option ever carries a secret. The client secret comes from
//! a file or the environment, the blob from stdin, so nothing secret shows
//! up in the process list.

use clap::{Args, Parser, Subcommand, ValueEnum};
use shared::api::valid_connection_name;
use shared::ProviderKind;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "token-vault",
    version,
    about = "Keep OAuth tokens fresh on a headless host and hand them to local programs",
    long_about = "token-vault keeps OAuth 2.0 connections (Box, Dropbox, Google Drive, OneDrive, \
        or any OAuth server) in an encrypted store, refreshes their access tokens before they \
        expire, and serves them to local programs over a Unix socket.\n\n\
        `token-vault serve` is the daemon. Every other command is a client of its socket: \
        none of them reads the store itself. Results go to stdout, messages and errors to \
        stderr, and a failure exits non-zero, so `$(token-vault token NAME)` is never an \
        error text.\n\n\
        The socket is --socket, else $TOKEN_VAULT_SOCKET, else \
        $XDG_RUNTIME_DIR/token-vault/vault.sock, else /run/token-vault/vault.sock for root \
        (/tmp/token-vault-<uid>/vault.sock for others).",
    after_help = "Examples:\n  \
        token-vault serve --state-dir /var/lib/token-vault --key-file /etc/token-vault/vault.key\n  \
        token-vault import box --provider box --client-id ID --client-secret-file box.secret < box.json\n  \
        oauth-authorize box | ssh server token-vault import box --provider box --client-id ID\n  \
        token-vault list\n  \
        token-vault put report.pdf box:/Documents/ && token-vault ls box:/Documents\n  \
        curl -H \"Authorization: Bearer $(token-vault token box)\" https://api.box.com/2.0/users/me"
)]
pub struct Cli {
    /// The daemon's Unix socket. Default: $TOKEN_VAULT_SOCKET, else
    /// $XDG_RUNTIME_DIR/token-vault/vault.sock, else /run/token-vault/vault.sock for root,
    /// else /tmp/token-vault-<uid>/vault.sock.
    // TOKEN_VAULT_SOCKET is read by `paths::default_socket`, not by clap, so
    // that an empty value means "unset" rather than a usage error.
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: hold the store, refresh tokens, serve the socket.
    #[command(
        long_about = "Runs the daemon until SIGTERM or SIGINT. It loads the encrypted store from \
            the state directory, refreshes every connection before its access token expires \
            (one refresh per connection at a time, each new token durably on disk before \
            anyone gets it), and answers the other commands over the Unix socket.\n\n\
            The key file holds exactly 32 raw random bytes and must be mode 0600; any other \
            size or mode is refused. Create one with:\n\n    \
            (umask 077; head -c 32 /dev/urandom > vault.key)",
        after_help = "Examples:\n  \
            token-vault serve --state-dir /var/lib/token-vault --key-file /etc/token-vault/vault.key\n  \
            token-vault serve --log-format json --refresh-margin 10m"
    )]
    Serve(ServeArgs),

    /// Import a token blob (read from stdin) as connection NAME.
    #[command(
        long_about = "Reads a token blob on stdin, checks it, and stores it in the vault as \
            connection NAME. Any paste form works: the one-line JSON printed by \
            `oauth-authorize` or `rclone authorize`, with or without rclone's \
            \"Paste the following…\" / \"<---End paste\" lines, wrapped over several lines by \
            the terminal, or rclone's base64 config string; or a sealed blob (tvsealed1.…, from \
            `oauth-authorize … --seal-to $(token-vault recipient)`), which the daemon opens with \
            its recipient key. On a terminal, paste it and press Ctrl-D.\n\n\
            The blob is checked here first, so a bad paste is refused before anything is sent.\n\n\
            The client secret (needed to refresh) is read from --client-secret-file, or from \
            $TOKEN_VAULT_CLIENT_SECRET, or from $OAUTH_CLIENT_SECRET; never from the command \
            line, where every local user could read it in the process list.\n\n\
            Only the daemon's own uid and root may import.",
        after_help = "Examples:\n  \
            token-vault import box --provider box --client-id abc --client-secret-file box.secret < box.json\n  \
            oauth-authorize dropbox | ssh host token-vault import dbx --provider dropbox --client-id ID\n  \
            token-vault import box --replace < new-box.json     # after `needs-reauth`\n  \
            token-vault import shared --provider box --client-id ID --allow-gid 1001 --root /Backups < blob.json"
    )]
    Import(ImportArgs),

    /// Authorize connection NAME from this host: bootstrap mode, or the device grant.
    #[command(
        long_about = "Authorizes connection NAME without a refresh token ever crossing a \
            terminal: the daemon makes the state and the PKCE verifier, keeps them with the \
            client secret, and exchanges the code itself, so the tokens are born on this host.\n\n\
            Bootstrap mode (the default): prints one line to run on a machine with a browser, \
            `oauth-authorize --bootstrap '…'` (on stdout), then waits for the one line that \
            command prints back: paste it here and press Enter. The bootstrap string holds \
            the authorize URL only, never the client secret or the verifier. It works once and \
            expires after --ttl (10 minutes).\n\n\
            --device: the device grant (RFC 8628), for providers that have it (drive, \
            onedrive): prints a URL and a code to enter there from any browser; the daemon \
            polls the provider until the user approves. No workstation command at all.\n\n\
            The options are those of `import`; the client secret comes from \
            --client-secret-file or the environment, never the command line. Only the \
            daemon's own uid and root may authorize.",
        after_help = "Examples:\n  \
            token-vault authorize box --provider box --client-id ID --client-secret-file box.secret\n  \
            token-vault authorize dbx --provider dropbox --client-id ID --redirect-url http://localhost:53682/\n  \
            token-vault authorize od --provider onedrive --client-id ID --device\n  \
            token-vault authorize box --replace        # after `needs-reauth`: same settings"
    )]
    Authorize(crate::commands::authorize::AuthorizeArgs),

    /// Print this vault's public key, for `oauth-authorize … --seal-to`.
    #[command(
        long_about = "Prints the vault's recipient: its X25519 public key as one short string \
            (tvr1.…). On the workstation, `oauth-authorize PROVIDER … --seal-to RECIPIENT` then \
            prints a sealed blob (tvsealed1.…) that only this vault can open, safe to paste \
            anywhere; `token-vault import` opens it. The private key is made on first use, \
            as recipient.key (mode 0600) in the state directory: back it up with the vault key.",
        after_help = "Examples:\n  \
            token-vault recipient\n  \
            oauth-authorize box --client-secret-file box.secret --seal-to tvr1.…   # on the workstation"
    )]
    Recipient,

    /// List the connections with their state and expiry (never a secret).
    #[command(
        long_about = "Lists every connection: its provider, its state (ok, refreshing, backoff, \
            needs-reauth, corrupt), when its access token expires, when it was last refreshed, \
            and the last error. For a connection that needs attention, the command that fixes \
            it is printed under the table. Never prints a secret.",
        after_help = "Examples:\n  \
            token-vault list\n  \
            token-vault list --json | jq -r '.connections[] | select(.state != \"ok\") | .name'"
    )]
    List(ListArgs),

    /// Show one connection in detail.
    #[command(after_help = "Examples:\n  \
            token-vault status box\n  \
            token-vault status box --json | jq .expiry")]
    Status(StatusArgs),

    /// Call the provider's who-am-I endpoint with the connection's token and print the account.
    #[command(after_help = "Examples:\n  token-vault test box")]
    Test(NameArgs),

    /// Print a fresh access token, for scripts.
    #[command(
        long_about = "Prints a valid access token for connection NAME and a newline, nothing \
            else, on stdout; waits for a refresh if the current token has expired. On failure \
            nothing goes to stdout and the exit status is non-zero.\n\n\
            Callers must be in the connection's ACL (by default, the daemon's own uid).",
        after_help = "Examples:\n  \
            curl -H \"Authorization: Bearer $(token-vault token box)\" https://api.box.com/2.0/users/me\n  \
            token-vault token box --json     # {\"access_token\":…,\"token_type\":…,\"expiry\":…}\n  \
            token-vault token box --rejected # the last token got a 401: ask for a new one"
    )]
    Token(TokenArgs),

    /// Force a refresh now and print the new expiry.
    #[command(after_help = "Examples:\n  token-vault refresh box")]
    Refresh(NameArgs),

    /// Delete a connection, optionally revoking its tokens upstream first.
    #[command(
        long_about = "Deletes connection NAME from the vault. With --revoke, the daemon first asks \
            the provider to revoke the tokens; if that fails the connection is still removed and \
            the failure is reported as a warning.",
        after_help = "Examples:\n  \
            token-vault remove old-box\n  \
            token-vault remove old-box --revoke"
    )]
    Remove(RemoveArgs),

    /// List a folder of a connection's account.
    #[command(
        long_about = "Lists the folder PATH of connection NAME (relative to the connection's root \
            folder, if it has one), one entry per line: the type (d folder, - file, l web link), \
            the size, the last modification in local time, and the name. Folders come first, \
            then everything else, each sorted by name.\n\n\
            With --json, prints the entries as a JSON array of \
            {\"name\",\"type\",\"size\",\"modified\",\"id\",\"hash\"} objects, in the \
            daemon's order.",
        after_help = "Examples:\n  \
            token-vault ls box:                # the root folder\n  \
            token-vault ls box:/Documents\n  \
            token-vault ls dbx:/Photos --json | jq -r '.[] | select(.type == \"file\") | .name'"
    )]
    Ls(LsArgs),

    /// Upload a local file (or stdin) to a connection's account.
    #[command(
        long_about = "Uploads LOCAL to PATH of connection NAME. If PATH ends with '/', the file \
            keeps its local name inside that folder. An existing file at PATH is replaced (a \
            new version on Box, an overwrite on Dropbox).\n\n\
            LOCAL '-' reads stdin. The daemon needs the size before the first byte, so stdin is \
            first copied to an unnamed temporary file in $TMPDIR (which must have room for it), \
            then uploaded; PATH must then name the file.\n\n\
            The file is streamed, never held in memory. On a terminal a progress bar is shown \
            on stderr, unless --quiet. The result is one line on stdout.",
        after_help = "Examples:\n  \
            token-vault put report.pdf box:/Documents/           # -> /Documents/report.pdf\n  \
            token-vault put report.pdf box:/Documents/2025.pdf\n  \
            tar czf - /etc | token-vault put - dbx:/Backups/etc.tar.gz"
    )]
    Put(PutArgs),

    /// Download a file from a connection's account to a local file (or stdout).
    #[command(
        long_about = "Downloads PATH of connection NAME to LOCAL. If LOCAL is an existing \
            directory, the file keeps its remote name inside it; an existing file at LOCAL is \
            replaced.\n\n\
            The download goes to a temporary file beside LOCAL, which is renamed into place only \
            once every byte has arrived: an interrupted or failed download never leaves a \
            partial file under LOCAL's name. LOCAL '-' writes to stdout instead.\n\n\
            The body is streamed, never held in memory. On a terminal a progress bar is shown \
            on stderr, unless --quiet.",
        after_help = "Examples:\n  \
            token-vault get box:/Documents/report.pdf .\n  \
            token-vault get box:/Documents/report.pdf /tmp/r.pdf\n  \
            token-vault get dbx:/Backups/etc.tar.gz - | tar tzf -"
    )]
    Get(GetArgs),

    /// Create a folder in a connection's account, parents included.
    #[command(
        long_about = "Creates the folder PATH of connection NAME, and any missing parents. A \
            folder that already exists is not an error: the result line says so.",
        after_help = "Examples:\n  \
            token-vault mkdir box:/Backups/2025/01"
    )]
    Mkdir(MkdirArgs),

    /// Delete a file or folder in a connection's account.
    #[command(
        long_about = "Deletes the file or folder PATH of connection NAME. A folder that is not \
            empty is refused unless --recursive is given. What a delete means is the \
            provider's: Box and Dropbox move the item to the trash, where it can be restored \
            for a while.",
        after_help = "Examples:\n  \
            token-vault rm box:/Documents/old.pdf\n  \
            token-vault rm box:/Backups/2019 --recursive"
    )]
    Rm(RmArgs),

    /// Run a command with a connection's access token in its environment.
    #[command(
        long_about = "Fetches a fresh access token for connection NAME and runs CMD with it in \
            its environment: ACCESS_TOKEN holds the token, ACCESS_TOKEN_EXPIRY its expiry in \
            RFC 3339 (empty if it has none). The token is never put on a command line, where \
            every local user could read it in the process list.\n\n\
            CMD replaces token-vault, so the exit status is CMD's own. If CMD cannot be run, \
            the exit status is 127 (not found) or 126 (not executable), as in a shell.\n\n\
            The token is fetched once, at start: a command that outlives the token should ask \
            again with `token-vault token NAME`.",
        after_help = "Examples:\n  \
            token-vault exec box -- sh -c 'curl -H \"Authorization: Bearer $ACCESS_TOKEN\" https://api.box.com/2.0/users/me'\n  \
            token-vault exec gdrive -- python3 backup.py --since yesterday"
    )]
    Exec(ExecArgs),

    /// Print a shell completion script.
    #[command(after_help = "Examples:\n  \
            token-vault completions bash > /etc/bash_completion.d/token-vault\n  \
            token-vault completions zsh > /usr/local/share/zsh/site-functions/_token-vault\n  \
            token-vault completions fish > ~/.config/fish/completions/token-vault.fish")]
    Completions(CompletionsArgs),
}

/// The daemon's options. Durations take humantime forms: `90s`, `10m`, `1h 30m`, `30days`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Where the encrypted store lives (made 0700). Default: $STATE_DIRECTORY (systemd),
    /// else /var/lib/token-vault for root, else $XDG_STATE_HOME/token-vault or
    /// ~/.local/state/token-vault.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// The store's key: exactly 32 raw random bytes, mode 0600
    /// (`(umask 077; head -c 32 /dev/urandom > vault.key)`). Default: token-vault.key in
    /// $CREDENTIALS_DIRECTORY (systemd LoadCredential=), else vault.key in the state
    /// directory, created on first start.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// A configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// How many refreshes may run at once, across all connections. [default: 8]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(usize))]
    pub max_concurrent_refreshes: Option<usize>,

    /// How many provider requests (listing, parts, downloads) may be in flight per
    /// connection; keeps one busy connection under the provider's rate limits. A download
    /// counts for as long as it streams, so with 1 a client that streams a download of a
    /// connection into an upload to the same connection waits for ever. [default: 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(usize))]
    pub max_requests_per_connection: Option<usize>,

    /// Threads that run the daemon's work: socket clients, refreshes, transfers. Its work
    /// is mostly waiting on sockets, which one thread does best (a download relayed with a
    /// quarter less CPU than with two); raise it for many large transfers at once on a
    /// host with cores to spare. [default: 1]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=i64::from(crate::config::MAX_WORKER_THREADS)))]
    pub worker_threads: Option<u16>,

    /// Give up an upload whose client sends nothing for this long (its provider session is
    /// aborted, nothing is committed): a stopped client must not hold a connection slot and
    /// an upload session for ever. Every byte restarts it. [default: 1m]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub upload_idle_timeout: Option<Duration>,

    /// Refresh a connection at least this often even if its access token does not expire,
    /// so providers that expire idle refresh tokens keep them alive. [default: 30days]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub keepalive: Option<Duration>,

    /// Refresh this long before an access token expires. Default: a policy based on the
    /// token's lifetime.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub refresh_margin: Option<Duration>,

    /// The first retry delay after a transient refresh failure (network, 5xx, 429);
    /// it doubles, with jitter, on each failure. [default: 5s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub backoff_min: Option<Duration>,

    /// The longest retry delay after transient refresh failures. [default: 10m]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub backoff_max: Option<Duration>,

    /// The shortest time between two refreshes forced by `token --rejected` (a 401 seen by
    /// a client) on one connection. [default: 30s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub cooldown: Option<Duration>,

    /// How long a token request waits for an in-flight refresh before it fails with 503.
    /// [default: 30s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub token_wait: Option<Duration>,

    /// Run this shell command on every event (refreshed, refresh-failing, needs-reauth,
    /// corrupt, refresh-token-aging, imported, removed), with TOKEN_VAULT_CONNECTION,
    /// TOKEN_VAULT_EVENT and TOKEN_VAULT_DETAIL in its environment. Never given a secret.
    #[arg(long, value_name = "CMD")]
    pub on_event: Option<String>,

    /// How long an event hook may run before it is killed. [default: 30s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub hook_timeout: Option<Duration>,

    /// Fire `refresh-failing` after this many consecutive transient refresh failures.
    /// [default: 3]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32))]
    pub refresh_failing_after: Option<u32>,

    /// Fire `refresh-token-aging` when a rotating provider's refresh token is older than
    /// this and the last refresh failed (Box's die after 60 days). [default: 45days]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub refresh_token_aging: Option<Duration>,

    /// Where records live: `file` (the state directory, the default) or a shared etcd
    /// cluster, `etcd://h1:2379,h2:2379`, for several vaults serving the same accounts.
    /// Every vault sharing a store needs the same --key-file.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,

    /// The key prefix in etcd. [default: /token-vault/]
    #[arg(long, value_name = "PREFIX")]
    pub store_prefix: Option<String>,

    /// The lease of an etcd refresh lock: how soon another vault takes over when the
    /// holder dies mid-refresh. [default: 15s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub store_lock_ttl: Option<Duration>,

    /// The log format on stderr. [default: human]
    #[arg(long, value_name = "FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Give the socket and its directory to this group (a name or a gid), and open the
    /// directory to it (0710), so the group's members can reach the socket. The daemon's
    /// user must be a member (systemd: SupplementaryGroups=). Default: the daemon's own
    /// group, with the directory 0700.
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,

    /// The socket's mode, in octal; never with bits for others. [default: 0660]
    #[arg(long, value_name = "MODE", value_parser = crate::socket::parse_mode)]
    pub socket_mode: Option<u32>,
}

/// How the daemon writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// The connection's name: 1-64 of A-Z a-z 0-9 . _ -, not starting with . or -.
    #[arg(value_name = "NAME", value_parser = parse_name)]
    pub name: String,

    /// The provider: box, dropbox, drive, onedrive, or custom (with --auth-url and
    /// --token-url). Required unless --replace.
    #[arg(long, value_name = "P", value_parser = parse_provider, required_unless_present = "replace")]
    pub provider: Option<ProviderKind>,

    /// The OAuth app's client id (the one the blob was authorized with).
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,

    /// Read the client secret from this file (surrounding whitespace is ignored). Otherwise
    /// it comes from $TOKEN_VAULT_CLIENT_SECRET or $OAUTH_CLIENT_SECRET. There is no option
    /// for the secret itself: arguments are visible to every local user.
    #[arg(long, value_name = "F")]
    pub client_secret_file: Option<PathBuf>,

    /// Override the provider's authorize endpoint (required for custom).
    #[arg(long, value_name = "U")]
    pub auth_url: Option<String>,

    /// Override the provider's token endpoint (required for custom).
    #[arg(long, value_name = "U")]
    pub token_url: Option<String>,

    /// Override the provider's token revocation endpoint.
    #[arg(long, value_name = "U")]
    pub revoke_url: Option<String>,

    /// Override the provider's API base, e.g. https://api.box.com/2.0.
    #[arg(long, value_name = "U")]
    pub api_url: Option<String>,

    /// Override the provider's upload or content base, e.g. https://upload.box.com/api/2.0.
    #[arg(long, value_name = "U")]
    pub upload_url: Option<String>,

    /// Confine file operations to this folder of the account.
    #[arg(long, value_name = "FOLDER")]
    pub root: Option<String>,

    /// Allow this uid to use the connection; repeatable. Default: the daemon's own uid
    /// (on --replace: keep the old ACL).
    #[arg(long = "allow-uid", value_name = "N")]
    pub allow_uids: Vec<u32>,

    /// Allow this gid to use the connection; repeatable.
    #[arg(long = "allow-gid", value_name = "N")]
    pub allow_gids: Vec<u32>,

    /// Box: files larger than this go through chunked upload sessions (default 50MB,
    /// Box's limit for one request, which also caps this; files under 20MB, the least
    /// Box takes in a session, always go in one request). Sizes take K/M/G (powers of
    /// 1024) or KB/MB/GB suffixes.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub upload_cutoff: Option<u64>,

    /// Dropbox: the upload chunk size for large files (default 48MiB, at most 150MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub chunk_size: Option<u64>,

    /// Replace an existing connection (e.g. after `needs-reauth`), keeping its provider,
    /// client, endpoints and ACL unless given again.
    #[arg(long)]
    pub replace: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// The connection's name.
    #[arg(value_name = "NAME", value_parser = parse_name)]
    pub name: String,

    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct NameArgs {
    /// The connection's name.
    #[arg(value_name = "NAME", value_parser = parse_name)]
    pub name: String,
}

#[derive(Args, Debug, Clone)]
pub struct TokenArgs {
    /// The connection's name.
    #[arg(value_name = "NAME", value_parser = parse_name)]
    pub name: String,

    /// Print {"access_token","token_type","expiry"} as JSON instead of the bare token.
    #[arg(long)]
    pub json: bool,

    /// The token you had was just rejected with a 401: the vault may refresh early
    /// (rate-limited by the daemon's --cooldown).
    #[arg(long)]
    pub rejected: bool,
}

#[derive(Args, Debug, Clone)]
pub struct RemoveArgs {
    /// The connection's name.
    #[arg(value_name = "NAME", value_parser = parse_name)]
    pub name: String,

    /// Ask the provider to revoke the tokens before deleting.
    #[arg(long)]
    pub revoke: bool,
}

/// `NAME:PATH`: a path inside connection NAME, relative to its root folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePath {
    /// The connection's name, checked with [`valid_connection_name`].
    pub name: String,
    /// The path as given, starting with '/'; `/` is the root. The daemon
    /// normalises it and refuses `..` and the like.
    pub path: String,
}

impl std::fmt::Display for RemotePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.path)
    }
}

impl std::str::FromStr for RemotePath {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_remote(s)
    }
}

/// Parses `NAME:PATH`. `NAME:` alone is the root; a path without a leading
/// '/' gets one. The name is split off at the first ':' (a name has none).
pub fn parse_remote(s: &str) -> Result<RemotePath, String> {
    const FORM: &str = "expected NAME:PATH, e.g. box:/Documents/report.pdf (box: alone is the \
        connection's root folder)";
    let Some((name, path)) = s.split_once(':') else {
        return Err(format!("no ':' in {s:?}: {FORM}"));
    };
    if name.is_empty() {
        return Err(format!("no connection name before ':' in {s:?}: {FORM}"));
    }
    if !valid_connection_name(name) {
        return Err(format!(
            "{name:?} is not a connection name (1-64 of A-Z a-z 0-9 . _ -, not starting \
             with . or -): {FORM}"
        ));
    }
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    Ok(RemotePath {
        name: name.to_string(),
        path,
    })
}

#[derive(Args, Debug, Clone)]
pub struct LsArgs {
    /// The folder, as NAME:PATH; NAME: alone is the connection's root folder.
    #[arg(value_name = "NAME:PATH", value_parser = parse_remote)]
    pub remote: RemotePath,

    /// Print the entries as a JSON array.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct PutArgs {
    /// The local file to upload, or '-' for stdin.
    #[arg(value_name = "LOCAL")]
    pub local: PathBuf,

    /// Where to put it, as NAME:PATH; a PATH ending in '/' is a folder, and the file keeps
    /// its local name.
    #[arg(value_name = "NAME:PATH", value_parser = parse_remote)]
    pub remote: RemotePath,

    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone)]
pub struct GetArgs {
    /// The file to download, as NAME:PATH.
    #[arg(value_name = "NAME:PATH", value_parser = parse_remote)]
    pub remote: RemotePath,

    /// The local file to write, an existing directory to write into (keeping the remote
    /// name), or '-' for stdout.
    #[arg(value_name = "LOCAL")]
    pub local: PathBuf,

    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone)]
pub struct MkdirArgs {
    /// The folder to create, as NAME:PATH.
    #[arg(value_name = "NAME:PATH", value_parser = parse_remote)]
    pub remote: RemotePath,
}

#[derive(Args, Debug, Clone)]
pub struct RmArgs {
    /// The file or folder to delete, as NAME:PATH.
    #[arg(value_name = "NAME:PATH", value_parser = parse_remote)]
    pub remote: RemotePath,

    /// Delete a folder and everything in it.
    #[arg(long, short)]
    pub recursive: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// The connection's name.
    #[arg(value_name = "NAME", value_parser = parse_name)]
    pub name: String,

    /// The command to run, and its arguments (after `--`).
    #[arg(
        value_name = "CMD",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_hint = clap::ValueHint::CommandWithArguments
    )]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Args, Debug, Clone)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_name = "SHELL", value_enum)]
    pub shell: clap_complete::Shell,
}

/// Checks a connection name as the daemon does.
pub fn parse_name(s: &str) -> Result<String, String> {
    if valid_connection_name(s) {
        Ok(s.to_string())
    } else {
        Err("a connection name is 1-64 of A-Z a-z 0-9 . _ -, not starting with . or -".into())
    }
}

fn parse_provider(s: &str) -> Result<ProviderKind, String> {
    s.parse().map_err(|e: shared::ProviderError| e.to_string())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; expected a duration such as 90s, 10m, 1h 30m or 30days"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("token-vault").chain(args.iter().copied()))
    }

    #[test]
    fn command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_defaults() {
        let Command::Serve(a) = parse(&["serve"]).unwrap().command else {
            panic!("not serve")
        };
        // Unset flags stay unset, so the config file (then the default) decides:
        // see `config::Settings::resolve` for the defaults.
        assert_eq!(a.max_concurrent_refreshes, None);
        assert_eq!(a.worker_threads, None);
        assert_eq!(a.keepalive, None);
        assert_eq!(a.refresh_margin, None);
        assert_eq!(a.backoff_min, None);
        assert_eq!(a.log_format, None);
        assert!(a.state_dir.is_none() && a.key_file.is_none() && a.config.is_none());
    }

    #[test]
    fn serve_options() {
        let cli = parse(&[
            "--socket",
            "/s",
            "serve",
            "--refresh-margin",
            "1h 30m",
            "--log-format",
            "json",
            "--max-concurrent-refreshes",
            "2",
            "--worker-threads",
            "3",
        ])
        .unwrap();
        assert_eq!(cli.socket, Some(PathBuf::from("/s")));
        let Command::Serve(a) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(a.refresh_margin, Some(Duration::from_secs(5400)));
        assert_eq!(a.log_format, Some(LogFormat::Json));
        assert_eq!(a.max_concurrent_refreshes, Some(2));
        assert_eq!(a.worker_threads, Some(3));
        assert!(parse(&["serve", "--cooldown", "soon"]).is_err());
        assert!(parse(&["serve", "--worker-threads", "0"]).is_err());
    }

    #[test]
    fn import_options() {
        let cli = parse(&[
            "import",
            "box",
            "--provider",
            "Box",
            "--allow-uid",
            "1",
            "--allow-uid",
            "2",
            "--allow-gid",
            "3",
            "--socket",
            "/s",
        ])
        .unwrap();
        assert_eq!(cli.socket, Some(PathBuf::from("/s")));
        let Command::Import(a) = cli.command else {
            panic!("not import")
        };
        assert_eq!(a.provider, Some(ProviderKind::Box));
        assert_eq!(a.allow_uids, vec![1, 2]);
        assert_eq!(a.allow_gids, vec![3]);
        assert!(!a.replace);

        // --provider is required unless --replace.
        assert!(parse(&["import", "box"]).is_err());
        assert!(parse(&["import", "box", "--replace"]).is_ok());
        // Unknown providers and bad names are refused.
        assert!(parse(&["import", "box", "--provider", "nope"]).is_err());
        assert!(parse(&["import", "../x", "--provider", "box"]).is_err());
        // There is no way to pass a secret on the command line.
        assert!(parse(&["import", "box", "--provider", "box", "--client-secret", "s"]).is_err());
        assert!(parse(&["import", "box", "--provider", "box", "secret"]).is_err());
    }

    #[test]
    fn client_commands() {
        let Command::Token(t) = parse(&["token", "box", "--json", "--rejected"])
            .unwrap()
            .command
        else {
            panic!("not token")
        };
        assert!(t.json && t.rejected && t.name == "box");
        assert!(matches!(
            parse(&["remove", "box", "--revoke"]).unwrap().command,
            Command::Remove(RemoveArgs { revoke: true, .. })
        ));
        assert!(matches!(
            parse(&["list", "--json"]).unwrap().command,
            Command::List(ListArgs { json: true })
        ));
        assert!(parse(&["status"]).is_err());
        assert!(parse(&["token", "a/b"]).is_err());
    }

    #[test]
    fn remote_paths() {
        let r = |s: &str| parse_remote(s);
        let ok = |name: &str, path: &str| {
            Ok(RemotePath {
                name: name.into(),
                path: path.into(),
            })
        };
        assert_eq!(r("box:/a/b"), ok("box", "/a/b"));
        assert_eq!(r("box:"), ok("box", "/"));
        assert_eq!(r("box:/"), ok("box", "/"));
        assert_eq!(r("box:a/b"), ok("box", "/a/b"));
        assert_eq!(r("dbx-work.2:/x/"), ok("dbx-work.2", "/x/"));
        // Everything after the first ':' is the path, as given.
        assert_eq!(r("box:/a:b/../c"), ok("box", "/a:b/../c"));
        assert_eq!(r("box:/a b/é"), ok("box", "/a b/é"));
        assert_eq!(r("box:/Documents").unwrap().to_string(), "box:/Documents");

        let err = r("box").unwrap_err();
        assert!(err.contains("no ':'") && err.contains("NAME:PATH"), "{err}");
        let err = r("/tmp/file").unwrap_err();
        assert!(err.contains("expected NAME:PATH"), "{err}");
        let err = r(":/a").unwrap_err();
        assert!(err.contains("no connection name"), "{err}");
        for bad in ["a b:/x", ".box:/x", "-box:/x", "bo/x:/y", "é:/x"] {
            let err = r(bad).unwrap_err();
            assert!(err.contains("is not a connection name"), "{bad}: {err}");
        }
        assert!(r(&format!("{}:/x", "n".repeat(65))).is_err());
    }

    #[test]
    fn transfer_commands() {
        let Command::Ls(a) = parse(&["ls", "box:", "--json"]).unwrap().command else {
            panic!("not ls")
        };
        assert_eq!(a.remote.path, "/");
        assert!(a.json);

        let Command::Put(a) = parse(&["put", "-", "box:/a/f", "-q"]).unwrap().command else {
            panic!("not put")
        };
        assert_eq!(a.local, PathBuf::from("-"));
        assert_eq!(a.remote.name, "box");
        assert!(a.quiet);

        let Command::Get(a) = parse(&["get", "box:/a/f", "."]).unwrap().command else {
            panic!("not get")
        };
        assert_eq!(a.remote.path, "/a/f");
        assert_eq!(a.local, PathBuf::from("."));
        assert!(!a.quiet);

        assert!(matches!(
            parse(&["rm", "box:/a", "--recursive"]).unwrap().command,
            Command::Rm(RmArgs {
                recursive: true,
                ..
            })
        ));
        assert!(matches!(
            parse(&["mkdir", "box:/a/b"]).unwrap().command,
            Command::Mkdir(_)
        ));
        // The operands are in order: a local path where NAME:PATH belongs is refused.
        assert!(parse(&["get", "./f", "box:/a"]).is_err());
        assert!(parse(&["put", "box:/a"]).is_err());
        let err = parse(&["ls", "box"]).unwrap_err().to_string();
        assert!(err.contains("expected NAME:PATH"), "{err}");
    }
}

/// A byte size: `1048576`, `64K`, `50MiB`, `48M`, `1G`, `20MB` (decimal).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 50MiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit; use K, M, G (1024s) or KB, MB, GB"
            ))
        }
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("`{text}` is out of range"))
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("50MiB"), Ok(50 << 20));
        assert_eq!(super::parse_size("48M"), Ok(48 << 20));
        assert_eq!(super::parse_size("20MB"), Ok(20_000_000));
        assert_eq!(super::parse_size("1024"), Ok(1024));
        assert!(super::parse_size("0").is_err());
        assert!(super::parse_size("5 parsecs").is_err());
    }
}
