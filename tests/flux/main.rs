//! Flux for real (`make test-gitops`, never `make test`): source-controller and
//! kustomize-controller, built from their modules, reconcile watches from a git repository served
//! on loopback into the local control plane, with the operator running against the ModelArts
//! simulator. What users get from `deploy/flux/poolwatch-watches.yaml`: a Kustomization that
//! waits for every watch, fails on a stalled one, follows new generations, reverts drift without
//! fighting the operator over its status, and prunes. One module per topic.

#[path = "../support/mod.rs"]
mod support;

mod changes;
mod wait;
mod world;
