//! Prometheus metrics, prefix `poolwatch_`. Label values are names and stable reasons, never
//! error strings, so the number of series stays bounded; a deleted watch's series are removed,
//! and so are those of an endpoint host once no watch calls it (hosts are written by tenants).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use super::status::{POOL_DETAILS_SYNCED, POOLS_HEALTHY, READY, RECONCILING, STALLED};
use super::users::Users;
use crate::api::{PoolCounts, PoolDetail, PoolFlavor};
use crate::lock::lock;
use crate::modelarts::RequestRecord;

/// The states of `poolwatch_pools`.
const POOL_STATES: [&str; 5] = ["creating", "created", "failed", "pending", "deleting"];
/// The condition types of `poolwatch_condition`.
const CONDITION_TYPES: [&str; 5] = [
    READY,
    STALLED,
    RECONCILING,
    POOLS_HEALTHY,
    POOL_DETAILS_SYNCED,
];
/// The states of `poolwatch_pool_nodes`: desired, then by state, summed over a pool's flavors.
const NODE_STATES: [&str; 5] = ["desired", "available", "abnormal", "creating", "deleting"];

/// Identifies one watch.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    /// Namespace of the watch.
    pub namespace: String,
    /// Name of the watch.
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    namespace: String,
    name: String,
    state: &'static str,
}

/// One pool of one watch, in a phase (`poolwatch_pool_phase`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolPhaseLabels {
    namespace: String,
    name: String,
    pool: String,
    phase: &'static str,
}

/// One pool of one watch, nodes in a state (`poolwatch_pool_nodes`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolNodeLabels {
    namespace: String,
    name: String,
    pool: String,
    state: &'static str,
}

/// The per-pool series one watch has, so that those of a pool that went (or changed phase)
/// are removed.
#[derive(Default)]
struct PoolSeries {
    phases: Vec<PoolPhaseLabels>,
    nodes: Vec<PoolNodeLabels>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    namespace: String,
    name: String,
    #[prometheus(flatten)]
    condition: ConditionType,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionType {
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    host: String,
    code: String,
}

/// The HTTP status codes that keep their own `code` label; any other is shown by its class
/// (`1xx` … `5xx`, or `other`), so that an endpoint answering every code from 100 to 999 makes
/// a handful of series, not nine hundred.
const NAMED_CODES: [u16; 13] = [
    200, 201, 204, 400, 401, 403, 404, 408, 429, 500, 502, 503, 504,
];

/// The `code` label of an HTTP status.
fn code_label(status: Option<u16>) -> String {
    match status {
        None => "none".to_owned(),
        Some(code) if NAMED_CODES.contains(&code) => code.to_string(),
        Some(code @ 100..=599) => format!("{}xx", code / 100),
        Some(_) => "other".to_owned(),
    }
}

/// Which endpoint hosts each watch calls, and the `code`s seen per host: a host's series are
/// removed when its last watch stops calling it (deleted, or its spec names another host).
#[derive(Default)]
struct HostUsers {
    users: Users<WatchLabels, String>,
    codes: HashMap<String, BTreeSet<String>>,
}

impl HostUsers {
    /// Sets the hosts of `watch`; returns the hosts (and their codes) that no watch calls now.
    fn set(&mut self, watch: &WatchLabels, hosts: Vec<String>) -> Vec<(String, BTreeSet<String>)> {
        self.users
            .set(watch, hosts)
            .into_iter()
            .map(|host| {
                let codes = self.codes.remove(&host).unwrap_or_default();
                (host, codes)
            })
            .collect()
    }

    /// Records that `host` answered with `code`, if a watch calls it.
    fn record(&mut self, host: &str, code: &str) -> bool {
        if !self.users.is_used(&host.to_owned()) {
            return false;
        }
        self.codes
            .entry(host.to_owned())
            .or_default()
            .insert(code.to_owned());
        true
    }
}

/// Every series the operator exports.
pub struct Metrics {
    hosts: Mutex<HostUsers>,
    pools: Family<PoolLabels, Gauge>,
    pool_phase: Family<PoolPhaseLabels, Gauge>,
    pool_nodes: Family<PoolNodeLabels, Gauge>,
    pool_series: Mutex<HashMap<WatchLabels, PoolSeries>>,
    last_success: Family<WatchLabels, Gauge<f64, AtomicU64>>,
    condition: Family<ConditionLabels, Gauge>,
    polls: Family<ResultLabels, Counter>,
    upstream_duration: Family<RequestLabels, Histogram>,
    status_writes: Family<ResultLabels, Counter>,
    reconcile_duration: Histogram,
    rate_limit_waits: Counter,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            hosts: Mutex::new(HostUsers::default()),
            pools: Family::default(),
            pool_phase: Family::default(),
            pool_nodes: Family::default(),
            pool_series: Mutex::new(HashMap::new()),
            last_success: Family::default(),
            condition: Family::default(),
            polls: Family::default(),
            upstream_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 14))
            }),
            status_writes: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            rate_limit_waits: Counter::default(),
            leader: Gauge::default(),
        }
    }
}

impl Metrics {
    /// Registers every series in `registry` under the `poolwatch_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("poolwatch");
        registry.register(
            "pools",
            "Resource pools by state, per watch",
            self.pools.clone(),
        );
        registry.register(
            "pool_phase",
            "1 for each pool's current phase, per watch with spec.poolDetails",
            self.pool_phase.clone(),
        );
        registry.register(
            "pool_nodes",
            "Nodes of each pool by state (desired, available, abnormal, creating, deleting), per watch with spec.poolDetails",
            self.pool_nodes.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the latest successful poll, per watch",
            self.last_success.clone(),
        );
        registry.register(
            "condition",
            "Status of each condition per watch: 1 True, 0 False, -1 Unknown",
            self.condition.clone(),
        );
        registry.register(
            "polls",
            "Polls by result: success, or the failure's reason",
            self.polls.clone(),
        );
        registry.register(
            "upstream_request_duration_seconds",
            "Duration of ModelArts and IAM requests by endpoint host and HTTP status code",
            self.upstream_duration.clone(),
        );
        registry.register(
            "status_writes",
            "Status writes to the Kubernetes API by result",
            self.status_writes.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            self.reconcile_duration.clone(),
        );
        registry.register(
            "rate_limit_waits",
            "Polls put off because the upstream budget (rate or concurrency) was spent",
            self.rate_limit_waits.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica leads (or runs without leader election), else 0",
            self.leader.clone(),
        );
    }

    /// Publishes a watch's counts; a count ModelArts did not send has no series.
    pub fn set_pools(&self, watch: &WatchLabels, pools: &PoolCounts) {
        let values = [
            pools.creating,
            pools.created,
            pools.failed,
            pools.pending,
            pools.deleting,
        ];
        for (state, value) in POOL_STATES.into_iter().zip(values) {
            let labels = PoolLabels {
                namespace: watch.namespace.clone(),
                name: watch.name.clone(),
                state,
            };
            match value {
                Some(value) => {
                    self.pools.get_or_create(&labels).set(value);
                }
                None => {
                    self.pools.remove(&labels);
                }
            }
        }
    }

    /// Publishes the pools a watch shows (none without `spec.poolDetails`): the series of a
    /// pool no longer shown, or of its previous phase, are removed.
    pub fn set_pool_details(&self, watch: &WatchLabels, pools: &[PoolDetail]) {
        let mut next = PoolSeries::default();
        for pool in pools {
            next.phases.push(PoolPhaseLabels {
                namespace: watch.namespace.clone(),
                name: watch.name.clone(),
                pool: pool.name.clone(),
                phase: pool.phase.as_str(),
            });
            for (state, nodes) in NODE_STATES.into_iter().zip(node_counts(&pool.flavors)) {
                let Some(nodes) = nodes else { continue };
                let labels = PoolNodeLabels {
                    namespace: watch.namespace.clone(),
                    name: watch.name.clone(),
                    pool: pool.name.clone(),
                    state,
                };
                self.pool_nodes.get_or_create(&labels).set(nodes);
                next.nodes.push(labels);
            }
        }
        for labels in &next.phases {
            self.pool_phase.get_or_create(labels).set(1);
        }
        // Under the lock, so that two reconciles of one watch cannot interleave removals.
        let mut all = lock(&self.pool_series);
        let previous = if next.phases.is_empty() {
            all.remove(watch)
        } else {
            all.insert(watch.clone(), next)
        };
        let Some(previous) = previous else { return };
        let current = all.get(watch);
        for labels in previous.phases {
            if current.is_none_or(|c| !c.phases.contains(&labels)) {
                self.pool_phase.remove(&labels);
            }
        }
        for labels in previous.nodes {
            if current.is_none_or(|c| !c.nodes.contains(&labels)) {
                self.pool_nodes.remove(&labels);
            }
        }
    }

    /// Records the time of a watch's latest success.
    pub fn set_last_success(&self, watch: &WatchLabels, unix_seconds: f64) {
        self.last_success.get_or_create(watch).set(unix_seconds);
    }

    /// Publishes the status of one condition (`True`, `False` or `Unknown`).
    pub fn set_condition(&self, watch: &WatchLabels, type_: &str, status: &str) {
        let Some(type_) = CONDITION_TYPES.into_iter().find(|t| *t == type_) else {
            return;
        };
        let value = match status {
            "True" => 1,
            "False" => 0,
            _ => -1,
        };
        let labels = ConditionLabels {
            namespace: watch.namespace.clone(),
            name: watch.name.clone(),
            condition: ConditionType { r#type: type_ },
        };
        self.condition.get_or_create(&labels).set(value);
    }

    /// Removes every series of a deleted watch.
    pub fn forget_watch(&self, watch: &WatchLabels) {
        for state in POOL_STATES {
            self.pools.remove(&PoolLabels {
                namespace: watch.namespace.clone(),
                name: watch.name.clone(),
                state,
            });
        }
        for r#type in CONDITION_TYPES {
            self.condition.remove(&ConditionLabels {
                namespace: watch.namespace.clone(),
                name: watch.name.clone(),
                condition: ConditionType { r#type },
            });
        }
        self.last_success.remove(watch);
        self.set_pool_details(watch, &[]);
        self.set_hosts(watch, Vec::new());
    }

    /// Sets the endpoint hosts (`host[:port]`) that `watch` calls; the request series of a host
    /// that no watch calls any more are removed.
    pub fn set_hosts(&self, watch: &WatchLabels, hosts: Vec<String>) {
        // Under the lock, so that a request observed meanwhile cannot re-create a removed series.
        let mut users = lock(&self.hosts);
        for (host, codes) in users.set(watch, hosts) {
            for code in codes {
                self.upstream_duration.remove(&RequestLabels {
                    host: host.clone(),
                    code,
                });
            }
        }
    }

    /// Counts one poll by its result: `success` or a failure reason.
    pub fn count_poll(&self, result: &'static str) {
        self.polls.get_or_create(&ResultLabels { result }).inc();
    }

    /// Observes one upstream HTTP request.
    pub fn observe_request(&self, record: &RequestRecord) {
        let code = code_label(record.status);
        // A host no watch calls (its watch was deleted while the call ran) gets no series that
        // nothing would remove.
        let mut users = lock(&self.hosts);
        if !users.record(&record.host, &code) {
            return;
        }
        self.upstream_duration
            .get_or_create(&RequestLabels {
                host: record.host.clone(),
                code,
            })
            .observe(record.duration.as_secs_f64());
    }

    /// Counts one status write: `success`, `conflict` or `error`.
    pub fn count_status_write(&self, result: &'static str) {
        self.status_writes
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Observes one reconcile's duration.
    pub fn observe_reconcile(&self, duration: Duration) {
        self.reconcile_duration.observe(duration.as_secs_f64());
    }

    /// Counts a poll put off by the upstream budget.
    pub fn count_rate_limit_wait(&self) {
        self.rate_limit_waits.inc();
    }

    /// Whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }
}

/// A pool's nodes per [`NODE_STATES`], summed over its flavors; `None` where no flavor says.
fn node_counts(flavors: &[PoolFlavor]) -> [Option<i64>; 5] {
    let mut sums = [None; 5];
    for flavor in flavors {
        let values = [
            flavor.count,
            flavor.available,
            flavor.abnormal,
            flavor.creating,
            flavor.deleting,
        ];
        for (sum, value) in sums.iter_mut().zip(values) {
            if let Some(value) = value {
                *sum = Some(sum.unwrap_or(0i64).saturating_add(value));
            }
        }
    }
    sums
}

/// The registry as Prometheus text.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> WatchLabels {
        WatchLabels {
            namespace: "ml".to_owned(),
            name: "pools".to_owned(),
        }
    }

    fn exported(metrics: &Metrics) -> String {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        render(&registry)
    }

    #[test]
    fn pools_are_exported_per_state_and_removed_with_the_watch() {
        let metrics = Metrics::default();
        let pools = PoolCounts {
            created: Some(9),
            failed: Some(1),
            deleting: None,
            ..Default::default()
        };
        metrics.set_pools(&watch(), &pools);
        metrics.set_condition(&watch(), READY, "True");
        metrics.set_last_success(&watch(), 1.0);
        let text = exported(&metrics);
        assert!(
            text.contains(r#"poolwatch_pools{namespace="ml",name="pools",state="created"} 9"#),
            "{text}"
        );
        assert!(
            !text.contains(r#"state="deleting""#),
            "absent counts have no series"
        );
        assert!(
            text.contains(r#"poolwatch_condition{namespace="ml",name="pools",type="Ready"} 1"#),
            "{text}"
        );

        metrics.forget_watch(&watch());
        let text = exported(&metrics);
        assert!(!text.contains(r#"name="pools""#), "{text}");
    }

    #[test]
    fn polls_are_counted_by_result() {
        let metrics = Metrics::default();
        metrics.count_poll("success");
        metrics.count_poll("Throttled");
        metrics.count_poll("Throttled");
        let text = exported(&metrics);
        assert!(
            text.contains(r#"poolwatch_polls_total{result="Throttled"} 2"#),
            "{text}"
        );
    }

    fn pool(name: &str, phase: crate::api::PoolPhase, available: Option<i64>) -> PoolDetail {
        PoolDetail {
            name: name.to_owned(),
            display_name: None,
            phase,
            message: None,
            pool_type: None,
            created: None,
            flavors: vec![
                PoolFlavor {
                    flavor: "a".to_owned(),
                    count: Some(2),
                    available,
                    ..PoolFlavor::default()
                },
                PoolFlavor {
                    flavor: "b".to_owned(),
                    count: Some(3),
                    available,
                    ..PoolFlavor::default()
                },
            ],
            drivers: None,
        }
    }

    #[test]
    fn pool_series_follow_the_pools_and_go_with_them() {
        use crate::api::PoolPhase::{Abnormal, Running};
        let metrics = Metrics::default();
        metrics.set_pool_details(
            &watch(),
            &[pool("p1", Abnormal, Some(1)), pool("p2", Running, None)],
        );
        let text = exported(&metrics);
        for line in [
            r#"poolwatch_pool_phase{namespace="ml",name="pools",pool="p1",phase="Abnormal"} 1"#,
            r#"poolwatch_pool_phase{namespace="ml",name="pools",pool="p2",phase="Running"} 1"#,
            r#"poolwatch_pool_nodes{namespace="ml",name="pools",pool="p1",state="desired"} 5"#,
            r#"poolwatch_pool_nodes{namespace="ml",name="pools",pool="p1",state="available"} 2"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(
            !text.contains(r#"pool="p2",state="available""#),
            "no number, no series: {text}"
        );

        // p1 recovers, p2 goes: the Abnormal series and p2's go with them.
        metrics.set_pool_details(&watch(), &[pool("p1", Running, Some(2))]);
        let text = exported(&metrics);
        assert!(text.contains(r#"pool="p1",phase="Running"} 1"#), "{text}");
        assert!(!text.contains("Abnormal"), "{text}");
        assert!(!text.contains(r#"pool="p2""#), "{text}");
        assert!(text.contains(r#"pool="p1",state="available"} 4"#), "{text}");

        metrics.forget_watch(&watch());
        let text = exported(&metrics);
        assert!(!text.contains(r#"pool=""#), "{text}");
    }
}
