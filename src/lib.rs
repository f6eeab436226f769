//! poolwatch: a Kubernetes operator that publishes Huawei Cloud ModelArts resource-pool
//! statistics as the status of `PoolStatisticsWatch` resources and as Prometheus metrics.

pub mod cli;
pub mod controller;
pub mod crd;
pub mod fetch;
pub mod metrics;
pub mod modelarts;
pub mod operator;
pub mod resource;
pub mod schedule;
pub mod secrets;
pub mod server;
pub mod simulator;
pub mod status;
pub mod target;
pub mod telemetry;
pub mod upstream;
