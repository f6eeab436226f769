//! Faults the simulator injects on request: error answers, latency, hangs, broken bodies and
//! answers whose strings are far longer than Huawei's.

use serde::{Deserialize, Serialize};

/// Which simulated API a fault or a counter concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Api {
    /// `GET /v2/{project_id}/statistics/pools`.
    Statistics,
    /// `GET /v2/{project_id}/pools`: ListPools.
    ListPools,
    /// `GET /v3/projects` on IAM.
    Iam,
    /// `POST /v3.0/OS-AUTH/id-token/tokens` on IAM: an OIDC id_token for an IAM token.
    IdToken,
    /// `POST /v3.0/OS-CREDENTIAL/securitytokens` on IAM: an IAM token for temporary credentials.
    SecurityToken,
    /// `POST /v1/pod-identity/credentials`: CCE Pod Identity's temporary credentials.
    PodIdentity,
    /// `PUT /meta-data/latest/api/token`: an ECS metadata session token.
    MetadataToken,
    /// `GET /openstack/latest/securitykey`: the ECS metadata service's temporary credentials.
    Metadata,
    /// Any other path (answered 404 `APIGW.0101`).
    Other,
}

impl Api {
    /// The name used in JSON and counters.
    pub fn as_str(&self) -> &'static str {
        match self {
            Api::Statistics => "statistics",
            Api::ListPools => "listPools",
            Api::Iam => "iam",
            Api::IdToken => "idToken",
            Api::SecurityToken => "securityToken",
            Api::PodIdentity => "podIdentity",
            Api::MetadataToken => "metadataToken",
            Api::Metadata => "metadata",
            Api::Other => "other",
        }
    }

    /// Whether requests to it must be signed with an access key (the keyless endpoints are how
    /// a client without one gets one).
    pub fn is_signed(&self) -> bool {
        matches!(self, Api::Statistics | Api::ListPools | Api::Iam)
    }
}

/// What a fault does to a matching request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum FaultKind {
    /// Answer with this status and Huawei's JSON error body. `errorCode` and `errorMsg`
    /// default to what the gateway or ModelArts sends for the status (e.g. 429 `APIGW.0308`).
    Status {
        /// The HTTP status.
        status: u16,
        /// Huawei's `error_code`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_code: Option<String>,
        /// Huawei's `error_msg`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_msg: Option<String>,
        /// A `Retry-After` header value, sent as given (seconds or an HTTP date).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<String>,
    },
    /// Wait this long, then answer normally.
    Latency {
        /// The delay in milliseconds.
        millis: u64,
    },
    /// Never answer (the connection stays open).
    Hang,
    /// Declare the full `Content-Length`, send half the body, then close the connection.
    Truncated,
    /// Answer 200 with a valid-looking JSON body of this many bytes, chunked, no length.
    Oversized {
        /// The body size in bytes.
        bytes: u64,
    },
    /// Answer 200 with a body that is not JSON.
    InvalidJson,
    /// Answer 200 with JSON that is not the statistics shape.
    WrongShape,
    /// Answer 302 to this location.
    Redirect {
        /// The `Location` header.
        location: String,
    },
    /// Answer as usual, but with an `operationTime` of `bytes` bytes (the usual time, then
    /// [`long_text`]'s filler) and an `X-Request-Id` of [`LONG_REQUEST_ID_BYTES`]: what an
    /// endpoint that means harm to the operator's memory sends. Only a 200 statistics answer
    /// has an `operationTime`; other answers are left as they are.
    LongOperationTime {
        /// The length of `operationTime` in bytes of UTF-8.
        bytes: u64,
    },
    /// Answer with this status and an error body whose `error_code` and `error_msg` (Huawei's
    /// usual ones for the status, then [`long_text`]'s filler) are this long, and an
    /// `X-Request-Id` of [`LONG_REQUEST_ID_BYTES`].
    LongError {
        /// The HTTP status.
        status: u16,
        /// The length of `error_code` in bytes of UTF-8.
        code_bytes: u64,
        /// The length of `error_msg` in bytes of UTF-8.
        msg_bytes: u64,
    },
}

/// The length of the `X-Request-Id` of the long-string faults: far past Huawei's 32 hex digits,
/// and within the header sizes HTTP clients accept (a longer header would be refused before
/// any string of it is read).
pub const LONG_REQUEST_ID_BYTES: usize = 4096;

/// `start`, then characters of one to four bytes (`aé€𝄞`, so that a cut at any byte can fall
/// inside a character), to `bytes` bytes of UTF-8 or the last whole character before.
pub fn long_text(start: &str, bytes: usize) -> String {
    let mut text = String::with_capacity(bytes);
    for c in start.chars().chain("aé€𝄞".chars().cycle()) {
        if text.len() + c.len_utf8() > bytes {
            break;
        }
        text.push(c);
    }
    text
}

/// `request_id`, then `x` to [`LONG_REQUEST_ID_BYTES`] (a header value must be ASCII).
pub(crate) fn long_request_id(request_id: &str) -> String {
    let mut id = format!("{request_id}-");
    let pad = LONG_REQUEST_ID_BYTES.saturating_sub(id.len());
    id.extend(std::iter::repeat_n('x', pad));
    id
}

/// A fault and the requests it applies to. Unset scopes match everything; `times` limits it to
/// the next N matching requests (unset: until cleared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// What happens.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// Only this API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<Api>,
    /// Only this project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Only this workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Only requests signed with this access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// How many matching requests it applies to; unset: until cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

impl Fault {
    /// A fault of this kind on every request, until cleared.
    pub fn new(kind: FaultKind) -> Self {
        Self {
            kind,
            api: None,
            project: None,
            workspace: None,
            access_key_id: None,
            times: None,
        }
    }

    /// An error answer with Huawei's usual code and message for `status`.
    pub fn status(status: u16) -> Self {
        Self::new(FaultKind::Status {
            status,
            error_code: None,
            error_msg: None,
            retry_after: None,
        })
    }

    /// Sets `Retry-After` on a status fault (no effect on other kinds).
    #[must_use]
    pub fn retry_after(mut self, value: impl Into<String>) -> Self {
        if let FaultKind::Status { retry_after, .. } = &mut self.kind {
            *retry_after = Some(value.into());
        }
        self
    }

    /// Sets the error code and message of a status fault (no effect on other kinds).
    #[must_use]
    pub fn error(mut self, code: impl Into<String>, msg: impl Into<String>) -> Self {
        if let FaultKind::Status {
            error_code,
            error_msg,
            ..
        } = &mut self.kind
        {
            *error_code = Some(code.into());
            *error_msg = Some(msg.into());
        }
        self
    }

    /// Limits the fault to the next `n` matching requests.
    #[must_use]
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// Limits the fault to one API.
    #[must_use]
    pub fn on(mut self, api: Api) -> Self {
        self.api = Some(api);
        self
    }

    /// Limits the fault to one project.
    #[must_use]
    pub fn for_project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// Limits the fault to one workspace.
    #[must_use]
    pub fn for_workspace(mut self, workspace: impl Into<String>) -> Self {
        self.workspace = Some(workspace.into());
        self
    }

    /// Whether the fault applies to a request.
    pub(crate) fn matches(
        &self,
        api: Api,
        project: Option<&str>,
        workspace: Option<&str>,
        access_key_id: Option<&str>,
    ) -> bool {
        let scope = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == got)
        };
        self.api.is_none_or(|a| a == api)
            && scope(&self.project, project)
            && scope(&self.workspace, workspace)
            && scope(&self.access_key_id, access_key_id)
    }
}

/// Huawei's error code and message for a status, as the gateway or ModelArts sends them.
pub(crate) fn default_error(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("ModelArts.50004000", "Bad request."),
        401 => (
            "APIGW.0301",
            "Incorrect IAM authentication information: verify aksk signature fail",
        ),
        403 => (
            "ModelArts.0204",
            "Policy doesn't allow modelarts:pool:list to be performed.",
        ),
        404 => ("ModelArts.50015001", "Pool not found."),
        429 => (
            "APIGW.0308",
            "The throttling threshold has been reached: policy user over ratelimit,limit:200,time:1 second",
        ),
        502 | 503 => ("APIGW.0201", "Backend unavailable"),
        504 => ("APIGW.0202", "Backend timeout"),
        _ => ("ModelArts.50005000", "internal error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_read_from_admin_json() {
        let json = r#"{"kind":"status","status":429,"retryAfter":"2","project":"p","times":3}"#;
        let fault: Result<Fault, _> = serde_json::from_str(json);
        assert_eq!(
            fault.ok(),
            Some(
                Fault::status(429)
                    .retry_after("2")
                    .for_project("p")
                    .times(3)
            )
        );
        let fault: Result<Fault, _> =
            serde_json::from_str(r#"{"kind":"oversized","bytes":2097152,"api":"statistics"}"#);
        assert_eq!(
            fault.ok(),
            Some(Fault::new(FaultKind::Oversized { bytes: 2_097_152 }).on(Api::Statistics))
        );
        assert!(serde_json::from_str::<Fault>(r#"{"kind":"explode"}"#).is_err());
        let fault: Result<Fault, _> = serde_json::from_str(
            r#"{"kind":"longError","status":500,"codeBytes":1000000,"msgBytes":10,"api":"statistics"}"#,
        );
        assert_eq!(
            fault.ok(),
            Some(
                Fault::new(FaultKind::LongError {
                    status: 500,
                    code_bytes: 1_000_000,
                    msg_bytes: 10,
                })
                .on(Api::Statistics)
            )
        );
        let fault: Result<Fault, _> =
            serde_json::from_str(r#"{"kind":"longOperationTime","bytes":1000000}"#);
        assert_eq!(
            fault.ok(),
            Some(Fault::new(FaultKind::LongOperationTime {
                bytes: 1_000_000
            }))
        );
    }

    #[test]
    fn long_texts_have_the_length_asked_and_multi_byte_characters() {
        for bytes in [0, 3, 40, 41, 42, 43, 1000, 1_000_000] {
            let text = long_text("2025-03-27 11:48:55.446172146 +0000 UTC", bytes);
            // The last whole character that fits: at most 3 bytes short.
            assert!(
                text.len() <= bytes && text.len() + 3 >= bytes,
                "{bytes}: {}",
                text.len()
            );
            assert!(text.starts_with("2025") || bytes < 4, "{bytes}");
        }
        assert!(long_text("", 100).contains('𝄞'));
        let id = long_request_id("abc");
        assert_eq!(id.len(), LONG_REQUEST_ID_BYTES);
        assert!(id.starts_with("abc-") && id.is_ascii());
    }

    #[test]
    fn scopes_match_only_what_they_name() {
        let fault = Fault::new(FaultKind::Hang)
            .for_project("p")
            .on(Api::Statistics);
        assert!(fault.matches(Api::Statistics, Some("p"), Some("0"), Some("AK")));
        assert!(!fault.matches(Api::Statistics, Some("q"), Some("0"), Some("AK")));
        assert!(!fault.matches(Api::Iam, None, None, Some("AK")));
        assert!(Fault::new(FaultKind::Hang).matches(Api::Iam, None, None, None));
    }

    #[test]
    fn api_names_match_their_json() {
        for api in [
            Api::Statistics,
            Api::Iam,
            Api::IdToken,
            Api::SecurityToken,
            Api::PodIdentity,
            Api::MetadataToken,
            Api::Metadata,
            Api::Other,
        ] {
            assert_eq!(
                serde_json::to_value(api).ok(),
                Some(serde_json::Value::from(api.as_str()))
            );
        }
        let fault: Result<Fault, _> =
            serde_json::from_str(r#"{"kind":"status","status":503,"api":"idToken"}"#);
        assert_eq!(fault.ok(), Some(Fault::status(503).on(Api::IdToken)));
    }
}
