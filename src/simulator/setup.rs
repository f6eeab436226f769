//! What the simulator serves: its keys, projects and counts, as read from the config file.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
            }],
            max_clock_skew: None,
            operation_time: None,
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
             # maxClockSkew: 15m             # X-Sdk-Date tolerance, as the real gateway\n\
             # operationTime: \"2025-03-27 11:48:55.446172146 +0000 UTC\"   # default: now\n"
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
        let text = format!("{:?}", SimulatorSetup::demo());
        assert!(!text.contains(DEMO_SECRET_ACCESS_KEY));
    }
}
