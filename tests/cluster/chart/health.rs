//! How kstatus and Argo CD read the resource: sample statuses, the health script the chart
//! ships, and real statuses written by the operator.

use super::*;

// ---------------------------------------------------------------------------------------------
// Argo CD health check and kstatus

const HEALTH_KEY: &str = "resource.customizations.health.poolwatch.io_PoolStatisticsWatch: |";

fn sample(generation: i64, observed: Option<i64>, conditions: &[(&str, &str, &str)]) -> Value {
    let conditions: Vec<Value> = conditions
        .iter()
        .map(|(kind, status, reason)| {
            json!({"type": kind, "status": status, "reason": reason, "message": format!("{reason} message"),
                   "observedGeneration": observed, "lastTransitionTime": "2025-03-27T11:48:55Z"})
        })
        .collect();
    json!({
        "apiVersion": "poolwatch.io/v1alpha1",
        "kind": "PoolStatisticsWatch",
        "metadata": {"name": "pools", "namespace": "ml-team", "generation": generation},
        "spec": {"region": "cn-north-4", "credentialsSecretRef": {"name": "creds"}},
        "status": {"observedGeneration": observed, "conditions": conditions},
    })
}

/// Statuses the operator can write, and a few it never writes (no status, a null one), as kstatus
/// and Argo CD's own health evaluation read them.
#[test]
fn kstatus_and_argo_cd_read_sample_statuses() {
    let ready = [
        ("Ready", "True", "Synced"),
        ("Stalled", "False", "Synced"),
        ("Reconciling", "False", "Synced"),
    ];
    let mut suspended = sample(
        2,
        Some(2),
        &[
            ("Ready", "False", "Suspended"),
            ("Stalled", "False", "Suspended"),
        ],
    );
    suspended["spec"]["suspend"] = json!(true);
    let mut no_status = sample(1, None, &[]);
    no_status.as_object_mut().unwrap().remove("status");
    let mut null_status = sample(1, None, &[]);
    null_status["status"] = Value::Null;
    // (object, kstatus, Argo CD health, words Argo CD's message holds)
    let cases = [
        (sample(1, Some(1), &ready), "Current", "Healthy", "Synced"),
        (
            sample(2, Some(1), &ready),
            "InProgress",
            "Progressing",
            "generation 2",
        ),
        (
            sample(
                2,
                Some(2),
                &[
                    ("Ready", "True", "Synced"),
                    ("Reconciling", "True", "Progressing"),
                ],
            ),
            "InProgress",
            "Progressing",
            "Progressing",
        ),
        (
            sample(
                1,
                Some(1),
                &[
                    ("Ready", "True", "Throttled"),
                    ("Stalled", "False", "Throttled"),
                ],
            ),
            "Current",
            "Healthy",
            "Throttled",
        ),
        (
            sample(
                1,
                Some(1),
                &[
                    ("Ready", "False", "UpstreamUnavailable"),
                    ("Stalled", "False", "UpstreamUnavailable"),
                ],
            ),
            "InProgress",
            "Progressing",
            "UpstreamUnavailable",
        ),
        (
            sample(
                3,
                Some(3),
                &[
                    ("Ready", "False", "AuthenticationFailed"),
                    ("Stalled", "True", "AuthenticationFailed"),
                ],
            ),
            "Failed",
            "Degraded",
            "AuthenticationFailed: AuthenticationFailed message",
        ),
        (
            sample(
                1,
                Some(1),
                &[
                    ("Reconciling", "True", "Progressing"),
                    ("Ready", "Unknown", "Progressing"),
                ],
            ),
            "InProgress",
            "Progressing",
            "Progressing",
        ),
        // An Abnormal or failed pool: the watch works and shows it, so it stays Current and
        // Healthy (no change in git could fix a pool), and Argo CD's message names it.
        (
            sample(
                1,
                Some(1),
                &[
                    ("Ready", "True", "Synced"),
                    ("Stalled", "False", "Synced"),
                    ("PoolsHealthy", "False", "PoolsAbnormal"),
                    ("PoolDetailsSynced", "True", "Synced"),
                ],
            ),
            "Current",
            "Healthy",
            "PoolsHealthy is False: PoolsAbnormal: PoolsAbnormal message",
        ),
        (suspended, "InProgress", "Suspended", "spec.suspend"),
        // kstatus reads a custom resource without conditions as Current: nothing poolwatch
        // writes (its first write carries Reconciling), but Argo CD must not call it Healthy.
        (no_status, "Current", "Progressing", "first status"),
        (null_status, "Current", "Progressing", "first status"),
    ];
    let objects: Vec<Value> = cases.iter().map(|case| case.0.clone()).collect();
    for ((object, kstatus, health, words), reading) in cases.iter().zip(gitops::read_all(&objects))
    {
        assert_eq!(
            reading.kstatus.status, *kstatus,
            "kstatus of {object}: {reading:?}"
        );
        assert_eq!(
            reading.argocd.status, *health,
            "Argo CD health of {object}: {reading:?}"
        );
        assert!(
            reading.argocd.message.contains(words),
            "{:?} mentions {words:?}",
            reading.argocd.message
        );
    }
}

/// The text under the argocd-cm key in `document`, dedented.
fn embedded_health_script(document: &str) -> String {
    let mut lines = document
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(HEALTH_KEY));
    let key = lines
        .next()
        .unwrap_or_else(|| panic!("{HEALTH_KEY} is not in the document"));
    let key_indent = key.len() - key.trim_start().len();
    let body: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > key_indent)
        .collect();
    let indent = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut text: String = body
        .iter()
        .map(|l| {
            if l.trim().is_empty() {
                ""
            } else {
                &l[indent..]
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    text.truncate(text.trim_end().len());
    text.push('\n');
    text
}

#[test]
fn the_argocd_cm_snippets_embed_the_tested_health_script() {
    let script = read(gitops::HEALTH_LUA);
    assert_eq!(
        embedded_health_script(&read("deploy/argocd/argocd-cm.yaml")),
        script
    );
    assert_eq!(
        embedded_health_script(&read("README.md")),
        script,
        "README's argocd-cm snippet"
    );
    let snippet: Value = serde_norway::from_str(&read("deploy/argocd/argocd-cm.yaml")).unwrap();
    assert_eq!(
        snippet["data"]["resource.customizations.health.poolwatch.io_PoolStatisticsWatch"],
        script.as_str()
    );
}

fn synced_at(generation: i64) -> impl Fn(&Value) -> bool {
    move |object| {
        let watch: PoolStatisticsWatch = serde_json::from_value(object.clone()).unwrap();
        object["status"]["observedGeneration"] == generation
            && has_condition(&watch, "Ready", "True", "Synced")
            && has_condition(&watch, "Reconciling", "False", "Synced")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn real_statuses_read_as_kstatus_and_argo_cd_document() {
    let world = World::new("chart-kstatus").await;
    world.create_secret("creds", AK, SK).await;
    // A key the simulator does not know (the known key with a wrong secret would share the
    // other watch's recent answer: calls are shared per access key id).
    world
        .create_secret("refused", "TESTAKUNKNOWN0000001", "not-the-secret-key")
        .await;
    let _operator = Operator::start(&world.namespace.name, &[]);

    // Before the (slow) first poll answers → InProgress, Progressing; then Ready → Current, Healthy.
    world
        .simulator
        .inject(Fault::new(FaultKind::Latency { millis: 4000 }).times(1));
    world.watch("pools", "creds").await;
    let ready = world
        .read_until("pools", ("InProgress", "Progressing"), synced_at(1))
        .await;
    let reading = gitops::read(&ready);
    assert_eq!(reading.kstatus.status, "Current", "{ready}");
    assert_eq!(reading.argocd.status, "Healthy", "{ready}");

    // A new generation, until its (slow) poll answers → InProgress, Progressing; then Current.
    world
        .simulator
        .inject(Fault::new(FaultKind::Latency { millis: 4000 }).times(1));
    world
        .patch_spec("pools", json!({"workspaceId": "ws-partial"}))
        .await;
    let current = world
        .read_until("pools", ("InProgress", "Progressing"), synced_at(2))
        .await;
    assert_eq!(current["metadata"]["generation"], 2);
    let reading = gitops::read(&current);
    assert_eq!(reading.kstatus.status, "Current", "{current}");
    assert_eq!(reading.argocd.status, "Healthy", "{current}");

    // Refused keys → Failed (Stalled), Degraded.
    world.watch("refused", "refused").await;
    let refused = world
        .until("refused", "Stalled", |w| {
            has_condition(w, "Stalled", "True", "AuthenticationFailed")
        })
        .await;
    let reading = gitops::read(&refused);
    assert_eq!(reading.kstatus.status, "Failed", "{refused}");
    assert_eq!(reading.argocd.status, "Degraded", "{refused}");
    assert!(
        reading.argocd.message.starts_with("AuthenticationFailed"),
        "{reading:?}"
    );
    assert!(
        !reading.argocd.message.contains(SK)
            && !reading.argocd.message.contains("not-the-secret-key")
    );

    // Suspended → InProgress for kstatus (not Ready), Suspended for Argo CD.
    world.patch_spec("pools", json!({"suspend": true})).await;
    let suspended = world
        .until("pools", "suspended", |w| {
            has_condition(w, "Ready", "False", "Suspended")
        })
        .await;
    let reading = gitops::read(&suspended);
    assert_eq!(reading.kstatus.status, "InProgress", "{suspended}");
    assert_eq!(reading.argocd.status, "Suspended", "{suspended}");
}
