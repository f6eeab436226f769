//! What a watch's spec asks for, checked beyond the schema: the endpoints to call (and whether
//! the admin's [`EndpointPolicy`] lets them be called), how to find the project id, the
//! workspace and the interval. Anything still wrong here is a condition (`InvalidSpec`,
//! `EndpointNotTrusted`, `EndpointNotAllowed`) that names the field and says what to change.

use std::time::Duration;

use crate::api::{DEFAULT_INTERVAL_DURATION, MINIMUM_INTERVAL, PoolStatisticsWatchSpec};
use crate::modelarts::Endpoint;

use super::reasons;
use super::trust::{EndpointPolicy, EndpointRole, NamedEndpoint};

/// A spec that passed the schema but cannot be used, or that names what the cluster admin does
/// not allow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("spec.{field}: {problem}")]
pub struct SpecError {
    /// The offending field, as a user writes it (`endpoint`, `interval`, …).
    pub field: &'static str,
    /// What is wrong and what to do.
    pub problem: String,
    /// The condition's reason: [`reasons::INVALID_SPEC`], or why the admin's rules refuse it.
    pub reason: &'static str,
}

impl SpecError {
    /// A field that cannot be used as written.
    pub fn invalid(field: &'static str, problem: impl Into<String>) -> Self {
        Self::refused(field, reasons::INVALID_SPEC, problem)
    }

    /// A field refused for `reason`.
    pub fn refused(field: &'static str, reason: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
            reason,
        }
    }
}

/// How the project id is found.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ProjectSource {
    /// Given in the spec.
    Given(String),
    /// Looked up through IAM by the region's name.
    Lookup {
        /// The IAM endpoint to ask.
        iam_endpoint: Endpoint,
        /// The region, which is also the project's name.
        region: String,
    },
}

/// Where a watch's credentials come from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CredentialSource {
    /// Access keys in a Secret of the watch's namespace.
    Secret {
        /// The Secret's name.
        name: String,
    },
    /// Temporary keys for a ServiceAccount of the watch's namespace, from IAM.
    Federation(FederationSource),
    /// The operator's own identity (CCE Pod Identity or the node's agency).
    OperatorIdentity,
}

/// A ServiceAccount federation: what the token exchange needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FederationSource {
    /// The ServiceAccount, in the watch's namespace.
    pub service_account: String,
    /// The IAM identity provider's id.
    pub identity_provider_id: String,
    /// The token's audience (the provider's client id).
    pub audience: String,
    /// Where to exchange it.
    pub iam_endpoint: Endpoint,
}

impl std::fmt::Display for CredentialSource {
    /// What `status.credentials` shows: the kind and the object's name, never a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret { name } => write!(f, "Secret/{name}"),
            Self::Federation(federation) => {
                write!(f, "ServiceAccount/{}", federation.service_account)
            }
            Self::OperatorIdentity => f.write_str("OperatorIdentity"),
        }
    }
}

/// A watch's spec, resolved into what the ModelArts client needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchTarget {
    /// The ModelArts endpoint.
    pub endpoint: Endpoint,
    /// Where the project id comes from.
    pub project: ProjectSource,
    /// The workspace id.
    pub workspace_id: String,
    /// The polling interval.
    pub interval: Duration,
    /// Where the credentials come from.
    pub credentials: CredentialSource,
    /// Whether each poll also lists the workspace's pools (`spec.poolDetails`).
    pub pool_details: bool,
}

impl WatchTarget {
    /// Resolves `spec` under the admin's `policy`: the endpoints it may call (plain `http://`,
    /// trusted and allowed hosts) are checked here, before anything is read or sent.
    pub fn from_spec(
        spec: &PoolStatisticsWatchSpec,
        policy: &EndpointPolicy,
    ) -> Result<Self, SpecError> {
        let interval = parse_interval(&spec.interval)?;
        let region = spec.region.as_deref();
        let endpoint = match (&spec.endpoint, region) {
            (Some(endpoint), _) => Endpoint::parse(endpoint, policy.allow_http)
                .map_err(|e| SpecError::invalid("endpoint", e.to_string()))?,
            (None, Some(region)) => Endpoint::modelarts_for_region(region)
                .map_err(|e| SpecError::invalid("region", e.to_string()))?,
            (None, None) => {
                return Err(SpecError::invalid(
                    "region",
                    "set spec.region (for example cn-north-4) or spec.endpoint",
                ));
            }
        };
        let iam_endpoint = || match (&spec.iam_endpoint, region) {
            (Some(iam), _) => Endpoint::parse(iam, policy.allow_http)
                .map_err(|e| SpecError::invalid("iamEndpoint", e.to_string())),
            (None, Some(region)) => Endpoint::iam_for_region(region)
                .map_err(|e| SpecError::invalid("iamEndpoint", e.to_string())),
            (None, None) => Err(SpecError::invalid(
                "iamEndpoint",
                "spec.federation exchanges the ServiceAccount token at IAM: set spec.region or spec.iamEndpoint",
            )),
        };
        let credentials = credential_source(spec, iam_endpoint)?;
        let project = match (&spec.project_id, region) {
            (Some(project_id), _) => ProjectSource::Given(project_id.clone()),
            (None, Some(region)) => ProjectSource::Lookup {
                iam_endpoint: iam_endpoint()?,
                region: region.to_owned(),
            },
            (None, None) => {
                return Err(SpecError::invalid(
                    "projectId",
                    "the project id cannot be looked up without spec.region: set spec.projectId \
                     (shown in the console under My Credentials) or spec.region",
                ));
            }
        };
        let target = Self {
            endpoint,
            project,
            workspace_id: spec.workspace_id.clone(),
            interval,
            credentials,
            pool_details: spec.pool_details,
        };
        target.check_endpoints(spec, policy)?;
        Ok(target)
    }

    /// The hosts (`host[:port]`) this target calls: ModelArts, and IAM for the project-id
    /// lookup and the token exchange. The operator's own identity's services are the admin's,
    /// not the spec's, and are not among them.
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts = vec![self.endpoint.authority()];
        if let ProjectSource::Lookup { iam_endpoint, .. } = &self.project {
            hosts.push(iam_endpoint.authority());
        }
        if let CredentialSource::Federation(federation) = &self.credentials {
            hosts.push(federation.iam_endpoint.authority());
        }
        hosts
    }

    /// Every endpoint this target's credentials would be sent to, checked against `policy`:
    /// the statistics call, the project-id lookup and the token exchange.
    fn check_endpoints(
        &self,
        spec: &PoolStatisticsWatchSpec,
        policy: &EndpointPolicy,
    ) -> Result<(), SpecError> {
        let keyless = !matches!(self.credentials, CredentialSource::Secret { .. });
        let region = spec.region.as_deref();
        let iam_written = spec.iam_endpoint.is_some();
        let mut named = vec![NamedEndpoint {
            role: EndpointRole::ModelArts,
            endpoint: &self.endpoint,
            written: spec.endpoint.is_some(),
            region,
        }];
        if let ProjectSource::Lookup { iam_endpoint, .. } = &self.project {
            named.push(NamedEndpoint {
                role: EndpointRole::Iam,
                endpoint: iam_endpoint,
                written: iam_written,
                region,
            });
        }
        if let CredentialSource::Federation(federation) = &self.credentials {
            named.push(NamedEndpoint {
                role: EndpointRole::Iam,
                endpoint: &federation.iam_endpoint,
                written: iam_written,
                region,
            });
        }
        named
            .into_iter()
            .try_for_each(|endpoint| policy.check(endpoint, keyless))
    }
}

/// The one credential source the spec names (the schema enforces exactly one; objects stored
/// before it did are told here).
fn credential_source(
    spec: &PoolStatisticsWatchSpec,
    iam_endpoint: impl Fn() -> Result<Endpoint, SpecError>,
) -> Result<CredentialSource, SpecError> {
    match (
        &spec.credentials_secret_ref,
        &spec.federation,
        &spec.operator_identity,
    ) {
        (Some(secret), None, None) => Ok(CredentialSource::Secret {
            name: secret.name.clone(),
        }),
        (None, Some(federation), None) => Ok(CredentialSource::Federation(FederationSource {
            service_account: federation.service_account_name.clone(),
            identity_provider_id: federation.identity_provider_id.clone(),
            audience: federation.audience.clone(),
            iam_endpoint: iam_endpoint()?,
        })),
        (None, None, Some(_)) => Ok(CredentialSource::OperatorIdentity),
        (None, None, None) => Err(SpecError::invalid("credentialsSecretRef", "no credentials: set spec.credentialsSecretRef, spec.federation or spec.operatorIdentity"
                .to_owned())),
        _ => Err(SpecError::invalid("credentialsSecretRef", "set only one of spec.credentialsSecretRef, spec.federation and spec.operatorIdentity"
                .to_owned())),
    }
}

/// The interval a watch is scheduled by: its spec's, or the default when the spec's cannot be
/// used. Such a spec never hides: its poll fails with the `InvalidSpec` that [`parse_interval`]
/// explains, and the default only paces the retries.
pub fn schedule_interval(spec: &PoolStatisticsWatchSpec) -> Duration {
    parse_interval(&spec.interval).unwrap_or(DEFAULT_INTERVAL_DURATION)
}

/// Parses a Go duration (`5m`, `1h30m`) as the schema does, and enforces the 30 s minimum for
/// objects stored before the schema said so.
pub fn parse_interval(text: &str) -> Result<Duration, SpecError> {
    let parsed: kube::core::Duration = text.parse().map_err(|e| {
        SpecError::invalid(
            "interval",
            format!("{text:?} is not a duration ({e}): write it like 90s, 5m or 1h30m"),
        )
    })?;
    if parsed.is_negative() || Duration::from(parsed) < MINIMUM_INTERVAL {
        return Err(SpecError::invalid(
            "interval",
            format!("{text:?} is below the 30s minimum"),
        ));
    }
    Ok(parsed.into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_interval_text_and_duration_agree() {
        assert_eq!(
            super::parse_interval(crate::api::DEFAULT_INTERVAL),
            Ok(super::DEFAULT_INTERVAL_DURATION)
        );
    }

    use super::*;
    use crate::api::{Federation, LocalSecretReference, OperatorIdentity};

    fn http_allowed() -> EndpointPolicy {
        EndpointPolicy {
            allow_http: true,
            ..EndpointPolicy::default()
        }
    }

    fn spec() -> PoolStatisticsWatchSpec {
        PoolStatisticsWatchSpec {
            project_id: None,
            workspace_id: "0".to_owned(),
            region: Some("cn-north-4".to_owned()),
            endpoint: None,
            iam_endpoint: None,
            credentials_secret_ref: Some(LocalSecretReference {
                name: "creds".to_owned(),
            }),
            federation: None,
            operator_identity: None,
            interval: "5m".to_owned(),
            suspend: false,
            pool_details: false,
        }
    }

    #[test]
    fn a_region_gives_both_endpoints() {
        let target = WatchTarget::from_spec(&spec(), &EndpointPolicy::default()).unwrap();
        assert_eq!(
            target.endpoint.to_string(),
            "https://modelarts.cn-north-4.myhuaweicloud.com"
        );
        let ProjectSource::Lookup {
            iam_endpoint,
            region,
        } = target.project
        else {
            panic!("expected a lookup")
        };
        assert_eq!(
            iam_endpoint.to_string(),
            "https://iam.cn-north-4.myhuaweicloud.com"
        );
        assert_eq!(region, "cn-north-4");
        assert_eq!(target.interval, Duration::from_secs(300));
    }

    #[test]
    fn the_credential_source_is_the_one_the_spec_names() {
        assert_eq!(
            WatchTarget::from_spec(&spec(), &EndpointPolicy::default())
                .unwrap()
                .credentials
                .to_string(),
            "Secret/creds"
        );
        let federation = Federation {
            service_account_name: "reader".to_owned(),
            identity_provider_id: "cce-oidc".to_owned(),
            audience: "poolwatch".to_owned(),
        };
        let federated = PoolStatisticsWatchSpec {
            credentials_secret_ref: None,
            federation: Some(federation.clone()),
            ..spec()
        };
        let target = WatchTarget::from_spec(&federated, &EndpointPolicy::default()).unwrap();
        let CredentialSource::Federation(source) = &target.credentials else {
            panic!("{:?}", target.credentials)
        };
        assert_eq!(
            source.iam_endpoint.to_string(),
            "https://iam.cn-north-4.myhuaweicloud.com"
        );
        assert_eq!(target.credentials.to_string(), "ServiceAccount/reader");

        let without_iam = PoolStatisticsWatchSpec {
            region: None,
            endpoint: Some("https://modelarts.example.com".to_owned()),
            project_id: Some("p".to_owned()),
            ..federated.clone()
        };
        let error = WatchTarget::from_spec(&without_iam, &EndpointPolicy::default()).unwrap_err();
        assert_eq!(error.field, "iamEndpoint");

        let operator = PoolStatisticsWatchSpec {
            credentials_secret_ref: None,
            operator_identity: Some(OperatorIdentity {}),
            ..spec()
        };
        assert_eq!(
            WatchTarget::from_spec(&operator, &EndpointPolicy::default())
                .unwrap()
                .credentials
                .to_string(),
            "OperatorIdentity"
        );
        let none = PoolStatisticsWatchSpec {
            credentials_secret_ref: None,
            ..spec()
        };
        assert!(
            WatchTarget::from_spec(&none, &EndpointPolicy::default())
                .unwrap_err()
                .to_string()
                .contains("no credentials")
        );
        let both = PoolStatisticsWatchSpec {
            federation: Some(federation),
            ..spec()
        };
        assert!(
            WatchTarget::from_spec(&both, &EndpointPolicy::default())
                .unwrap_err()
                .to_string()
                .contains("only one")
        );
    }

    #[test]
    fn keyless_watches_send_nothing_to_endpoints_the_admin_does_not_trust() {
        let federated = PoolStatisticsWatchSpec {
            credentials_secret_ref: None,
            federation: Some(Federation {
                service_account_name: "reader".to_owned(),
                identity_provider_id: "cce-oidc".to_owned(),
                audience: "poolwatch".to_owned(),
            }),
            ..spec()
        };
        let evil_iam = PoolStatisticsWatchSpec {
            iam_endpoint: Some("https://evil.example".to_owned()),
            ..federated.clone()
        };
        let error = WatchTarget::from_spec(&evil_iam, &EndpointPolicy::default()).unwrap_err();
        assert_eq!(
            (error.field, error.reason),
            ("iamEndpoint", reasons::ENDPOINT_NOT_TRUSTED)
        );
        let evil_modelarts = PoolStatisticsWatchSpec {
            endpoint: Some("https://evil.example".to_owned()),
            ..federated.clone()
        };
        let error =
            WatchTarget::from_spec(&evil_modelarts, &EndpointPolicy::default()).unwrap_err();
        assert_eq!(
            (error.field, error.reason),
            ("endpoint", reasons::ENDPOINT_NOT_TRUSTED)
        );
        let operator = PoolStatisticsWatchSpec {
            federation: None,
            operator_identity: Some(OperatorIdentity {}),
            ..evil_modelarts.clone()
        };
        let error = WatchTarget::from_spec(&operator, &EndpointPolicy::default()).unwrap_err();
        assert_eq!(error.reason, reasons::ENDPOINT_NOT_TRUSTED);
        // Trusted by the admin, both are fine; so is the same host for a watch with its own keys.
        let trusting = EndpointPolicy {
            trusted: vec![Endpoint::parse("https://evil.example", false).unwrap()],
            ..EndpointPolicy::default()
        };
        assert!(WatchTarget::from_spec(&evil_iam, &trusting).is_ok());
        assert!(WatchTarget::from_spec(&operator, &trusting).is_ok());
        let with_keys = PoolStatisticsWatchSpec {
            endpoint: Some("https://evil.example".to_owned()),
            iam_endpoint: Some("https://evil.example".to_owned()),
            ..spec()
        };
        assert!(WatchTarget::from_spec(&with_keys, &EndpointPolicy::default()).is_ok());
        assert_eq!(
            WatchTarget::from_spec(&with_keys, &EndpointPolicy::default())
                .unwrap()
                .hosts(),
            ["evil.example", "evil.example"]
        );
    }

    #[test]
    fn an_explicit_endpoint_and_project_need_no_region() {
        let spec = PoolStatisticsWatchSpec {
            region: None,
            endpoint: Some("https://modelarts.example.internal:8443".to_owned()),
            project_id: Some("p1".to_owned()),
            ..spec()
        };
        let target = WatchTarget::from_spec(&spec, &EndpointPolicy::default()).unwrap();
        assert_eq!(target.project, ProjectSource::Given("p1".to_owned()));
        assert_eq!(
            target.endpoint.authority(),
            "modelarts.example.internal:8443"
        );
    }

    #[test]
    fn an_unknown_region_without_endpoint_names_the_region() {
        let spec = PoolStatisticsWatchSpec {
            region: Some("xx-nowhere-9".to_owned()),
            ..spec()
        };
        let error = WatchTarget::from_spec(&spec, &EndpointPolicy::default()).unwrap_err();
        assert_eq!(error.field, "region");
        assert!(error.to_string().contains("xx-nowhere-9"), "{error}");
    }

    #[test]
    fn an_endpoint_with_a_path_is_refused_with_advice() {
        let spec = PoolStatisticsWatchSpec {
            endpoint: Some("https://modelarts.example.com/v2".to_owned()),
            ..spec()
        };
        let error = WatchTarget::from_spec(&spec, &EndpointPolicy::default()).unwrap_err();
        assert_eq!(error.field, "endpoint");
        assert!(error.to_string().contains("path"), "{error}");
    }

    #[test]
    fn plain_http_to_a_remote_host_needs_permission() {
        let spec = PoolStatisticsWatchSpec {
            endpoint: Some("http://simulator.poolwatch.svc:8080".to_owned()),
            project_id: Some("p1".to_owned()),
            ..spec()
        };
        assert_eq!(
            WatchTarget::from_spec(&spec, &EndpointPolicy::default())
                .unwrap_err()
                .field,
            "endpoint"
        );
        assert!(WatchTarget::from_spec(&spec, &http_allowed()).is_ok());
    }

    #[test]
    fn no_project_and_no_region_cannot_be_resolved() {
        let spec = PoolStatisticsWatchSpec {
            region: None,
            endpoint: Some("https://modelarts.example.com".to_owned()),
            ..spec()
        };
        assert_eq!(
            WatchTarget::from_spec(&spec, &EndpointPolicy::default())
                .unwrap_err()
                .field,
            "projectId"
        );
    }

    #[test]
    fn intervals_parse_as_go_durations_with_a_minimum() {
        assert_eq!(parse_interval("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_interval("30s").unwrap(), Duration::from_secs(30));
        assert!(
            parse_interval("29s")
                .unwrap_err()
                .problem
                .contains("minimum")
        );
        assert!(
            parse_interval("five")
                .unwrap_err()
                .problem
                .contains("not a duration")
        );
        assert!(parse_interval("-5m").is_err());
    }
}
