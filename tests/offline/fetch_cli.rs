//! `poolwatch fetch` and `poolwatch simulator` as users run them: the real binary against a
//! simulator, checking output shapes, exit codes and that no secret is ever printed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::jwt::{self, SigningKey};
use crate::support::scratch::Scratch;
use crate::support::simulator::{
    self as sim, AK, FEDERATED_SUBJECT, IDP_ID, ISSUER, POD_IDENTITY_TOKEN, PROJECT, REGION, SK,
    TOKEN,
};
use poolwatch::modelarts::{Credentials, Endpoint};
use poolwatch::simulator::{
    Api, Fault, FaultKind, RequestFilter, SimulatedCounts, SimulatorConfig, SimulatorHandle,
};
use reqwest::Method;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_poolwatch");

/// Every variable that changes where `poolwatch fetch` finds credentials (or what it logs).
const CREDENTIAL_ENVIRONMENT: &[&str] = &[
    "HUAWEICLOUD_SDK_AK",
    "HUAWEICLOUD_SDK_SK",
    "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    "HUAWEICLOUD_SDK_PROJECT_ID",
    "HUAWEICLOUD_SDK_IDP_ID",
    "HUAWEICLOUD_SDK_ID_TOKEN_FILE",
    "HUAWEICLOUD_SDK_IAM_ENDPOINT",
    "HUAWEICLOUD_SDK_CREDENTIALS_FILE",
    "HUAWEICLOUD_OIDC_PROVIDER_URN",
    "HC_CONTAINER_CREDENTIALS_FULL_URI",
    "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "RUST_LOG",
];

/// Runs `poolwatch fetch ARGS` with the given credential variables (and nothing inherited that
/// could change the outcome: no credential variable, and a `HOME` without a profile file unless
/// `env` sets one), off the async runtime so the in-process simulator keeps serving.
async fn fetch(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.arg("fetch").args(args);
    for var in CREDENTIAL_ENVIRONMENT {
        command.env_remove(var);
    }
    command
        .env("HOME", std::env::temp_dir().join("poolwatch-fetch-no-home"))
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    for (k, v) in env {
        command.env(k, v);
    }
    let output = tokio::task::spawn_blocking(move || command.output()).await;
    match output {
        Ok(Ok(output)) => output,
        other => panic!("could not run {BIN}: {other:?}"),
    }
}

const CREDS: [(&str, &str); 2] = [("HUAWEICLOUD_SDK_AK", AK), ("HUAWEICLOUD_SDK_SK", SK)];

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_no_secret(output: &Output) {
    let (stdout, stderr) = text(output);
    for secret in [SK, sim::TEMP_SK, TOKEN, "wrong-secret-value"] {
        assert!(!stdout.contains(secret), "secret in stdout: {stdout}");
        assert!(!stderr.contains(secret), "secret in stderr: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_output_is_exactly_the_documented_object() {
    let handle = sim::start().await;
    let url = handle.base_url();
    let output = fetch(
        &[
            "--endpoint",
            &url,
            "--project-id",
            PROJECT,
            "--output",
            "json",
        ],
        &CREDS,
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
    let value: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    assert_eq!(
        value,
        json!({
            "projectId": PROJECT,
            "workspaceId": "0",
            "pools": {"creating": 0, "created": 9, "failed": 0, "pending": 0, "deleting": 1},
            "operationTime": sim::OPERATION_TIME,
        })
    );
    assert!(
        stdout.starts_with(r#"{"projectId":"#),
        "key order: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_output_omits_absent_counts() {
    let handle = sim::start().await;
    let url = handle.base_url();
    let output = fetch(
        &[
            "--endpoint",
            &url,
            "--project-id",
            PROJECT,
            "--workspace-id",
            "ws-partial",
            "--output",
            "json",
        ],
        &CREDS,
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    let value: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    assert_eq!(value["pools"], json!({"created": 3, "failed": 2}));
    assert_eq!(value["workspaceId"], json!("ws-partial"));
}

#[tokio::test(flavor = "multi_thread")]
async fn table_output_is_the_default() {
    let handle = sim::start().await;
    handle.set_counts(PROJECT, "0", SimulatedCounts::new(2, 7, 1, 0, 0));
    let url = handle.base_url();
    let output = fetch(&["--endpoint", &url, "--project-id", PROJECT], &CREDS).await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    for line in [
        format!("Project    {PROJECT}"),
        "Workspace  0".to_owned(),
        format!("Time       {}", sim::OPERATION_TIME),
        "STATE      POOLS".to_owned(),
        "creating       2".to_owned(),
        "created        7".to_owned(),
        "failed         1".to_owned(),
        "pending        0".to_owned(),
        "deleting       0".to_owned(),
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line:?} in:\n{stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn project_id_is_resolved_through_iam_when_absent() {
    let handle = sim::start().await;
    let url = handle.base_url();
    let output = fetch(
        &[
            "--region",
            REGION,
            "--endpoint",
            &url,
            "--iam-endpoint",
            &url,
            "--output",
            "json",
        ],
        &CREDS,
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    let value: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    assert_eq!(value["projectId"], json!(PROJECT));
}

#[tokio::test(flavor = "multi_thread")]
async fn temporary_credentials_come_from_the_token_variable() {
    let handle = sim::start().await;
    let url = handle.base_url();
    let env = [
        ("HUAWEICLOUD_SDK_AK", sim::TEMP_AK),
        ("HUAWEICLOUD_SDK_SK", sim::TEMP_SK),
        ("HUAWEICLOUD_SDK_SECURITY_TOKEN", TOKEN),
    ];
    let output = fetch(&["--endpoint", &url, "--project-id", PROJECT], &env).await;
    assert!(output.status.success(), "{:?}", text(&output));
    assert_no_secret(&output);
}

#[tokio::test(flavor = "multi_thread")]
async fn authentication_failure_exits_non_zero_with_status_code_message_and_request_id() {
    let handle = sim::start().await;
    let url = handle.base_url();
    let env = [
        ("HUAWEICLOUD_SDK_AK", AK),
        ("HUAWEICLOUD_SDK_SK", "wrong-secret-value"),
        ("RUST_LOG", "trace"),
    ];
    let output = fetch(&["--endpoint", &url, "--project-id", PROJECT], &env).await;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("HTTP status: 401"), "{stderr}");
    assert!(stderr.contains("error_code:  APIGW.0301"), "{stderr}");
    assert!(
        stderr.contains("error_msg:   Incorrect IAM authentication information"),
        "{stderr}"
    );
    assert!(stderr.contains("request id:  "), "{stderr}");
    assert!(
        stderr.contains("reason:      AuthenticationFailed"),
        "{stderr}"
    );
    assert_no_secret(&output);
    assert_eq!(handle.stats().total, 1, "a 401 is never retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_failure_prints_a_machine_readable_error() {
    let handle = sim::start().await;
    handle.inject(Fault::status(429).retry_after("30"));
    let url = handle.base_url();
    let output = fetch(
        &[
            "--endpoint",
            &url,
            "--project-id",
            PROJECT,
            "--output",
            "json",
        ],
        &CREDS,
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let value: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    assert_eq!(value["error"]["reason"], json!("Throttled"));
    assert_eq!(value["error"]["status"], json!(429));
    assert_eq!(value["error"]["errorCode"], json!("APIGW.0308"));
    assert!(value["error"]["requestId"].is_string(), "{stdout}");
    assert!(stderr.contains("wait 30s"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_appear_in_cli_output_even_at_trace_level() {
    let handle = sim::start().await;
    let url = handle.base_url();
    let temp = [
        ("HUAWEICLOUD_SDK_AK", sim::TEMP_AK),
        ("HUAWEICLOUD_SDK_SK", "wrong-secret-value"),
        ("HUAWEICLOUD_SDK_SECURITY_TOKEN", TOKEN),
        ("RUST_LOG", "trace"),
    ];
    // A bad signature makes the gateway echo its canonical request, token included.
    let output = fetch(&["--endpoint", &url, "--project-id", PROJECT], &temp).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).1.contains("[REDACTED]"),
        "{:?}",
        text(&output)
    );
    assert_no_secret(&output);

    handle.inject(Fault::status(500).times(3));
    let traced = [CREDS[0], CREDS[1], ("RUST_LOG", "trace")];
    let output = fetch(
        &[
            "--endpoint",
            &url,
            "--project-id",
            PROJECT,
            "--output",
            "json",
        ],
        &traced,
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).1.contains("retrying"), "{:?}", text(&output));
    assert_no_secret(&output);

    let output = fetch(
        &[
            "--region",
            REGION,
            "--iam-endpoint",
            &url,
            "--endpoint",
            &url,
        ],
        &traced,
    )
    .await;
    assert!(output.status.success(), "{:?}", text(&output));
    assert_no_secret(&output);
}

#[tokio::test(flavor = "multi_thread")]
async fn help_never_shows_credential_values() {
    let env = [
        ("HUAWEICLOUD_SDK_AK", AK),
        ("HUAWEICLOUD_SDK_SK", SK),
        ("HUAWEICLOUD_SDK_SECURITY_TOKEN", TOKEN),
    ];
    let output = fetch(&["--help"], &env).await;
    let (stdout, _) = text(&output);
    assert!(output.status.success());
    assert!(stdout.contains("HUAWEICLOUD_SDK_SK"), "{stdout}");
    assert!(!stdout.contains(AK));
    assert_no_secret(&output);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_credentials_name_the_variable() {
    let metadata = closed_port_url();
    let output = fetch(
        &[
            "--region",
            REGION,
            "--project-id",
            PROJECT,
            "--metadata-endpoint",
            &metadata,
        ],
        &[],
    )
    .await;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("HUAWEICLOUD_SDK_AK is not set"), "{stderr}");
    let output = fetch(
        &["--region", REGION, "--project-id", PROJECT],
        &[("HUAWEICLOUD_SDK_AK", AK)],
    )
    .await;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("HUAWEICLOUD_SDK_SK is not set"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_flags_get_advice() {
    let cases: [(&[&str], &str); 5] = [
        (&["--project-id", PROJECT], "give --region"),
        (
            &["--region", "mars-1", "--project-id", PROJECT],
            "pass --endpoint",
        ),
        (
            &[
                "--endpoint",
                "http://modelarts.example.com",
                "--project-id",
                PROJECT,
            ],
            "--allow-http-endpoints",
        ),
        (
            &[
                "--endpoint",
                "https://modelarts.example.com/v2",
                "--project-id",
                PROJECT,
            ],
            "drop the path",
        ),
        (
            &["--endpoint", "https://modelarts.example.com"],
            "give --project-id, or --region",
        ),
    ];
    for (args, advice) in cases {
        let output = fetch(args, &CREDS).await;
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(advice), "{args:?}: {stderr}");
    }
    let output = fetch(
        &[
            "--endpoint",
            "https://modelarts.example.com",
            "--project-id",
            PROJECT,
            "--ca-bundle",
            "/nonexistent/ca.pem",
        ],
        &CREDS,
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output).1.contains("--ca-bundle"),
        "{:?}",
        text(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_and_not_found_are_reported() {
    let handle = sim::start().await;
    let url = handle.base_url();
    let output = fetch(
        &[
            "--endpoint",
            &url,
            "--project-id",
            PROJECT,
            "--workspace-id",
            "nope",
        ],
        &CREDS,
    )
    .await;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("ModelArts.50015001"), "{stderr}");
    assert!(stderr.contains("reason:      ProjectNotFound"), "{stderr}");

    handle.inject(Fault::new(FaultKind::Hang));
    let output = fetch(
        &[
            "--endpoint",
            &url,
            "--project-id",
            PROJECT,
            "--timeout",
            "300ms",
        ],
        &CREDS,
    )
    .await;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("reason:      Timeout"), "{stderr}");
}

/// Calls the simulator's admin API; returns the status and the JSON body (null when none).
async fn send(method: Method, base: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{base}/_simulator{path}"));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => panic!("admin API {path}: {e}"),
    };
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A `poolwatch simulator` child process, killed on drop.
struct SimulatorProcess {
    child: Child,
    base_url: String,
}

impl Drop for SimulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_simulator(config: &std::path::Path) -> SimulatorProcess {
    let child = Command::new(BIN)
        .args([
            "simulator",
            "--listen",
            "127.0.0.1:0",
            "--reload-interval",
            "100ms",
            "--config",
        ])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!("could not start the simulator: {e}"),
    };
    let Some(stdout) = child.stdout.take() else {
        panic!("no stdout")
    };
    // Its first line says where it listens; a simulator that never says it must fail the test,
    // not hang it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) else {
        let _ = child.kill();
        panic!("the simulator printed no first line within 20 s")
    };
    let Some(base_url) = line.trim().strip_prefix("listening on ").map(str::to_owned) else {
        let _ = child.kill();
        panic!("unexpected first line {line:?}")
    };
    SimulatorProcess { child, base_url }
}

#[tokio::test(flavor = "multi_thread")]
async fn simulator_subcommand_serves_its_config_and_reloads_it() {
    let dir = std::env::temp_dir().join(format!("poolwatch-sim-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let config = dir.join("simulator.yaml");
    let write = |created: i64| {
        let text = format!(
            "credentials:\n  - {{accessKeyId: {AK}, secretAccessKey: {SK}}}\n\
             projects:\n  - id: {PROJECT}\n    region: {REGION}\n    workspaces:\n      \"0\": {{created: {created}, failed: 0}}\n"
        );
        if let Err(e) = std::fs::write(&config, text) {
            panic!("cannot write {}: {e}", config.display());
        }
    };
    write(4);
    let process = tokio::task::spawn_blocking({
        let config = config.clone();
        move || spawn_simulator(&config)
    })
    .await;
    let Ok(process) = process else {
        panic!("spawn failed")
    };
    let Ok(endpoint) = Endpoint::parse(&process.base_url, false) else {
        panic!("bad address {}", process.base_url)
    };
    let client = sim::client();
    let creds = Credentials::new(AK, SK);
    let stats = client
        .pool_statistics(&endpoint, &creds, PROJECT, "0")
        .await;
    assert_eq!(stats.map(|s| s.created), Ok(Some(4)));

    write(11);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = client
            .pool_statistics(&endpoint, &creds, PROJECT, "0")
            .await;
        if stats.as_ref().map(|s| s.created) == Ok(Some(11)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the config was not reloaded: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The admin API: faults, counters, counts and reset, as other processes drive it.
    let base = process.base_url.clone();
    let status = send(
        Method::POST,
        &base,
        "/faults",
        Some(json!({"kind": "status", "status": 503, "times": 1})),
    )
    .await;
    assert_eq!(status.0, 201);
    let ok = client
        .pool_statistics(&endpoint, &creds, PROJECT, "0")
        .await;
    assert!(ok.is_ok(), "one 503 is retried away: {ok:?}");
    assert_eq!(
        send(Method::GET, &base, "/requests?status=503", None)
            .await
            .1,
        json!({"count": 1})
    );
    let put = send(
        Method::PUT,
        &base,
        &format!("/counts/{PROJECT}/ws-new"),
        Some(json!({"created": 1, "deleting": 2})),
    )
    .await;
    assert_eq!(put.0, 204);
    let stats = client
        .pool_statistics(&endpoint, &creds, PROJECT, "ws-new")
        .await;
    assert_eq!(
        stats.map(|s| (s.created, s.deleting)),
        Ok((Some(1), Some(2)))
    );
    let (_, stats) = send(Method::GET, &base, "/stats", None).await;
    assert!(stats["total"].as_u64().unwrap_or(0) >= 4, "{stats}");
    assert_eq!(stats["byStatus"]["503"], json!(1), "{stats}");
    assert_eq!(send(Method::POST, &base, "/reset", None).await.0, 204);
    let (_, stats) = send(Method::GET, &base, "/stats", None).await;
    assert_eq!(stats["total"], json!(0));
    drop(process);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn simulator_prints_an_example_config() {
    let output = tokio::task::spawn_blocking(|| {
        Command::new(BIN)
            .args(["simulator", "--example-config"])
            .output()
    })
    .await;
    let Ok(Ok(output)) = output else {
        panic!("could not run the simulator")
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(
        poolwatch::simulator::SimulatorSetup::parse(&stdout).is_ok(),
        "{stdout}"
    );
}

// Credential sources: `poolwatch fetch` finds credentials as Huawei's SDKs do.
/// A loopback URL where nothing listens (the port was free a moment ago).
fn closed_port_url() -> String {
    let port = match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(listener) => listener.local_addr().map(|a| a.port()).unwrap_or(9),
        Err(e) => panic!("cannot bind a loopback port: {e}"),
    };
    format!("http://127.0.0.1:{port}")
}

/// The one `credentials: …` line `--verbose` printed.
fn credentials_line(output: &Output) -> String {
    let (_, stderr) = text(output);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("credentials: "))
        .collect();
    assert_eq!(lines.len(), 1, "one credentials line: {stderr}");
    lines[0].to_owned()
}

/// Requests to `api` answered with `status`.
fn served(handle: &SimulatorHandle, api: Api, status: u16) -> u64 {
    handle.requests_served(&RequestFilter::api(api).with_status(status))
}

/// Requests to `api`, whatever the answer.
fn all(handle: &SimulatorHandle, api: Api) -> u64 {
    handle.requests_served(&RequestFilter::api(api))
}

/// Asserts that no secret the test handed out or the simulator issued shows in the output.
fn assert_no_keyless_secret(output: &Output, handle: &SimulatorHandle, extra: &[&str]) {
    let (stdout, stderr) = text(output);
    let issued = handle.issued_secrets();
    let secrets = issued
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .chain([SK, POD_IDENTITY_TOKEN]);
    for secret in secrets {
        assert!(
            !stdout.contains(secret),
            "a secret leaked into stdout: {stdout}"
        );
        assert!(
            !stderr.contains(secret),
            "a secret leaked into stderr: {stderr}"
        );
    }
}

/// The JSON result's counts, and that it is `project`'s.
fn assert_documented_counts(output: &Output, project: &str) {
    let (stdout, stderr) = text(output);
    assert!(output.status.success(), "{stderr}");
    let value: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    assert_eq!(value["projectId"], json!(project), "{stdout}");
    assert_eq!(
        value["pools"],
        json!({"creating": 0, "created": 9, "failed": 0, "pending": 0, "deleting": 1}),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_profile_file_gives_keys_project_and_iam_endpoint() {
    let handle = sim::start().await;
    let url = handle.base_url();
    let home = Scratch::new("profile-home");
    let profile = home.file(
        ".huaweicloud/credentials",
        &format!(
            "# as Huawei's SDKs read it\n[basic]\nak = {AK}\nsk = {SK}\nproject_id = {PROJECT}\n"
        ),
    );
    let output = fetch(
        &["--endpoint", &url, "--output", "json", "--verbose"],
        &[("HOME", &home.path())],
    )
    .await;
    assert_documented_counts(&output, PROJECT);
    assert_eq!(
        credentials_line(&output),
        format!("credentials: profile file {profile} [basic] (access key TEST…)")
    );
    assert_no_secret(&output);
    assert_eq!(
        all(&handle, Api::Iam),
        0,
        "the profile's project_id is used"
    );

    // No project_id: looked up through the profile's iam_endpoint (the region's is unreachable
    // from here); HUAWEICLOUD_SDK_CREDENTIALS_FILE names the file.
    let other = Scratch::new("profile-file");
    let file = other.file(
        "creds.ini",
        &format!("[basic]\nAK: {AK}\nSK: {SK}\niam_endpoint = {url}\n"),
    );
    let output = fetch(
        &[
            "--region",
            REGION,
            "--endpoint",
            &url,
            "--output",
            "json",
            "--verbose",
        ],
        &[("HUAWEICLOUD_SDK_CREDENTIALS_FILE", &file)],
    )
    .await;
    assert_documented_counts(&output, PROJECT);
    assert!(
        credentials_line(&output).starts_with(&format!("credentials: profile file {file} [basic]")),
        "{:?}",
        text(&output)
    );
    assert_eq!(served(&handle, Api::Iam, 200), 1);
    assert_eq!(served(&handle, Api::Statistics, 200), 2);
    assert_no_secret(&output);
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_identity_is_asked_before_the_metadata_service() {
    let key = SigningKey::generate("sa-key-1");
    let handle = sim::start_with(SimulatorConfig::new(sim::keyless_setup(&key))).await;
    let url = handle.base_url();
    let scratch = Scratch::new("pod-identity");
    let token_file = scratch.file("token", &format!("{POD_IDENTITY_TOKEN}\n"));
    let uri = format!("{url}/v1/pod-identity/credentials");
    let output = fetch(
        &[
            "--endpoint",
            &url,
            "--project-id",
            PROJECT,
            "--output",
            "json",
            "--verbose",
            "--metadata-endpoint",
            &url,
        ],
        &[
            ("HC_CONTAINER_CREDENTIALS_FULL_URI", &uri),
            ("HC_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file),
        ],
    )
    .await;
    assert_documented_counts(&output, PROJECT);
    let line = credentials_line(&output);
    assert!(
        line.starts_with(&format!(
            "credentials: CCE Pod Identity at {uri} (token file {token_file}; temporary key "
        )) && line.contains("…, expires 20"),
        "{line}"
    );
    assert_eq!(served(&handle, Api::PodIdentity, 200), 1);
    assert_eq!(served(&handle, Api::Statistics, 200), 1);
    assert_eq!(
        all(&handle, Api::MetadataToken) + all(&handle, Api::Metadata),
        0,
        "the metadata service is not asked"
    );
    assert_no_keyless_secret(&output, &handle, &[]);

    // The agent refusing the pod's token: exit 1, pointing at the Pod Identity association.
    let wrong = scratch.file("wrong", "not-the-agent-token");
    let output = fetch(
        &["--endpoint", &url, "--project-id", PROJECT],
        &[
            ("HC_CONTAINER_CREDENTIALS_FULL_URI", &uri),
            ("HC_CONTAINER_AUTHORIZATION_TOKEN_FILE", &wrong),
        ],
    )
    .await;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("reason:      TokenExchangeRefused"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: check the Pod Identity association"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-agent-token"), "{stderr}");
    assert_eq!(served(&handle, Api::PodIdentity, 401), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_metadata_service_is_asked_when_nothing_else_is_configured() {
    let key = SigningKey::generate("sa-key-1");
    let handle = sim::start_with(SimulatorConfig::new(sim::keyless_setup(&key))).await;
    let url = handle.base_url();
    let output = fetch(
        &[
            "--endpoint",
            &url,
            "--project-id",
            PROJECT,
            "--output",
            "json",
            "--verbose",
            "--metadata-endpoint",
            &url,
        ],
        &[],
    )
    .await;
    assert_documented_counts(&output, PROJECT);
    let line = credentials_line(&output);
    assert!(
        line.starts_with(&format!(
            "credentials: ECS metadata service at {url} (temporary key "
        )) && line.contains("…, expires 20"),
        "{line}"
    );
    // A session token first (the simulator requires one), then the keys, then the call.
    assert_eq!(served(&handle, Api::MetadataToken, 200), 1);
    assert_eq!(served(&handle, Api::Metadata, 200), 1);
    assert_eq!(served(&handle, Api::Statistics, 200), 1);
    assert_no_keyless_secret(&output, &handle, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn federation_exchanges_the_token_file_at_the_configured_iam() {
    let key = SigningKey::generate("sa-key-1");
    let handle = sim::start_with(SimulatorConfig::new(sim::keyless_setup(&key))).await;
    let url = handle.base_url();
    let scratch = Scratch::new("federation");
    let token = sim::id_token(&key, FEDERATED_SUBJECT);
    let token_file = scratch.file("token", &token);
    // No --project-id: looked up through HUAWEICLOUD_SDK_IAM_ENDPOINT (not --region's) with the
    // federated keys. The access key is ignored: federation wins, as in the SDK.
    let output = fetch(
        &[
            "--region",
            REGION,
            "--endpoint",
            &url,
            "--output",
            "json",
            "--verbose",
        ],
        &[
            ("HUAWEICLOUD_SDK_IDP_ID", IDP_ID),
            ("HUAWEICLOUD_SDK_ID_TOKEN_FILE", &token_file),
            ("HUAWEICLOUD_SDK_IAM_ENDPOINT", &url),
            ("HUAWEICLOUD_SDK_AK", "IGNOREDAK"),
            ("HUAWEICLOUD_SDK_SK", SK),
        ],
    )
    .await;
    assert_documented_counts(&output, PROJECT);
    let line = credentials_line(&output);
    assert!(
        line.starts_with(&format!(
            "credentials: federation through identity provider \"{IDP_ID}\" at {url} (token file {token_file} from HUAWEICLOUD_SDK_ID_TOKEN_FILE; temporary key "
        )) && line.contains("…, expires 20"),
        "{line}"
    );
    assert!(
        text(&output)
            .1
            .contains("warning: HUAWEICLOUD_SDK_IDP_ID and HUAWEICLOUD_SDK_ID_TOKEN_FILE are set"),
        "{:?}",
        text(&output)
    );
    assert_eq!(served(&handle, Api::IdToken, 201), 1);
    assert_eq!(served(&handle, Api::SecurityToken, 201), 1);
    assert_eq!(served(&handle, Api::Iam, 200), 1);
    assert_eq!(served(&handle, Api::Statistics, 200), 1);
    assert_eq!(handle.stats().by_status.get(&401), None);
    assert_no_keyless_secret(&output, &handle, &[&token]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_federation_names_the_reason_and_never_the_token() {
    let key = SigningKey::generate("sa-key-1");
    let handle = sim::start_with(SimulatorConfig::new(sim::keyless_setup(&key))).await;
    let url = handle.base_url();
    let scratch = Scratch::new("wrong-audience");
    let token = key.sign(&jwt::claims(
        ISSUER,
        "https://kubernetes.default.svc",
        FEDERATED_SUBJECT,
        Duration::from_secs(600),
    ));
    let token_file = scratch.file("token", &token);
    let env = [
        ("HUAWEICLOUD_SDK_IDP_ID", IDP_ID),
        ("HUAWEICLOUD_SDK_ID_TOKEN_FILE", token_file.as_str()),
        ("HUAWEICLOUD_SDK_IAM_ENDPOINT", url.as_str()),
        ("RUST_LOG", "trace"),
    ];
    let output = fetch(
        &["--endpoint", &url, "--project-id", PROJECT, "--verbose"],
        &env,
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("reason:      TokenExchangeRefused"),
        "{stderr}"
    );
    assert!(stderr.contains("HTTP status: 401"), "{stderr}");
    assert!(
        stderr.contains("hint: check that the token in") && stderr.contains("client id"),
        "{stderr}"
    );
    // --verbose still says which source failed.
    assert!(
        stderr.contains(&format!(
            "credentials: federation through identity provider \"{IDP_ID}\" at {url} (token file {token_file} from HUAWEICLOUD_SDK_ID_TOKEN_FILE)\n"
        )),
        "{stderr}"
    );
    assert!(
        !stdout.contains(&token) && !stderr.contains(&token),
        "the token leaked"
    );
    assert_no_keyless_secret(&output, &handle, &[&token]);
    assert_eq!(
        served(&handle, Api::IdToken, 401),
        1,
        "a refusal is not retried"
    );
    assert_eq!(all(&handle, Api::SecurityToken), 0);
    assert_eq!(all(&handle, Api::Statistics), 0);

    // The same in --output json: the reason for machines.
    let output = fetch(
        &[
            "--endpoint",
            &url,
            "--project-id",
            PROJECT,
            "--output",
            "json",
        ],
        &env,
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let value: Value = serde_json::from_str(&text(&output).0).unwrap_or(Value::Null);
    assert_eq!(value["error"]["reason"], json!("TokenExchangeRefused"));
    assert_no_keyless_secret(&output, &handle, &[&token]);
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_configured_lists_every_source_tried() {
    let metadata = closed_port_url();
    let started = Instant::now();
    let output = fetch(
        &[
            "--region",
            REGION,
            "--project-id",
            PROJECT,
            "--metadata-endpoint",
            &metadata,
        ],
        &[],
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "an unreachable metadata service must fail fast"
    );
    for expected in [
        "error: no credentials found. Tried, in order:",
        "1. environment: HUAWEICLOUD_SDK_AK is not set",
        "HUAWEICLOUD_SDK_IDP_ID and HUAWEICLOUD_SDK_ID_TOKEN_FILE for federation",
        "2. profile file: ",
        "poolwatch-fetch-no-home/.huaweicloud/credentials does not exist",
        "HUAWEICLOUD_SDK_CREDENTIALS_FILE",
        "3. CCE Pod Identity: HC_CONTAINER_CREDENTIALS_FULL_URI and HC_CONTAINER_AUTHORIZATION_TOKEN_FILE are not set",
        &format!("4. ECS metadata service at {metadata}: "),
        "(NetworkError)",
        "does not seem to run on a Huawei Cloud server",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }

    // A server that answers but is no metadata service: the same, without waiting.
    let handle = sim::start().await;
    let url = handle.base_url();
    let output = fetch(
        &[
            "--endpoint",
            &url,
            "--project-id",
            PROJECT,
            "--metadata-endpoint",
            &url,
        ],
        &[],
    )
    .await;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("4. ECS metadata service at {url}: "))
            && stderr.contains("(ApiNotFound)"),
        "{stderr}"
    );
    assert_eq!(all(&handle, Api::Statistics), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn half_configured_sources_are_usage_errors() {
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[("HUAWEICLOUD_SDK_IDP_ID", IDP_ID)],
            "HUAWEICLOUD_SDK_ID_TOKEN_FILE is not set",
        ),
        (
            &[("HC_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/v1")],
            "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE is not set",
        ),
        (
            &[(
                "HUAWEICLOUD_SDK_CREDENTIALS_FILE",
                "/nonexistent/credentials",
            )],
            "HUAWEICLOUD_SDK_CREDENTIALS_FILE names /nonexistent/credentials, which does not exist",
        ),
    ];
    for (env, expected) in cases {
        let output = fetch(&["--region", REGION, "--project-id", PROJECT], env).await;
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{env:?}: {stderr}");
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
    }
    // A token file that is not there: named, with the variable that names it.
    let output = fetch(
        &["--region", REGION, "--project-id", PROJECT],
        &[
            ("HUAWEICLOUD_SDK_IDP_ID", IDP_ID),
            ("HUAWEICLOUD_SDK_ID_TOKEN_FILE", "/nonexistent/token"),
        ],
    )
    .await;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "the token file /nonexistent/token (HUAWEICLOUD_SDK_ID_TOKEN_FILE) does not exist"
        ),
        "{stderr}"
    );
}

/// The pools `--pools` lists: one Abnormal with a long message that carries a terminal escape
/// sequence, one that failed.
fn seed_pools(handle: &SimulatorHandle) {
    use poolwatch::simulator::{FAILED_PHASE, SimulatedPool};
    let pools = vec![
        SimulatedPool {
            display_name: Some("training".to_owned()),
            ..SimulatedPool::running("pool-b", "modelarts.vm.gpu.8ant8", 4).in_phase(
                "Abnormal",
                &format!("2 nodes are NotReady\u{1b}[2J{}", ".".repeat(200)),
            )
        },
        SimulatedPool::running("pool-a", "modelarts.vm.cpu.8u", 2)
            .in_phase(FAILED_PHASE, "Insufficient quota"),
    ];
    assert!(handle.set_pools(PROJECT, "0", pools));
}

#[tokio::test(flavor = "multi_thread")]
async fn pools_are_listed_as_a_table_and_as_json() {
    let handle = sim::start().await;
    seed_pools(&handle);
    let url = handle.base_url();
    let base = ["--endpoint", &url, "--project-id", PROJECT, "--pools"];
    let output = fetch(&base, &CREDS).await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("POOL "))
        .collect();
    assert_eq!(table.len(), 3, "{stdout}");
    let columns = |line: &str| -> Vec<String> {
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        columns(table[0]),
        ["POOL", "DISPLAY NAME", "PHASE", "TYPE", "NODES", "MESSAGE"]
    );
    assert_eq!(
        columns(table[1]),
        [
            "pool-a",
            "-",
            "Failed",
            "Dedicate",
            "2/2",
            "Insufficient quota"
        ]
    );
    let b = columns(table[2]);
    assert_eq!(
        &b[..5],
        ["pool-b", "training", "Abnormal", "Dedicate", "4/4"]
    );
    assert!(
        b[5].starts_with("2 nodes are NotReady?[2J...") && b[5].chars().count() <= 60,
        "{}",
        b[5]
    );
    assert!(
        !stdout.contains('\u{1b}'),
        "an upstream escape sequence reached the terminal: {stdout:?}"
    );
    assert!(
        stdout.contains("created"),
        "the counts come first: {stdout}"
    );

    let mut json_args = base.to_vec();
    json_args.extend(["--output", "json"]);
    let output = fetch(&json_args, &CREDS).await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    let value: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    assert_eq!(
        value["pools"]["created"], 9,
        "the counts stay where they were: {value}"
    );
    assert_eq!(value["poolsOmitted"], 0);
    let list = value["poolList"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 2, "{value}");
    assert_eq!(
        list[1],
        json!({
            "name": "pool-b", "displayName": "training", "phase": "Abnormal",
            // As sent: JSON escapes the control characters itself (`\u001b`).
            "message": format!("2 nodes are NotReady\u{1b}[2J{}", ".".repeat(200)),
            "poolType": "Dedicate", "created": "2026-11-30T08:00:00Z",
            "flavors": [{"flavor": "modelarts.vm.gpu.8ant8", "count": 4, "maxCount": 8, "available": 4}],
        })
    );
    // Without --pools, no list call at all.
    let before = all(&handle, Api::ListPools);
    let output = fetch(&base[..4], &CREDS).await;
    assert!(output.status.success());
    assert_eq!(all(&handle, Api::ListPools), before);
    assert!(!text(&output).0.contains("POOL "));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_pool_list_keeps_the_counts_and_says_what_to_allow() {
    let handle = sim::start().await;
    seed_pools(&handle);
    handle.inject(Fault::status(403).on(Api::ListPools));
    let url = handle.base_url();
    let output = fetch(
        &[
            "--endpoint",
            &url,
            "--project-id",
            PROJECT,
            "--pools",
            "--output",
            "json",
        ],
        &CREDS,
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let value: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    assert_eq!(value["pools"]["created"], 9, "{value}");
    assert_eq!(value["poolsError"]["reason"], "AccessDenied", "{value}");
    assert!(value.get("poolList").is_none(), "{value}");
    assert!(
        stderr.contains("ListPools") && stderr.contains("modelarts:pool:list"),
        "{stderr}"
    );
    assert_no_secret(&output);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_answer_reaches_the_terminal_without_control_characters() {
    let handle = sim::start().await;
    let url = handle.base_url();
    let hostile = "denied\u{1b}]0;owned\u{7}\u{1b}[2J";
    handle.inject(
        Fault::status(403)
            .error("ModelArts.0204\u{1b}[31m", hostile)
            .on(Api::Statistics)
            .times(1),
    );
    let output = fetch(&["--endpoint", &url, "--project-id", PROJECT], &CREDS).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("error_msg:   denied?]0;owned??[2J"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error_code:  ModelArts.0204?[31m"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\u{7}'),
        "{stderr:?}"
    );

    handle.inject(
        Fault::status(403)
            .error("ModelArts.0204", hostile)
            .on(Api::ListPools),
    );
    let output = fetch(
        &["--endpoint", &url, "--project-id", PROJECT, "--pools"],
        &CREDS,
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("listing the pools failed"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\u{7}'),
        "{stderr:?}"
    );
    assert!(!stdout.contains('\u{1b}'), "{stdout:?}");
}
