use super::*;
use crate::api::MAX_POOL_DETAILS;
use crate::modelarts::pools::{self, MAX_FLAVORS, MAX_POOLS};

fn pool(name: &str, phase: PoolPhase) -> Pool {
    Pool {
        name: name.to_owned(),
        display_name: None,
        phase,
        message: None,
        pool_type: None,
        created: None,
        flavors: Vec::new(),
        gpu_driver: None,
        npu_driver: None,
    }
}

/// A pool whose every string and list is as long as the parser lets it be.
fn largest(index: usize, phase: PoolPhase) -> Pool {
    let text = |n: usize| "é".repeat(n / 2);
    let flavor = |f: usize| FlavorNodes {
        flavor: format!("{f}{}", text(pools::FLAVOR - 2)),
        count: Some(i64::MAX),
        max_count: Some(i64::MAX),
        available: Some(i64::MAX),
        abnormal: Some(i64::MAX),
        creating: Some(i64::MAX),
        deleting: Some(i64::MAX),
    };
    let driver = DriverState {
        version: Some(text(pools::WORD)),
        state: Some(text(pools::WORD)),
    };
    Pool {
        name: format!("{index:02}{}", text(pools::NAME - 2)),
        display_name: Some(text(pools::DISPLAY_NAME)),
        phase,
        message: Some(text(pools::MESSAGE)),
        pool_type: Some(text(pools::WORD)),
        created: Some(text(pools::CREATED)),
        flavors: (0..MAX_FLAVORS).map(flavor).collect(),
        gpu_driver: Some(driver.clone()),
        npu_driver: Some(driver),
    }
}

fn list(pools: Vec<Pool>) -> PoolList {
    PoolList {
        pools,
        omitted: 0,
        unusable: 0,
    }
}

fn detail(name: &str, phase: PoolPhase, message: &str) -> PoolDetail {
    PoolDetail {
        name: name.to_owned(),
        display_name: None,
        phase,
        message: Some(message.to_owned()),
        pool_type: None,
        created: None,
        flavors: Vec::new(),
        drivers: None,
    }
}

#[test]
fn the_largest_list_fits_the_byte_budget_and_counts_what_it_leaves_out() {
    let mut pools: Vec<Pool> = (0..MAX_POOLS)
        .map(|i| largest(i, PoolPhase::Running))
        .collect();
    pools[7].phase = PoolPhase::Abnormal;
    pools[31].phase = PoolPhase::Error;
    let shown = details_of(&PoolList {
        omitted: 3,
        ..list(pools)
    });
    let bytes = serde_json::to_vec(&shown.pools)
        .map(|j| j.len())
        .unwrap_or(0);
    assert!(bytes <= MAX_POOL_DETAILS_BYTES, "{bytes} bytes");
    assert!(shown.pools.len() <= MAX_POOL_DETAILS);
    assert!(shown.omitted > 3, "pools beyond the budget are counted");
    assert_eq!(shown.pools.len() + shown.omitted, MAX_POOLS + 3);
    // The unhealthy pools are the ones kept.
    let phases: Vec<PoolPhase> = shown.pools.iter().map(|p| p.phase).collect();
    assert!(phases.contains(&PoolPhase::Abnormal) && phases.contains(&PoolPhase::Error));
    let names: Vec<&String> = shown.pools.iter().map(|p| &p.name).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name");
}

#[test]
fn a_small_list_is_shown_whole_with_its_fields() {
    let mut a = pool("pool-a", PoolPhase::Running);
    a.display_name = Some("training".to_owned());
    a.flavors = vec![FlavorNodes {
        flavor: "modelarts.vm.gpu.8ant8".to_owned(),
        count: Some(4),
        available: Some(3),
        abnormal: Some(1),
        ..FlavorNodes::default()
    }];
    a.gpu_driver = Some(DriverState {
        version: Some("470.182.03".to_owned()),
        state: Some("Running".to_owned()),
    });
    let shown = details_of(&PoolList {
        unusable: 2,
        ..list(vec![pool("pool-b", PoolPhase::Other), a])
    });
    assert_eq!(shown.omitted, 0);
    assert_eq!(shown.unusable, 2);
    let json = serde_json::to_value(&shown.pools).unwrap_or_default();
    assert_eq!(
        json,
        serde_json::json!([
            {"name": "pool-a", "displayName": "training", "phase": "Running",
             "flavors": [{"flavor": "modelarts.vm.gpu.8ant8", "count": 4, "available": 3, "abnormal": 1}],
             "drivers": {"gpu": {"version": "470.182.03", "state": "Running"}}},
            {"name": "pool-b", "phase": "Other"}
        ])
    );
}

#[test]
fn the_status_writes_each_phase_by_its_name() {
    for phase in PoolPhase::ALL {
        let json = serde_json::to_value(phase).unwrap_or_default();
        assert_eq!(json, phase.as_str());
        let back: Option<PoolPhase> = serde_json::from_value(json).ok();
        assert_eq!(back, Some(phase));
    }
}

#[test]
fn healthy_pools_give_no_unhealthy_message() {
    let pools = [
        detail("a", PoolPhase::Running, "ok"),
        detail("b", PoolPhase::Creating, ""),
        detail("c", PoolPhase::Deleting, ""),
        detail("d", PoolPhase::Other, "new phase"),
    ];
    assert_eq!(unhealthy(&pools), None);
}

#[test]
fn the_unhealthy_message_is_bounded_and_counts_the_rest() {
    let long = "x".repeat(pools::MESSAGE);
    let pools: Vec<PoolDetail> = (0..MAX_POOLS)
        .map(|i| detail(&format!("pool-{i:02}"), PoolPhase::Abnormal, &long))
        .collect();
    let (reason, message) = unhealthy(&pools).unwrap_or_default();
    assert_eq!(reason, reasons::POOLS_ABNORMAL);
    assert!(
        message.len() <= MAX_UNHEALTHY_MESSAGE_BYTES,
        "{} bytes",
        message.len()
    );
    assert!(message.starts_with("pool-00 Abnormal: xxx"), "{message}");
    assert!(message.ends_with(" more"), "{message}");
    let named = message.matches("Abnormal").count();
    assert!(
        message.ends_with(&format!("; and {} more", MAX_POOLS - named)),
        "{message}"
    );
}

#[test]
fn a_single_huge_entry_is_cut_rather_than_dropped() {
    let name = "n".repeat(pools::NAME);
    let mut pool = detail(
        &name,
        PoolPhase::Error,
        &"m".repeat(4 * MAX_UNHEALTHY_MESSAGE_BYTES),
    );
    pool.display_name = Some("d".repeat(pools::DISPLAY_NAME));
    let two = [pool.clone(), detail("b", PoolPhase::Failed, "m")];
    let (_, message) = unhealthy(&two).unwrap_or_default();
    assert!(
        message.len() <= MAX_UNHEALTHY_MESSAGE_BYTES,
        "{}",
        message.len()
    );
    assert!(
        message.starts_with(&name) && message.ends_with("; and 1 more"),
        "{message}"
    );
}

#[test]
fn events_are_capped_and_the_worst_come_first() {
    let before: Vec<PoolDetail> = (0..20)
        .map(|i| detail(&format!("p{i:02}"), PoolPhase::Running, ""))
        .collect();
    let mut after = before.clone();
    for pool in &mut after {
        pool.phase = PoolPhase::Abnormal;
    }
    after[19].phase = PoolPhase::Error;
    let notices = pool_notices(&before, &after);
    assert_eq!(notices.len(), MAX_POOL_EVENTS);
    assert!(
        notices[0].note.starts_with("Pool p19 Error"),
        "{:?}",
        notices[0]
    );
    assert!(notices.iter().all(|n| n.reason == reasons::POOL_ABNORMAL));
}

#[test]
fn only_changes_of_phase_publish() {
    let abnormal = [detail("p", PoolPhase::Abnormal, "disk")];
    // First seen unhealthy: an event; seen again: none, even with a new message.
    assert_eq!(pool_notices(&[], &abnormal).len(), 1);
    let other_message = [detail("p", PoolPhase::Abnormal, "disk full")];
    assert!(pool_notices(&abnormal, &other_message).is_empty());
    // Running, Creating, a pool that went: nothing unless it was unhealthy.
    let running = [detail("p", PoolPhase::Running, "")];
    assert!(pool_notices(&[], &running).is_empty());
    assert!(pool_notices(&abnormal, &[]).is_empty());
    let recovered = pool_notices(&abnormal, &running);
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].note, "Pool p is Running again (was Abnormal)");
    let creating = [detail("p", PoolPhase::Creating, "")];
    assert!(pool_notices(&creating, &running).is_empty());
}
