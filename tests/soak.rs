//! The soak: 200 watches on a control plane of their own, random upstream faults and changing
//! counts for `SOAK_MINUTES` (default 30), one API server restart halfway, then a report and a
//! final check: all 200 watches are there and show the simulator's current counts with Ready
//! True, the operator's memory did not creep by more than 32 MiB after every watch was Ready,
//! and its peak stayed under the chart's 256 MiB limit.
//!
//! `make soak` (or `SOAK_MINUTES=3 make soak`) runs it; `make test` does not.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ListParams, ObjectMeta, PostParams};
use poolwatch::api::PoolStatisticsWatch;
use poolwatch::simulator::{Fault, FaultKind, SimulatedCounts};
use serde_json::json;
use support::faults::{IsolatedControlPlane, peak_resident_kib, resident_kib};
use support::operator::{Operator, eventually, has_condition};
use support::simulator::{self, AK, PROJECT, SK};

const WATCHES: usize = 200;

fn workspace(i: usize) -> String {
    format!("soak-{i:03}")
}

fn counts(created: i64) -> SimulatedCounts {
    SimulatedCounts::new(created % 3, created, created % 2, 0, 1)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a long soak: run with `make soak`"]
async fn soak_many_watches_through_faults_and_an_api_server_restart() {
    let minutes: f64 = std::env::var("SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(30.0);
    let duration = Duration::from_secs_f64(minutes * 60.0);
    let isolated = IsolatedControlPlane::start("soak");
    let namespace = isolated.namespace("soak").await;
    let sim = simulator::start().await;
    let mut current: BTreeMap<String, i64> = BTreeMap::new();
    for i in 0..WATCHES {
        sim.set_counts(PROJECT, &workspace(i), counts(i as i64));
        current.insert(workspace(i), i as i64);
    }
    let secrets: Api<Secret> = Api::namespaced(namespace.client.clone(), &namespace.name);
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("creds".to_owned()),
                    ..ObjectMeta::default()
                },
                data: Some(
                    [("accessKeyId", AK), ("secretAccessKey", SK)]
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
                        .collect(),
                ),
                ..Secret::default()
            },
        )
        .await
        .expect("create the Secret");
    let watches: Api<PoolStatisticsWatch> =
        Api::namespaced(namespace.client.clone(), &namespace.name);
    for i in 0..WATCHES {
        let watch: PoolStatisticsWatch = serde_json::from_value(json!({
            "apiVersion": "poolwatch.io/v1alpha1",
            "kind": "PoolStatisticsWatch",
            "metadata": {"name": workspace(i)},
            "spec": {
                "endpoint": sim.base_url(),
                "projectId": PROJECT,
                "workspaceId": workspace(i),
                "credentialsSecretRef": {"name": "creds"},
                "interval": "30s",
            },
        }))
        .expect("a valid watch");
        watches
            .create(&PostParams::default(), &watch)
            .await
            .expect("create a watch");
    }
    let operator = Operator::start_on(
        &isolated.plane.kubeconfig,
        &namespace.name,
        "poolwatch=debug,info",
        &["--upstream-timeout", "3s"],
    );
    // Warm: every watch polled once. The memory from here on must not creep.
    eventually(
        "every watch Ready before the faults start",
        Duration::from_secs(180),
        || async {
            let list = watches.list(&ListParams::default()).await.ok()?;
            (list.items.len() == WATCHES
                && list
                    .items
                    .iter()
                    .all(|w| has_condition(w, "Ready", "True", "Synced")))
            .then_some(())
        },
    )
    .await;
    let memory_warm = resident_kib(operator.pid());

    let started = Instant::now();
    let mut restarted = false;
    let mut injected: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut count_changes = 0u64;
    let mut restart_took = Duration::ZERO;
    while started.elapsed() < duration {
        for _ in 0..3 {
            let ws = workspace(fastrand::usize(..WATCHES));
            let times = fastrand::u32(1..4);
            let (name, fault) = match fastrand::u8(..9) {
                0 => ("500", Fault::status(500)),
                1 => ("503", Fault::status(503)),
                2 => ("429", Fault::status(429)),
                3 => ("429+Retry-After", Fault::status(429).retry_after("5")),
                4 => ("latency", Fault::new(FaultKind::Latency { millis: 2500 })),
                5 => ("hang", Fault::new(FaultKind::Hang)),
                6 => ("truncated", Fault::new(FaultKind::Truncated)),
                7 => ("invalid JSON", Fault::new(FaultKind::InvalidJson)),
                _ => ("wrong shape", Fault::new(FaultKind::WrongShape)),
            };
            sim.inject(fault.times(times).for_project(PROJECT).for_workspace(ws));
            *injected.entry(name).or_default() += u64::from(times);
        }
        for _ in 0..2 {
            let i = fastrand::usize(..WATCHES);
            let created = fastrand::i64(0..500);
            sim.set_counts(PROJECT, &workspace(i), counts(created));
            current.insert(workspace(i), created);
            count_changes += 1;
        }
        if !restarted && started.elapsed() >= duration / 2 {
            let t = Instant::now();
            isolated.stop_api_server();
            tokio::time::sleep(Duration::from_secs(5)).await;
            isolated.start_api_server();
            restart_took = t.elapsed();
            restarted = true;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    assert!(restarted, "the API server was restarted");

    // Faults end; every watch must catch up with the simulator's counts within two intervals
    // (backoff is capped at the interval).
    sim.clear_faults();
    let settle = Instant::now();
    let mut behind: Vec<String> = Vec::new();
    let mut listed = 0;
    while settle.elapsed() < Duration::from_secs(150) {
        let list = watches
            .list(&ListParams::default())
            .await
            .expect("list the watches");
        listed = list.items.len();
        behind = list
            .items
            .iter()
            .filter(|w| {
                let name = w.metadata.name.clone().unwrap_or_default();
                let shown = w.status.as_ref().and_then(|s| s.pools);
                !(has_condition(w, "Ready", "True", "Synced")
                    && shown == Some(counts(current[&name]).into_resource()))
            })
            .filter_map(|w| w.metadata.name.clone())
            .collect();
        if behind.is_empty() && list.items.len() == WATCHES {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    let metrics = operator.metrics().await;
    let stats = sim.stats();
    let events = namespace
        .kubectl()
        .args(["get", "events", "-o", "json"])
        .output()
        .expect("kubectl get events");
    let events: serde_json::Value = serde_json::from_slice(&events.stdout).unwrap_or_default();
    let mut event_reasons: BTreeMap<String, u64> = BTreeMap::new();
    for event in events["items"].as_array().into_iter().flatten() {
        let reason = event["reason"].as_str().unwrap_or("?").to_owned();
        *event_reasons.entry(reason).or_default() += event["count"]
            .as_u64()
            .unwrap_or(1)
            .max(event["series"]["count"].as_u64().unwrap_or(1));
    }
    println!("\n==== poolwatch soak report ====");
    println!(
        "ran {:.1} min with {WATCHES} watches; API server restarted once (down {:.1} s)",
        started.elapsed().as_secs_f64() / 60.0,
        restart_took.as_secs_f64()
    );
    println!("faulty answers injected: {injected:?}");
    println!("count changes upstream: {count_changes}");
    println!(
        "upstream requests served: {} by status {:?}",
        stats.total, stats.by_status
    );
    println!("polls by result (operator metrics):");
    for line in metrics.lines().filter(|l| {
        l.starts_with("poolwatch_polls_total") || l.starts_with("poolwatch_status_writes_total")
    }) {
        println!("  {line}");
    }
    println!("events by reason (transitions; Recovered = recoveries): {event_reasons:?}");
    let memory_end = resident_kib(operator.pid());
    let memory_peak = peak_resident_kib(operator.pid());
    println!(
        "operator memory: {} MiB once all were Ready, {} MiB at the end, {} MiB at the peak",
        memory_warm / 1024,
        memory_end / 1024,
        memory_peak / 1024
    );
    println!(
        "settled in {:.1} s after the faults stopped; watches behind: {}",
        settle.elapsed().as_secs_f64(),
        behind.len()
    );
    println!("================================\n");
    assert_eq!(listed, WATCHES, "watches listed at the end");
    // What a watch left behind shows, what the simulator saw of it and what the operator said.
    let logs = operator.logs();
    let mut why = String::new();
    for name in &behind {
        let status = watches.get(name).await.ok().and_then(|w| w.status);
        let served = sim.requests_served(
            &poolwatch::simulator::RequestFilter::default().with_workspace(name.as_str()),
        );
        let said: Vec<&String> = logs.iter().filter(|l| l.contains(name.as_str())).collect();
        why.push_str(&format!(
            "\n{name}: expected created={}, {served} requests served, status {status:#?}\n\
             last log lines: {:#?}",
            current[name],
            &said[said.len().saturating_sub(15)..]
        ));
    }
    assert!(
        behind.is_empty(),
        "{} watches do not show the current counts with Ready True: {behind:?}{why}",
        behind.len()
    );
    // No creep through the faults and the restart, and always under the chart's 256 MiB limit.
    assert!(
        memory_end <= memory_warm + 32 * 1024,
        "memory crept from {memory_warm} KiB to {memory_end} KiB"
    );
    assert!(
        memory_peak < 256 * 1024,
        "memory peaked at {memory_peak} KiB, over the chart's 256 MiB limit"
    );
}

/// The simulator's counts as the status shows them.
trait IntoResource {
    fn into_resource(self) -> poolwatch::api::PoolCounts;
}

impl IntoResource for SimulatedCounts {
    fn into_resource(self) -> poolwatch::api::PoolCounts {
        poolwatch::api::PoolCounts {
            creating: self.creating,
            created: self.created,
            failed: self.failed,
            pending: self.pending,
            deleting: self.deleting,
        }
    }
}
