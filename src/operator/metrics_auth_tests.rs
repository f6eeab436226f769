//! The `/metrics` filter against a scripted API server that answers TokenReviews and
//! SubjectAccessReviews, served for real on loopback.

use std::collections::BTreeSet;

use http::{Request as HttpRequest, Response as HttpResponse};
use kube::client::Body;
use serde_json::{Value, json};

use super::*;

/// The reader's token: user `reader`, who may get `/metrics` once granted.
const READER: &str = "reader-token";
/// A valid token of user `tenant`, never granted.
const TENANT: &str = "tenant-token";

/// What the scripted API server has been asked, and how it answers.
#[derive(Default)]
struct Script {
    /// Users allowed `get` on `/metrics`.
    granted: BTreeSet<String>,
    /// Answer reviews with this HTTP status instead (the operator not allowed to review).
    refuse_reviews: Option<u16>,
    /// `tokenreviews` and `subjectaccessreviews` asked, in order.
    asked: Vec<String>,
    /// Every request body, to check that no token is sent anywhere but a TokenReview.
    bodies: Vec<Value>,
}

fn api_server(script: Arc<Mutex<Script>>) -> kube::Client {
    let (service, mut handle) = tower_test::mock::pair::<HttpRequest<Body>, HttpResponse<Body>>();
    tokio::spawn(async move {
        while let Some((request, reply)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let body: Value =
                serde_json::from_slice(&body.collect_bytes().await.unwrap_or_default())
                    .unwrap_or(Value::Null);
            let resource = parts
                .uri
                .path()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            let (code, answer) = {
                let mut script = lock(&script);
                script.asked.push(resource.clone());
                script.bodies.push(body.clone());
                match (script.refuse_reviews, resource.as_str()) {
                    (Some(code), _) => (
                        code,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                               "code": code, "reason": "Forbidden", "message": "not allowed"}),
                    ),
                    (None, "tokenreviews") => {
                        let user = match body["spec"]["token"].as_str() {
                            Some(READER) => Some("reader"),
                            Some(TENANT) => Some("tenant"),
                            _ => None,
                        };
                        let mut answer = body.clone();
                        answer["status"] = match user {
                            Some(user) => json!({"authenticated": true,
                                "user": {"username": user, "uid": "1", "groups": ["team"]}}),
                            None => json!({"authenticated": false, "error": "invalid token"}),
                        };
                        (201, answer)
                    }
                    (None, "subjectaccessreviews") => {
                        let spec = &body["spec"];
                        let user = spec["user"].as_str().unwrap_or_default();
                        let allowed = spec["nonResourceAttributes"]
                            == json!({"path": "/metrics", "verb": "get"})
                            && spec["groups"] == json!(["team"])
                            && script.granted.contains(user);
                        let mut answer = body.clone();
                        answer["status"] = json!({"allowed": allowed});
                        (201, answer)
                    }
                    _ => (404, json!({"kind": "Status", "code": 404})),
                }
            };
            let response = HttpResponse::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(answer.to_string().into_bytes()))
                .expect("a response");
            reply.send_response(response);
        }
    });
    kube::Client::new(service, "default")
}

/// `/metrics` behind the filter, on a loopback port; its URL.
async fn serve(readers: Arc<Readers>) -> String {
    let app = axum::Router::new()
        .route(
            METRICS_PATH,
            axum::routing::get(|| async { "poolwatch_leader 1\n" }),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            readers,
            require_reader,
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{METRICS_PATH}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

struct Fixture {
    script: Arc<Mutex<Script>>,
    readers: Arc<Readers>,
    url: String,
}

impl Fixture {
    async fn new() -> Self {
        let script = Arc::new(Mutex::new(Script::default()));
        script.lock().unwrap().granted.insert("reader".to_owned());
        let readers = Arc::new(Readers::new(api_server(Arc::clone(&script))));
        Self {
            url: serve(Arc::clone(&readers)).await,
            readers,
            script,
        }
    }

    async fn get(&self, authorization: Option<&str>) -> (u16, String) {
        let mut request = reqwest::Client::new().get(&self.url);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.expect("the filter answers");
        (response.status().as_u16(), response.text().await.unwrap())
    }

    fn asked(&self) -> Vec<String> {
        lock(&self.script).asked.clone()
    }
}

#[tokio::test]
async fn no_token_or_an_invalid_one_is_401_and_a_token_without_the_grant_is_403() {
    let fixture = Fixture::new().await;
    for header in [
        None,
        Some("Basic cmVhZGVy"),
        Some("Bearer "),
        Some("Bearer made-up"),
    ] {
        let (code, body) = fixture.get(header).await;
        assert_eq!(code, 401, "{header:?}: {body}");
        assert!(!body.contains("poolwatch_"), "{body}");
    }
    // Only the made-up token was worth a review; a missing or empty one asks nothing.
    assert_eq!(fixture.asked(), ["tokenreviews"]);

    let (code, body) = fixture.get(Some(&format!("Bearer {TENANT}"))).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("tenant may not get /metrics") && body.contains("metrics-reader"),
        "{body}"
    );
    assert!(
        !body.contains("poolwatch_") && !body.contains(TENANT),
        "{body}"
    );
}

#[tokio::test]
async fn a_reader_gets_the_series_and_costs_one_review_per_ttl() {
    let fixture = Fixture::new().await;
    for _ in 0..5 {
        let (code, body) = fixture.get(Some(&format!("bearer {READER}"))).await;
        assert_eq!((code, body.as_str()), (200, "poolwatch_leader 1\n"));
    }
    assert_eq!(fixture.asked(), ["tokenreviews", "subjectaccessreviews"]);
    // The token went to the TokenReview alone.
    let bodies = lock(&fixture.script).bodies.clone();
    assert_eq!(bodies[0]["spec"]["token"], READER);
    assert!(!bodies[1].to_string().contains(READER), "{}", bodies[1]);
}

/// Straight through [`Readers::review`]: with the clock paused, no socket may be waited on.
#[tokio::test(start_paused = true)]
async fn verdicts_expire_so_a_new_grant_or_revocation_takes_effect() {
    let fixture = Fixture::new().await;
    let review = || async { fixture.readers.review(TENANT).await.unwrap() };
    let forbidden = Verdict::Forbidden {
        user: "tenant".to_owned(),
    };
    assert_eq!(review().await, forbidden);
    lock(&fixture.script).granted.insert("tenant".to_owned());
    assert_eq!(review().await, forbidden, "remembered for a while");
    tokio::time::advance(REFUSED_TTL + Duration::from_secs(1)).await;
    assert_eq!(review().await, Verdict::Allowed, "the grant counts");
    lock(&fixture.script).granted.clear();
    tokio::time::advance(ALLOWED_TTL - Duration::from_secs(2)).await;
    assert_eq!(review().await, Verdict::Allowed, "remembered for a minute");
    tokio::time::advance(Duration::from_secs(3)).await;
    assert_eq!(review().await, forbidden, "the revocation counts");
}

#[tokio::test]
async fn an_operator_that_may_not_review_answers_500_and_remembers_nothing() {
    let fixture = Fixture::new().await;
    lock(&fixture.script).refuse_reviews = Some(403);
    let reader = format!("Bearer {READER}");
    let (code, body) = fixture.get(Some(&reader)).await;
    assert_eq!(code, 500, "{body}");
    assert!(!body.contains(READER), "{body}");
    lock(&fixture.script).refuse_reviews = None;
    assert_eq!(fixture.get(Some(&reader)).await.0, 200);
}

#[test]
fn review_errors_say_which_grant_the_operator_needs() {
    let refused = || {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("forbidden", "Forbidden").with_code(403),
        ))
    };
    assert!(
        ReviewError::Token(refused())
            .to_string()
            .contains("create on tokenreviews.authentication.k8s.io")
    );
    assert!(
        ReviewError::Access(refused())
            .to_string()
            .contains("create on subjectaccessreviews.authorization.k8s.io")
    );
}

#[tokio::test(start_paused = true)]
async fn the_cache_holds_fingerprints_only_and_stays_bounded() {
    let mut cache = Cache::default();
    for i in 0..CACHE_ENTRIES * 3 {
        cache.put(
            fingerprint(&format!("made-up-{i}")),
            Verdict::Unauthenticated,
        );
        assert!(cache.entries.len() <= CACHE_ENTRIES);
    }
    // A live allowed verdict outlasts refused ones when the cache is full.
    let reader = fingerprint(READER);
    cache.put(reader, Verdict::Allowed);
    for i in 0..CACHE_ENTRIES {
        cache.put(fingerprint(&format!("more-{i}")), Verdict::Unauthenticated);
    }
    assert_eq!(cache.get(&reader), Some(Verdict::Allowed));
    assert_ne!(fingerprint(READER).as_slice(), READER.as_bytes());
    assert_eq!(fingerprint(READER), fingerprint(READER));
}
