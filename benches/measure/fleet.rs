//! The fleet both poolwatch benchmarks run: N watches of distinct workspaces, sharing one access
//! key and one interval, against the simulator; and the budget `make bench` gives them.

use futures::{StreamExt, TryStreamExt};
use kube::Api;
use kube::api::PostParams;
use poolwatch::api::PoolStatisticsWatch;
use poolwatch::simulator::{SimulatedCounts, SimulatedDriver, SimulatedPool, SimulatorHandle};
use serde_json::json;

use super::setting;
use crate::support::control_plane::TestNamespace;
use crate::support::simulator::{AK, PROJECT, SK};

/// The Secret every watch names.
const CREDENTIALS: &str = "creds";

/// ModelArts workspace of watch `index`: distinct per watch, so no poll is shared.
pub fn workspace(index: usize) -> String {
    format!("ws-{index:05}")
}

/// Gives the simulator counts for the workspace of each of `watches` watches.
pub fn seed_counts(simulator: &SimulatorHandle, watches: usize) {
    for index in 0..watches {
        simulator.set_counts(
            PROJECT,
            &workspace(index),
            SimulatedCounts::new(0, 9, 0, 0, 1),
        );
    }
}

/// Gives the workspace of each of `watches` watches `per_workspace` Running pools of one flavor
/// (names like Huawei's ids, display names, a GPU driver), as a realistic list to parse.
pub fn seed_pools(simulator: &SimulatorHandle, watches: usize, per_workspace: usize) {
    for index in 0..watches {
        let pools = (0..per_workspace)
            .map(|pool| SimulatedPool {
                display_name: Some(format!("training-{pool}")),
                gpu_driver: Some(SimulatedDriver {
                    version: "470.182.03".to_owned(),
                    state: "Running".to_owned(),
                }),
                ..SimulatedPool::running(
                    &format!("pool-{index:05}-{pool:02}-6d1b4a1c"),
                    "modelarts.vm.gpu.8ant8",
                    4,
                )
            })
            .collect();
        assert!(
            simulator.set_pools(PROJECT, &workspace(index), pools),
            "the workspace has counts"
        );
    }
}

/// The Secret with the simulator's access key that every watch names.
pub async fn put_credentials(namespace: &TestNamespace) {
    crate::support::world::put_secret(
        namespace,
        CREDENTIALS,
        &[("accessKeyId", AK), ("secretAccessKey", SK)],
    )
    .await;
}

/// Creates watches `watch-0` .. `watch-{count - 1}` polling `endpoint` every `interval_seconds`,
/// with `spec.poolDetails` set to `pool_details`.
pub async fn create_watches(
    api: &Api<PoolStatisticsWatch>,
    count: usize,
    endpoint: &str,
    interval_seconds: u64,
    pool_details: bool,
) {
    create_all(count, |index| {
        let api = api.clone();
        let watch: PoolStatisticsWatch = serde_json::from_value(json!({
            "apiVersion": "poolwatch.io/v1alpha1",
            "kind": "PoolStatisticsWatch",
            "metadata": {"name": format!("watch-{index}")},
            "spec": {
                "endpoint": endpoint,
                "projectId": PROJECT,
                "workspaceId": workspace(index),
                "credentialsSecretRef": {"name": CREDENTIALS},
                "interval": format!("{interval_seconds}s"),
                "poolDetails": pool_details,
            },
        }))
        .expect("a valid watch");
        async move { api.create(&PostParams::default(), &watch).await.map(|_| ()) }
    })
    .await;
}

/// Creates `count` objects, 32 at a time.
pub async fn create_all<F, Fut>(count: usize, create: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    eprintln!("    creating {count} objects");
    futures::stream::iter(0..count)
        .map(create)
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .expect("create the objects");
}

/// poolwatch's upstream budget in the benchmarks.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// `--upstream-rate`: its own default of 20 calls/s, raised to what the watches need every
    /// interval with 20 % headroom once that is more (past 500 watches at 30 s), since a budget
    /// below the demand stretches every interval by design. `RATE` overrides it.
    pub rate: u64,
    /// `--upstream-burst`: twice the rate; `BURST` overrides it.
    pub burst: u64,
    /// `--upstream-concurrency`: the calls in flight the rate needs at 100 ms a call (Little's
    /// law), a tenth of the rate, at least poolwatch's default of 8; `CONCURRENCY` overrides it.
    pub concurrency: u64,
}

impl Budget {
    /// The budget for `watches` polled every `interval_seconds`, each poll making
    /// `calls_per_poll` upstream calls (1, or 3 with pool details).
    pub fn for_watches(watches: usize, interval_seconds: u64, calls_per_poll: u64) -> Self {
        let needed = (watches as u64 * calls_per_poll * 6).div_ceil(interval_seconds * 5);
        let rate = setting("RATE", needed.max(20));
        Self {
            rate,
            burst: setting("BURST", 2 * rate),
            concurrency: setting("CONCURRENCY", (rate / 10).max(8)),
        }
    }
}
