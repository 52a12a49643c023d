//! `list` and `status`: what the vault holds, never a secret.

use super::{print_stdout, relative_and_absolute, relative_time, sanitize};
use crate::client::{connection_path, VaultClient};
use chrono::{DateTime, Utc};
use shared::api::{ConnectionList, ConnectionState, ConnectionStatus, API_PREFIX};

/// The longest LAST-ERROR cell in the table; `status` shows all of it.
const ERROR_CELL_MAX: usize = 60;

/// `token-vault list [--json]`.
pub async fn run_list(client: &VaultClient, json: bool) -> anyhow::Result<()> {
    let list: ConnectionList = client
        .get_json(&format!("{API_PREFIX}/connections"))
        .await?;
    if json {
        return print_stdout(&(serde_json::to_string_pretty(&list)? + "\n"));
    }
    if list.connections.is_empty() {
        eprintln!(
            "token-vault: no connections yet; add one with \
             `token-vault import NAME --provider P --client-id ID < blob.json`"
        );
        return Ok(());
    }
    print_stdout(&render_list(&list.connections, Utc::now()))
}

/// `token-vault status NAME [--json]`.
pub async fn run_status(client: &VaultClient, name: &str, json: bool) -> anyhow::Result<()> {
    let status: ConnectionStatus = client.get_json(&connection_path(name, "")).await?;
    if json {
        return print_stdout(&(serde_json::to_string_pretty(&status)? + "\n"));
    }
    print_stdout(&render_status(&status, Utc::now()))
}

/// The table, then the fix for each connection that needs one.
pub fn render_list(connections: &[ConnectionStatus], now: DateTime<Utc>) -> String {
    let header = [
        "NAME",
        "PROVIDER",
        "STATE",
        "EXPIRES",
        "LAST-REFRESH",
        "LAST-ERROR",
    ];
    let mut rows: Vec<[String; 6]> = vec![header.map(String::from)];
    for c in connections {
        rows.push([
            sanitize(&c.name),
            provider_name(c),
            c.state.as_str().to_string(),
            c.expiry
                .map_or_else(|| "-".into(), |t| relative_time(t, now)),
            c.last_refresh
                .map_or_else(|| "never".into(), |t| relative_time(t, now)),
            c.last_error
                .as_deref()
                .map_or_else(|| "-".into(), |e| one_line(e, ERROR_CELL_MAX)),
        ]);
    }
    let mut out = table(&rows);
    for c in connections {
        if let Some(fix) = c.fix.as_deref().filter(|_| needs_fix(c.state)) {
            out.push_str(&format!(
                "\n{} is {}; to fix it:\n{}",
                sanitize(&c.name),
                c.state.as_str(),
                indent(fix)
            ));
        }
    }
    out
}

/// `key: value` lines for one connection.
pub fn render_status(c: &ConnectionStatus, now: DateTime<Utc>) -> String {
    let when = |t: Option<DateTime<Utc>>, none: &str| {
        t.map_or_else(|| none.to_string(), |t| relative_and_absolute(t, now))
    };
    let ids = |v: &[u32]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        }
    };
    let lines = vec![
        ("name", sanitize(&c.name)),
        ("provider", provider_name(c)),
        ("state", c.state.as_str().to_string()),
        (
            "client id",
            c.client_id.as_deref().map_or_else(|| "-".into(), sanitize),
        ),
        ("expires", when(c.expiry, "never or unknown")),
        (
            "refresh token",
            if c.has_refresh_token { "yes" } else { "no" }.to_string(),
        ),
        ("last refresh", when(c.last_refresh, "never")),
        ("next refresh", when(c.next_refresh, "not scheduled")),
        ("refreshes", c.refreshes.to_string()),
        (
            "last error",
            c.last_error.as_deref().map_or_else(|| "-".into(), sanitize),
        ),
        (
            "root",
            c.root.as_deref().map_or_else(|| "/".into(), sanitize),
        ),
        ("allowed uids", ids(&c.allow_uids)),
        ("allowed gids", ids(&c.allow_gids)),
    ];
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out: String = lines
        .into_iter()
        .map(|(k, v)| format!("{:<width$} {v}\n", format!("{k}:")))
        .collect();
    if let Some(fix) = c.fix.as_deref() {
        out.push_str("fix:\n");
        out.push_str(&indent(fix));
    }
    out
}

fn needs_fix(state: ConnectionState) -> bool {
    matches!(
        state,
        ConnectionState::NeedsReauth | ConnectionState::Corrupt
    )
}

fn provider_name(c: &ConnectionStatus) -> String {
    c.provider
        .map_or_else(|| "?".into(), |p| p.name().to_string())
}

/// Columns padded to their widest cell; the last one is not padded.
pub fn table(rows: &[[String; 6]]) -> String {
    let mut widths = [0usize; 6];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The text on one line, cut to `max` characters with an ellipsis.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = sanitize(text)
        .chars()
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn indent(text: &str) -> String {
    sanitize(text).lines().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use shared::ProviderKind;

    fn conn(name: &str, state: ConnectionState) -> ConnectionStatus {
        ConnectionStatus {
            name: name.into(),
            provider: Some(ProviderKind::Box),
            state,
            client_id: Some("cid".into()),
            expiry: None,
            has_refresh_token: true,
            last_refresh: None,
            next_refresh: None,
            refreshes: 0,
            last_error: None,
            fix: None,
            root: None,
            allow_uids: vec![1000],
            allow_gids: vec![],
        }
    }

    #[test]
    fn list_table() {
        let now = Utc.with_ymd_and_hms(2025, 1, 2, 12, 0, 0).unwrap();
        let mut ok = conn("box", ConnectionState::Ok);
        ok.expiry = Some(now + chrono::Duration::minutes(52));
        ok.last_refresh = Some(now - chrono::Duration::hours(3));
        let mut bad = conn("dropbox-work", ConnectionState::NeedsReauth);
        bad.provider = Some(ProviderKind::Dropbox);
        bad.last_error = Some(format!("invalid_grant: {}", "x".repeat(100)));
        bad.fix = Some("oauth-authorize dropbox > blob.json\ntoken-vault import dropbox-work --replace < blob.json".into());
        let mut broken = conn("old", ConnectionState::Corrupt);
        broken.provider = None;

        let text = render_list(&[ok, bad, broken], now);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "NAME          PROVIDER  STATE         EXPIRES  LAST-REFRESH  LAST-ERROR"
        );
        assert_eq!(
            lines[1],
            "box           box       ok            in 52m   3h ago        -"
        );
        assert!(lines[2].starts_with(
            "dropbox-work  dropbox   needs-reauth  -        never         invalid_grant: xxx"
        ));
        assert!(
            lines[2].ends_with('…') && lines[2].chars().count() < 130,
            "{}",
            lines[2]
        );
        assert_eq!(
            lines[3],
            "old           ?         corrupt       -        never         -"
        );
        assert_eq!(lines[4], "");
        assert_eq!(lines[5], "dropbox-work is needs-reauth; to fix it:");
        assert_eq!(lines[6], "  oauth-authorize dropbox > blob.json");
        assert_eq!(
            lines[7],
            "  token-vault import dropbox-work --replace < blob.json"
        );
        assert_eq!(lines.len(), 8);
    }

    #[test]
    fn status_lines() {
        let now = Utc.with_ymd_and_hms(2025, 1, 2, 12, 0, 0).unwrap();
        let mut c = conn("box", ConnectionState::NeedsReauth);
        c.expiry = Some(now - chrono::Duration::minutes(5));
        c.last_error = Some("invalid_grant\x1b[2J".into());
        c.fix = Some("run this".into());
        let text = render_status(&c, now);
        assert!(text.contains("name:          box\n"), "{text}");
        assert!(
            text.contains("expires:       5m ago (2025-01-02T11:55:00Z)\n"),
            "{text}"
        );
        assert!(text.contains("last refresh:  never\n"), "{text}");
        assert!(
            text.contains("last error:    invalid_grant?[2J\n"),
            "{text}"
        );
        assert!(text.contains("allowed uids:  1000\n"), "{text}");
        assert!(
            text.ends_with("allowed gids:  -\nfix:\n  run this\n"),
            "{text}"
        );
    }
}
