//! Who may read `/metrics`, decided by the API server as controller-runtime's metrics filter does:
//! the caller's bearer token by a TokenReview, the user it names by a SubjectAccessReview for
//! `get` on the non-resource URL `/metrics`. Verdicts are remembered briefly under a hash of the
//! token (never the token), so a scraper every 15 s costs the API server a review a minute.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::lock::lock;

/// The path readers are authorised for.
pub const METRICS_PATH: &str = "/metrics";
/// How long an allowed reader is remembered (controller-runtime's authentication cache: 1 min).
const ALLOWED_TTL: Duration = Duration::from_secs(60);
/// How long a refused token is remembered: short, so that a new grant takes effect soon.
const REFUSED_TTL: Duration = Duration::from_secs(10);
/// Verdicts remembered at most: made-up tokens cannot grow the cache without bound.
const CACHE_ENTRIES: usize = 1024;
/// Reviews in flight at once: a flood of made-up tokens cannot flood the API server.
const REVIEWS_IN_FLIGHT: usize = 4;

/// What the API server says of a caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A user allowed `get` on `/metrics`.
    Allowed,
    /// No valid token: 401.
    Unauthenticated,
    /// A valid token of `user`, who may not `get` `/metrics`: 403.
    Forbidden {
        /// The user the token names.
        user: String,
    },
}

/// A review the API server did not answer: nothing is decided, nothing remembered.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The TokenReview failed.
    #[error(
        "cannot review a /metrics reader's token: {0}; poolwatch needs create on \
         tokenreviews.authentication.k8s.io (the chart grants it)"
    )]
    Token(#[source] kube::Error),
    /// The SubjectAccessReview failed.
    #[error(
        "cannot check a /metrics reader's access: {0}; poolwatch needs create on \
         subjectaccessreviews.authorization.k8s.io (the chart grants it)"
    )]
    Access(#[source] kube::Error),
}

/// Reviews callers through the API server and remembers its verdicts.
pub struct Readers {
    client: kube::Client,
    cache: Mutex<Cache>,
    in_flight: Semaphore,
}

impl Readers {
    /// Reviews through `client` (the operator's own identity).
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            cache: Mutex::new(Cache::default()),
            in_flight: Semaphore::new(REVIEWS_IN_FLIGHT),
        }
    }

    /// The verdict on `token`: remembered, or asked of the API server.
    pub async fn review(&self, token: &str) -> Result<Verdict, ReviewError> {
        let key = fingerprint(token);
        if let Some(verdict) = lock(&self.cache).get(&key) {
            return Ok(verdict);
        }
        let _permit = self.in_flight.acquire().await;
        // Another request with the same token may have been answered while this one waited.
        if let Some(verdict) = lock(&self.cache).get(&key) {
            return Ok(verdict);
        }
        let verdict = self.ask(token).await?;
        lock(&self.cache).put(key, verdict.clone());
        Ok(verdict)
    }

    async fn ask(&self, token: &str) -> Result<Verdict, ReviewError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                ..TokenReviewSpec::default()
            },
            ..TokenReview::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(ReviewError::Token)?;
        let status = reviewed.status.unwrap_or_default();
        let user = match (status.authenticated, status.user) {
            (Some(true), Some(user)) => user,
            _ => return Ok(Verdict::Unauthenticated),
        };
        let name = user.username.clone().unwrap_or_default();
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                uid: user.uid,
                groups: user.groups,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(METRICS_PATH.to_owned()),
                    verb: Some("get".to_owned()),
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let decided = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &access)
            .await
            .map_err(ReviewError::Access)?;
        if decided.status.is_some_and(|s| s.allowed) {
            Ok(Verdict::Allowed)
        } else {
            Ok(Verdict::Forbidden { user: name })
        }
    }
}

/// axum middleware: passes the request on only for an allowed reader; 401 without a valid
/// bearer token, 403 for a user without `get` on `/metrics`, 500 when the API server cannot say.
pub async fn require_reader(
    State(readers): State<Arc<Readers>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = bearer_token(request.headers()) else {
        return unauthorized();
    };
    match readers.review(token).await {
        Ok(Verdict::Allowed) => next.run(request).await,
        Ok(Verdict::Unauthenticated) => unauthorized(),
        Ok(Verdict::Forbidden { user }) => {
            debug!(%user, "refused a /metrics reader without get on /metrics");
            (
                StatusCode::FORBIDDEN,
                format!(
                    "forbidden: {user} may not get {METRICS_PATH}: bind it to a ClusterRole \
                     that grants get on the non-resource URL {METRICS_PATH} (the chart's \
                     metrics-reader ClusterRole)\n"
                ),
            )
                .into_response()
        }
        Err(error) => {
            warn!(%error, "cannot decide whether a /metrics reader may read");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot check the reader with the Kubernetes API server: see poolwatch's log\n",
            )
                .into_response()
        }
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "unauthorized: send a Kubernetes bearer token (Authorization: Bearer ...)\n",
    )
        .into_response()
}

/// The token of an `Authorization: Bearer <token>` header; `None` without a non-empty one.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// SHA-256 of the token: what the cache keys by, so no token stays in memory after its request.
fn fingerprint(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut key = [0; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// Verdicts by token fingerprint, each until its expiry; at most [`CACHE_ENTRIES`].
#[derive(Default)]
struct Cache {
    entries: HashMap<[u8; 32], (Verdict, Instant)>,
}

impl Cache {
    fn get(&mut self, key: &[u8; 32]) -> Option<Verdict> {
        let now = Instant::now();
        match self.entries.get(key) {
            Some((verdict, expiry)) if *expiry > now => Some(verdict.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn put(&mut self, key: [u8; 32], verdict: Verdict) {
        let now = Instant::now();
        if self.entries.len() >= CACHE_ENTRIES {
            self.entries.retain(|_, (_, expiry)| *expiry > now);
        }
        if self.entries.len() >= CACHE_ENTRIES {
            // Still full of live verdicts: the one that expires first goes.
            let soonest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, expiry))| *expiry)
                .map(|(key, _)| *key);
            if let Some(soonest) = soonest {
                self.entries.remove(&soonest);
            }
        }
        let ttl = match verdict {
            Verdict::Allowed => ALLOWED_TTL,
            Verdict::Unauthenticated | Verdict::Forbidden { .. } => REFUSED_TTL,
        };
        self.entries.insert(key, (verdict, now + ttl));
    }
}

#[cfg(test)]
#[path = "metrics_auth_tests.rs"]
mod tests;
