//! The Flux objects users copy (`deploy/flux/poolwatch-watches.yaml`, run for real by
//! `make test-gitops`) are the ones the README shows, and they wait for the watches with the
//! shipped health-check expressions.

use crate::support::control_plane::repo_path;
use crate::support::flux::{USER_MANIFESTS, user_manifests};

#[test]
fn the_readme_shows_the_flux_objects_that_make_test_gitops_runs() {
    let file = std::fs::read_to_string(repo_path(USER_MANIFESTS)).expect("the manifests");
    let objects = &file[file.find("---\n").expect("YAML documents")..];
    let readme = std::fs::read_to_string(repo_path("README.md")).expect("the README");
    assert!(
        readme.contains(&format!("```yaml\n{objects}```")),
        "README's Flux snippet differs from {USER_MANIFESTS}: copy the file's objects into it"
    );
}

#[test]
fn the_kustomization_waits_for_watches_with_the_health_check_expressions() {
    let objects = user_manifests();
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(kinds, ["GitRepository", "Kustomization"]);
    let spec = &objects[1]["spec"];
    assert_eq!(spec["wait"], true);
    assert_eq!(spec["prune"], true);
    let exprs = &spec["healthCheckExprs"][0];
    assert_eq!(exprs["apiVersion"], "poolwatch.io/v1alpha1");
    assert_eq!(exprs["kind"], "PoolStatisticsWatch");
    for (field, condition) in [
        ("inProgress", "Reconciling"),
        ("failed", "Stalled"),
        ("current", "Ready"),
    ] {
        let expression = exprs[field].as_str().unwrap_or_default();
        assert!(
            expression.contains(&format!("c.type == '{condition}'")),
            "{field}: {expression}"
        );
    }
}
