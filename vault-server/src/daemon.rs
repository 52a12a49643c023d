//! `token-vault serve`: wires the store, the refresh engine, the scheduler
//! and the API together on the Unix socket, and shuts them down cleanly.
//!
//! Invariant: the socket is only bound once the store is loaded, and on
//! SIGTERM or SIGINT the requests in flight finish before the process exits.

use crate::api::{self, AppState};
use crate::audit::Audit;
use crate::cli::{LogFormat, ServeArgs};
use crate::http::HttpClient;
use crate::policy::RefreshPolicy;
use crate::refresh::{Engine, EngineConfig};
use crate::store::{load_key, FileStore, RecordCodec};
use crate::{paths, scheduler, socket};
use anyhow::{bail, Context};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How long shutdown waits for refreshes in flight: longer than one token
/// call may take, so a rotated token in flight always reaches the disk.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(35);

/// Runs the daemon until SIGTERM or SIGINT.
pub fn serve(args: ServeArgs, socket: &Path) -> anyhow::Result<()> {
    init_logging(args.log_format);
    if let Some(config) = &args.config {
        bail!(
            "--config {} is not supported by this version yet; use the command-line flags (see `token-vault serve --help`)",
            config.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(args, socket))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOKEN_VAULT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

async fn run(args: ServeArgs, socket_path: &Path) -> anyhow::Result<()> {
    let state_dir = match &args.state_dir {
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
        args.key_file.as_deref(),
        paths::credentials_dir().as_deref(),
        &state_dir,
    )?;
    let store = FileStore::open(&state_dir, RecordCodec::new(&key))?;
    drop(key);
    let daemon_uid = nix::unistd::geteuid().as_raw();
    let config = EngineConfig {
        policy: RefreshPolicy {
            keepalive: args.keepalive,
            margin_override: args.refresh_margin,
            backoff_min: args.backoff_min,
            backoff_max: args.backoff_max,
        },
        max_concurrent_refreshes: args.max_concurrent_refreshes,
        token_wait: args.token_wait,
        cooldown: args.cooldown,
        daemon_uid,
    };
    let http = HttpClient::new().context("cannot build the HTTP client")?;
    let (engine, schedule) = Engine::new(Arc::new(store), http, config);
    let loaded = engine.load().await?;
    let scheduler = tokio::spawn(scheduler::run(engine.clone(), schedule));
    let (audit, audit_writer) = Audit::start(&state_dir.join("audit.log"))
        .with_context(|| format!("cannot open the audit log in {}", state_dir.display()))?;
    let spool = crate::transfer::spool::spool_dir(&state_dir).with_context(|| {
        format!(
            "cannot create the spool directory in {}",
            state_dir.display()
        )
    })?;
    let files = Arc::new(
        crate::files::Files::new(engine.clone(), spool, args.max_requests_per_connection)
            .context("cannot build the transfer HTTP client")?,
    );
    let listener = socket::bind(socket_path)?;
    let shutting_down = Arc::new(AtomicBool::new(false));
    let engine_for_drain = engine.clone();
    let app = api::router(AppState {
        engine,
        files,
        daemon_uid,
        audit,
        shutting_down: shutting_down.clone(),
    });
    tracing::info!(
        socket = %socket_path.display(),
        state_dir = %state_dir.display(),
        key = %key_source,
        connections = loaded,
        "token-vault is serving"
    );
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<api::peer::Peer>(),
    )
    .with_graceful_shutdown(shutdown_signal(shutting_down))
    .await;
    scheduler.abort();
    if tokio::time::timeout(DRAIN_TIMEOUT, engine_for_drain.drain())
        .await
        .is_err()
    {
        tracing::warn!("a refresh was still in flight at shutdown");
    }
    let _ = std::fs::remove_file(socket_path);
    audit_writer.finish().await;
    served.context("the socket server failed")?;
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
