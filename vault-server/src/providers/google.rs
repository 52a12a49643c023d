//! Google Drive: who-am-I (`GET /about?fields=user,storageQuota`).

use super::{account, ProviderCallError};
use crate::http::HttpClient;
use shared::api::WhoAmI;
use shared::Secret;

pub async fn whoami(
    http: &HttpClient,
    api: &str,
    token: &Secret,
) -> Result<WhoAmI, ProviderCallError> {
    let request = http
        .inner()
        .get(format!("{api}/about?fields=user,storageQuota"));
    account(request, token, "/user/displayName", "/user/emailAddress").await
}
