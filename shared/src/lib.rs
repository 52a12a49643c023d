//! What `oauth-authorize` and `token-vault` agree on: the token blob that
//! crosses from the workstation to the server, the provider registry, and
//! the [`Secret`] type that keeps tokens out of logs.

pub mod api;
pub mod authorization;
pub mod blob;
pub mod bootstrap;
pub mod providers;
pub mod sealed;
pub mod secret;

pub use blob::{BlobError, TokenBlob};
pub use providers::{
    ClientAuth, EndpointOverrides, Endpoints, Provider, ProviderError, ProviderKind,
};
pub use secret::Secret;
