//! One end-to-end test's world: a namespace (on the shared control plane or a private one), a
//! simulator, the watches API, credentials Secrets, watches, and optionally an operator, plus
//! the counts and audit-log views the tests assert on.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use poolwatch::api::{PoolCounts, PoolStatisticsWatch};
use poolwatch::simulator::{
    Api as SimulatorApi, Fault, FaultKind, RequestFilter, SimulatedCounts, SimulatorHandle,
};
use serde_json::{Value, json};

use super::control_plane::{ControlPlane, TestNamespace};
use super::operator::{Operator, eventually, has_condition, wait_for_watch};
use super::simulator::{self, AK, PROJECT, SK};

/// The name that stands for every watch where status writes are counted.
pub const ANY_WATCH: &str = "*";

/// The default bound for things that happen "at once": a poll and a status write.
pub const SOON: Duration = Duration::from_secs(20);

/// The log level operators start with.
const LOG_LEVEL: &str = "poolwatch=debug,info";

/// Two polls 30 s apart, with room for a loaded machine.
const KEPT_TWO_POLLS: Duration = Duration::from_secs(100);

/// A namespace with a simulator and the watches API; an operator once started.
pub struct World {
    pub namespace: TestNamespace,
    pub simulator: SimulatorHandle,
    pub watches: Api<PoolStatisticsWatch>,
    pub operator: Option<Operator>,
    /// How long [`World::ready`] waits.
    pub soon: Duration,
}

impl World {
    /// A fresh namespace on the shared control plane and a simulator with the default setup;
    /// no Secret, no operator.
    pub async fn new(test: &str) -> Self {
        Self::on(TestNamespace::new(test).await, simulator::start().await)
    }

    /// A world in `namespace` (of any control plane) around `simulator`.
    pub fn on(namespace: TestNamespace, simulator: SimulatorHandle) -> Self {
        let watches = Api::namespaced(namespace.client.clone(), &namespace.name);
        Self {
            namespace,
            simulator,
            watches,
            operator: None,
            soon: SOON,
        }
    }

    /// [`World::new`] with the Secret `creds` holding the permanent key and an operator running.
    pub async fn running(test: &str) -> Self {
        Self::new(test)
            .await
            .with_credentials()
            .await
            .start_operator(&[])
    }

    /// Adds the Secret `creds` holding the permanent key.
    pub async fn with_credentials(self) -> Self {
        self.create_secret("creds", AK, SK).await;
        self
    }

    /// Sets how long [`World::ready`] waits.
    pub fn within(mut self, soon: Duration) -> Self {
        self.soon = soon;
        self
    }

    /// The control plane the namespace is on.
    pub fn plane(&self) -> &'static ControlPlane {
        self.namespace.control_plane
    }

    /// Starts the world's own operator (`extra` flags appended); see [`World::operator`].
    pub fn start_operator(mut self, extra: &[&str]) -> Self {
        self.operator = Some(self.spawn_operator(extra));
        self
    }

    /// The operator [`World::start_operator`] started.
    pub fn operator(&self) -> &Operator {
        self.operator.as_ref().expect("the operator runs")
    }

    /// A new `poolwatch run` for this namespace at debug level, owned by the caller.
    pub fn spawn_operator(&self, extra: &[&str]) -> Operator {
        self.spawn_operator_logging(LOG_LEVEL, extra)
    }

    /// A new `poolwatch run` for this namespace logging at `level`, owned by the caller. Its
    /// admin trusts the world's simulator with keyless credentials, as a cluster with an
    /// in-cluster simulator or a private cloud does.
    pub fn spawn_operator_logging(&self, level: &str, extra: &[&str]) -> Operator {
        let trusted = self.trusted_endpoint_flag();
        let mut flags = vec![trusted.as_str()];
        flags.extend_from_slice(extra);
        Operator::start_on(
            &self.plane().kubeconfig,
            &self.namespace.name,
            level,
            &flags,
        )
    }

    /// `--trusted-endpoint=` the world's simulator.
    pub fn trusted_endpoint_flag(&self) -> String {
        format!("--trusted-endpoint={}", self.simulator.base_url())
    }

    /// Applies a credentials Secret with `accessKeyId` and `secretAccessKey`.
    pub async fn create_secret(&self, name: &str, access_key_id: &str, secret_access_key: &str) {
        self.create_secret_with(
            name,
            &[
                ("accessKeyId", access_key_id),
                ("secretAccessKey", secret_access_key),
            ],
        )
        .await;
    }

    /// Applies a Secret with `data`.
    pub async fn create_secret_with(&self, name: &str, data: &[(&str, &str)]) {
        put_secret(&self.namespace, name, data).await;
    }

    /// A watch of workspace `workspace` of the simulator's project with the credentials of
    /// Secret `secret`, polled every 30 s.
    pub async fn create_watch(
        &self,
        name: &str,
        workspace: &str,
        secret: &str,
    ) -> PoolStatisticsWatch {
        self.create_watch_with(name, workspace, secret, json!({}))
            .await
    }

    /// [`World::create_watch`] with `overrides` merged into its spec (`null` removes a field).
    pub async fn create_watch_with(
        &self,
        name: &str,
        workspace: &str,
        secret: &str,
        overrides: Value,
    ) -> PoolStatisticsWatch {
        self.watches
            .create(
                &PostParams::default(),
                &self.watch_object(name, workspace, secret, overrides),
            )
            .await
            .expect("create the watch")
    }

    /// The watch [`World::create_watch_with`] creates, to create elsewhere (another namespace).
    pub fn watch_object(
        &self,
        name: &str,
        workspace: &str,
        secret: &str,
        overrides: Value,
    ) -> PoolStatisticsWatch {
        let mut spec = json!({
            "endpoint": self.simulator.base_url(),
            "projectId": PROJECT,
            "workspaceId": workspace,
            "credentialsSecretRef": {"name": secret},
            "interval": "30s",
        });
        if let (Some(spec), Some(overrides)) = (spec.as_object_mut(), overrides.as_object()) {
            for (key, value) in overrides {
                if value.is_null() {
                    spec.remove(key);
                } else {
                    spec.insert(key.clone(), value.clone());
                }
            }
        }
        serde_json::from_value(json!({
            "apiVersion": "poolwatch.io/v1alpha1",
            "kind": "PoolStatisticsWatch",
            "metadata": {"name": name},
            "spec": spec,
        }))
        .expect("a valid watch")
    }

    /// Merge-patches the spec of watch `name`.
    pub async fn patch_spec(&self, name: &str, spec: Value) {
        self.watches
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": spec})),
            )
            .await
            .expect("patch the spec");
    }

    /// Waits until watch `name` satisfies `check`, returning it.
    pub async fn wait(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&PoolStatisticsWatch) -> bool,
    ) -> PoolStatisticsWatch {
        wait_for_watch(&self.watches, name, what, timeout, check).await
    }

    /// Waits (up to [`World::soon`](World::within)) until watch `name` is Ready and Synced.
    pub async fn ready(&self, name: &str) -> PoolStatisticsWatch {
        self.wait(name, "Ready", self.soon, |w| {
            has_condition(w, "Ready", "True", "Synced")
        })
        .await
    }

    /// Sets the simulated counts of a workspace of the project: `created` created, 1 deleting.
    pub fn set_created(&self, workspace: &str, created: i64) {
        self.simulator.set_counts(
            PROJECT,
            workspace,
            SimulatedCounts::new(0, created, 0, 0, 1),
        );
    }

    /// Makes the next statistics answer for `workspace` of the project take `delay`: a watch's slow
    /// first poll, during which it is Reconciling.
    pub fn slow_first_poll(&self, workspace: &str, delay: Duration) {
        self.simulator.inject(
            Fault::new(FaultKind::Latency {
                millis: delay.as_millis() as u64,
            })
            .on(SimulatorApi::Statistics)
            .for_workspace(workspace)
            .times(1),
        );
    }

    /// After a GitOps controller pruned watch `removed` (of workspace `removed`): waits, `step` at a
    /// time, for it to be gone from the API server and its `series` from the operator's metrics,
    /// then asserts that the operator no longer polls it while it polls watch `kept` (both every
    /// 30 s) twice more. `alive` runs between tries (a controller that died explains itself).
    pub async fn assert_pruned_watch_forgotten(
        &self,
        series: &str,
        step: Duration,
        alive: impl Fn(),
    ) {
        let operator = self.operator();
        eventually("the removed watch to be deleted", step, || async {
            alive();
            let watch = self.watches.get_opt("removed").await.expect("read removed");
            watch.is_none().then_some(())
        })
        .await;
        eventually("the removed watch's series to go", step, || async {
            (!operator.metrics().await.contains(series)).then_some(())
        })
        .await;
        let polls_when_forgotten = self.statistics_requests("removed");
        // A whole interval later (the kept watch, polled every 30 s as the removed one was, has been
        // polled twice more), the removed watch was not polled again.
        let kept_polls = self.statistics_requests("kept");
        eventually(
            "two more polls of the kept watch",
            KEPT_TWO_POLLS,
            || async { (self.statistics_requests("kept") >= kept_polls + 2).then_some(()) },
        )
        .await;
        assert_eq!(
            self.statistics_requests("removed"),
            polls_when_forgotten,
            "the operator still polls the pruned watch"
        );
    }

    /// Statistics requests the simulator served for a workspace of the project.
    pub fn statistics_requests(&self, workspace: &str) -> u64 {
        self.simulator.requests_served(
            &RequestFilter::api(SimulatorApi::Statistics)
                .with_project(PROJECT)
                .with_workspace(workspace),
        )
    }

    /// Statistics requests the simulator served for a workspace of the project from one replica
    /// (told apart by its User-Agent).
    pub fn statistics_requests_from(&self, workspace: &str, replica: &Operator) -> u64 {
        self.simulator.requests_served(
            &RequestFilter::api(SimulatorApi::Statistics)
                .with_project(PROJECT)
                .with_workspace(workspace)
                .with_user_agent_containing(replica.agent_marker()),
        )
    }

    /// Completed status writes of watch `name` (or of any, [`ANY_WATCH`]) in the audit log sent
    /// by one replica.
    pub async fn status_writes_from(&self, name: &str, replica: &Operator) -> usize {
        let marker = replica.agent_marker();
        self.count_status_writes(name, |e| {
            e["userAgent"]
                .as_str()
                .is_some_and(|agent| agent.contains(&marker))
        })
        .await
    }

    /// Completed status writes of watch `name` in the audit log, whatever their outcome.
    pub async fn status_writes(&self, name: &str) -> usize {
        self.count_status_writes(name, |_| true).await
    }

    /// Completed status writes of watch `name` in the audit log that succeeded (200).
    pub async fn successful_status_writes(&self, name: &str) -> usize {
        self.count_status_writes(name, |e| e["responseStatus"]["code"] == 200)
            .await
    }

    /// Status writes of watch `name` that `keep` selects, counted once every request completed
    /// so far is in the audit log.
    async fn count_status_writes(&self, name: &str, keep: impl Fn(&Value) -> bool) -> usize {
        self.namespace
            .settled_audit_events()
            .await
            .iter()
            .filter(|e| {
                e["objectRef"]["subresource"] == "status"
                    && (name == ANY_WATCH || e["objectRef"]["name"] == name)
                    && e["verb"] == "patch"
                    && e["stage"] == "ResponseComplete"
                    && keep(e)
            })
            .count()
    }
}

/// Server-side applies a Secret with `data` in `namespace`.
pub async fn put_secret(namespace: &TestNamespace, name: &str, data: &[(&str, &str)]) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    };
    let mut value = serde_json::to_value(secret).expect("a Secret serialises");
    value["apiVersion"] = json!("v1");
    value["kind"] = json!("Secret");
    Api::<Secret>::namespaced(namespace.client.clone(), &namespace.name)
        .patch(
            name,
            &PatchParams::apply("poolwatch-tests").force(),
            &Patch::Apply(&value),
        )
        .await
        .expect("apply the Secret");
}

/// The counts in a watch's status.
pub fn counts(watch: &PoolStatisticsWatch) -> Option<PoolCounts> {
    watch.status.as_ref().and_then(|s| s.pools)
}

/// The created count in a watch's status.
pub fn created(watch: &PoolStatisticsWatch) -> Option<i64> {
    counts(watch).and_then(|p| p.created)
}

/// The counts of workspace `0` of the simulator's default setup (the documented example).
pub fn example_counts() -> PoolCounts {
    PoolCounts {
        creating: Some(0),
        created: Some(9),
        failed: Some(0),
        pending: Some(0),
        deleting: Some(1),
    }
}

/// The managers of `watch`'s managedFields entries: (manager, operation, subresource, fields).
pub fn managed_fields(watch: &Value) -> Vec<(String, String, String, Value)> {
    watch["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .map(|entry| {
            let text = |key: &str| entry[key].as_str().unwrap_or_default().to_owned();
            (
                text("manager"),
                text("operation"),
                text("subresource"),
                entry["fieldsV1"].clone(),
            )
        })
        .collect()
}

/// Whether a watch is Ready for its current generation.
pub fn ready_now(watch: &PoolStatisticsWatch) -> bool {
    has_condition(watch, "Ready", "True", "Synced")
        && watch.status.as_ref().and_then(|s| s.observed_generation) == watch.metadata.generation
}
