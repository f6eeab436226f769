//! The pools of a workspace (ModelArts' ListPools answer) and their tolerant, bounded parser.
//!
//! `GET /v2/{project_id}/pools?workspaceId=W` answers `{"apiVersion": "v2", "kind": "PoolList",
//! "items": [Pool]}`, not paged: without `status` it lists the creating and created pools, with
//! `status=failed` the pools that failed to be created in the last three days. The answer comes
//! from an endpoint a tenant names, so it is read as hostile: at most [`MAX_POOLS`] pools are
//! kept (the worst first, see [`PoolPhase::severity_rank`]), every string is cut to the limits
//! below, and an item that is not a usable pool is counted, not kept.
//!
//! The body is read whole into a [`serde_json::Value`] (it is at most [`MAX_POOLS_BODY_BYTES`]),
//! but the pools are kept in a bounded heap while the items are read, so a list of 10,000 items
//! never builds more than [`MAX_POOLS`] [`Pool`]s.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashSet};

use serde::Serialize;
use serde_json::{Map, Value};

use super::bounded;

/// The most pools kept from one list (and so shown on a watch, and given metric series).
pub const MAX_POOLS: usize = 50;
/// The most flavors kept per pool: a pool has one or a few node flavors.
pub const MAX_FLAVORS: usize = 8;
/// The largest ListPools answer the client reads (1 MiB): a pool's JSON is about 2 KiB, so
/// this is room for several hundred, far more than a workspace holds.
pub const MAX_POOLS_BODY_BYTES: usize = 1 << 20;

/// Longest pool name (`metadata.name`, the pool's id, e.g. `pool-6d1b4a1c-0fd9-4b2f-…`) kept.
pub const NAME: usize = 64;
/// Longest display name (`metadata.labels["os.modelarts/name"]`) kept.
pub const DISPLAY_NAME: usize = 64;
/// Longest word (a phase, a pool type, a driver state or version) kept.
pub const WORD: usize = 32;
/// Longest pool message (`status.message`) kept.
pub const MESSAGE: usize = 256;
/// Longest creation time (`metadata.creationTimestamp`) kept: RFC 3339 is about 25 bytes.
pub const CREATED: usize = 40;
/// Longest flavor name (e.g. `modelarts.vm.gpu.8ant8`) kept.
pub const FLAVOR: usize = 64;

/// Which pools a ListPools call asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PoolListFilter {
    /// No `status` parameter: the creating and created pools.
    Current,
    /// `status=failed`: the pools that failed to be created in the last three days.
    Failed,
}

impl PoolListFilter {
    /// The value of the `status` query parameter, if any.
    pub fn status_query(&self) -> Option<&'static str> {
        match self {
            PoolListFilter::Current => None,
            PoolListFilter::Failed => Some("failed"),
        }
    }
}

/// A pool's phase: Huawei's `status.phase`, plus `Failed` for the pools of a
/// [`PoolListFilter::Failed`] list and `Other` for a phase this version does not know. The
/// status shows it as is (`status.poolDetails[].phase`), so it is part of the CRD's schema.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
pub enum PoolPhase {
    /// Being created.
    Creating,
    /// Created and usable.
    Running,
    /// Created, but some of its nodes or drivers are unhealthy.
    Abnormal,
    /// Being deleted.
    Deleting,
    /// Broken.
    Error,
    /// Failed to be created (listed with `status=failed`).
    Failed,
    /// A phase Huawei may add; shown as `Other`, never refused.
    Other,
}

impl PoolPhase {
    /// Every phase, in the order of [`PoolPhase::as_str`]'s documentation.
    pub const ALL: [PoolPhase; 7] = [
        PoolPhase::Creating,
        PoolPhase::Running,
        PoolPhase::Abnormal,
        PoolPhase::Deleting,
        PoolPhase::Error,
        PoolPhase::Failed,
        PoolPhase::Other,
    ];

    /// The phase's name as shown in the status and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            PoolPhase::Creating => "Creating",
            PoolPhase::Running => "Running",
            PoolPhase::Abnormal => "Abnormal",
            PoolPhase::Deleting => "Deleting",
            PoolPhase::Error => "Error",
            PoolPhase::Failed => "Failed",
            PoolPhase::Other => "Other",
        }
    }

    /// The phase Huawei's word names (case-insensitively), `Other` for any other word.
    pub fn from_word(word: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|phase| phase.as_str().eq_ignore_ascii_case(word) && *phase != PoolPhase::Other)
            .unwrap_or(PoolPhase::Other)
    }

    /// Whether a pool in this phase makes `PoolsHealthy` False.
    pub fn is_unhealthy(&self) -> bool {
        matches!(
            self,
            PoolPhase::Abnormal | PoolPhase::Error | PoolPhase::Failed
        )
    }

    /// How urgent a pool in this phase is, the worst first (0): what the list keeps when it
    /// holds more than [`MAX_POOLS`] pools, and the order a condition message names them in.
    pub fn severity_rank(&self) -> u8 {
        match self {
            PoolPhase::Error => 0,
            PoolPhase::Abnormal => 1,
            PoolPhase::Failed => 2,
            PoolPhase::Other => 3,
            PoolPhase::Creating => 4,
            PoolPhase::Deleting => 5,
            PoolPhase::Running => 6,
        }
    }
}

/// One pool, as much of it as the operator shows, every string cut to this module's limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pool {
    /// `metadata.name`: the pool's id, unique in a list (duplicates are dropped).
    pub name: String,
    /// `metadata.labels["os.modelarts/name"]`: the name the console shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `status.phase`, or [`PoolPhase::Failed`] for a pool of the failed list.
    pub phase: PoolPhase,
    /// `status.message`: Huawei's words on the phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `spec.type`: `Dedicate` or `Logical`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_type: Option<String>,
    /// `metadata.creationTimestamp`, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Per flavor, sorted by flavor: `spec.resources` joined with `status.resources`; at most
    /// [`MAX_FLAVORS`].
    pub flavors: Vec<FlavorNodes>,
    /// `status.driver.gpu`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_driver: Option<DriverState>,
    /// `status.driver.npu`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub npu_driver: Option<DriverState>,
}

/// A pool's nodes of one flavor: what was asked for (`spec.resources`) and what there is
/// (`status.resources`, by state). Counts Huawei did not send are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlavorNodes {
    /// The node flavor, e.g. `modelarts.vm.gpu.8ant8`.
    pub flavor: String,
    /// Desired nodes (`spec.resources[].count`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// The most nodes the pool may scale to (`spec.resources[].maxCount`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_count: Option<i64>,
    /// Nodes available (`status.resources.available`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available: Option<i64>,
    /// Nodes abnormal (`status.resources.abnormal`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abnormal: Option<i64>,
    /// Nodes being created (`status.resources.creating`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creating: Option<i64>,
    /// Nodes being deleted (`status.resources.deleting`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleting: Option<i64>,
}

/// A driver's version and state (`status.driver.gpu|npu`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriverState {
    /// The driver's version, e.g. `470.182.03`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The driver's state, e.g. `Running`, `Upgrading`, `Abnormal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// The pools of one or more lists, bounded: at most [`MAX_POOLS`], sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolList {
    /// The pools kept, sorted by name.
    pub pools: Vec<Pool>,
    /// Usable pools not kept because the list held more than [`MAX_POOLS`] (the least urgent
    /// are the ones left out).
    pub omitted: usize,
    /// Items that were not usable pools (not an object, no name, a duplicate name).
    pub unusable: usize,
}

/// Why a ListPools body could not be used. The message says what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl PoolList {
    /// Parses a ListPools 200 body: `{"apiVersion": "v2", "kind": "PoolList", "items": [...]}`.
    ///
    /// A body over [`MAX_POOLS_BODY_BYTES`], not JSON, not an object, or whose `items` is
    /// missing or not a list is an error that quotes at most [`bounded::QUOTE`] bytes of it
    /// (`"items": null`, which a Go server sends for an empty list, is an empty list). Each item
    /// is read tolerantly: an unknown phase is [`PoolPhase::Other`], a missing or mistyped field
    /// is `None`, a negative or non-integer count is `None`, strings are cut to this module's
    /// limits. An item that is not an object, has no string `metadata.name`, or repeats a name
    /// (after the cut) is counted in [`PoolList::unusable`]; the first of a name is kept. Of
    /// more than [`MAX_POOLS`] usable pools the most urgent are kept
    /// ([`PoolPhase::severity_rank`], then name) and the rest counted in
    /// [`PoolList::omitted`]. With [`PoolListFilter::Failed`] every pool is
    /// [`PoolPhase::Failed`], with Huawei's message.
    ///
    /// Per state, `status.resources` is read in each form Huawei's documents and SDK give it:
    /// a list of `{flavor, count}` (the API reference), one `{flavor, count}` object (the
    /// official SDK's `PoolResourceFlavorCount` model), an object keyed by flavor whose values
    /// are counts, or a bare count, which is the pool's only flavor's when `spec.resources`
    /// names exactly one (and is dropped otherwise).
    pub fn parse(body: &[u8], filter: PoolListFilter) -> Result<PoolList, ParseError> {
        let object = super::json::object_of(body, MAX_POOLS_BODY_BYTES).map_err(ParseError)?;
        let items: &[Value] = match object.get("items") {
            Some(Value::Array(items)) => items,
            Some(Value::Null) => &[],
            None => {
                return Err(ParseError(
                    "the body has no `items` list: is the endpoint a ModelArts endpoint?"
                        .to_owned(),
                ));
            }
            Some(other) => {
                return Err(ParseError(format!(
                    "`items` is {}, not a list",
                    bounded::cut_owned(other.to_string(), bounded::QUOTE)
                )));
            }
        };
        let mut kept = WorstFirst::default();
        let mut seen: HashSet<Cow<'_, str>> = HashSet::new();
        let mut unusable = 0;
        for item in items {
            let Some(name) = item_name(item) else {
                unusable += 1;
                continue;
            };
            // Unique after the cut, since the cut name is the list-map key downstream.
            if !seen.insert(name.clone()) {
                unusable += 1;
                continue;
            }
            let phase = match filter {
                PoolListFilter::Current => {
                    PoolPhase::from_word(text_at(item, &["status", "phase"]).unwrap_or_default())
                }
                PoolListFilter::Failed => PoolPhase::Failed,
            };
            // Decide on the key first: a pool that would not be kept is never built.
            if kept.would_keep(phase, &name) {
                kept.push(pool_of(item, name.into_owned(), phase));
            } else {
                kept.omitted += 1;
            }
        }
        Ok(kept.into_list(unusable))
    }

    /// One list of the current and the failed pools: a name in both is kept once (the current
    /// one, which is newer: the pool was created again), the [`MAX_POOLS`] most urgent are
    /// kept, `omitted` and `unusable` are summed, and the result is sorted by name.
    pub fn merge(current: PoolList, failed: PoolList) -> PoolList {
        let names: HashSet<&str> = current.pools.iter().map(|p| p.name.as_str()).collect();
        let failed_pools: Vec<Pool> = failed
            .pools
            .into_iter()
            .filter(|p| !names.contains(p.name.as_str()))
            .collect();
        let mut kept = WorstFirst {
            omitted: current.omitted + failed.omitted,
            ..WorstFirst::default()
        };
        for pool in current.pools.into_iter().chain(failed_pools) {
            if kept.would_keep(pool.phase, &pool.name) {
                kept.push(pool);
            } else {
                kept.omitted += 1;
            }
        }
        kept.into_list(current.unusable + failed.unusable)
    }
}

/// A pool ordered by urgency: the worst (lowest [`PoolPhase::severity_rank`], then name) is
/// the least, so a max-heap of them has the one to drop first on top.
struct ByUrgency(Pool);

fn urgency(phase: PoolPhase, name: &str) -> (u8, &str) {
    (phase.severity_rank(), name)
}

impl PartialEq for ByUrgency {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for ByUrgency {}
impl PartialOrd for ByUrgency {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ByUrgency {
    fn cmp(&self, other: &Self) -> Ordering {
        urgency(self.0.phase, &self.0.name).cmp(&urgency(other.0.phase, &other.0.name))
    }
}

/// The [`MAX_POOLS`] most urgent pools seen so far, and how many were left out.
#[derive(Default)]
struct WorstFirst {
    heap: BinaryHeap<ByUrgency>,
    omitted: usize,
}

impl WorstFirst {
    /// Whether a pool of this phase and name would be kept now (names are unique by now).
    fn would_keep(&self, phase: PoolPhase, name: &str) -> bool {
        self.heap.len() < MAX_POOLS
            || self
                .heap
                .peek()
                .is_some_and(|top| urgency(phase, name) < urgency(top.0.phase, &top.0.name))
    }

    /// Keeps `pool`, dropping (and counting) the least urgent when full. Call after
    /// [`WorstFirst::would_keep`] said yes.
    fn push(&mut self, pool: Pool) {
        if self.heap.len() >= MAX_POOLS {
            self.heap.pop();
            self.omitted += 1;
        }
        self.heap.push(ByUrgency(pool));
    }

    fn into_list(self, unusable: usize) -> PoolList {
        let mut pools: Vec<Pool> = self.heap.into_iter().map(|p| p.0).collect();
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        PoolList {
            pools,
            omitted: self.omitted,
            unusable,
        }
    }
}

/// An item's `metadata.name`, cut to [`NAME`]; `None` when the item is not an object or the
/// name is missing, empty or not a string.
fn item_name(item: &Value) -> Option<Cow<'_, str>> {
    let name = text_at(item, &["metadata", "name"])?;
    (!name.is_empty()).then(|| bounded::cut(name, NAME))
}

/// The value at `path` of nested objects, if every step is an object holding the next.
fn value_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |v, key| v.as_object()?.get(*key))
}

/// The string at `path`, if it is one.
fn text_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    value_at(value, path)?.as_str()
}

/// The string at `path`, cut to `max` bytes.
fn cut_text_at(value: &Value, path: &[&str], max: usize) -> Option<String> {
    text_at(value, path).map(|s| bounded::cut(s, max).into_owned())
}

/// A count: an integer of 0 or more, else `None`.
fn count(value: Option<&Value>) -> Option<i64> {
    value?.as_i64().filter(|c| *c >= 0)
}

fn pool_of(item: &Value, name: String, phase: PoolPhase) -> Pool {
    let driver = |which: &str| {
        let driver = DriverState {
            version: cut_text_at(item, &["status", "driver", which, "version"], WORD),
            state: cut_text_at(item, &["status", "driver", which, "state"], WORD),
        };
        (driver != DriverState::default()).then_some(driver)
    };
    Pool {
        name,
        display_name: cut_text_at(
            item,
            &["metadata", "labels", "os.modelarts/name"],
            DISPLAY_NAME,
        ),
        phase,
        message: cut_text_at(item, &["status", "message"], MESSAGE),
        pool_type: cut_text_at(item, &["spec", "type"], WORD),
        created: cut_text_at(item, &["metadata", "creationTimestamp"], CREATED),
        flavors: flavors_of(item),
        gpu_driver: driver("gpu"),
        npu_driver: driver("npu"),
    }
}

/// Which count of [`FlavorNodes`] a `status.resources` state fills.
#[derive(Clone, Copy)]
enum NodeState {
    Creating,
    Available,
    Abnormal,
    Deleting,
}

impl NodeState {
    const ALL: [(NodeState, &'static str); 4] = [
        (NodeState::Creating, "creating"),
        (NodeState::Available, "available"),
        (NodeState::Abnormal, "abnormal"),
        (NodeState::Deleting, "deleting"),
    ];

    fn slot(self, nodes: &mut FlavorNodes) -> &mut Option<i64> {
        match self {
            NodeState::Creating => &mut nodes.creating,
            NodeState::Available => &mut nodes.available,
            NodeState::Abnormal => &mut nodes.abnormal,
            NodeState::Deleting => &mut nodes.deleting,
        }
    }
}

/// The flavors of a pool, at most [`MAX_FLAVORS`] (the first by name), each with what
/// `spec.resources` asks and `status.resources` reports; the first entry of a flavor wins.
struct Flavors(BTreeMap<String, FlavorNodes>);

impl Flavors {
    /// The entry of `flavor` (cut to [`FLAVOR`]), or `None` when the map is full of flavors
    /// that sort before it.
    fn entry(&mut self, flavor: &str) -> Option<&mut FlavorNodes> {
        if flavor.is_empty() {
            return None;
        }
        let flavor = bounded::cut(flavor, FLAVOR);
        if !self.0.contains_key(flavor.as_ref()) {
            self.0.insert(
                flavor.to_string(),
                FlavorNodes {
                    flavor: flavor.to_string(),
                    ..FlavorNodes::default()
                },
            );
            if self.0.len() > MAX_FLAVORS {
                self.0.pop_last();
            }
        }
        self.0.get_mut(flavor.as_ref())
    }

    fn set(&mut self, flavor: &str, state: NodeState, nodes: Option<i64>) {
        if let Some(entry) = self.entry(flavor) {
            let slot = state.slot(entry);
            if slot.is_none() {
                *slot = nodes;
            }
        }
    }
}

fn flavors_of(item: &Value) -> Vec<FlavorNodes> {
    let mut flavors = Flavors(BTreeMap::new());
    // The flavor a bare count belongs to: the spec's only one, if it names exactly one.
    let mut only_flavor: Option<Option<&str>> = None;
    if let Some(Value::Array(resources)) = value_at(item, &["spec", "resources"]) {
        for resource in resources {
            let Some(flavor) = resource.get("flavor").and_then(Value::as_str) else {
                continue;
            };
            only_flavor = match only_flavor {
                None => Some(Some(flavor)),
                Some(Some(only)) if only == flavor => Some(Some(only)),
                Some(_) => Some(None),
            };
            if let Some(entry) = flavors.entry(flavor) {
                if entry.count.is_none() {
                    entry.count = count(resource.get("count"));
                }
                if entry.max_count.is_none() {
                    entry.max_count = count(resource.get("maxCount"));
                }
            }
        }
    }
    let only_flavor = only_flavor.flatten();
    let Some(Value::Object(states)) = value_at(item, &["status", "resources"]) else {
        return flavors.0.into_values().collect();
    };
    for (state, key) in NodeState::ALL {
        match states.get(key) {
            Some(Value::Array(entries)) => {
                for entry in entries {
                    if let Some(flavor) = entry.get("flavor").and_then(Value::as_str) {
                        flavors.set(flavor, state, count(entry.get("count")));
                    }
                }
            }
            Some(Value::Object(entry)) => read_state_object(&mut flavors, state, entry),
            Some(number @ Value::Number(_)) => {
                if let Some(flavor) = only_flavor {
                    flavors.set(flavor, state, count(Some(number)));
                }
            }
            _ => {}
        }
    }
    flavors.0.into_values().collect()
}

/// One state of `status.resources` given as an object: the SDK's single `{flavor, count}`,
/// or counts keyed by flavor.
fn read_state_object(flavors: &mut Flavors, state: NodeState, entry: &Map<String, Value>) {
    match entry.get("flavor") {
        Some(Value::String(flavor)) => flavors.set(flavor, state, count(entry.get("count"))),
        Some(_) => {}
        None => {
            for (flavor, nodes) in entry {
                if nodes.is_number() {
                    flavors.set(flavor, state, count(Some(nodes)));
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "pools_tests.rs"]
mod tests;
