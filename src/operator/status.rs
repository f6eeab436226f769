//! The status a watch should have after an outcome: counts, conditions and the events their
//! transitions deserve. Pure functions of the previous status, the outcome and the time.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{PoolCounts, PoolStatisticsWatchStatus};

use super::failure::Failure;
use super::reasons;

/// Condition type: the counts are fresh.
pub const READY: &str = "Ready";
/// Condition type: a failure that retrying cannot fix without a change.
pub const STALLED: &str = "Stalled";
/// Condition type: a new generation has no poll result yet.
pub const RECONCILING: &str = "Reconciling";
/// Condition type: no pool failed to be created.
pub const POOLS_HEALTHY: &str = "PoolsHealthy";

/// What one reconcile found out.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A new generation is about to be polled.
    Progressing,
    /// The poll succeeded.
    Polled {
        /// The counts ModelArts returned.
        pools: PoolCounts,
        /// ModelArts' `operationTime`, verbatim.
        operation_time: Option<String>,
        /// The project id that was used.
        project_id: String,
    },
    /// The poll failed.
    Failed {
        /// What went wrong.
        failure: Failure,
        /// The last good counts are still fresh enough to keep `Ready` true.
        counts_fresh: bool,
    },
    /// Polling is suspended.
    Suspended,
}

/// The status after `outcome`, for `generation`, at `now`. A condition whose status does not
/// change keeps its `lastTransitionTime`; nothing else carries a time, so the result equals
/// `previous` whenever nothing the user can see has changed.
pub fn next_status(
    previous: &PoolStatisticsWatchStatus,
    generation: Option<i64>,
    outcome: &Outcome,
    now: Timestamp,
) -> PoolStatisticsWatchStatus {
    let mut next = previous.clone();
    next.observed_generation = generation;
    let mut conditions = Conditions {
        list: &mut next.conditions,
        generation,
        now,
    };
    match outcome {
        Outcome::Progressing => {
            let polling = format!(
                "Polling ModelArts for generation {}",
                generation.unwrap_or(0)
            );
            conditions.set(RECONCILING, true, (reasons::PROGRESSING, &polling));
            if !conditions.has(READY) {
                conditions.set_unknown(READY, (reasons::PROGRESSING, &polling));
            }
            conditions.set(STALLED, false, (reasons::PROGRESSING, &polling));
        }
        Outcome::Polled {
            pools,
            operation_time,
            project_id,
        } => {
            // operationTime is the time of the counts shown: ModelArts stamps every answer
            // anew, so it moves only when the counts do, or every poll would write the status.
            if next.pools != Some(*pools) || next.operation_time.is_none() {
                next.operation_time.clone_from(operation_time);
            }
            next.pools = Some(*pools);
            next.project_id = Some(project_id.clone());
            conditions.set(READY, true, (reasons::SYNCED, "Pool counts are up to date"));
            conditions.set(
                STALLED,
                false,
                (reasons::SYNCED, "The latest poll succeeded"),
            );
            conditions.set(
                RECONCILING,
                false,
                (reasons::SYNCED, "The latest poll succeeded"),
            );
        }
        Outcome::Failed {
            failure,
            counts_fresh,
        } => {
            let message = failure.message.as_str();
            let permanent = failure.is_permanent();
            if permanent || !counts_fresh {
                conditions.set(READY, false, (failure.reason, message));
            } else {
                let kept =
                    format!("Showing the last good counts; the latest poll failed: {message}");
                conditions.set(READY, true, (failure.reason, &kept));
            }
            if permanent {
                conditions.set(STALLED, true, (failure.reason, message));
            } else {
                let retrying = "The failure may clear by itself; retrying";
                conditions.set(STALLED, false, (failure.reason, retrying));
            }
            conditions.set(RECONCILING, false, (failure.reason, message));
        }
        Outcome::Suspended => {
            let message = "Polling is suspended; the counts are from the last poll";
            conditions.set(READY, false, (reasons::SUSPENDED, message));
            conditions.set(STALLED, false, (reasons::SUSPENDED, message));
            conditions.set(RECONCILING, false, (reasons::SUSPENDED, message));
        }
    }
    if let Some(pools) = next.pools {
        let failed = pools.failed.unwrap_or(0);
        if failed > 0 {
            let message = format!("{failed} pool(s) failed to be created in the last three days");
            conditions.set(POOLS_HEALTHY, false, (reasons::POOLS_FAILED, &message));
        } else {
            let message = "No pool failed to be created in the last three days";
            conditions.set(POOLS_HEALTHY, true, (reasons::NO_FAILED_POOLS, message));
        }
    }
    next
}

/// Why a condition has its status: a reason word and a message for people.
type Why<'a> = (&'a str, &'a str);

/// The condition list of one status being rewritten.
struct Conditions<'a> {
    list: &'a mut Vec<Condition>,
    generation: Option<i64>,
    now: Timestamp,
}

impl Conditions<'_> {
    fn has(&self, type_: &str) -> bool {
        self.list.iter().any(|c| c.type_ == type_)
    }

    fn set(&mut self, type_: &str, status: bool, why: Why<'_>) {
        self.put(type_, if status { "True" } else { "False" }, why);
    }

    fn set_unknown(&mut self, type_: &str, why: Why<'_>) {
        self.put(type_, "Unknown", why);
    }

    fn put(&mut self, type_: &str, status: &str, (reason, message): Why<'_>) {
        let transition_time = match self.list.iter().find(|c| c.type_ == type_) {
            Some(existing) if existing.status == status => existing.last_transition_time.clone(),
            _ => Time(self.now),
        };
        let condition = Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            observed_generation: self.generation,
            last_transition_time: transition_time,
        };
        match self.list.iter_mut().find(|c| c.type_ == type_) {
            Some(existing) => *existing = condition,
            None => self.list.push(condition),
        }
    }
}

/// Finds a condition by type.
pub fn condition<'a>(status: &'a PoolStatisticsWatchStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// Whether a condition is present with status `True`.
pub fn is_true(status: &PoolStatisticsWatchStatus, type_: &str) -> bool {
    condition(status, type_).is_some_and(|c| c.status == "True")
}

/// Normal or Warning, as Kubernetes events are typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Something good happened.
    Normal,
    /// Something needs attention.
    Warning,
}

/// An event worth publishing because something changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Normal or Warning.
    pub severity: Severity,
    /// Stable CamelCase reason.
    pub reason: String,
    /// What happened, for people.
    pub note: String,
}

/// The events that the change from `previous` to `next` deserves: first success, a failure (or
/// a different failure), recovery, and a rise in failed pools. Nothing for an unchanged state.
pub fn transition_notices(
    previous: &PoolStatisticsWatchStatus,
    next: &PoolStatisticsWatchStatus,
) -> Vec<Notice> {
    let mut notices = Vec::new();
    let synced =
        condition(next, READY).is_some_and(|c| c.status == "True" && c.reason == reasons::SYNCED);
    let (was_failing, failing) = (failing_reason(previous), failing_reason(next));
    if synced && previous.pools.is_none() {
        notices.push(Notice {
            severity: Severity::Normal,
            reason: reasons::FIRST_SYNC.to_owned(),
            note: format!(
                "First pool counts: {}",
                describe(next.pools.unwrap_or_default())
            ),
        });
    } else if synced && was_failing.is_some() {
        notices.push(Notice {
            severity: Severity::Normal,
            reason: reasons::RECOVERED.to_owned(),
            note: "Polling succeeds again".to_owned(),
        });
    }
    if let Some(reason) = failing
        && was_failing != Some(reason)
    {
        notices.push(Notice {
            severity: Severity::Warning,
            reason: reason.to_owned(),
            note: condition(next, READY)
                .map(|c| c.message.clone())
                .unwrap_or_default(),
        });
    }
    let failed =
        |status: &PoolStatisticsWatchStatus| status.pools.and_then(|p| p.failed).unwrap_or(0);
    if previous.pools.is_some() && failed(next) > failed(previous) {
        notices.push(Notice {
            severity: Severity::Warning,
            reason: reasons::POOLS_FAILED.to_owned(),
            note: format!(
                "Failed pools rose from {} to {}",
                failed(previous),
                failed(next)
            ),
        });
    }
    notices
}

/// The failure reason that `Ready` carries, if the latest poll failed.
fn failing_reason(status: &PoolStatisticsWatchStatus) -> Option<&str> {
    condition(status, READY)
        .map(|c| c.reason.as_str())
        .filter(|reason| {
            ![reasons::SYNCED, reasons::PROGRESSING, reasons::SUSPENDED].contains(reason)
        })
}

fn describe(pools: PoolCounts) -> String {
    let count = |n: Option<i64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
    format!(
        "{} created, {} creating, {} failed, {} pending, {} deleting",
        count(pools.created),
        count(pools.creating),
        count(pools.failed),
        count(pools.pending),
        count(pools.deleting)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::failure::Retry;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn pools(created: i64, failed: i64) -> PoolCounts {
        PoolCounts {
            creating: Some(0),
            created: Some(created),
            failed: Some(failed),
            pending: Some(0),
            deleting: Some(1),
        }
    }

    fn polled(created: i64, failed: i64) -> Outcome {
        Outcome::Polled {
            pools: pools(created, failed),
            operation_time: Some("2025-03-27 11:48:55.446172146 +0000 UTC".to_owned()),
            project_id: "p1".to_owned(),
        }
    }

    fn failure(reason: &'static str, permanent: bool, counts_fresh: bool) -> Outcome {
        Outcome::Failed {
            failure: Failure {
                reason,
                message: format!("{reason} happened"),
                retry: if permanent {
                    Retry::Permanent
                } else {
                    Retry::Transient { after: None }
                },
                credentials: None,
            },
            counts_fresh,
        }
    }

    fn status_of<'a>(status: &'a PoolStatisticsWatchStatus, type_: &str) -> (&'a str, &'a str) {
        let c = condition(status, type_).unwrap_or_else(|| panic!("{type_} missing"));
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn a_new_generation_is_reconciling_with_ready_unknown() {
        let status = next_status(&Default::default(), Some(1), &Outcome::Progressing, at(0));
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(
            status_of(&status, RECONCILING),
            ("True", reasons::PROGRESSING)
        );
        assert_eq!(status_of(&status, READY), ("Unknown", reasons::PROGRESSING));
        assert!(
            condition(&status, POOLS_HEALTHY).is_none(),
            "absent before data"
        );
    }

    #[test]
    fn a_success_is_ready_with_counts_and_healthy_pools() {
        let progressing = next_status(&Default::default(), Some(1), &Outcome::Progressing, at(0));
        let status = next_status(&progressing, Some(1), &polled(9, 0), at(1));
        assert_eq!(status.pools, Some(pools(9, 0)));
        assert_eq!(status.project_id.as_deref(), Some("p1"));
        assert_eq!(status_of(&status, READY), ("True", reasons::SYNCED));
        assert_eq!(status_of(&status, STALLED), ("False", reasons::SYNCED));
        assert_eq!(status_of(&status, RECONCILING), ("False", reasons::SYNCED));
        assert_eq!(
            status_of(&status, POOLS_HEALTHY),
            ("True", reasons::NO_FAILED_POOLS)
        );
        assert!(
            status
                .conditions
                .iter()
                .all(|c| c.observed_generation == Some(1))
        );
    }

    #[test]
    fn the_same_result_again_changes_nothing() {
        let first = next_status(&Default::default(), Some(1), &polled(9, 0), at(0));
        let second = next_status(&first, Some(1), &polled(9, 0), at(300));
        assert_eq!(first, second);
    }

    #[test]
    fn operation_time_moves_with_the_counts_only() {
        let stamped = |created: i64, time: &str| Outcome::Polled {
            pools: pools(created, 0),
            operation_time: Some(time.to_owned()),
            project_id: "p1".to_owned(),
        };
        let first = next_status(&Default::default(), Some(1), &stamped(9, "t1"), at(0));
        let same = next_status(&first, Some(1), &stamped(9, "t2"), at(30));
        assert_eq!(same, first, "same counts, later stamp: nothing to write");
        let changed = next_status(&same, Some(1), &stamped(10, "t3"), at(60));
        assert_eq!(changed.operation_time.as_deref(), Some("t3"));
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let ready = next_status(&Default::default(), Some(1), &polled(9, 0), at(0));
        let stale = next_status(&ready, Some(1), &failure("Throttled", false, true), at(10));
        let ready_time = |s: &PoolStatisticsWatchStatus| {
            condition(s, READY).unwrap().last_transition_time.clone()
        };
        assert_eq!(ready_time(&stale), ready_time(&ready));
        let down = next_status(&stale, Some(1), &failure("Throttled", false, false), at(20));
        assert_eq!(ready_time(&down), Time(at(20)));
    }

    #[test]
    fn a_transient_failure_keeps_counts_and_ready_while_fresh() {
        let ready = next_status(&Default::default(), Some(1), &polled(9, 0), at(0));
        let status = next_status(&ready, Some(1), &failure("Throttled", false, true), at(10));
        assert_eq!(status.pools, Some(pools(9, 0)));
        assert_eq!(status_of(&status, READY), ("True", "Throttled"));
        assert_eq!(status_of(&status, STALLED).0, "False");
    }

    #[test]
    fn a_transient_failure_turns_ready_false_once_counts_are_stale() {
        let ready = next_status(&Default::default(), Some(1), &polled(9, 0), at(0));
        let status = next_status(
            &ready,
            Some(1),
            &failure("UpstreamUnavailable", false, false),
            at(10),
        );
        assert_eq!(status.pools, Some(pools(9, 0)), "last good counts are kept");
        assert_eq!(status_of(&status, READY), ("False", "UpstreamUnavailable"));
        assert_eq!(status_of(&status, STALLED).0, "False");
    }

    #[test]
    fn a_permanent_failure_stalls_at_once_and_never_with_ready() {
        let ready = next_status(&Default::default(), Some(1), &polled(9, 0), at(0));
        let status = next_status(
            &ready,
            Some(1),
            &failure("AuthenticationFailed", true, true),
            at(10),
        );
        assert_eq!(status_of(&status, READY), ("False", "AuthenticationFailed"));
        assert_eq!(
            status_of(&status, STALLED),
            ("True", "AuthenticationFailed")
        );
        assert_eq!(status.pools, Some(pools(9, 0)));
    }

    #[test]
    fn suspended_keeps_counts() {
        let ready = next_status(&Default::default(), Some(1), &polled(9, 0), at(0));
        let status = next_status(&ready, Some(2), &Outcome::Suspended, at(10));
        assert_eq!(status.pools, Some(pools(9, 0)));
        assert_eq!(status_of(&status, READY), ("False", reasons::SUSPENDED));
        assert_eq!(status.observed_generation, Some(2));
    }

    #[test]
    fn failed_pools_make_pools_unhealthy() {
        let status = next_status(&Default::default(), Some(1), &polled(9, 2), at(0));
        assert_eq!(
            status_of(&status, POOLS_HEALTHY),
            ("False", reasons::POOLS_FAILED)
        );
    }

    #[test]
    fn notices_fire_on_transitions_only() {
        let empty = PoolStatisticsWatchStatus::default();
        let progressing = next_status(&empty, Some(1), &Outcome::Progressing, at(0));
        assert!(transition_notices(&empty, &progressing).is_empty());

        let ready = next_status(&progressing, Some(1), &polled(9, 0), at(1));
        let reasons = |a, b| -> Vec<String> {
            transition_notices(a, b)
                .into_iter()
                .map(|n| n.reason)
                .collect()
        };
        assert_eq!(reasons(&progressing, &ready), ["FirstSync"]);
        let same = ready.clone();
        assert!(reasons(&ready, &same).is_empty());

        let throttled = next_status(&ready, Some(1), &failure("Throttled", false, true), at(2));
        assert_eq!(reasons(&ready, &throttled), ["Throttled"]);
        let still = next_status(
            &throttled,
            Some(1),
            &failure("Throttled", false, true),
            at(3),
        );
        assert!(reasons(&throttled, &still).is_empty());

        let recovered = next_status(&still, Some(1), &polled(9, 0), at(4));
        assert_eq!(reasons(&still, &recovered), ["Recovered"]);

        let worse = next_status(&recovered, Some(1), &polled(9, 3), at(5));
        assert_eq!(reasons(&recovered, &worse), [reasons::POOLS_FAILED]);
    }
}
