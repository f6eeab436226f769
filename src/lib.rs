//! poolwatch: a Kubernetes operator that publishes Huawei Cloud ModelArts resource-pool
//! statistics as the status of `PoolStatisticsWatch` resources and as Prometheus metrics.
//!
//! Layers, each importing only those below it: [`cli`] (the command line) over [`operator`]
//! (`poolwatch run`), [`fetch`] (`poolwatch fetch`) and [`simulator`] (`poolwatch simulator`);
//! those over [`api`] (the custom resource) and [`modelarts`] (the ModelArts and IAM client, which
//! knows nothing of Kubernetes).

pub mod api;
pub mod cli;
pub mod fetch;
mod lock;
pub mod modelarts;
pub mod operator;
pub mod simulator;
