//! `token-vault serve`: wires the store, the refresh engine, the scheduler
//! and the API together on the Unix socket, and shuts them down cleanly.
//!
//! Invariant: the socket is only bound once the store is loaded, and on
//! SIGTERM or SIGINT the requests in flight finish before the process exits.

use crate::api::{self, AppState};
use crate::audit::Audit;
use crate::cli::{LogFormat, ServeArgs};
use crate::config::{self, Settings};
use crate::events::{Listener, Listeners};
use crate::hooks::Hooks;
use crate::http::HttpClient;
use crate::metrics::Metrics;
use crate::policy::RefreshPolicy;
use crate::refresh::{Engine, EngineConfig};
use crate::store::{load_key, EtcdStore, FileStore, RecordCodec, Store};
use crate::{paths, scheduler, socket};
use anyhow::Context;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How long shutdown waits for refreshes in flight: longer than one token
/// call may take, so a rotated token in flight always reaches the disk.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(35);

/// Runs the daemon until SIGTERM or SIGINT. `socket_flag` is the global
/// `--socket`, which beats `TOKEN_VAULT_SOCKET`, the config file and the default.
pub fn serve(args: ServeArgs, socket_flag: Option<&Path>) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => config::read(path)?,
        None => config::ConfigFile::default(),
    };
    let settings = Settings::resolve(&args, socket_flag, file)?;
    init_logging(settings.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.worker_threads)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(settings))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOKEN_VAULT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let socket_path = match &settings.socket {
        Some(p) => p.clone(),
        None => paths::default_socket()?,
    };
    let socket_path = socket_path.as_path();
    let state_dir = match &settings.state_dir {
        Some(d) => d.clone(),
        None => paths::default_state_dir()?,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&state_dir)
        .with_context(|| format!("cannot create the state directory {}", state_dir.display()))?;
    let _state_lock = lock_state_dir(&state_dir)?;
    let (key, key_source) = load_key(
        settings.key_file.as_deref(),
        paths::credentials_dir().as_deref(),
        &state_dir,
    )?;
    let store: Arc<dyn Store> = match &settings.etcd {
        Some(endpoints) => Arc::new(
            EtcdStore::connect(
                endpoints.clone(),
                &settings.store_prefix,
                RecordCodec::new(&key),
                settings.store_lock_ttl,
            )
            .await?,
        ),
        None => Arc::new(FileStore::open(&state_dir, RecordCodec::new(&key))?),
    };
    drop(key);
    let daemon_uid = nix::unistd::geteuid().as_raw();
    let config = EngineConfig {
        policy: RefreshPolicy {
            keepalive: settings.keepalive,
            margin_override: settings.margin,
            backoff_min: settings.backoff_min,
            backoff_max: settings.backoff_max,
        },
        max_concurrent_refreshes: settings.max_concurrent_refreshes,
        token_wait: settings.token_wait,
        cooldown: settings.cooldown,
        daemon_uid,
        refresh_failing_after: settings.refresh_failing_after,
        refresh_token_aging: settings.refresh_token_aging,
    };
    let metrics = Arc::new(Metrics::new());
    let mut listeners: Vec<Arc<dyn Listener>> = vec![metrics.clone()];
    if let Some(command) = &settings.on_event {
        listeners.push(Arc::new(Hooks::new(command.clone(), settings.hook_timeout)));
    }
    let http = HttpClient::new().context("cannot build the HTTP client")?;
    let (engine, schedule) = Engine::new(store.clone(), http, config, Listeners::new(listeners));
    let loaded = engine.load().await?;
    let scheduler = tokio::spawn(scheduler::run(engine.clone(), schedule));
    // Other vaults' imports, refreshes and removals, as they happen.
    let watcher = match store.watch().await? {
        Some(mut changes) => {
            let engine = engine.clone();
            Some(tokio::spawn(async move {
                while let Some(change) = changes.recv().await {
                    engine.apply_remote(change).await;
                }
            }))
        }
        None => None,
    };
    let (audit, audit_writer) = Audit::start(&state_dir.join("audit.log"))
        .with_context(|| format!("cannot open the audit log in {}", state_dir.display()))?;
    let spool = crate::transfer::spool::spool_dir(&state_dir).with_context(|| {
        format!(
            "cannot create the spool directory in {}",
            state_dir.display()
        )
    })?;
    let files = Arc::new(
        crate::files::Files::new(
            engine.clone(),
            spool,
            settings.max_requests_per_connection,
            settings.upload_idle_timeout,
        )
        .context("cannot build the transfer HTTP client")?,
    );
    let listener = socket::bind_with(
        socket_path,
        &socket::SocketAccess {
            mode: settings.socket_mode.unwrap_or(socket::SOCKET_MODE),
            group: settings.socket_group.clone(),
        },
    )?;
    let shutting_down = Arc::new(AtomicBool::new(false));
    let engine_for_drain = engine.clone();
    let app = api::router(AppState {
        engine,
        files,
        metrics,
        daemon_uid,
        audit,
        shutting_down: shutting_down.clone(),
        authorizations: Arc::new(crate::pending::Authorizations::new(&state_dir)),
    });
    tracing::info!(
        socket = %socket_path.display(),
        state_dir = %state_dir.display(),
        key = %key_source,
        store = %store.describe(),
        connections = loaded,
        keepalive = ?settings.keepalive,
        backoff_min = ?settings.backoff_min,
        backoff_max = ?settings.backoff_max,
        max_concurrent_refreshes = settings.max_concurrent_refreshes,
        // The runtime's own count, not the setting's.
        worker_threads = tokio::runtime::Handle::current().metrics().num_workers(),
        hooks = settings.on_event.is_some(),
        "token-vault is serving"
    );
    // The socket is listening (connections queue until serving starts).
    crate::notify::ready(socket_path, loaded);
    api::server::serve(listener, app, shutdown_signal(shutting_down)).await;
    crate::notify::stopping();
    scheduler.abort();
    if let Some(w) = watcher {
        w.abort();
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, engine_for_drain.drain())
        .await
        .is_err()
    {
        tracing::warn!("a refresh was still in flight at shutdown");
    }
    let _ = std::fs::remove_file(socket_path);
    audit_writer.finish().await;
    tracing::info!("token-vault stopped");
    Ok(())
}

/// Takes an exclusive lock on the state directory for the daemon's life:
/// two daemons refreshing the same single-use refresh tokens would break
/// each other's chains.
fn lock_state_dir(state_dir: &Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = state_dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        anyhow::anyhow!(
            "another token-vault daemon is using the state directory {} ({errno}); stop it first, or give this one its own --state-dir",
            state_dir.display()
        )
    })
}

/// Resolves on SIGTERM or SIGINT, after flagging the shutdown.
async fn shutdown_signal(flag: Arc<AtomicBool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing requests in flight"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: finishing requests in flight"),
    }
    flag.store(true, Ordering::Relaxed);
}
