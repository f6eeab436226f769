//! The GitOps objects users copy (`deploy/flux/poolwatch-watches.yaml` and
//! `deploy/argocd/poolwatch-watches.yaml`, run for real by `make test-gitops`) are the ones the
//! README shows; the Kustomization waits for the watches with the shipped health-check
//! expressions, and the Application syncs automatically, prunes and heals.

use crate::support::argocd::{USER_APPLICATION, user_application};
use crate::support::control_plane::repo_path;
use crate::support::flux::{USER_MANIFESTS, user_manifests};

/// Fails unless the README has a YAML snippet equal to the objects of `file` (everything from
/// its first `---`, its header comment left out).
fn assert_the_readme_shows(file: &str) {
    let text = std::fs::read_to_string(repo_path(file)).expect("the manifests");
    let objects = &text[text.find("---\n").expect("YAML documents")..];
    let readme = std::fs::read_to_string(repo_path("README.md")).expect("the README");
    assert!(
        readme.contains(&format!("```yaml\n{objects}```")),
        "README's snippet differs from {file}: copy the file's objects into it"
    );
}

#[test]
fn the_readme_shows_the_flux_objects_that_make_test_gitops_runs() {
    assert_the_readme_shows(USER_MANIFESTS);
}

#[test]
fn the_readme_shows_the_argocd_application_that_make_test_gitops_runs() {
    assert_the_readme_shows(USER_APPLICATION);
}

#[test]
fn the_application_syncs_automatically_prunes_and_heals_by_server_side_apply() {
    let application = user_application();
    assert_eq!(application["kind"], "Application");
    let policy = &application["spec"]["syncPolicy"];
    assert_eq!(policy["automated"]["prune"], true);
    assert_eq!(policy["automated"]["selfHeal"], true);
    assert_eq!(policy["syncOptions"][0], "ServerSideApply=true");
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
