//! Validated base URLs of ModelArts and IAM, and the region table that derives them.

use std::fmt;
use std::net::IpAddr;

use url::{Host, Url};

/// The regions where ModelArts runs at `https://modelarts.{region}.myhuaweicloud.com`.
const MODELARTS_REGIONS: &[&str] = &[
    "af-north-1",
    "af-south-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "cn-east-3",
    "cn-east-4",
    "cn-north-1",
    "cn-north-11",
    "cn-north-12",
    "cn-north-2",
    "cn-north-4",
    "cn-north-9",
    "cn-south-1",
    "cn-southwest-2",
    "cn-southwest-3",
    "la-north-2",
    "la-south-2",
    "me-east-1",
    "sa-brazil-1",
    "tr-west-1",
];

/// The one region whose ModelArts endpoint is under `myhuaweicloud.cn`.
const AP_SOUTHEAST_1: &str = "ap-southeast-1";

/// ModelArts regions that have a regional IAM endpoint in the official SDK's table; the others
/// use the global IAM endpoint, as the SDK does.
const REGIONAL_IAM: &[&str] = &[
    "af-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "cn-east-3",
    "cn-east-4",
    "cn-north-1",
    "cn-north-12",
    "cn-north-2",
    "cn-north-4",
    "cn-north-9",
    "cn-south-1",
    "cn-southwest-2",
    "la-north-2",
    "la-south-2",
    "me-east-1",
    "sa-brazil-1",
    "tr-west-1",
];

const GLOBAL_IAM: &str = "https://iam.myhuaweicloud.com";

/// Why an endpoint or region was refused. Each message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The text is empty.
    #[error(
        "the endpoint is empty: give a URL such as https://modelarts.cn-north-4.myhuaweicloud.com"
    )]
    Empty,
    /// The text is not a URL.
    #[error(
        "the endpoint {input:?} is not a valid URL ({reason}): give one such as https://modelarts.cn-north-4.myhuaweicloud.com"
    )]
    InvalidUrl {
        /// What was given.
        input: String,
        /// What the URL parser said.
        reason: String,
    },
    /// The scheme is neither `https` nor `http`.
    #[error(
        "the endpoint {input:?} uses the scheme {scheme:?}: use https:// (or http:// for a local simulator)"
    )]
    UnsupportedScheme {
        /// What was given.
        input: String,
        /// The scheme found.
        scheme: String,
    },
    /// The URL has a path: the client adds the API paths itself.
    #[error(
        "the endpoint {input:?} has the path {path:?}: drop the path and give only scheme, host and port (e.g. {suggestion})"
    )]
    HasPath {
        /// What was given.
        input: String,
        /// The path found.
        path: String,
        /// The endpoint without its path.
        suggestion: String,
    },
    /// The URL has a query, a fragment or user info.
    #[error("the endpoint {input:?} has {what}: give only scheme, host and port")]
    HasExtra {
        /// What was given (with any user info removed).
        input: String,
        /// What is extra: a query, a fragment, a user name or password.
        what: &'static str,
    },
    /// Plain HTTP to a host that is not loopback, and plain HTTP was not allowed.
    #[error(
        "the endpoint {input:?} uses plain http:// to a host that is not loopback, which would expose signed requests on the network: use https://, or allow plain HTTP explicitly (--allow-http-endpoints) for an in-cluster simulator"
    )]
    PlainHttp {
        /// What was given.
        input: String,
    },
    /// No endpoint is known for the region.
    #[error(
        "no {service} endpoint is known for region {region:?}: check the region name, or set the {field} explicitly"
    )]
    UnknownRegion {
        /// The region given.
        region: String,
        /// `ModelArts` or `IAM`.
        service: &'static str,
        /// The field that overrides it (`endpoint` or `iamEndpoint`).
        field: &'static str,
    },
}

/// A validated base URL: `http` or `https`, a host, an optional port, and nothing else.
///
/// Plain `http` is accepted only for loopback hosts (127.0.0.0/8, ::1, `localhost`) unless the
/// caller allows it. The port is kept only when it is not the scheme's default, so
/// [`Endpoint::authority`] is exactly the `Host` header a client sends and signs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    url: Url,
}

impl Endpoint {
    /// Parses and validates an endpoint such as `https://modelarts.cn-north-4.myhuaweicloud.com`.
    /// A trailing `/` is accepted; any other path is an error.
    pub fn parse(input: &str, allow_http: bool) -> Result<Self, EndpointError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(EndpointError::Empty);
        }
        let url = Url::parse(trimmed).map_err(|e| EndpointError::InvalidUrl {
            input: scrub_userinfo(trimmed),
            reason: e.to_string(),
        })?;
        let shown = scrub_userinfo(trimmed);
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EndpointError::HasExtra {
                input: shown,
                what: "a user name or password",
            });
        }
        let scheme = url.scheme();
        if scheme != "https" && scheme != "http" {
            return Err(EndpointError::UnsupportedScheme {
                input: shown,
                scheme: scheme.to_owned(),
            });
        }
        if url.host().is_none() {
            return Err(EndpointError::InvalidUrl {
                input: shown,
                reason: "no host".to_owned(),
            });
        }
        if url.query().is_some() {
            return Err(EndpointError::HasExtra {
                input: shown,
                what: "a query string",
            });
        }
        if url.fragment().is_some() {
            return Err(EndpointError::HasExtra {
                input: shown,
                what: "a fragment",
            });
        }
        if url.path() != "/" && !url.path().is_empty() {
            let mut base = url.clone();
            base.set_path("");
            return Err(EndpointError::HasPath {
                input: shown,
                path: url.path().to_owned(),
                suggestion: base.as_str().trim_end_matches('/').to_owned(),
            });
        }
        let plain_http = scheme == "http";
        let endpoint = Self { url };
        if plain_http && !allow_http && !endpoint.is_loopback() {
            return Err(EndpointError::PlainHttp { input: shown });
        }
        Ok(endpoint)
    }

    /// The ModelArts endpoint of a Huawei Cloud region (`ap-southeast-1` is under `.cn`).
    pub fn modelarts_for_region(region: &str) -> Result<Self, EndpointError> {
        let url = if region == AP_SOUTHEAST_1 {
            format!("https://modelarts.{AP_SOUTHEAST_1}.myhuaweicloud.cn")
        } else if MODELARTS_REGIONS.contains(&region) {
            format!("https://modelarts.{region}.myhuaweicloud.com")
        } else {
            return Err(EndpointError::UnknownRegion {
                region: region.to_owned(),
                service: "ModelArts",
                field: "endpoint",
            });
        };
        Self::parse(&url, false)
    }

    /// The IAM endpoint for a region's project-id lookup: the regional IAM endpoint where the
    /// official SDK knows one, else the global `https://iam.myhuaweicloud.com`.
    pub fn iam_for_region(region: &str) -> Result<Self, EndpointError> {
        let url = if REGIONAL_IAM.contains(&region) {
            format!("https://iam.{region}.myhuaweicloud.com")
        } else if MODELARTS_REGIONS.contains(&region) {
            GLOBAL_IAM.to_owned()
        } else {
            return Err(EndpointError::UnknownRegion {
                region: region.to_owned(),
                service: "IAM",
                field: "iamEndpoint",
            });
        };
        Self::parse(&url, false)
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &str {
        self.url.scheme()
    }

    /// The host as written in a URL (IPv6 addresses in brackets).
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// The port when it is not the scheme's default.
    pub fn port(&self) -> Option<u16> {
        self.url.port()
    }

    /// `host[:port]`: the `Host` header value to send and sign.
    pub fn authority(&self) -> String {
        match self.url.port() {
            Some(port) => format!("{}:{port}", self.host()),
            None => self.host().to_owned(),
        }
    }

    /// Whether the host is a loopback address or `localhost`.
    pub fn is_loopback(&self) -> bool {
        match self.url.host() {
            Some(Host::Domain(d)) => {
                d.eq_ignore_ascii_case("localhost")
                    || d.to_ascii_lowercase().ends_with(".localhost")
            }
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            None => false,
        }
    }

    /// Whether requests travel in the clear to a host that is not loopback.
    pub fn is_plain_http_to_remote(&self) -> bool {
        self.scheme() == "http" && !self.is_loopback()
    }

    /// The full URL of `path` (which starts with `/`) with an already encoded `query`.
    pub(crate) fn url_for(&self, path: &str, query: &str) -> Result<Url, url::ParseError> {
        let mut text = format!("{}{path}", self);
        if !query.is_empty() {
            text.push('?');
            text.push_str(query);
        }
        Url::parse(&text)
    }
}

impl fmt::Display for Endpoint {
    /// `scheme://host[:port]`, without a trailing slash.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme(), self.authority())
    }
}

impl std::str::FromStr for Endpoint {
    type Err = EndpointError;

    /// Parses with plain HTTP allowed only for loopback hosts.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s, false)
    }
}

/// Removes `user:password@` from a URL-like text before it goes into a message.
fn scrub_userinfo(input: &str) -> String {
    if let Some((scheme, rest)) = input.split_once("://") {
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{scheme}://[REDACTED]@{}", &rest[at + 1..]);
        }
    }
    input.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str, allow_http: bool) -> Endpoint {
        match Endpoint::parse(input, allow_http) {
            Ok(e) => e,
            Err(e) => panic!("{input}: {e}"),
        }
    }

    #[test]
    fn https_endpoints_parse_with_or_without_trailing_slash() {
        let e = ok("https://modelarts.cn-north-4.myhuaweicloud.com/", false);
        assert_eq!(
            e.to_string(),
            "https://modelarts.cn-north-4.myhuaweicloud.com"
        );
        assert_eq!(e.authority(), "modelarts.cn-north-4.myhuaweicloud.com");
        assert_eq!(e.port(), None);
    }

    #[test]
    fn default_port_is_dropped_and_other_ports_kept() {
        assert_eq!(ok("https://h.example:443", false).authority(), "h.example");
        assert_eq!(
            ok("https://h.example:8443", false).authority(),
            "h.example:8443"
        );
        assert_eq!(ok("http://127.0.0.1:80", false).authority(), "127.0.0.1");
        assert_eq!(ok("http://[::1]:9000", false).authority(), "[::1]:9000");
    }

    #[test]
    fn path_is_refused_with_advice() {
        let err = Endpoint::parse("https://h.example/v2/abc", false);
        let Err(err @ EndpointError::HasPath { .. }) = err else {
            panic!("expected HasPath, got {err:?}")
        };
        let msg = err.to_string();
        assert!(msg.contains("drop the path"), "{msg}");
        assert!(msg.contains("https://h.example"), "{msg}");
    }

    #[test]
    fn plain_http_only_for_loopback_unless_allowed() {
        for local in [
            "http://127.0.0.1:8080",
            "http://127.3.4.5",
            "http://[::1]:1",
            "http://localhost:9",
        ] {
            ok(local, false);
        }
        let err = Endpoint::parse("http://simulator.default.svc:8080", false);
        assert!(
            matches!(err, Err(EndpointError::PlainHttp { .. })),
            "{err:?}"
        );
        let msg = err.map(|_| ()).unwrap_err().to_string();
        assert!(msg.contains("--allow-http-endpoints"), "{msg}");
        assert!(ok("http://simulator.default.svc:8080", true).is_plain_http_to_remote());
    }

    #[test]
    fn other_schemes_queries_fragments_and_userinfo_are_refused() {
        assert!(matches!(
            Endpoint::parse("ftp://h.example", false),
            Err(EndpointError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            Endpoint::parse("https://h.example/?a=b", false),
            Err(EndpointError::HasExtra { .. })
        ));
        assert!(matches!(
            Endpoint::parse("https://h.example/#x", false),
            Err(EndpointError::HasExtra { .. })
        ));
        let err = Endpoint::parse("https://user:hunter2@h.example", false);
        assert!(matches!(err, Err(EndpointError::HasExtra { .. })));
        assert!(!format!("{err:?}").contains("hunter2"));
        assert!(matches!(
            Endpoint::parse("  ", false),
            Err(EndpointError::Empty)
        ));
        assert!(matches!(
            Endpoint::parse("modelarts.cn-north-4.myhuaweicloud.com", false),
            Err(EndpointError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn region_table_gives_modelarts_endpoints() {
        let e = Endpoint::modelarts_for_region("cn-north-4").map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Ok("https://modelarts.cn-north-4.myhuaweicloud.com")
        );
        let e = Endpoint::modelarts_for_region("ap-southeast-1").map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Ok("https://modelarts.ap-southeast-1.myhuaweicloud.cn")
        );
        for region in MODELARTS_REGIONS {
            assert!(Endpoint::modelarts_for_region(region).is_ok(), "{region}");
            assert!(Endpoint::iam_for_region(region).is_ok(), "{region}");
        }
    }

    #[test]
    fn unknown_region_names_the_field_to_set() {
        let err = Endpoint::modelarts_for_region("mars-east-1")
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().contains("set the endpoint"), "{err}");
        let err = Endpoint::iam_for_region("mars-east-1")
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().contains("iamEndpoint"), "{err}");
    }

    #[test]
    fn iam_endpoints_follow_the_sdk_table() {
        let e = Endpoint::iam_for_region("cn-north-4").map(|e| e.to_string());
        assert_eq!(e.as_deref(), Ok("https://iam.cn-north-4.myhuaweicloud.com"));
        let e = Endpoint::iam_for_region("ap-southeast-1").map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Ok("https://iam.ap-southeast-1.myhuaweicloud.com")
        );
        let e = Endpoint::iam_for_region("cn-north-11").map(|e| e.to_string());
        assert_eq!(e.as_deref(), Ok("https://iam.myhuaweicloud.com"));
    }

    #[test]
    fn url_for_appends_path_and_query() {
        let e = ok("https://h.example:8443/", false);
        let url = e.url_for("/v2/p/statistics/pools", "workspaceId=0");
        assert_eq!(
            url.map(|u| u.to_string()).as_deref(),
            Ok("https://h.example:8443/v2/p/statistics/pools?workspaceId=0")
        );
    }
}
