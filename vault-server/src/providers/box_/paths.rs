//! Box addresses items by id, not by path: this file lists folders (every
//! page, by marker) and finds the item at a path by listing its parents,
//! filling the path cache as it goes; it also creates and deletes items.
//!
//! Invariants: names match case-insensitively (children are cached under
//! their lowercased path); only active items are listed, never trashed
//! ones; a cached parent that Box says is gone is forgotten and resolved
//! afresh once.

use super::{box_code, cache_key, conflict_item, entry, BoxFiles, Item, ROOT_ID};
use crate::providers::{read_body, status_error, ProviderCallError};
use crate::transfer::path::RemotePath;
use crate::transfer::{ConflictKind, TransferError};
use serde_json::{json, Value};
use shared::api::{Entry, EntryKind};

/// The fields a listing asks for.
const LIST_FIELDS: &str = "type,id,name,size,modified_at,sha1,item_status";
/// Entries per listing page (Box's maximum).
const PAGE_LIMIT: u32 = 1000;

impl BoxFiles {
    /// Every active item in folder `id`, following markers.
    pub(super) async fn list_folder(&self, id: &str) -> Result<Vec<Entry>, TransferError> {
        let mut entries = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let url = format!("{}/folders/{id}/items", self.api);
            let m = marker.clone();
            let response = self
                .caller
                .send(|http, token| {
                    let mut q = vec![
                        ("fields", LIST_FIELDS.to_string()),
                        ("limit", PAGE_LIMIT.to_string()),
                        ("usemarker", "true".to_string()),
                    ];
                    if let Some(m) = &m {
                        q.push(("marker", m.clone()));
                    }
                    Ok(http.get(&url).bearer_auth(token.expose()).query(&q))
                })
                .await?;
            let status = response.status().as_u16();
            let body = read_body(response).await?;
            if status == 404 {
                return Err(TransferError::NotFound(format!("Box folder {id}")));
            }
            if status != 200 {
                return Err(status_error(status, &body).into());
            }
            let page: Value = serde_json::from_slice(&body).map_err(|_| {
                ProviderCallError::BadAnswer("a folder listing that is not JSON".into())
            })?;
            for item in page
                .get("entries")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let active = item
                    .get("item_status")
                    .and_then(Value::as_str)
                    .is_none_or(|s| s == "active");
                if let (true, Some(e)) = (active, entry(item)) {
                    entries.push(e);
                }
            }
            marker = page
                .get("next_marker")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .map(str::to_string);
            if marker.is_none() {
                return Ok(entries);
            }
        }
    }

    /// The item at `path`, from the cache or by listing parents.
    pub(super) async fn resolve(&self, path: &RemotePath) -> Result<Item, TransferError> {
        let Some(parent) = path.parent_in_account() else {
            return Ok(Item {
                id: ROOT_ID.into(),
                kind: EntryKind::Folder,
                sha1: None,
            });
        };
        let key = cache_key(path);
        if let Some(item) = self.cache.get(&key) {
            return Ok(item);
        }
        let folder = Box::pin(self.resolve(&parent)).await?;
        if folder.kind != EntryKind::Folder {
            return Err(TransferError::conflict(
                ConflictKind::NotAFolder,
                format!("`{}` is a file, not a folder", parent.client_path()),
            ));
        }
        let children = match self.list_folder(&folder.id).await {
            Err(TransferError::NotFound(_)) => {
                // The cached parent is stale: forget it and resolve afresh once.
                self.cache.forget(&cache_key(&parent));
                let folder = Box::pin(self.resolve(&parent)).await?;
                self.list_folder(&folder.id).await?
            }
            other => other?,
        };
        let parent_key = cache_key(&parent);
        let mut found = None;
        for child in children {
            let item = Item {
                id: child.id.clone(),
                kind: child.kind,
                sha1: child.hash.clone(),
            };
            let child_key = format!(
                "{}/{}",
                parent_key.trim_end_matches('/'),
                child.name.to_lowercase()
            );
            if child_key == key {
                found = Some(item.clone());
            }
            self.cache.put(child_key, item);
        }
        found.ok_or_else(|| TransferError::NotFound(path.client_path()))
    }

    /// Resolves, treating "not found" as `None`.
    pub(super) async fn lookup(&self, path: &RemotePath) -> Result<Option<Item>, TransferError> {
        match self.resolve(path).await {
            Ok(item) => Ok(Some(item)),
            Err(TransferError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates folder `name` in `parent_id`; an existing folder is success.
    pub(super) async fn create_folder(
        &self,
        parent_id: &str,
        name: &str,
    ) -> Result<(Item, bool), TransferError> {
        let url = format!("{}/folders", self.api);
        let body = json!({"name": name, "parent": {"id": parent_id}});
        let (status, bytes) = self.post_json(&url, &body).await?;
        match status {
            200 | 201 => {
                let v: Value = serde_json::from_slice(&bytes).map_err(|_| {
                    ProviderCallError::BadAnswer("a folder that is not JSON".into())
                })?;
                let e = entry(&v)
                    .ok_or_else(|| ProviderCallError::BadAnswer("a folder without an id".into()))?;
                Ok((
                    Item {
                        id: e.id,
                        kind: EntryKind::Folder,
                        sha1: None,
                    },
                    true,
                ))
            }
            409 => match conflict_item(&bytes) {
                Some(item) if item.kind == EntryKind::Folder => Ok((item, false)),
                Some(_) => Err(TransferError::conflict(
                    ConflictKind::InTheWay,
                    format!("a file named `{name}` is in the way"),
                )),
                None => Err(status_error(status, &bytes).into()),
            },
            404 => Err(TransferError::NotFound(format!("Box folder {parent_id}"))),
            _ => Err(status_error(status, &bytes).into()),
        }
    }

    pub(super) async fn delete_item(
        &self,
        item: &Item,
        recursive: bool,
    ) -> Result<(), TransferError> {
        let url = match item.kind {
            EntryKind::Folder => format!("{}/folders/{}", self.api, item.id),
            _ => format!("{}/files/{}", self.api, item.id),
        };
        let folder = item.kind == EntryKind::Folder;
        let response = self
            .caller
            .send(|http, token| {
                let mut req = http.delete(&url).bearer_auth(token.expose());
                if folder && recursive {
                    req = req.query(&[("recursive", "true")]);
                }
                Ok(req)
            })
            .await?;
        let status = response.status().as_u16();
        let body = read_body(response).await?;
        match status {
            200 | 204 => Ok(()),
            404 => Err(TransferError::NotFound(format!("Box item {}", item.id))),
            400 if box_code(&body).as_deref() == Some("folder_not_empty") => Err(
                TransferError::conflict(ConflictKind::FolderNotEmpty, "the folder is not empty"),
            ),
            _ => Err(status_error(status, &body).into()),
        }
    }
}
