//! poolwatch: a Kubernetes operator that publishes Huawei Cloud ModelArts resource-pool
//! statistics as the status of `PoolStatisticsWatch` resources and as Prometheus metrics.

pub mod cli;
pub mod crd;
pub mod fetch;
pub mod modelarts;
pub mod resource;
pub mod simulator;
