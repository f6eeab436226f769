//! Faults the reliability tests inflict beyond the simulator's: a control plane of their own
//! whose API server can be stopped, restarted and frozen; throwaway TLS certificates; a
//! process's memory.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use poolwatch::simulator::TlsIdentity;

use super::control_plane::{ControlPlane, TestNamespace, repo_path};

/// A control plane of its own, under `target/test-cluster-NAME`, so that
/// stopping its API server disturbs no other test. Stopped when dropped.
pub struct IsolatedControlPlane {
    pub plane: &'static ControlPlane,
}

impl IsolatedControlPlane {
    /// Starts (or reuses) the control plane named `name` and applies the CRD.
    pub fn start(name: &str) -> Self {
        let state_dir = repo_path(&format!("target/test-cluster-{name}"));
        let plane = ControlPlane::start_in(state_dir)
            .unwrap_or_else(|e| panic!("the isolated control plane {name} did not start: {e}"));
        plane
            .apply_crd()
            .unwrap_or_else(|e| panic!("the isolated control plane {name}: {e}"));
        Self {
            plane: Box::leak(Box::new(plane)),
        }
    }

    /// A fresh namespace on this control plane.
    pub async fn namespace(&self, test: &str) -> TestNamespace {
        TestNamespace::on(self.plane, test).await
    }

    /// Runs `apiserver.sh action` on this control plane; returns what it printed.
    fn apiserver_script(&self, action: &str) -> String {
        let output = Command::new(repo_path("tests/control-plane/apiserver.sh"))
            .arg(action)
            .env("POOLWATCH_TEST_CLUSTER_DIR", &self.plane.state_dir)
            .output()
            .expect("run apiserver.sh");
        assert!(
            output.status.success(),
            "apiserver.sh {action} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Stops the API server; etcd and its data stay.
    pub fn stop_api_server(&self) {
        self.apiserver_script("stop");
    }

    /// Starts the API server again, on the same port, and waits until it is ready.
    pub fn start_api_server(&self) {
        self.apiserver_script("start");
    }

    /// The API server's process id (kwokctl records it; `apiserver.sh pid` reads it).
    pub fn api_server_pid(&self) -> u32 {
        let pid = self.apiserver_script("pid");
        pid.trim()
            .parse()
            .ok()
            .filter(|pid| *pid != 0)
            .unwrap_or_else(|| panic!("apiserver.sh pid printed {pid:?}"))
    }

    /// Freezes the API server process (`SIGSTOP`): connections are accepted by the kernel,
    /// requests hang. Thawed (`SIGCONT`) when the guard is dropped, also when a test fails, so
    /// the control plane can be stopped.
    pub fn freeze_api_server(&self) -> FrozenApiServer<'_> {
        self.signal_api_server("STOP");
        FrozenApiServer(self)
    }

    /// Sends `signal` to the API server process.
    pub fn signal_api_server(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.api_server_pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} of the API server failed");
    }
}

/// A frozen API server; thawed when dropped.
pub struct FrozenApiServer<'a>(&'a IsolatedControlPlane);

impl Drop for FrozenApiServer<'_> {
    fn drop(&mut self) {
        self.0.signal_api_server("CONT");
    }
}

impl Drop for IsolatedControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(repo_path("tests/control-plane/down.sh"))
            .env("POOLWATCH_TEST_CLUSTER_DIR", &self.plane.state_dir)
            .output();
    }
}

/// A throwaway CA and a server certificate it signed for `127.0.0.1` and `localhost`.
pub struct TestPki {
    /// The CA certificate (PEM), for `--ca-bundle`.
    pub ca_pem: String,
    /// The server's certificate and key.
    pub server: TlsIdentity,
}

impl TestPki {
    pub fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "poolwatch test CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
        let server_key = rcgen::KeyPair::generate().expect("server key");
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "simulator");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&server_key, &ca)
            .expect("server certificate");
        Self {
            ca_pem: ca.pem(),
            server: TlsIdentity {
                cert_pem: cert.pem().into_bytes(),
                key_pem: server_key.serialize_pem().into_bytes(),
            },
        }
    }

    /// Writes the CA certificate to a file for `--ca-bundle` and returns its path.
    pub fn write_ca(&self, dir: &std::path::Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.ca_pem).expect("write the CA file");
        path
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

/// Resident memory of process `pid` now (`VmRSS`), in KiB. Panics when it cannot be read: a
/// memory check must fail rather than measure a silent 0.
pub fn resident_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// The peak resident memory of process `pid` (`VmHWM`) since it started or since
/// [`reset_peak_resident`], in KiB.
pub fn peak_resident_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// Resets the peak that [`peak_resident_kib`] reports to the current resident memory (writes
/// `5` to `/proc/PID/clear_refs`), so a later peak measures one phase of a test only.
pub fn reset_peak_resident(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .unwrap_or_else(|e| panic!("cannot reset the peak memory of process {pid}: {e}"));
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read the memory of process {pid}: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .filter(|kib| *kib > 0)
        .unwrap_or_else(|| panic!("process {pid} reports no {field} in its status:\n{status}"))
}

/// A scratch directory under `target/`, fresh for each call.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = repo_path("target/test-scratch").join(format!(
        "{name}-{}-{:x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// Sleeps without blocking the runtime.
pub async fn pause(duration: Duration) {
    tokio::time::sleep(duration).await;
}
