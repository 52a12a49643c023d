//! Paths inside a connection: what a client may name, and how it maps onto
//! the account under the connection's root folder.
//!
//! Invariant: a [`RemotePath`] can only be built from segments that are
//! plain names (no `.`, `..`, NUL, backslash or control characters), so no
//! client path can ever resolve outside the root. Repeated and trailing
//! slashes are the only things normalised away; everything else that looks
//! like a trick is refused.

use std::fmt;

/// The longest path a client may send, in bytes.
const MAX_PATH_LEN: usize = 4096;
/// The longest single name.
const MAX_NAME_LEN: usize = 255;

/// A path refused as input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path `{shown}` {why}")]
pub struct PathError {
    shown: String,
    why: &'static str,
}

/// A checked path in the account: the root's segments, then the client's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemotePath {
    /// How many leading segments belong to the connection's root.
    root_len: usize,
    segments: Vec<String>,
}

fn check_segments(text: &str) -> Result<Vec<String>, PathError> {
    let shown: String = text
        .chars()
        .take(200)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let refuse = |why| PathError {
        shown: shown.clone(),
        why,
    };
    if text.len() > MAX_PATH_LEN {
        return Err(refuse("is too long"));
    }
    let mut out = Vec::new();
    for segment in text.split('/') {
        match segment {
            "" => continue,
            "." | ".." => {
                return Err(refuse(
                    "contains `.` or `..`; paths are absolute within the connection's root",
                ))
            }
            s if s.contains('\\') => return Err(refuse("contains a backslash")),
            s if s.chars().any(char::is_control) => {
                return Err(refuse("contains NUL or a control character"))
            }
            s if s.len() > MAX_NAME_LEN => return Err(refuse("has a name longer than 255 bytes")),
            s if s.trim() != s && s.trim().is_empty() => {
                return Err(refuse("has a name made of spaces only"))
            }
            s => out.push(s.to_string()),
        }
    }
    Ok(out)
}

impl RemotePath {
    /// `client` (e.g. `/a/b`) under `root` (e.g. `/backups`, already
    /// normalised at import).
    pub fn new(root: Option<&str>, client: &str) -> Result<RemotePath, PathError> {
        let mut segments = match root {
            Some(r) => check_segments(r)?,
            None => Vec::new(),
        };
        let root_len = segments.len();
        segments.extend(check_segments(client)?);
        Ok(RemotePath { root_len, segments })
    }

    /// Every segment from the account's root.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// True for the connection's root folder itself.
    pub fn is_root(&self) -> bool {
        self.segments.len() == self.root_len
    }

    /// The last name, unless this is the connection's root.
    pub fn name(&self) -> Option<&str> {
        if self.is_root() {
            None
        } else {
            self.segments.last().map(String::as_str)
        }
    }

    /// The parent folder, unless this is the connection's root.
    pub fn parent(&self) -> Option<RemotePath> {
        (!self.is_root()).then(|| RemotePath {
            root_len: self.root_len,
            segments: self.segments[..self.segments.len() - 1].to_vec(),
        })
    }

    /// The parent folder in the account, unless this is the account's root
    /// (providers walk up past the connection's root to resolve it).
    pub fn parent_in_account(&self) -> Option<RemotePath> {
        (!self.segments.is_empty()).then(|| RemotePath {
            root_len: self.root_len.min(self.segments.len() - 1),
            segments: self.segments[..self.segments.len() - 1].to_vec(),
        })
    }

    /// The path from the account's root, `/a/b` (`/` for the account root).
    pub fn account_path(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }

    /// The path as the client sees it, relative to the connection's root.
    pub fn client_path(&self) -> String {
        format!("/{}", self.segments[self.root_len..].join("/"))
    }

    /// A child of this folder (for recursive operations).
    pub fn child(&self, name: &str) -> Result<RemotePath, PathError> {
        let mut segs = check_segments(name)?;
        if segs.len() != 1 {
            return Err(PathError {
                shown: name.to_string(),
                why: "is not a single name",
            });
        }
        let mut p = self.clone();
        p.segments.append(&mut segs);
        Ok(p)
    }
}

impl fmt::Display for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.client_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_slashes_and_joins_the_root() {
        let p = RemotePath::new(Some("/backups"), "//a///b/").unwrap();
        assert_eq!(p.account_path(), "/backups/a/b");
        assert_eq!(p.client_path(), "/a/b");
        assert_eq!(p.name(), Some("b"));
        assert_eq!(p.parent().unwrap().client_path(), "/a");
        let root = RemotePath::new(Some("/backups"), "/").unwrap();
        assert!(root.is_root() && root.parent().is_none() && root.name().is_none());
        assert_eq!(root.account_path(), "/backups");
        assert_eq!(RemotePath::new(None, "").unwrap().account_path(), "/");
    }

    #[test]
    fn escapes_are_refused() {
        for bad in [
            "..",
            "/..",
            "/a/../../etc",
            "a/./b",
            "/a/..",
            "a\\..\\b",
            "..\\x",
            "a\0b",
            "/a/\u{1}",
            "/x\n",
            " /../",
            "/a/ ",
            &"x/".repeat(3000),
        ] {
            let r = RemotePath::new(Some("/root"), bad);
            assert!(r.is_err(), "{bad:?} was accepted: {r:?}");
        }
        // Names that merely contain dots or spaces are fine.
        for good in ["/a..b", "/.hidden", "/my file.txt", "/ünïcødé/😀"] {
            assert!(RemotePath::new(None, good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn no_accepted_path_leaves_the_root() {
        // Whatever the client sends, an accepted path starts with the root.
        for client in ["/", "a", "/a/b", "//x", "a/b/c/"] {
            let p = RemotePath::new(Some("/r/s"), client).unwrap();
            assert!(p
                .segments()
                .starts_with(&["r".to_string(), "s".to_string()]));
        }
    }
}
