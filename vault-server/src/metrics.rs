//! `GET /metrics`: Prometheus text for the operator's monitoring.
//!
//! Invariant: labels are connection names, operations, results, states
//! and directions, never anything secret; per-connection gauges are
//! rebuilt at each scrape, so a removed connection disappears.

use crate::events::{Event, Listener, RefreshResult};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabel {
    connection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefreshLabels {
    connection: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

/// Latency buckets: 50 µs doubling to about 1.6 s, then +Inf.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// A connection as a scrape sees it.
pub struct ConnectionSample {
    pub name: String,
    /// Seconds until the access token expires (negative once expired).
    pub expires_in: Option<f64>,
    pub state: &'static str,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    expiry: Family<ConnectionLabel, Gauge<f64, AtomicU64>>,
    refreshes: Family<RefreshLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<OperationLabel, Histogram, fn() -> Histogram>,
    transfer_bytes: Family<DirectionLabel, Counter>,
    connections: Family<StateLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Mutex::new(Registry::with_prefix("token_vault")),
            expiry: Family::default(),
            refreshes: Family::default(),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            transfer_bytes: Family::default(),
            connections: Family::default(),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(|p| p.into_inner());
            r.register(
                "access_token_expiry_seconds",
                "Seconds until each connection's access token expires",
                m.expiry.clone(),
            );
            r.register(
                "refreshes",
                "Refresh attempts by connection and result",
                m.refreshes.clone(),
            );
            r.register(
                "requests",
                "Socket requests by operation and result",
                m.requests.clone(),
            );
            r.register(
                "request_duration_seconds",
                "Socket request latency by operation",
                m.latency.clone(),
            );
            r.register(
                "transfer_bytes",
                "File bytes moved through the vault by direction",
                m.transfer_bytes.clone(),
            );
            r.register("connections", "Connections by state", m.connections.clone());
        }
        m
    }

    /// Counts a finished socket request.
    pub fn request(&self, operation: &str, status: u16, seconds: f64) {
        let result = match status {
            200..=299 => "ok",
            403 => "denied",
            400..=499 => "client_error",
            _ => "server_error",
        };
        self.requests
            .get_or_create(&RequestLabels {
                operation: operation.to_string(),
                result: result.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&OperationLabel {
                operation: operation.to_string(),
            })
            .observe(seconds);
    }

    /// Counts file bytes moved: `direction` is `upload` or `download`.
    pub fn transfer(&self, direction: &'static str, bytes: u64) {
        self.transfer_bytes
            .get_or_create(&DirectionLabel {
                direction: direction.to_string(),
            })
            .inc_by(bytes);
    }

    /// The Prometheus text, with per-connection gauges from `samples`.
    pub fn render(&self, samples: &[ConnectionSample]) -> String {
        self.expiry.clear();
        self.connections.clear();
        for state in ["ok", "refreshing", "backoff", "needs-reauth", "corrupt"] {
            self.connections
                .get_or_create(&StateLabel {
                    state: state.into(),
                })
                .set(0);
        }
        for s in samples {
            if let Some(secs) = s.expires_in {
                self.expiry
                    .get_or_create(&ConnectionLabel {
                        connection: s.name.clone(),
                    })
                    .set(secs);
            }
            self.connections
                .get_or_create(&StateLabel {
                    state: s.state.into(),
                })
                .inc();
        }
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Listener for Metrics {
    fn event(&self, _connection: &str, _event: &Event) {}

    fn refresh_result(&self, connection: &str, result: RefreshResult) {
        self.refreshes
            .get_or_create(&RefreshLabels {
                connection: connection.to_string(),
                result: result.as_str().to_string(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.request("token", 200, 0.0001);
        m.refresh_result("box", RefreshResult::Refreshed);
        m.transfer("upload", 42);
        let text = m.render(&[ConnectionSample {
            name: "box".into(),
            expires_in: Some(100.0),
            state: "ok",
        }]);
        for needle in [
            "token_vault_requests_total{operation=\"token\",result=\"ok\"} 1",
            "token_vault_refreshes_total{connection=\"box\",result=\"refreshed\"} 1",
            "token_vault_transfer_bytes_total{direction=\"upload\"} 42",
            "token_vault_access_token_expiry_seconds{connection=\"box\"} 100",
            "token_vault_connections{state=\"ok\"} 1",
            "token_vault_request_duration_seconds_bucket",
        ] {
            assert!(text.contains(needle), "missing {needle}:\n{text}");
        }
    }
}
