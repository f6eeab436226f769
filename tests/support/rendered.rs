//! The operator container as the Helm chart renders it, turned into a command line and an
//! environment the real binary can be started with here: what the chart runs is what the tests
//! run, with no second, hand-written copy of its flags.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The first container of the chart's Deployment.
pub struct RenderedContainer {
    /// `args`, verbatim.
    pub args: Vec<String>,
    /// The Pod's and the container's `securityContext`, the container's winning.
    pub security: Value,
    /// The probes' `httpGet` paths: liveness, then readiness.
    pub probe_paths: (String, String),
    /// `env`: literal values, and `fieldRef`s by their field path (`metadata.name`).
    pub env: Vec<(String, EnvValue)>,
    /// `volumeMounts`: mount path to volume name.
    pub mounts: BTreeMap<String, String>,
}

/// Where an environment variable's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvValue {
    /// `value`.
    Literal(String),
    /// `valueFrom.fieldRef.fieldPath`, filled in by the kubelet.
    Field(String),
}

/// What the kubelet would provide: the Pod's fields, and a local folder per mounted volume.
pub struct PodContext<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.namespace`.
    pub namespace: &'a str,
    /// Volume name to the local folder that stands for it.
    pub volumes: BTreeMap<String, PathBuf>,
}

impl RenderedContainer {
    /// The operator container of the Deployment among `documents` (`helm template`'s output).
    pub fn of(documents: &[Value]) -> Self {
        let deployment = documents
            .iter()
            .find(|d| d["kind"] == "Deployment")
            .expect("the chart renders a Deployment");
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let strings = |value: &Value| -> Vec<String> {
            value
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|a| a.as_str().expect("string args").to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let env = container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|var| {
                let name = var["name"].as_str().expect("an env name").to_owned();
                let value = match var["value"].as_str() {
                    Some(literal) => EnvValue::Literal(literal.to_owned()),
                    None => EnvValue::Field(
                        var["valueFrom"]["fieldRef"]["fieldPath"]
                            .as_str()
                            .unwrap_or_else(|| panic!("env {name}: a value or a fieldRef"))
                            .to_owned(),
                    ),
                };
                (name, value)
            })
            .collect();
        let mounts = container["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                (
                    m["mountPath"].as_str().expect("a mountPath").to_owned(),
                    m["name"].as_str().expect("a volume name").to_owned(),
                )
            })
            .collect();
        let mut security = deployment["spec"]["template"]["spec"]["securityContext"].clone();
        if let (Some(merged), Some(own)) = (
            security.as_object_mut(),
            container["securityContext"].as_object(),
        ) {
            merged.extend(own.clone());
        }
        let path = |probe: &str| {
            container[probe]["httpGet"]["path"]
                .as_str()
                .unwrap_or_else(|| panic!("no {probe} path"))
                .to_owned()
        };
        Self {
            args: strings(&container["args"]),
            security,
            probe_paths: (path("livenessProbe"), path("readinessProbe")),
            env,
            mounts,
        }
    }

    /// The rendered arguments with the listen addresses moved to `metrics` and `probes` (the
    /// rendered ports may be taken here).
    pub fn listening_on(&self, metrics: &str, probes: &str) -> Vec<String> {
        self.args
            .iter()
            .map(|arg| {
                if arg.starts_with("--metrics-bind-address=") {
                    format!("--metrics-bind-address={metrics}")
                } else if arg.starts_with("--health-probe-bind-address=") {
                    format!("--health-probe-bind-address={probes}")
                } else {
                    arg.clone()
                }
            })
            .collect()
    }

    /// `podman run` flags for the security context, as a kubelet would apply it: the user and
    /// group, a read-only root, the dropped capabilities, no privilege escalation; the default
    /// seccomp profile is the runtime's (`RuntimeDefault`).
    pub fn podman_security_flags(&self) -> Vec<String> {
        let security = &self.security;
        let mut flags = Vec::new();
        if let Some(user) = security["runAsUser"].as_i64() {
            let group = security["runAsGroup"].as_i64().unwrap_or(user);
            flags.push(format!("--user={user}:{group}"));
        }
        if security["readOnlyRootFilesystem"] == true {
            flags.push("--read-only".to_owned());
        }
        for capability in security["capabilities"]["drop"]
            .as_array()
            .into_iter()
            .flatten()
        {
            flags.push(format!(
                "--cap-drop={}",
                capability.as_str().expect("a capability")
            ));
        }
        if security["allowPrivilegeEscalation"] == false {
            flags.push("--security-opt=no-new-privileges".to_owned());
        }
        assert_eq!(
            security["seccompProfile"]["type"], "RuntimeDefault",
            "only the runtime's default seccomp profile is mapped"
        );
        flags
    }

    /// The arguments to start the binary with here: the rendered ones, with the listen
    /// addresses moved to `metrics` and `probes` (the rendered ports may be taken) and every
    /// path under a volume mount moved to that volume's local folder.
    pub fn local_args(&self, pod: &PodContext<'_>, metrics: &str, probes: &str) -> Vec<String> {
        self.listening_on(metrics, probes)
            .iter()
            .map(|arg| {
                let Some((flag, value)) = arg.split_once('=') else {
                    return arg.clone();
                };
                match self.local_path(pod, value) {
                    Some(local) => format!("{flag}={}", local.display()),
                    None => arg.clone(),
                }
            })
            .collect()
    }

    /// The environment, with the fields the kubelet fills in taken from `pod`.
    pub fn local_env(&self, pod: &PodContext<'_>) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    EnvValue::Literal(v) => v.clone(),
                    EnvValue::Field(path) if path == "metadata.name" => pod.name.to_owned(),
                    EnvValue::Field(path) if path == "metadata.namespace" => {
                        pod.namespace.to_owned()
                    }
                    EnvValue::Field(path) => panic!("env {name}: no value for field {path}"),
                };
                (name.clone(), value)
            })
            .collect()
    }

    /// `path` in the volume mounted over it, if one is.
    fn local_path(&self, pod: &PodContext<'_>, path: &str) -> Option<PathBuf> {
        self.mounts.iter().find_map(|(mount, volume)| {
            let rest = Path::new(path).strip_prefix(mount).ok()?;
            let folder = pod
                .volumes
                .get(volume)
                .unwrap_or_else(|| panic!("{path} is in volume {volume}, which the test lacks"));
            Some(folder.join(rest))
        })
    }
}
