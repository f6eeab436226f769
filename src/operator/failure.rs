//! Why a poll failed, in the one shape that every layer maps into: an unusable spec, the
//! credentials Secret, IAM and ModelArts all become a [`Failure`], which the schedule (when to
//! retry), the status (which conditions), the events, the logs and the metrics read.

use std::time::Duration;

use crate::modelarts::{ErrorClass, ModelArtsError};

use super::credentials::CredentialsError;
use super::target::SpecError;

/// A failed poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Stable CamelCase reason (see [`reasons`]), shared by conditions, events and metrics.
    pub reason: &'static str,
    /// Short, secret-free explanation that says what to fix.
    pub message: String,
    /// Whether and when retrying can help.
    pub retry: Retry,
    /// The credentials were missing or refused: a change to the Secret is worth a poll at once.
    pub credentials: Option<CredentialsProblem>,
}

/// Whether and when retrying a failed poll can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Not without a change to the spec, the Secret, the keys' rights or the clock.
    Permanent,
    /// Retrying may help; the server may have said when (`Retry-After`).
    Transient {
        /// The server's `Retry-After`, if it sent one.
        after: Option<Duration>,
    },
}

/// What was wrong with the credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialsProblem {
    /// No keys could be had: the Secret or one of its keys is missing or may not be read, the
    /// ServiceAccount is missing, the token exchange was refused.
    Unusable {
        /// Why, as the condition's reason.
        reason: &'static str,
    },
    /// ModelArts or IAM refused the keys of this version of their source.
    Refused {
        /// The version (Secret `resourceVersion`, temporary access key id) of the refused keys.
        secret_version: String,
    },
}

impl CredentialsProblem {
    /// What the credentials source gave when the poll failed: the refused keys' version, or
    /// the reason no keys could be had. A later look that gives something else is a change
    /// worth a poll: an edited Secret, a new ServiceAccount, an exchange refused differently.
    pub fn marker(&self) -> String {
        match self {
            Self::Unusable { reason } => unusable_marker(reason),
            Self::Refused { secret_version } => secret_version.clone(),
        }
    }
}

/// The [`CredentialsProblem::marker`] of a source that gave no keys for `reason`.
pub fn unusable_marker(reason: &str) -> String {
    format!("unusable:{reason}")
}

impl Failure {
    /// Whether retrying cannot help without a change.
    pub fn is_permanent(&self) -> bool {
        self.retry == Retry::Permanent
    }

    /// The spec passed the schema but cannot be used, or names what the admin does not allow.
    pub fn from_spec(error: &SpecError) -> Self {
        Self {
            reason: error.reason,
            message: error.to_string(),
            retry: Retry::Permanent,
            credentials: None,
        }
    }

    /// The credentials Secret could not be used.
    pub fn from_credentials(error: &CredentialsError) -> Self {
        let permanent = error.is_permanent();
        Self {
            reason: error.reason(),
            message: error.to_string(),
            retry: if permanent {
                Retry::Permanent
            } else {
                Retry::Transient { after: None }
            },
            credentials: permanent.then_some(CredentialsProblem::Unusable {
                reason: error.reason(),
            }),
        }
    }

    /// IAM or ModelArts answered with an error (or could not be reached) for keys read from
    /// version `secret_version` of the Secret.
    pub fn from_upstream(error: &ModelArtsError, secret_version: &str) -> Self {
        let refused = matches!(
            error.class(),
            ErrorClass::AuthenticationFailed | ErrorClass::AccessDenied
        );
        Self {
            reason: error.reason(),
            message: error.to_string(),
            retry: if error.is_permanent() {
                Retry::Permanent
            } else {
                Retry::Transient {
                    after: error.retry_after(),
                }
            },
            credentials: refused.then(|| CredentialsProblem::Refused {
                secret_version: secret_version.to_owned(),
            }),
        }
    }

    /// A pool list failed after the statistics call succeeded. It says nothing against the
    /// keys (they just got the counts), so it is never a credentials problem; a refusal names
    /// the permission the list needs, and the way out if it is not to be granted.
    pub fn from_pool_list(error: &ModelArtsError) -> Self {
        let hint = match error.class() {
            ErrorClass::AccessDenied => {
                "; allow the key to list pools (ListPools, IAM action modelarts:pool:list) or set spec.poolDetails to false"
            }
            _ => "",
        };
        Self {
            message: format!("listing the pools failed: {error}{hint}"),
            credentials: None,
            ..Self::from_upstream(error, "")
        }
    }

    /// The upstream call this poll waited for was dropped before it answered (its leader was
    /// cancelled): nothing is known, so try again soon.
    pub fn interrupted() -> Self {
        Self {
            reason: ErrorClass::Network.reason(),
            message: "the upstream call was interrupted".to_owned(),
            retry: Retry::Transient { after: None },
            credentials: None,
        }
    }
}
