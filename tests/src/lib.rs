//! Shared machinery for token-vault's end-to-end tests: fake providers that
//! speak the providers' real wire formats, and helpers to find and run the
//! real binaries.

pub mod authorize_harness;
pub mod bench;
pub mod bins;
pub mod etcd;
pub mod fake;
pub mod fuzz_props;
pub mod transfer_harness;
pub mod vault_harness;
