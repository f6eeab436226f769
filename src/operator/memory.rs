//! What the operator remembers of each watch between reconciles, and how a reconcile holds it.
//!
//! The invariant that makes this safe: kube-runtime never runs two reconciles of the same object
//! at once (its scheduler holds an object back while its reconcile runs), and it calls the error
//! policy only after the reconcile returned. So a reconcile takes its watch's memory out of the
//! shared map as a [`MemoryLease`], works on it across `.await`s without holding any lock, and no
//! one else reads or writes that entry meanwhile. The lease puts the memory back when it is
//! dropped, so every exit of a reconcile (a return, a `?`, a panic) returns it.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::api::PoolStatisticsWatchStatus;
use crate::lock::lock;

use super::background::RunningPoll;
use super::failure::Failure;
use super::schedule;
use super::status::{self, READY};
use super::upstream::Reservation;

/// A watch's namespace and name.
pub type WatchKey = (String, String);

/// What the operator remembers of one watch between reconciles.
#[derive(Clone, Debug, Default)]
pub struct WatchMemory {
    /// When it polls next, and what it polled last.
    pub schedule: schedule::Memory,
    /// Set while the watch is stalled on its credentials (missing Secret or refused keys).
    pub stalled_on_secret: Option<StalledOnSecret>,
    /// The latest poll's failure while polls keep failing; shown again, with `Ready` False,
    /// when the last good counts turn stale between two polls.
    pub failing: Option<Failure>,
    /// A status computed but not yet written (the write failed); written before anything else.
    pub unwritten: Option<PoolStatisticsWatchStatus>,
    /// This watch's place in its upstream budget's queue, once it had to wait for one.
    pub reservation: Option<Reservation>,
    /// Kubernetes failures in a row, for the error policy's backoff.
    pub kubernetes_failures: u32,
    /// A poll still running in its own task, parked by the reconcile that started it.
    pub running: Option<RunningPoll>,
}

/// A watch stalled on its credentials, waiting for them to change.
#[derive(Clone, Debug)]
pub struct StalledOnSecret {
    /// What the credentials source gave when the failure happened
    /// ([`CredentialsProblem::marker`](super::failure::CredentialsProblem::marker)).
    pub version: String,
    /// When to read the Secret again.
    pub next_check: Instant,
}

impl WatchMemory {
    /// The memory of a watch the operator has not seen since it started. A watch whose status is
    /// already current for its generation is not new: its next poll is placed at random within
    /// one interval (so a restart does not poll everything at once), and its counts count as
    /// fresh from now. The refresh request it last answered is the one its status says, so a
    /// request made while no operator led (a failover, a restart) is answered at once.
    pub fn recalled_from(
        status: &PoolStatisticsWatchStatus,
        request: &schedule::Request<'_>,
        interval: Duration,
        now: Instant,
    ) -> Self {
        let current = status.observed_generation.is_some()
            && status.observed_generation == request.generation
            && status::is_true(status, READY);
        if !current {
            return Self::default();
        }
        Self {
            schedule: schedule::Memory {
                polled_generation: request.generation,
                polled_refresh_token: status.last_handled_refresh_request.clone(),
                next_due: Some(now + interval.mul_f64(fastrand::f64())),
                consecutive_failures: 0,
                last_success: Some(now),
            },
            ..Self::default()
        }
    }
}

/// Every watch's memory.
#[derive(Debug, Default)]
pub struct Memories {
    map: Mutex<HashMap<WatchKey, WatchMemory>>,
}

impl Memories {
    /// Takes the memory of `key` (or `recall()`s it) for one reconcile; see the module's
    /// invariant.
    pub fn lease(&self, key: WatchKey, recall: impl FnOnce() -> WatchMemory) -> MemoryLease<'_> {
        let memory = lock(&self.map).remove(&key).unwrap_or_else(recall);
        MemoryLease {
            memories: self,
            key,
            memory,
        }
    }

    /// Kubernetes failures in a row of `key`'s reconciles.
    pub fn kubernetes_failures(&self, key: &WatchKey) -> u32 {
        lock(&self.map)
            .get(key)
            .map_or(0, |memory| memory.kubernetes_failures)
    }

    /// Drops the memory of `key`.
    pub fn remove(&self, key: &WatchKey) {
        lock(&self.map).remove(key);
    }

    /// The watches remembered now.
    pub fn keys(&self) -> Vec<WatchKey> {
        lock(&self.map).keys().cloned().collect()
    }
}

/// One watch's memory, taken out of [`Memories`] for one reconcile and put back when dropped.
#[derive(Debug)]
pub struct MemoryLease<'a> {
    memories: &'a Memories,
    key: WatchKey,
    memory: WatchMemory,
}

impl Deref for MemoryLease<'_> {
    type Target = WatchMemory;

    fn deref(&self) -> &WatchMemory {
        &self.memory
    }
}

impl DerefMut for MemoryLease<'_> {
    fn deref_mut(&mut self) -> &mut WatchMemory {
        &mut self.memory
    }
}

impl Drop for MemoryLease<'_> {
    fn drop(&mut self) {
        let memory = std::mem::take(&mut self.memory);
        lock(&self.memories.map).insert(self.key.clone(), memory);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> WatchKey {
        ("team".to_owned(), "pools".to_owned())
    }

    #[test]
    fn a_lease_puts_the_memory_back_on_every_exit() {
        let memories = Memories::default();
        let fail = |memories: &Memories| -> Result<(), ()> {
            let mut lease = memories.lease(key(), WatchMemory::default);
            lease.kubernetes_failures = 3;
            let refused: Result<(), ()> = Err(());
            refused?;
            lease.kubernetes_failures = 0;
            Ok(())
        };
        assert!(fail(&memories).is_err());
        assert_eq!(memories.kubernetes_failures(&key()), 3, "kept through `?`");

        let lease = memories.lease(key(), || panic!("remembered, not recalled"));
        assert_eq!(lease.kubernetes_failures, 3);
        assert!(memories.keys().is_empty(), "taken out while leased");
        drop(lease);
        assert_eq!(memories.keys(), [key()]);
        memories.remove(&key());
        assert!(memories.keys().is_empty());
    }

    #[test]
    fn a_current_status_is_recalled_as_polled_with_the_next_poll_within_one_interval() {
        let mut status = PoolStatisticsWatchStatus {
            observed_generation: Some(2),
            ..Default::default()
        };
        let now = Instant::now();
        let interval = Duration::from_secs(60);
        let request = schedule::Request {
            generation: Some(2),
            refresh_token: Some("t1"),
            suspended: false,
        };
        assert!(
            WatchMemory::recalled_from(&status, &request, interval, now)
                .schedule
                .polled_generation
                .is_none(),
            "not Ready: polled anew"
        );
        status
            .conditions
            .push(k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                type_: READY.to_owned(),
                status: "True".to_owned(),
                reason: "Synced".to_owned(),
                message: String::new(),
                observed_generation: Some(2),
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    jiff::Timestamp::UNIX_EPOCH,
                ),
            });
        status.last_handled_refresh_request = Some("t1".to_owned());
        let recalled = WatchMemory::recalled_from(&status, &request, interval, now);
        assert_eq!(recalled.schedule.polled_generation, Some(2));
        assert_eq!(
            recalled.schedule.polled_refresh_token.as_deref(),
            Some("t1")
        );
        assert!(matches!(
            recalled.schedule.decide(&request, now),
            schedule::Decision::WaitUntil(_)
        ));
        // A request its status does not show as answered is answered at once.
        let unanswered = schedule::Request {
            refresh_token: Some("t2"),
            ..request
        };
        let recalled = WatchMemory::recalled_from(&status, &unanswered, interval, now);
        assert_eq!(
            recalled.schedule.decide(&unanswered, now),
            schedule::Decision::PollNow(schedule::PollReason::RefreshRequested)
        );
        let due = recalled.schedule.next_due.expect("a next poll");
        assert!(due >= now && due <= now + interval, "{due:?}");
    }
}
