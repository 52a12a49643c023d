//! `token-vault`: the headless half of token-vault. The daemon (`serve`)
//! keeps OAuth connections in an encrypted store, refreshes them before
//! they expire, and serves local programs over a Unix socket; every other
//! subcommand is a client of that socket.
//!
//! Dependencies point one way: `api` → `refresh` (+ `admin`, `scheduler`)
//! → `store`. The store knows nothing of HTTP, the refresh engine nothing
//! of the API, and the providers nothing of the store.

pub mod admin;
pub mod api;
pub mod audit;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod connection;
pub mod daemon;
pub mod device;
pub mod events;
pub mod files;
pub mod grant;
pub mod hooks;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod oauth;
pub mod paths;
pub mod pending;
pub mod policy;
pub mod providers;
pub mod recipient;
pub mod record;
pub mod refresh;
pub mod registry;
pub mod scheduler;
pub mod socket;
pub mod store;
pub mod transfer;
