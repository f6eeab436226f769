//! The upstream budget: a concurrency limit and a token-bucket rate limit per endpoint and access
//! key, and sharing, so that watches of the same target cost one call between them.
//!
//! Nothing here waits for a slot: a watch that finds its budget spent is told how long to wait
//! and gives its reconcile slot back, so one slow or hung endpoint never holds up the watches of
//! another.

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How long to come back after finding every concurrent slot of a budget taken.
pub const BUSY_RETRY: Duration = Duration::from_secs(1);
/// A failed answer is shared for at most this long, so a transient failure is not spread over a
/// whole interval of other watches.
pub const FAILURE_SHARE: Duration = Duration::from_secs(10);
/// Answers older than this are forgotten, whatever the intervals.
pub const MAX_SHARE_AGE: Duration = Duration::from_secs(3600);

/// Limits on the calls to one endpoint with one access key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Calls in flight at once.
    pub concurrency: NonZeroU32,
    /// Calls per second, sustained.
    pub rate_per_second: NonZeroU32,
    /// Calls allowed in a burst above the sustained rate.
    pub burst: NonZeroU32,
}

/// Whose budget a call spends: an endpoint (scheme, host and port) with an access key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BudgetKey {
    /// The endpoint's authority.
    pub endpoint: String,
    /// The access key id.
    pub access_key_id: String,
}

/// Per-[`BudgetKey`] concurrency slots and rate tokens.
pub struct Budget {
    limits: Limits,
    rate: DefaultKeyedRateLimiter<BudgetKey>,
    slots: Mutex<HashMap<BudgetKey, Arc<Semaphore>>>,
}

impl Budget {
    /// A budget applying `limits` to every key.
    pub fn new(limits: Limits) -> Self {
        let quota = Quota::per_second(limits.rate_per_second).allow_burst(limits.burst);
        Self {
            limits,
            rate: RateLimiter::keyed(quota),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// A permit for one call now, or how long to wait before asking again. The permit holds a
    /// concurrency slot until dropped.
    pub fn try_admit(&self, key: &BudgetKey) -> Result<OwnedSemaphorePermit, Duration> {
        let slots = {
            let mut all = lock(&self.slots);
            Arc::clone(all.entry(key.clone()).or_insert_with(|| {
                Arc::new(Semaphore::new(self.limits.concurrency.get() as usize))
            }))
        };
        // A slot first, so that a refused slot spends no rate token.
        let permit = slots.try_acquire_owned().map_err(|_| BUSY_RETRY)?;
        match self.rate.check_key(key) {
            Ok(()) => Ok(permit),
            Err(not_until) => Err(not_until.wait_time_from(DefaultClock::default().now())),
        }
    }
}

/// One answer, shared by every watch that asks for the same thing while it is fresh.
struct Answer<T> {
    at: Instant,
    value: T,
}

enum Slot<T: Clone> {
    InFlight(Shared<BoxFuture<'static, Option<T>>>),
    Done(Answer<T>),
}

/// Single-flight calls with a short memory: while a call for a key is running, others asking
/// for the same key wait for it; afterwards its answer is reused while fresh enough for the
/// caller.
pub struct SharedCalls<K, T: Clone> {
    slots: Arc<Mutex<HashMap<K, Slot<T>>>>,
}

impl<K, T: Clone> Default for SharedCalls<K, T> {
    fn default() -> Self {
        Self {
            slots: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

/// How a shared call went.
#[derive(Debug)]
pub enum SharedOutcome<T> {
    /// The answer, from this caller's own call, one in flight, or a fresh enough earlier one.
    Answer {
        /// The answer.
        value: T,
        /// Whether this caller started the upstream call (for counting calls).
        called: bool,
    },
    /// The budget is spent: ask again after this long.
    Deferred(Duration),
    /// The call's task panicked or was cancelled.
    Lost,
}

impl<K, T> SharedCalls<K, T>
where
    K: Clone + Eq + Hash + Send + 'static,
    T: Clone + Send + Sync + 'static,
{
    /// The answer for `key`: reused if one is younger than `fresh_within` (failures, as judged
    /// by `is_failure`, at most [`FAILURE_SHARE`]), joined if a call is in flight, or else made
    /// by `call` once `admit` grants a permit.
    pub async fn get<P, F>(
        &self,
        key: K,
        fresh_within: Duration,
        is_failure: impl Fn(&T) -> bool,
        admit: impl FnOnce() -> Result<P, Duration>,
        call: F,
    ) -> SharedOutcome<T>
    where
        P: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let fresh_within = fresh_within.min(MAX_SHARE_AGE);
        let in_flight = {
            let mut slots = lock(&self.slots);
            slots.retain(|_, slot| match slot {
                Slot::Done(answer) => answer.at.elapsed() < MAX_SHARE_AGE,
                Slot::InFlight(_) => true,
            });
            match slots.get(&key) {
                Some(Slot::Done(answer)) => {
                    let window = if is_failure(&answer.value) {
                        fresh_within.min(FAILURE_SHARE)
                    } else {
                        fresh_within
                    };
                    if answer.at.elapsed() < window {
                        return SharedOutcome::Answer {
                            value: answer.value.clone(),
                            called: false,
                        };
                    }
                    None
                }
                Some(Slot::InFlight(running)) => Some(running.clone()),
                None => None,
            }
        };
        if let Some(running) = in_flight {
            return match running.await {
                Some(value) => SharedOutcome::Answer {
                    value,
                    called: false,
                },
                None => SharedOutcome::Lost,
            };
        }
        let permit = match admit() {
            Ok(permit) => permit,
            Err(wait) => return SharedOutcome::Deferred(wait),
        };
        // The call runs in its own task, which records the answer itself: a caller that is
        // dropped half-way cannot leave the key stuck in flight.
        let slots = Arc::clone(&self.slots);
        let task_key = key.clone();
        let task = tokio::spawn(async move {
            let value = call.await;
            drop(permit);
            lock(&slots).insert(
                task_key,
                Slot::Done(Answer {
                    at: Instant::now(),
                    value: value.clone(),
                }),
            );
            value
        });
        let running = async move { task.await.ok() }.boxed().shared();
        lock(&self.slots).insert(key.clone(), Slot::InFlight(running.clone()));
        match running.await {
            Some(value) => SharedOutcome::Answer {
                value,
                called: true,
            },
            None => {
                lock(&self.slots).remove(&key);
                SharedOutcome::Lost
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning means another task panicked while holding the lock; the maps stay consistent
    // because every update is a single insert or remove.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn limits(concurrency: u32, rate: u32, burst: u32) -> Limits {
        Limits {
            concurrency: NonZeroU32::new(concurrency).unwrap(),
            rate_per_second: NonZeroU32::new(rate).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
        }
    }

    fn key(endpoint: &str, ak: &str) -> BudgetKey {
        BudgetKey {
            endpoint: endpoint.to_owned(),
            access_key_id: ak.to_owned(),
        }
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_asks_to_wait() {
        let budget = Budget::new(limits(100, 1, 3));
        let k = key("a", "ak");
        let mut permits = Vec::new();
        for _ in 0..3 {
            permits.push(budget.try_admit(&k).expect("within the burst"));
        }
        let wait = budget.try_admit(&k).expect_err("burst spent");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
    }

    #[test]
    fn budgets_of_other_keys_are_separate() {
        let budget = Budget::new(limits(1, 1, 1));
        let _held = budget.try_admit(&key("a", "ak")).unwrap();
        assert!(
            budget.try_admit(&key("b", "ak")).is_ok(),
            "another endpoint"
        );
        assert!(budget.try_admit(&key("a", "other")).is_ok(), "another key");
    }

    #[test]
    fn a_full_concurrency_limit_spends_no_rate_token() {
        let budget = Budget::new(limits(1, 1, 1));
        let k = key("a", "ak");
        let held = budget.try_admit(&k).unwrap();
        assert_eq!(budget.try_admit(&k).unwrap_err(), BUSY_RETRY);
        drop(held);
        // The one token went to the first call; the refused one did not spend another.
        assert!(budget.try_admit(&k).is_err());
    }

    #[tokio::test]
    async fn concurrent_askers_share_one_call() {
        let shared: Arc<SharedCalls<&str, u32>> = Arc::default();
        let calls = Arc::new(AtomicU32::new(0));
        let ask = |shared: Arc<SharedCalls<&'static str, u32>>, calls: Arc<AtomicU32>| async move {
            shared
                .get(
                    "target",
                    Duration::from_secs(60),
                    |_| false,
                    || Ok::<_, Duration>(()),
                    async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        7
                    },
                )
                .await
        };
        let (a, b) = tokio::join!(
            ask(shared.clone(), calls.clone()),
            ask(shared.clone(), calls.clone())
        );
        assert!(matches!(a, SharedOutcome::Answer { value: 7, .. }));
        assert!(matches!(b, SharedOutcome::Answer { value: 7, .. }));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // And a later asker within the freshness window reuses it.
        let c = ask(shared.clone(), calls.clone()).await;
        assert!(matches!(
            c,
            SharedOutcome::Answer {
                value: 7,
                called: false
            }
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_shared_briefly_and_stale_answers_not_at_all() {
        let shared: SharedCalls<&str, Result<u32, ()>> = SharedCalls::default();
        let get = |value: Result<u32, ()>, fresh: Duration| {
            shared.get(
                "t",
                fresh,
                |v| v.is_err(),
                || Ok::<_, Duration>(()),
                async move { value },
            )
        };
        assert!(matches!(
            get(Err(()), Duration::from_secs(300)).await,
            SharedOutcome::Answer { called: true, .. }
        ));
        assert!(matches!(
            get(Ok(1), Duration::from_secs(300)).await,
            SharedOutcome::Answer { called: false, .. }
        ));
        tokio::time::advance(FAILURE_SHARE).await;
        assert!(matches!(
            get(Ok(1), Duration::from_secs(300)).await,
            SharedOutcome::Answer {
                value: Ok(1),
                called: true
            }
        ));
        assert!(matches!(
            get(Ok(2), Duration::ZERO).await,
            SharedOutcome::Answer {
                value: Ok(2),
                called: true
            }
        ));
    }

    #[tokio::test]
    async fn a_spent_budget_defers_without_calling() {
        let shared: SharedCalls<&str, u32> = SharedCalls::default();
        let outcome = shared
            .get(
                "t",
                Duration::ZERO,
                |_| false,
                || Err::<(), _>(Duration::from_secs(2)),
                async { 1 },
            )
            .await;
        assert!(matches!(outcome, SharedOutcome::Deferred(d) if d == Duration::from_secs(2)));
    }
}
