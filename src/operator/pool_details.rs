//! Per-pool details (`spec.poolDetails`): what a pool list becomes in the status, which pools
//! make `PoolsHealthy` False and how its message names them, and the events a pool's change of
//! phase deserves. Pure functions, like [`super::status`], which calls them.

use std::collections::HashMap;

use crate::api::{DriverStatus, MAX_POOL_DETAILS_BYTES, PoolDetail, PoolDrivers, PoolFlavor};
use crate::modelarts::bounded;
use crate::modelarts::pools::{DriverState, FlavorNodes, Pool, PoolList, PoolPhase};

use super::reasons;
use super::status::{Notice, Severity};

/// Longest `PoolsHealthy` message that names pools, in bytes: the worst pools fit, the rest are
/// counted ("and 3 more").
pub const MAX_UNHEALTHY_MESSAGE_BYTES: usize = 1024;
/// The most per-pool events one poll publishes: a workspace whose 50 pools all turn Abnormal
/// at once gets ten events (the worst first) and a `PoolsHealthy` message that names them all
/// or counts them, not fifty events.
pub const MAX_POOL_EVENTS: usize = 10;

/// What `status.poolDetails` and `status.poolDetailsOmitted` become for `list`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShownDetails {
    /// The pools shown, sorted by name.
    pub pools: Vec<PoolDetail>,
    /// Pools listed but not shown: beyond the list's bounds, or beyond
    /// [`MAX_POOL_DETAILS_BYTES`].
    pub omitted: usize,
    /// Items of the answer that were not usable pools.
    pub unusable: usize,
}

/// The status entries for `list`: every pool the list kept, as long as their JSON fits
/// [`MAX_POOL_DETAILS_BYTES`] (the worst pools are kept first, so a cut drops Running ones).
pub fn details_of(list: &PoolList) -> ShownDetails {
    let mut by_urgency: Vec<&Pool> = list.pools.iter().collect();
    by_urgency.sort_by(|a, b| {
        (a.phase.severity_rank(), &a.name).cmp(&(b.phase.severity_rank(), &b.name))
    });
    let mut pools = Vec::with_capacity(by_urgency.len());
    let mut bytes = 0;
    let mut omitted = list.omitted;
    for pool in by_urgency {
        let detail = detail_of(pool);
        // Serialising a struct of strings and numbers cannot fail; an entry that somehow did
        // would count as too large rather than be shown unmeasured.
        let size = serde_json::to_vec(&detail).map_or(usize::MAX, |json| json.len() + 1);
        if bytes + size > MAX_POOL_DETAILS_BYTES {
            omitted += 1;
            continue;
        }
        bytes += size;
        pools.push(detail);
    }
    pools.sort_by(|a, b| a.name.cmp(&b.name));
    ShownDetails {
        pools,
        omitted,
        unusable: list.unusable,
    }
}

/// One pool as the status shows it.
fn detail_of(pool: &Pool) -> PoolDetail {
    let driver = |state: &Option<DriverState>| {
        state.as_ref().map(|d| DriverStatus {
            version: d.version.clone(),
            state: d.state.clone(),
        })
    };
    let (gpu, npu) = (driver(&pool.gpu_driver), driver(&pool.npu_driver));
    PoolDetail {
        name: pool.name.clone(),
        display_name: pool.display_name.clone(),
        phase: pool.phase,
        message: pool.message.clone(),
        pool_type: pool.pool_type.clone(),
        created: pool.created.clone(),
        flavors: pool.flavors.iter().map(flavor_of).collect(),
        drivers: (gpu.is_some() || npu.is_some()).then_some(PoolDrivers { gpu, npu }),
    }
}

fn flavor_of(nodes: &FlavorNodes) -> PoolFlavor {
    PoolFlavor {
        flavor: nodes.flavor.clone(),
        count: nodes.count,
        max_count: nodes.max_count,
        available: nodes.available,
        abnormal: nodes.abnormal,
        creating: nodes.creating,
        deleting: nodes.deleting,
    }
}

/// Why `PoolsHealthy` is False, if any pool shown is unhealthy: the reason (`PoolsAbnormal`
/// when any is Abnormal or Error, else `PoolsFailed`) and a message that names them, the worst
/// first, with ModelArts' message, within [`MAX_UNHEALTHY_MESSAGE_BYTES`].
pub fn unhealthy(pools: &[PoolDetail]) -> Option<(&'static str, String)> {
    let mut bad: Vec<&PoolDetail> = pools.iter().filter(|p| p.phase.is_unhealthy()).collect();
    if bad.is_empty() {
        return None;
    }
    bad.sort_by(|a, b| {
        let rank = |p: &PoolDetail| p.phase.severity_rank();
        (rank(a), &a.name).cmp(&(rank(b), &b.name))
    });
    let reason = if bad.iter().any(|p| p.phase != PoolPhase::Failed) {
        reasons::POOLS_ABNORMAL
    } else {
        reasons::POOLS_FAILED
    };
    let mut message = String::new();
    for (shown, pool) in bad.iter().enumerate() {
        let part = describe_pool(pool);
        let rest = bad.len() - shown - 1;
        // Room for this part and, if others follow, the "; and N more" that would count them.
        let tail = if rest > 0 {
            format!("; and {rest} more")
        } else {
            String::new()
        };
        let separator = if message.is_empty() { "" } else { "; " };
        if message.len() + separator.len() + part.len() + tail.len() > MAX_UNHEALTHY_MESSAGE_BYTES {
            let more = bad.len() - shown;
            if message.is_empty() {
                // Not even the worst pool fits with its message: name it with a cut message.
                let counted = format!("; and {} more", more - 1);
                let room = MAX_UNHEALTHY_MESSAGE_BYTES - if more > 1 { counted.len() } else { 0 };
                message.push_str(&bounded::cut(&part, room));
                if more > 1 {
                    message.push_str(&counted);
                }
            } else {
                message.push_str(&format!("; and {more} more"));
            }
            return Some((reason, message));
        }
        message.push_str(separator);
        message.push_str(&part);
    }
    Some((reason, message))
}

/// `name (display name) Phase: message`, as conditions and events name a pool.
fn describe_pool(pool: &PoolDetail) -> String {
    let mut text = pool.name.clone();
    if let Some(display) = pool.display_name.as_deref().filter(|d| *d != pool.name) {
        text.push_str(&format!(" ({display})"));
    }
    text.push(' ');
    text.push_str(pool.phase.as_str());
    if let Some(message) = pool.message.as_deref().filter(|m| !m.is_empty()) {
        text.push_str(": ");
        text.push_str(message);
    }
    text
}

/// The events that the pools' change from `previous` to `next` deserves: `PoolAbnormal` when a
/// pool turns Abnormal or Error (or is first listed so), `PoolFailed` when a pool is first
/// listed as failed, `PoolRecovered` when an Abnormal or Error pool is Running again. Nothing
/// for a pool whose phase did not change: a poll that changes nothing publishes nothing. At
/// most [`MAX_POOL_EVENTS`], the worst first.
pub fn pool_notices(previous: &[PoolDetail], next: &[PoolDetail]) -> Vec<Notice> {
    let before: HashMap<&str, PoolPhase> = previous
        .iter()
        .map(|p| (p.name.as_str(), p.phase))
        .collect();
    let mut changed: Vec<(&PoolDetail, Option<PoolPhase>)> = next
        .iter()
        .filter_map(|pool| {
            let was = before.get(pool.name.as_str()).copied();
            (was != Some(pool.phase)).then_some((pool, was))
        })
        .collect();
    changed.sort_by(|(a, _), (b, _)| {
        let rank = |p: &PoolDetail| p.phase.severity_rank();
        (rank(a), &a.name).cmp(&(rank(b), &b.name))
    });
    changed
        .into_iter()
        .filter_map(|(pool, was)| notice_for(pool, was))
        .take(MAX_POOL_EVENTS)
        .collect()
}

/// The event for `pool`, which was in phase `was` (or not listed), if its new phase deserves one.
fn notice_for(pool: &PoolDetail, was: Option<PoolPhase>) -> Option<Notice> {
    let (severity, reason, note) = match pool.phase {
        PoolPhase::Abnormal | PoolPhase::Error => (
            Severity::Warning,
            reasons::POOL_ABNORMAL,
            format!("Pool {}", describe_pool(pool)),
        ),
        PoolPhase::Failed => (
            Severity::Warning,
            reasons::POOL_FAILED,
            format!("Pool {}", describe_pool(pool)),
        ),
        PoolPhase::Running if matches!(was, Some(PoolPhase::Abnormal | PoolPhase::Error)) => {
            let was = was.map_or("", |phase| phase.as_str());
            let name = match pool.display_name.as_deref().filter(|d| *d != pool.name) {
                Some(display) => format!("{} ({display})", pool.name),
                None => pool.name.clone(),
            };
            (
                Severity::Normal,
                reasons::POOL_RECOVERED,
                format!("Pool {name} is Running again (was {was})"),
            )
        }
        _ => return None,
    };
    Some(Notice {
        severity,
        reason: reason.to_owned(),
        note,
    })
}

#[cfg(test)]
#[path = "pool_details_tests.rs"]
mod tests;
