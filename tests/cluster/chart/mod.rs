//! The Helm chart, the container image and the GitOps pieces: what the chart renders, that the
//! API server accepts it through install, upgrade and uninstall, that its RBAC is exactly what the
//! real operator uses (proven from the audit log), and that kstatus and the Argo CD health check
//! read real statuses as documented. One module per topic; the helpers they share are here.

mod federation;
mod health;
mod helm;
mod image;
mod monitoring;
mod prometheus;
mod rbac;
mod render;
mod runs;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use std::time::Duration;

use crate::support::control_plane::{
    ControlPlane, TestNamespace, control_plane, repo_path, run, summarise,
};
use crate::support::faults::IsolatedControlPlane;
use crate::support::gitops;
use crate::support::operator::{Operator, has_condition, request_refresh, wait_for_watch};
use crate::support::simulator::{AK, SK};
use crate::support::world::{World, put_secret};
use poolwatch::api::PoolStatisticsWatch;
use poolwatch::simulator::{Fault, FaultKind};
use serde::Deserialize;
use serde_json::{Value, json};

const CHART: &str = "charts/poolwatch";
/// Generous bound for things that happen "at once": a poll and a status write.
const SOON: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Rendering

/// `helm template` of the chart as release `release` in `namespace`, with `--set` values; the
/// documents parsed.
fn render(release: &str, namespace: &str, set: &[&str]) -> Result<Vec<Value>, String> {
    let mut command = control_plane().helm();
    command
        .args(["template", release])
        .arg(repo_path(CHART))
        .args(["--namespace", namespace]);
    for value in set {
        command.args(["--set", value]);
    }
    run(&mut command).map(|text| parse_documents(&text))
}

fn parse_documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).expect("helm renders YAML"))
        .filter(|document| !document.is_null())
        .collect()
}

fn of_kind<'a>(documents: &'a [Value], kind: &str) -> Vec<&'a Value> {
    documents.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(documents, kind);
    assert_eq!(found.len(), 1, "one {kind} expected, got {}", found.len());
    found[0]
}

fn container(documents: &[Value]) -> &Value {
    &one(documents, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

fn args(documents: &[Value]) -> Vec<String> {
    container(documents)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string args").to_owned())
        .collect()
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_path(relative))
        .unwrap_or_else(|e| panic!("reading {relative}: {e}"))
}

fn chart_app_version() -> String {
    let chart: Value = serde_norway::from_str(&read("charts/poolwatch/Chart.yaml")).unwrap();
    chart["appVersion"].as_str().expect("appVersion").to_owned()
}

// ---------------------------------------------------------------------------------------------
// Against the control plane: a world with an operator

impl World {
    /// A watch of the simulator's project with no `workspaceId` (the default applies).
    async fn watch(&self, name: &str, secret: &str) {
        self.create_watch_with(name, "0", secret, json!({"workspaceId": null}))
            .await;
    }

    /// The watch as JSON, as GitOps tools read it.
    async fn object(&self, name: &str) -> Value {
        serde_json::to_value(self.watches.get(name).await.unwrap()).unwrap()
    }

    async fn until(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&PoolStatisticsWatch) -> bool,
    ) -> Value {
        let watch = wait_for_watch(&self.watches, name, what, SOON, check).await;
        serde_json::to_value(watch).unwrap()
    }
}

impl World {
    /// Reads the watch until `done` holds, checking that kstatus and Argo CD read every distinct
    /// status seen before then as `(kstatus, health)`; returns the final object. Panics if no
    /// status was seen before `done`, so the in-between state really was observed.
    async fn read_until(
        &self,
        name: &str,
        in_between: (&str, &str),
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut seen: Vec<Value> = Vec::new();
        let deadline = tokio::time::Instant::now() + SOON;
        loop {
            let object = self.object(name).await;
            if done(&object) {
                assert!(
                    !seen.is_empty(),
                    "no status was seen before {name} was done"
                );
                return object;
            }
            if !object["status"].is_null() && seen.last() != Some(&object["status"]) {
                let reading = gitops::read(&object);
                assert_eq!(
                    (
                        reading.kstatus.status.as_str(),
                        reading.argocd.status.as_str()
                    ),
                    in_between,
                    "{object}"
                );
                seen.push(object["status"].clone());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never got done: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
