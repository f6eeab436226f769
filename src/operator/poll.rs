//! One poll of one watch: resolve its spec, read its keys, find its project id, fetch its
//! statistics and, when it asks for them, its pools. Calls go through the upstream budget and are shared between watches of the same
//! target; the ModelArts client builds and signs the requests.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tracing::debug;

use crate::modelarts::{ErrorClass, ModelArtsError, PoolList, PoolListFilter, PoolStatistics};

use super::context::Context;
use super::credentials::LoadedCredentials;
use super::failure::{CredentialsProblem, Failure};
use super::target::{ProjectSource, SpecError, WatchTarget};
use super::upstream::{BudgetKey, Reservation, SharedCalls, SharedOutcome, Wanted};

/// How long a resolved project id is reused.
pub const PROJECT_ID_REUSE: Duration = Duration::from_secs(3600);

/// Same project, workspace, endpoint and key: one upstream call serves them all. The key is
/// the whole key's fingerprint, not only its id: a watch whose Secret has the right id but a
/// wrong secret must not be served an answer that another watch's valid key obtained.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallKey {
    endpoint: String,
    project_id: String,
    workspace_id: String,
    credentials: String,
}

/// One project-id lookup: IAM endpoint, region and key (fingerprint, as in [`CallKey`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProjectKey {
    iam_endpoint: String,
    region: String,
    credentials: String,
}

/// One pool list: a target's [`CallKey`] and which pools.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolListKey {
    call: CallKey,
    filter: PoolListFilter,
}

/// Statistics calls, shared between watches of one target.
pub type StatisticsCalls = SharedCalls<CallKey, Result<PoolStatistics, ModelArtsError>>;
/// Pool lists, shared between watches of one target like the statistics.
pub type PoolListCalls = SharedCalls<PoolListKey, Result<Arc<PoolList>, ModelArtsError>>;
/// Project-id lookups, shared and reused for [`PROJECT_ID_REUSE`].
pub type ProjectCalls = SharedCalls<ProjectKey, Result<String, ModelArtsError>>;

/// What one poll asks for.
#[derive(Clone, Copy, Debug)]
pub struct PollRequest<'a> {
    /// What its spec names, or why it cannot be used.
    pub target: &'a Result<WatchTarget, SpecError>,
    /// Its namespace, where its Secret or ServiceAccount is.
    pub namespace: &'a str,
    /// Its interval: a scheduled poll may take an answer up to half an interval old.
    pub interval: Duration,
    /// A new spec, a refresh request or new keys: wants a new answer and a fresh Secret read.
    pub forced: bool,
}

/// One statistics call: the resolved target, the keys and the project id.
struct StatisticsCall<'a> {
    target: &'a WatchTarget,
    loaded: &'a LoadedCredentials,
    project_id: String,
}

/// What a call on one target shares with the other watches of the target: the budget it
/// spends, the key its answer is shared under, and how old a shared answer may be.
struct TargetCall {
    budget_key: BudgetKey,
    key: CallKey,
    fresh_within: Duration,
}

impl TargetCall {
    fn new(
        request: &PollRequest<'_>,
        target: &WatchTarget,
        loaded: &LoadedCredentials,
        project_id: &str,
    ) -> Self {
        let fingerprint = loaded.credentials.fingerprint();
        Self {
            budget_key: BudgetKey {
                endpoint: target.endpoint.authority(),
                credentials: fingerprint.clone(),
            },
            key: CallKey {
                endpoint: target.endpoint.to_string(),
                project_id: project_id.to_owned(),
                workspace_id: target.workspace_id.clone(),
                credentials: fingerprint,
            },
            // A forced poll wants a new answer; a scheduled one may take an answer another
            // watch of the same target got within half an interval.
            fresh_within: if request.forced {
                Duration::ZERO
            } else {
                request.interval / 2
            },
        }
    }
}

/// The pool lists of one poll, after its statistics call.
struct PoolListCall<'a> {
    target: &'a WatchTarget,
    loaded: &'a LoadedCredentials,
    project_id: &'a str,
    shared: &'a TargetCall,
}

/// How long a poll waits for the budget to let its pool lists through before it shows its
/// counts without new details: the wait is a reservation of its own, so it is short unless the
/// key's rate is far over its budget.
pub const MAX_LIST_WAIT: Duration = Duration::from_secs(10);

/// The pool details of a successful poll.
#[derive(Clone, Debug, PartialEq)]
pub enum Details {
    /// The watch does not ask for them (`spec.poolDetails` is false).
    Off,
    /// Both lists answered: the current and the failed pools, merged.
    Listed(Arc<PoolList>),
    /// A list failed: the last good details stay, and the watch says why.
    Failed(Failure),
    /// The budget put the lists off past [`MAX_LIST_WAIT`]: nothing new to show.
    Deferred,
}

/// The outcome of one attempt to poll.
#[derive(Debug)]
pub enum Poll {
    /// ModelArts answered.
    Polled {
        /// The counts.
        statistics: PoolStatistics,
        /// The project id used.
        project_id: String,
        /// The pools, when the watch asks for them.
        details: Details,
    },
    /// The poll failed.
    Failed(Failure),
    /// The upstream budget is spent: try again after this long, without counting a failure.
    Deferred(Duration),
}

impl Poll {
    /// Whether ModelArts or IAM refused the keys, or found them expired: newer keys may exist.
    fn refused_keys(&self) -> bool {
        match self {
            Self::Failed(failure) => {
                matches!(
                    failure.credentials,
                    Some(CredentialsProblem::Refused { .. })
                ) || failure.reason == ErrorClass::TemporaryCredentialsExpired.reason()
            }
            _ => false,
        }
    }
}

impl Context {
    /// Polls once for `request`; `reservation` is the watch's place in its budget's queue.
    pub async fn poll(
        &self,
        request: &PollRequest<'_>,
        reservation: &mut Option<Reservation>,
    ) -> Poll {
        let target = match request.target {
            Ok(target) => target,
            Err(error) => return Poll::Failed(Failure::from_spec(error)),
        };
        let source = &target.credentials;
        let loaded = match self
            .credentials(request.namespace, source, request.forced)
            .await
        {
            Ok(loaded) => loaded,
            Err(error) => return Poll::Failed(Failure::from_credentials(&error)),
        };
        let poll = self.call(request, target, &loaded, reservation).await;
        if !poll.refused_keys() {
            return poll;
        }
        // Refused keys may have been replaced since they were read (a Secret rotated while a
        // read was reused or a call waited to be retried; temporary keys revoked or expired
        // early): get them again at once and, if they changed, poll with the new ones rather
        // than stall on keys that were already replaced.
        self.forget_credentials(request.namespace, source);
        match self.credentials(request.namespace, source, true).await {
            Ok(fresh) if fresh.version != loaded.version => {
                self.call(request, target, &fresh, reservation).await
            }
            _ => poll,
        }
    }

    /// The project id, then the statistics, with the keys of `loaded`.
    async fn call(
        &self,
        request: &PollRequest<'_>,
        target: &WatchTarget,
        loaded: &LoadedCredentials,
        reservation: &mut Option<Reservation>,
    ) -> Poll {
        let project_id = match self.project_id(target, loaded, reservation).await {
            Ok(project_id) => project_id,
            Err(poll) => return poll,
        };
        let call = StatisticsCall {
            target,
            loaded,
            project_id,
        };
        self.statistics(request, call, reservation).await
    }

    /// The statistics `call` asks for and, when the watch wants them, its pools.
    async fn statistics(
        &self,
        request: &PollRequest<'_>,
        call: StatisticsCall<'_>,
        reservation: &mut Option<Reservation>,
    ) -> Poll {
        let StatisticsCall {
            target,
            loaded,
            project_id,
        } = call;
        let shared = TargetCall::new(request, target, loaded, &project_id);
        let client = self.modelarts.clone();
        let credentials = loaded.credentials.clone();
        let (endpoint, call_project, workspace) = (
            target.endpoint.clone(),
            project_id.clone(),
            target.workspace_id.clone(),
        );
        let wanted = Wanted {
            key: shared.key.clone(),
            fresh_within: shared.fresh_within,
            is_failure: Result::is_err,
        };
        let answer = self
            .statistics
            .get(
                wanted,
                self.admission(&shared.budget_key, reservation),
                async move {
                    client
                        .pool_statistics(&endpoint, &credentials, &call_project, &workspace)
                        .await
                },
            )
            .await;
        let statistics = match answer {
            SharedOutcome::Answer {
                value: Ok(statistics),
                called,
            } => {
                debug!(shared = !called, "statistics answered");
                statistics
            }
            SharedOutcome::Answer {
                value: Err(error), ..
            } => {
                if error.class() == ErrorClass::AuthenticationFailed {
                    // Rotated keys are read again at once for the next poll.
                    self.forget_credentials(request.namespace, &target.credentials);
                }
                return Poll::Failed(Failure::from_upstream(&error, &loaded.version));
            }
            SharedOutcome::Deferred(wait) => return Poll::Deferred(wait),
            SharedOutcome::Lost => return Poll::Failed(Failure::interrupted()),
        };
        let details = if target.pool_details {
            let list = PoolListCall {
                target,
                loaded,
                project_id: &project_id,
                shared: &shared,
            };
            self.pool_details(list, reservation).await
        } else {
            Details::Off
        };
        Poll::Polled {
            statistics,
            project_id,
            details,
        }
    }

    /// The workspace's pools: the current and the failed ones, each list shared between the
    /// watches of the target like the statistics. The counts are already in hand, so nothing
    /// here fails the poll: a failed list is [`Details::Failed`], and a list the budget puts
    /// off is waited for (the wait is a reservation of this poll's own) up to
    /// [`MAX_LIST_WAIT`], then [`Details::Deferred`].
    async fn pool_details(
        &self,
        call: PoolListCall<'_>,
        reservation: &mut Option<Reservation>,
    ) -> Details {
        let lists = async {
            let current = self
                .pool_list(&call, PoolListFilter::Current, reservation)
                .await?;
            let failed = self
                .pool_list(&call, PoolListFilter::Failed, reservation)
                .await?;
            Ok(PoolList::merge(
                PoolList::clone(&current),
                PoolList::clone(&failed),
            ))
        };
        match lists.await {
            Ok(merged) => Details::Listed(Arc::new(merged)),
            Err(details) => details,
        }
    }

    /// One pool list of `call`, waiting out the budget's deferrals for up to [`MAX_LIST_WAIT`].
    async fn pool_list(
        &self,
        call: &PoolListCall<'_>,
        filter: PoolListFilter,
        reservation: &mut Option<Reservation>,
    ) -> Result<Arc<PoolList>, Details> {
        let give_up = Instant::now() + MAX_LIST_WAIT;
        loop {
            let client = self.modelarts.clone();
            let credentials = call.loaded.credentials.clone();
            let (endpoint, project, workspace) = (
                call.target.endpoint.clone(),
                call.project_id.to_owned(),
                call.target.workspace_id.clone(),
            );
            let wanted = Wanted {
                key: PoolListKey {
                    call: call.shared.key.clone(),
                    filter,
                },
                fresh_within: call.shared.fresh_within,
                is_failure: Result::is_err,
            };
            let answer = self
                .pool_lists
                .get(
                    wanted,
                    self.admission(&call.shared.budget_key, reservation),
                    async move {
                        client
                            .list_pools(&endpoint, &credentials, &project, &workspace, filter)
                            .await
                            .map(Arc::new)
                    },
                )
                .await;
            match answer {
                SharedOutcome::Answer { value, called } => {
                    debug!(shared = !called, ?filter, "pool list answered");
                    return value.map_err(|error| Details::Failed(Failure::from_pool_list(&error)));
                }
                SharedOutcome::Deferred(wait) if Instant::now() + wait <= give_up => {
                    tokio::time::sleep(wait).await;
                }
                SharedOutcome::Deferred(_) => return Err(Details::Deferred),
                SharedOutcome::Lost => {
                    return Err(Details::Failed(Failure::interrupted()));
                }
            }
        }
    }

    /// Asks the upstream budget of `key` for a call when the shared call needs one.
    fn admission<'r>(
        &'r self,
        key: &'r BudgetKey,
        reservation: &'r mut Option<Reservation>,
    ) -> impl FnOnce() -> Result<OwnedSemaphorePermit, Duration> + 'r {
        move || self.budget.try_admit(key, reservation, Instant::now())
    }

    /// The project id: the spec's, or IAM's answer (reused for [`PROJECT_ID_REUSE`] per IAM
    /// endpoint, region and key). `Err` is the poll's outcome when there is none.
    async fn project_id(
        &self,
        target: &WatchTarget,
        loaded: &LoadedCredentials,
        reservation: &mut Option<Reservation>,
    ) -> Result<String, Poll> {
        let (iam_endpoint, region) = match &target.project {
            ProjectSource::Given(project_id) => return Ok(project_id.clone()),
            ProjectSource::Lookup {
                iam_endpoint,
                region,
            } => (iam_endpoint, region),
        };
        let credentials = &loaded.credentials;
        let fingerprint = credentials.fingerprint();
        let budget_key = BudgetKey {
            endpoint: iam_endpoint.authority(),
            credentials: fingerprint.clone(),
        };
        let key = ProjectKey {
            iam_endpoint: iam_endpoint.to_string(),
            region: region.clone(),
            credentials: fingerprint,
        };
        let client = self.modelarts.clone();
        let (iam, call_credentials, call_region) =
            (iam_endpoint.clone(), credentials.clone(), region.clone());
        let wanted = Wanted {
            key,
            fresh_within: PROJECT_ID_REUSE,
            is_failure: Result::is_err,
        };
        let answer = self
            .projects
            .get(
                wanted,
                self.admission(&budget_key, reservation),
                async move {
                    client
                        .resolve_project_id(&iam, &call_credentials, &call_region)
                        .await
                },
            )
            .await;
        match answer {
            SharedOutcome::Answer { value: Ok(id), .. } => Ok(id),
            SharedOutcome::Answer {
                value: Err(error), ..
            } => Err(Poll::Failed(Failure::from_upstream(
                &error,
                &loaded.version,
            ))),
            SharedOutcome::Deferred(wait) => Err(Poll::Deferred(wait)),
            SharedOutcome::Lost => Err(Poll::Deferred(Duration::from_secs(1))),
        }
    }
}
