//! `token`, `refresh` and `test`: the commands that use a connection's tokens.

use super::{print_stdout, relative_and_absolute, sanitize};
use crate::client::{connection_path, VaultClient};
use chrono::Utc;
use shared::api::{ConnectionState, ConnectionStatus, TokenResponse, WhoAmI};

/// `token-vault token NAME [--json] [--rejected]`: the access token and a
/// newline on stdout, or `{"access_token","token_type","expiry"}`.
pub async fn run_token(
    client: &VaultClient,
    name: &str,
    json: bool,
    rejected: bool,
) -> anyhow::Result<()> {
    let suffix = if rejected {
        "/token?rejected=true"
    } else {
        "/token"
    };
    let token: TokenResponse = client.get_json(&connection_path(name, suffix)).await?;
    if token.access_token.is_empty() {
        anyhow::bail!("the vault answered with an empty access token for {name}");
    }
    if json {
        // Serialising a `Secret` gives its value: this is the one place meant to.
        let line = serde_json::to_string(&token)?;
        print_stdout(&(line + "\n"))
    } else {
        let mut line = String::with_capacity(token.access_token.expose().len() + 1);
        line.push_str(token.access_token.expose());
        line.push('\n');
        print_stdout(&line)
    }
}

/// `token-vault refresh NAME`: forces a refresh and prints the new expiry.
/// A status that is not `ok` after the refresh is an error.
pub async fn run_refresh(client: &VaultClient, name: &str) -> anyhow::Result<()> {
    let status: ConnectionStatus = client.post(&connection_path(name, "/refresh")).await?;
    print_stdout(&refresh_summary(&status, Utc::now())?)
}

/// What `refresh` prints for the connection's status after the refresh.
pub fn refresh_summary(
    status: &ConnectionStatus,
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<String> {
    let name = sanitize(&status.name);
    if !matches!(
        status.state,
        ConnectionState::Ok | ConnectionState::Refreshing
    ) {
        let mut msg = format!(
            "the refresh of {name} did not succeed: it is {}",
            status.state.as_str()
        );
        if let Some(e) = &status.last_error {
            msg.push_str(&format!(" ({})", sanitize(e)));
        }
        if let Some(fix) = &status.fix {
            msg.push_str(&format!("; to fix it: {}", sanitize(fix)));
        }
        anyhow::bail!(msg);
    }
    let expiry = match status.expiry {
        Some(t) => format!("the access token expires {}", relative_and_absolute(t, now)),
        None => "the access token does not expire".to_string(),
    };
    Ok(format!("refreshed {name}; {expiry}\n"))
}

/// `token-vault test NAME`: the provider's who-am-I, as one account line.
pub async fn run_test(client: &VaultClient, name: &str) -> anyhow::Result<()> {
    let who: WhoAmI = client.get_json(&connection_path(name, "/whoami")).await?;
    print_stdout(&format!("{}\n", sanitize(&who.account).replace('\n', " ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use shared::ProviderKind;

    #[test]
    fn refresh_line() {
        let now = Utc.with_ymd_and_hms(2025, 1, 2, 12, 0, 0).unwrap();
        let mut s = ConnectionStatus {
            name: "box".into(),
            provider: Some(ProviderKind::Box),
            state: ConnectionState::Ok,
            client_id: None,
            expiry: Some(now + chrono::Duration::minutes(60)),
            has_refresh_token: true,
            last_refresh: Some(now),
            next_refresh: None,
            refreshes: 1,
            last_error: None,
            fix: None,
            root: None,
            allow_uids: vec![],
            allow_gids: vec![],
        };
        assert_eq!(
            refresh_summary(&s, now).unwrap(),
            "refreshed box; the access token expires in 1h (2025-01-02T13:00:00Z)\n"
        );
        s.expiry = None;
        assert_eq!(
            refresh_summary(&s, now).unwrap(),
            "refreshed box; the access token does not expire\n"
        );
        s.state = ConnectionState::NeedsReauth;
        s.last_error = Some("invalid_grant".into());
        let err = refresh_summary(&s, now).unwrap_err().to_string();
        assert!(err.contains("needs-reauth (invalid_grant)"), "{err}");
    }
}
