//! Federation's blast radius: cluster-wide, the chart grants the operator `create` on
//! `serviceaccounts/token` in every namespace. What the operator's ServiceAccount can do with it
//! is tried with `kubectl create token --as` that ServiceAccount (the admin impersonates it), on a
//! release helm installed.

use super::*;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};

/// A release of the chart helm installed in a namespace of its own, named after it so that its
/// cluster-scoped objects are its own too.
struct Release {
    namespace: TestNamespace,
    /// The release's fullname: its objects' and its ServiceAccount's name.
    fullname: String,
}

impl Release {
    /// A namespace for the release; nothing installed yet.
    async fn new(test: &str) -> Self {
        let namespace = TestNamespace::new(test).await;
        let fullname = format!("{}-poolwatch", namespace.name);
        let fullname = fullname[..fullname.len().min(63)]
            .trim_end_matches('-')
            .to_owned();
        Self {
            namespace,
            fullname,
        }
    }

    /// `helm install` with `--set` values; helm's output, or why it failed.
    fn install(&self, set: &[&str]) -> Result<String, String> {
        let mut command = self.namespace.helm();
        command
            .args(["install", &self.namespace.name])
            .arg(repo_path(CHART));
        for value in set {
            command.args(["--set", value]);
        }
        run(&mut command)
    }

    /// `system:serviceaccount:NAMESPACE:NAME` of the operator's ServiceAccount.
    fn operator(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace.name, self.fullname
        )
    }
}

/// `kubectl create token ACCOUNT --namespace NAMESPACE [--audience AUDIENCE]` asked as `user`:
/// the token, or kubectl's error (the API server's message).
fn create_token_as(
    user: &str,
    namespace: &str,
    account: &str,
    audience: Option<&str>,
) -> Result<String, String> {
    let mut command = control_plane().kubectl();
    command.args(["create", "token", account, "--namespace", namespace]);
    command.args(["--duration=10m", "--as", user]);
    if let Some(audience) = audience {
        command.args(["--audience", audience]);
    }
    run(&mut command).map(|token| token.trim().to_owned())
}

/// Whom the API server takes `token` for (a TokenReview with the API server's own audiences),
/// if anyone, and the audiences it accepted it for.
async fn api_server_identity(client: &kube::Client, token: &str) -> Option<(String, Vec<String>)> {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: token.to_owned(),
            audiences: None,
        },
        ..TokenReview::default()
    };
    let status = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("a TokenReview")
        .status?;
    if status.authenticated != Some(true) {
        return None;
    }
    let user = status.user.and_then(|user| user.username)?;
    Some((user, status.audiences.unwrap_or_default()))
}

/// The attack: whoever controls the operator of a cluster-wide release with federation asks, as
/// its ServiceAccount, for a token of a kube-system ServiceAccount with the API server's audience
/// (none given: the API server's own) and uses it against the API server.
#[tokio::test(flavor = "multi_thread")]
async fn the_operator_cannot_mint_a_kube_system_token_for_the_api_server() {
    let release = Release::new("chart-token-attack").await;
    release
        .install(&["federation.enabled=true"])
        .unwrap_or_else(|e| panic!("{e}"));
    let client = &release.namespace.client;
    let refusal = crate::support::operator::eventually(
        "the operator's request for a kube-system token for the API server to be refused",
        SOON,
        || async {
            match create_token_as(&release.operator(), "kube-system", "default", None) {
                Err(refusal) => Some(refusal),
                Ok(token) => {
                    let identity = api_server_identity(client, &token).await;
                    eprintln!(
                        "the operator's ServiceAccount got a kube-system token the API server \
                         takes for {identity:?}"
                    );
                    None
                }
            }
        },
    )
    .await;
    assert!(refusal.contains("kube-system"), "{refusal}");
}
