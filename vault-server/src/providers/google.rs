//! Google Drive: who-am-I (`GET /about?fields=user,storageQuota`).

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
            .get(format!("{api}/about?fields=user,storageQuota"))
            .bearer_auth(token.expose())
            .send()
            .await,
    )
    .await?;
    let name = details
        .pointer("/user/displayName")
        .and_then(|v| v.as_str())
        .unwrap_or("?");
    let email = details
        .pointer("/user/emailAddress")
        .and_then(|v| v.as_str())
        .unwrap_or("?");
    Ok(WhoAmI {
        account: format!("{name} <{email}>"),
        details,
    })
}
