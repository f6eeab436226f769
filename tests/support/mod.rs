//! Support code shared by the integration tests.

pub mod argocd;
pub mod control_plane;
pub mod daemon;
pub mod faults;
pub mod flux;
pub mod fresh_crd;
pub mod git_manifests;
pub mod git_server;
pub mod gitops;
pub mod jwt;
pub mod metrics_reader;
pub mod operator;
pub mod prometheus;
pub mod rendered;
pub mod scratch;
pub mod series;
pub mod simulator;
pub mod specs;
pub mod webhook;
pub mod world;
