//! The pools of a workspace (ModelArts' ListPools answer) and their tolerant, bounded parser.
//!
//! `GET /v2/{project_id}/pools?workspaceId=W` answers `{"apiVersion": "v2", "kind": "PoolList",
//! "items": [Pool]}`, not paged: without `status` it lists the creating and created pools, with
//! `status=failed` the pools that failed to be created in the last three days. The answer comes
//! from an endpoint a tenant names, so it is read as hostile: at most [`MAX_POOLS`] pools are
//! kept (the worst first, see [`PoolPhase::severity_rank`]), every string is cut to the limits
//! below, and an item that is not a usable pool is counted, not kept.
//!
//! The body (at most [`MAX_POOLS_BODY_BYTES`]) is read item by item by [`super::pool_reader`],
//! never as a whole tree, and the pools are kept in a bounded heap while the items are read, so
//! a list of 10,000 items never builds more than [`MAX_POOLS`] [`Pool`]s and the parse holds
//! about the body's size, whatever the body holds.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashSet};

use serde::Serialize;

use super::pool_reader::{self, Body, Event, RawItem, StateNodes};

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
        super::json::check_size(body, MAX_POOLS_BODY_BYTES).map_err(ParseError)?;
        let mut kept = WorstFirst::default();
        let mut seen: HashSet<String> = HashSet::new();
        let mut unusable = 0;
        let mut on = |event: Event| {
            let item = match event {
                Event::Items => {
                    (kept, unusable) = (WorstFirst::default(), 0);
                    seen.clear();
                    return;
                }
                Event::Item(item) => item,
            };
            let Some((name, item)) = item.and_then(|mut i| i.name.take().map(|n| (n, i))) else {
                unusable += 1;
                return;
            };
            // Unique after the cut, since the cut name is the list-map key downstream.
            if seen.contains(&name) {
                unusable += 1;
                return;
            }
            seen.insert(name.clone());
            let phase = match filter {
                PoolListFilter::Current => {
                    PoolPhase::from_word(item.phase.as_deref().unwrap_or_default())
                }
                PoolListFilter::Failed => PoolPhase::Failed,
            };
            // Decide on the key first: a pool that would not be kept is never built.
            if kept.would_keep(phase, &name) {
                kept.push(pool_of(*item, name, phase));
            } else {
                kept.omitted += 1;
            }
        };
        let body_kind = pool_reader::read(body, &mut on)
            .map_err(|e| ParseError(super::json::syntax_error(&e, body)))?;
        match body_kind {
            Body::Items => Ok(kept.into_list(unusable)),
            Body::NotAnObject => Err(ParseError(super::json::NOT_AN_OBJECT.to_owned())),
            Body::NoItems => Err(ParseError(
                "the body has no `items` list: is the endpoint a ModelArts endpoint?".to_owned(),
            )),
            Body::ItemsNot(kind) => Err(ParseError(format!("`items` is {kind}, not a list"))),
        }
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

/// The pool of a kept item: its strings are cut already; the flavors are joined here.
fn pool_of(item: RawItem, name: String, phase: PoolPhase) -> Pool {
    let driver = |driver: pool_reader::Driver| {
        let driver = DriverState {
            version: driver.version,
            state: driver.state,
        };
        (driver != DriverState::default()).then_some(driver)
    };
    let flavors = flavors_of(&item.spec, &item.states);
    Pool {
        name,
        display_name: item.display_name,
        phase,
        message: item.message,
        pool_type: item.pool_type,
        created: item.created,
        flavors,
        gpu_driver: driver(item.gpu_driver),
        npu_driver: driver(item.npu_driver),
    }
}

/// Which count of [`FlavorNodes`] each state of [`pool_reader::STATES`] fills.
fn slot(state: usize, nodes: &mut FlavorNodes) -> &mut Option<i64> {
    match state {
        0 => &mut nodes.creating,
        1 => &mut nodes.available,
        2 => &mut nodes.abnormal,
        _ => &mut nodes.deleting,
    }
}

/// The entry of `flavor`, added when missing, or `None` when [`MAX_FLAVORS`] flavors that sort
/// before it are there.
fn entry<'a>(
    flavors: &'a mut BTreeMap<String, FlavorNodes>,
    flavor: &str,
) -> Option<&'a mut FlavorNodes> {
    if !flavors.contains_key(flavor) {
        flavors.insert(
            flavor.to_owned(),
            FlavorNodes {
                flavor: flavor.to_owned(),
                ..FlavorNodes::default()
            },
        );
        if flavors.len() > MAX_FLAVORS {
            flavors.pop_last();
        }
    }
    flavors.get_mut(flavor)
}

/// `spec.resources` joined with `status.resources` per flavor: at most [`MAX_FLAVORS`], the
/// first by name, sorted; of a flavor's values the first sent wins. A bare count is the spec's
/// only flavor's.
fn flavors_of(spec: &pool_reader::Spec, states: &[StateNodes; 4]) -> Vec<FlavorNodes> {
    let mut flavors: BTreeMap<String, FlavorNodes> = BTreeMap::new();
    for (flavor, (count, max_count)) in &spec.flavors.0 {
        if let Some(nodes) = entry(&mut flavors, flavor) {
            nodes.count = *count;
            nodes.max_count = *max_count;
        }
    }
    for (state, nodes_in) in states.iter().enumerate() {
        let bare = match (nodes_in.bare, spec.only_flavor()) {
            (Some(n), Some(only)) => Some((bounded::cut(only, FLAVOR).into_owned(), n)),
            _ => None,
        };
        let listed = nodes_in.flavors.0.iter().map(|(f, n)| (f.clone(), *n));
        for (flavor, n) in listed.chain(bare) {
            if flavor.is_empty() {
                continue;
            }
            if let Some(nodes) = entry(&mut flavors, &flavor) {
                let slot = slot(state, nodes);
                if slot.is_none() {
                    *slot = n;
                }
            }
        }
    }
    flavors.into_values().collect()
}

#[cfg(test)]
#[path = "pools_tests.rs"]
mod tests;
