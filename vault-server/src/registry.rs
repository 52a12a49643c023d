//! The connections the daemon knows, by name.
//!
//! Invariant: one `Connection` object per name for the daemon's life (a
//! replace updates it in place), so a refresh in flight can never write an
//! old chain's tokens over a newer import.

use crate::connection::Connection;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

#[derive(Default)]
pub struct Registry {
    map: RwLock<BTreeMap<String, Arc<Connection>>>,
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<Arc<Connection>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Every connection, in name order.
    pub fn all(&self) -> Vec<Arc<Connection>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Adds `conn` unless the name is taken; returns the one now registered.
    pub fn insert_new(&self, conn: Connection) -> Arc<Connection> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        map.entry(conn.name.clone())
            .or_insert_with(|| Arc::new(conn))
            .clone()
    }

    pub fn remove(&self, name: &str) -> Option<Arc<Connection>> {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
