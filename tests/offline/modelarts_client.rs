//! The ModelArts client against the in-process simulator: answers, every error class, retries,
//! Retry-After, bounded bodies, the IAM project lookup and secrets kept out of errors and logs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::support::simulator::{self as sim, AK, OTHER_PROJECT, PROJECT, REGION, SK, TOKEN};
use poolwatch::modelarts::{
    ClientConfig, Clock, Credentials, Endpoint, ErrorClass, ModelArtsError, PoolStatistics,
    RequestRecord, RetryPolicy,
};
use poolwatch::simulator::{Api, Fault, FaultKind, RequestFilter, SimulatedCounts};

fn stats_requests(handle: &poolwatch::simulator::SimulatorHandle) -> u64 {
    handle.requests_served(&RequestFilter::api(Api::Statistics))
}

async fn fetch_err(
    client: &poolwatch::modelarts::ModelArtsClient,
    endpoint: &Endpoint,
    creds: &Credentials,
) -> ModelArtsError {
    match client.pool_statistics(endpoint, creds, PROJECT, "0").await {
        Ok(stats) => panic!("expected an error, got {stats:?}"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn pool_statistics_returns_the_counts() {
    let handle = sim::start().await;
    let stats = sim::client()
        .pool_statistics(&handle.endpoint(), &sim::credentials(), PROJECT, "0")
        .await;
    assert_eq!(
        stats,
        Ok(PoolStatistics {
            creating: Some(0),
            created: Some(9),
            failed: Some(0),
            pending: Some(0),
            deleting: Some(1),
            operation_time: Some(sim::OPERATION_TIME.to_owned()),
        })
    );
    assert_eq!(
        handle.requests_served(
            &RequestFilter::api(Api::Statistics)
                .with_project(PROJECT)
                .with_workspace("0")
                .with_status(200)
        ),
        1
    );
}

#[tokio::test]
async fn absent_counts_stay_absent() {
    let handle = sim::start().await;
    let stats = sim::client()
        .pool_statistics(
            &handle.endpoint(),
            &sim::credentials(),
            PROJECT,
            "ws-partial",
        )
        .await;
    let Ok(stats) = stats else {
        panic!("{stats:?}")
    };
    assert_eq!((stats.created, stats.failed), (Some(3), Some(2)));
    assert_eq!(
        (stats.creating, stats.pending, stats.deleting),
        (None, None, None)
    );
}

#[tokio::test]
async fn counts_changed_on_the_simulator_are_seen() {
    let handle = sim::start().await;
    let client = sim::client();
    handle.set_counts(PROJECT, "0", SimulatedCounts::new(1, 10, 2, 0, 0));
    let stats = client
        .pool_statistics(&handle.endpoint(), &sim::credentials(), PROJECT, "0")
        .await;
    assert_eq!(
        stats.map(|s| (s.created, s.failed)),
        Ok((Some(10), Some(2)))
    );
}

#[tokio::test]
async fn temporary_credentials_send_the_security_token() {
    let handle = sim::start().await;
    let stats = sim::client()
        .pool_statistics(
            &handle.endpoint(),
            &sim::temporary_credentials(),
            PROJECT,
            "0",
        )
        .await;
    assert!(stats.is_ok(), "{stats:?}");
    let missing_token = Credentials::new(sim::TEMP_AK, sim::TEMP_SK);
    let err = fetch_err(&sim::client(), &handle.endpoint(), &missing_token).await;
    assert_eq!(err.class(), ErrorClass::AuthenticationFailed, "{err}");
}

#[tokio::test]
async fn no_retry_on_401_for_a_wrong_secret() {
    let handle = sim::start().await;
    let wrong = Credentials::new(AK, "not-the-secret");
    let err = fetch_err(&sim::client(), &handle.endpoint(), &wrong).await;
    assert_eq!(err.class(), ErrorClass::AuthenticationFailed, "{err}");
    assert_eq!(err.reason(), "AuthenticationFailed");
    assert!(err.is_permanent());
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.error_code(), Some("APIGW.0301"));
    assert!(err.request_id().is_some_and(|id| !id.is_empty()));
    assert!(
        err.error_msg()
            .is_some_and(|m| m.contains("verify aksk signature fail")),
        "{err}"
    );
    assert_eq!(err.attempts(), 1);
    assert_eq!(stats_requests(&handle), 1);
}

#[tokio::test]
async fn no_retry_on_injected_401_or_403() {
    let handle = sim::start().await;
    let client = sim::client();
    handle.inject(Fault::status(401).times(1));
    let err = fetch_err(&client, &handle.endpoint(), &sim::credentials()).await;
    assert_eq!(err.class(), ErrorClass::AuthenticationFailed);
    handle.inject(Fault::status(403).times(1));
    let err = fetch_err(&client, &handle.endpoint(), &sim::credentials()).await;
    assert_eq!(err.class(), ErrorClass::AccessDenied, "{err}");
    assert!(err.is_permanent());
    assert_eq!(stats_requests(&handle), 2);
}

#[tokio::test]
async fn unknown_access_key_is_authentication_failed() {
    let handle = sim::start().await;
    let unknown = Credentials::new("UNKNOWNAK0000000000", "whatever");
    let err = fetch_err(&sim::client(), &handle.endpoint(), &unknown).await;
    assert_eq!(err.class(), ErrorClass::AuthenticationFailed, "{err}");
    assert!(err.error_msg().is_some_and(|m| m.contains("ak not exist")));
}

#[tokio::test]
async fn clock_skew_beyond_15_minutes_is_classified_and_not_retried() {
    let handle = sim::start().await;
    let skewed = sim::client_with(ClientConfig {
        clock: Clock::from_fn(|| SystemTime::now() + Duration::from_secs(20 * 60)),
        ..sim::fast_config()
    });
    let err = fetch_err(&skewed, &handle.endpoint(), &sim::credentials()).await;
    assert_eq!(err.class(), ErrorClass::ClockSkew, "{err}");
    assert_eq!(err.reason(), "ClockSkew");
    assert_eq!(stats_requests(&handle), 1);

    let slightly_off = sim::client_with(ClientConfig {
        clock: Clock::from_fn(|| SystemTime::now() - Duration::from_secs(10 * 60)),
        ..sim::fast_config()
    });
    let ok = slightly_off
        .pool_statistics(&handle.endpoint(), &sim::credentials(), PROJECT, "0")
        .await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test]
async fn unknown_project_or_workspace_is_project_not_found() {
    let handle = sim::start().await;
    let client = sim::client();
    let err = client
        .pool_statistics(
            &handle.endpoint(),
            &sim::credentials(),
            "ffffffffffffffffffffffffffffffff",
            "0",
        )
        .await
        .err();
    assert_eq!(
        err.as_ref().map(ModelArtsError::class),
        Some(ErrorClass::ProjectNotFound)
    );
    let err = client
        .pool_statistics(
            &handle.endpoint(),
            &sim::credentials(),
            PROJECT,
            "no-such-ws",
        )
        .await
        .err();
    let Some(err) = err else {
        panic!("unknown workspace must fail")
    };
    assert_eq!(err.class(), ErrorClass::ProjectNotFound);
    assert_eq!(err.error_code(), Some("ModelArts.50015001"));
    assert_eq!(err.status(), Some(404));
    assert_eq!(stats_requests(&handle), 2);
}

#[tokio::test]
async fn api_not_found_is_its_own_class() {
    let handle = sim::start().await;
    handle.inject(Fault::status(404).error(
        "APIGW.0101",
        "The API does not exist or has not been published in the environment",
    ));
    let err = fetch_err(&sim::client(), &handle.endpoint(), &sim::credentials()).await;
    assert_eq!(err.class(), ErrorClass::ApiNotFound, "{err}");
    assert_eq!(err.reason(), "ApiNotFound");
}

#[tokio::test]
async fn throttling_is_retried_then_succeeds() {
    let handle = sim::start().await;
    handle.inject(Fault::status(429).times(2));
    let stats = sim::client()
        .pool_statistics(&handle.endpoint(), &sim::credentials(), PROJECT, "0")
        .await;
    assert!(stats.is_ok(), "{stats:?}");
    assert_eq!(
        handle.requests_served(&RequestFilter::default().with_status(429)),
        2
    );
    assert_eq!(
        handle.requests_served(&RequestFilter::default().with_status(200)),
        1
    );
}

#[tokio::test]
async fn throttling_gives_up_after_the_policy_retries() {
    let handle = sim::start().await;
    handle.inject(Fault::status(429));
    let err = fetch_err(&sim::client(), &handle.endpoint(), &sim::credentials()).await;
    assert_eq!(err.class(), ErrorClass::Throttled);
    assert_eq!(err.error_code(), Some("APIGW.0308"));
    assert_eq!(err.attempts(), 3);
    assert!(!err.is_permanent());
    assert_eq!(stats_requests(&handle), 3);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let handle = sim::start().await;
    handle.inject(Fault::status(429).retry_after("1").times(1));
    let started = Instant::now();
    let stats = sim::client()
        .pool_statistics(&handle.endpoint(), &sim::credentials(), PROJECT, "0")
        .await;
    assert!(stats.is_ok(), "{stats:?}");
    // The backoff alone would be 5–10 ms; the retry waited for Retry-After.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stats_requests(&handle), 2);
}

#[tokio::test]
async fn retry_after_beyond_the_policy_is_returned_not_slept() {
    let handle = sim::start().await;
    handle.inject(Fault::status(429).retry_after("120"));
    let started = Instant::now();
    let err = fetch_err(&sim::client(), &handle.endpoint(), &sim::credentials()).await;
    assert_eq!(err.class(), ErrorClass::Throttled);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(err.attempts(), 1);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(stats_requests(&handle), 1);
}

#[tokio::test]
async fn server_errors_are_retried() {
    let handle = sim::start().await;
    let client = sim::client();
    handle.inject(Fault::status(500).times(1));
    let stats = client
        .pool_statistics(&handle.endpoint(), &sim::credentials(), PROJECT, "0")
        .await;
    assert!(stats.is_ok(), "{stats:?}");
    assert_eq!(stats_requests(&handle), 2);

    handle.reset();
    handle.inject(Fault::status(503));
    let err = fetch_err(&client, &handle.endpoint(), &sim::credentials()).await;
    assert_eq!(err.class(), ErrorClass::UpstreamUnavailable);
    assert_eq!(err.reason(), "UpstreamUnavailable");
    assert_eq!(err.status(), Some(503));
    assert_eq!(stats_requests(&handle), 3);

    handle.reset();
    handle.inject(Fault::status(500));
    let err = fetch_err(&client, &handle.endpoint(), &sim::credentials()).await;
    assert_eq!(err.error_code(), Some("ModelArts.50005000"));
    assert_eq!(err.error_msg(), Some("internal error"));
}

#[tokio::test]
async fn bad_request_is_rejected_without_retry() {
    let handle = sim::start().await;
    handle.inject(Fault::status(400));
    let err = fetch_err(&sim::client(), &handle.endpoint(), &sim::credentials()).await;
    assert_eq!(err.class(), ErrorClass::RequestRejected);
    assert_eq!(err.error_code(), Some("ModelArts.50004000"));
    assert_eq!(stats_requests(&handle), 1);
}

#[tokio::test]
async fn connection_refused_is_a_network_error_and_retried() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0");
    let Ok(port) = listener.and_then(|l| l.local_addr()).map(|a| a.port()) else {
        panic!("could not pick a port")
    };
    let Ok(endpoint) = Endpoint::parse(&format!("http://127.0.0.1:{port}"), false) else {
        panic!("loopback endpoint parses")
    };
    let observed = Arc::new(Mutex::new(Vec::<RequestRecord>::new()));
    let sink = observed.clone();
    let client = sim::client_with(ClientConfig {
        observer: Some(Arc::new(move |r: &RequestRecord| {
            if let Ok(mut v) = sink.lock() {
                v.push(r.clone());
            }
        })),
        ..sim::fast_config()
    });
    let err = fetch_err(&client, &endpoint, &sim::credentials()).await;
    assert_eq!(err.class(), ErrorClass::Network, "{err}");
    assert_eq!(err.reason(), "NetworkError");
    assert_eq!(err.status(), None);
    assert_eq!(err.attempts(), 3);
    let records = observed.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(records.len(), 3);
    assert!(
        records
            .iter()
            .all(|r| r.status.is_none() && r.error_class == Some(ErrorClass::Network))
    );
}

#[tokio::test]
async fn a_hanging_server_times_out() {
    let handle = sim::start().await;
    handle.inject(Fault::new(FaultKind::Hang));
    let client = sim::client_with(ClientConfig {
        request_timeout: Duration::from_millis(300),
        retry: RetryPolicy::none(),
        ..sim::fast_config()
    });
    let err = fetch_err(&client, &handle.endpoint(), &sim::credentials()).await;
    assert_eq!(err.class(), ErrorClass::Timeout, "{err}");
    assert_eq!(err.reason(), "Timeout");
    assert_eq!(
        handle.requests_served(&RequestFilter::default().with_status(0)),
        1
    );
}

#[tokio::test]
async fn latency_below_the_timeout_is_fine() {
    let handle = sim::start().await;
    handle.inject(Fault::new(FaultKind::Latency { millis: 1500 }).times(1));
    let started = Instant::now();
    // The test client's timeout is 5 s: an answer after 1.5 s is waited for, once.
    let stats = sim::client()
        .pool_statistics(&handle.endpoint(), &sim::credentials(), PROJECT, "0")
        .await;
    assert!(stats.is_ok(), "{stats:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the latency was not injected: answered in {:?}",
        started.elapsed()
    );
    assert_eq!(stats_requests(&handle), 1, "no retry");
}

#[tokio::test]
async fn oversized_body_is_invalid_response() {
    let handle = sim::start().await;
    handle.inject(Fault::new(FaultKind::Oversized { bytes: 8 << 20 }));
    let err = fetch_err(&sim::client(), &handle.endpoint(), &sim::credentials()).await;
    assert_eq!(err.class(), ErrorClass::InvalidResponse, "{err}");
    assert!(err.to_string().contains("limit"), "{err}");
    assert_eq!(err.attempts(), 1);
    assert_eq!(stats_requests(&handle), 1);
}

#[tokio::test]
async fn truncated_body_is_invalid_response() {
    let handle = sim::start().await;
    handle.inject(Fault::new(FaultKind::Truncated));
    let err = fetch_err(&sim::client(), &handle.endpoint(), &sim::credentials()).await;
    assert_eq!(err.class(), ErrorClass::InvalidResponse, "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[tokio::test]
async fn non_json_and_wrong_shape_are_invalid_response() {
    let handle = sim::start().await;
    let client = sim::client();
    handle.inject(Fault::new(FaultKind::InvalidJson).times(1));
    let err = fetch_err(&client, &handle.endpoint(), &sim::credentials()).await;
    assert_eq!(err.class(), ErrorClass::InvalidResponse, "{err}");
    assert!(err.to_string().contains("not JSON"), "{err}");
    assert!(err.request_id().is_some());
    handle.inject(Fault::new(FaultKind::WrongShape).times(1));
    let err = fetch_err(&client, &handle.endpoint(), &sim::credentials()).await;
    assert_eq!(err.class(), ErrorClass::InvalidResponse, "{err}");
    assert!(err.to_string().contains("statistics"), "{err}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let handle = sim::start().await;
    let other = sim::start().await;
    handle.inject(Fault::new(FaultKind::Redirect {
        location: format!(
            "{}/v2/{PROJECT}/statistics/pools?workspaceId=0",
            other.base_url()
        ),
    }));
    let err = fetch_err(&sim::client(), &handle.endpoint(), &sim::credentials()).await;
    assert_eq!(err.class(), ErrorClass::InvalidResponse, "{err}");
    assert_eq!(err.status(), Some(302));
    assert!(err.to_string().contains("redirected"), "{err}");
    assert_eq!(other.stats().total, 0);
}

#[tokio::test]
async fn plain_http_to_a_remote_host_is_refused_before_sending() {
    let Ok(endpoint) = Endpoint::parse("http://modelarts-simulator.example:8443", true) else {
        panic!("allowed by the endpoint parser")
    };
    let err = fetch_err(&sim::client(), &endpoint, &sim::credentials()).await;
    assert_eq!(err.class(), ErrorClass::InvalidArgument);
    assert!(err.to_string().contains("allow-http-endpoints"), "{err}");
}

#[tokio::test]
async fn project_ids_with_path_characters_are_refused() {
    let handle = sim::start().await;
    let err = sim::client()
        .pool_statistics(
            &handle.endpoint(),
            &sim::credentials(),
            "../v3/projects",
            "0",
        )
        .await
        .err();
    assert_eq!(err.map(|e| e.class()), Some(ErrorClass::InvalidArgument));
    assert_eq!(handle.stats().total, 0);
}

#[tokio::test]
async fn project_id_is_resolved_through_iam_and_never_cached_by_the_client() {
    let handle = sim::start().await;
    let client = sim::client();
    let iam = handle.endpoint();
    let id = client
        .resolve_project_id(&iam, &sim::credentials(), REGION)
        .await;
    assert_eq!(id.as_deref(), Ok(PROJECT));
    let id = client
        .clone()
        .resolve_project_id(&iam, &sim::credentials(), sim::OTHER_REGION)
        .await;
    assert_eq!(id.as_deref(), Ok(OTHER_PROJECT));
    let id = client
        .resolve_project_id(&iam, &sim::temporary_credentials(), REGION)
        .await;
    assert_eq!(id.as_deref(), Ok(PROJECT));
    // The same question again is asked again: reuse is the caller's decision (the operator's
    // one project-id cache keeps an answer an hour per key fingerprint).
    let id = client
        .resolve_project_id(&iam, &sim::credentials(), REGION)
        .await;
    assert_eq!(id.as_deref(), Ok(PROJECT));
    assert_eq!(handle.requests_served(&RequestFilter::api(Api::Iam)), 4);
}

#[tokio::test]
async fn iam_lookup_errors_are_clear() {
    let handle = sim::start().await;
    let client = sim::client();
    let iam = handle.endpoint();
    let err = client
        .resolve_project_id(&iam, &sim::credentials(), "ap-southeast-3")
        .await
        .err();
    let Some(err) = err else {
        panic!("no project in that region")
    };
    assert_eq!(err.class(), ErrorClass::ProjectNotFound);
    assert!(err.to_string().contains("ap-southeast-3"), "{err}");

    handle.replace_setup(setup_with_duplicate_region());
    let err = client
        .resolve_project_id(&iam, &sim::credentials(), REGION)
        .await
        .err();
    assert_eq!(err.map(|e| e.class()), Some(ErrorClass::AmbiguousProject));

    handle.inject(Fault::status(401).on(Api::Iam).times(1));
    let err = client
        .resolve_project_id(&iam, &sim::credentials(), "cn-east-3")
        .await
        .err();
    let Some(err) = err else {
        panic!("401 must fail")
    };
    assert_eq!(err.class(), ErrorClass::AuthenticationFailed);
    assert!(
        err.to_string().starts_with("IAM refused the access key"),
        "{err}"
    );
}

fn setup_with_duplicate_region() -> poolwatch::simulator::SimulatorSetup {
    let mut setup = sim::setup();
    setup.projects.push(poolwatch::simulator::ProjectConfig {
        id: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb".to_owned(),
        region: Some(REGION.to_owned()),
        ..Default::default()
    });
    setup
}

#[tokio::test]
async fn observer_sees_every_attempt() {
    let handle = sim::start().await;
    handle.inject(Fault::status(429).times(1));
    let observed = Arc::new(Mutex::new(Vec::<RequestRecord>::new()));
    let sink = observed.clone();
    let client = sim::client_with(ClientConfig {
        observer: Some(Arc::new(move |r: &RequestRecord| {
            if let Ok(mut v) = sink.lock() {
                v.push(r.clone());
            }
        })),
        ..sim::fast_config()
    });
    let stats = client
        .pool_statistics(&handle.endpoint(), &sim::credentials(), PROJECT, "0")
        .await;
    assert!(stats.is_ok());
    let records = observed.lock().map(|v| v.clone()).unwrap_or_default();
    let seen: Vec<(Option<u16>, u32)> = records.iter().map(|r| (r.status, r.attempt)).collect();
    assert_eq!(seen, vec![(Some(429), 1), (Some(200), 2)]);
    assert!(
        records
            .iter()
            .all(|r| r.host == handle.endpoint().authority())
    );
}

#[tokio::test]
async fn concurrent_calls_share_one_client() {
    let handle = sim::start().await;
    let client = sim::client();
    let calls = (0..20).map(|_| {
        let client = client.clone();
        let endpoint = handle.endpoint();
        async move {
            client
                .pool_statistics(&endpoint, &sim::credentials(), PROJECT, "0")
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(stats_requests(&handle), 20);
}

/// A `tracing` writer that keeps everything written, to search the log for secrets.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLog {
    type Writer = CapturedLog;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn secrets_never_appear_in_errors_or_logs() {
    let log = CapturedLog::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    // Global, not scoped: a scoped subscriber misses events whose callsites other test threads
    // registered first. The other tests' logs are captured too, and must be as clean.
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        panic!("only this test installs a subscriber");
    }

    let handle = sim::start().await;
    let client = sim::client();
    let endpoint = handle.endpoint();
    let mut texts = Vec::new();
    // The gateway echoes its canonical request, security token included, on a bad signature.
    let wrong_secret = Credentials::new(sim::TEMP_AK, "wrong-secret").with_security_token(TOKEN);
    let wrong_token =
        Credentials::new(sim::TEMP_AK, sim::TEMP_SK).with_security_token("x-token-wrong");
    let cases: Vec<(Credentials, Option<Fault>)> = vec![
        (wrong_secret, None),
        (wrong_token, None),
        (Credentials::new(AK, "also-wrong"), None),
        (
            sim::temporary_credentials(),
            Some(Fault::status(429).times(3)),
        ),
        (
            sim::temporary_credentials(),
            Some(Fault::status(500).times(3)),
        ),
        (
            sim::credentials(),
            Some(Fault::new(FaultKind::Truncated).times(1)),
        ),
        (sim::credentials(), None),
        (sim::temporary_credentials(), None),
    ];
    for (creds, fault) in cases {
        if let Some(fault) = fault {
            handle.inject(fault);
        }
        texts.push(format!("{creds:?} {creds}"));
        match client
            .pool_statistics(&endpoint, &creds, PROJECT, "0")
            .await
        {
            Ok(stats) => texts.push(format!("{stats:?}")),
            Err(e) => texts.push(format!("{e} {e:?}")),
        }
        match client.resolve_project_id(&endpoint, &creds, REGION).await {
            Ok(id) => texts.push(id),
            Err(e) => texts.push(format!("{e} {e:?}")),
        }
    }
    texts.push(format!("{client:?}"));
    let logged = log
        .0
        .lock()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default();
    assert!(
        logged.contains("retrying upstream request"),
        "the log was captured: {logged}"
    );
    texts.push(logged);
    for text in &texts {
        for secret in [SK, sim::TEMP_SK, TOKEN] {
            assert!(!text.contains(secret), "a secret leaked into: {text}");
        }
    }
    assert!(
        texts.iter().any(|t| t.contains("[REDACTED]")),
        "the echoed token was redacted"
    );
}

/// Sends a request signed for `signed_query` but carrying `sent_query`, to check that the
/// simulator verifies what it receives rather than trusting the signature's claims.
async fn send_tampered(base_url: &str, signed_query: &str, sent_query: &str) -> u16 {
    use poolwatch::modelarts::signer::{self, RequestToSign, SdkDate};
    let authority = base_url.trim_start_matches("http://").to_owned();
    let path = format!("/v2/{PROJECT}/statistics/pools");
    let signed = signer::sign(
        &RequestToSign {
            method: "GET",
            host: &authority,
            path: &path,
            query: &[("workspaceId", signed_query)],
            headers: &[("X-Project-Id", PROJECT)],
            body: b"",
        },
        &sim::credentials(),
        SdkDate::from_system_time(SystemTime::now()),
    );
    let mut request =
        reqwest::Client::new().get(format!("{base_url}{path}?workspaceId={sent_query}"));
    for (name, value) in &signed.headers {
        if !name.eq_ignore_ascii_case("host") {
            request = request.header(name.as_str(), value.as_str());
        }
    }
    match request.send().await {
        Ok(response) => response.status().as_u16(),
        Err(e) => panic!("the simulator did not answer: {e}"),
    }
}

#[tokio::test]
async fn simulator_verifies_what_it_receives() {
    let handle = sim::start().await;
    handle.set_counts(PROJECT, "1", SimulatedCounts::default());
    assert_eq!(send_tampered(&handle.base_url(), "0", "0").await, 200);
    assert_eq!(send_tampered(&handle.base_url(), "0", "1").await, 401);
    assert_eq!(
        handle.requests_served(&RequestFilter::default().with_status(401)),
        1
    );
}

#[tokio::test]
async fn megabyte_strings_in_answers_are_cut_or_refused_never_kept_whole() {
    let handle = sim::start().await;
    let client = sim::client_with(ClientConfig {
        retry: RetryPolicy::none(),
        ..sim::fast_config()
    });
    let (endpoint, credentials) = (handle.endpoint(), sim::credentials());
    let fetch = || client.pool_statistics(&endpoint, &credentials, PROJECT, "0");
    // An operationTime the client reads is cut; the counts are kept.
    handle.inject(Fault::new(FaultKind::LongOperationTime { bytes: 15_000 }).times(1));
    let stats = fetch().await.expect("the counts");
    assert_eq!(stats.created, Some(9));
    let time = stats.operation_time.unwrap_or_default();
    assert!(
        time.len() <= 128 && time.starts_with(sim::OPERATION_TIME),
        "{time}"
    );
    // An answer longer than the client reads is refused, quoting nothing of it.
    handle.inject(Fault::new(FaultKind::LongOperationTime { bytes: 1_000_000 }).times(1));
    let err = fetch().await.expect_err("too long to read");
    assert_eq!(err.class(), ErrorClass::InvalidResponse, "{err}");
    assert!(err.to_string().len() < 1024, "{err}");
    // An error's code, message and request id are cut.
    handle.inject(
        Fault::new(FaultKind::LongError {
            status: 400,
            code_bytes: 9_000,
            msg_bytes: 2_000,
        })
        .times(1),
    );
    let err = fetch().await.expect_err("an error answer");
    assert_eq!(err.class(), ErrorClass::RequestRejected, "{err}");
    assert!(
        err.error_code()
            .is_some_and(|c| c.len() <= 64 && c.starts_with("ModelArts.50004000")),
        "{err}"
    );
    assert!(err.error_msg().is_some_and(|m| m.len() <= 512), "{err}");
    assert!(err.request_id().is_some_and(|id| id.len() <= 128), "{err}");
    assert!(
        err.to_string().len() < 2048,
        "{} bytes",
        err.to_string().len()
    );
}
