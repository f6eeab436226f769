//! The status a watch should have after an outcome: counts, conditions and the events their
//! transitions deserve. Pure functions of the previous status, the outcome and the time.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{PoolCounts, PoolDetail, PoolPhase, PoolStatisticsWatchStatus};

use super::failure::Failure;
use super::poll::Details;
use super::pool_details::{self, details_of, unhealthy};
use super::reasons;

/// Condition type: the counts are fresh.
pub const READY: &str = "Ready";
/// Condition type: a failure that retrying cannot fix without a change.
pub const STALLED: &str = "Stalled";
/// Condition type: a new generation has no poll result yet.
pub const RECONCILING: &str = "Reconciling";
/// Condition type: no pool failed to be created (and, with `spec.poolDetails`, none is
/// Abnormal or Error).
pub const POOLS_HEALTHY: &str = "PoolsHealthy";
/// Condition type, with `spec.poolDetails`: the latest pool lists succeeded.
pub const POOL_DETAILS_SYNCED: &str = "PoolDetailsSynced";

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
        /// The pools, when the watch asks for them.
        details: Details,
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
            details,
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
            show_details(&mut next, generation, details, now);
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
    set_pools_healthy(&mut next, generation, now);
    next
}

/// Shows the pool lists' outcome: the pools and `PoolDetailsSynced`. A failed list keeps the
/// last good pools, and says so.
fn show_details(
    next: &mut PoolStatisticsWatchStatus,
    generation: Option<i64>,
    details: &Details,
    now: Timestamp,
) {
    match details {
        Details::Off => forget_details(next),
        Details::Deferred => {}
        Details::Listed(list) => {
            let shown = details_of(list);
            next.pool_details = shown.pools;
            next.pool_details_omitted = i64::try_from(shown.omitted).ok().filter(|n| *n > 0);
            let mut message = "The latest pool lists succeeded".to_owned();
            if shown.unusable > 0 {
                message.push_str(&format!(
                    "; {} item(s) of ModelArts' answer were not usable pools and are not shown",
                    shown.unusable
                ));
            }
            conditions_of(next, generation, now).set(
                POOL_DETAILS_SYNCED,
                true,
                (reasons::SYNCED, &message),
            );
        }
        Details::Failed(failure) => {
            let kept = if next.pool_details.is_empty() {
                "no pool details yet"
            } else {
                "the pools shown are from the last good list"
            };
            let message = format!("{}; the counts still update, {kept}", failure.message);
            conditions_of(next, generation, now).set(
                POOL_DETAILS_SYNCED,
                false,
                (failure.reason, &message),
            );
        }
    }
}

/// Removes the pool details and their condition: the watch no longer asks for them.
pub fn forget_details(status: &mut PoolStatisticsWatchStatus) {
    status.pool_details.clear();
    status.pool_details_omitted = None;
    status.conditions.retain(|c| c.type_ != POOL_DETAILS_SYNCED);
}

/// `PoolsHealthy`, once there is data: False naming the pools shown as Abnormal, Error or
/// failed, else False when the counts say pools failed, else True.
fn set_pools_healthy(
    next: &mut PoolStatisticsWatchStatus,
    generation: Option<i64>,
    now: Timestamp,
) {
    let Some(pools) = next.pools else {
        return;
    };
    let listed = !next.pool_details.is_empty() || is_true(next, POOL_DETAILS_SYNCED);
    let failed = pools.failed.unwrap_or(0);
    let (healthy, reason, message) = if let Some((reason, message)) = unhealthy(&next.pool_details)
    {
        (false, reason, message)
    } else if failed > 0 {
        let message = format!("{failed} pool(s) failed to be created in the last three days");
        (false, reasons::POOLS_FAILED, message)
    } else if listed {
        pools_not_unhealthy(&next.pool_details)
    } else {
        let message = "No pool failed to be created in the last three days".to_owned();
        (true, reasons::NO_FAILED_POOLS, message)
    };
    conditions_of(next, generation, now).set(POOLS_HEALTHY, healthy, (reason, &message));
}

/// `PoolsHealthy` True for listed pools of which none is unhealthy: `AllPoolsRunning` when
/// each is Running, else `NoUnhealthyPools` with how many are in which phase.
fn pools_not_unhealthy(pools: &[PoolDetail]) -> (bool, &'static str, String) {
    let mut others: BTreeMap<&str, usize> = BTreeMap::new();
    for pool in pools.iter().filter(|p| p.phase != PoolPhase::Running) {
        *others.entry(pool.phase.as_str()).or_default() += 1;
    }
    if others.is_empty() {
        let message = format!("All {} pool(s) are Running", pools.len());
        return (true, reasons::ALL_POOLS_RUNNING, message);
    }
    let counted: Vec<String> = others
        .iter()
        .map(|(phase, n)| format!("{n} {phase}"))
        .collect();
    let message = format!(
        "No pool is abnormal, broken or failed; not Running yet: {}",
        counted.join(", ")
    );
    (true, reasons::NO_UNHEALTHY_POOLS, message)
}

fn conditions_of(
    status: &mut PoolStatisticsWatchStatus,
    generation: Option<i64>,
    now: Timestamp,
) -> Conditions<'_> {
    Conditions {
        list: &mut status.conditions,
        generation,
        now,
    }
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
/// a different failure), recovery, a failing pool list, a pool's change of phase (with
/// `spec.poolDetails`) or else a rise in failed pools. Nothing for an unchanged state.
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
    if let Some(list_failed) = condition(next, POOL_DETAILS_SYNCED).filter(|c| c.status == "False")
        && condition(previous, POOL_DETAILS_SYNCED).is_none_or(|c| c.status != "False")
    {
        notices.push(Notice {
            severity: Severity::Warning,
            reason: reasons::POOL_LIST_FAILED.to_owned(),
            note: list_failed.message.clone(),
        });
    }
    notices.extend(pool_details::pool_notices(
        &previous.pool_details,
        &next.pool_details,
    ));
    // With pool details, each failed pool has an event of its own.
    let listed = is_true(next, POOL_DETAILS_SYNCED) || !next.pool_details.is_empty();
    let failed =
        |status: &PoolStatisticsWatchStatus| status.pools.and_then(|p| p.failed).unwrap_or(0);
    if !listed && previous.pools.is_some() && failed(next) > failed(previous) {
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
    use std::sync::Arc;

    use super::*;
    use crate::modelarts::{Pool, PoolList, PoolPhase};
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
            details: Details::Off,
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
            details: Details::Off,
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

    fn pool(name: &str, phase: PoolPhase, message: &str) -> Pool {
        Pool {
            name: name.to_owned(),
            display_name: Some(format!("{name}-display")),
            phase,
            message: (!message.is_empty()).then(|| message.to_owned()),
            pool_type: Some("Dedicate".to_owned()),
            created: Some("2026-11-30T08:00:00Z".to_owned()),
            flavors: Vec::new(),
            gpu_driver: None,
            npu_driver: None,
        }
    }

    fn listed(created: i64, failed: i64, listed: Vec<Pool>) -> Outcome {
        Outcome::Polled {
            pools: pools(created, failed),
            operation_time: None,
            project_id: "p1".to_owned(),
            details: Details::Listed(Arc::new(PoolList {
                pools: listed,
                omitted: 0,
                unusable: 0,
            })),
        }
    }

    fn with_details(outcome: &Outcome, details: Details) -> Outcome {
        match outcome.clone() {
            Outcome::Polled {
                pools,
                operation_time,
                project_id,
                ..
            } => Outcome::Polled {
                pools,
                operation_time,
                project_id,
                details,
            },
            other => other,
        }
    }

    #[test]
    fn listed_pools_are_shown_and_name_the_unhealthy_ones_worst_first() {
        let pools = vec![
            pool("pool-a", PoolPhase::Running, ""),
            pool("pool-b", PoolPhase::Failed, "quota exceeded"),
            pool("pool-c", PoolPhase::Abnormal, "2 nodes NotReady"),
        ];
        let status = next_status(&Default::default(), Some(1), &listed(2, 1, pools), at(0));
        let names: Vec<&str> = status
            .pool_details
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["pool-a", "pool-b", "pool-c"], "sorted by name");
        assert_eq!(
            status_of(&status, POOL_DETAILS_SYNCED),
            ("True", reasons::SYNCED)
        );
        assert_eq!(
            status_of(&status, POOLS_HEALTHY),
            ("False", reasons::POOLS_ABNORMAL)
        );
        let message = &condition(&status, POOLS_HEALTHY).unwrap().message;
        assert_eq!(
            message,
            "pool-c (pool-c-display) Abnormal: 2 nodes NotReady; pool-b (pool-b-display) Failed: quota exceeded"
        );
        assert!(status.pool_details_omitted.is_none());
    }

    #[test]
    fn only_failed_pools_say_pools_failed_and_healthy_ones_say_so() {
        let failed = listed(1, 1, vec![pool("pool-b", PoolPhase::Failed, "no quota")]);
        let status = next_status(&Default::default(), Some(1), &failed, at(0));
        assert_eq!(
            status_of(&status, POOLS_HEALTHY),
            ("False", reasons::POOLS_FAILED)
        );
        let healthy = listed(1, 0, vec![pool("pool-a", PoolPhase::Running, "")]);
        let status = next_status(&status, Some(1), &healthy, at(1));
        assert_eq!(
            status_of(&status, POOLS_HEALTHY),
            ("True", reasons::ALL_POOLS_RUNNING)
        );
    }

    #[test]
    fn a_failed_list_keeps_the_last_good_pools_and_says_so() {
        let good = listed(1, 0, vec![pool("pool-a", PoolPhase::Abnormal, "disk")]);
        let first = next_status(&Default::default(), Some(1), &good, at(0));
        let refused = Failure {
            reason: "AccessDenied",
            message: "listing the pools failed: denied".to_owned(),
            retry: Retry::Permanent,
            credentials: None,
        };
        let outcome = with_details(&polled(3, 0), Details::Failed(refused.clone()));
        let status = next_status(&first, Some(1), &outcome, at(10));
        assert_eq!(status.pools, Some(pools(3, 0)), "the counts still update");
        assert_eq!(
            status.pool_details, first.pool_details,
            "last good pools kept"
        );
        assert_eq!(status_of(&status, READY), ("True", reasons::SYNCED));
        assert_eq!(
            status_of(&status, POOL_DETAILS_SYNCED),
            ("False", "AccessDenied")
        );
        let message = &condition(&status, POOL_DETAILS_SYNCED).unwrap().message;
        assert!(message.contains("last good list"), "{message}");
        assert_eq!(
            status_of(&status, POOLS_HEALTHY),
            ("False", reasons::POOLS_ABNORMAL),
            "judged by the pools shown"
        );
        let reasons: Vec<String> = transition_notices(&first, &status)
            .into_iter()
            .map(|n| n.reason)
            .collect();
        assert_eq!(reasons, [reasons::POOL_LIST_FAILED]);
        // The same failure again: nothing new to write or say.
        let again = next_status(&status, Some(1), &outcome, at(20));
        assert_eq!(again, status);
        assert!(transition_notices(&status, &again).is_empty());

        // Without any good list yet, it says there are none.
        let fresh = next_status(&Default::default(), Some(1), &outcome, at(0));
        let message = &condition(&fresh, POOL_DETAILS_SYNCED).unwrap().message;
        assert!(message.contains("no pool details yet"), "{message}");
    }

    #[test]
    fn the_same_pools_again_change_nothing_and_publish_nothing() {
        let outcome = listed(2, 0, vec![pool("pool-a", PoolPhase::Abnormal, "disk")]);
        let first = next_status(&Default::default(), Some(1), &outcome, at(0));
        let second = next_status(&first, Some(1), &outcome, at(300));
        assert_eq!(first, second);
        assert!(transition_notices(&first, &second).is_empty());
    }

    #[test]
    fn pool_transitions_publish_per_pool_events_instead_of_the_count_rise() {
        let running = listed(2, 0, vec![pool("pool-a", PoolPhase::Running, "")]);
        let first = next_status(&Default::default(), Some(1), &running, at(0));
        let abnormal = listed(
            2,
            1,
            vec![
                pool("pool-a", PoolPhase::Abnormal, "node down"),
                pool("pool-b", PoolPhase::Failed, "no quota"),
            ],
        );
        let bad = next_status(&first, Some(1), &abnormal, at(1));
        let notices = transition_notices(&first, &bad);
        let reasons: Vec<&str> = notices.iter().map(|n| n.reason.as_str()).collect();
        assert_eq!(reasons, [reasons::POOL_ABNORMAL, reasons::POOL_FAILED]);
        assert!(notices[0].note.contains("node down"), "{:?}", notices[0]);
        assert_eq!(notices[0].severity, Severity::Warning);
        let back = next_status(&bad, Some(1), &running, at(2));
        let notices = transition_notices(&bad, &back);
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert_eq!(notices[0].reason, reasons::POOL_RECOVERED);
        assert_eq!(notices[0].severity, Severity::Normal);
    }

    #[test]
    fn turning_details_off_clears_them() {
        let outcome = listed(2, 0, vec![pool("pool-a", PoolPhase::Running, "")]);
        let first = next_status(&Default::default(), Some(1), &outcome, at(0));
        let off = next_status(&first, Some(2), &polled(2, 0), at(1));
        assert!(off.pool_details.is_empty());
        assert!(condition(&off, POOL_DETAILS_SYNCED).is_none());
        assert_eq!(
            status_of(&off, POOLS_HEALTHY),
            ("True", reasons::NO_FAILED_POOLS)
        );
    }

    #[test]
    fn a_deferred_list_changes_nothing_of_the_details() {
        let outcome = listed(2, 0, vec![pool("pool-a", PoolPhase::Running, "")]);
        let first = next_status(&Default::default(), Some(1), &outcome, at(0));
        let deferred = with_details(&outcome, Details::Deferred);
        assert_eq!(next_status(&first, Some(1), &deferred, at(1)), first);
    }
}
