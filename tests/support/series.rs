//! The metric series a running operator exposes, for the tests that check what reads them (the
//! README's table, the dashboard, the alerts) against the real thing rather than a list.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::OnceCell;

use super::operator::eventually;
use super::simulator::PROJECT;
use super::world::World;

/// The names of the samples (with Prometheus' `_total`, `_bucket`, `_count`, `_sum`) an
/// operator exposes once each of its metrics has one: three watches on a budget of one call
/// per second, so that some polls wait for it, one of them with pool details. Measured once per test binary.
pub async fn exposed_series() -> BTreeSet<String> {
    static EXPOSED: OnceCell<BTreeSet<String>> = OnceCell::const_new();
    EXPOSED.get_or_init(measure).await.clone()
}

async fn measure() -> BTreeSet<String> {
    let world = World::new("exposed-series").await.with_credentials().await;
    let operator = world.spawn_operator(&["--upstream-rate", "1", "--upstream-burst", "1"]);
    for (i, workspace) in ["0", "ws-partial", "third"].iter().enumerate() {
        world.set_created(workspace, i as i64);
    }
    // One watch with pool details, so that the per-pool series exist too.
    let pool = poolwatch::simulator::SimulatedPool::running("pool-a", "modelarts.vm.cpu.8u", 2);
    assert!(world.simulator.set_pools(PROJECT, "0", vec![pool]));
    for (i, workspace) in ["0", "ws-partial", "third"].iter().enumerate() {
        let details = serde_json::json!({"poolDetails": i == 0});
        world
            .create_watch_with(&format!("pools-{i}"), workspace, "creds", details)
            .await;
    }
    for i in 0..3 {
        world.ready(&format!("pools-{i}")).await;
    }
    let text = eventually(
        "a poll put off by the budget",
        Duration::from_secs(20),
        || async {
            let text = operator.metrics().await;
            let waited = text
                .lines()
                .any(|l| l.starts_with("poolwatch_rate_limit_waits_total ") && !l.ends_with(" 0"));
            let pools =
                text.contains("poolwatch_pool_phase{") && text.contains("poolwatch_pool_nodes{");
            (waited && pools).then_some(text)
        },
    )
    .await;
    sample_names(&text)
}

/// The names of the samples on a metrics page.
pub fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| line.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect()
}

/// A sample name without the suffix Prometheus gives a histogram's parts.
pub fn family(sample: &str) -> &str {
    ["_bucket", "_count", "_sum"]
        .iter()
        .find_map(|suffix| sample.strip_suffix(suffix))
        .unwrap_or(sample)
}
