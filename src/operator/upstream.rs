//! The upstream budget: a concurrency limit and a token-bucket rate limit per endpoint and access
//! key, and sharing, so that watches of the same target cost one call between them.
//!
//! Nothing here waits for a slot: a watch that finds its budget spent is told how long to wait
//! and gives its reconcile slot back, so one slow or hung endpoint never holds up the watches of
//! another.

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::lock::lock;

/// How long to come back after finding every concurrent slot of a budget taken.
pub const BUSY_RETRY: Duration = Duration::from_secs(1);
/// A failed answer is shared for at most this long, so a transient failure is not spread over a
/// whole interval of other watches.
pub const FAILURE_SHARE: Duration = Duration::from_secs(10);
/// Answers older than this are forgotten, whatever the intervals.
pub const MAX_SHARE_AGE: Duration = Duration::from_secs(3600);
/// How often the shared answers are swept of those past [`MAX_SHARE_AGE`]. A lookup never
/// takes an answer that old anyway; sweeping on every call walked every remembered answer (one
/// per workspace) on every poll, a fifth of the operator's CPU at 2,000 watches.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

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

/// Whose budget a call spends: an endpoint (scheme, host and port) with a key.
///
/// The key is the whole key's fingerprint ([`Credentials::fingerprint`]), not its access key
/// id: an id is not secret (it is in every signed request), and a tenant who learnt another's
/// must not be able to spend that tenant's budget with a made-up secret.
///
/// [`Credentials::fingerprint`]: crate::modelarts::Credentials::fingerprint
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BudgetKey {
    /// The endpoint's authority.
    pub endpoint: String,
    /// The fingerprint of the key.
    pub credentials: String,
}

/// A place in a budget's rate-limit queue, held by the watch that got it until it calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    key: BudgetKey,
    at: Instant,
}

/// Per-[`BudgetKey`] concurrency slots and a token bucket (GCRA) that hands out reservations.
///
/// A watch that finds the bucket empty is not told "try again soon", which would make every
/// deferred watch wake at the same instant and fight for the next token (hundreds of wasted
/// reconciles a second once demand exceeds the rate). It is given the next free instant, which
/// is then its own: it sleeps until then and calls without asking again.
pub struct Budget {
    limits: Limits,
    /// Per key, the theoretical arrival time of the next call (GCRA).
    meters: Mutex<HashMap<BudgetKey, Instant>>,
    slots: Mutex<HashMap<BudgetKey, Arc<Semaphore>>>,
}

impl Budget {
    /// A budget applying `limits` to every key.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            meters: Mutex::new(HashMap::new()),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// A permit for one call now, or how long to wait before asking again. `reservation` is the
    /// caller's place in the rate-limit queue: taken here when it has none (or one for another
    /// key), kept while it must wait, and used up when the permit is granted. The permit holds
    /// a concurrency slot until dropped.
    pub fn try_admit(
        &self,
        key: &BudgetKey,
        reservation: &mut Option<Reservation>,
        now: Instant,
    ) -> Result<OwnedSemaphorePermit, Duration> {
        let at = match reservation {
            Some(held) if held.key == *key => held.at,
            _ => {
                let at = self.reserve(key, now);
                *reservation = Some(Reservation {
                    key: key.clone(),
                    at,
                });
                at
            }
        };
        if at > now {
            return Err(at - now);
        }
        let slots = {
            let mut all = lock(&self.slots);
            Arc::clone(all.entry(key.clone()).or_insert_with(|| {
                Arc::new(Semaphore::new(self.limits.concurrency.get() as usize))
            }))
        };
        // The reservation survives a full concurrency limit: the token is already this caller's.
        let permit = slots.try_acquire_owned().map_err(|_| BUSY_RETRY)?;
        *reservation = None;
        Ok(permit)
    }

    /// Forgets the budgets that are as good as new: a bucket refilled to its burst (its next
    /// arrival time has passed) and no call in flight. Keys are chosen by tenants (any endpoint,
    /// any key), so an unused one must not stay; forgetting it changes nothing, since a key
    /// that is asked for again starts from a full bucket either way.
    pub fn sweep(&self, now: Instant) {
        lock(&self.meters).retain(|_, arrival| *arrival > now);
        // Every permit holds a clone of its semaphore: one reference left means none is out.
        lock(&self.slots).retain(|_, slots| Arc::strong_count(slots) > 1);
    }

    /// How many keys the budget remembers (for tests).
    #[cfg(test)]
    pub fn remembered(&self) -> (usize, usize) {
        (lock(&self.meters).len(), lock(&self.slots).len())
    }

    /// The instant at which one more call on `key` fits the rate: now while the burst lasts,
    /// then one emission interval after the previous reservation.
    fn reserve(&self, key: &BudgetKey, now: Instant) -> Instant {
        let emission = Duration::from_secs(1) / self.limits.rate_per_second.get();
        let tolerance = emission * (self.limits.burst.get() - 1);
        let mut meters = lock(&self.meters);
        let arrival = meters.get(key).copied().unwrap_or(now).max(now);
        let at = arrival
            .checked_sub(tolerance)
            .map_or(now, |earliest| earliest.max(now));
        meters.insert(key.clone(), arrival + emission);
        at
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
    /// When the slots were last swept (see [`SWEEP_EVERY`]).
    swept: Mutex<Option<Instant>>,
}

impl<K, T: Clone> Default for SharedCalls<K, T> {
    fn default() -> Self {
        Self {
            slots: Arc::new(Mutex::new(HashMap::new())),
            swept: Mutex::new(None),
        }
    }
}

/// What a caller wants of [`SharedCalls::get`]: the answer for `key`, no older than
/// `fresh_within` (a failure, as `is_failure` tells, no older than [`FAILURE_SHARE`]).
#[derive(Clone, Debug)]
pub struct Wanted<K, T> {
    /// What is asked.
    pub key: K,
    /// How old a reused answer may be.
    pub fresh_within: Duration,
    /// Which answers are failures.
    pub is_failure: fn(&T) -> bool,
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
    /// Whether the slots are due for a sweep; if so, counts it as done now.
    fn sweep_due(&self) -> bool {
        let mut swept = lock(&self.swept);
        let due = swept.is_none_or(|at| at.elapsed() >= SWEEP_EVERY);
        if due {
            *swept = Some(Instant::now());
        }
        due
    }

    /// The answer `wanted`: reused if fresh enough, joined if a call is in flight, or else made
    /// by `call` once `admit` grants a permit.
    pub async fn get<P, F>(
        &self,
        wanted: Wanted<K, T>,
        admit: impl FnOnce() -> Result<P, Duration>,
        call: F,
    ) -> SharedOutcome<T>
    where
        P: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let Wanted {
            key,
            fresh_within,
            is_failure,
        } = wanted;
        let fresh_within = fresh_within.min(MAX_SHARE_AGE);
        let in_flight = {
            let mut slots = lock(&self.slots);
            if self.sweep_due() {
                slots.retain(|_, slot| match slot {
                    Slot::Done(answer) => answer.at.elapsed() < MAX_SHARE_AGE,
                    Slot::InFlight(_) => true,
                });
            }
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

    fn key(endpoint: &str, fingerprint: &str) -> BudgetKey {
        BudgetKey {
            endpoint: endpoint.to_owned(),
            credentials: fingerprint.to_owned(),
        }
    }

    fn admit(
        budget: &Budget,
        key: &BudgetKey,
        reservation: &mut Option<Reservation>,
        now: Instant,
    ) -> Result<OwnedSemaphorePermit, Duration> {
        budget.try_admit(key, reservation, now)
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_allows_a_burst_then_hands_out_distinct_slots() {
        let budget = Budget::new(limits(100, 10, 3));
        let k = key("a", "ak");
        let now = Instant::now();
        let mut permits = Vec::new();
        for _ in 0..3 {
            permits.push(admit(&budget, &k, &mut None, now).expect("within the burst"));
        }
        // Deferred callers get consecutive slots, 100 ms apart, not one shared "retry soon".
        let waits: Vec<Duration> = (0..3)
            .map(|_| admit(&budget, &k, &mut None, now).expect_err("burst spent"))
            .collect();
        assert_eq!(waits, [100, 200, 300].map(Duration::from_millis));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reservation_is_kept_until_it_is_due_and_then_used_once() {
        let budget = Budget::new(limits(100, 10, 1));
        let k = key("a", "ak");
        let now = Instant::now();
        let _first = admit(&budget, &k, &mut None, now).unwrap();
        let mut held = None;
        let wait = admit(&budget, &k, &mut held, now).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        // Asking again before it is due does not take a second place in the queue.
        assert_eq!(admit(&budget, &k, &mut held, now).unwrap_err(), wait);
        assert!(admit(&budget, &k, &mut held, now + wait).is_ok());
        assert!(held.is_none(), "used up");
        let other = admit(&budget, &k, &mut None, now + wait).unwrap_err();
        assert_eq!(
            other,
            Duration::from_millis(100),
            "the next caller queues after it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn budgets_of_other_keys_are_separate() {
        let budget = Budget::new(limits(1, 1, 1));
        let now = Instant::now();
        let _held = admit(&budget, &key("a", "ak"), &mut None, now).unwrap();
        assert!(
            admit(&budget, &key("b", "ak"), &mut None, now).is_ok(),
            "another endpoint"
        );
        assert!(
            admit(&budget, &key("a", "other"), &mut None, now).is_ok(),
            "another key"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_concurrency_limit_keeps_the_reservation() {
        let budget = Budget::new(limits(1, 100, 10));
        let k = key("a", "ak");
        let now = Instant::now();
        let held = admit(&budget, &k, &mut None, now).unwrap();
        let mut reservation = None;
        assert_eq!(
            admit(&budget, &k, &mut reservation, now).unwrap_err(),
            BUSY_RETRY
        );
        assert!(reservation.is_some(), "the token stays this caller's");
        drop(held);
        assert!(admit(&budget, &k, &mut reservation, now).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn unused_budgets_are_forgotten_and_used_ones_kept() {
        let budget = Budget::new(limits(2, 10, 1));
        let now = Instant::now();
        let held = admit(&budget, &key("busy", "k"), &mut None, now).unwrap();
        for n in 0..100 {
            drop(admit(
                &budget,
                &key(&format!("host-{n}"), "k"),
                &mut None,
                now,
            ));
        }
        let mut waiting = None;
        let _ = admit(&budget, &key("queued", "k"), &mut None, now);
        assert!(admit(&budget, &key("queued", "k"), &mut waiting, now).is_err());
        assert_eq!(budget.remembered(), (102, 102));
        // Within one emission interval every bucket is still refilling: nothing is forgotten.
        budget.sweep(now);
        assert_eq!(budget.remembered().0, 102);
        let later = now + Duration::from_secs(1);
        budget.sweep(later);
        assert_eq!(
            budget.remembered(),
            (0, 1),
            "refilled buckets go; the slots of a call in flight stay"
        );
        drop(held);
        budget.sweep(later);
        assert_eq!(budget.remembered(), (0, 0));
        // A reservation for later keeps its bucket until it is due.
        let mut reservation = None;
        let _first = admit(&budget, &key("r", "k"), &mut None, later).unwrap();
        assert!(admit(&budget, &key("r", "k"), &mut reservation, later).is_err());
        budget.sweep(later + Duration::from_millis(50));
        assert_eq!(budget.remembered().0, 1);
    }

    #[tokio::test]
    async fn concurrent_askers_share_one_call() {
        let shared: Arc<SharedCalls<&str, u32>> = Arc::default();
        let calls = Arc::new(AtomicU32::new(0));
        let ask = |shared: Arc<SharedCalls<&'static str, u32>>, calls: Arc<AtomicU32>| async move {
            shared
                .get(
                    Wanted {
                        key: "target",
                        fresh_within: Duration::from_secs(60),
                        is_failure: |_| false,
                    },
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
                Wanted {
                    key: "t",
                    fresh_within: fresh,
                    is_failure: Result::is_err,
                },
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
                Wanted {
                    key: "t",
                    fresh_within: Duration::ZERO,
                    is_failure: |_| false,
                },
                || Err::<(), _>(Duration::from_secs(2)),
                async { 1 },
            )
            .await;
        assert!(matches!(outcome, SharedOutcome::Deferred(d) if d == Duration::from_secs(2)));
    }
}
