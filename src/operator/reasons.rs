//! The one vocabulary of reasons: stable CamelCase words that conditions, events, log lines and
//! metric labels carry, so alerts and scripts can match on them. Failures of IAM and ModelArts
//! take their words from the client's classification ([`ErrorClass::reason`]); every other word is
//! here.
//!
//! [`ErrorClass::reason`]: crate::modelarts::ErrorClass::reason

/// The latest poll succeeded.
pub const SYNCED: &str = "Synced";
/// A new generation is being polled.
pub const PROGRESSING: &str = "Progressing";
/// `spec.suspend` is set.
pub const SUSPENDED: &str = "Suspended";
/// Some pools failed to be created (a condition reason and an event).
pub const POOLS_FAILED: &str = "PoolsFailed";
/// No pool failed to be created.
pub const NO_FAILED_POOLS: &str = "NoFailedPools";
/// Some pools are Abnormal or Error (a condition reason, with `spec.poolDetails`).
pub const POOLS_ABNORMAL: &str = "PoolsAbnormal";
/// Every listed pool is Running (with `spec.poolDetails`): what a script waits for.
pub const ALL_POOLS_RUNNING: &str = "AllPoolsRunning";
/// No listed pool is Abnormal, Error or failed, but some are not Running yet (Creating,
/// Deleting, or a phase this version does not know).
pub const NO_UNHEALTHY_POOLS: &str = "NoUnhealthyPools";
/// Event: a pool turned Abnormal or Error, or is listed so for the first time.
pub const POOL_ABNORMAL: &str = "PoolAbnormal";
/// Event: a pool failed to be created (it appeared in the failed list).
pub const POOL_FAILED: &str = "PoolFailed";
/// Event: an Abnormal or Error pool is Running again.
pub const POOL_RECOVERED: &str = "PoolRecovered";
/// Event: listing the pools fails (the counts may still update).
pub const POOL_LIST_FAILED: &str = "PoolListFailed";
/// Event: the first counts of a watch.
pub const FIRST_SYNC: &str = "FirstSync";
/// Event: polling succeeds again after a failure.
pub const RECOVERED: &str = "Recovered";
/// The spec is valid for the schema but cannot be used.
pub const INVALID_SPEC: &str = "InvalidSpec";
/// The credentials Secret, or one of its keys, is missing or unusable.
pub const CREDENTIALS_NOT_FOUND: &str = "CredentialsNotFound";
/// The operator may not read the credentials Secret (RBAC).
pub const CREDENTIALS_FORBIDDEN: &str = "CredentialsForbidden";
/// The Kubernetes API could not be asked for the Secret or a token; may clear by itself.
pub const KUBERNETES_UNAVAILABLE: &str = "KubernetesUnavailable";
/// The ServiceAccount that `spec.federation` names does not exist.
pub const SERVICE_ACCOUNT_NOT_FOUND: &str = "ServiceAccountNotFound";
/// The watch asks for the operator's own identity in a namespace the admin did not allow.
pub const OPERATOR_IDENTITY_NOT_ALLOWED: &str = "OperatorIdentityNotAllowed";

/// A keyless watch names an endpoint that is neither Huawei's for its region nor trusted by
/// the cluster admin (`--trusted-endpoint`).
pub const ENDPOINT_NOT_TRUSTED: &str = "EndpointNotTrusted";
/// A watch names a host outside the cluster admin's `--allowed-endpoint-host` patterns.
pub const ENDPOINT_NOT_ALLOWED: &str = "EndpointNotAllowed";
/// `spec.federation.audience` is one the cluster's API server accepts: a token for it would
/// be a Kubernetes credential.
pub const AUDIENCE_NOT_ALLOWED: &str = "AudienceNotAllowed";

/// The Secret's access key id cannot be one IAM issued.
pub const INVALID_CREDENTIALS: &str = "InvalidCredentials";

/// Every reason of this module, for the uniqueness check.
#[cfg(test)]
const ALL: [&str; 24] = [
    SYNCED,
    POOLS_ABNORMAL,
    ALL_POOLS_RUNNING,
    NO_UNHEALTHY_POOLS,
    POOL_ABNORMAL,
    POOL_FAILED,
    POOL_RECOVERED,
    POOL_LIST_FAILED,
    PROGRESSING,
    SUSPENDED,
    POOLS_FAILED,
    NO_FAILED_POOLS,
    FIRST_SYNC,
    RECOVERED,
    INVALID_SPEC,
    CREDENTIALS_NOT_FOUND,
    CREDENTIALS_FORBIDDEN,
    KUBERNETES_UNAVAILABLE,
    SERVICE_ACCOUNT_NOT_FOUND,
    OPERATOR_IDENTITY_NOT_ALLOWED,
    ENDPOINT_NOT_TRUSTED,
    ENDPOINT_NOT_ALLOWED,
    AUDIENCE_NOT_ALLOWED,
    INVALID_CREDENTIALS,
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::modelarts::ErrorClass;

    #[test]
    fn reasons_are_unique_camel_case_words_and_none_is_an_upstream_one() {
        let mine: BTreeSet<&str> = ALL.into_iter().collect();
        assert_eq!(mine.len(), ALL.len(), "duplicates in {ALL:?}");
        for reason in ALL {
            assert!(
                reason.starts_with(|c: char| c.is_ascii_uppercase())
                    && reason.chars().all(|c| c.is_ascii_alphanumeric()),
                "{reason} is CamelCase"
            );
        }
        for class in ErrorClass::ALL {
            assert!(
                !mine.contains(class.reason()),
                "{} is taken",
                class.reason()
            );
        }
    }
}
