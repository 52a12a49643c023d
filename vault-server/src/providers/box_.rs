//! Box: who-am-I (`GET /users/me`). Transfers join this file later.

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
            .get(format!("{api}/users/me"))
            .bearer_auth(token.expose())
            .send()
            .await,
    )
    .await?;
    let name = details.get("name").and_then(|v| v.as_str()).unwrap_or("?");
    let login = details.get("login").and_then(|v| v.as_str()).unwrap_or("?");
    Ok(WhoAmI {
        account: format!("{name} <{login}>"),
        details,
    })
}
