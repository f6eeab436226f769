//! The `PoolStatisticsWatch` custom resource: its spec, its status and the schema rules that
//! reject bad input at admission, before the operator ever sees it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::pool_details::{MAX_POOL_DETAILS, PoolDetail};

/// API group of every poolwatch resource.
pub const GROUP: &str = "poolwatch.io";
/// The one served and stored version.
pub const VERSION: &str = "v1alpha1";

/// ModelArts project and workspace ids: letters, digits, `-` and `_`, at most 64 characters.
/// They end up in a URL path and query, so `/`, `?`, `%`, `.` and spaces are refused here
/// rather than escaped into a request nobody meant to send.
pub const ID_PATTERN: &str = "^[A-Za-z0-9_-]+$";
/// Huawei Cloud region names such as `cn-north-4` or `ap-southeast-1`.
pub const REGION_PATTERN: &str = "^[a-z]{2,3}(-[a-z]+)+-[0-9]{1,3}$";
/// An absolute `http(s)://host[:port]` URL. A path is let through the schema so that the
/// operator can say precisely why it is wrong (a condition), instead of a bare regex mismatch.
pub const ENDPOINT_PATTERN: &str = r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*)(:[0-9]{1,5})?(/[^\s?#]*)?$";
/// A Kubernetes object name that is a DNS subdomain (RFC 1123), as Secrets require.
pub const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A token audience: printable characters without spaces (a client id or a URL).
pub const AUDIENCE_PATTERN: &str = r"^[!-~]+$";
/// A Go duration (`90s`, `5m`, `1h30m`), the format of `metav1.Duration` and of CEL's
/// `duration()`, so the schema and the operator parse the same strings.
pub const DURATION_PATTERN: &str = r"^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$";

/// Longest `status.operationTime`: what the client keeps of ModelArts' (see
/// [`crate::modelarts::bounded::OPERATION_TIME`]).
pub const MAX_OPERATION_TIME_LENGTH: usize = crate::modelarts::bounded::OPERATION_TIME;
/// Longest `status.projectId`: the spec's are at most 64 characters, and one resolved through
/// IAM at most 128 (the client refuses longer ones).
pub const MAX_PROJECT_ID_LENGTH: usize = 128;
/// Longest `status.credentials`: `ServiceAccount/` and a 253-character name is 268.
pub const MAX_CREDENTIALS_LENGTH: usize = 300;
/// Longest `status.lastHandledRefreshRequest`: the operator answers the first 256 bytes of the
/// refresh annotation (see [`refresh_request`]).
pub const MAX_REFRESH_REQUEST_LENGTH: usize = 256;

/// What the operator makes of a `poolwatch.io/refresh-requested-at` value: its first
/// [`MAX_REFRESH_REQUEST_LENGTH`] bytes (on a character boundary), so that the status that
/// records the request stays within its schema. Values are timestamps in practice; two longer
/// values that differ only past that are the same request.
pub fn refresh_request(annotation: &str) -> &str {
    crate::modelarts::bounded::prefix(annotation, MAX_REFRESH_REQUEST_LENGTH)
}

/// Default workspace, as ModelArts itself assumes when none is given.
pub const DEFAULT_WORKSPACE_ID: &str = "0";
/// Default polling interval, as the schema writes it.
pub const DEFAULT_INTERVAL: &str = "5m";
/// [`DEFAULT_INTERVAL`] as a duration (a test checks that they agree).
pub const DEFAULT_INTERVAL_DURATION: std::time::Duration = std::time::Duration::from_secs(300);
/// The shortest interval the schema accepts: ModelArts' counts change on the scale of minutes,
/// and a faster poll only spends the user's API quota.
pub const MINIMUM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// What to watch: one ModelArts project and workspace, reached with credentials of the watch's
/// own namespace (access keys in a Secret, or keyless through a ServiceAccount) or, where the
/// cluster admin allows it, the operator's own identity.
// Each printcolumn repeats the same keys (name, type_, …), which this lint takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "poolwatch.io",
    version = "v1alpha1",
    kind = "PoolStatisticsWatch",
    plural = "poolstatisticswatches",
    singular = "poolstatisticswatch",
    shortname = "psw",
    category = "modelarts",
    namespaced,
    status = "PoolStatisticsWatchStatus",
    derive = "PartialEq",
    doc = "Publishes the resource-pool statistics of one Huawei Cloud ModelArts project and workspace.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the latest counts are fresh"
    ),
    printcolumn(
        name = "Created",
        type_ = "integer",
        json_path = ".status.pools.created",
        description = "Pools created"
    ),
    printcolumn(
        name = "Creating",
        type_ = "integer",
        json_path = ".status.pools.creating",
        description = "Pools being created"
    ),
    printcolumn(
        name = "Failed",
        type_ = "integer",
        json_path = ".status.pools.failed",
        description = "Pools that failed to be created in the last three days"
    ),
    printcolumn(
        name = "Pending",
        type_ = "integer",
        json_path = ".status.pools.pending",
        description = "Pools waiting, usually for payment"
    ),
    printcolumn(
        name = "Deleting",
        type_ = "integer",
        json_path = ".status.pools.deleting",
        description = "Pools being deleted",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Project",
        type_ = "string",
        json_path = ".status.projectId",
        description = "Project id in use",
        priority = "1"
    ),
    printcolumn(
        name = "Workspace",
        type_ = "string",
        json_path = ".spec.workspaceId",
        description = "Workspace id",
        priority = "1"
    ),
    printcolumn(
        name = "Credentials",
        type_ = "string",
        json_path = ".status.credentials",
        description = "Which credentials are in use: a Secret, a ServiceAccount or the operator's identity",
        priority = "1"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#,
        description = "Why Ready has its status",
        priority = "1"
    )
)]
#[x_kube(validation = Rule::new("has(self.region) || has(self.endpoint)")
    .message("set spec.region (for example cn-north-4) or spec.endpoint (an https:// URL)")
    .reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new(
    "has(self.credentialsSecretRef) || has(self.federation) || has(self.operatorIdentity)"
)
    .message("set the credentials: spec.credentialsSecretRef (access keys in a Secret), spec.federation (a ServiceAccount of this namespace) or spec.operatorIdentity")
    .reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new(
    "(has(self.credentialsSecretRef) ? 1 : 0) + (has(self.federation) ? 1 : 0) + (has(self.operatorIdentity) ? 1 : 0) <= 1"
)
    .message("set only one of spec.credentialsSecretRef, spec.federation and spec.operatorIdentity")
    .reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.federation) || has(self.region) || has(self.iamEndpoint)")
    .message("spec.federation exchanges the ServiceAccount token at IAM: set spec.region or spec.iamEndpoint")
    .reason(Reason::FieldValueRequired))]
#[serde(rename_all = "camelCase")]
pub struct PoolStatisticsWatchSpec {
    /// ModelArts project id. Resolved from the region through IAM when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = ID_PATTERN))]
    pub project_id: Option<String>,

    /// ModelArts workspace id; `0` is the default workspace.
    #[serde(default = "default_workspace_id")]
    #[schemars(length(min = 1, max = 64), regex(pattern = ID_PATTERN))]
    pub workspace_id: String,

    /// Huawei Cloud region, for example `cn-north-4`. Gives the ModelArts and IAM endpoints
    /// unless they are set explicitly. Needed unless `endpoint` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = REGION_PATTERN))]
    pub region: Option<String>,

    /// ModelArts endpoint, `https://host[:port]`, for other clouds and private clouds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = ENDPOINT_PATTERN))]
    pub endpoint: Option<String>,

    /// IAM endpoint for the project-id lookup, `https://host[:port]`; derived from the region
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = ENDPOINT_PATTERN))]
    pub iam_endpoint: Option<String>,

    /// The Secret, in this watch's namespace, holding `accessKeyId`, `secretAccessKey` and
    /// optionally `securityToken`. Exactly one of `credentialsSecretRef`, `federation` and
    /// `operatorIdentity` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<LocalSecretReference>,

    /// Keyless: temporary keys for a ServiceAccount of this watch's namespace, obtained by
    /// exchanging its token at IAM through an OpenID Connect identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<Federation>,

    /// Keyless: the operator's own identity (CCE Pod Identity or the node's agency). Allowed
    /// only in the namespaces the cluster admin lists (`--operator-identity-namespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_identity: Option<OperatorIdentity>,

    /// How often to poll, as a Go duration (`5m`, `1h30m`); at least `30s`.
    #[serde(default = "default_interval")]
    #[schemars(length(max = 64), regex(pattern = DURATION_PATTERN))]
    #[x_kube(validation = Rule::new(
        "!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self) >= duration('30s')"
    ).message("interval must be at least 30s"))]
    pub interval: String,

    /// Stop polling and keep the last status.
    #[serde(default)]
    pub suspend: bool,

    /// Also list the workspace's pools (ModelArts' ListPools, the same `modelarts:pool:list`
    /// permission) and show each one's phase, message and nodes in `status.poolDetails`; when
    /// set, `PoolsHealthy` names the pools that are abnormal, broken or failed. Two more calls
    /// per poll (the current and the failed pools), shared between watches of one target.
    #[serde(default)]
    pub pool_details: bool,
}

/// A Secret in the same namespace as the object that names it. There is deliberately no
/// `namespace` field: a watch must never read credentials from another namespace.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct LocalSecretReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
}

/// A ServiceAccount of the watch's own namespace whose token IAM exchanges for temporary keys.
/// There is deliberately no `namespace` field: a watch can only use its own namespace's
/// ServiceAccounts.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Federation {
    /// The ServiceAccount, in this watch's namespace, whose token is exchanged. The identity
    /// provider's conversion rule matches its subject,
    /// `system:serviceaccount:<namespace>:<name>`.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub service_account_name: String,

    /// The id of the IAM identity provider (OpenID Connect) that trusts this cluster's
    /// ServiceAccount tokens, sent as `X-Idp-Id`.
    #[schemars(length(min = 1, max = 64), regex(pattern = ID_PATTERN))]
    pub identity_provider_id: String,

    /// The identity provider's client id: the audience of the ServiceAccount token.
    #[schemars(length(min = 1, max = 256), regex(pattern = AUDIENCE_PATTERN))]
    pub audience: String,
}

/// Use the operator's own identity: CCE Pod Identity when the operator's pod has it, else the
/// agency of the node it runs on (the ECS metadata service).
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorIdentity {}

/// What the operator last observed, written only when it changes.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatisticsWatchStatus {
    /// The `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Pool counts from the latest successful poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pools: Option<PoolCounts>,

    /// ModelArts' `operationTime` for the counts shown, as the API returned it; cut to 128
    /// characters (ending in `…`) if it was longer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_OPERATION_TIME_LENGTH))]
    pub operation_time: Option<String>,

    /// Which credentials the latest poll used: `Secret/<name>`, `ServiceAccount/<name>` or
    /// `OperatorIdentity`. Never a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_CREDENTIALS_LENGTH))]
    pub credentials: Option<String>,

    /// The project id actually used, given in the spec or resolved through IAM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_PROJECT_ID_LENGTH))]
    pub project_id: Option<String>,

    /// The value of the `poolwatch.io/refresh-requested-at` annotation that the latest poll
    /// answered (its first 256 bytes). It changes only when someone asks for a poll; scripts
    /// can wait for it, and a new leader or a restarted operator polls at once when the
    /// annotation differs from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_REFRESH_REQUEST_LENGTH))]
    pub last_handled_refresh_request: Option<String>,

    /// The workspace's pools, sorted by name, when `spec.poolDetails` is set: from the latest
    /// successful pool list (a failed list keeps them; `PoolDetailsSynced` says so). At most 50
    /// pools and 32 KiB; the least urgent beyond that are counted in `poolDetailsOmitted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_POOL_DETAILS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub pool_details: Vec<PoolDetail>,

    /// Pools that the latest list held but `poolDetails` does not show (beyond 50 pools or
    /// 32 KiB, the least urgent first); absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub pool_details_omitted: Option<i64>,

    /// `Ready`, `Stalled`, `Reconciling`, `PoolsHealthy` and, with `spec.poolDetails`,
    /// `PoolDetailsSynced`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Resource pools by state. A count the API did not send stays absent rather than reading 0.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolCounts {
    /// Pools being created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub creating: Option<i64>,
    /// Pools created and running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub created: Option<i64>,
    /// Pools that failed to be created in the last three days (ModelArts caps it at 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub failed: Option<i64>,
    /// Pools waiting, usually yearly/monthly pools not paid yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub pending: Option<i64>,
    /// Pools being deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub deleting: Option<i64>,
}

fn default_workspace_id() -> String {
    DEFAULT_WORKSPACE_ID.to_owned()
}

fn default_interval() -> String {
    DEFAULT_INTERVAL.to_owned()
}
