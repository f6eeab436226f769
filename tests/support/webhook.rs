//! Status writes the API server itself answers with an error: a validating admission webhook,
//! registered with the real API server for `poolstatisticswatches/status` in one namespace,
//! that refuses the next writes with chosen codes (500, 409) and allows the rest.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use poolwatch::simulator::TlsListener;
use serde_json::{Value, json};

use super::control_plane::{TestNamespace, run};
use super::faults::TestPki;
use super::operator::eventually;

#[derive(Default)]
struct Plan {
    /// Codes to refuse the next real writes with, in order.
    refusals: VecDeque<u16>,
    /// Real (not dry-run) writes refused so far.
    refused: usize,
    /// Dry-run reviews seen: the API server calls the webhook.
    dry_runs: usize,
}

/// The webhook, registered for one namespace; unregistered when dropped.
pub struct StatusWriteFaults {
    plan: Arc<Mutex<Plan>>,
    configuration: String,
    kubectl: std::process::Command,
    server: tokio::task::JoinHandle<()>,
}

impl StatusWriteFaults {
    /// Serves the webhook, registers it for status writes in `namespace` and waits until the
    /// API server calls it (a dry-run write of watch `watch`'s status, which must exist).
    pub async fn install(namespace: &TestNamespace, watch: &str) -> Self {
        let pki = TestPki::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook");
        let port = listener.local_addr().expect("an address").port();
        let config = pki.server.server_config().expect("the webhook's TLS");
        let listener = TlsListener::new(listener, config).expect("the webhook listens");
        let plan = Arc::new(Mutex::new(Plan::default()));
        let app = Router::new()
            .route("/validate", post(review))
            .with_state(Arc::clone(&plan));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let configuration = format!("poolwatch-test-status-faults-{}", namespace.name);
        let manifest = json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": configuration},
            "webhooks": [{
                "name": "status-faults.test.poolwatch.io",
                "clientConfig": {
                    "url": format!("https://127.0.0.1:{port}/validate"),
                    "caBundle": STANDARD.encode(&pki.ca_pem),
                },
                "rules": [{
                    "apiGroups": ["poolwatch.io"],
                    "apiVersions": ["*"],
                    "operations": ["UPDATE"],
                    "resources": ["poolstatisticswatches/status"],
                    "scope": "Namespaced",
                }],
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": namespace.name},
                },
                // Only this test's namespace, and never in anyone's way if the test dies.
                "failurePolicy": "Ignore",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5,
            }],
        });
        let path = std::env::temp_dir().join(format!("{configuration}.json"));
        std::fs::write(&path, manifest.to_string()).expect("write the webhook manifest");
        run(namespace
            .control_plane
            .kubectl()
            .args(["apply", "-f"])
            .arg(&path))
        .unwrap_or_else(|e| panic!("registering the webhook: {e}"));
        let _ = std::fs::remove_file(&path);

        let faults = Self {
            plan,
            configuration,
            kubectl: namespace.control_plane.kubectl(),
            server,
        };
        // The API server picks new webhook configurations up within a second or so.
        eventually(
            "the API server to call the webhook",
            Duration::from_secs(30),
            || {
                let kubectl = namespace.kubectl();
                let plan = Arc::clone(&faults.plan);
                let watch = watch.to_owned();
                async move {
                    let mut kubectl = kubectl;
                    let _ = run(kubectl.args([
                        "patch",
                        "psw",
                        &watch,
                        "--subresource=status",
                        "--type=merge",
                        "--patch={}",
                        "--dry-run=server",
                    ]));
                    (plan.lock().unwrap().dry_runs > 0).then_some(())
                }
            },
        )
        .await;
        faults
    }

    /// Refuses the next real status writes, one per code, in order.
    pub fn refuse_next(&self, codes: &[u16]) {
        self.plan.lock().unwrap().refusals.extend(codes);
    }

    /// Real status writes refused so far.
    pub fn refused(&self) -> usize {
        self.plan.lock().unwrap().refused
    }
}

impl Drop for StatusWriteFaults {
    fn drop(&mut self) {
        let _ = self
            .kubectl
            .args([
                "delete",
                "validatingwebhookconfiguration",
                &self.configuration,
            ])
            .output();
        self.server.abort();
    }
}

/// Answers one AdmissionReview: a dry run is allowed and counted; a real write is refused with
/// the next planned code, if any.
async fn review(State(plan): State<Arc<Mutex<Plan>>>, Json(review): Json<Value>) -> Json<Value> {
    let request = &review["request"];
    let mut plan = plan.lock().unwrap();
    let refusal = if request["dryRun"] == true {
        plan.dry_runs += 1;
        None
    } else {
        plan.refusals.pop_front()
    };
    if refusal.is_some() {
        plan.refused += 1;
    }
    let response = match refusal {
        None => json!({"uid": request["uid"], "allowed": true}),
        Some(code) => json!({
            "uid": request["uid"],
            "allowed": false,
            "status": {"code": code, "message": format!("injected by the test: {code}")},
        }),
    };
    Json(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    }))
}
