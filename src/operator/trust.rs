//! Where a watch's requests may go. A tenant writes `spec.endpoint` and `spec.iamEndpoint`, so
//! they are hostile until checked: keyless credentials (a ServiceAccount token, the operator's
//! own temporary keys and security token) go only to Huawei's endpoints of the watch's region
//! or to endpoints the cluster admin trusts (`--trusted-endpoint`), and an admin may narrow the
//! hosts of every other watch too (`--allowed-endpoint-host`).
//!
//! A plain decision: a spec's endpoints and the admin's lists in, a refusal out. Nothing here
//! calls anyone, which is the point: a refused watch sends nothing anywhere.

use std::fmt;

use crate::modelarts::{Endpoint, EndpointError};

use super::reasons;
use super::target::SpecError;

/// Which service an endpoint of a spec is for: its field and Huawei's endpoint for a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointRole {
    /// `spec.endpoint`: the statistics call.
    ModelArts,
    /// `spec.iamEndpoint`: the project-id lookup and the ServiceAccount token exchange.
    Iam,
}

impl EndpointRole {
    /// The spec field that names it.
    pub fn field(self) -> &'static str {
        match self {
            Self::ModelArts => "endpoint",
            Self::Iam => "iamEndpoint",
        }
    }

    /// Huawei's endpoint of this service in `region`.
    fn for_region(self, region: &str) -> Result<Endpoint, EndpointError> {
        match self {
            Self::ModelArts => Endpoint::modelarts_for_region(region),
            Self::Iam => Endpoint::iam_for_region(region),
        }
    }

    fn service(self) -> &'static str {
        match self {
            Self::ModelArts => "ModelArts",
            Self::Iam => "IAM",
        }
    }
}

/// A host pattern of `--allowed-endpoint-host`: a host name (`modelarts.example.com`), or a
/// wildcard for every host below a domain (`*.example.com`, which does not match
/// `example.com` itself, as in TLS certificates).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this host.
    Exact(String),
    /// Any host that ends in `.` followed by this domain.
    Below(String),
}

impl HostPattern {
    /// Parses a pattern; hosts compare without regard to case, as DNS does.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim().to_ascii_lowercase();
        let (below, host) = match text.strip_prefix("*.") {
            Some(domain) => (true, domain),
            None => (false, text.as_str()),
        };
        let valid_label = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if host.is_empty() || host.len() > 253 || !host.split('.').all(valid_label) {
            return Err(format!(
                "{text:?} is not a host pattern: give a host name (modelarts.example.com) or a \
                 wildcard below a domain (*.example.com)"
            ));
        }
        Ok(if below {
            Self::Below(host.to_owned())
        } else {
            Self::Exact(host.to_owned())
        })
    }

    /// Whether `host` matches.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        match self {
            Self::Exact(exact) => host == *exact,
            Self::Below(domain) => host
                .strip_suffix(domain.as_str())
                .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(host) => f.write_str(host),
            Self::Below(domain) => write!(f, "*.{domain}"),
        }
    }
}

/// The cluster admin's rules for the endpoints that specs name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointPolicy {
    /// Let `http://` reach hosts that are not loopback (`--allow-http-endpoints`).
    pub allow_http: bool,
    /// Endpoints trusted with keyless credentials besides Huawei's (`--trusted-endpoint`):
    /// simulators, private clouds.
    pub trusted: Vec<Endpoint>,
    /// Hosts that any spec may name (`--allowed-endpoint-host`); empty allows every host.
    pub allowed_hosts: Vec<HostPattern>,
}

/// What a spec says of one endpoint.
#[derive(Clone, Copy, Debug)]
pub struct NamedEndpoint<'a> {
    /// Which service it is for.
    pub role: EndpointRole,
    /// The endpoint the watch would call.
    pub endpoint: &'a Endpoint,
    /// Whether the spec wrote it (`spec.endpoint`, `spec.iamEndpoint`) rather than derived it
    /// from `spec.region`.
    pub written: bool,
    /// `spec.region`, if any.
    pub region: Option<&'a str>,
}

impl EndpointPolicy {
    /// Whether a watch may call `named`; `keyless` says whether the calls carry keyless
    /// credentials (a ServiceAccount token, the operator's own keys).
    pub fn check(&self, named: NamedEndpoint<'_>, keyless: bool) -> Result<(), SpecError> {
        let NamedEndpoint {
            role,
            endpoint,
            written,
            region,
        } = named;
        let huawei = region.and_then(|region| role.for_region(region).ok());
        if !written || huawei.as_ref() == Some(endpoint) || self.trusted.contains(endpoint) {
            return Ok(());
        }
        if keyless {
            let of_region = match (region, &huawei) {
                (Some(region), Some(huawei)) => {
                    format!(
                        "Huawei's {} endpoint of region {region} ({huawei})",
                        role.service()
                    )
                }
                _ => format!("Huawei's {} endpoint of spec.region", role.service()),
            };
            return Err(SpecError::refused(
                role.field(),
                reasons::ENDPOINT_NOT_TRUSTED,
                format!(
                    "{endpoint} is neither {of_region} nor an endpoint the cluster admin trusts, and \
                     keyless credentials (a ServiceAccount token, poolwatch's own keys) are sent \
                     only to those: remove spec.{field} to use the region's endpoint, or ask the \
                     cluster admin to trust it with --trusted-endpoint (chart value trustedEndpoints)",
                    field = role.field(),
                ),
            ));
        }
        let host = endpoint
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if self.allowed_hosts.is_empty() || self.allowed_hosts.iter().any(|p| p.matches(host)) {
            return Ok(());
        }
        let patterns: Vec<String> = self.allowed_hosts.iter().map(ToString::to_string).collect();
        Err(SpecError::refused(
            role.field(),
            reasons::ENDPOINT_NOT_ALLOWED,
            format!(
                "the host {host} is not one the cluster admin allows ({}): name an allowed host, \
                 remove spec.{field} to use the region's endpoint, or ask the cluster admin to \
                 allow it with --allowed-endpoint-host (chart value allowedEndpointHosts)",
                patterns.join(", "),
                field = role.field(),
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> Endpoint {
        Endpoint::parse(url, false).unwrap()
    }

    fn named<'a>(
        role: EndpointRole,
        endpoint: &'a Endpoint,
        region: Option<&'a str>,
    ) -> NamedEndpoint<'a> {
        NamedEndpoint {
            role,
            endpoint,
            written: true,
            region,
        }
    }

    #[test]
    fn keyless_credentials_go_only_to_the_regions_endpoints_or_trusted_ones() {
        let policy = EndpointPolicy {
            trusted: vec![endpoint("https://modelarts.private.example:8443")],
            ..EndpointPolicy::default()
        };
        let evil = endpoint("https://evil.example");
        let error = policy
            .check(named(EndpointRole::Iam, &evil, Some("cn-north-4")), true)
            .unwrap_err();
        assert_eq!(error.reason, reasons::ENDPOINT_NOT_TRUSTED);
        assert_eq!(error.field, "iamEndpoint");
        let message = error.to_string();
        for needle in [
            "https://evil.example",
            "https://iam.cn-north-4.myhuaweicloud.com",
            "--trusted-endpoint",
            "trustedEndpoints",
        ] {
            assert!(message.contains(needle), "{message} names {needle}");
        }
        let huawei = endpoint("https://modelarts.cn-north-4.myhuaweicloud.com");
        assert!(
            policy
                .check(
                    named(EndpointRole::ModelArts, &huawei, Some("cn-north-4")),
                    true
                )
                .is_ok()
        );
        // Another region's endpoint is Huawei's, but not the one this watch's region names.
        assert!(
            policy
                .check(
                    named(EndpointRole::ModelArts, &huawei, Some("cn-east-3")),
                    true
                )
                .is_err()
        );
        assert!(
            policy
                .check(named(EndpointRole::ModelArts, &huawei, None), true)
                .is_err()
        );
        let private = endpoint("https://modelarts.private.example:8443");
        assert!(
            policy
                .check(named(EndpointRole::ModelArts, &private, None), true)
                .is_ok()
        );
        // The same host on another port is another endpoint.
        let other_port = endpoint("https://modelarts.private.example:9443");
        assert!(
            policy
                .check(named(EndpointRole::ModelArts, &other_port, None), true)
                .is_err()
        );
        // Derived from the region, an endpoint is Huawei's by construction.
        let derived = NamedEndpoint {
            written: false,
            ..named(EndpointRole::Iam, &evil, None)
        };
        assert!(policy.check(derived, true).is_ok());
    }

    #[test]
    fn watches_with_their_own_keys_may_name_any_host_unless_the_admin_narrows_them() {
        let evil = endpoint("https://evil.example");
        assert!(
            EndpointPolicy::default()
                .check(named(EndpointRole::ModelArts, &evil, None), false)
                .is_ok()
        );
        let narrowed = EndpointPolicy {
            allowed_hosts: vec![HostPattern::parse("*.myhuaweicloud.com").unwrap()],
            ..EndpointPolicy::default()
        };
        let error = narrowed
            .check(named(EndpointRole::ModelArts, &evil, None), false)
            .unwrap_err();
        assert_eq!(error.reason, reasons::ENDPOINT_NOT_ALLOWED);
        assert!(
            error.to_string().contains("--allowed-endpoint-host"),
            "{error}"
        );
        let huawei = endpoint("https://modelarts.cn-north-4.myhuaweicloud.com");
        assert!(
            narrowed
                .check(named(EndpointRole::ModelArts, &huawei, None), false)
                .is_ok()
        );
    }

    #[test]
    fn host_patterns_match_hosts_and_wildcards_only_below_their_domain() {
        let below = HostPattern::parse("*.Example.com").unwrap();
        assert!(below.matches("modelarts.example.com"));
        assert!(below.matches("A.B.EXAMPLE.COM"));
        assert!(!below.matches("example.com"));
        assert!(!below.matches("evilexample.com"));
        assert!(!below.matches("example.com.evil.net"));
        let exact = HostPattern::parse("modelarts.example.com").unwrap();
        assert!(exact.matches("MODELARTS.example.com"));
        assert!(!exact.matches("x.modelarts.example.com"));
        for bad in [
            "",
            "*.",
            "*",
            "a..b",
            "-a.com",
            "a b",
            "https://a.com",
            "*.*.a.com",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(below.to_string(), "*.example.com");
    }
}
