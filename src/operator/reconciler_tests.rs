//! The reconcile flow, branch by branch, against a scripted API server and an in-process
//! simulator: the exact requests each branch makes (status patches, Secret reads, events,
//! upstream calls) and when it looks at the watch again. Milliseconds each; the end-to-end tests
//! prove the same flows against a real API server.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::*;
use crate::modelarts::Credentials;
use crate::operator::memory::WatchMemory;
use crate::operator::testing::{EVENTS_PATH, Fixture, NAME, NAMESPACE, SECRET_PATH, STATUS_PATH};
use crate::operator::upstream::BudgetKey;
use crate::simulator::{
    Api as SimulatorApi, DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY, Fault, FaultKind,
    RequestFilter,
};

const INTERVAL: Duration = Duration::from_secs(30);

fn key(name: &str) -> WatchKey {
    (NAMESPACE.to_owned(), name.to_owned())
}

async fn reconcile_once(fixture: &Fixture, watch: &PoolStatisticsWatch) -> Result<Next, Error> {
    WatchReconciler::new(&fixture.context, watch, NAMESPACE)
        .run()
        .await
}

fn statistics_calls(fixture: &Fixture) -> u64 {
    fixture
        .simulator
        .requests_served(&RequestFilter::api(SimulatorApi::Statistics))
}

/// `(status, reason)` of condition `type_` in a status patch.
fn condition(patch: &Value, type_: &str) -> (String, String) {
    let found = patch["status"]["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} in {patch}"));
    (
        found["status"].as_str().unwrap_or_default().to_owned(),
        found["reason"].as_str().unwrap_or_default().to_owned(),
    )
}

fn pair(status: &str, reason: &str) -> (String, String) {
    (status.to_owned(), reason.to_owned())
}

/// The status a patch wrote, as the watch then carries it.
fn written(patch: &Value) -> PoolStatisticsWatchStatus {
    serde_json::from_value(patch["status"].clone()).expect("a status")
}

/// Puts `memory` in the shared map for `name`, as an earlier reconcile would have left it.
fn remember(fixture: &Fixture, name: &str, memory: WatchMemory) {
    fixture.context.memories.remove(&key(name));
    drop(fixture.context.memories.lease(key(name), || memory));
}

fn waits_about(next: Next, wait: Duration) -> bool {
    let Next::In(actual) = next else { return false };
    actual <= wait && actual + Duration::from_secs(2) >= wait
}

#[tokio::test]
async fn a_new_watch_answered_at_once_is_shown_in_one_status_write() {
    let fixture = Fixture::new().await;
    let watch = PoolStatisticsWatch::test(&fixture.simulator);

    let next = reconcile_once(&fixture, &watch).await.expect("reconciled");

    assert_eq!(
        fixture.api.lines(),
        [
            format!("GET {SECRET_PATH}"),
            format!("PATCH {STATUS_PATH}"),
            format!("POST {EVENTS_PATH}"),
        ]
    );
    let patches = fixture.api.status_patches();
    assert_eq!(condition(&patches[0], "Ready"), pair("True", "Synced"));
    assert_eq!(
        condition(&patches[0], "Reconciling"),
        pair("False", "Synced")
    );
    assert_eq!(patches[0]["status"]["pools"]["created"], 9);
    assert_eq!(patches[0]["status"]["observedGeneration"], 1);
    assert_eq!(patches[0]["apiVersion"], "poolwatch.io/v1alpha1");
    assert_eq!(fixture.api.event_reasons(), ["FirstSync"]);
    assert_eq!(statistics_calls(&fixture), 1);
    let Next::In(wait) = next else {
        panic!("{next:?}")
    };
    assert!(
        wait >= INTERVAL.mul_f64(0.9) - Duration::from_secs(1) && wait <= INTERVAL.mul_f64(1.1),
        "the next poll is one jittered interval away: {wait:?}"
    );

    // The status write comes back as a watch event: that reconcile changes nothing.
    let after_write = watch.with_status(written(&patches[0]));
    let next = reconcile_once(&fixture, &after_write)
        .await
        .expect("reconciled");
    assert_eq!(fixture.api.requests().len(), 3, "{:?}", fixture.api.lines());
    assert_eq!(statistics_calls(&fixture), 1);
    assert!(
        matches!(next, Next::In(wait) if wait <= INTERVAL.mul_f64(1.1)),
        "{next:?}"
    );
}

#[tokio::test]
async fn a_new_watch_whose_first_poll_is_slow_shows_reconciling_and_gives_its_slot_back_until_it_answers()
 {
    let fixture = Fixture::new().await;
    let mut woken = fixture.context.wakers.register(None);
    let watch = PoolStatisticsWatch::test(&fixture.simulator);
    let slow = PROGRESS_DEADLINE + Duration::from_millis(500);
    fixture.simulator.inject(
        Fault::new(FaultKind::Latency {
            millis: slow.as_millis() as u64,
        })
        .times(1),
    );

    let started = Instant::now();
    let next = reconcile_once(&fixture, &watch).await.expect("reconciled");
    assert!(
        started.elapsed() < slow,
        "the reconcile waited for the slow answer"
    );
    assert_eq!(next, Next::In(PARKED_RECHECK), "the poll is left running");
    assert_eq!(
        fixture.api.lines(),
        [format!("GET {SECRET_PATH}"), format!("PATCH {STATUS_PATH}")]
    );

    // The poll's task wakes the watch when the answer comes; that reconcile shows it.
    let object = futures::StreamExt::next(&mut woken).await.expect("woken");
    assert_eq!(
        (object.namespace.as_deref(), object.name.as_str()),
        (Some(NAMESPACE), NAME)
    );
    let watch = watch.with_status(written(&fixture.api.status_patches()[0]));
    reconcile_once(&fixture, &watch).await.expect("reconciled");

    assert_eq!(
        fixture.api.lines(),
        [
            format!("GET {SECRET_PATH}"),
            format!("PATCH {STATUS_PATH}"),
            format!("PATCH {STATUS_PATH}"),
            format!("POST {EVENTS_PATH}"),
        ]
    );
    let patches = fixture.api.status_patches();
    assert_eq!(
        condition(&patches[0], "Reconciling"),
        pair("True", "Progressing")
    );
    assert_eq!(
        condition(&patches[0], "Ready"),
        pair("Unknown", "Progressing")
    );
    assert_eq!(patches[0]["status"]["observedGeneration"], 1);
    assert_eq!(condition(&patches[1], "Ready"), pair("True", "Synced"));
    assert_eq!(statistics_calls(&fixture), 1, "one poll, shown twice");
}

#[tokio::test]
async fn an_unwritten_status_is_written_first_and_nothing_else_happens_before_the_poll_is_due() {
    let fixture = Fixture::new().await;
    let watch = PoolStatisticsWatch::test(&fixture.simulator);
    let pending = PoolStatisticsWatchStatus {
        observed_generation: Some(1),
        project_id: Some("p".to_owned()),
        ..PoolStatisticsWatchStatus::default()
    };
    let mut memory = WatchMemory::default();
    memory.schedule.polled_generation = Some(1);
    memory.schedule.next_due = Some(Instant::now() + Duration::from_secs(20));
    memory.unwritten = Some(pending.clone());
    remember(&fixture, NAME, memory);

    let next = reconcile_once(&fixture, &watch).await.expect("reconciled");

    assert_eq!(fixture.api.lines(), [format!("PATCH {STATUS_PATH}")]);
    assert_eq!(written(&fixture.api.status_patches()[0]), pending);
    assert_eq!(statistics_calls(&fixture), 0);
    assert!(waits_about(next, Duration::from_secs(20)), "{next:?}");
}

#[tokio::test]
async fn a_suspended_watch_is_shown_suspended_and_waits_for_a_change() {
    let fixture = Fixture::new().await;
    let watch = PoolStatisticsWatch::test(&fixture.simulator).suspended();

    let next = reconcile_once(&fixture, &watch).await.expect("reconciled");

    assert_eq!(next, Next::OnChange);
    assert_eq!(fixture.api.lines(), [format!("PATCH {STATUS_PATH}")]);
    let patch = &fixture.api.status_patches()[0];
    assert_eq!(condition(patch, "Ready"), pair("False", "Suspended"));
    assert_eq!(statistics_calls(&fixture), 0);
}

#[tokio::test]
async fn a_spent_budget_defers_the_poll_without_a_failure() {
    let fixture = Fixture::with_rate(1).await;
    let watch = PoolStatisticsWatch::test(&fixture.simulator);
    let budget_key = BudgetKey {
        endpoint: fixture.simulator.endpoint().authority(),
        credentials: Credentials::new(DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY).fingerprint(),
    };
    // Another watch of the same key just took the only call of this second.
    let taken = fixture
        .context
        .budget
        .try_admit(&budget_key, &mut None, Instant::now());
    assert!(taken.is_ok(), "the first call is admitted");

    let next = reconcile_once(&fixture, &watch).await.expect("reconciled");

    assert_eq!(
        fixture.api.lines(),
        [format!("GET {SECRET_PATH}"), format!("PATCH {STATUS_PATH}")],
        "the keys read, Reconciling shown while the poll waits for the budget, no failure written"
    );
    assert_eq!(
        condition(&fixture.api.status_patches()[0], "Reconciling"),
        pair("True", "Progressing")
    );
    assert_eq!(statistics_calls(&fixture), 0);
    let Next::In(wait) = next else {
        panic!("{next:?}")
    };
    assert!(
        wait >= MIN_DEFERRAL && wait <= Duration::from_secs(1),
        "back when the budget has room: {wait:?}"
    );
    let memory = fixture
        .context
        .memories
        .lease(key(NAME), || panic!("remembered"));
    assert_eq!(memory.schedule.consecutive_failures, 0);
    assert!(
        memory.reservation.is_some(),
        "its place in the queue is kept"
    );
}

#[tokio::test]
async fn a_watch_stalled_on_its_secret_rechecks_it_and_polls_once_it_changed() {
    let fixture = Fixture::new().await;
    // Its status already shows generation 1 (stalled): no Reconciling to write.
    let watch =
        PoolStatisticsWatch::test(&fixture.simulator).with_status(PoolStatisticsWatchStatus {
            observed_generation: Some(1),
            ..PoolStatisticsWatchStatus::default()
        });
    let stalled = |next_check| {
        let mut memory = WatchMemory::default();
        memory.schedule.polled_generation = Some(1);
        memory.schedule.next_due = Some(Instant::now() + Duration::from_secs(600));
        memory.stalled_on_secret = Some(StalledOnSecret {
            version: "7".to_owned(),
            next_check,
        });
        memory
    };

    // Not yet time to look: nothing at all.
    remember(
        &fixture,
        NAME,
        stalled(Instant::now() + Duration::from_secs(5)),
    );
    let next = reconcile_once(&fixture, &watch).await.expect("reconciled");
    assert!(fixture.api.lines().is_empty(), "{:?}", fixture.api.lines());
    assert!(waits_about(next, Duration::from_secs(5)), "{next:?}");

    // Due for a look, unchanged: one Secret read, no poll, the next look 15 s away.
    remember(&fixture, NAME, stalled(Instant::now()));
    let next = reconcile_once(&fixture, &watch).await.expect("reconciled");
    assert_eq!(fixture.api.lines(), [format!("GET {SECRET_PATH}")]);
    assert_eq!(statistics_calls(&fixture), 0);
    assert!(waits_about(next, SECRET_RECHECK), "{next:?}");

    // Changed: a poll at once, with the keys read afresh.
    fixture
        .api
        .script(|script| script.secret_version = Some("8".to_owned()));
    remember(&fixture, NAME, stalled(Instant::now()));
    reconcile_once(&fixture, &watch).await.expect("reconciled");
    assert_eq!(
        fixture.api.lines()[1..],
        [
            format!("GET {SECRET_PATH}"),
            format!("GET {SECRET_PATH}"),
            format!("PATCH {STATUS_PATH}"),
            format!("POST {EVENTS_PATH}"),
        ]
    );
    assert_eq!(statistics_calls(&fixture), 1);
    let memory = fixture
        .context
        .memories
        .lease(key(NAME), || panic!("remembered"));
    assert!(memory.stalled_on_secret.is_none());
}

#[tokio::test]
async fn after_a_restart_current_watches_are_not_written_and_their_polls_spread_over_an_interval() {
    let fixture = Fixture::new().await;
    let template = PoolStatisticsWatch::test(&fixture.simulator);
    // The status a previous operator wrote: current for generation 1, Ready.
    let watch = template.clone();
    let first = reconcile_once(&fixture, &watch).await.expect("reconciled");
    assert!(matches!(first, Next::In(_)));
    let current = written(&fixture.api.status_patches()[0]);
    let requests_before = fixture.api.requests().len();
    let calls_before = statistics_calls(&fixture);

    let mut waits = Vec::new();
    for index in 0..20 {
        let mut restarted = template.clone().with_status(current.clone());
        restarted.metadata.name = Some(format!("restarted-{index}"));
        match reconcile_once(&fixture, &restarted)
            .await
            .expect("reconciled")
        {
            Next::In(wait) => waits.push(wait),
            Next::OnChange => panic!("a current watch waits for its next poll"),
        }
    }
    assert_eq!(
        fixture.api.requests().len(),
        requests_before,
        "no write, no read"
    );
    assert_eq!(statistics_calls(&fixture), calls_before, "no poll at start");
    let (shortest, longest) = (waits.iter().min().unwrap(), waits.iter().max().unwrap());
    assert!(*longest <= INTERVAL, "within one interval: {waits:?}");
    assert!(
        *longest - *shortest >= INTERVAL / 3,
        "spread, not a burst: {waits:?}"
    );
}

#[tokio::test]
async fn a_failed_status_write_fails_the_reconcile_and_is_written_first_next_time() {
    let fixture = Fixture::new().await;
    let watch = Arc::new(PoolStatisticsWatch::test(&fixture.simulator));
    fixture.api.script(|script| script.status_patch = 500);

    let error = reconcile_once(&fixture, &watch)
        .await
        .expect_err("the status write fails");
    assert!(matches!(error, Error::StatusWrite { .. }), "{error}");
    assert_eq!(
        statistics_calls(&fixture),
        1,
        "the poll answered at once: its result was the write that failed"
    );
    assert_eq!(
        fixture.context.memories.kubernetes_failures(&key(NAME)),
        1,
        "remembered for the error policy"
    );
    assert_eq!(
        error_policy(Arc::clone(&watch), &error, Arc::clone(&fixture.context)),
        Action::requeue(Duration::from_secs(1))
    );

    fixture.api.script(|script| script.status_patch = 200);
    reconcile_once(&fixture, &watch).await.expect("reconciled");
    let patches = fixture.api.status_patches();
    assert_eq!(patches.len(), 2, "{:?}", fixture.api.lines());
    assert_eq!(patches[1], patches[0], "the unwritten status first");
    assert_eq!(condition(&patches[1], "Ready"), pair("True", "Synced"));
    assert_eq!(statistics_calls(&fixture), 1, "and no second poll");
    assert_eq!(fixture.context.memories.kubernetes_failures(&key(NAME)), 0);
}

#[tokio::test]
async fn a_refresh_request_made_while_no_operator_led_is_answered_at_once_and_recorded() {
    let fixture = Fixture::new().await;
    let first = PoolStatisticsWatch::test(&fixture.simulator).refresh_requested("t1");
    reconcile_once(&fixture, &first).await.expect("reconciled");
    let patches = fixture.api.status_patches();
    assert_eq!(patches[0]["status"]["lastHandledRefreshRequest"], "t1");
    let answered = written(&patches[0]);

    // A new leader (no memory) sees t1 answered: nothing to do.
    fixture.context.memories.remove(&key(NAME));
    let handled = first.clone().with_status(answered.clone());
    reconcile_once(&fixture, &handled)
        .await
        .expect("reconciled");
    assert_eq!(fixture.api.requests().len(), 3, "{:?}", fixture.api.lines());
    assert_eq!(statistics_calls(&fixture), 1);

    // It sees t2 unanswered (asked while no operator led): a poll at once, and t2 recorded.
    fixture.context.memories.remove(&key(NAME));
    let asked = PoolStatisticsWatch::test(&fixture.simulator)
        .refresh_requested("t2")
        .with_status(answered);
    reconcile_once(&fixture, &asked).await.expect("reconciled");
    assert_eq!(statistics_calls(&fixture), 2);
    let patches = fixture.api.status_patches();
    assert_eq!(patches.len(), 2, "{:?}", fixture.api.lines());
    assert_eq!(patches[1]["status"]["lastHandledRefreshRequest"], "t2");
}

#[tokio::test]
async fn a_failing_watch_turns_ready_false_when_its_counts_turn_stale_not_at_its_next_retry() {
    let fixture = Fixture::new().await;
    let watch = PoolStatisticsWatch::test(&fixture.simulator);
    reconcile_once(&fixture, &watch).await.expect("reconciled");
    let ready = written(&fixture.api.status_patches()[0]);
    let watch = watch.with_status(ready);
    let failing = |last_success: Duration| {
        let mut memory = WatchMemory::default();
        memory.schedule.polled_generation = Some(1);
        memory.schedule.last_success = Some(Instant::now() - last_success);
        memory.schedule.next_due = Some(Instant::now() + Duration::from_secs(20));
        memory.failing = Some(Failure {
            reason: "NetworkError",
            message: "connection refused".to_owned(),
            retry: crate::operator::failure::Retry::Transient { after: None },
            credentials: None,
        });
        memory
    };
    let requests_before = fixture.api.requests().len();

    // Still fresh for 10 s, the retry 20 s away: look again when they turn stale.
    remember(
        &fixture,
        NAME,
        failing(INTERVAL * 3 - Duration::from_secs(10)),
    );
    let next = reconcile_once(&fixture, &watch).await.expect("reconciled");
    assert!(waits_about(next, Duration::from_millis(10_010)), "{next:?}");
    assert_eq!(fixture.api.requests().len(), requests_before);

    // Stale now, the retry still 20 s away: Ready False at once, without a poll.
    remember(
        &fixture,
        NAME,
        failing(INTERVAL * 3 + Duration::from_secs(1)),
    );
    let next = reconcile_once(&fixture, &watch).await.expect("reconciled");
    let patches = fixture.api.status_patches();
    assert_eq!(patches.len(), 2, "{:?}", fixture.api.lines());
    assert_eq!(
        condition(&patches[1], "Ready"),
        pair("False", "NetworkError")
    );
    assert_eq!(
        patches[1]["status"]["pools"]["created"], 9,
        "the counts stay"
    );
    assert_eq!(
        statistics_calls(&fixture),
        1,
        "no poll before the retry is due"
    );
    assert!(waits_about(next, Duration::from_secs(20)), "{next:?}");
}

#[tokio::test]
async fn a_parked_poll_answers_the_refresh_request_it_started_under_and_a_newer_one_gets_its_own() {
    let fixture = Fixture::new().await;
    let mut woken = fixture.context.wakers.register(None);
    let first = PoolStatisticsWatch::test(&fixture.simulator).refresh_requested("a");
    let slow = PROGRESS_DEADLINE + Duration::from_millis(500);
    fixture.simulator.inject(
        Fault::new(FaultKind::Latency {
            millis: slow.as_millis() as u64,
        })
        .times(1),
    );
    let next = reconcile_once(&fixture, &first).await.expect("reconciled");
    assert_eq!(next, Next::In(PARKED_RECHECK), "parked");

    // Someone asks again while the poll is running; its answer is not the answer to that.
    let progressing = written(&fixture.api.status_patches()[0]);
    let asked_again = first
        .clone()
        .refresh_requested("b")
        .with_status(progressing);
    futures::StreamExt::next(&mut woken).await.expect("woken");
    reconcile_once(&fixture, &asked_again)
        .await
        .expect("reconciled");
    let shown = written(fixture.api.status_patches().last().expect("a patch"));
    assert_eq!(shown.last_handled_refresh_request.as_deref(), Some("a"));
    assert_eq!(statistics_calls(&fixture), 1);

    // The next reconcile polls for "b" at once.
    reconcile_once(&fixture, &asked_again.with_status(shown))
        .await
        .expect("reconciled");
    let answered = written(fixture.api.status_patches().last().expect("a patch"));
    assert_eq!(answered.last_handled_refresh_request.as_deref(), Some("b"));
    assert_eq!(statistics_calls(&fixture), 2);
}

#[tokio::test]
async fn a_changed_spec_lets_a_parked_poll_finish_unheard_and_polls_anew() {
    let fixture = Fixture::new().await;
    let watch = PoolStatisticsWatch::test(&fixture.simulator);
    let slow = Duration::from_secs(5);
    fixture.simulator.inject(
        Fault::new(FaultKind::Latency {
            millis: slow.as_millis() as u64,
        })
        .times(1),
    );
    reconcile_once(&fixture, &watch).await.expect("reconciled");
    // Another workspace: another target, so no call to join.
    let mut changed = watch.with_status(written(&fixture.api.status_patches()[0]));
    changed.metadata.generation = Some(2);
    changed.spec.workspace_id = "elsewhere".to_owned();
    let started = Instant::now();
    reconcile_once(&fixture, &changed)
        .await
        .expect("reconciled");
    assert!(
        started.elapsed() < slow,
        "it waited for the old generation's poll"
    );
    let shown = written(fixture.api.status_patches().last().expect("a patch"));
    assert_eq!(shown.observed_generation, Some(2));
    assert!(
        !status::is_true(&shown, status::RECONCILING),
        "the new generation's own answer is shown: {shown:?}"
    );
    let elsewhere = fixture
        .simulator
        .requests_served(&RequestFilter::api(SimulatorApi::Statistics).with_workspace("elsewhere"));
    assert_eq!(elsewhere, 1, "the new generation polled for itself");
}
