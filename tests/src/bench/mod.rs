//! The machinery of `vault-bench` (`src/bin/vault_bench.rs`): it measures
//! the release binaries and prints figures; it never asserts anything.
//!
//! - [`bins`] finds the release binaries next to the bench itself;
//! - [`daemon`] runs a release `token-vault serve` in a temporary directory;
//! - [`load`] drives HTTP/1.1 clients over a Unix socket (steady load and a
//!   one-shot storm);
//! - [`baseline`] is the minimal hyper server the vault is compared with,
//!   run as a separate process;
//! - [`authorize`] times `oauth-authorize` from the browser's callback to
//!   the blob on stdout, and the fake token endpoint on its own;
//! - [`transfer`] times uploads and downloads through the vault and directly
//!   to a fake provider, and the daemon's peak RSS meanwhile;
//! - [`day`] runs many connections with staggered, compressed expiries
//!   through a simulated day, against the refresh cap;
//! - [`machine`] and [`stats`] describe the machine and summarise samples.
//!
//! Every loop here is bounded by a deadline or a count, and everything
//! listens and connects on loopback or on Unix sockets in temporary folders.

pub mod authorize;
pub mod baseline;
pub mod bins;
pub mod daemon;
pub mod day;
pub mod load;
pub mod machine;
pub mod stats;
pub mod transfer;
