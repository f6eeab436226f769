//! `helm install`, `upgrade` and `uninstall` of the chart in both modes on the control plane.

use super::*;

// ---------------------------------------------------------------------------------------------
// helm install, upgrade, uninstall

fn helm(namespace: &TestNamespace, args: &[&str]) -> String {
    let mut command = namespace.helm();
    command.args(args);
    run(&mut command).unwrap_or_else(|e| panic!("{e}"))
}

/// Whether `kubectl get kind name` finds the object (in `namespace`, or cluster-scoped).
fn exists(namespace: Option<&TestNamespace>, kind: &str, name: &str) -> bool {
    let mut command: Command = match namespace {
        Some(namespace) => namespace.kubectl(),
        None => control_plane().kubectl(),
    };
    command.args(["get", kind, name, "--ignore-not-found", "-o", "name"]);
    !run(&mut command)
        .unwrap_or_else(|e| panic!("{e}"))
        .trim()
        .is_empty()
}

fn get_json(namespace: &TestNamespace, kind: &str, name: &str) -> Value {
    let text = run(namespace.kubectl().args(["get", kind, name, "-o", "json"]))
        .unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&text).unwrap()
}

fn chart_path() -> String {
    repo_path(CHART).to_string_lossy().into_owned()
}

/// The release's Pods: scheduled on the fake node, Running and Ready; returns their names.
async fn running_pods(
    namespace: &TestNamespace,
    deployment: &Value,
    replicas: usize,
) -> Vec<String> {
    let selector = deployment["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
        .collect::<Vec<_>>()
        .join(",");
    let pods = Api::<Pod>::namespaced(namespace.client.clone(), &namespace.name);
    crate::support::operator::eventually(
        &format!("{replicas} Pods of the release scheduled, Running and Ready"),
        SOON,
        || {
            let pods = pods.clone();
            let selector = selector.clone();
            async move {
                let list = pods
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .ok()?;
                let ready: Vec<String> = list
                    .items
                    .iter()
                    .filter(|pod| pod.metadata.deletion_timestamp.is_none())
                    .filter(|pod| {
                        let status = pod.status.as_ref();
                        pod.spec
                            .as_ref()
                            .and_then(|s| s.node_name.as_ref())
                            .is_some()
                            && status.and_then(|s| s.phase.as_deref()) == Some("Running")
                            && status.and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    })
                    .map(|pod| pod.metadata.name.clone().unwrap())
                    .collect();
                (ready.len() == replicas && list.items.len() == replicas).then_some(ready)
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_installs_upgrades_and_uninstalls_the_cluster_wide_chart() {
    let namespace = TestNamespace::new("chart-install-cluster").await;
    // Where users put operators: the restricted Pod Security profile, enforced at admission.
    run(namespace.kubectl().args([
        "label",
        "namespace",
        &namespace.name,
        "pod-security.kubernetes.io/enforce=restricted",
    ]))
    .unwrap();
    let release = namespace.name.clone();
    let chart = chart_path();
    let fullname = format!("{release}-poolwatch");
    let fullname = &fullname[..fullname.len().min(63)]
        .trim_end_matches('-')
        .to_owned();

    let notes = helm(
        &namespace,
        &["install", &release, &chart, "--wait", "--timeout=2m"],
    );
    assert!(notes.contains("STATUS: deployed"), "{notes}");
    assert!(notes.contains("every namespace"), "{notes}");
    let namespaced = [
        ("deployment", fullname.clone()),
        ("serviceaccount", fullname.clone()),
        ("service", format!("{fullname}-metrics")),
        ("poddisruptionbudget", fullname.clone()),
        ("role", format!("{fullname}-leader-election")),
        ("rolebinding", format!("{fullname}-leader-election")),
    ];
    let cluster = [
        ("clusterrole", fullname.clone()),
        ("clusterrolebinding", fullname.clone()),
        ("clusterrole", format!("{fullname}-metrics-auth")),
        ("clusterrolebinding", format!("{fullname}-metrics-auth")),
        ("clusterrole", format!("{fullname}-metrics-reader")),
    ];
    for (kind, name) in &namespaced {
        assert!(
            exists(Some(&namespace), kind, name),
            "{kind} {name} installed"
        );
    }
    for (kind, name) in &cluster {
        assert!(exists(None, kind, name), "{kind} {name} installed");
    }

    // The Pods were admitted under the restricted profile, scheduled on the kwok node and are
    // Ready; the rollout is complete; the PodDisruptionBudget and the Service select them.
    let deployment = get_json(&namespace, "deployment", fullname);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pods = running_pods(&namespace, &deployment, 2).await;
    run(namespace.kubectl().args([
        "rollout",
        "status",
        &format!("deployment/{fullname}"),
        "--timeout=60s",
    ]))
    .expect("kubectl rollout status completes");
    let budget = crate::support::operator::eventually(
        "the PodDisruptionBudget counts the Pods",
        SOON,
        || {
            let budget = get_json(&namespace, "poddisruptionbudget", fullname);
            async move {
                (budget["status"]["expectedPods"] == 2 && budget["status"]["currentHealthy"] == 2)
                    .then_some(budget)
            }
        },
    )
    .await;
    assert_eq!(budget["status"]["disruptionsAllowed"], 1, "{budget}");
    let endpoints =
        crate::support::operator::eventually("the metrics Service's endpoints", SOON, || {
            let slices = run(namespace.kubectl().args([
                "get",
                "endpointslices",
                "-l",
                &format!("kubernetes.io/service-name={fullname}-metrics"),
                "-o",
                "json",
            ]))
            .unwrap();
            let slices: Value = serde_json::from_str(&slices).unwrap();
            let targets: BTreeSet<String> = slices["items"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|slice| slice["endpoints"].as_array().cloned().unwrap_or_default())
                .filter_map(|e| e["targetRef"]["name"].as_str().map(str::to_owned))
                .collect();
            async move { (targets.len() == 2).then_some(targets) }
        })
        .await;
    assert_eq!(endpoints, pods.iter().cloned().collect::<BTreeSet<_>>());

    // A watch a user made while the operator was installed.
    let watches = Api::<PoolStatisticsWatch>::namespaced(namespace.client.clone(), &namespace.name);
    let watch: PoolStatisticsWatch = serde_json::from_value(json!({
        "apiVersion": "poolwatch.io/v1alpha1",
        "kind": "PoolStatisticsWatch",
        "metadata": {"name": "kept"},
        "spec": {"region": "cn-north-4", "projectId": "p", "credentialsSecretRef": {"name": "creds"}},
    }))
    .unwrap();
    watches
        .create(&PostParams::default(), &watch)
        .await
        .unwrap();

    helm(
        &namespace,
        &[
            "upgrade",
            &release,
            &chart,
            "--reuse-values",
            "--wait",
            "--timeout=2m",
            "--set",
            "replicaCount=3",
            "--set",
            "networkPolicy.enabled=true",
            "--set",
            "grafanaDashboard.enabled=true",
            "--set",
            "podDisruptionBudget.enabled=false",
        ],
    );
    let deployment = get_json(&namespace, "deployment", fullname);
    assert_eq!(deployment["spec"]["replicas"], 3);
    running_pods(&namespace, &deployment, 3).await;
    assert!(exists(Some(&namespace), "networkpolicy", fullname));
    assert!(exists(
        Some(&namespace),
        "configmap",
        &format!("{fullname}-dashboard")
    ));
    assert!(
        !exists(Some(&namespace), "poddisruptionbudget", fullname),
        "removed by the upgrade"
    );
    let history = helm(&namespace, &["history", &release, "-o", "json"]);
    let history: Value = serde_json::from_str(&history).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2);

    // Uninstall removes everything but the CRD and the watches; the Pods go with their
    // Deployment (garbage collection).
    helm(
        &namespace,
        &["uninstall", &release, "--wait", "--timeout=2m"],
    );
    for (kind, name) in namespaced
        .iter()
        .chain([("networkpolicy", fullname.clone())].iter())
    {
        assert!(
            !exists(Some(&namespace), kind, name),
            "{kind} {name} uninstalled"
        );
    }
    for (kind, name) in &cluster {
        assert!(!exists(None, kind, name), "{kind} {name} uninstalled");
    }
    crate::support::operator::eventually(
        "the Pods to be deleted with their Deployment",
        SOON,
        || {
            let pods = Api::<Pod>::namespaced(namespace.client.clone(), &namespace.name);
            async move {
                pods.list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .is_empty()
                    .then_some(())
            }
        },
    )
    .await;
    assert!(
        exists(None, "crd", "poolstatisticswatches.poolwatch.io"),
        "helm never deletes CRDs"
    );
    assert!(
        watches.get_opt("kept").await.unwrap().is_some(),
        "the watches stay"
    );

    // Deleting the namespace deletes its watches (the namespace controller).
    Api::<Namespace>::all(namespace.client.clone())
        .delete(&namespace.name, &Default::default())
        .await
        .unwrap();
    crate::support::operator::eventually(
        "the namespace and its watch to be deleted",
        Duration::from_secs(60),
        || {
            let namespaces = Api::<Namespace>::all(namespace.client.clone());
            let name = namespace.name.clone();
            async move {
                namespaces
                    .get_opt(&name)
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await;
    assert!(
        watches.get_opt("kept").await.unwrap().is_none(),
        "no watch of the deleted namespace is left"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_installs_upgrades_and_uninstalls_the_namespaced_chart() {
    let namespace = TestNamespace::new("chart-install-namespaced").await;
    let team_a = TestNamespace::new("chart-team-a").await;
    let team_b = TestNamespace::new("chart-team-b").await;
    let release = namespace.name.clone();
    let chart = chart_path();
    let fullname = format!("{release}-poolwatch");
    let fullname = &fullname[..fullname.len().min(63)]
        .trim_end_matches('-')
        .to_owned();
    let both = format!("watchNamespaces={{{},{}}}", team_a.name, team_b.name);

    let notes = helm(
        &namespace,
        &[
            "install",
            &release,
            &chart,
            "--set",
            &both,
            "--wait",
            "--timeout=2m",
        ],
    );
    assert!(
        notes.contains(&team_a.name) && notes.contains(&team_b.name),
        "{notes}"
    );
    for team in [&team_a, &team_b] {
        assert!(exists(Some(team), "role", fullname));
        assert!(exists(Some(team), "rolebinding", fullname));
    }
    assert!(!exists(None, "clusterrole", fullname));
    let args = get_json(&namespace, "deployment", fullname)["spec"]["template"]["spec"]["containers"][0]["args"].clone();
    assert!(
        args.as_array()
            .unwrap()
            .contains(&json!(format!("--watch-namespace={}", team_b.name)))
    );

    // Watching one namespace fewer takes its Role away.
    let only_a = format!("watchNamespaces={{{}}}", team_a.name);
    helm(&namespace, &["upgrade", &release, &chart, "--set", &only_a]);
    assert!(exists(Some(&team_a), "role", fullname));
    assert!(!exists(Some(&team_b), "role", fullname));
    assert!(!exists(Some(&team_b), "rolebinding", fullname));

    helm(&namespace, &["uninstall", &release]);
    assert!(!exists(Some(&team_a), "role", fullname));
    assert!(!exists(Some(&team_a), "rolebinding", fullname));
    assert!(!exists(Some(&namespace), "deployment", fullname));
    assert!(!exists(
        Some(&namespace),
        "role",
        &format!("{fullname}-leader-election")
    ));
}
