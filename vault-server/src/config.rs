//! `serve`'s settings: the defaults, the TOML config file, and the command
//! line, in that order of precedence (a flag beats the file, the file beats
//! the default).
//!
//! Invariant: a config file with a key this version does not know is an
//! error that names the key, never silently ignored: a typo in a refresh
//! policy must not go unnoticed for months.

use crate::cli::{LogFormat, ServeArgs};
use anyhow::Context;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The config file, as written. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub state_dir: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    /// The socket's mode, as an octal string such as "0660".
    pub socket_mode: Option<String>,
    pub socket_group: Option<String>,
    pub log_format: Option<LogFormat>,
    /// `file` or `etcd://h1:2379,h2:2379`.
    pub store: Option<String>,
    pub store_prefix: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub store_lock_ttl: Option<Duration>,
    #[serde(default)]
    pub refresh: RefreshSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub hooks: HooksSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshSection {
    #[serde(default, with = "humantime_serde")]
    pub margin: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub keepalive: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub backoff_min: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub backoff_max: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub cooldown: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub token_wait: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub max_concurrent_refreshes: Option<usize>,
    pub max_requests_per_connection: Option<usize>,
    pub worker_threads: Option<u16>,
    #[serde(default, with = "humantime_serde")]
    pub upload_idle_timeout: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksSection {
    pub on_event: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    pub refresh_failing_after: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub refresh_token_aging: Option<Duration>,
}

/// The daemon's async worker threads by default. Its work is waiting on
/// sockets: a transfer is a relay between a provider's connection and a
/// client's, and with one thread both ends run where the bytes are, with no
/// wakeups across threads. Measured on 2 cores (README, Performance): a
/// download relayed with a quarter less CPU than with two threads, and
/// token requests served as fast. One thread still relayed 760-960 MB/s in
/// the benchmark, beyond most hosts' uplinks; `--worker-threads` raises it
/// for many large transfers at once.
pub const DEFAULT_WORKER_THREADS: usize = 1;
/// The most worker threads one may ask for: far beyond any host's use for
/// them, and a bound on a typo's cost.
pub const MAX_WORKER_THREADS: u16 = 256;

/// The effective settings of one daemon.
#[derive(Debug, Clone)]
pub struct Settings {
    pub state_dir: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// An explicitly chosen socket (flag, environment, or file).
    pub socket: Option<PathBuf>,
    pub socket_mode: Option<u32>,
    pub socket_group: Option<String>,
    pub log_format: LogFormat,
    pub margin: Option<Duration>,
    pub keepalive: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub cooldown: Duration,
    pub token_wait: Duration,
    pub max_concurrent_refreshes: usize,
    pub max_requests_per_connection: usize,
    /// The async runtime's worker threads (at least 1).
    pub worker_threads: usize,
    /// How long an upload waits for the next byte of its client's body.
    pub upload_idle_timeout: Duration,
    pub on_event: Option<String>,
    pub hook_timeout: Duration,
    pub refresh_failing_after: u32,
    pub refresh_token_aging: Duration,
    /// etcd endpoints, when the store is shared.
    pub etcd: Option<Vec<String>>,
    pub store_prefix: String,
    pub store_lock_ttl: Duration,
}

/// Reads and checks a config file.
pub fn read(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    // toml's message names an unknown key and where it is.
    toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("config file {}: {}", path.display(), e.to_string().trim()))
}

impl Settings {
    /// Combines the flags (and `socket_flag`, the global `--socket`), the
    /// environment's `TOKEN_VAULT_SOCKET`, the file, and the defaults.
    pub fn resolve(
        args: &ServeArgs,
        socket_flag: Option<&Path>,
        file: ConfigFile,
    ) -> anyhow::Result<Settings> {
        let env_socket = std::env::var_os("TOKEN_VAULT_SOCKET")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        let socket_mode = match file.socket_mode.as_deref() {
            Some(m) => Some(
                crate::socket::parse_mode(m).map_err(|e| anyhow::anyhow!("socket_mode: {e}"))?,
            ),
            None => None,
        };
        let etcd = match args.store.clone().or(file.store) {
            None => None,
            Some(s) if s == "file" => None,
            Some(s) => Some(crate::store::parse_store_url(&s).map_err(anyhow::Error::msg)?),
        };
        let r = file.refresh;
        let l = file.limits;
        let h = file.hooks;
        Ok(Settings {
            state_dir: args.state_dir.clone().or(file.state_dir),
            key_file: args.key_file.clone().or(file.key_file),
            socket: socket_flag
                .map(Path::to_path_buf)
                .or(env_socket)
                .or(file.socket),
            socket_mode: args.socket_mode.or(socket_mode),
            socket_group: args.socket_group.clone().or(file.socket_group),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            margin: args.refresh_margin.or(r.margin),
            keepalive: args
                .keepalive
                .or(r.keepalive)
                .unwrap_or(Duration::from_secs(30 * 86_400)),
            backoff_min: args
                .backoff_min
                .or(r.backoff_min)
                .unwrap_or(Duration::from_secs(5)),
            backoff_max: args
                .backoff_max
                .or(r.backoff_max)
                .unwrap_or(Duration::from_secs(600)),
            cooldown: args
                .cooldown
                .or(r.cooldown)
                .unwrap_or(Duration::from_secs(30)),
            token_wait: args
                .token_wait
                .or(r.token_wait)
                .unwrap_or(Duration::from_secs(30)),
            max_concurrent_refreshes: args
                .max_concurrent_refreshes
                .or(l.max_concurrent_refreshes)
                .unwrap_or(8),
            max_requests_per_connection: args
                .max_requests_per_connection
                .or(l.max_requests_per_connection)
                .unwrap_or(4),
            worker_threads: match args.worker_threads.or(l.worker_threads) {
                Some(n) if !(1..=MAX_WORKER_THREADS).contains(&n) => anyhow::bail!(
                    "config file: [limits] worker_threads = {n}: it must be from 1 to {MAX_WORKER_THREADS} (the default is {DEFAULT_WORKER_THREADS})"
                ),
                Some(n) => usize::from(n),
                None => DEFAULT_WORKER_THREADS,
            },
            upload_idle_timeout: match args.upload_idle_timeout.or(l.upload_idle_timeout) {
                Some(d) if d.is_zero() => anyhow::bail!(
                    "the upload idle timeout (--upload-idle-timeout, [limits] upload_idle_timeout) is 0: it must be above 0 (the default is {})",
                    humantime::format_duration(crate::transfer::spool::BODY_IDLE_TIMEOUT)
                ),
                Some(d) => d,
                None => crate::transfer::spool::BODY_IDLE_TIMEOUT,
            },
            on_event: args.on_event.clone().or(h.on_event),
            hook_timeout: args
                .hook_timeout
                .or(h.timeout)
                .unwrap_or(Duration::from_secs(30)),
            refresh_failing_after: args
                .refresh_failing_after
                .or(h.refresh_failing_after)
                .unwrap_or(3),
            refresh_token_aging: args
                .refresh_token_aging
                .or(h.refresh_token_aging)
                .unwrap_or(Duration::from_secs(45 * 86_400)),
            etcd,
            store_prefix: args
                .store_prefix
                .clone()
                .or(file.store_prefix)
                .unwrap_or_else(|| "/token-vault/".into()),
            store_lock_ttl: args
                .store_lock_ttl
                .or(file.store_lock_ttl)
                .unwrap_or(Duration::from_secs(15)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> ServeArgs {
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let mut argv = vec!["serve"];
        argv.extend_from_slice(extra);
        Wrap::parse_from(argv).serve
    }

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let file: ConfigFile = toml::from_str(
            r#"
            log_format = "json"
            [refresh]
            backoff_min = "2s"
            keepalive = "10days"
            [limits]
            max_concurrent_refreshes = 3
            [hooks]
            on_event = "/bin/true"
            "#,
        )
        .unwrap();
        let s = Settings::resolve(
            &args(&["--backoff-min", "1s", "--log-format", "human"]),
            None,
            file,
        )
        .unwrap();
        assert_eq!(s.backoff_min, Duration::from_secs(1));
        assert_eq!(s.log_format, LogFormat::Human);
        assert_eq!(s.keepalive, Duration::from_secs(10 * 86_400));
        assert_eq!(s.max_concurrent_refreshes, 3);
        assert_eq!(s.on_event.as_deref(), Some("/bin/true"));
        assert_eq!(s.backoff_max, Duration::from_secs(600));
        assert_eq!(s.max_requests_per_connection, 4);
        assert_eq!(s.worker_threads, DEFAULT_WORKER_THREADS);
        assert_eq!(
            s.upload_idle_timeout,
            crate::transfer::spool::BODY_IDLE_TIMEOUT
        );
    }

    #[test]
    fn upload_idle_timeout_from_the_flag_or_the_file_never_zero() {
        let file = |text: &str| -> ConfigFile { toml::from_str(text).unwrap() };
        let text = "[limits]\nupload_idle_timeout = \"5m\"";
        let s = Settings::resolve(&args(&[]), None, file(text)).unwrap();
        assert_eq!(s.upload_idle_timeout, Duration::from_secs(300));
        let flag = args(&["--upload-idle-timeout", "2s"]);
        let s = Settings::resolve(&flag, None, file(text)).unwrap();
        assert_eq!(
            s.upload_idle_timeout,
            Duration::from_secs(2),
            "the flag wins"
        );
        let zero = file("[limits]\nupload_idle_timeout = \"0s\"");
        let err = Settings::resolve(&args(&[]), None, zero)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("upload_idle_timeout") && err.contains("above 0"),
            "{err}"
        );
    }

    #[test]
    fn worker_threads_from_the_flag_or_the_file_within_bounds() {
        let file = |text: &str| -> ConfigFile { toml::from_str(text).unwrap() };
        let two = file("[limits]\nworker_threads = 2");
        let s = Settings::resolve(&args(&[]), None, two).unwrap();
        assert_eq!(s.worker_threads, 2);
        let two = file("[limits]\nworker_threads = 2");
        let s = Settings::resolve(&args(&["--worker-threads", "4"]), None, two).unwrap();
        assert_eq!(s.worker_threads, 4, "the flag beats the file");
        for bad in [0, MAX_WORKER_THREADS + 1] {
            let text = format!("[limits]\nworker_threads = {bad}");
            let err = Settings::resolve(&args(&[]), None, file(&text))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("worker_threads") && err.contains("from 1 to"),
                "{err}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        for (text, key) in [
            ("refersh_margin = 1", "refersh_margin"),
            ("[refresh]\nbakoff_min = \"1s\"", "bakoff_min"),
        ] {
            let path = dir.path().join("c.toml");
            std::fs::write(&path, text).unwrap();
            let err = read(&path).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "socket_mode = \"0666\"").unwrap();
        let err = Settings::resolve(&args(&[]), None, read(&path).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("every local user"), "{err}");
    }
}
