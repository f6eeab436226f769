//! `status.poolDetails`: the pools of a watched workspace, one entry per pool, shown when
//! `spec.poolDetails` is set.
//!
//! The shape follows the Kubernetes API conventions: camelCase fields, lists of objects keyed
//! by a name (`x-kubernetes-list-type: map`, so that server-side apply merges them entry by
//! entry), a count of what was left out rather than a silent cut, and a bound on every list and
//! string, so that the whole status stays well under the API server's limits whatever the
//! upstream answer held.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// A pool's phase, as the client reads it from ModelArts and the status shows it.
pub use crate::modelarts::pools::PoolPhase;

/// The most pools `status.poolDetails` holds; the rest are counted in `poolDetailsOmitted`.
pub const MAX_POOL_DETAILS: usize = crate::modelarts::pools::MAX_POOLS;
/// The most flavors one pool entry holds.
pub const MAX_POOL_FLAVORS: usize = crate::modelarts::pools::MAX_FLAVORS;
/// The most bytes (as JSON) that `status.poolDetails` takes: pools beyond it, the least urgent
/// first, are counted in `poolDetailsOmitted`. With it, a status stays under 40 KiB whatever
/// the pools' strings hold (the API server's limit for an object is 1.5 MiB; 64 KiB keeps a
/// watch cheap to list and watch).
pub const MAX_POOL_DETAILS_BYTES: usize = 32 << 10;

/// Longest pool name (Huawei's pool id, `metadata.name`).
pub const MAX_POOL_NAME_LENGTH: usize = crate::modelarts::pools::NAME;
/// Longest display name.
pub const MAX_POOL_DISPLAY_NAME_LENGTH: usize = crate::modelarts::pools::DISPLAY_NAME;
/// Longest word: a pool type, a driver version or state.
pub const MAX_POOL_WORD_LENGTH: usize = crate::modelarts::pools::WORD;
/// Longest pool message.
pub const MAX_POOL_MESSAGE_LENGTH: usize = crate::modelarts::pools::MESSAGE;
/// Longest creation time.
pub const MAX_POOL_CREATED_LENGTH: usize = crate::modelarts::pools::CREATED;
/// Longest flavor name.
pub const MAX_POOL_FLAVOR_LENGTH: usize = crate::modelarts::pools::FLAVOR;

/// One pool of the watched workspace, as ModelArts last listed it. Strings longer than their
/// limit are cut and end in `…`.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PoolDetail {
    /// The pool's id (ModelArts' `metadata.name`), unique in the list.
    #[schemars(length(min = 1, max = MAX_POOL_NAME_LENGTH))]
    pub name: String,

    /// The name the ModelArts console shows (label `os.modelarts/name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_POOL_DISPLAY_NAME_LENGTH))]
    pub display_name: Option<String>,

    /// `Creating`, `Running`, `Abnormal`, `Deleting` or `Error` as ModelArts reports it;
    /// `Failed` for a pool that failed to be created in the last three days; `Other` for a
    /// phase this version of poolwatch does not know.
    pub phase: PoolPhase,

    /// ModelArts' words on the phase, e.g. why the pool is abnormal or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_POOL_MESSAGE_LENGTH))]
    pub message: Option<String>,

    /// `Dedicate` (a dedicated pool) or `Logical`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_POOL_WORD_LENGTH))]
    pub pool_type: Option<String>,

    /// When the pool was created, as ModelArts wrote it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_POOL_CREATED_LENGTH))]
    pub created: Option<String>,

    /// Nodes per flavor: desired and by state, sorted by flavor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_POOL_FLAVORS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["flavor".into()]))]
    pub flavors: Vec<PoolFlavor>,

    /// The GPU and NPU drivers' versions and states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drivers: Option<PoolDrivers>,
}

/// A pool's nodes of one flavor. A number ModelArts did not send stays absent.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PoolFlavor {
    /// The node flavor, e.g. `modelarts.vm.gpu.8ant8`.
    #[schemars(length(min = 1, max = MAX_POOL_FLAVOR_LENGTH))]
    pub flavor: String,
    /// Nodes asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub count: Option<i64>,
    /// The most nodes the pool may scale to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_count: Option<i64>,
    /// Nodes available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub available: Option<i64>,
    /// Nodes abnormal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub abnormal: Option<i64>,
    /// Nodes being created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub creating: Option<i64>,
    /// Nodes being deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub deleting: Option<i64>,
}

/// A pool's accelerator drivers.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolDrivers {
    /// The GPU driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<DriverStatus>,
    /// The NPU (Ascend) driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub npu: Option<DriverStatus>,
}

/// One driver's version and state.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct DriverStatus {
    /// The driver's version, e.g. `470.182.03`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_POOL_WORD_LENGTH))]
    pub version: Option<String>,
    /// The driver's state as ModelArts reports it, e.g. `Running` or `Upgrading`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_POOL_WORD_LENGTH))]
    pub state: Option<String>,
}
