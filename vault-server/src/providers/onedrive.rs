//! OneDrive (Microsoft Graph): who-am-I (`GET /me`).

use super::{account, ProviderCallError};
use crate::http::HttpClient;
use shared::api::WhoAmI;
use shared::Secret;

pub async fn whoami(
    http: &HttpClient,
    api: &str,
    token: &Secret,
) -> Result<WhoAmI, ProviderCallError> {
    account(
        http.inner().get(format!("{api}/me")),
        token,
        "/displayName",
        "/userPrincipalName",
    )
    .await
}
