//! Who may read `/metrics` (issue 22, finding 6): a page that names every tenant's namespaces,
//! watches, counts and endpoint hosts goes only to callers the API server authenticates
//! (TokenReview) and allows `get` on `/metrics` (SubjectAccessReview), over HTTPS by default and
//! over plain HTTP with `--metrics-secure=false` alike; the certificate is the cert dir's,
//! renewed without a restart, or a self-signed one.

use std::time::Duration;

use crate::support::faults::{TestPki, scratch_dir};
use crate::support::metrics_reader::{self, Trust, reader_token, unauthorised_token};
use crate::support::operator::{Operator, eventually};
use crate::support::world::{SOON, World};

/// Reads the operator's page as an anonymous caller, with a made-up token, as a ServiceAccount
/// bound to nothing, and as the chart's reader: 401, 401, 403, then the series, which name the
/// tenant's namespace.
async fn only_the_reader_reads(world: &World, operator: &Operator) {
    let kubeconfig = &world.plane().kubeconfig;
    let namespace_label = format!(r#"namespace="{}""#, world.namespace.name);
    // The reader sees the tenant's series: what the others must not.
    let page = eventually("the reader to see the watch's series", SOON, || async {
        let (code, page) = operator.read_metrics().await.ok()?;
        assert_eq!(code, 200, "the reader is refused: {page}");
        page.contains(&namespace_label).then_some(page)
    })
    .await;
    assert!(page.contains("poolwatch_leader 1"), "{page}");

    let unauthorised = unauthorised_token(kubeconfig);
    for (who, token, expected) in [
        ("an anonymous caller", None, 401),
        ("a made-up token", Some("made-up-token"), 401),
        (
            "a ServiceAccount bound to nothing",
            Some(unauthorised.as_str()),
            403,
        ),
    ] {
        let (code, body) = operator
            .read_metrics_as(token)
            .await
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        assert_eq!(code, expected, "{who}: {body}");
        assert!(
            !body.contains("poolwatch_") && !body.contains(&world.namespace.name),
            "{who} read the page: {body}"
        );
    }
    let logs = operator.logs().join("\n");
    for token in [unauthorised.as_str(), &reader_token(kubeconfig)] {
        assert!(!logs.contains(token), "a token in the operator's log");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn over_https_only_a_reader_allowed_get_on_metrics_reads_them() {
    let world = World::running("metrics-https").await;
    world.create_watch("pools", "0", "creds").await;
    let operator = world.operator();
    assert!(
        matches!(operator.metrics_trust, Trust::Ca(_)),
        "served with the test certificate directory"
    );
    only_the_reader_reads(&world, operator).await;

    // The HTTPS port says nothing over plain HTTP.
    let plain = operator.metrics_url.replacen("https://", "http://", 1);
    let token = reader_token(&world.plane().kubeconfig);
    if let Ok((code, body)) = metrics_reader::get(&Trust::Plain, &plain, Some(&token)).await {
        assert!(!body.contains("poolwatch_"), "{code}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn over_plain_http_only_a_reader_allowed_get_on_metrics_reads_them() {
    let world = World::new("metrics-http")
        .await
        .with_credentials()
        .await
        .start_operator(&["--metrics-secure=false"]);
    world.create_watch("pools", "0", "creds").await;
    assert!(matches!(world.operator().metrics_trust, Trust::Plain));
    only_the_reader_reads(&world, world.operator()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_cert_dir_metrics_are_served_over_https_with_a_self_signed_certificate() {
    let world = World::new("metrics-self-signed")
        .await
        .with_credentials()
        .await
        .start_operator(&["--metrics-secure"]);
    world.create_watch("pools", "0", "creds").await;
    let operator = world.operator();
    assert!(matches!(operator.metrics_trust, Trust::SelfSigned));
    only_the_reader_reads(&world, operator).await;
    // No CA vouches for it: a verifying client refuses the connection.
    let verifying = Trust::Ca(TestPki::new().ca_pem);
    let token = reader_token(&world.plane().kubeconfig);
    let refused = metrics_reader::get(&verifying, &operator.metrics_url, Some(&token)).await;
    assert!(refused.is_err(), "{refused:?}");
}

/// A cert-manager renewal: the files of the cert dir change, and the next connections get the
/// new certificate, with no restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_renewed_metrics_certificate_is_served_without_a_restart() {
    let world = World::new("metrics-renewal").await.with_credentials().await;
    let dir = scratch_dir("metrics-renewal");
    let write = |pki: &TestPki| {
        // The key first, then the certificate, as a Secret volume's atomic swap cannot be
        // imitated here: the operator must not serve the half-written pair in between.
        std::fs::write(dir.join("tls.key"), &pki.server.key_pem).unwrap();
        std::fs::write(dir.join("tls.crt"), &pki.server.cert_pem).unwrap();
    };
    let (first, second) = (TestPki::new(), TestPki::new());
    write(&first);
    let cert_dir = format!("--metrics-cert-dir={}", dir.display());
    let operator = world.spawn_operator(&[&cert_dir]);
    let token = reader_token(&world.plane().kubeconfig);
    let url = operator.metrics_url.clone();
    let read = |ca: &TestPki| {
        let trust = Trust::Ca(ca.ca_pem.clone());
        let (url, token) = (url.clone(), token.clone());
        async move { metrics_reader::get(&trust, &url, Some(&token)).await }
    };
    eventually("the first certificate", SOON, || async {
        read(&first).await.ok().filter(|(code, _)| *code == 200)
    })
    .await;
    assert!(
        read(&second).await.is_err(),
        "the second CA vouches for nothing yet"
    );

    write(&second);
    eventually("the renewed certificate", SOON, || async {
        read(&second).await.ok().filter(|(code, _)| *code == 200)
    })
    .await;
    assert!(
        read(&first).await.is_err(),
        "the old certificate is no longer served"
    );
    let logs = operator.logs().join("\n");
    assert!(
        logs.contains("serving the renewed /metrics certificate"),
        "{logs}"
    );
    assert!(!logs.contains("PRIVATE KEY"), "{logs}");
}

/// Prometheus scrapes every 15 s: the verdict is remembered, so twenty reads cost the API server
/// one TokenReview and one SubjectAccessReview (the audit log counts them).
#[tokio::test(flavor = "multi_thread")]
async fn repeated_reads_cost_one_review_while_the_verdict_is_remembered() {
    let world = World::running("metrics-reviews").await;
    let operator = world.operator();
    for _ in 0..20 {
        operator.metrics().await;
    }
    let marker = operator.agent_marker();
    let plane = world.plane();
    let reviews = |resource: &'static str| {
        let marker = marker.clone();
        move || {
            plane
                .audit_events()
                .iter()
                .filter(|e| {
                    e["stage"] == "ResponseComplete"
                        && e["verb"] == "create"
                        && e["objectRef"]["resource"] == resource
                        && e["userAgent"].as_str().is_some_and(|a| a.contains(&marker))
                })
                .count()
        }
    };
    for resource in ["tokenreviews", "subjectaccessreviews"] {
        let count = reviews(resource);
        eventually(
            &format!("the {resource} in the audit log"),
            SOON,
            || async { (count() > 0).then_some(()) },
        )
        .await;
        assert_eq!(count(), 1, "{resource} for 20 reads");
    }
}

/// A certificate directory without its files, or one given for plain HTTP, stops the operator at
/// start with a message that names the flag, and nothing is served.
#[tokio::test(flavor = "multi_thread")]
async fn an_unusable_metrics_certificate_stops_the_operator_naming_the_flag() {
    let world = World::new("metrics-no-cert").await;
    let empty = scratch_dir("metrics-no-cert");
    let empty = format!("--metrics-cert-dir={}", empty.display());
    for (flags, says) in [
        (vec![empty.as_str()], "tls.crt"),
        (
            vec![empty.as_str(), "--metrics-secure=false"],
            "--metrics-secure=false",
        ),
    ] {
        let mut operator = world.spawn_operator(&flags);
        assert!(
            operator.wait_exit(Duration::from_secs(20)),
            "{flags:?}: still running"
        );
        assert!(!operator.exit_status().expect("exited").success());
        // The last lines may still be on their way from the pipe.
        let line = eventually(&format!("{flags:?}: the error"), SOON, || async {
            operator
                .logs()
                .into_iter()
                .find(|l| l.contains("--metrics-cert-dir") && l.contains(says))
        })
        .await;
        eprintln!("{flags:?}: {line}");
    }
}
