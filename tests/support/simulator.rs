//! The ModelArts simulator for integration tests: a known setup, in-process, plus clients tuned
//! for fast retries.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::BTreeMap;
use std::time::Duration;

use poolwatch::modelarts::{ClientConfig, Credentials, ModelArtsClient, RetryPolicy};
use poolwatch::simulator::{
    KeyConfig, ProjectConfig, SimulatedCounts, Simulator, SimulatorConfig, SimulatorHandle,
    SimulatorSetup,
};

/// A permanent key the simulator accepts.
pub const AK: &str = "TESTAKPERMANENT00001";
/// Its secret. Tests assert it never shows up in errors, logs or CLI output.
pub const SK: &str = "test-secret-key-4b1d-never-print-me-9f2c";
/// A temporary key's id.
pub const TEMP_AK: &str = "TESTAKTEMPORARY00001";
/// The temporary key's secret.
pub const TEMP_SK: &str = "temp-secret-key-77aa-never-print-me-0e13";
/// The temporary key's security token.
pub const TOKEN: &str = "temp-security-token-c0ffee-never-print-me";
/// The project of `REGION`.
pub const PROJECT: &str = "0123456789abcdef0123456789abcdef";
/// A second project, in `OTHER_REGION`.
pub const OTHER_PROJECT: &str = "fedcba9876543210fedcba9876543210";
/// The region `PROJECT` is named after.
pub const REGION: &str = "cn-north-4";
/// The region of `OTHER_PROJECT`.
pub const OTHER_REGION: &str = "cn-east-3";
/// The fixed `operationTime` the simulator answers with.
pub const OPERATION_TIME: &str = "2025-03-27 11:48:55.446172146 +0000 UTC";

/// Two keys (one temporary), two projects; workspace `0` of `PROJECT` has the documented
/// example's counts, workspace `ws-partial` only some counts.
pub fn setup() -> SimulatorSetup {
    SimulatorSetup {
        credentials: vec![
            KeyConfig {
                access_key_id: AK.to_owned(),
                secret_access_key: SK.to_owned(),
                security_token: None,
            },
            KeyConfig {
                access_key_id: TEMP_AK.to_owned(),
                secret_access_key: TEMP_SK.to_owned(),
                security_token: Some(TOKEN.to_owned()),
            },
        ],
        projects: vec![
            ProjectConfig {
                id: PROJECT.to_owned(),
                region: Some(REGION.to_owned()),
                workspaces: BTreeMap::from([
                    ("0".to_owned(), SimulatedCounts::new(0, 9, 0, 0, 1)),
                    (
                        "ws-partial".to_owned(),
                        SimulatedCounts {
                            created: Some(3),
                            failed: Some(2),
                            ..SimulatedCounts::default()
                        },
                    ),
                ]),
            },
            ProjectConfig {
                id: OTHER_PROJECT.to_owned(),
                region: Some(OTHER_REGION.to_owned()),
                workspaces: BTreeMap::from([("0".to_owned(), SimulatedCounts::new(1, 2, 3, 4, 5))]),
            },
        ],
        max_clock_skew: None,
        operation_time: Some(OPERATION_TIME.to_owned()),
    }
}

/// Starts a simulator with [`setup`] on a free loopback port.
pub async fn start() -> SimulatorHandle {
    start_with(SimulatorConfig::new(setup())).await
}

/// Starts a simulator with `config`.
pub async fn start_with(config: SimulatorConfig) -> SimulatorHandle {
    match Simulator::start(config).await {
        Ok(handle) => handle,
        Err(e) => panic!("the simulator did not start: {e}"),
    }
}

/// The permanent key.
pub fn credentials() -> Credentials {
    Credentials::new(AK, SK)
}

/// The temporary key with its token.
pub fn temporary_credentials() -> Credentials {
    Credentials::new(TEMP_AK, TEMP_SK).with_security_token(TOKEN)
}

/// Client settings for tests: 2 retries with 10–40 ms backoff, 5 s request timeout.
pub fn fast_config() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(2),
        },
        ..ClientConfig::default()
    }
}

/// A client built from `config`.
pub fn client_with(config: ClientConfig) -> ModelArtsClient {
    match ModelArtsClient::new(config) {
        Ok(client) => client,
        Err(e) => panic!("the client did not build: {e}"),
    }
}

/// A client with [`fast_config`].
pub fn client() -> ModelArtsClient {
    client_with(fast_config())
}
