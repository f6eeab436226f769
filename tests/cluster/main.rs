//! Everything that needs the local Kubernetes control plane (`make test-cluster`): the CRD and
//! the tools users run against the API server, the real `poolwatch run` binary end to end, who
//! may read its metrics, its reliability under faults, and the Helm chart. One binary, so kube and the test support are
//! linked once; one module per topic.

#[path = "../support/mod.rs"]
mod support;

mod argocd;
mod bounded;
mod chart;
mod control_plane;
mod credentials;
mod keyless;
mod metrics_access;
mod operator;
mod pool_details;
mod reliability;
mod tenancy;
