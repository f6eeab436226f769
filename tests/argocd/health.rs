//! A stalled watch: the Application turns Degraded, and the watch's entry carries the
//! operator's Stalled message (through the shipped health script), never the secret.

use serde_json::json;

use crate::support::argocd::{ARGOCD_STEP, health, resource};
use crate::support::operator::{condition, condition_message};
use crate::support::simulator::AK;
use crate::support::world::ready_now;
use crate::world::{ArgoWorld, CREDENTIALS, KIND};

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_whose_keys_are_refused_makes_the_application_degraded_with_its_message() {
    let fx = ArgoWorld::new("argocd-degraded").await.start_operator();
    let wrong_secret = "wrong-secret-key-never-print-me";
    let files = [
        fx.credentials_file(),
        fx.secret_file("wrong", AK, wrong_secret),
        fx.watch_file("good", "0", CREDENTIALS, json!({})),
        fx.watch_file("refused", "0", "wrong", json!({})),
    ];
    fx.commit(&files, &[], "A watch with refused keys");
    let app = fx.apply_application(|_| {}).await;

    let degraded = app
        .wait("Degraded", ARGOCD_STEP, |a| {
            (health(a) == "Degraded").then(|| a.clone())
        })
        .await;
    let refused = fx.watch("refused").await;
    let (stalled, reason) = condition(&refused, "Stalled").expect("a Stalled condition");
    assert_eq!(stalled, "True", "{:?}", refused.status);
    let entry = resource(&degraded, KIND, "refused").expect("the watch in the Application");
    assert_eq!(entry["health"]["status"], "Degraded", "{entry:#}");
    let message = entry["health"]["message"].as_str().unwrap_or_default();
    assert_eq!(
        message,
        format!("{reason}: {}", condition_message(&refused, "Stalled")),
        "{entry:#}"
    );
    let good = resource(&degraded, KIND, "good").expect("the good watch");
    assert_eq!(good["health"]["status"], "Healthy", "{good:#}");
    assert!(ready_now(&fx.watch("good").await));
    assert!(
        !degraded.to_string().contains(wrong_secret),
        "the secret leaked into the Application: {degraded:#}"
    );
}
