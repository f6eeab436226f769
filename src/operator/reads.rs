//! Reads that watches share: a credential Secret, a ServiceAccount's temporary keys, the
//! operator's own. Each read result is kept for as long as its reader says it may be reused, and
//! a key is read once at a time, so watches that need it together wait for one read rather
//! than each making their own.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::lock::lock;

/// Results by key, each reusable until its own deadline, and one gate per key being read.
pub struct SharedReads<K, V> {
    recent: Mutex<HashMap<K, (Instant, V)>>,
    gates: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K, V> Default for SharedReads<K, V> {
    fn default() -> Self {
        Self {
            recent: Mutex::new(HashMap::new()),
            gates: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Clone + Eq + Hash, V: Clone> SharedReads<K, V> {
    /// The value of `key`: a result still within its reuse window, unless `fresh`, else what
    /// `read` gives. `read` returns the value and how long it may be reused (zero: not kept).
    /// Concurrent callers for one key wait for one read; those not asking for `fresh` take its
    /// result.
    pub async fn get<F>(&self, key: &K, fresh: bool, read: F) -> V
    where
        F: Future<Output = (V, Duration)>,
    {
        if !fresh && let Some(reused) = self.reusable(key) {
            return reused;
        }
        let gate = self.gate(key);
        let _reading = gate.lock().await;
        // Read by another caller while this one waited.
        if !fresh && let Some(reused) = self.reusable(key) {
            return reused;
        }
        let (value, reuse) = read.await;
        if !reuse.is_zero() {
            lock(&self.recent).insert(key.clone(), (Instant::now() + reuse, value.clone()));
        }
        value
    }

    /// Forgets the result of `key`, so the next caller reads again.
    pub fn forget(&self, key: &K) {
        lock(&self.recent).remove(key);
    }

    fn reusable(&self, key: &K) -> Option<V> {
        let mut recent = lock(&self.recent);
        let now = Instant::now();
        recent.retain(|_, (until, _)| *until > now);
        recent.get(key).map(|(_, value)| value.clone())
    }

    /// The gate of `key`; gates nobody holds or waits for are dropped on the way.
    fn gate(&self, key: &K) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = lock(&self.gates);
        gates.retain(|_, gate| Arc::strong_count(gate) > 1);
        Arc::clone(gates.entry(key.clone()).or_default())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_read_until_its_deadline() {
        let reads = SharedReads::<&str, usize>::default();
        let count = AtomicUsize::new(0);
        let read = || async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            (
                count.fetch_add(1, Ordering::SeqCst) + 1,
                Duration::from_secs(5),
            )
        };
        let values =
            futures::future::join_all((0..8).map(|_| reads.get(&"k", false, read()))).await;
        assert_eq!(values, [1; 8]);
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(reads.get(&"k", false, read()).await, 1);
        assert_eq!(reads.get(&"k", true, read()).await, 2, "fresh reads again");
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(reads.get(&"k", false, read()).await, 3, "past the deadline");
        reads.forget(&"k");
        assert_eq!(reads.get(&"k", false, read()).await, 4, "forgotten");
    }

    #[tokio::test]
    async fn a_result_with_no_reuse_is_not_kept() {
        let reads = SharedReads::<u8, u8>::default();
        assert_eq!(reads.get(&1, false, async { (1, Duration::ZERO) }).await, 1);
        assert_eq!(reads.get(&1, false, async { (2, Duration::ZERO) }).await, 2);
    }
}
