//! Bounded upstream data, end to end: an endpoint is named by whoever writes the watch, so a
//! tenant's endpoint may answer with megabyte strings. The real `poolwatch run` must keep every
//! status string, log line and its own memory bounded whatever it is sent.

use std::time::Duration;

use crate::support::control_plane::run;
use crate::support::faults::{peak_resident_kib, reset_peak_resident};
use crate::support::operator::{has_condition, request_refresh};
use crate::support::simulator::OPERATION_TIME;
use crate::support::world::{World, created};
use poolwatch::api::PoolStatisticsWatch;
use poolwatch::simulator::{Api as SimulatorApi, Fault, FaultKind};
use serde_json::Value;

/// Watches under attack, each of a workspace of its own: each has its own answer, its own
/// shared-call entry and its own status, so that nothing the attack sends is shared (the worst
/// case for memory); all on one endpoint and one key, as a single tenant would do it.
const WATCHES: usize = 20;
/// The strings one watch is sent, in bytes.
struct Strings {
    operation_time: u64,
    error_code: u64,
    error_msg: u64,
}

/// The figure: strings of 1 MB, in answers far longer than the client reads (16 KiB of
/// a statistics answer or an error body).
const HUGE: Strings = Strings {
    operation_time: 1_000_000,
    error_code: 1_000_000,
    error_msg: 1_000_000,
};
/// Strings in answers longer than the 16 KiB the client reads but short enough to pass a
/// 64 KiB limit whole: each would make a log line of 56 KB.
const PAST_THE_LIMIT: Strings = Strings {
    operation_time: 56_000,
    error_code: 56_000,
    error_msg: 2_000,
};
/// Strings in answers just short of the 16 KiB the client reads (an error body holds the 4 KiB
/// request id too): the longest it must cut rather than refuse.
const WITHIN_THE_LIMIT: Strings = Strings {
    operation_time: 15_000,
    error_code: 9_000,
    error_msg: 2_000,
};
/// The longest string a status may hold here.
const MAX_STATUS_STRING: usize = 1024;
/// The longest log line.
const MAX_LOG_LINE: usize = 16 * 1024;
/// The memory the attack may cost per watch, from `bench/results/scaling.md`: the largest "RSS
/// per added watch" measured (23.3 KiB, at 1,000 watches), rounded up. The operator's peak
/// (`VmHWM`, as `make bench` reads it) during the attack may pass its peak during the same
/// polls with ordinary answers by at most this much per watch: the attack costs no more than
/// as many more watches would.
const RSS_PER_WATCH_KIB: u64 = 24;
/// How long a round of refreshes of every watch may take: a poll of 20 watches, retries of
/// 5xx answers included, on two loaded cores.
const ROUND: Duration = Duration::from_secs(90);

fn workspace(i: usize) -> String {
    format!("ws-{i:02}")
}

/// The strings watch `i` is sent: a third of the watches each of [`HUGE`], [`PAST_THE_LIMIT`]
/// and [`WITHIN_THE_LIMIT`].
fn strings_for(i: usize) -> &'static Strings {
    [&HUGE, &PAST_THE_LIMIT, &WITHIN_THE_LIMIT][i % 3]
}

/// Whether the answers to watch `i` fit in what the client reads.
fn read_whole(i: usize) -> bool {
    i % 3 == 2
}

/// Asks every watch for a poll under `token` and waits until each has answered it and `check`
/// holds for it; returns the watches.
async fn refresh_all(
    scene: &World,
    token: &str,
    what: &str,
    check: impl Fn(usize, &PoolStatisticsWatch) -> bool,
) -> Vec<PoolStatisticsWatch> {
    for i in 0..WATCHES {
        request_refresh(&scene.watches, &workspace(i), token).await;
    }
    let mut watches = Vec::new();
    for i in 0..WATCHES {
        let watch = scene
            .wait(&workspace(i), what, ROUND, |w| {
                w.status
                    .as_ref()
                    .and_then(|s| s.last_handled_refresh_request.as_deref())
                    == Some(token)
                    && check(i, w)
            })
            .await;
        watches.push(watch);
    }
    watches
}

/// Every string under `value`, with its path.
fn collect_strings<'a>(path: String, value: &'a Value, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::String(s) => out.push((path, s)),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_strings(format!("{path}[{i}]"), item, out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                collect_strings(format!("{path}.{key}"), item, out);
            }
        }
        _ => {}
    }
}

/// Every string of every watch's status as the API server stores it (`kubectl get -o json`) is
/// at most [`MAX_STATUS_STRING`] bytes.
fn assert_status_strings_bounded(scene: &World, round: &str) {
    let listed = run(scene.namespace.kubectl().args(["get", "psw", "-o", "json"]))
        .unwrap_or_else(|e| panic!("{e}"));
    let listed: Value = serde_json::from_str(&listed).expect("kubectl prints JSON");
    let items = listed["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), WATCHES, "{round}: the watches listed");
    let mut found = Vec::new();
    for item in &items {
        let name = item["metadata"]["name"].as_str().unwrap_or_default();
        collect_strings(format!("{name}.status"), &item["status"], &mut found);
    }
    let long: Vec<String> = found
        .iter()
        .filter(|(_, s)| s.len() > MAX_STATUS_STRING)
        .map(|(path, s)| format!("{path}: {} bytes", s.len()))
        .collect();
    assert!(
        long.is_empty(),
        "{round}: status strings over {MAX_STATUS_STRING} bytes:\n{}",
        long.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn megabyte_strings_from_an_endpoint_leave_statuses_logs_and_memory_bounded() {
    let scene = World::new("bounded-strings").await.with_credentials().await;
    for i in 0..WATCHES {
        scene.set_created(&workspace(i), 3);
        scene
            .create_watch_with(
                &workspace(i),
                &workspace(i),
                "creds",
                serde_json::json!({"interval": "5m"}),
            )
            .await;
    }
    let operator = scene.spawn_operator(&[]);
    let pid = operator.pid();

    for i in 0..WATCHES {
        scene.ready(&workspace(i)).await;
    }

    // The baseline: the peak of the same two rounds as the attack's (new counts, then a 500
    // that keeps them) with ordinary answers.
    reset_peak_resident(pid);
    for i in 0..WATCHES {
        scene.set_created(&workspace(i), 4);
    }
    refresh_all(
        &scene,
        "ordinary-counts",
        "Synced with new counts",
        |_, w| has_condition(w, "Ready", "True", "Synced") && created(w) == Some(4),
    )
    .await;
    scene
        .simulator
        .inject(Fault::status(500).on(SimulatorApi::Statistics));
    refresh_all(
        &scene,
        "ordinary-error",
        "answered with the error",
        |_, w| has_condition(w, "Ready", "True", "UpstreamUnavailable"),
    )
    .await;
    scene.simulator.clear_faults();
    let baseline = peak_resident_kib(pid);
    reset_peak_resident(pid);

    // Round 1: new counts with a long `operationTime` (the time moves with the counts only).
    // One that fits in what the client reads is cut; a statistics answer longer than that is
    // refused, keeping the last good counts and time.
    for i in 0..WATCHES {
        scene.set_created(&workspace(i), 5);
        scene.simulator.inject(
            Fault::new(FaultKind::LongOperationTime {
                bytes: strings_for(i).operation_time,
            })
            .on(SimulatorApi::Statistics)
            .for_workspace(workspace(i)),
        );
    }
    let watches = refresh_all(&scene, "long-time", "answered", |_, w| {
        has_condition(w, "Ready", "True", "Synced")
            || has_condition(w, "Ready", "True", "InvalidResponse")
    })
    .await;
    assert_status_strings_bounded(&scene, "a long operationTime");
    for (i, watch) in watches.iter().enumerate() {
        let time = watch
            .status
            .as_ref()
            .and_then(|s| s.operation_time.as_deref());
        if !read_whole(i) {
            assert!(has_condition(watch, "Ready", "True", "InvalidResponse"));
            assert_eq!(created(watch), Some(4), "the last good counts stay");
            assert_eq!(time, Some(OPERATION_TIME), "the last good time stays");
        } else {
            assert!(has_condition(watch, "Ready", "True", "Synced"));
            assert_eq!(created(watch), Some(5), "the new counts");
            assert!(time.is_some_and(|t| t.starts_with(OPERATION_TIME) && t.ends_with('…')));
        }
    }

    // Round 2: error answers with a long `error_code`, `error_msg` and request id. 500s, so
    // the client retries each and the counts stay.
    scene.simulator.clear_faults();
    for i in 0..WATCHES {
        scene.simulator.inject(
            Fault::new(FaultKind::LongError {
                status: 500,
                code_bytes: strings_for(i).error_code,
                msg_bytes: strings_for(i).error_msg,
            })
            .on(SimulatorApi::Statistics)
            .for_workspace(workspace(i)),
        );
    }
    let watches = refresh_all(&scene, "long-error", "answered with the error", |_, w| {
        has_condition(w, "Ready", "True", "UpstreamUnavailable")
    })
    .await;
    for (i, watch) in watches.iter().enumerate() {
        let last_good = if read_whole(i) { 5 } else { 4 };
        assert_eq!(created(watch), Some(last_good), "the counts stay");
        let message = watch
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.message.clone())
            .unwrap_or_default();
        if read_whole(i) {
            // The code was read and cut: the message shows its start and the cut.
            assert!(
                message.contains("(HTTP 500, ModelArts.50005000") && message.contains("…)"),
                "{message}"
            );
        }
    }
    assert_status_strings_bounded(&scene, "a long error_code");

    let peak = peak_resident_kib(pid);
    let logs = operator.logs();
    drop(operator);
    let long_lines: Vec<String> = logs
        .iter()
        .filter(|line| line.len() > MAX_LOG_LINE)
        .map(|line| {
            let start: String = line.chars().take(200).collect();
            format!("{} bytes: {start}…", line.len())
        })
        .collect();
    assert!(
        long_lines.is_empty(),
        "log lines over {MAX_LOG_LINE} bytes:\n{}",
        long_lines.join("\n")
    );
    let bound = baseline + WATCHES as u64 * RSS_PER_WATCH_KIB;
    eprintln!(
        "operator memory: peak {baseline} KiB with ordinary answers, {peak} KiB under attack \
         (bound {bound} KiB)"
    );
    assert!(
        peak <= bound,
        "the operator's memory peaked at {peak} KiB under attack, against {baseline} KiB for \
         the same polls with ordinary answers: more than {RSS_PER_WATCH_KIB} KiB per watch"
    );
}
