//! The loopback listener that catches the provider's redirect.
//!
//! Invariant: it binds before the browser opens, answers only the callback
//! path, believes only a callback with this run's `state` (everything else
//! gets 400 or 404 and the wait goes on), and stops after the one good
//! callback.

use crate::callback::{self, Callback};
use crate::pages;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use tiny_http::{Header, Method, Request, Response, Server};

/// Longest request target we read; a real callback is well under 2 KiB.
const MAX_URL_LEN: usize = 8 * 1024;

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("{addr} is already in use{holder}. Another `oauth-authorize` or `rclone authorize` may still be waiting: finish or stop it and run this again. Or listen elsewhere with `--listen 127.0.0.1:PORT --redirect-url http://127.0.0.1:PORT/` (that redirect URL must also be registered with the provider)")]
    PortInUse { addr: SocketAddr, holder: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
}

/// A bound listener, not yet serving.
pub struct Listener {
    server: Arc<Server>,
}

impl Listener {
    pub fn bind(addr: SocketAddr) -> Result<Listener, ListenError> {
        let tcp = TcpListener::bind(addr).map_err(|source| match source.kind() {
            io::ErrorKind::AddrInUse => ListenError::PortInUse {
                addr,
                holder: crate::port_owner::describe(addr.port())
                    .map(|who| format!(" by {who}"))
                    .unwrap_or_default(),
            },
            _ => ListenError::Bind { addr, source },
        })?;
        let server = Server::from_listener(tcp, None).map_err(|e| ListenError::Bind {
            addr,
            source: io::Error::other(e.to_string()),
        })?;
        Ok(Listener {
            server: Arc::new(server),
        })
    }

    /// Serves requests on a thread until the one good callback (a code or a
    /// provider error carrying our state) arrives; that is sent on `found`.
    pub fn serve(
        self,
        callback_path: String,
        state: String,
        found: Sender<Callback>,
    ) -> JoinHandle<()> {
        std::thread::spawn(move || {
            for request in self.server.incoming_requests() {
                if let Some(good) = answer(request, &callback_path, &state) {
                    let _ = found.send(good);
                    break;
                }
            }
            // Dropping the server here closes the port: one callback only.
        })
    }
}

/// Answers one request; returns the callback if it was the good one.
fn answer(request: Request, callback_path: &str, state: &str) -> Option<Callback> {
    let url = request.url().to_string();
    if url.len() > MAX_URL_LEN {
        respond(request, 414, pages::NOT_FOUND);
        return None;
    }
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    if path != callback_path {
        respond(request, 404, pages::NOT_FOUND);
        return None;
    }
    if *request.method() != Method::Get {
        respond(request, 405, pages::NOT_FOUND);
        return None;
    }
    match callback::interpret(query, state) {
        Callback::Rejected(why) => {
            eprintln!("Ignored a request to the callback address: {why}. Still waiting for the provider's redirect.");
            respond(request, 400, pages::REJECTED);
            None
        }
        good @ Callback::Code(_) => {
            respond(request, 200, pages::SUCCESS);
            Some(good)
        }
        good @ Callback::ProviderError { .. } => {
            respond(request, 200, pages::PROVIDER_ERROR);
            Some(good)
        }
    }
}

fn respond(request: Request, status: u16, body: &str) {
    let content_type = if body.starts_with("<!doctype") {
        "text/html; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut response = Response::from_string(body).with_status_code(status);
    for (name, value) in [
        ("Content-Type", content_type),
        // The page loads nothing; say so to the browser as well.
        (
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'",
        ),
        ("Cache-Control", "no-store"),
        ("Referrer-Policy", "no-referrer"),
    ] {
        if let Ok(h) = Header::from_bytes(name, value) {
            response.add_header(h);
        }
    }
    // A browser that went away is not our problem.
    let _ = request.respond(response);
}
