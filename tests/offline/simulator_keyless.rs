//! The simulator's keyless-credential side checked by an independent client: Huawei Cloud's
//! official Python SDK (`huaweicloudsdkcore`'s `FederalAccessor`, `PodIdentityAccessor` and
//! `MetadataAccessor`, driven by `tests/signing/keyless_sdk.py`) gets temporary credentials from
//! the simulator's IAM federation, Pod Identity and ECS metadata endpoints on its own and reads
//! pool statistics with them; and, on the Rust side, issued credentials stop working when they
//! expire.
//!
//! Needs the SDK that `make python-tools` installs; `make test` exports its interpreter as
//! `POOLWATCH_PYTHON`. Without it the tests fail and say so: they are never skipped.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::control_plane::repo_path;
use crate::support::jwt::{self, SigningKey};
use crate::support::scratch::Scratch;
use crate::support::simulator::{
    self as sim, CLIENT_ID, FEDERATED_SUBJECT, IDP_ID, ISSUER, OTHER_PROJECT, OTHER_REGION,
    POD_IDENTITY_TOKEN, PROJECT,
};
use poolwatch::modelarts::ErrorClass;
use poolwatch::simulator::{Api, RequestFilter, SimulatorConfig, SimulatorHandle};
use serde_json::{Value, json};

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

/// Credential settings of the process environment that would change which way the SDK finds
/// credentials; every scenario sets what it needs itself.
const SDK_ENVIRONMENT: &[&str] = &[
    "HUAWEICLOUD_SDK_AK",
    "HUAWEICLOUD_SDK_SK",
    "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    "HUAWEICLOUD_SDK_PROJECT_ID",
    "HUAWEICLOUD_SDK_DOMAIN_ID",
    "HUAWEICLOUD_SDK_IDP_ID",
    "HUAWEICLOUD_SDK_ID_TOKEN_FILE",
    "HUAWEICLOUD_SDK_IAM_ENDPOINT",
    "HUAWEICLOUD_SDK_CREDENTIALS_FILE",
    "HUAWEICLOUD_OIDC_PROVIDER_URN",
    "HUAWEICLOUD_OIDC_AGENCY_URN",
    "HUAWEICLOUD_OIDC_ID_TOKEN",
    "HUAWEICLOUD_OIDC_TOKEN_FILE",
    "HC_CONTAINER_CREDENTIALS_FULL_URI",
    "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];

/// Runs one scenario of `tests/signing/keyless_sdk.py` against `handle` with `env` and returns
/// its results by name.
async fn run_sdk(handle: &SimulatorHandle, scenario: &str, env: &[(&str, String)]) -> Value {
    let mut command = Command::new(python());
    command
        .arg(repo_path("tests/signing/keyless_sdk.py"))
        .arg(scenario);
    for name in SDK_ENVIRONMENT {
        command.env_remove(name);
    }
    command
        .env("SIM_URL", handle.base_url())
        .env("SIM_PROJECT", PROJECT)
        .env("SIM_OTHER_PROJECT", OTHER_PROJECT)
        .env("SIM_OTHER_REGION", OTHER_REGION)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    for (name, value) in env {
        command.env(name, value);
    }
    let program = format!("{scenario} of tests/signing/keyless_sdk.py");
    let output = match tokio::task::spawn_blocking(move || command.output()).await {
        Ok(Ok(output)) => output,
        other => panic!("could not run {program}: {other:?}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{program} failed (is the SDK installed? `make python-tools`):\n{stderr}"
    );
    let results: Value = match serde_json::from_str(stdout.trim()) {
        Ok(value) => value,
        Err(e) => panic!("{program} printed no JSON ({e}):\n{stdout}\n{stderr}"),
    };
    let mut by_name = serde_json::Map::new();
    for result in results["results"].as_array().into_iter().flatten() {
        if let Some(name) = result["name"].as_str() {
            by_name.insert(name.to_owned(), result.clone());
        }
    }
    Value::Object(by_name)
}

/// Counts of workspace 0 and the status, for comparing in one assertion.
fn counts(result: &Value) -> Value {
    json!([
        result["ok"],
        result["httpStatus"],
        result["creating"],
        result["created"],
        result["failed"],
        result["pending"]
    ])
}

/// Requests to `api` answered with `status`.
fn served(handle: &SimulatorHandle, api: Api, status: u16) -> u64 {
    handle.requests_served(&RequestFilter::api(api).with_status(status))
}

/// Requests to `api`, whatever the answer.
fn all(handle: &SimulatorHandle, api: Api) -> u64 {
    handle.requests_served(&RequestFilter::api(api))
}

/// Asserts that nothing in `text` is one of the secrets the test handed out.
fn assert_no_secret(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "a secret leaked into: {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn official_sdk_federates_service_account_tokens_into_temporary_credentials() {
    let key = SigningKey::generate("sa-key-1");
    let handle = sim::start_with(SimulatorConfig::new(sim::keyless_setup(&key))).await;
    let scratch = Scratch::new("federation");
    let token = sim::id_token(&key, FEDERATED_SUBJECT);
    let narrow_token = sim::id_token(&key, "system:serviceaccount:team-a:other-reader");
    let env = [
        ("HUAWEICLOUD_SDK_IDP_ID", IDP_ID.to_owned()),
        (
            "HUAWEICLOUD_SDK_ID_TOKEN_FILE",
            scratch.file("token", &token),
        ),
        ("HUAWEICLOUD_SDK_IAM_ENDPOINT", handle.base_url()),
        ("HUAWEICLOUD_SDK_PROJECT_ID", PROJECT.to_owned()),
        (
            "SIM_NARROW_TOKEN_FILE",
            scratch.file("narrow", &narrow_token),
        ),
    ];
    let results = run_sdk(&handle, "federation", &env).await;

    // The default provider chain, from the environment: two calls, one federation.
    let environment = &results["environment"];
    assert_eq!(
        counts(environment),
        json!([true, 200, 0, 9, 0, 0]),
        "{results}"
    );
    assert_eq!(environment["accessor"], json!("FederalAccessor"));
    assert_eq!(environment["hasSecurityToken"], json!(true));
    // The project resolved through IAM's project lookup, signed with the issued credentials.
    let resolved = &results["iam_resolved_project"];
    assert_eq!(
        counts(resolved),
        json!([true, 200, 1, 2, 3, 4]),
        "{results}"
    );
    assert_eq!(resolved["projectId"], json!(OTHER_PROJECT));
    // A subject whose rules do not allow the project: valid credentials, ModelArts says no.
    let narrow = &results["not_allowed_project"];
    assert_eq!(
        json!([narrow["httpStatus"], narrow["errorCode"]]),
        json!([403, "ModelArts.0204"]),
        "{results}"
    );
    assert!(
        narrow["errorMsg"]
            .as_str()
            .is_some_and(|m| m.contains("team-a:other-reader") && m.contains(OTHER_PROJECT)),
        "{narrow}"
    );

    // The simulator's own account: three federations, each an IAM token then credentials.
    assert_eq!(served(&handle, Api::IdToken, 201), 3);
    assert_eq!(all(&handle, Api::IdToken), 3);
    assert_eq!(served(&handle, Api::SecurityToken, 201), 3);
    assert_eq!(all(&handle, Api::SecurityToken), 3);
    assert_eq!(served(&handle, Api::Iam, 200), 1);
    assert_eq!(served(&handle, Api::Statistics, 200), 3);
    assert_eq!(served(&handle, Api::Statistics, 403), 1);
    assert_eq!(handle.stats().by_status.get(&401), None);
    // Recorded like every other request, User-Agent included.
    let stats = handle.stats();
    assert!(
        stats
            .requests
            .iter()
            .filter(|r| r.key.api == Api::IdToken)
            .all(|r| r.key.user_agent.is_some()),
        "{stats:?}"
    );
    assert_eq!(stats.by_api.get("idToken"), Some(&3));
    assert_no_secret(&results.to_string(), &[&token, &narrow_token]);
}

#[tokio::test(flavor = "multi_thread")]
async fn official_sdk_refuses_to_federate_a_token_for_another_audience() {
    let key = SigningKey::generate("sa-key-1");
    let handle = sim::start_with(SimulatorConfig::new(sim::keyless_setup(&key))).await;
    let scratch = Scratch::new("audience");
    let token = key.sign(&jwt::claims(
        ISSUER,
        "https://kubernetes.default.svc",
        FEDERATED_SUBJECT,
        Duration::from_secs(600),
    ));
    let env = [
        ("HUAWEICLOUD_SDK_IDP_ID", IDP_ID.to_owned()),
        (
            "HUAWEICLOUD_SDK_ID_TOKEN_FILE",
            scratch.file("token", &token),
        ),
        ("HUAWEICLOUD_SDK_IAM_ENDPOINT", handle.base_url()),
        ("HUAWEICLOUD_SDK_PROJECT_ID", PROJECT.to_owned()),
    ];
    let results = run_sdk(&handle, "wrong_audience", &env).await;
    let refused = &results["wrong_audience"];
    assert_eq!(
        json!([refused["ok"], refused["httpStatus"], refused["errorCode"]]),
        json!([false, 401, 401]),
        "{results}"
    );
    assert_eq!(
        refused["errorMsg"],
        json!("the id_token's audience is not the identity provider's client id")
    );
    assert_no_secret(&results.to_string(), &[&token]);
    assert_eq!(served(&handle, Api::IdToken, 401), 1);
    assert_eq!(all(&handle, Api::SecurityToken), 0);
    assert_eq!(all(&handle, Api::Statistics), 0);
    // The audience it was issued for is what the simulator was configured with.
    assert_ne!(CLIENT_ID, "https://kubernetes.default.svc");
}

#[tokio::test(flavor = "multi_thread")]
async fn official_sdk_gets_pod_identity_credentials() {
    let key = SigningKey::generate("sa-key-1");
    let handle = sim::start_with(SimulatorConfig::new(sim::keyless_setup(&key))).await;
    let scratch = Scratch::new("pod-identity");
    let env = [
        (
            "HC_CONTAINER_CREDENTIALS_FULL_URI",
            format!("{}/v1/pod-identity/credentials", handle.base_url()),
        ),
        (
            "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            scratch.file("token", POD_IDENTITY_TOKEN),
        ),
        (
            "SIM_WRONG_TOKEN_FILE",
            scratch.file("wrong", "not-the-agent-token"),
        ),
    ];
    let results = run_sdk(&handle, "pod_identity", &env).await;
    let pod = &results["pod_identity"];
    assert_eq!(counts(pod), json!([true, 200, 0, 9, 0, 0]), "{results}");
    assert_eq!(pod["accessor"], json!("PodIdentityAccessor"));
    let wrong = &results["wrong_token"];
    assert_eq!(wrong["ok"], json!(false), "{results}");
    assert!(
        wrong["sdkError"]
            .as_str()
            .is_some_and(|e| e.contains("401")),
        "{wrong}"
    );
    assert_no_secret(&results.to_string(), &[POD_IDENTITY_TOKEN]);

    assert_eq!(served(&handle, Api::PodIdentity, 200), 1);
    assert_eq!(served(&handle, Api::PodIdentity, 401), 1);
    assert_eq!(served(&handle, Api::Statistics, 200), 1);
    assert_eq!(all(&handle, Api::IdToken) + all(&handle, Api::Metadata), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn official_sdk_gets_ecs_metadata_credentials_with_a_session_token() {
    let key = SigningKey::generate("sa-key-1");
    let handle = sim::start_with(SimulatorConfig::new(sim::keyless_setup(&key))).await;
    let results = run_sdk(&handle, "metadata", &[]).await;
    let metadata = &results["metadata"];
    assert_eq!(
        counts(metadata),
        json!([true, 200, 0, 9, 0, 0]),
        "{results}"
    );
    assert_eq!(metadata["accessor"], json!("MetadataAccessor"));
    // The metadata credentials may read PROJECT alone.
    let other = &results["metadata_other_project"];
    assert_eq!(
        json!([other["httpStatus"], other["errorCode"]]),
        json!([403, "ModelArts.0204"]),
        "{results}"
    );

    // One session token and one securitykey read per provider (each has its own accessor).
    assert_eq!(served(&handle, Api::MetadataToken, 200), 2);
    assert_eq!(served(&handle, Api::Metadata, 200), 2);
    assert_eq!(served(&handle, Api::Metadata, 401), 0);
    assert_eq!(served(&handle, Api::Statistics, 200), 1);
    assert_eq!(served(&handle, Api::Statistics, 403), 1);
}

#[tokio::test]
async fn issued_credentials_stop_working_when_they_expire() {
    const TTL: Duration = Duration::from_secs(3);
    let key = SigningKey::generate("sa-key-1");
    let mut setup = sim::keyless_setup(&key);
    setup.temporary_credentials_ttl = Some(TTL);
    let handle = sim::start_with(SimulatorConfig::new(setup)).await;
    let client = sim::client();
    let endpoint = handle.endpoint();

    let before = Instant::now();
    let issued = match sim::federate(
        &handle,
        IDP_ID,
        &sim::id_token(&key, FEDERATED_SUBJECT),
        3600,
    )
    .await
    {
        Ok(issued) => issued,
        Err(refusal) => panic!("federation refused: {refusal:?}"),
    };
    let credentials = issued.credentials();
    let stats = client
        .pool_statistics(&endpoint, &credentials, PROJECT, "0")
        .await;
    assert!(
        stats.as_ref().is_ok_and(|s| s.created == Some(9)),
        "{stats:?}"
    );

    // Poll until the credentials are refused; they must not be before the TTL has passed.
    let deadline = before + TTL + Duration::from_secs(15);
    let refused = loop {
        match client
            .pool_statistics(&endpoint, &credentials, PROJECT, "0")
            .await
        {
            Ok(_) => {
                assert!(Instant::now() < deadline, "still accepted after {TTL:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => break e,
        }
    };
    assert!(
        before.elapsed() >= TTL,
        "refused after {:?}: {refused}",
        before.elapsed()
    );
    assert_eq!(refused.status(), Some(401), "{refused}");
    assert_eq!(refused.error_code(), Some("APIGW.0301"));
    // Told apart from a wrong key or clock, so that the operator renews instead of giving up.
    assert_eq!(refused.class(), ErrorClass::TemporaryCredentialsExpired);
    let msg = refused.error_msg().unwrap_or_default().to_ascii_lowercase();
    assert!(msg.contains("security token has expired"), "{msg}");
    for clock_words in ["x-sdk-date", "request time", "timestamp"] {
        assert!(!msg.contains(clock_words), "{msg}");
    }
    assert_no_secret(
        &format!("{refused} {refused:?}"),
        &[&issued.secret_access_key, &issued.security_token],
    );
    assert_eq!(
        handle.requests_served(
            &RequestFilter::api(Api::Statistics)
                .with_status(401)
                .with_project(PROJECT)
        ),
        1
    );

    // Pod Identity credentials may read both projects; a wrong agent token gets none.
    let refusal = sim::pod_identity(&handle, "wrong").await;
    assert_eq!(refusal.as_ref().map_err(|r| r.status).err(), Some(401));
    let pod = match sim::pod_identity(&handle, POD_IDENTITY_TOKEN).await {
        Ok(pod) => pod,
        Err(refusal) => panic!("Pod Identity refused: {refusal:?}"),
    };
    let other = client
        .pool_statistics(&endpoint, &pod.credentials(), OTHER_PROJECT, "0")
        .await;
    assert!(other.is_ok(), "{other:?}");
}

#[tokio::test]
async fn federation_refusals_name_the_check_that_failed() {
    let key = SigningKey::generate("sa-key-1");
    let stranger_key = SigningKey::generate("sa-key-1");
    let handle = sim::start_with(SimulatorConfig::new(sim::keyless_setup(&key))).await;
    let claims = |audience: &str, subject: &str, lifetime: u64| {
        jwt::claims(ISSUER, audience, subject, Duration::from_secs(lifetime))
    };
    let cases = [
        (
            "unknown idp",
            "another-idp",
            key.sign(&claims(CLIENT_ID, FEDERATED_SUBJECT, 600)),
            404,
            "another-idp",
        ),
        (
            "forged signature",
            IDP_ID,
            stranger_key.sign(&claims(CLIENT_ID, FEDERATED_SUBJECT, 600)),
            401,
            "signature",
        ),
        (
            "wrong audience",
            IDP_ID,
            key.sign(&claims("sts", FEDERATED_SUBJECT, 600)),
            401,
            "audience",
        ),
        (
            "expired",
            IDP_ID,
            key.sign(&jwt::claims(
                ISSUER,
                CLIENT_ID,
                FEDERATED_SUBJECT,
                Duration::ZERO,
            )),
            401,
            "expired",
        ),
        (
            "wrong issuer",
            IDP_ID,
            key.sign(&jwt::claims(
                "https://other-cluster",
                CLIENT_ID,
                FEDERATED_SUBJECT,
                Duration::from_secs(600),
            )),
            401,
            "issuer",
        ),
        (
            "unmapped subject",
            IDP_ID,
            key.sign(&claims(
                CLIENT_ID,
                "system:serviceaccount:team-b:reader",
                600,
            )),
            403,
            "team-b:reader",
        ),
    ];
    for (name, idp, token, status, named) in cases {
        let refusal = match sim::federate(&handle, idp, &token, 3600).await {
            Ok(issued) => panic!("{name}: federated as {issued:?}"),
            Err(refusal) => refusal,
        };
        assert_eq!(refusal.status, status, "{name}: {refusal:?}");
        assert_eq!(refusal.body["error"]["code"], json!(status), "{name}");
        let message = refusal.body["error"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains(named), "{name}: {message}");
        assert_no_secret(&refusal.body.to_string(), &[&token]);
    }
    assert_eq!(all(&handle, Api::IdToken), 6);
    assert_eq!(all(&handle, Api::SecurityToken), 0);
}
