//! The simulator checked by an independent client: Huawei Cloud's official Python SDK
//! (`huaweicloudsdkmodelarts`' `show_pool_statistics`, `huaweicloudsdkcore`'s signer and IAM
//! project lookup) gets the right answers and the right errors from it, and the SDK's own signer
//! proves the simulator's signature check: awkward requests accepted, every one-byte change
//! refused (`tests/signing/sdk_requests.py`).
//!
//! Needs the SDK that `make python-tools` installs; `make test` exports its interpreter as
//! `POOLWATCH_PYTHON`. Without it the test fails and says so: it is never skipped.

use std::process::Command;

use crate::support::control_plane::repo_path;
use crate::support::simulator::{self as sim, AK, OTHER_PROJECT, PROJECT, SK};
use poolwatch::modelarts::signer::MAX_CLOCK_SKEW;
use poolwatch::simulator::SimulatedCounts;
use serde_json::{Value, json};

/// Calls the simulator through the SDK in several ways and prints one JSON object per call.
const SCRIPT: &str = r#"
import json, logging, os, sys
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ServiceResponseException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.region.region import Region
from huaweicloudsdkmodelarts.v1 import ModelArtsClient, ShowPoolStatisticsRequest

url = os.environ["SIM_URL"]
config = HttpConfig.get_default_config()
config.timeout = (5, 10)
results = []

def call(name, credentials, workspace, region=None):
    builder = ModelArtsClient.new_builder().with_http_config(config).with_credentials(credentials)
    builder = builder.with_region(Region(region, url)) if region else builder.with_endpoints([url])
    try:
        client = builder.build()
        request = ShowPoolStatisticsRequest(workspace_id=workspace) if workspace else ShowPoolStatisticsRequest()
        response = client.show_pool_statistics(request)
        status = response.statistics.status
        results.append({"name": name, "ok": True, "httpStatus": response.status_code,
                        "creating": status.creating, "created": status.created,
                        "failed": status.failed, "pending": status.pending,
                        "operationTime": response.operation_time,
                        "projectId": credentials.project_id})
    except ServiceResponseException as e:
        results.append({"name": name, "ok": False, "httpStatus": e.status_code,
                        "errorCode": e.error_code, "errorMsg": e.error_msg,
                        "requestId": e.request_id})

env = os.environ
call("explicit_project", BasicCredentials(env["SIM_AK"], env["SIM_SK"], env["SIM_PROJECT"]), "0")
call("default_workspace", BasicCredentials(env["SIM_AK"], env["SIM_SK"], env["SIM_PROJECT"]), None)
call("partial_counts", BasicCredentials(env["SIM_AK"], env["SIM_SK"], env["SIM_PROJECT"]), "ws-partial")
call("iam_resolved_project",
     BasicCredentials(env["SIM_AK"], env["SIM_SK"]).with_iam_endpoint(url), "0", region=env["SIM_OTHER_REGION"])
call("temporary_credentials",
     BasicCredentials(env["SIM_TEMP_AK"], env["SIM_TEMP_SK"], env["SIM_PROJECT"]).with_security_token(env["SIM_TOKEN"]), "0")
call("wrong_secret", BasicCredentials(env["SIM_AK"], "wrong-secret", env["SIM_PROJECT"]), "0")
call("unknown_workspace", BasicCredentials(env["SIM_AK"], env["SIM_SK"], env["SIM_PROJECT"]), "no-such-workspace")
call("throttled", BasicCredentials(env["SIM_AK"], env["SIM_SK"], env["SIM_PROJECT"]), "throttled-ws")
print(json.dumps(results))
"#;

fn python() -> String {
    match std::env::var("POOLWATCH_PYTHON") {
        Ok(path) if !path.is_empty() => path,
        _ => panic!(
            "POOLWATCH_PYTHON is not set: this test runs Huawei Cloud's official Python SDK against \
             the simulator. Run it through `make test`, or run `make python-tools` and set \
             POOLWATCH_PYTHON=$HOME/.cache/poolwatch/venv/bin/python"
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn official_python_sdk_gets_the_right_answers_from_the_simulator() {
    let python = python();
    let handle = sim::start().await;
    handle.set_counts(PROJECT, "throttled-ws", Default::default());
    handle.inject(
        poolwatch::simulator::Fault::status(429)
            .for_workspace("throttled-ws")
            .retry_after("3"),
    );
    let mut command = sdk_script(&python);
    command
        .args(["-c", SCRIPT])
        .env("SIM_URL", handle.base_url())
        .env("SIM_OTHER_REGION", sim::OTHER_REGION);
    let results = run_script(command).await;
    let by_name = |name: &str| -> Value {
        results
            .as_array()
            .and_then(|all| all.iter().find(|r| r["name"] == name).cloned())
            .unwrap_or(Value::Null)
    };
    let counts = |r: &Value| {
        json!([
            r["ok"],
            r["httpStatus"],
            r["creating"],
            r["created"],
            r["failed"],
            r["pending"]
        ])
    };

    let explicit = by_name("explicit_project");
    assert_eq!(
        counts(&explicit),
        json!([true, 200, 0, 9, 0, 0]),
        "{explicit}"
    );
    assert_eq!(explicit["operationTime"], json!(sim::OPERATION_TIME));
    assert_eq!(
        counts(&by_name("default_workspace")),
        json!([true, 200, 0, 9, 0, 0])
    );
    let partial = by_name("partial_counts");
    assert_eq!(
        counts(&partial),
        json!([true, 200, null, 3, 2, null]),
        "{partial}"
    );

    let resolved = by_name("iam_resolved_project");
    assert_eq!(
        counts(&resolved),
        json!([true, 200, 1, 2, 3, 4]),
        "{resolved}"
    );
    assert_eq!(resolved["projectId"], json!(OTHER_PROJECT));

    let temporary = by_name("temporary_credentials");
    assert_eq!(
        counts(&temporary),
        json!([true, 200, 0, 9, 0, 0]),
        "{temporary}"
    );

    let wrong = by_name("wrong_secret");
    assert_eq!(wrong["ok"], json!(false), "{wrong}");
    assert_eq!(wrong["httpStatus"], json!(401));
    assert_eq!(wrong["errorCode"], json!("APIGW.0301"));
    assert!(
        wrong["requestId"].as_str().is_some_and(|id| !id.is_empty()),
        "{wrong}"
    );

    let unknown = by_name("unknown_workspace");
    assert_eq!(
        json!([unknown["httpStatus"], unknown["errorCode"]]),
        json!([404, "ModelArts.50015001"]),
        "{unknown}"
    );
    // The SDK's HTTP layer retries 429 on its own and then reports the status alone.
    let throttled = by_name("throttled");
    assert_eq!(throttled["httpStatus"], json!(429), "{throttled}");
    assert!(
        handle.requests_served(&poolwatch::simulator::RequestFilter::default().with_status(429))
            >= 1
    );

    // Every signed request was verified: only the deliberate failures were refused.
    let stats = handle.stats();
    assert_eq!(stats.by_status.get(&401), Some(&1), "{stats:?}");
    assert!(
        handle.requests_served(&poolwatch::simulator::RequestFilter::api(
            poolwatch::simulator::Api::Iam
        )) >= 1
    );
}

/// A workspace id with the `-` and `_` that ModelArts allows.
const AWKWARD_WORKSPACE: &str = "ws-a_b-1";

#[tokio::test(flavor = "multi_thread")]
async fn sdk_signed_awkward_requests_are_accepted_and_every_one_byte_change_is_refused() {
    let python = python();
    let handle = sim::start().await;
    handle.set_counts(
        PROJECT,
        AWKWARD_WORKSPACE,
        SimulatedCounts::new(1, 2, 3, 4, 5),
    );
    let host = handle
        .base_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut command = sdk_script(&python);
    command
        .arg(repo_path("tests/signing/sdk_requests.py"))
        .env("SIM_HOST", host)
        .env("SIM_WORKSPACE", AWKWARD_WORKSPACE)
        .env("SIM_SKEW_SECONDS", MAX_CLOCK_SKEW.as_secs().to_string());
    let results = run_script(command).await;

    let cases = results["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 11, "{results}");
    for case in cases {
        assert_eq!(case["status"], case["want"], "not accepted: {case}");
        if case["want"] == 404 {
            // Answered by ModelArts, so the gateway verified the signature first.
            assert_eq!(case["errorCode"], json!("ModelArts.50015001"), "{case}");
        }
    }
    let mutations = results["mutations"].as_u64().expect("a count");
    assert!(
        mutations > 1000,
        "only {mutations} one-byte changes were tried"
    );
    let accepted = results["acceptedMutations"].as_array().expect("a list");
    assert!(
        accepted.is_empty(),
        "{} of {mutations} one-byte changes were accepted, first: {:#?}",
        accepted.len(),
        &accepted[..accepted.len().min(10)]
    );
    for beyond in results["beyondSkew"].as_array().expect("a list") {
        assert_eq!(
            json!([beyond["status"], beyond["errorCode"]]),
            json!([401, "APIGW.0301"]),
            "{beyond}"
        );
    }
    // Every accepted case reached the simulator's counters as a served request.
    let served = handle.requests_served(
        &poolwatch::simulator::RequestFilter::default()
            .with_project(PROJECT)
            .with_workspace(AWKWARD_WORKSPACE)
            .with_status(200),
    );
    assert_eq!(served, 9, "statistics answers for the awkward workspace");
}

/// The SDK's interpreter with the simulator's keys and project in its environment (`SIM_AK`,
/// `SIM_SK`, `SIM_TEMP_AK`, `SIM_TEMP_SK`, `SIM_TOKEN`, `SIM_PROJECT`).
fn sdk_script(python: &str) -> Command {
    let mut command = Command::new(python);
    command
        .env("SIM_AK", AK)
        .env("SIM_SK", SK)
        .env("SIM_TEMP_AK", sim::TEMP_AK)
        .env("SIM_TEMP_SK", sim::TEMP_SK)
        .env("SIM_TOKEN", sim::TOKEN)
        .env("SIM_PROJECT", PROJECT);
    command
}

/// Runs a Python script of the SDK and parses the one JSON value it prints.
async fn run_script(mut command: Command) -> Value {
    command
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env_remove("HUAWEICLOUD_SDK_IAM_ENDPOINT");
    let program = format!("{command:?}");
    let output = match tokio::task::spawn_blocking(move || command.output()).await {
        Ok(Ok(output)) => output,
        other => panic!("could not run {program}: {other:?}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK script failed (is the SDK installed? `make python-tools`):\n{stderr}"
    );
    match serde_json::from_str(stdout.trim()) {
        Ok(value) => value,
        Err(e) => panic!("the SDK script printed no JSON ({e}):\n{stdout}\n{stderr}"),
    }
}

/// Lists the pools of workspace `0` with the SDK's own `ListPoolsRequest`, current and failed, and
/// prints every field its models hold.
const LIST_POOLS_SCRIPT: &str = r#"
import json, os
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkmodelarts.v1 import ModelArtsClient, ListPoolsRequest

env = os.environ
config = HttpConfig.get_default_config()
config.timeout = (5, 10)
client = (ModelArtsClient.new_builder().with_http_config(config)
          .with_credentials(BasicCredentials(env["SIM_AK"], env["SIM_SK"], env["SIM_PROJECT"]))
          .with_endpoints([env["SIM_URL"]]).build())

def flavor_count(c):
    return None if c is None else {"flavor": c.flavor, "count": c.count}

def pool(p):
    m, s, st = p.metadata, p.spec, p.status
    driver = st.driver
    return {
        "apiVersion": p.api_version, "kind": p.kind,
        "name": m.name, "created": m.creation_timestamp,
        "displayName": m.labels.os_modelarts_name, "workspace": m.labels.os_modelarts_workspace_id,
        "type": s.type, "scope": s.scope,
        "resources": [{"flavor": r.flavor, "count": r.count, "maxCount": r.max_count} for r in s.resources],
        "phase": st.phase, "message": st.message,
        "available": flavor_count(st.resources.available), "abnormal": flavor_count(st.resources.abnormal),
        "creating": flavor_count(st.resources.creating), "deleting": flavor_count(st.resources.deleting),
        "gpu": None if driver is None or driver.gpu is None else {"version": driver.gpu.version, "state": driver.gpu.state},
        "statusScope": [{"scopeType": x.scope_type, "state": x.state} for x in st.scope],
    }

results = {}
for name, status in [("current", None), ("failed", "failed")]:
    request = ListPoolsRequest(workspace_id="0", status=status) if status else ListPoolsRequest(workspace_id="0")
    response = client.list_pools(request)
    results[name] = {"httpStatus": response.status_code, "apiVersion": response.api_version,
                     "kind": response.kind, "items": [pool(p) for p in response.items]}
print(json.dumps(results))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn official_python_sdk_lists_the_simulators_pools_into_its_models() {
    use poolwatch::modelarts::{PoolListFilter, PoolPhase};
    use poolwatch::simulator::{FAILED_PHASE, SimulatedDriver, SimulatedFlavor, SimulatedPool};

    let python = python();
    let handle = sim::start().await;
    let abnormal = SimulatedPool {
        display_name: Some("training".to_owned()),
        message: Some("1 node is NotReady".to_owned()),
        flavors: vec![SimulatedFlavor {
            flavor: "modelarts.vm.gpu.8ant8".to_owned(),
            count: 4,
            max_count: Some(8),
            available: Some(3),
            abnormal: Some(1),
            ..SimulatedFlavor::default()
        }],
        gpu_driver: Some(SimulatedDriver {
            version: "470.182.03".to_owned(),
            state: "Running".to_owned(),
        }),
        ..SimulatedPool::running("pool-6d1b4a1c", "unused", 0).in_phase("Abnormal", "")
    };
    let failed = SimulatedPool::running("pool-0f9e", "modelarts.vm.cpu.8u", 2)
        .in_phase(FAILED_PHASE, "Insufficient quota");
    // Two flavors: `status.resources` per state is then the API reference's list, which the
    // SDK's model (one `PoolResourceFlavorCount`) cannot hold.
    let mut mixed = SimulatedPool::running("pool-7a7a", "modelarts.vm.gpu.t4", 2);
    mixed.flavors.push(SimulatedFlavor {
        flavor: "modelarts.vm.cpu.8u".to_owned(),
        count: 1,
        available: Some(1),
        ..SimulatedFlavor::default()
    });
    assert!(handle.set_pools(PROJECT, "0", vec![abnormal, failed, mixed]));

    let mut command = sdk_script(&python);
    command
        .args(["-c", LIST_POOLS_SCRIPT])
        .env("SIM_URL", handle.base_url());
    let results = run_script(command).await;

    let current = &results["current"];
    assert_eq!(
        [
            &current["httpStatus"],
            &current["apiVersion"],
            &current["kind"]
        ],
        [&json!(200), &json!("v2"), &json!("PoolList")],
        "{results}"
    );
    let items = current["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "{results}");
    // The SDK builds the list form into an empty model: it loses the nodes, poolwatch reads them.
    assert_eq!(items[1]["name"], json!("pool-7a7a"));
    assert_eq!(
        items[1]["available"],
        json!({"flavor": null, "count": null}),
        "{results}"
    );
    assert_eq!(
        items[1]["resources"],
        json!([{"flavor": "modelarts.vm.gpu.t4", "count": 2, "maxCount": 4},
               {"flavor": "modelarts.vm.cpu.8u", "count": 1, "maxCount": null}])
    );
    assert_eq!(
        json!(items[..1]),
        json!([{
            "apiVersion": "v2", "kind": "Pool",
            "name": "pool-6d1b4a1c", "created": "2026-11-30T08:00:00Z",
            "displayName": "training", "workspace": "0",
            "type": "Dedicate", "scope": ["Train"],
            "resources": [{"flavor": "modelarts.vm.gpu.8ant8", "count": 4, "maxCount": 8}],
            "phase": "Abnormal", "message": "1 node is NotReady",
            "available": {"flavor": "modelarts.vm.gpu.8ant8", "count": 3},
            "abnormal": {"flavor": "modelarts.vm.gpu.8ant8", "count": 1},
            "creating": null, "deleting": null,
            "gpu": {"version": "470.182.03", "state": "Running"},
            "statusScope": [{"scopeType": "Train", "state": "Enabled"}],
        }]),
        "every field deserialised by the SDK's models"
    );
    let failed = &results["failed"]["items"];
    assert_eq!(failed.as_array().map(Vec::len), Some(1), "{results}");
    assert_eq!(
        [
            &failed[0]["name"],
            &failed[0]["phase"],
            &failed[0]["message"]
        ],
        [
            &json!("pool-0f9e"),
            &json!("Error"),
            &json!("Insufficient quota")
        ]
    );
    // ModelArts' ListPools request: signed, its query and path as the SDK sends them.
    let lists = handle.requests_served(
        &poolwatch::simulator::RequestFilter::api(poolwatch::simulator::Api::ListPools)
            .with_status(200),
    );
    assert_eq!(lists, 2);

    // poolwatch's client reads the same answers as the SDK did.
    let client = sim::client();
    let endpoint = poolwatch::modelarts::Endpoint::parse(&handle.base_url(), true).unwrap();
    let credentials = sim::credentials();
    let ours = client
        .list_pools(
            &endpoint,
            &credentials,
            PROJECT,
            "0",
            PoolListFilter::Current,
        )
        .await
        .unwrap();
    let pool = &ours.pools[0];
    assert_eq!(pool.name, "pool-6d1b4a1c");
    assert_eq!(pool.display_name.as_deref(), Some("training"));
    assert_eq!(pool.phase, PoolPhase::Abnormal);
    assert_eq!(pool.message.as_deref(), Some("1 node is NotReady"));
    assert_eq!(
        (
            pool.flavors[0].count,
            pool.flavors[0].max_count,
            pool.flavors[0].available,
            pool.flavors[0].abnormal
        ),
        (Some(4), Some(8), Some(3), Some(1))
    );
    assert_eq!(
        pool.gpu_driver.as_ref().and_then(|d| d.version.as_deref()),
        Some("470.182.03")
    );
    let mixed: Vec<(&str, Option<i64>, Option<i64>)> = ours.pools[1]
        .flavors
        .iter()
        .map(|f| (f.flavor.as_str(), f.count, f.available))
        .collect();
    assert_eq!(
        mixed,
        [
            ("modelarts.vm.cpu.8u", Some(1), Some(1)),
            ("modelarts.vm.gpu.t4", Some(2), Some(2))
        ]
    );
    let theirs = client
        .list_pools(
            &endpoint,
            &credentials,
            PROJECT,
            "0",
            PoolListFilter::Failed,
        )
        .await
        .unwrap();
    assert_eq!(theirs.pools[0].phase, PoolPhase::Failed);
    assert_eq!(
        theirs.pools[0].message.as_deref(),
        Some("Insufficient quota")
    );
}
