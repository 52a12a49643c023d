//! `remove`: deletes a connection, optionally revoking it upstream first.

use super::{print_stdout, sanitize, warn};
use crate::client::{connection_path, VaultClient};
use shared::api::RemoveResponse;

/// `token-vault remove NAME [--revoke]`. A failed revoke is a warning: the
/// connection is removed all the same, and the command succeeds.
pub async fn run_remove(client: &VaultClient, name: &str, revoke: bool) -> anyhow::Result<()> {
    let suffix = if revoke { "?revoke=true" } else { "" };
    let answer: RemoveResponse = client.delete(&connection_path(name, suffix)).await?;
    let (line, warning) = remove_summary(&answer, revoke);
    if let Some(w) = warning {
        warn(&w);
    }
    print_stdout(&line)
}

/// The result line for stdout, and a warning for stderr if a requested revoke failed.
pub fn remove_summary(answer: &RemoveResponse, revoke: bool) -> (String, Option<String>) {
    let name = sanitize(&answer.removed);
    if answer.revoked {
        return (format!("removed {name} (tokens revoked upstream)\n"), None);
    }
    let warning = revoke.then(|| {
        let why = answer
            .revoke_error
            .as_deref()
            .unwrap_or("the provider offers no revocation endpoint");
        format!(
            "could not revoke {name}'s tokens upstream ({why}); the connection is removed here, \
             but revoke the app's access in the provider's account settings"
        )
    });
    (format!("removed {name}\n"), warning)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries() {
        let mut r = RemoveResponse {
            removed: "box".into(),
            revoked: true,
            revoke_error: None,
        };
        assert_eq!(
            remove_summary(&r, true),
            ("removed box (tokens revoked upstream)\n".into(), None)
        );
        r.revoked = false;
        assert_eq!(remove_summary(&r, false), ("removed box\n".into(), None));
        r.revoke_error = Some("502 from provider".into());
        let (line, warning) = remove_summary(&r, true);
        assert_eq!(line, "removed box\n");
        assert!(warning.unwrap().contains("(502 from provider)"));
    }
}
