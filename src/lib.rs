//! poolwatch: a Kubernetes operator that publishes Huawei Cloud ModelArts resource-pool
//! statistics as the status of `PoolStatisticsWatch` resources and as Prometheus metrics.
//!
//! Layers, each importing only those below it: [`cli`] (the command line) over [`operator`]
//! (`poolwatch run`), [`fetch`] (`poolwatch fetch`) and [`simulator`] (`poolwatch simulator`);
//! those over [`api`] (the custom resource), [`modelarts`] (the ModelArts and IAM client, which
//! knows nothing of Kubernetes) and [`https`] (serving over TLS).

pub mod api;
pub mod cli;
pub mod fetch;
pub mod https;
mod lock;
pub mod modelarts;
pub mod operator;
pub mod simulator;
