//! Argo CD for real (`make test-gitops`, never `make test`): its application controller and
//! repo-server, built from Argo CD 3.6.2's module, sync watches from a git repository served on
//! loopback into the local control plane, with the operator running against the ModelArts
//! simulator. What users get from `deploy/argocd/poolwatch-watches.yaml` and the health script of
//! `deploy/argocd/argocd-cm.yaml`: Synced and Healthy only after the operator's first status, in
//! each diff mode; OutOfSync only for a change in git; Degraded for a stalled watch; drift
//! reverted by selfHeal without touching the operator's status; pruning; the chart's CRD and a
//! watch in one Application. One module per topic.

#[path = "../support/mod.rs"]
mod support;

mod changes;
mod crd;
mod health;
mod sync;
mod world;
