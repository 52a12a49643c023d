//! The one task that wakes connections when their refresh is due.
//!
//! Invariant: it sleeps until the earliest deadline (never polls every
//! connection on a timer); a deadline that was superseded by a newer one
//! for the same connection is skipped when it comes up.

use crate::refresh::Engine;
use chrono::{DateTime, Utc};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The longest single sleep: wall-clock deadlines are re-read at least this
/// often, so a suspended machine or a clock step is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(300);

/// Runs until the engine's schedule sender is dropped.
pub async fn run(
    engine: Arc<Engine>,
    mut updates: mpsc::UnboundedReceiver<(String, DateTime<Utc>)>,
) {
    let mut heap: BinaryHeap<Reverse<(DateTime<Utc>, String)>> = BinaryHeap::new();
    let mut current: HashMap<String, DateTime<Utc>> = HashMap::new();
    loop {
        let sleep = match heap.peek() {
            Some(Reverse((at, _))) => (*at - Utc::now())
                .to_std()
                .unwrap_or_default()
                .min(MAX_SLEEP),
            None => MAX_SLEEP,
        };
        tokio::select! {
            update = updates.recv() => {
                let Some((name, at)) = update else { return };
                current.insert(name.clone(), at);
                heap.push(Reverse((at, name)));
            }
            _ = tokio::time::sleep(sleep) => {
                let now = Utc::now();
                while let Some(Reverse((at, _))) = heap.peek() {
                    if *at > now {
                        break;
                    }
                    let Some(Reverse((at, name))) = heap.pop() else { break };
                    if current.get(&name) != Some(&at) {
                        continue; // superseded
                    }
                    current.remove(&name);
                    let engine = engine.clone();
                    // The engine bounds how many of these refresh at once.
                    tokio::spawn(async move { engine.refresh_due(&name).await });
                }
            }
        }
    }
}
