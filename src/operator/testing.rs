//! Fixtures for the operator's unit tests: watches built in one line, a scripted Kubernetes API
//! server that records every request and answers as a cluster would, and a [`Context`] wired to
//! it and to an in-process simulator.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::client::Body;
use kube::runtime::events::Reporter;
use serde_json::{Value, json};

use crate::api::{PoolStatisticsWatch, PoolStatisticsWatchSpec};
use crate::lock::lock;
use crate::modelarts::{ClientConfig, ModelArtsClient};
use crate::simulator::{
    DEMO_ACCESS_KEY_ID, DEMO_PROJECT_ID, DEMO_SECRET_ACCESS_KEY, Simulator, SimulatorConfig,
    SimulatorHandle, SimulatorSetup,
};

use super::context::{Context, Settings};
use super::keyless::{AllowedNamespaces, OperatorIdentitySettings};
use super::metrics::Metrics;
use super::trust::EndpointPolicy;
use super::upstream::Limits;

/// The namespace of every test watch.
pub const NAMESPACE: &str = "team";
/// The name of every test watch.
pub const NAME: &str = "pools";
/// The name of the test watch's Secret.
pub const SECRET: &str = "creds";

impl PoolStatisticsWatch {
    /// A watch of the simulator's demo project, workspace `0`, every 30 s, generation 1.
    pub fn test(simulator: &SimulatorHandle) -> Self {
        let spec: PoolStatisticsWatchSpec = serde_json::from_value(json!({
            "endpoint": simulator.base_url(),
            "projectId": DEMO_PROJECT_ID,
            "interval": "30s",
            "credentialsSecretRef": {"name": SECRET},
        }))
        .expect("a valid spec");
        let mut watch = Self::new(NAME, spec);
        watch.metadata.namespace = Some(NAMESPACE.to_owned());
        watch.metadata.generation = Some(1);
        watch.metadata.resource_version = Some("1".to_owned());
        watch
    }

    /// With `spec.suspend`.
    pub fn suspended(mut self) -> Self {
        self.spec.suspend = true;
        self
    }

    /// With the refresh annotation set to `token`.
    pub fn refresh_requested(mut self, token: &str) -> Self {
        self.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(
                super::reconciler::REFRESH_ANNOTATION.to_owned(),
                token.to_owned(),
            );
        self
    }

    /// With `status`.
    pub fn with_status(mut self, status: crate::api::PoolStatisticsWatchStatus) -> Self {
        self.status = Some(status);
        self
    }
}

/// One request the API server received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `GET`, `PATCH`, `POST`.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The JSON body; `null` without one.
    pub body: Value,
}

impl Recorded {
    /// `METHOD path`, for compact assertions.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// How the scripted API server answers.
#[derive(Clone, Debug)]
pub struct Script {
    /// The Secret's `resourceVersion`; `None`: the Secret does not exist.
    pub secret_version: Option<String>,
    /// The status code of status patches (200: accepted).
    pub status_patch: u16,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            secret_version: Some("7".to_owned()),
            status_patch: 200,
        }
    }
}

/// The API server's paths the reconciler uses.
pub const STATUS_PATH: &str =
    "/apis/poolwatch.io/v1alpha1/namespaces/team/poolstatisticswatches/pools/status";
/// The Secret's path.
pub const SECRET_PATH: &str = "/api/v1/namespaces/team/secrets/creds";
/// Where events are created.
pub const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/team/events";

/// A scripted API server: records every request, answers by [`Script`].
#[derive(Clone, Default)]
pub struct ApiServer {
    requests: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<Script>>,
}

impl ApiServer {
    /// A client whose every request this server answers.
    pub fn start(&self) -> kube::Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = self.clone();
        tokio::spawn(async move {
            while let Some((request, reply)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let recorded = Recorded {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                };
                let (status, answer) = server.answer(&recorded);
                lock(&server.requests).push(recorded);
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(answer.to_string().into_bytes()))
                    .expect("a response");
                reply.send_response(response);
            }
        });
        kube::Client::new(service, NAMESPACE)
    }

    /// Changes how the server answers from now on.
    pub fn script(&self, change: impl FnOnce(&mut Script)) {
        change(&mut lock(&self.script));
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.requests).clone()
    }

    /// `METHOD path` of every request so far.
    pub fn lines(&self) -> Vec<String> {
        self.requests().iter().map(Recorded::line).collect()
    }

    /// The bodies of the status patches so far.
    pub fn status_patches(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "PATCH" && r.path == STATUS_PATH)
            .map(|r| r.body)
            .collect()
    }

    /// The reasons of the events created so far.
    pub fn event_reasons(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path == EVENTS_PATH)
            .map(|r| r.body["reason"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn answer(&self, request: &Recorded) -> (StatusCode, Value) {
        let script = lock(&self.script).clone();
        let status = |code: u16, reason: &str| {
            let code = StatusCode::from_u16(code).expect("a status code");
            let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                              "reason": reason, "code": code.as_u16(), "message": reason});
            (code, body)
        };
        match (request.method.as_str(), request.path.as_str()) {
            ("PATCH", STATUS_PATH) if script.status_patch == 200 => {
                // The object after the patch; the reconciler reads nothing of it but its shape.
                let mut watch = request.body.clone();
                watch["metadata"] = json!({"name": NAME, "namespace": NAMESPACE});
                watch["spec"] = json!({"credentialsSecretRef": {"name": SECRET}});
                (StatusCode::OK, watch)
            }
            ("PATCH", STATUS_PATH) => status(script.status_patch, "InternalError"),
            ("GET", SECRET_PATH) => match &script.secret_version {
                Some(version) => (StatusCode::OK, secret(version)),
                None => status(404, "NotFound"),
            },
            ("POST", EVENTS_PATH) => (StatusCode::CREATED, request.body.clone()),
            ("PATCH", path) if path.starts_with(EVENTS_PATH) => {
                (StatusCode::OK, request.body.clone())
            }
            _ => status(404, "NotFound"),
        }
    }
}

/// The demo key as a Secret of `version`.
fn secret(version: &str) -> Value {
    use base64::Engine;
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": NAMESPACE, "resourceVersion": version},
        "data": {"accessKeyId": encode(DEMO_ACCESS_KEY_ID), "secretAccessKey": encode(DEMO_SECRET_ACCESS_KEY)},
    })
}

/// A reconcile context on the scripted API server and an in-process simulator (the demo setup).
pub struct Fixture {
    /// The scripted API server.
    pub api: ApiServer,
    /// The simulator standing in for ModelArts.
    pub simulator: SimulatorHandle,
    /// What reconciles share.
    pub context: Arc<Context>,
}

impl Fixture {
    /// A fixture whose upstream budget allows `rate` calls per second (burst 1 when `rate` is 1).
    pub async fn with_rate(rate: u32) -> Self {
        let api = ApiServer::default();
        let client = api.start();
        let simulator = Simulator::start(SimulatorConfig::new(SimulatorSetup::demo()))
            .await
            .expect("the simulator starts");
        let rate = NonZeroU32::new(rate).expect("a positive rate");
        let settings = Settings {
            endpoints: EndpointPolicy::default(),
            limits: Limits {
                concurrency: NonZeroU32::new(8).expect("8"),
                rate_per_second: rate,
                burst: rate,
            },
            namespace_concurrency: NonZeroU32::new(16).expect("16"),
            reporter: Reporter {
                controller: "poolwatch".to_owned(),
                instance: Some("test".to_owned()),
            },
            operator_identity: OperatorIdentitySettings {
                namespaces: AllowedNamespaces::None,
                pod_identity: None,
                metadata_endpoint: simulator.endpoint(),
            },
        };
        let modelarts = ModelArtsClient::new(ClientConfig::default()).expect("a client");
        let context = Context::new(client, modelarts, Arc::new(Metrics::default()), settings);
        Self {
            api,
            simulator,
            context: Arc::new(context),
        }
    }

    /// A fixture with a budget that never runs out in a test.
    pub async fn new() -> Self {
        Self::with_rate(1000).await
    }
}
