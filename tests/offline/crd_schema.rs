//! The generated CRD, checked without an API server: its names, columns and status wiring, and
//! its schema run over every good and bad spec in `tests/fixtures/specs/` with a JSON-schema
//! validator (patterns, lengths, required fields) and a CEL evaluator (`x-kubernetes-validations`).
//! The same fixtures are replayed against a real API server in `tests/cluster/control_plane.rs`.

use crate::support::specs::spec_fixtures;
use jsonschema::error::ValidationErrorKind;
use kube::CustomResourceExt;
use poolwatch::api::PoolStatisticsWatch;
use poolwatch::api::crd::{CRD_PATH, crd_yaml};
use serde::Deserialize;
use serde_json::Value;

fn open_api_schema() -> Value {
    let crd = PoolStatisticsWatch::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("the CRD has an openAPIV3Schema");
    serde_json::to_value(schema).expect("schema serialises")
}

/// Every way `manifest` breaks the schema, each as `field.path: message` like an API server says it.
fn schema_problems(manifest: &Value) -> Vec<String> {
    let schema = open_api_schema();
    let validator =
        jsonschema::validator_for(&schema).expect("the CRD schema is valid JSON schema");
    let mut problems: Vec<String> = validator
        .iter_errors(manifest)
        .map(|error| {
            let mut path = error
                .instance_path()
                .to_string()
                .trim_start_matches('/')
                .replace('/', ".");
            if let ValidationErrorKind::Required { property } = error.kind() {
                let property = property.as_str().unwrap_or_default();
                path = if path.is_empty() {
                    property.to_owned()
                } else {
                    format!("{path}.{property}")
                };
            }
            format!("{path}: {error}")
        })
        .collect();
    if let Err(errors) = kube::core::cel::Validator::new().validate(&schema, manifest, None) {
        problems.extend(errors.as_slice().iter().map(ToString::to_string));
    }
    problems
}

#[test]
fn every_good_spec_is_accepted() {
    let good = spec_fixtures("good");
    assert!(
        good.len() >= 4,
        "expected the good fixtures, found {}",
        good.len()
    );
    for fixture in good {
        let problems = schema_problems(&fixture.manifest);
        assert!(
            problems.is_empty(),
            "{} was rejected: {problems:#?}",
            fixture.name
        );
        // What the schema accepts, the operator can read.
        let parsed: Result<PoolStatisticsWatch, _> = serde_json::from_value(fixture.manifest);
        assert!(
            parsed.is_ok(),
            "{} does not deserialise: {:?}",
            fixture.name,
            parsed.err()
        );
    }
}

#[test]
fn every_example_watch_is_accepted() {
    let dir = crate::support::control_plane::repo_path("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/") {
        let path = entry.expect("an entry").path();
        if path.extension().is_none_or(|ext| ext != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        for document in serde_norway::Deserializer::from_str(&text) {
            let manifest = Value::deserialize(document).expect("YAML");
            if manifest["kind"] != "PoolStatisticsWatch" {
                continue;
            }
            let problems = schema_problems(&manifest);
            assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "expected the example watches, found {checked}"
    );
}

#[test]
fn every_bad_spec_is_rejected_with_a_message_naming_the_field() {
    let bad = spec_fixtures("bad");
    assert!(
        bad.len() >= 20,
        "expected the bad fixtures, found {}",
        bad.len()
    );
    for fixture in bad {
        let expect = fixture
            .expect
            .unwrap_or_else(|| panic!("{} lacks a '# expect: ' line", fixture.name));
        let problems = schema_problems(&fixture.manifest);
        assert!(!problems.is_empty(), "{} was accepted", fixture.name);
        assert!(
            problems.iter().any(|problem| problem.contains(&expect)),
            "{}: no problem mentions {expect:?}: {problems:#?}",
            fixture.name
        );
    }
}

#[test]
fn defaults_fill_workspace_interval_and_suspend() {
    let schema = open_api_schema();
    let spec = &schema["properties"]["spec"]["properties"];
    assert_eq!(spec["workspaceId"]["default"], "0");
    assert_eq!(spec["interval"]["default"], "5m");
    assert_eq!(spec["suspend"]["default"], false);
}

#[test]
fn a_secret_reference_cannot_name_another_namespace() {
    let schema = open_api_schema();
    let reference = &schema["properties"]["spec"]["properties"]["credentialsSecretRef"];
    let fields: Vec<&String> = reference["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        fields,
        ["name"],
        "credentialsSecretRef must hold a name only"
    );
}

#[test]
fn conditions_are_a_list_map_keyed_by_type() {
    let schema = open_api_schema();
    let conditions = &schema["properties"]["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(
        conditions["x-kubernetes-list-map-keys"],
        serde_json::json!(["type"])
    );
}

#[test]
fn names_scope_and_status_subresource_match_the_design() {
    let crd = PoolStatisticsWatch::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("poolstatisticswatches.poolwatch.io")
    );
    assert_eq!(crd.spec.group, "poolwatch.io");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "PoolStatisticsWatch");
    assert_eq!(crd.spec.names.plural, "poolstatisticswatches");
    assert_eq!(crd.spec.names.short_names, Some(vec!["psw".to_owned()]));
    assert_eq!(
        crd.spec.names.categories,
        Some(vec!["modelarts".to_owned()])
    );
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.served && version.storage);
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
}

#[test]
fn printer_columns_show_readiness_and_counts_at_a_glance() {
    let crd = PoolStatisticsWatch::crd();
    let columns = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default();
    let shown = |priority: i32| -> Vec<String> {
        columns
            .iter()
            .filter(|c| c.priority.unwrap_or(0) == priority)
            .map(|c| c.name.to_uppercase())
            .collect()
    };
    assert_eq!(
        shown(0),
        ["READY", "CREATED", "CREATING", "FAILED", "PENDING", "AGE"]
    );
    assert_eq!(
        shown(1),
        ["DELETING", "PROJECT", "WORKSPACE", "CREDENTIALS", "REASON"]
    );
    // `-o wide` shows the columns in this order: the deleting count beside the other counts.
    let all: Vec<String> = columns.iter().map(|c| c.name.to_uppercase()).collect();
    assert_eq!(
        all[..7],
        [
            "READY", "CREATED", "CREATING", "FAILED", "PENDING", "DELETING", "AGE"
        ]
    );
}

#[test]
fn committed_crd_is_what_poolwatch_crd_prints() {
    let committed = std::fs::read_to_string(crate::support::control_plane::repo_path(CRD_PATH))
        .expect("the committed CRD is readable");
    assert!(
        committed == crd_yaml().expect("the CRD renders"),
        "{CRD_PATH} is stale: run `make crd` and commit it"
    );
}
