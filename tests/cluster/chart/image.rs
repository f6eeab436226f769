//! The container image as users run it: the OCI archive `make image` writes, started with
//! podman (runc) the way the chart's rendered Deployment says (its args, env, security context,
//! volume mounts and probes, from `helm template`), in-cluster: the API server named by
//! `KUBERNETES_SERVICE_HOST`/`_PORT` and a token of the chart's ServiceAccount from the TokenRequest
//! API mounted where the kubelet mounts it.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::rbac::ChartIdentity;
use super::*;
use crate::support::faults::{TestPki, scratch_dir};
use crate::support::operator::{eventually, free_address};
use crate::support::rendered::{PodContext, RenderedContainer};
use poolwatch::simulator::SimulatorConfig;

/// Where the kubelet mounts a Pod's ServiceAccount token, its CA and its namespace.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The archive `make image` writes for this version; `make test` builds it first.
fn archive() -> PathBuf {
    let path = repo_path(&format!(
        "target/image/poolwatch-{}.oci.tar",
        env!("CARGO_PKG_VERSION")
    ));
    assert!(
        path.exists(),
        "{} is missing: run `make image` (`make test` builds it)",
        path.display()
    );
    path
}

/// A container started with `podman run -d`; removed when dropped.
struct Container {
    name: String,
}

impl Container {
    /// `podman run -d` with `flags` (before the image) and `args` (after it).
    fn start(name: &str, flags: &[String], args: &[String]) -> Self {
        let _ = Command::new("podman")
            .args(["rm", "--force", name])
            .output();
        let image = format!("oci-archive:{}", archive().display());
        // crun cannot run on every host's cgroups; runc can. Default ulimits are above what
        // such hosts allow a container to set.
        let mut command = Command::new("podman");
        command
            .args(["run", "--detach", "--name", name, "--runtime", "runc"])
            .args(["--network", "host", "--ulimit", "nofile=1024:1024"])
            .args(["--ulimit", "nproc=1024:1024"])
            .args(flags)
            .arg(image)
            .args(args);
        run(&mut command).unwrap_or_else(|e| panic!("podman run failed: {e}"));
        Self {
            name: name.to_owned(),
        }
    }

    /// Everything the container wrote to stdout and stderr.
    fn logs(&self) -> String {
        let output = Command::new("podman")
            .args(["logs", &self.name])
            .output()
            .expect("podman logs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// Its exit code once it has exited, waiting up to `timeout`.
    fn exit_code_within(&self, timeout: Duration) -> Option<i64> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            let state = run(Command::new("podman").args([
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
                &self.name,
            ]))
            .unwrap_or_default();
            if let Some(code) = state.trim().strip_prefix("exited ") {
                return code.parse().ok();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "--force", "--time", "0", &self.name])
            .output();
    }
}

/// A folder standing for the kubelet's ServiceAccount mount: `token`, `ca.crt` (the API
/// server's CA) and `namespace`, readable by the container's user.
fn service_account_mount(plane: &ControlPlane, token: &str, namespace: &str) -> PathBuf {
    let dir = scratch_dir("image-serviceaccount");
    let cluster = plane.admin_cluster();
    let ca = cluster["certificate-authority-data"]
        .as_str()
        .expect("the admin kubeconfig carries the CA");
    let ca = STANDARD.decode(ca).expect("base64 CA");
    for (file, content) in [
        ("token", token.as_bytes()),
        ("ca.crt", &ca),
        ("namespace", namespace.as_bytes()),
    ] {
        std::fs::write(dir.join(file), content).expect("write the mount");
    }
    readable_by_all(&dir);
    dir
}

fn readable_by_all(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}

/// `KUBERNETES_SERVICE_HOST` and `_PORT` of the control plane, as a kubelet sets them.
fn service_env(plane: &ControlPlane) -> Vec<String> {
    let cluster = plane.admin_cluster();
    let server = cluster["server"].as_str().expect("a server");
    let (host, port) = server
        .trim_start_matches("https://")
        .rsplit_once(':')
        .expect("host:port");
    vec![
        format!("--env=KUBERNETES_SERVICE_HOST={host}"),
        format!("--env=KUBERNETES_SERVICE_PORT={port}"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_runs_as_the_chart_runs_it_and_stops_on_sigterm_releasing_the_lease() {
    let pki = TestPki::new();
    let mut config = SimulatorConfig::new(crate::support::simulator::setup());
    config.tls = Some(pki.server.clone());
    let world = World::on(
        TestNamespace::new("image").await,
        crate::support::simulator::start_with(config).await,
    )
    .with_credentials()
    .await;
    world.create_watch("pools", "0", "creds").await;
    let namespace = world.namespace.name.clone();

    // The chart, namespaced to this test's namespace, with the simulator's CA as its bundle.
    let release = "pw-image";
    let documents = render(
        release,
        &namespace,
        &[
            &format!("watchNamespaces={{{namespace}}}"),
            "operator.caBundle.configMapName=simulator-ca",
        ],
    )
    .expect("renders");
    let identity = ChartIdentity::apply(&world.namespace, &documents, |_| {});
    let container = RenderedContainer::of(&documents);
    let pod_name = format!("{release}-pod");
    let ca_dir = scratch_dir("image-ca");
    std::fs::write(ca_dir.join("ca.crt"), &pki.ca_pem).expect("write the CA");
    readable_by_all(&ca_dir);
    let pod = PodContext {
        name: &pod_name,
        namespace: &namespace,
        volumes: [("ca-bundle".to_owned(), ca_dir.clone())].into(),
    };
    let service_account = service_account_mount(world.plane(), &identity.token, &namespace);

    let mut flags = container.podman_security_flags();
    flags.extend(service_env(world.plane()));
    for (name, value) in container.local_env(&pod) {
        flags.push(format!("--env={name}={value}"));
    }
    flags.push(format!(
        "--volume={}:{SERVICE_ACCOUNT_DIR}:ro",
        service_account.display()
    ));
    for (mount, volume) in &container.mounts {
        let local = pod.volumes.get(volume).expect("a local folder per volume");
        flags.push(format!("--volume={}:{mount}:ro", local.display()));
    }
    let (metrics, probes) = (free_address(), free_address());
    let args = container.listening_on(&metrics, &probes);
    let running = Container::start(&format!("poolwatch-{namespace}"), &flags, &args);

    // In-cluster, as the chart's ServiceAccount: the watch becomes Ready.
    world.ready("pools").await;
    let get = |url: String| async move {
        match reqwest::get(&url).await {
            Ok(response) => (
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            ),
            Err(e) => (0, e.to_string()),
        }
    };
    let (liveness, readiness) = &container.probe_paths;
    for path in [liveness, readiness] {
        let answer = eventually(&format!("{path} to answer"), SOON, || async {
            let answer = get(format!("http://{probes}{path}")).await;
            (answer.0 == 200).then_some(answer)
        })
        .await;
        assert_eq!(answer.1, "ok", "{path}");
    }
    // The chart's default: HTTPS with a self-signed certificate, read as the chart's reader.
    let reader = crate::support::metrics_reader::reader_token(&world.plane().kubeconfig);
    let (code, page) = crate::support::metrics_reader::get(
        &crate::support::metrics_reader::Trust::SelfSigned,
        &format!("https://{metrics}/metrics"),
        Some(&reader),
    )
    .await
    .expect("the metrics endpoint answers");
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("poolwatch_leader 1"), "{page}");
    assert!(
        page.contains(r#"poolwatch_polls_total{result="success"}"#),
        "{page}"
    );
    // It holds the Lease the chart names, as the Pod (PID 1 in its container).
    let leases = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(
        world.namespace.client.clone(),
        &namespace,
    );
    let lease_name = format!("{release}-poolwatch-leader");
    let holder = eventually("the container to hold the Lease", SOON, || async {
        let lease = leases.get_opt(&lease_name).await.ok()??;
        lease
            .spec?
            .holder_identity
            .filter(|h| h.starts_with(&format!("{pod_name}-")))
    })
    .await;

    // SIGTERM: gone within 10 s, exit code 0, the Lease released.
    run(Command::new("podman").args(["kill", "--signal", "TERM", &running.name]))
        .expect("podman kill");
    let code = running.exit_code_within(Duration::from_secs(10));
    let logs = running.logs();
    assert_eq!(code, Some(0), "stopped within 10 s of SIGTERM:\n{logs}");
    let released = leases
        .get(&lease_name)
        .await
        .expect("the Lease")
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    assert!(
        released.is_empty(),
        "{holder} still holds the Lease: {released:?}"
    );
    assert!(!logs.contains(&identity.token), "the token is in the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_without_a_token_or_an_api_server_exits_non_zero_saying_why() {
    let namespace = TestNamespace::new("image-faults").await;
    let documents = render("pw-faults", &namespace.name, &[]).expect("renders");
    let container = RenderedContainer::of(&documents);
    let mut flags = container.podman_security_flags();
    flags.push(format!("--env=POD_NAMESPACE={}", namespace.name));
    // Port 0: the test is about the API server, and a port picked free here can be taken by
    // another test before the container binds it (seen once under load: the container then
    // exited for the port, not for the API server).
    let args = container.listening_on("127.0.0.1:0", "127.0.0.1:0");

    // No ServiceAccount token mounted, the in-cluster variables set.
    let mut no_token = flags.clone();
    no_token.extend(service_env(namespace.control_plane));
    let started = Container::start(
        &format!("poolwatch-{}-no-token", namespace.name),
        &no_token,
        &args,
    );
    let code = started.exit_code_within(SOON);
    let logs = started.logs();
    assert!(matches!(code, Some(c) if c != 0), "{code:?}:\n{logs}");
    assert!(
        logs.contains("cannot configure the Kubernetes client")
            && logs.contains("ServiceAccount token mounted at"),
        "{logs}"
    );

    // A token, but nothing listens where the API server should be.
    let token = "a-token-that-must-never-be-printed";
    let mount = service_account_mount(namespace.control_plane, token, &namespace.name);
    let closed = free_address();
    let (_, port) = closed.rsplit_once(':').expect("host:port");
    let mut unreachable = flags.clone();
    unreachable.push("--env=KUBERNETES_SERVICE_HOST=127.0.0.1".to_owned());
    unreachable.push(format!("--env=KUBERNETES_SERVICE_PORT={port}"));
    unreachable.push(format!(
        "--volume={}:{SERVICE_ACCOUNT_DIR}:ro",
        mount.display()
    ));
    let started = Container::start(
        &format!("poolwatch-{}-unreachable", namespace.name),
        &unreachable,
        &args,
    );
    let code = started.exit_code_within(Duration::from_secs(60));
    let logs = started.logs();
    assert!(matches!(code, Some(c) if c != 0), "{code:?}:\n{logs}");
    assert!(logs.contains("Kubernetes API"), "{logs}");
    assert!(!logs.contains(token), "the token is in the log:\n{logs}");
}

#[test]
fn the_image_labels_and_the_chart_app_version_agree_with_cargo_toml() {
    let config = run(Command::new("skopeo").args([
        "inspect",
        "--config",
        &format!("oci-archive:{}", archive().display()),
    ]))
    .unwrap_or_else(|e| panic!("skopeo inspect: {e}"));
    let config: Value = serde_json::from_str(&config).expect("an image config");
    let labels = &config["config"]["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        labels["org.opencontainers.image.revision"],
        env!("POOLWATCH_REVISION"),
        "the image was built from another revision: run `make image`"
    );
    assert_eq!(
        labels["org.opencontainers.image.source"],
        env!("CARGO_PKG_REPOSITORY")
    );
    assert_eq!(
        labels["org.opencontainers.image.licenses"],
        env!("CARGO_PKG_LICENSE")
    );
    assert_eq!(chart_app_version(), env!("CARGO_PKG_VERSION"));
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(
        config["config"]["Entrypoint"],
        json!(["/usr/local/bin/poolwatch"])
    );
    // The SBOM ships next to the archive and describes this binary.
    let sbom = archive().with_extension("").with_extension("cdx.json");
    let sbom: Value = serde_json::from_str(
        &std::fs::read_to_string(&sbom).unwrap_or_else(|e| panic!("{}: {e}", sbom.display())),
    )
    .expect("CycloneDX JSON");
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert_eq!(sbom["metadata"]["component"]["name"], "poolwatch");
    let components = sbom["components"].as_array().expect("components");
    assert!(
        components.iter().any(|c| c["name"] == "kube"),
        "the SBOM lists the dependencies"
    );
}
