//! The chart's rendered container, in every mode, started as the real binary against the
//! control plane: each flag and variable the chart renders is one the binary accepts, and it does
//! what the mode says. The command line comes from `helm template` (`RenderedContainer`), so the
//! chart and what is tested cannot drift apart.

use super::*;
use crate::support::faults::{TestPki, scratch_dir};
use crate::support::metrics_reader::{Trust, test_cert_dir};
use crate::support::operator::{eventually, free_address, request_refresh, wait_for_watch};
use crate::support::rendered::{PodContext, RenderedContainer};
use k8s_openapi::api::coordination::v1::Lease;

/// Renders release `release` into `namespace` with `set`, and starts its container as Pod
/// `<release>-pod` whose `ca-bundle` volume holds `ca_dir`.
fn start_rendered(
    world: &World,
    release: &str,
    set: &[&str],
    ca_dir: &std::path::Path,
) -> (Operator, RenderedContainer) {
    let namespace = world.namespace.name.as_str();
    let documents = render(release, namespace, set).unwrap_or_else(|e| panic!("{release}: {e}"));
    let container = RenderedContainer::of(&documents);
    let pod_name = format!("{release}-pod");
    let pod = PodContext {
        name: &pod_name,
        namespace,
        volumes: [
            ("ca-bundle".to_owned(), ca_dir.to_path_buf()),
            ("metrics-tls".to_owned(), test_cert_dir().0.clone()),
        ]
        .into(),
    };
    let (metrics, probes) = (free_address(), free_address());
    let args = container.local_args(&pod, &metrics, &probes);
    let env = container.local_env(&pod);
    let operator = Operator::spawn(&world.plane().kubeconfig, &args, &env, &metrics, &probes);
    (operator, container)
}

/// The value of `--flag=value` among `args`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
}

async fn answers_refresh(world: &World, watch: &str, token: &str) {
    request_refresh(&world.watches, watch, token).await;
    wait_for_watch(&world.watches, watch, token, SOON, |w| {
        w.status
            .as_ref()
            .and_then(|s| s.last_handled_refresh_request.as_deref())
            == Some(token)
    })
    .await;
}

async fn stops_on_sigterm(mut operator: Operator, mode: &str) {
    operator.signal("TERM");
    assert!(
        operator.wait_exit(Duration::from_secs(10)),
        "{mode}: still running 10 s after SIGTERM"
    );
    let status = operator.exit_status().expect("exited");
    assert!(
        status.success(),
        "{mode}: exited {status}\n{:#?}",
        operator.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rendered_args_and_env_of_every_chart_mode_start_the_operator() {
    let world = World::new("chart-args").await.with_credentials().await;
    let other = World::on(
        TestNamespace::new("chart-args-other").await,
        crate::support::simulator::start().await,
    )
    .with_credentials()
    .await;
    world.create_watch("pools", "0", "creds").await;
    other.create_watch("pools", "0", "creds").await;
    let ca_dir = scratch_dir("chart-args-ca");
    std::fs::write(ca_dir.join("ca.crt"), TestPki::new().ca_pem).expect("write the CA");
    let ok = (200, "ok".to_owned());

    // Defaults: cluster-wide, leader election. Someone else holds the Lease, so this replica
    // stays a standby and leaves the other tests' namespaces alone; it must still start, be
    // ready and wait for the Lease the chart names.
    let defaults = render("pw-defaults", &world.namespace.name, &[]).expect("renders");
    let lease_name = flag(
        &RenderedContainer::of(&defaults).args,
        "--leader-election-id",
    )
    .expect("a Lease name")
    .to_owned();
    let held = serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": lease_name},
        "spec": {
            "holderIdentity": "someone-else",
            "leaseDurationSeconds": 3600,
            "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                jiff::Timestamp::now()
            ),
        },
    });
    Api::<Lease>::namespaced(world.namespace.client.clone(), &world.namespace.name)
        .create(
            &PostParams::default(),
            &serde_json::from_value(held).expect("a Lease"),
        )
        .await
        .expect("the Lease");
    let (standby, _) = start_rendered(&world, "pw-defaults", &[], &ca_dir);
    eventually("the defaults to be ready", SOON, || async {
        (standby.probe("readyz").await == ok).then_some(())
    })
    .await;
    assert_eq!(standby.probe("healthz").await, ok);
    // /metrics over HTTPS with the self-signed certificate, to the chart's reader.
    assert!(matches!(standby.metrics_trust, Trust::SelfSigned));
    assert!(standby.metrics().await.contains("poolwatch_leader "));
    let waiting = eventually("the standby to wait for the Lease", SOON, || async {
        standby
            .logs()
            .into_iter()
            .find(|l| l.contains("waiting to lead") && l.contains(&lease_name))
    })
    .await;
    assert!(
        waiting.contains("pw-defaults-pod-"),
        "the identity is the Pod's name: {waiting}"
    );
    stops_on_sigterm(standby, "defaults").await;

    // Namespaced, with leader election: leads, and polls in both namespaces it is given.
    let namespaces = format!(
        "watchNamespaces={{{},{}}}",
        world.namespace.name, other.namespace.name
    );
    let (leader, _) = start_rendered(&world, "pw-namespaced", &[&namespaces], &ca_dir);
    answers_refresh(&world, "pools", "namespaced").await;
    answers_refresh(&other, "pools", "namespaced").await;
    let leases = Api::<Lease>::namespaced(world.namespace.client.clone(), &world.namespace.name);
    let lease = leases
        .get("pw-namespaced-poolwatch-leader")
        .await
        .expect("the namespaced release's Lease");
    let holder = lease
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    assert!(
        leader.is(&holder) && holder.starts_with("pw-namespaced-pod-"),
        "{holder}"
    );
    stops_on_sigterm(leader, "namespaced").await;

    // Every option set: no leader election, one namespace, a CA bundle and the metrics
    // certificate from volumes, plain HTTP allowed, text logs, extra args (overriding a rendered
    // flag) and extra env.
    let sets = [
        &format!("watchNamespaces={{{}}}", world.namespace.name) as &str,
        "leaderElection.enabled=false",
        "operator.caBundle.configMapName=private-ca",
        "metrics.certSecretName=metrics-cert",
        "operator.allowHttpEndpoints=true",
        "operator.logFormat=text",
        "operator.logLevel=debug",
        "extraArgs={--upstream-timeout=10s}",
        "extraEnv[0].name=RUST_BACKTRACE",
        "extraEnv[0].value=full",
    ];
    let (everything, container) = start_rendered(&world, "pw-everything", &sets, &ca_dir);
    assert!(
        container.args.iter().any(|a| a.starts_with("--ca-bundle=")),
        "{:?}",
        container.args
    );
    answers_refresh(&world, "pools", "everything").await;
    // /metrics with the mounted certificate, verified against its CA.
    assert!(matches!(everything.metrics_trust, Trust::Ca(_)));
    assert!(everything.metrics().await.contains("poolwatch_leader 1"));
    let logs = everything.logs();
    assert!(!logs.is_empty());
    assert!(
        logs.iter().all(|l| !l.starts_with('{')),
        "text logs were asked for: {logs:#?}"
    );
    stops_on_sigterm(everything, "everything").await;
}
