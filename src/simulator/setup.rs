//! What the simulator serves: its keys, projects and counts, and the keyless-credential sources
//! (OIDC identity providers, Pod Identity, ECS metadata) it issues temporary credentials from, as
//! read from the config file.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::pools::SimulatedPool;

/// Pool counts of one workspace. An absent count is left out of the answer, which lets tests
/// check that clients treat every count as optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedCounts {
    /// Pools being created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creating: Option<i64>,
    /// Pools created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
    /// Pools that failed to be created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i64>,
    /// Pools waiting for payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<i64>,
    /// Pools being deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleting: Option<i64>,
}

impl SimulatedCounts {
    /// All five counts given.
    pub fn new(creating: i64, created: i64, failed: i64, pending: i64, deleting: i64) -> Self {
        Self {
            creating: Some(creating),
            created: Some(created),
            failed: Some(failed),
            pending: Some(pending),
            deleting: Some(deleting),
        }
    }
}

/// An access key the simulator accepts.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyConfig {
    /// The access key id (AK).
    pub access_key_id: String,
    /// The secret access key (SK).
    pub secret_access_key: String,
    /// When set, requests with this key must carry and sign this `X-Security-Token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_token: Option<String>,
}

impl std::fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyConfig")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[REDACTED]")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

/// A project: its id, the region it is named after, and the counts per workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectConfig {
    /// The project id (32 hex characters on Huawei Cloud; any path-safe text here).
    pub id: String,
    /// The region name, which is also the project name IAM lists (e.g. `cn-north-4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Counts per workspace id. A workspace not listed answers 404 `ModelArts.50015001`.
    #[serde(default)]
    pub workspaces: BTreeMap<String, SimulatedCounts>,
    /// The pools ListPools lists, per workspace id (of `workspaces`). A workspace without an
    /// entry lists none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pools: BTreeMap<String, Vec<SimulatedPool>>,
}

/// An OpenID Connect identity provider that the simulated IAM trusts: a Kubernetes cluster whose
/// ServiceAccount tokens may be exchanged for an IAM token (`POST /v3.0/OS-AUTH/id-token/tokens`
/// with `X-Idp-Id: {id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityProviderConfig {
    /// The identity provider's id, which clients send as `X-Idp-Id`.
    pub id: String,
    /// The `iss` every accepted token carries (the cluster's service-account issuer).
    pub issuer: String,
    /// The client id: accepted tokens name it in `aud`.
    pub client_id: String,
    /// The public keys tokens are signed with, as kube-apiserver serves them at
    /// `/openid/v1/jwks` (`{"keys": [{"kty": "RSA", "kid": ..., "n": ..., "e": ...}]}`). Kept as
    /// JSON so that a copy of the API server's answer can be pasted in unchanged.
    pub jwks: serde_json::Value,
    /// Which subjects may federate and into which projects. A subject no rule matches is
    /// refused (403), as IAM refuses users its mapping rules do not map.
    #[serde(default)]
    pub rules: Vec<FederationRule>,
}

/// A mapping rule of an identity provider: the subjects it admits and the projects their
/// temporary credentials may read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FederationRule {
    /// The JWT `sub` to match exactly (`system:serviceaccount:team-a:modelarts-reader`), or by
    /// prefix when it ends in `*` (`system:serviceaccount:team-a:*`).
    pub subject: String,
    /// The project ids the subject's temporary credentials may read statistics of; others
    /// answer 403 `ModelArts.0204`.
    #[serde(default)]
    pub projects: Vec<String>,
}

impl FederationRule {
    /// Whether the rule admits `subject`.
    pub fn matches(&self, subject: &str) -> bool {
        match self.subject.strip_suffix('*') {
            Some(prefix) => subject.starts_with(prefix),
            None => self.subject == subject,
        }
    }
}

/// CCE Pod Identity's credential endpoint (`POST /v1/pod-identity/credentials`), which hands
/// temporary credentials to pods that present the agent's authorization token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodIdentityConfig {
    /// The `Authorization` header value required (the contents of the file
    /// `HC_CONTAINER_AUTHORIZATION_TOKEN_FILE` names).
    pub authorization_token: String,
    /// The project ids the issued credentials may read statistics of.
    #[serde(default)]
    pub projects: Vec<String>,
}

impl std::fmt::Debug for PodIdentityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodIdentityConfig")
            .field("authorization_token", &"[REDACTED]")
            .field("projects", &self.projects)
            .finish()
    }
}

/// The ECS metadata service's temporary credentials of the instance's agency
/// (`GET /openstack/latest/securitykey`, IMDSv2-style session tokens from
/// `PUT /meta-data/latest/api/token`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetadataConfig {
    /// The project ids the issued credentials may read statistics of.
    #[serde(default)]
    pub projects: Vec<String>,
    /// Whether `GET /openstack/latest/securitykey` needs a valid `X-Metadata-Token` (default
    /// true, as an instance with IMDSv2 enforced); false also serves token-less clients.
    #[serde(default = "default_true")]
    pub require_token: bool,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        Self {
            projects: Vec::new(),
            require_token: true,
        }
    }
}

fn default_true() -> bool {
    true
}

/// The simulator's whole setup: the config file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulatorSetup {
    /// Accepted access keys.
    #[serde(default)]
    pub credentials: Vec<KeyConfig>,
    /// Projects and their counts.
    #[serde(default)]
    pub projects: Vec<ProjectConfig>,
    /// Largest accepted difference between `X-Sdk-Date` and the simulator's clock
    /// (default 15m, as the gateway).
    #[serde(
        default,
        with = "humantime_serde_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_clock_skew: Option<Duration>,
    /// A fixed `operationTime` to answer with; by default the current time in Go's format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_time: Option<String>,
    /// OIDC identity providers IAM trusts for `POST /v3.0/OS-AUTH/id-token/tokens`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_providers: Vec<IdentityProviderConfig>,
    /// The lifetime of every temporary credential and IAM token the simulator issues, so that
    /// tests can watch them expire in seconds. Default: the `duration_seconds` asked for (IAM
    /// security tokens), 24h (IAM tokens), 6h (Pod Identity and metadata credentials).
    #[serde(
        default,
        with = "humantime_serde_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub temporary_credentials_ttl: Option<Duration>,
    /// Serve CCE Pod Identity's credential endpoint; absent: it answers 404.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_identity: Option<PodIdentityConfig>,
    /// Serve the ECS metadata service's credentials; absent: it answers 404.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<MetadataConfig>,
}

/// The access key of the built-in demo setup.
pub const DEMO_ACCESS_KEY_ID: &str = "SIMULATORDEMOAK00001";
/// The secret key of the built-in demo setup (a simulator-only value, not a real secret).
pub const DEMO_SECRET_ACCESS_KEY: &str = "simulator-demo-secret-key-not-for-real-use";
/// The project id of the built-in demo setup.
pub const DEMO_PROJECT_ID: &str = "0123456789abcdef0123456789abcdef";
/// The region of the built-in demo setup.
pub const DEMO_REGION: &str = "cn-north-4";

impl SimulatorSetup {
    /// The built-in demo: one key, one project named `cn-north-4`, workspace `0` with the
    /// counts from the API's documented example.
    pub fn demo() -> Self {
        Self {
            credentials: vec![KeyConfig {
                access_key_id: DEMO_ACCESS_KEY_ID.to_owned(),
                secret_access_key: DEMO_SECRET_ACCESS_KEY.to_owned(),
                security_token: None,
            }],
            projects: vec![ProjectConfig {
                id: DEMO_PROJECT_ID.to_owned(),
                region: Some(DEMO_REGION.to_owned()),
                workspaces: BTreeMap::from([("0".to_owned(), SimulatedCounts::new(0, 9, 0, 0, 1))]),
                pools: BTreeMap::new(),
            }],
            ..Self::default()
        }
    }

    /// Parses a config file's text (YAML, or JSON, which is YAML too).
    pub fn parse(text: &str) -> Result<Self, String> {
        let setup: Self = serde_norway::from_str(text).map_err(|e| e.to_string())?;
        setup.validate()?;
        Ok(setup)
    }

    /// Reads and parses a config file; the error names the file and says what is wrong.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the simulator config {}: {e}", path.display()))?;
        Self::parse(&text)
            .map_err(|e| format!("the simulator config {} is invalid: {e}", path.display()))
    }

    fn validate(&self) -> Result<(), String> {
        for key in &self.credentials {
            if key.access_key_id.is_empty() || key.secret_access_key.is_empty() {
                return Err(
                    "every credentials entry needs a non-empty accessKeyId and secretAccessKey"
                        .to_owned(),
                );
            }
        }
        for project in &self.projects {
            let ok = !project.id.is_empty()
                && project
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(format!(
                    "project id {:?} must be non-empty letters, digits, - or _",
                    project.id
                ));
            }
            for (workspace, pools) in &project.pools {
                if !project.workspaces.contains_key(workspace) {
                    return Err(format!(
                        "project {:?} lists pools of workspace {workspace:?}, which is not among its workspaces",
                        project.id
                    ));
                }
                if let Some(pool) = pools.iter().find(|p| p.name.is_empty()) {
                    return Err(format!(
                        "every pool of workspace {workspace:?} needs a name (one of phase {:?} has none)",
                        pool.phase
                    ));
                }
            }
        }
        for (index, idp) in self.identity_providers.iter().enumerate() {
            if idp.id.is_empty() || idp.issuer.is_empty() || idp.client_id.is_empty() {
                return Err(
                    "every identityProviders entry needs a non-empty id, issuer and clientId"
                        .to_owned(),
                );
            }
            if self.identity_providers[..index]
                .iter()
                .any(|other| other.id == idp.id)
            {
                return Err(format!("identity provider {:?} is listed twice", idp.id));
            }
            if let Err(e) = serde_json::from_value::<jsonwebtoken::jwk::JwkSet>(idp.jwks.clone()) {
                return Err(format!(
                    "the jwks of identity provider {:?} is not a JWK set ({{\"keys\": [...]}}): {e}",
                    idp.id
                ));
            }
            if idp.rules.iter().any(|rule| rule.subject.is_empty()) {
                return Err(format!(
                    "every rule of identity provider {:?} needs a non-empty subject",
                    idp.id
                ));
            }
        }
        if self
            .pod_identity
            .as_ref()
            .is_some_and(|p| p.authorization_token.is_empty())
        {
            return Err("podIdentity needs a non-empty authorizationToken".to_owned());
        }
        if self.temporary_credentials_ttl == Some(Duration::ZERO) {
            return Err("temporaryCredentialsTtl must be longer than zero".to_owned());
        }
        Ok(())
    }

    /// An example config file, commented, for `poolwatch simulator --example-config`.
    pub fn example_yaml() -> String {
        format!(
            "# poolwatch simulator configuration. The simulator re-reads this file when it changes.\n\
             credentials:\n\
             \x20 - accessKeyId: {DEMO_ACCESS_KEY_ID}\n\
             \x20   secretAccessKey: {DEMO_SECRET_ACCESS_KEY}\n\
             \x20   # securityToken: only for temporary credentials; then it must be sent and signed\n\
             projects:\n\
             \x20 - id: {DEMO_PROJECT_ID}\n\
             \x20   region: {DEMO_REGION}        # the project name IAM lists for GET /v3/projects?name=...\n\
             \x20   workspaces:\n\
             \x20     \"0\": {{creating: 0, created: 9, failed: 0, pending: 0, deleting: 1}}\n\
             \x20   # pools:                      # what ListPools lists, per workspace\n\
             \x20   #   \"0\":\n\
             \x20   #     - name: pool-6d1b4a1c\n\
             \x20   #       displayName: training\n\
             \x20   #       phase: Abnormal         # Creating, Running, Abnormal, Deleting, Error; Failed: status=failed\n\
             \x20   #       message: 2 nodes are NotReady\n\
             \x20   #       flavors: [{{flavor: modelarts.vm.gpu.8ant8, count: 4, available: 2, abnormal: 2}}]\n\
             # maxClockSkew: 15m             # X-Sdk-Date tolerance, as the real gateway\n\
             # operationTime: \"2025-03-27 11:48:55.446172146 +0000 UTC\"   # default: now\n\
             # Keyless credentials: temporary AK/SK/security tokens issued to federated\n\
             # ServiceAccounts, Pod Identity and ECS metadata clients.\n\
             # identityProviders:\n\
             #   - id: my-cluster                # X-Idp-Id\n\
             #     issuer: https://kubernetes.default.svc.cluster.local\n\
             #     clientId: modelarts           # the token's audience\n\
             #     jwks: {{keys: [...]}}           # kube-apiserver's /openid/v1/jwks\n\
             #     rules:\n\
             #       - subject: \"system:serviceaccount:team-a:*\"\n\
             #         projects: [{DEMO_PROJECT_ID}]\n\
             # temporaryCredentialsTtl: 1h       # default: the duration asked for\n\
             # podIdentity: {{authorizationToken: some-token, projects: [{DEMO_PROJECT_ID}]}}\n\
             # metadata: {{projects: [{DEMO_PROJECT_ID}], requireToken: true}}\n"
        )
    }
}

/// `Option<Duration>` as a humantime string (`15m`, `90s`).
mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo's pools agree with its counts, so that a watch with details shows the pools its
    /// counts count.
    #[test]
    fn the_demo_config_lists_the_pools_it_counts() {
        use super::super::pools::FAILED_PHASE;
        let setup = SimulatorSetup::parse(include_str!("../../examples/demo/simulator.yaml"));
        let Ok(setup) = setup else {
            panic!("{setup:?}")
        };
        let mut checked = 0;
        for project in &setup.projects {
            for (workspace, pools) in &project.pools {
                let counts = project.workspaces.get(workspace);
                let count = |phases: &[&str]| {
                    Some(
                        pools
                            .iter()
                            .filter(|p| phases.contains(&p.phase.as_str()))
                            .count() as i64,
                    )
                };
                let listed = SimulatedCounts {
                    creating: count(&["Creating"]),
                    created: count(&["Running", "Abnormal", "Error"]),
                    failed: count(&[FAILED_PHASE]),
                    deleting: count(&["Deleting"]),
                    pending: counts.and_then(|c| c.pending),
                };
                assert_eq!(counts, Some(&listed), "workspace {workspace}");
                checked += 1;
            }
        }
        assert!(checked > 0, "the demo lists no pools");
    }

    #[test]
    fn example_config_parses_to_the_demo_setup() {
        let parsed = SimulatorSetup::parse(&SimulatorSetup::example_yaml());
        assert_eq!(parsed, Ok(SimulatorSetup::demo()));
    }

    #[test]
    fn json_configs_parse_too() {
        let text = r#"{"credentials":[{"accessKeyId":"AK","secretAccessKey":"SK","securityToken":"T"}],
            "projects":[{"id":"p1","region":"cn-east-3","workspaces":{"w":{"created":3}}}],
            "maxClockSkew":"90s"}"#;
        let setup = SimulatorSetup::parse(text);
        let Ok(setup) = setup else {
            panic!("{setup:?}")
        };
        assert_eq!(setup.max_clock_skew, Some(Duration::from_secs(90)));
        assert_eq!(setup.projects[0].workspaces["w"].created, Some(3));
        assert_eq!(setup.projects[0].workspaces["w"].failed, None);
    }

    #[test]
    fn mistakes_are_reported() {
        assert!(SimulatorSetup::parse("credentials: [{accessKeyId: A}]").is_err());
        assert!(SimulatorSetup::parse("projects: [{id: 'a/b'}]").is_err());
        assert!(SimulatorSetup::parse("projekts: []").is_err());
        assert!(
            SimulatorSetup::parse("projects: [{id: p, workspaces: {w: {created: 'x'}}}]").is_err()
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let mut setup = SimulatorSetup::demo();
        setup.pod_identity = Some(PodIdentityConfig {
            authorization_token: "pod-identity-agent-token".to_owned(),
            projects: vec![],
        });
        let text = format!("{setup:?}");
        assert!(!text.contains(DEMO_SECRET_ACCESS_KEY));
        assert!(!text.contains("pod-identity-agent-token"), "{text}");
    }

    const KEYLESS: &str = r#"
identityProviders:
  - id: cluster-a
    issuer: https://kubernetes.default.svc.cluster.local
    clientId: modelarts
    jwks: {"keys": [{"use": "sig", "kty": "RSA", "kid": "k1", "alg": "RS256", "n": "sXch", "e": "AQAB"}]}
    rules:
      - subject: "system:serviceaccount:team-a:*"
        projects: [p1]
temporaryCredentialsTtl: 30s
podIdentity: {authorizationToken: t, projects: [p1]}
metadata: {projects: [p1]}
"#;

    #[test]
    fn keyless_sources_parse() {
        let setup = SimulatorSetup::parse(KEYLESS);
        let Ok(setup) = setup else {
            panic!("{setup:?}")
        };
        assert_eq!(setup.identity_providers[0].client_id, "modelarts");
        assert_eq!(setup.identity_providers[0].jwks["keys"][0]["kid"], "k1");
        assert!(setup.identity_providers[0].rules[0].matches("system:serviceaccount:team-a:x"));
        assert_eq!(
            setup.temporary_credentials_ttl,
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            setup.metadata,
            Some(MetadataConfig {
                projects: vec!["p1".to_owned()],
                require_token: true
            })
        );
        // What it serialises to reads back the same.
        let again = serde_norway::to_string(&setup).map(|t| SimulatorSetup::parse(&t));
        assert_eq!(again.ok(), Some(Ok(setup)));
        // Configs without the keyless fields leave them out.
        assert!(
            SimulatorSetup::parse("credentials: []").is_ok_and(|s| s.pod_identity.is_none()
                && s.metadata.is_none()
                && s.identity_providers.is_empty())
        );
    }

    #[test]
    fn keyless_mistakes_are_reported() {
        for (from, to) in [
            ("clientId: modelarts", "clientId: ''"),
            ("{\"keys\": [", "{\"kees\": ["),
            (
                "subject: \"system:serviceaccount:team-a:*\"",
                "subject: \"\"",
            ),
            ("authorizationToken: t", "authorizationToken: ''"),
            ("30s", "0s"),
            ("30s", "soon"),
            ("metadata: {", "metadata: {requireTokens: false, "),
        ] {
            let text = KEYLESS.replace(from, to);
            assert_ne!(text, KEYLESS, "{from}");
            assert!(SimulatorSetup::parse(&text).is_err(), "{text}");
        }
        let twice = format!(
            "{}  - id: cluster-a\n    issuer: i\n    clientId: c\n    jwks: {{keys: []}}\n",
            KEYLESS
                .split("temporaryCredentialsTtl")
                .next()
                .unwrap_or_default()
        );
        assert!(
            SimulatorSetup::parse(&twice).is_err_and(|e| e.contains("twice")),
            "{twice}"
        );
    }
}
