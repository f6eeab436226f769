//! Everything that runs without Kubernetes: the CRD's schema, the ModelArts client and the
//! simulator (checked by Huawei's official Python SDK too), `poolwatch fetch`, the Flux objects
//! users copy, and property tests over untrusted input. One binary, so the test support is
//! linked once.

#[path = "../support/mod.rs"]
mod support;

mod crd_schema;
mod fetch_cli;
mod gitops_manifests;
mod modelarts_client;
mod properties;
mod simulator_keyless;
mod simulator_python_sdk;
