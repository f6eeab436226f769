//! Reading an operator's `/metrics` as Prometheus does: with the token of a ServiceAccount bound
//! to the chart's metrics-reader ClusterRole (from the TokenRequest API), over HTTPS that trusts
//! the operator's certificate. Every metrics check of the tests goes through here, so through the
//! operator's real TokenReview and SubjectAccessReview.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

use super::control_plane::{repo_path, run};
use super::faults::{TestPki, scratch_dir};

/// The namespace of the test readers' ServiceAccounts.
pub const READERS_NAMESPACE: &str = "poolwatch-metrics-readers";
/// The ServiceAccount bound to the chart's reader ClusterRole.
pub const READER: &str = "reader";
/// A ServiceAccount bound to nothing: its token is valid, and reads nothing.
pub const UNAUTHORISED: &str = "not-a-reader";
/// The release the reader ClusterRole is rendered as (its name: `<release>-metrics-reader`).
const RELEASE: &str = "poolwatch-tests";

/// How a client trusts the operator's certificate.
#[derive(Clone, Debug)]
pub enum Trust {
    /// Plain HTTP (`--metrics-secure=false`).
    Plain,
    /// HTTPS with a certificate this CA (PEM) signed.
    Ca(String),
    /// HTTPS with the operator's self-signed certificate, which no CA vouches for: verification
    /// skipped, as the chart's ServiceMonitor does by default (`insecureSkipVerify`).
    SelfSigned,
}

impl Trust {
    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Trust::Plain => "http",
            Trust::Ca(_) | Trust::SelfSigned => "https",
        }
    }

    /// A client that trusts the operator's certificate this way.
    pub fn client(&self) -> reqwest::Client {
        let builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10));
        let builder = match self {
            Trust::Plain => builder,
            Trust::Ca(pem) => builder
                .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).expect("a CA")]),
            Trust::SelfSigned => builder.tls_danger_accept_invalid_certs(true),
        };
        builder.build().expect("an HTTP client")
    }
}

/// The certificate directory (`tls.crt`, `tls.key`) the test operators serve `/metrics` with,
/// and the CA that signed it: one per test process.
pub fn test_cert_dir() -> &'static (PathBuf, String) {
    static DIR: OnceLock<(PathBuf, String)> = OnceLock::new();
    DIR.get_or_init(|| {
        let pki = TestPki::new();
        let dir = scratch_dir("metrics-tls");
        std::fs::write(dir.join("tls.crt"), &pki.server.cert_pem).expect("write tls.crt");
        std::fs::write(dir.join("tls.key"), &pki.server.key_pem).expect("write tls.key");
        (dir, pki.ca_pem)
    })
}

/// `GET url` with `token` as bearer token (none: anonymous): the status code and body, or why
/// nothing answered.
pub async fn get(trust: &Trust, url: &str, token: Option<&str>) -> Result<(u16, String), String> {
    let mut request = trust.client().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| format!("{url}: {e:?}"))?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.unwrap_or_default()))
}

/// The token of the ServiceAccount [`READER`], bound to the chart's metrics-reader ClusterRole,
/// on the control plane whose state directory holds `kubeconfig`: set up once per process and
/// control plane.
pub fn reader_token(kubeconfig: &Path) -> String {
    token(kubeconfig, READER)
}

/// The token of the ServiceAccount [`UNAUTHORISED`], bound to nothing.
pub fn unauthorised_token(kubeconfig: &Path) -> String {
    token(kubeconfig, UNAUTHORISED)
}

fn token(kubeconfig: &Path, account: &str) -> String {
    static TOKENS: OnceLock<Mutex<HashMap<(PathBuf, String), String>>> = OnceLock::new();
    let plane = PlaneTools::of(kubeconfig);
    let key = (plane.state_dir.clone(), account.to_owned());
    let mut tokens = TOKENS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    tokens
        .entry(key)
        .or_insert_with(|| {
            plane.apply_readers();
            let token = run(plane.kubectl().args([
                "create",
                "token",
                account,
                "--namespace",
                READERS_NAMESPACE,
                "--duration=24h",
            ]))
            .unwrap_or_else(|e| panic!("the TokenRequest API gives {account} no token: {e}"));
            token.trim().to_owned()
        })
        .clone()
}

/// The admin kubeconfig and the tools of a control plane, found from any kubeconfig in its
/// state directory (the admin's, or one the tests wrote for a ServiceAccount).
struct PlaneTools {
    state_dir: PathBuf,
}

impl PlaneTools {
    fn of(kubeconfig: &Path) -> Self {
        let state_dir = kubeconfig
            .parent()
            .expect("a kubeconfig in a control plane's state directory")
            .to_path_buf();
        Self { state_dir }
    }

    fn kubectl(&self) -> Command {
        let mut command = Command::new(self.state_dir.join("bin/kubectl"));
        command.env("KUBECONFIG", self.state_dir.join("kubeconfig"));
        command
    }

    /// The chart's reader ClusterRole as `helm template` renders it.
    fn reader_role(&self) -> Value {
        let rendered = run(Command::new(self.state_dir.join("bin/helm"))
            .args(["template", RELEASE])
            .arg(repo_path("charts/poolwatch"))
            .args(["--show-only", "templates/metrics-reader.yaml"]))
        .unwrap_or_else(|e| panic!("rendering the chart's reader ClusterRole: {e}"));
        let role: Value = serde_norway::from_str(&rendered).expect("one YAML document");
        assert_eq!(role["kind"], "ClusterRole", "{rendered}");
        role
    }

    /// Applies the reader ClusterRole, the readers' namespace and ServiceAccounts, and the
    /// binding of [`READER`] to the role. Idempotent; concurrent test processes may race, so a
    /// conflict is tried again.
    fn apply_readers(&self) {
        let role = self.reader_role();
        let role_name = role["metadata"]["name"]
            .as_str()
            .expect("a name")
            .to_owned();
        let account = |name: &str| {
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": name, "namespace": READERS_NAMESPACE}})
        };
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": READERS_NAMESPACE}},
            account(READER),
            account(UNAUTHORISED),
            role,
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": role_name},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
             "subjects": [{"kind": "ServiceAccount", "name": READER, "namespace": READERS_NAMESPACE}]},
        ]});
        let manifest = self
            .state_dir
            .join(format!("metrics-readers-{}.json", std::process::id()));
        std::fs::write(&manifest, list.to_string()).expect("write the readers' manifest");
        let mut last = String::new();
        for _ in 0..5 {
            match run(self
                .kubectl()
                .args(["apply", "--server-side", "--force-conflicts"])
                .args(["--field-manager", "poolwatch-tests", "-f"])
                .arg(&manifest))
            {
                Ok(_) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("applying the metrics readers: {last}");
    }
}
