//! Dropbox: who-am-I (`POST /users/get_current_account`) and revoke
//! (`POST /auth/token/revoke`). Transfers join this file later.

use super::{expect_success, json_answer, ProviderCallError};
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
            .post(format!("{api}/users/get_current_account"))
            .bearer_auth(token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            // Dropbox wants the literal JSON `null` for "no argument".
            .body("null")
            .send()
            .await,
    )
    .await?;
    let name = details
        .pointer("/name/display_name")
        .and_then(|v| v.as_str())
        .unwrap_or("?");
    let email = details.get("email").and_then(|v| v.as_str()).unwrap_or("?");
    Ok(WhoAmI {
        account: format!("{name} <{email}>"),
        details,
    })
}

/// Revokes the access token, which ends the whole grant at Dropbox.
pub async fn revoke(http: &HttpClient, url: &str, token: &Secret) -> Result<(), ProviderCallError> {
    expect_success(
        http.inner()
            .post(url)
            .bearer_auth(token.expose())
            .send()
            .await,
    )
    .await
}
