//! The etcd backend: the same sealed records, shared by several vaults,
//! with a cluster-wide lock around each refresh.
//!
//! Invariants:
//! - etcd only ever holds ciphertext (records are sealed by the same
//!   [`RecordCodec`] as the file store; every vault has the same key).
//! - A refresh happens under an etcd lock bound to a lease: if the holder
//!   dies, the lease expires and another vault carries on from what etcd
//!   holds.
//! - A refreshed record is written with a compare-and-swap on the revision
//!   read under the lock, so a holder that lost its lease can never write
//!   over a newer chain.

use super::{check_name, RecordCodec, RecordError, RefreshLock, Store, StoreChange, StoreError};
use crate::record::Record;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, LockOptions, Txn, TxnOp,
    WatchOptions,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long one etcd request may take before it counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a vault waits for another vault's refresh lock: longer than a
/// lease lives, so a dead holder's lock is always given up first.
const LOCK_WAIT: Duration = Duration::from_secs(60);
/// The pause before re-establishing a broken watch.
const REWATCH_DELAY: Duration = Duration::from_secs(1);
/// How often etcd is pinged, so `status` can say it is unreachable even
/// when nothing else talks to it, and a watch is renewed after an outage.
const HEALTH_PERIOD: Duration = Duration::from_secs(2);

pub struct EtcdStore {
    client: Client,
    endpoints: Vec<String>,
    prefix: String,
    codec: Arc<RecordCodec>,
    lock_ttl: Duration,
    /// Why etcd is unreachable, while it is.
    problem: Arc<Mutex<Option<String>>>,
    /// Told when etcd comes back, so the watch is re-established.
    recovered: Arc<tokio::sync::Notify>,
}

/// `etcd://h1:2379,h2:2379` → `["http://h1:2379", "http://h2:2379"]`.
pub fn parse_store_url(url: &str) -> Result<Vec<String>, String> {
    let rest = url.strip_prefix("etcd://").ok_or_else(|| {
        format!("--store `{url}`: expected `file` or etcd://HOST:PORT[,HOST:PORT…]")
    })?;
    let endpoints: Vec<String> = rest
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| format!("http://{}", h.trim_end_matches('/')))
        .collect();
    if endpoints.is_empty() {
        return Err(format!("--store `{url}` names no etcd endpoint"));
    }
    Ok(endpoints)
}

impl EtcdStore {
    pub async fn connect(
        endpoints: Vec<String>,
        prefix: &str,
        codec: RecordCodec,
        lock_ttl: Duration,
    ) -> Result<EtcdStore, StoreError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT);
        let client = Client::connect(&endpoints, Some(options))
            .await
            .map_err(|e| unreachable(&endpoints, &e))?;
        let prefix = if prefix.ends_with('/') {
            prefix.to_string()
        } else {
            format!("{prefix}/")
        };
        let store = EtcdStore {
            client,
            endpoints,
            prefix,
            codec: Arc::new(codec),
            lock_ttl,
            problem: Arc::new(Mutex::new(None)),
            recovered: Arc::new(tokio::sync::Notify::new()),
        };
        // Fail now, clearly, rather than at the first request.
        store
            .client
            .clone()
            .status()
            .await
            .map_err(|e| store.fail(&e))?;
        store.watch_health();
        Ok(store)
    }

    /// Pings etcd every [`HEALTH_PERIOD`], keeping `problem` current.
    fn watch_health(&self) {
        let (mut client, problem, recovered, endpoints) = (
            self.client.clone(),
            self.problem.clone(),
            self.recovered.clone(),
            self.endpoints.clone(),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEALTH_PERIOD).await;
                let ping = tokio::time::timeout(REQUEST_TIMEOUT, client.status()).await;
                let mut p = problem.lock().unwrap_or_else(|p| p.into_inner());
                match ping {
                    Ok(Ok(_)) => {
                        if p.take().is_some() {
                            tracing::info!("etcd is reachable again");
                            recovered.notify_one();
                        }
                    }
                    Ok(Err(e)) => *p = Some(unreachable(&endpoints, &e).to_string()),
                    Err(_) => {
                        *p = Some(format!(
                            "etcd at {} is unreachable: no answer",
                            endpoints.join(",")
                        ))
                    }
                }
            }
        });
    }

    fn record_key(&self, name: &str) -> String {
        format!("{}records/{name}", self.prefix)
    }

    fn records_prefix(&self) -> String {
        format!("{}records/", self.prefix)
    }

    /// Notes (and returns) an unreachable-etcd error.
    fn fail(&self, e: &etcd_client::Error) -> StoreError {
        let err = unreachable(&self.endpoints, e);
        *self.problem.lock().unwrap_or_else(|p| p.into_inner()) = Some(err.to_string());
        err
    }

    fn ok(&self) {
        if self
            .problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some()
        {
            self.recovered.notify_one();
        }
    }

    fn decode(
        codec: &RecordCodec,
        prefix: &str,
        key: &[u8],
        value: &[u8],
    ) -> Option<(String, Result<Record, RecordError>)> {
        let key = std::str::from_utf8(key).ok()?;
        let name = key.strip_prefix(prefix)?;
        if !shared::api::valid_connection_name(name) {
            return None;
        }
        Some((name.to_string(), codec.open(name, value)))
    }

    async fn snapshot(
        client: &mut Client,
        codec: &RecordCodec,
        prefix: &str,
    ) -> Result<Vec<(String, Result<Record, RecordError>)>, etcd_client::Error> {
        let resp = client
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await?;
        let mut out: Vec<_> = resp
            .kvs()
            .iter()
            .filter_map(|kv| Self::decode(codec, prefix, kv.key(), kv.value()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

fn unreachable(endpoints: &[String], e: &etcd_client::Error) -> StoreError {
    StoreError::Unavailable(format!(
        "etcd at {} is unreachable: {e}",
        endpoints.join(",")
    ))
}

/// A held etcd lock and the lease that keeps it.
struct EtcdLock {
    client: Client,
    key: Vec<u8>,
    lease: i64,
    keepalive: tokio::task::JoinHandle<()>,
}

#[async_trait::async_trait]
impl RefreshLock for EtcdLock {
    async fn release(mut self: Box<Self>) {
        self.keepalive.abort();
        if let Err(e) = self.client.unlock(self.key.clone()).await {
            tracing::warn!(error = %e, "cannot release the etcd refresh lock; its lease will expire");
        }
        let _ = self.client.lease_revoke(self.lease).await;
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn load_all(&self) -> Result<Vec<(String, Result<Record, RecordError>)>, StoreError> {
        let mut client = self.client.clone();
        let all = Self::snapshot(&mut client, &self.codec, &self.records_prefix())
            .await
            .map_err(|e| self.fail(&e))?;
        self.ok();
        Ok(all)
    }

    async fn load(&self, name: &str) -> Result<Option<Result<Record, RecordError>>, StoreError> {
        Ok(self.load_revision(name).await?.map(|(r, _)| r))
    }

    async fn load_revision(
        &self,
        name: &str,
    ) -> Result<Option<(Result<Record, RecordError>, Option<i64>)>, StoreError> {
        check_name(name)?;
        let resp = self
            .client
            .clone()
            .get(self.record_key(name), None)
            .await
            .map_err(|e| self.fail(&e))?;
        self.ok();
        Ok(resp
            .kvs()
            .first()
            .map(|kv| (self.codec.open(name, kv.value()), Some(kv.mod_revision()))))
    }

    async fn put(&self, record: &Record) -> Result<(), StoreError> {
        check_name(&record.name)?;
        let sealed = self.codec.seal(record)?;
        self.client
            .clone()
            .put(self.record_key(&record.name), sealed, None)
            .await
            .map_err(|e| self.fail(&e))?;
        self.ok();
        Ok(())
    }

    async fn put_if_unchanged(
        &self,
        record: &Record,
        revision: Option<i64>,
    ) -> Result<(), StoreError> {
        let Some(revision) = revision else {
            return self.put(record).await;
        };
        check_name(&record.name)?;
        let key = self.record_key(&record.name);
        let sealed = self.codec.seal(record)?;
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                revision,
            )])
            .and_then([TxnOp::put(key, sealed, None)]);
        let resp = self
            .client
            .clone()
            .txn(txn)
            .await
            .map_err(|e| self.fail(&e))?;
        self.ok();
        if resp.succeeded() {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!(
                "connection {:?} changed in etcd while this vault refreshed it (its lock's lease expired?)",
                record.name
            )))
        }
    }

    async fn remove(&self, name: &str) -> Result<(), StoreError> {
        check_name(name)?;
        self.client
            .clone()
            .delete(self.record_key(name), None)
            .await
            .map_err(|e| self.fail(&e))?;
        self.ok();
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "etcd store at {} (prefix {})",
            self.endpoints.join(","),
            self.prefix
        )
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn lock(&self, name: &str) -> Result<Option<Box<dyn RefreshLock>>, StoreError> {
        check_name(name)?;
        let mut client = self.client.clone();
        let ttl = self.lock_ttl.as_secs().max(1) as i64;
        let lease = client
            .lease_grant(ttl, None)
            .await
            .map_err(|e| self.fail(&e))?
            .id();
        let (mut keeper, mut responses) = client
            .lease_keep_alive(lease)
            .await
            .map_err(|e| self.fail(&e))?;
        let period = Duration::from_secs((ttl as u64 / 3).max(1));
        let keepalive = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                if keeper.keep_alive().await.is_err() || responses.message().await.is_err() {
                    return;
                }
            }
        });
        let key = format!("{}locks/{name}", self.prefix);
        let locked = tokio::time::timeout(
            LOCK_WAIT,
            client.lock(key, Some(LockOptions::new().with_lease(lease))),
        )
        .await;
        match locked {
            Ok(Ok(resp)) => {
                self.ok();
                Ok(Some(Box::new(EtcdLock {
                    client,
                    key: resp.key().to_vec(),
                    lease,
                    keepalive,
                })))
            }
            Ok(Err(e)) => {
                keepalive.abort();
                let _ = client.lease_revoke(lease).await;
                Err(self.fail(&e))
            }
            Err(_) => {
                keepalive.abort();
                let _ = client.lease_revoke(lease).await;
                Err(StoreError::Unavailable(format!(
                    "timed out after {}s waiting for another vault's refresh lock on {name:?}",
                    LOCK_WAIT.as_secs()
                )))
            }
        }
    }

    async fn watch(&self) -> Result<Option<mpsc::Receiver<StoreChange>>, StoreError> {
        let (tx, rx) = mpsc::channel(1024);
        let client = self.client.clone();
        let prefix = self.records_prefix();
        let codec = self.codec.clone();
        let problem = self.problem.clone();
        let endpoints = self.endpoints.clone();
        let recovered = self.recovered.clone();
        tokio::spawn(async move {
            let mut client = client;
            let mut first = true;
            loop {
                // After a gap, what changed meanwhile comes as one snapshot.
                if !first {
                    match Self::snapshot(&mut client, &codec, &prefix).await {
                        Ok(all) => {
                            if tx.send(StoreChange::Snapshot(all)).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            *problem.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some(unreachable(&endpoints, &e).to_string());
                            tokio::time::sleep(REWATCH_DELAY).await;
                            continue;
                        }
                    }
                }
                first = false;
                let stream = client
                    .watch(prefix.clone(), Some(WatchOptions::new().with_prefix()))
                    .await;
                let mut stream = match stream {
                    Ok(w) => w,
                    Err(e) => {
                        *problem.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(unreachable(&endpoints, &e).to_string());
                        tokio::time::sleep(REWATCH_DELAY).await;
                        continue;
                    }
                };
                *problem.lock().unwrap_or_else(|p| p.into_inner()) = None;
                loop {
                    let message = tokio::select! {
                        m = stream.message() => m,
                        // After an outage the old stream may never say it broke.
                        _ = recovered.notified() => break,
                    };
                    match message {
                        Ok(Some(resp)) => {
                            for event in resp.events() {
                                let Some(kv) = event.kv() else { continue };
                                let change = match event.event_type() {
                                    EventType::Put => {
                                        match Self::decode(&codec, &prefix, kv.key(), kv.value()) {
                                            Some((name, record)) => {
                                                StoreChange::Put { name, record }
                                            }
                                            None => continue,
                                        }
                                    }
                                    EventType::Delete => match std::str::from_utf8(kv.key())
                                        .ok()
                                        .and_then(|k| k.strip_prefix(&prefix))
                                    {
                                        Some(name) => StoreChange::Delete {
                                            name: name.to_string(),
                                        },
                                        None => continue,
                                    },
                                };
                                if tx.send(change).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Ok(None) | Err(_) => {
                            *problem.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!(
                                "etcd at {} is unreachable: the watch broke off",
                                endpoints.join(",")
                            ));
                            tokio::time::sleep(REWATCH_DELAY).await;
                            break;
                        }
                    }
                }
            }
        });
        Ok(Some(rx))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn store_urls() {
        assert_eq!(
            super::parse_store_url("etcd://h1:2379,h2:2379").unwrap(),
            vec!["http://h1:2379".to_string(), "http://h2:2379".to_string()]
        );
        assert!(super::parse_store_url("etcd://").is_err());
        assert!(super::parse_store_url("redis://x").is_err());
    }
}
