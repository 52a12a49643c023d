//! Who is on the other end of the socket, from the kernel (`SO_PEERCRED`),
//! never from anything the caller says; and what that caller may do.

use crate::record::Record;
use axum::serve::IncomingStream;
use tokio::net::UnixListener;

/// The caller's credentials as the kernel gave them at connect time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

impl Peer {
    /// Credentials that match no ACL, for a socket whose peer is unknown.
    const NOBODY: Peer = Peer {
        uid: u32::MAX,
        gid: u32::MAX,
        pid: None,
    };
}

impl Peer {
    /// The credentials of the process at the other end of `stream`.
    pub fn of(stream: &tokio::net::UnixStream) -> Peer {
        match stream.peer_cred() {
            Ok(cred) => Peer {
                uid: cred.uid(),
                gid: cred.gid(),
                pid: cred.pid(),
            },
            Err(_) => Peer::NOBODY,
        }
    }
}

impl axum::extract::connect_info::Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        Peer::of(stream.io())
    }
}

/// May `peer` run admin operations (import, remove, refresh)?
pub fn is_admin(peer: &Peer, daemon_uid: u32) -> bool {
    peer.uid == daemon_uid || peer.uid == 0
}

/// May `peer` use this connection's tokens and transfers?
pub fn may_use(peer: &Peer, record: &Record) -> bool {
    if record.allow_uids.contains(&peer.uid) || record.allow_gids.contains(&peer.gid) {
        return true;
    }
    !record.allow_gids.is_empty()
        && supplementary_groups(peer)
            .iter()
            .any(|g| record.allow_gids.contains(g))
}

/// The caller's supplementary groups, from `/proc/<pid>/status`, believed
/// only when that process still has the peer's uid.
fn supplementary_groups(peer: &Peer) -> Vec<u32> {
    let Some(pid) = peer.pid else {
        return Vec::new();
    };
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Vec::new();
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|rest| {
                rest.split_whitespace()
                    .filter_map(|n| n.parse::<u32>().ok())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    // Uid: real, effective, saved, fs. The effective uid must be the peer's.
    if field("Uid:").get(1) != Some(&peer.uid) {
        return Vec::new();
    }
    field("Groups:")
}
