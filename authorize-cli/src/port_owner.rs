//! Best-effort answer to "who holds this TCP port?", for the port-in-use
//! message. Linux only: it reads `/proc/net/tcp{,6}` for the listening
//! socket's inode, then finds the process with that socket open. Anything it
//! cannot read (other users' processes, other systems) just yields `None`.

use std::fs;

/// TCP state `LISTEN` in `/proc/net/tcp`.
const TCP_LISTEN: &str = "0A";

/// `"process NAME (pid N)"` for the process listening on `port`, if visible.
pub fn describe(port: u16) -> Option<String> {
    let inode = listening_inode(port)?;
    let target = format!("socket:[{inode}]");
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name().to_string_lossy().to_string();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == target));
        if holds {
            let name = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            return Some(format!("process `{}` (pid {pid})", name.trim()));
        }
    }
    None
}

fn listening_inode(port: u16) -> Option<String> {
    let wanted = format!("{port:04X}");
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address is "IP:PORT" in hex; st is column 3; inode column 9.
            let (Some(local), Some(st), Some(inode)) = (cols.get(1), cols.get(3), cols.get(9))
            else {
                continue;
            };
            if *st == TCP_LISTEN && local.rsplit(':').next() == Some(wanted.as_str()) {
                return Some(inode.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_our_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let who = super::describe(port).expect("our own socket is visible");
        assert!(
            who.contains(&format!("pid {}", std::process::id())),
            "{who}"
        );
    }
}
