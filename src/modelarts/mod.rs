//! The Huawei Cloud ModelArts client: signing, endpoints, errors, the pool-statistics call and
//! the pool list, and the exchanges that turn a keyless identity into temporary keys.
//!
//! Nothing here knows about Kubernetes. The controller and `poolwatch fetch` build a
//! [`ModelArtsClient`] once, parse an [`Endpoint`] per target and call
//! [`ModelArtsClient::pool_statistics`]; every failure comes back as a [`ModelArtsError`] whose
//! [`ErrorClass`] drives condition reasons, metric labels and the retry policy.

pub mod bounded;
pub mod client;
pub mod credentials;
pub mod endpoint;
pub mod error;
mod json;
pub mod keyless;
mod pool_reader;
pub mod pools;
pub mod signer;
pub mod statistics;
pub mod temporary;

pub use client::{
    ClientConfig, Clock, ModelArtsClient, Operation, RequestObserver, RequestRecord, RetryPolicy,
};
pub use credentials::Credentials;
pub use endpoint::{Endpoint, EndpointError};
pub use error::{ErrorClass, ModelArtsError, Service};
pub use keyless::{IdTokenExchange, MetadataSession, ServiceUrl};
pub use pools::{Pool, PoolList, PoolListFilter, PoolPhase};
pub use statistics::{MAX_BODY_BYTES, MAX_STATISTICS_BODY_BYTES, PoolStatistics};
pub use temporary::TemporaryCredentials;
