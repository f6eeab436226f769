//! The readers GitOps tools run on a watch's status, run for real: kstatus
//! (`sigs.k8s.io/cli-utils`, the library Flux and `kubectl wait`-style tools use) and Argo CD's own
//! resource health evaluation (its `util/lua` package on gopher-lua), with the health script
//! registered as the argocd-cm customization for `poolwatch.io/PoolStatisticsWatch`. Both live in
//! the Go program `tests/go/gitops-readers`, built once into the cache from its pinned module.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

use super::control_plane::repo_path;

/// The Argo CD health script the project ships.
pub const HEALTH_LUA: &str = "deploy/argocd/health.lua";

/// What one reader made of an object.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Verdict {
    /// kstatus: `Current`, `InProgress`, `Failed`, `Terminating`, `NotFound`, `Unknown`.
    /// Argo CD: `Healthy`, `Progressing`, `Degraded`, `Suspended`, `Missing`, `Unknown`.
    pub status: String,
    pub message: String,
}

/// What both readers made of an object.
#[derive(Debug, Clone, Deserialize)]
pub struct Reading {
    pub kstatus: Verdict,
    pub argocd: Verdict,
}

/// The built `gitops-readers` binary (built on first use; minutes on a cold machine).
fn binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let output = Command::new(repo_path("tests/control-plane/build-components.sh"))
            .arg("gitops-readers")
            .output()
            .expect("run build-components.sh");
        assert!(
            output.status.success(),
            "building tests/go/gitops-readers failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let dir = String::from_utf8(output.stdout).expect("a path");
        PathBuf::from(dir.trim()).join("gitops-readers")
    })
}

/// What kstatus and Argo CD (with the shipped health script) make of each object.
pub fn read_all(objects: &[Value]) -> Vec<Reading> {
    let mut child = Command::new(binary())
        .arg(repo_path(HEALTH_LUA))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gitops-readers starts");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for object in objects {
            writeln!(stdin, "{object}").expect("write an object");
        }
    }
    let output = child.wait_with_output().expect("gitops-readers runs");
    assert!(
        output.status.success(),
        "gitops-readers failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let readings: Vec<Reading> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a reading"))
        .collect();
    assert_eq!(readings.len(), objects.len(), "one reading per object");
    readings
}

/// What kstatus and Argo CD make of `object`.
pub fn read(object: &Value) -> Reading {
    read_all(std::slice::from_ref(object)).remove(0)
}
