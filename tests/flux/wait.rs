//! `wait: true`: the Kustomization turns Ready only once every watch shows a successful poll of
//! its generation (kstatus with the shipped health-check expressions, inside kustomize-controller),
//! never on a watch without status or one whose first poll is still running, and fails, naming
//! the watch, when one is stalled.

use std::cell::Cell;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::flux::{self, flux_condition};
use crate::support::operator::{condition, condition_message, eventually, has_condition};
use crate::support::simulator::{AK, SK};
use crate::support::world::ready_now;
use crate::world::{CREDENTIALS, FLUX_STEP, FluxWorld};

/// How long the simulator holds the slow watch's first answer: several of Flux's 5 s health
/// polls, and well within the operator's 30 s upstream timeout.
const SLOW_FIRST_POLL: Duration = Duration::from_secs(12);

/// `lastTransitionTime` of condition `type_` of a Kubernetes object as JSON.
fn transition_time(object: &Value, type_: &str) -> String {
    object["status"]["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == type_))
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Waits until kustomize-controller runs the health checks of `revision` and has read the
/// watches at least twice more since: it has judged them, at least once, as they are now. Returns
/// at once if the Kustomization turns Ready at `revision` instead, for the caller to say why that
/// is wrong.
pub async fn health_checked_twice(fx: &FluxWorld, revision: &str) {
    let checking = fx
        .flux
        .wait_kustomization("running health checks", FLUX_STEP, |k| {
            let checking = flux_condition(k, "Healthy").is_some_and(|(status, _, message)| {
                status == "Unknown"
                    && message.starts_with("Running health checks")
                    && message.contains(revision)
            });
            (checking || flux::ready_at(k, revision)).then_some(checking)
        })
        .await;
    if !checking {
        return;
    }
    let reads = fx.health_check_reads().await;
    eventually(
        "two health-check polls of the watches",
        FLUX_STEP,
        || async {
            fx.flux.assert_running();
            (fx.health_check_reads().await >= reads + 2).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kustomization_turns_ready_only_after_every_watch_has_shown_a_successful_poll() {
    let fx = FluxWorld::new("flux-wait").await;
    fx.workspace("fast", 3);
    fx.workspace("slow", 5);
    let mut files = fx.files_with_credentials();
    files.push(fx.watch_file("fast", "fast", CREDENTIALS, json!({})));
    files.push(fx.watch_file("slow", "slow", CREDENTIALS, json!({})));
    let revision = fx.commit(&files, &[], "Two watches");
    fx.apply_flux_objects().await;

    // No operator yet: the watches Flux created have no status. Flux keeps checking them.
    health_checked_twice(&fx, &revision).await;
    let kustomization = fx.flux.kustomization().await;
    assert!(
        !flux::ready_at(&kustomization, &revision),
        "Flux counted watches without a status as ready: {:#}",
        kustomization["status"]
    );
    for name in ["fast", "slow"] {
        let watch = fx.world.watches.get(name).await.expect("Flux created it");
        assert!(
            watch.status.is_none(),
            "{name} has a status: {:?}",
            watch.status
        );
    }

    // The operator starts; the slow watch's first answer takes several health polls.
    fx.world.slow_first_poll("slow", SLOW_FIRST_POLL);
    let fx = fx.start_operator();
    let slow_first_poll_seen = Cell::new(false);
    let kustomization = eventually("the Kustomization to be Ready", FLUX_STEP, || async {
        fx.flux.assert_running();
        let kustomization = fx.flux.kustomization().await;
        let fast = fx.world.watches.get("fast").await.expect("read fast");
        let slow = fx.world.watches.get("slow").await.expect("read slow");
        let ready = flux::ready_at(&kustomization, &revision);
        assert!(
            !ready || (ready_now(&fast) && ready_now(&slow)),
            "the Kustomization is Ready while a watch is not: fast {:?}, slow {:?}",
            fast.status,
            slow.status
        );
        if !ready && ready_now(&fast) && has_condition(&slow, "Reconciling", "True", "Progressing")
        {
            slow_first_poll_seen.set(true);
        }
        ready.then_some(kustomization)
    })
    .await;
    assert!(
        slow_first_poll_seen.get(),
        "never saw the Kustomization wait for the slow watch's first poll (the fast one Ready, \
         the slow one Reconciling)"
    );
    // Flux's Ready came after each watch's.
    let turned_ready = transition_time(&kustomization, "Ready");
    for name in ["fast", "slow"] {
        let watch = serde_json::to_value(fx.world.watches.get(name).await.unwrap()).unwrap();
        assert!(
            transition_time(&watch, "Ready") <= turned_ready,
            "{name} turned Ready at {} after the Kustomization at {turned_ready}",
            transition_time(&watch, "Ready")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_whose_keys_are_refused_fails_the_kustomization_naming_the_watch() {
    let fx = FluxWorld::new("flux-stalled").await.start_operator();
    let wrong_secret = "wrong-secret-key-never-print-me";
    let mut files = fx.base_files(&[(CREDENTIALS, AK, SK), ("wrong", AK, wrong_secret)]);
    files.push(fx.watch_file("good", "0", CREDENTIALS, json!({})));
    files.push(fx.watch_file("refused", "0", "wrong", json!({})));
    fx.commit(&files, &[], "A watch with refused keys");
    fx.apply_flux_objects().await;

    let message = fx
        .flux
        .wait_kustomization("failed by its health check", FLUX_STEP, |k| {
            flux_condition(k, "Ready")
                .filter(|(status, reason, _)| status == "False" && reason == "HealthCheckFailed")
                .map(|(_, _, message)| message)
        })
        .await;
    let refused = fx.world.watches.get("refused").await.expect("read refused");
    let (stalled, reason) = condition(&refused, "Stalled").expect("a Stalled condition");
    assert_eq!(stalled, "True", "{:?}", refused.status);
    // Flux fails at once on a stalled object rather than at the 5 m timeout, and names it; its
    // message carries the kstatus verdict only, so the operator's reason is on the watch.
    let apps = fx.apps();
    assert!(
        message.contains("failed early due to stalled resources")
            && message.contains(&format!(
                "PoolStatisticsWatch/{apps}/refused status: 'Failed'"
            )),
        "{message}"
    );
    assert!(
        !message.contains("/good "),
        "the good watch is named: {message}"
    );
    assert!(
        !message.contains(wrong_secret),
        "the secret leaked: {message}"
    );
    let good = fx.world.watches.get("good").await.expect("read good");
    assert!(ready_now(&good), "{:?}", good.status);
    assert!(
        !condition_message(&refused, "Stalled").is_empty(),
        "Stalled {reason} says nothing: {:?}",
        refused.status
    );
}

/// Why the shipped Kustomization has `healthCheckExprs`: without them, Flux's kstatus counts a
/// watch that has no status yet as ready.
#[tokio::test(flavor = "multi_thread")]
async fn without_the_health_check_expressions_flux_counts_a_watch_without_status_as_ready() {
    let fx = FluxWorld::new("flux-no-exprs").await;
    let mut files = fx.files_with_credentials();
    files.push(fx.watch_file("pools", "0", CREDENTIALS, json!({})));
    let revision = fx.commit(&files, &[], "A watch");
    fx.flux
        .apply_user_manifests(&fx.repo.url, |object| {
            if let Some(spec) = object["spec"].as_object_mut() {
                spec.remove("healthCheckExprs");
            }
        })
        .await;

    // No operator runs: the watch never gets a status, and Flux passes it all the same.
    fx.kustomization_ready_at(&revision).await;
    let watch = fx
        .world
        .watches
        .get("pools")
        .await
        .expect("Flux created it");
    assert!(watch.status.is_none(), "{:?}", watch.status);
}
