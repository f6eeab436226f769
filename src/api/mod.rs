//! The `poolwatch.io` API: the `PoolStatisticsWatch` custom resource and its CRD. Knows nothing of
//! how the operator or ModelArts work.

pub mod crd;
mod pool_details;
mod watch;

pub use pool_details::*;
pub use watch::*;
