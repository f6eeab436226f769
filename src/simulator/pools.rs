//! The pools the simulator lists (ModelArts' `GET /v2/{project_id}/pools`): their setup, and the
//! answer in Huawei's wire format (`PoolList` of `Pool`s, as the official SDK's `ListPoolsResponse`
//! and `PoolModel` read them).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The phase of a pool that failed to be created: listed only with `status=failed`.
pub const FAILED_PHASE: &str = "Failed";

/// One pool of a workspace. `phase` is free text, so that tests can serve a phase no client
/// knows; [`FAILED_PHASE`] puts the pool in the failed list instead of the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulatedPool {
    /// `metadata.name`: the pool's id.
    pub name: String,
    /// `metadata.labels["os.modelarts/name"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `spec.type`, default `Dedicate`.
    #[serde(default = "dedicate", rename = "type")]
    pub pool_type: String,
    /// `status.phase`: Creating, Running, Abnormal, Deleting, Error, or [`FAILED_PHASE`].
    pub phase: String,
    /// `status.message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `metadata.creationTimestamp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// `spec.resources` and `status.resources`, per flavor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flavors: Vec<SimulatedFlavor>,
    /// `status.driver.gpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_driver: Option<SimulatedDriver>,
    /// `status.driver.npu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub npu_driver: Option<SimulatedDriver>,
}

fn dedicate() -> String {
    "Dedicate".to_owned()
}

/// A pool's nodes of one flavor: asked for, and by state. A state left out is not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulatedFlavor {
    /// The node flavor, e.g. `modelarts.vm.gpu.8ant8`.
    pub flavor: String,
    /// Nodes asked for (`spec.resources[].count`).
    pub count: i64,
    /// `spec.resources[].maxCount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<i64>,
    /// `status.resources.available`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<i64>,
    /// `status.resources.abnormal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abnormal: Option<i64>,
    /// `status.resources.creating`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creating: Option<i64>,
    /// `status.resources.deleting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleting: Option<i64>,
}

/// A driver's version and state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulatedDriver {
    /// E.g. `470.182.03`.
    pub version: String,
    /// E.g. `Running`.
    pub state: String,
}

impl SimulatedPool {
    /// A Running pool of one flavor with all its nodes available.
    pub fn running(name: &str, flavor: &str, nodes: i64) -> Self {
        Self {
            name: name.to_owned(),
            display_name: None,
            pool_type: dedicate(),
            phase: "Running".to_owned(),
            message: None,
            created: Some("2026-11-30T08:00:00Z".to_owned()),
            flavors: vec![SimulatedFlavor {
                flavor: flavor.to_owned(),
                count: nodes,
                max_count: Some(nodes * 2),
                available: Some(nodes),
                ..SimulatedFlavor::default()
            }],
            gpu_driver: None,
            npu_driver: None,
        }
    }

    /// This pool in `phase`, with `message`.
    pub fn in_phase(mut self, phase: &str, message: &str) -> Self {
        self.phase = phase.to_owned();
        self.message = (!message.is_empty()).then(|| message.to_owned());
        self
    }

    /// Whether ListPools with `status` (absent: the current pools) lists this pool.
    pub fn listed_for(&self, status: Option<&str>) -> bool {
        let failed = self.phase == FAILED_PHASE;
        match status {
            None => !failed,
            Some("failed") => failed,
            Some("created") => matches!(self.phase.as_str(), "Running" | "Abnormal"),
            Some("creating") => self.phase == "Creating",
            Some(_) => false,
        }
    }

    /// The pool as ModelArts sends it.
    pub fn to_wire(&self, workspace: &str) -> Value {
        let mut labels = json!({"os.modelarts/workspace.id": workspace});
        if let Some(display) = &self.display_name {
            labels["os.modelarts/name"] = json!(display);
        }
        let resources: Vec<Value> = self
            .flavors
            .iter()
            .map(|f| {
                let mut resource = json!({"flavor": f.flavor, "count": f.count});
                if let Some(max) = f.max_count {
                    resource["maxCount"] = json!(max);
                }
                resource
            })
            .collect();
        let mut status = json!({
            // A pool that failed to be created is in Error, as ModelArts shows it.
            "phase": if self.phase == FAILED_PHASE { "Error" } else { &self.phase },
            "resources": self.status_resources(),
            "scope": [{"scopeType": "Train", "state": "Enabled"}],
        });
        if let Some(message) = &self.message {
            status["message"] = json!(message);
        }
        let mut driver = json!({});
        for (kind, state) in [("gpu", &self.gpu_driver), ("npu", &self.npu_driver)] {
            if let Some(state) = state {
                driver[kind] = json!({"version": state.version, "state": state.state});
            }
        }
        if driver.as_object().is_some_and(|d| !d.is_empty()) {
            status["driver"] = driver;
        }
        let mut metadata = json!({"name": self.name, "labels": labels});
        if let Some(created) = &self.created {
            metadata["creationTimestamp"] = json!(created);
        }
        json!({
            "apiVersion": "v2",
            "kind": "Pool",
            "metadata": metadata,
            "spec": {"type": self.pool_type, "scope": ["Train"], "resources": resources},
            "status": status,
        })
    }

    /// `status.resources`: per state, the flavors with nodes in it. One flavor is sent as one
    /// object, as the official SDK's model (`PoolResourceFlavorCount`) has it; several as a list,
    /// as Huawei's API reference has it. Clients must read both.
    fn status_resources(&self) -> Value {
        let mut resources = json!({});
        let states: [(&str, NodesIn); 4] = [
            ("creating", |f| f.creating),
            ("available", |f| f.available),
            ("abnormal", |f| f.abnormal),
            ("deleting", |f| f.deleting),
        ];
        for (state, nodes) in states {
            let entries: Vec<Value> = self
                .flavors
                .iter()
                .filter_map(|f| nodes(f).map(|n| json!({"flavor": f.flavor, "count": n})))
                .collect();
            match entries.len() {
                0 => {}
                1 => resources[state] = entries[0].clone(),
                _ => resources[state] = Value::Array(entries),
            }
        }
        resources
    }
}

/// How many of a flavor's nodes are in one state.
type NodesIn = fn(&SimulatedFlavor) -> Option<i64>;

/// The ListPools answer: the pools of `workspace` that `status` selects.
pub fn pool_list(pools: &[SimulatedPool], workspace: &str, status: Option<&str>) -> Value {
    let items: Vec<Value> = pools
        .iter()
        .filter(|p| p.listed_for(status))
        .map(|p| p.to_wire(workspace))
        .collect();
    json!({"apiVersion": "v2", "kind": "PoolList", "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_select_as_modelarts_does() {
        let pools = [
            SimulatedPool::running("a", "f", 1),
            SimulatedPool::running("b", "f", 1).in_phase("Abnormal", "node down"),
            SimulatedPool::running("c", "f", 1).in_phase("Creating", ""),
            SimulatedPool::running("d", "f", 1).in_phase(FAILED_PHASE, "no quota"),
        ];
        let names = |status| -> Vec<String> {
            pool_list(&pools, "0", status)["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
                .collect()
        };
        assert_eq!(names(None), ["a", "b", "c"]);
        assert_eq!(names(Some("failed")), ["d"]);
        assert_eq!(names(Some("created")), ["a", "b"]);
        assert_eq!(names(Some("creating")), ["c"]);
        let failed = &pool_list(&pools, "0", Some("failed"))["items"][0];
        assert_eq!(failed["status"]["phase"], "Error");
        assert_eq!(failed["status"]["message"], "no quota");
    }

    #[test]
    fn one_flavor_is_an_object_and_several_a_list() {
        let mut pool = SimulatedPool::running("a", "f1", 2);
        let one = pool.to_wire("0");
        assert_eq!(
            one["status"]["resources"]["available"],
            json!({"flavor": "f1", "count": 2})
        );
        assert_eq!(
            one["spec"]["resources"],
            json!([{"flavor": "f1", "count": 2, "maxCount": 4}])
        );
        pool.flavors.push(SimulatedFlavor {
            flavor: "f2".to_owned(),
            count: 1,
            available: Some(0),
            abnormal: Some(1),
            ..SimulatedFlavor::default()
        });
        let two = pool.to_wire("0");
        assert_eq!(
            two["status"]["resources"]["available"],
            json!([{"flavor": "f1", "count": 2}, {"flavor": "f2", "count": 0}])
        );
        assert_eq!(
            two["status"]["resources"]["abnormal"],
            json!({"flavor": "f2", "count": 1})
        );
    }
}
