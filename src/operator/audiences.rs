//! The audiences the cluster's own API server accepts. A ServiceAccount token for one of them
//! authenticates to Kubernetes as that ServiceAccount, so it must never be minted for a tenant's
//! `spec.federation.audience`, let alone sent to IAM.
//!
//! Two checks, because neither alone suffices. The issuer discovery document
//! (`/.well-known/openid-configuration`) names the issuer, the API server's default audience,
//! and lets the operator refuse it before any TokenRequest; but `--api-audiences` may list other
//! audiences that no document publishes. So every minted token is also reviewed (TokenReview,
//! without audiences: the API server then checks it against its own) before it leaves: a token
//! the API server accepts is dropped, and its audience remembered so that it is never requested
//! again.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::Api;
use kube::api::PostParams;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tracing::{debug, warn};

use crate::lock::lock;

/// The path of the API server's OpenID Connect discovery document.
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// Why a token could not be checked, or must not leave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudienceRefusal {
    /// The API server accepts tokens of this audience.
    ApiServerAudience,
    /// The operator may not create TokenReviews (RBAC): the token cannot be checked, so it is
    /// not sent.
    ReviewForbidden,
    /// The review could not be made (the API server did not answer); may clear by itself.
    ReviewFailed(String),
}

/// What the operator knows of the API server's audiences.
pub struct ApiServerAudiences {
    client: kube::Client,
    /// Audiences known to be the API server's: its issuer, and those a review found.
    known: Mutex<BTreeSet<String>>,
    /// Whether the discovery document has been read, or when it last failed to be.
    discovery: Mutex<Discovery>,
}

/// Reading the discovery document: once it answered, never again; after a failure, again
/// after [`DISCOVERY_RETRY`] (a failure is logged each time, so not on every token).
#[derive(Clone, Copy, Debug)]
enum Discovery {
    NotYet,
    FailedAt(Instant),
    Done,
}

/// How long after a failed read of the discovery document it is tried again.
const DISCOVERY_RETRY: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
}

impl ApiServerAudiences {
    /// Audiences of the API server that `client` talks to.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            known: Mutex::new(BTreeSet::new()),
            discovery: Mutex::new(Discovery::NotYet),
        }
    }

    /// Whether `audience` is known to be the API server's, before any token is requested.
    pub async fn is_known(&self, audience: &str) -> bool {
        self.discover().await;
        lock(&self.known).contains(audience)
    }

    /// Checks a token minted for `audience` before it leaves: `Ok` when the API server does not
    /// accept it.
    pub async fn review(
        &self,
        token: &SecretString,
        audience: &str,
    ) -> Result<(), AudienceRefusal> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.expose_secret().to_owned(),
                // None: the API server reviews it against its own audiences.
                audiences: None,
            },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        match api.create(&PostParams::default(), &review).await {
            Ok(answer) => {
                let accepted = answer
                    .status
                    .and_then(|status| status.authenticated)
                    .unwrap_or(false);
                if accepted {
                    lock(&self.known).insert(audience.to_owned());
                    Err(AudienceRefusal::ApiServerAudience)
                } else {
                    Ok(())
                }
            }
            Err(kube::Error::Api(status)) if status.code == 403 => {
                Err(AudienceRefusal::ReviewForbidden)
            }
            // The error names the request, never the token (which travels in the body).
            Err(error) => Err(AudienceRefusal::ReviewFailed(error.to_string())),
        }
    }

    /// Reads the issuer from the discovery document, once it answers.
    async fn discover(&self) {
        match *lock(&self.discovery) {
            Discovery::Done => return,
            Discovery::FailedAt(at) if at.elapsed() < DISCOVERY_RETRY => return,
            Discovery::NotYet | Discovery::FailedAt(_) => {}
        }
        let request = match http::Request::get(DISCOVERY_PATH).body(Vec::new()) {
            Ok(request) => request,
            Err(_) => return,
        };
        match self.client.request::<DiscoveryDocument>(request).await {
            Ok(document) => {
                debug!(issuer = %document.issuer, "the API server's issuer");
                lock(&self.known).insert(document.issuer);
                *lock(&self.discovery) = Discovery::Done;
            }
            // Not fatal: every minted token is reviewed anyway.
            Err(error) => {
                *lock(&self.discovery) = Discovery::FailedAt(Instant::now());
                warn!(%error, "cannot read the API server's issuer discovery document");
            }
        }
    }
}
