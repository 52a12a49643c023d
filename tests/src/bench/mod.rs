//! The machinery of `vault-bench` (`src/bin/vault_bench.rs`): it measures
//! the release binaries and prints figures; it never asserts anything. The
//! binary only parses its arguments, picks the measurements and prints the
//! [`table`] they fill. `tests/tests/bench_smoke.rs` runs short variants of
//! measurements 6 and 7 and a slice of 1 on the debug binaries, asserting
//! only that they work, so that this machinery cannot rot unseen.
//!
//! - [`bins`] finds the release binaries next to the bench itself, and
//!   reports their sizes (measurement 5);
//! - [`daemon`] runs a release `token-vault serve` in a temporary directory;
//! - [`serving`] makes measurements 1 to 4 on one daemon: token serving
//!   under load, the baseline, the refresh storm and `oauth-authorize`;
//! - [`load`] drives HTTP/1.1 clients over a Unix socket (steady load and a
//!   one-shot storm);
//! - [`baseline`] is the minimal hyper server the vault is compared with,
//!   run as a separate process;
//! - [`authorize`] times `oauth-authorize` from the browser's callback to
//!   the blob on stdout, and the fake token endpoint on its own;
//! - [`transfer`] times uploads and downloads through the vault and directly
//!   to a fake provider, and the daemon's peak RSS meanwhile (measurement
//!   6); [`transfer_report`] turns its figures into rows;
//! - [`day`] runs many connections with staggered, compressed expiries
//!   through a simulated day, against the refresh cap (measurement 7);
//!   [`day_report`] turns its figures into rows;
//! - [`table`] is the table's columns, the [`table::Section`] each
//!   measurement returns, and the row helpers they share;
//! - [`machine`] and [`stats`] describe the machine and summarise samples.
//!
//! Every loop here is bounded by a deadline or a count, and everything
//! listens and connects on loopback or on Unix sockets in temporary folders.

pub mod authorize;
pub mod baseline;
pub mod bins;
pub mod daemon;
pub mod day;
pub mod day_report;
pub mod load;
pub mod machine;
pub mod serving;
pub mod stats;
pub mod table;
pub mod transfer;
pub mod transfer_report;
