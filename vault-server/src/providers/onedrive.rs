//! OneDrive (Microsoft Graph): who-am-I (`GET /me`).

use super::{json_answer, ProviderCallError};
use crate::http::HttpClient;
use shared::api::WhoAmI;
use shared::Secret;

pub async fn whoami(
    http: &HttpClient,
    api: &str,
    token: &Secret,
) -> Result<WhoAmI, ProviderCallError> {
    let details = json_answer(
        http.inner()
            .get(format!("{api}/me"))
            .bearer_auth(token.expose())
            .send()
            .await,
    )
    .await?;
    let name = details
        .get("displayName")
        .and_then(|v| v.as_str())
        .unwrap_or("?");
    let upn = details
        .get("userPrincipalName")
        .and_then(|v| v.as_str())
        .unwrap_or("?");
    Ok(WhoAmI {
        account: format!("{name} <{upn}>"),
        details,
    })
}
