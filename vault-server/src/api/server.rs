//! The socket's HTTP/1.1 server: the API's router on hyper, with the
//! bounds a socket that several local users can reach needs. (`axum::serve`
//! takes no settings: it has no header timeout and no connection cap.)
//!
//! Invariants:
//! - no client holds the daemon's resources without bound: at most
//!   [`MAX_CONNECTIONS`] connections are served at once (more wait in the
//!   listen backlog), a request head must arrive within
//!   [`HEADER_READ_TIMEOUT`] (on a fresh connection and between requests
//!   on a kept-alive one), and a head over [`MAX_REQUEST_HEAD`] gets 431;
//! - every request carries the caller's peer credentials, taken from the
//!   kernel when the connection was accepted;
//! - on shutdown no new connection is taken, idle ones are closed, and the
//!   requests in flight finish before [`serve`] returns.

use super::peer::Peer;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::{watch, Semaphore};

/// Connections served at once. Each costs a file descriptor and a task; this
/// stays well under the usual soft limit of 1,024 fds, leaving room for the
/// store, provider connections and upload spools, so a flood of connections
/// waits in the listen backlog instead of starving the daemon of fds.
pub const MAX_CONNECTIONS: usize = 768;

/// How long a client may take to send a request head, from connecting or
/// from the previous answer on a kept-alive connection. Local clients send
/// theirs at once; idle and trickling (slowloris) connections are closed
/// instead of holding a connection slot forever.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest request head (request line and headers) accepted: the API's
/// are a few hundred bytes. A larger one gets 431, so a connection buffers
/// at most this much before its request is routed.
pub const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// The send buffer asked for on each client's connection. Linux's default
/// (`net.core.wmem_default`, 208 KiB) lets the daemon hand a relayed
/// download to the socket about 200 KiB at a time, so it and the client
/// take turns (a wakeup each) several times per megabyte. With 1 MiB, in
/// runs paired with the default on 2 cores, downloads through the vault
/// went from 0.69-0.82 of the direct route's speed to 0.79-0.93; 4 MiB was
/// no better (README, Performance). The kernel caps it at
/// `net.core.wmem_max`, and the memory is the kernel's, taken only while a
/// client reads slower than its download arrives.
const CLIENT_SEND_BUFFER: usize = 1 << 20;

/// The pause after a failed accept (out of fds, say) before the next try,
/// so the loop does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown` resolves, then lets the
/// requests in flight finish.
pub async fn serve(listener: UnixListener, app: Router, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Connections watch this to learn of the shutdown; they each hold a
    // receiver, so `closed()` on the sender says they have all finished.
    let (stop_tx, stop_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection on the socket");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let peer = Peer::of(&stream);
        widen_send_buffer(&stream);
        let app = app.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    tower_service::Service::call(&mut app.clone(), request)
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_header_size(MAX_REQUEST_HEAD)
                .serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                // A client that hung up or sent garbage: its business.
                tracing::debug!(error = %e, "a socket connection ended in error");
            }
        });
    }
    drop(stop_rx);
    let _ = stop_tx.send(());
    stop_tx.closed().await;
}

/// Asks for [`CLIENT_SEND_BUFFER`] on a client's connection; a refusal
/// only costs speed.
fn widen_send_buffer(stream: &tokio::net::UnixStream) {
    use nix::sys::socket::{setsockopt, sockopt::SndBuf};
    if let Err(e) = setsockopt(stream, SndBuf, &CLIENT_SEND_BUFFER) {
        tracing::debug!(error = %e, "cannot widen a client connection's send buffer");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{getsockopt, sockopt::SndBuf};

    #[tokio::test]
    async fn a_client_connection_gets_the_wider_send_buffer() {
        let (ours, _theirs) = tokio::net::UnixStream::pair().expect("a socket pair");
        let before = getsockopt(&ours, SndBuf).expect("SO_SNDBUF");
        widen_send_buffer(&ours);
        let after = getsockopt(&ours, SndBuf).expect("SO_SNDBUF");
        // Linux doubles what it is asked (for its bookkeeping), up to twice
        // net.core.wmem_max.
        let ceiling = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(usize::MAX / 2);
        let wanted = (2 * CLIENT_SEND_BUFFER).min(2 * ceiling);
        assert!(
            after >= wanted.max(before),
            "{before} -> {after}, wanted {wanted}"
        );
    }
}
