//! `ls`, `mkdir` and `rm`: the file commands that move no content.
//!
//! Invariant: every name and path from the daemon (which relays the
//! provider's) is printed through [`one_line`], so none can drive the
//! terminal or forge extra output lines.

use super::{print_stdout, sanitize};
use crate::cli::RemotePath;
use crate::client::{transfer_path, VaultClient};
use chrono::{DateTime, Local, TimeZone, Utc};
use shared::api::{DeleteResult, Entry, EntryKind, FolderResult, Listing};
use std::cmp::Ordering;
use std::fmt::Display;

/// `token-vault ls NAME:PATH [--json]`.
pub async fn run_ls(client: &VaultClient, remote: &RemotePath, json: bool) -> anyhow::Result<()> {
    let listing: Listing = client
        .get_json(&transfer_path(&remote.name, "items", &remote.path, ""))
        .await?;
    if json {
        print_stdout(&render_json(&listing.entries)?)
    } else {
        print_stdout(&render_listing(&listing.entries, &Local))
    }
}

/// `token-vault mkdir NAME:PATH`.
pub async fn run_mkdir(client: &VaultClient, remote: &RemotePath) -> anyhow::Result<()> {
    let result: FolderResult = client
        .post(&transfer_path(&remote.name, "folders", &remote.path, ""))
        .await?;
    print_stdout(&mkdir_summary(&result))
}

/// `token-vault rm NAME:PATH [--recursive]`. Without `--recursive`, the
/// daemon's refusal of a non-empty folder is the error, as it is.
pub async fn run_rm(
    client: &VaultClient,
    remote: &RemotePath,
    recursive: bool,
) -> anyhow::Result<()> {
    let extra = if recursive { "&recursive=true" } else { "" };
    let result: DeleteResult = client
        .delete(&transfer_path(&remote.name, "items", &remote.path, extra))
        .await?;
    print_stdout(&format!("removed {}\n", one_line(&result.path)))
}

/// What `mkdir` prints.
pub fn mkdir_summary(result: &FolderResult) -> String {
    let path = one_line(&result.path);
    if result.created {
        format!("created {path}\n")
    } else {
        format!("{path} already exists\n")
    }
}

/// `ls --json`: the entries as a JSON array, in the daemon's order.
pub fn render_json(entries: &[Entry]) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(entries)? + "\n")
}

/// `ls`: one line per entry, `ls -l`-like: the type (`d`, `-`, `l`), the
/// size, the modification time in `tz`, the name. Folders first, then the
/// rest; each by name, ignoring case.
pub fn render_listing<Tz>(entries: &[Entry], tz: &Tz) -> String
where
    Tz: TimeZone,
    Tz::Offset: Display,
{
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| listing_order(a, b));
    let rows: Vec<(char, String, String, String)> = sorted
        .iter()
        .map(|e| {
            (
                type_marker(e.kind),
                e.size.map_or_else(|| "-".to_string(), human_size),
                e.modified
                    .map_or_else(|| "-".to_string(), |t| short_time(t, tz)),
                one_line(&e.name),
            )
        })
        .collect();
    let size_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let time_width = rows.iter().map(|r| r.2.len()).max().unwrap_or(0);
    rows.into_iter()
        .map(|(kind, size, time, name)| {
            format!("{kind} {size:>size_width$}  {time:<time_width$}  {name}\n")
        })
        .collect()
}

fn listing_order(a: &Entry, b: &Entry) -> Ordering {
    let folder_first = |e: &Entry| e.kind != EntryKind::Folder;
    folder_first(a)
        .cmp(&folder_first(b))
        .then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()))
        .then_with(|| a.name.cmp(&b.name))
}

fn type_marker(kind: EntryKind) -> char {
    match kind {
        EntryKind::Folder => 'd',
        EntryKind::File => '-',
        EntryKind::WebLink => 'l',
    }
}

/// `2025-01-02 13:04` in `tz`.
fn short_time<Tz>(t: DateTime<Utc>, tz: &Tz) -> String
where
    Tz: TimeZone,
    Tz::Offset: Display,
{
    t.with_timezone(tz).format("%Y-%m-%d %H:%M").to_string()
}

/// A size in binary units with one decimal: `512 B`, `1.5 KiB`, `12.3 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // f64 is exact enough for one decimal.
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // 1023.95 would print as 1024.0 of the smaller unit.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Text from the daemon on one line, control characters (newlines too)
/// replaced.
pub fn one_line(text: &str) -> String {
    sanitize(text).replace('\n', "?")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn entry(name: &str, kind: EntryKind, size: Option<u64>) -> Entry {
        Entry {
            name: name.into(),
            kind,
            size,
            modified: None,
            id: format!("id-{name}"),
            hash: None,
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(1_258_291), "1.2 MiB");
        assert_eq!(human_size(12_897_485), "12.3 MiB");
        assert_eq!(human_size(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(human_size(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(human_size(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn listing_lines_and_order() {
        let t = Utc.with_ymd_and_hms(2025, 1, 2, 12, 4, 59).unwrap();
        let mut report = entry("report.pdf", EntryKind::File, Some(1_258_291));
        report.modified = Some(t);
        let mut docs = entry("Documents", EntryKind::Folder, None);
        docs.modified = Some(t);
        let entries = vec![
            report,
            entry("b.txt", EntryKind::File, Some(12)),
            entry("zeta", EntryKind::Folder, Some(0)),
            docs,
            entry("Link", EntryKind::WebLink, None),
            entry("evil\x1b[2J\nname", EntryKind::File, Some(1)),
            entry("archive", EntryKind::Folder, None),
        ];
        let tz = FixedOffset::east_opt(3600).unwrap();
        let text = render_listing(&entries, &tz);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "d       -  -                 archive",
                "d       -  2025-01-02 13:04  Documents",
                "d     0 B  -                 zeta",
                "-    12 B  -                 b.txt",
                "-     1 B  -                 evil?[2J?name",
                "l       -  -                 Link",
                "- 1.2 MiB  2025-01-02 13:04  report.pdf",
            ],
            "{text}"
        );
        assert_eq!(render_listing(&[], &Utc), "");
    }

    #[test]
    fn json_shape() {
        let mut f = entry("a.txt", EntryKind::File, Some(3));
        f.modified = Some(Utc.with_ymd_and_hms(2025, 1, 2, 12, 0, 0).unwrap());
        f.hash = Some("abc".into());
        let text = render_json(&[f, entry("l", EntryKind::WebLink, None)]).unwrap();
        assert!(text.ends_with("]\n"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"name": "a.txt", "type": "file", "size": 3,
                 "modified": "2025-01-02T12:00:00Z", "id": "id-a.txt", "hash": "abc"},
                {"name": "l", "type": "web_link", "size": null,
                 "modified": null, "id": "id-l", "hash": null},
            ])
        );
        assert_eq!(render_json(&[]).unwrap(), "[]\n");
    }

    #[test]
    fn mkdir_lines() {
        let mut r = FolderResult {
            path: "/a/b".into(),
            id: "1".into(),
            created: true,
        };
        assert_eq!(mkdir_summary(&r), "created /a/b\n");
        r.created = false;
        assert_eq!(mkdir_summary(&r), "/a/b already exists\n");
    }
}
