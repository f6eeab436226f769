//! The reconcile loop: gathers one watch's inputs, asks the schedule and the status logic what to
//! do, and applies the answer (one upstream poll at most, one status write at most, events).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource, ResourceExt};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::metrics::{Metrics, WatchLabels};
use crate::modelarts::{Credentials, ErrorClass, ModelArtsClient, ModelArtsError, PoolStatistics};
use crate::resource::{
    DEFAULT_INTERVAL, PoolCounts, PoolStatisticsWatch, PoolStatisticsWatchStatus,
};
use crate::schedule::{self, Decision, FailureKind, Jitter, PollReason};
use crate::secrets::{CredentialsError, SecretReader};
use crate::status::{self, Failure, Notice, Outcome, READY, Severity};
use crate::target::{ProjectSource, SpecError, WatchTarget, parse_interval};
use crate::upstream::{Budget, BudgetKey, Reservation, SharedCalls, SharedOutcome};

/// The field manager of every status write.
pub const FIELD_MANAGER: &str = "poolwatch";
/// Annotation whose every new value asks for a poll now.
pub const REFRESH_ANNOTATION: &str = "poolwatch.io/refresh-requested-at";
/// How often a watch stalled on its credentials re-reads its Secret to notice a fix. A Secret
/// read is a cheap Kubernetes call; the upstream call is made only once the Secret changed.
pub const SECRET_RECHECK: Duration = Duration::from_secs(15);
/// How long a resolved project id is reused.
pub const PROJECT_ID_REUSE: Duration = Duration::from_secs(3600);
/// Longest condition message: the gateway's messages can be long.
const MAX_MESSAGE_CHARS: usize = 512;

/// Why a reconcile failed. Only Kubernetes calls fail a reconcile: upstream failures are
/// outcomes that the status reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The status could not be written.
    #[error("writing the status of {object} failed: {source}")]
    StatusWrite {
        /// `namespace/name`.
        object: String,
        /// What the API server said.
        source: kube::Error,
    },
    /// The object has no namespace (cannot happen for a namespaced kind).
    #[error("{0} has no namespace")]
    NoNamespace(String),
}

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

type StatisticsAnswer = Result<PoolStatistics, ModelArtsError>;
type ProjectAnswer = Result<String, ModelArtsError>;

/// Operator settings that reconciles read.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Let `http://` reach hosts that are not loopback.
    pub allow_http_endpoints: bool,
}

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    client: kube::Client,
    modelarts: ModelArtsClient,
    secrets: SecretReader,
    budget: Budget,
    statistics: SharedCalls<CallKey, StatisticsAnswer>,
    projects: SharedCalls<ProjectKey, ProjectAnswer>,
    memory: Mutex<HashMap<WatchKey, WatchMemory>>,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    settings: Settings,
}

impl Context {
    /// A context for reconciles.
    pub fn new(
        client: kube::Client,
        modelarts: ModelArtsClient,
        budget: Budget,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Self {
        Self {
            secrets: SecretReader::new(client.clone()),
            client,
            modelarts,
            budget,
            statistics: SharedCalls::default(),
            projects: SharedCalls::default(),
            memory: Mutex::new(HashMap::new()),
            recorder,
            metrics,
            settings,
        }
    }

    /// Forgets a deleted watch: its memory and its metric series.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.memories()
            .remove(&(namespace.to_owned(), name.to_owned()));
        let labels = WatchLabels {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        self.metrics.forget_watch(&labels);
    }

    /// Forgets every remembered watch for which `exists(namespace, name)` is false: watches
    /// deleted since (a deletion triggers no reconcile).
    pub fn forget_deleted(&self, exists: impl Fn(&str, &str) -> bool) {
        let deleted: Vec<WatchKey> = self
            .memories()
            .keys()
            .filter(|(namespace, name)| !exists(namespace, name))
            .cloned()
            .collect();
        for (namespace, name) in deleted {
            debug!(%namespace, %name, "watch deleted: forgetting it");
            self.forget(&namespace, &name);
        }
    }

    fn memories(&self) -> MutexGuard<'_, HashMap<WatchKey, WatchMemory>> {
        // Entries are replaced whole, so a panic elsewhere cannot leave one half-written.
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A watch's namespace and name.
type WatchKey = (String, String);

/// What the operator remembers of one watch between reconciles.
#[derive(Clone, Debug, Default)]
struct WatchMemory {
    schedule: schedule::Memory,
    /// Set while the watch is stalled on its credentials (missing Secret or refused keys).
    stalled_on_secret: Option<StalledOnSecret>,
    /// A status computed but not yet written (the write failed); written before anything else.
    unwritten: Option<PoolStatisticsWatchStatus>,
    /// This watch's place in its upstream budget's queue, once it had to wait for one.
    reservation: Option<Reservation>,
    /// Kubernetes failures in a row, for the error policy's backoff.
    kubernetes_failures: u32,
}

#[derive(Clone, Debug)]
struct StalledOnSecret {
    /// The Secret's version when the failure happened; `None` if it did not exist.
    version: Option<String>,
    next_check: Instant,
}

/// The outcome of one attempt to poll.
enum Poll {
    Polled {
        statistics: PoolStatistics,
        project_id: String,
    },
    Failed(PollFailure),
    /// The upstream budget is spent: try again after this long, without counting a failure.
    Deferred(Duration),
}

struct PollFailure {
    reason: &'static str,
    message: String,
    permanent: bool,
    retry_after: Option<Duration>,
    /// The credentials were missing or refused: a Secret change is worth an immediate retry.
    credentials_problem: Option<Option<String>>,
}

impl PollFailure {
    fn from_spec(error: &SpecError) -> Self {
        Self {
            reason: status::REASON_INVALID_SPEC,
            message: error.to_string(),
            permanent: true,
            retry_after: None,
            credentials_problem: None,
        }
    }

    fn from_credentials(error: &CredentialsError) -> Self {
        Self {
            reason: error.reason(),
            message: error.to_string(),
            permanent: error.is_permanent(),
            retry_after: None,
            credentials_problem: error.is_permanent().then_some(None),
        }
    }

    fn from_upstream(error: &ModelArtsError, secret_version: &str) -> Self {
        let refused = matches!(
            error.class(),
            ErrorClass::AuthenticationFailed | ErrorClass::AccessDenied
        );
        Self {
            reason: error.reason(),
            message: error.to_string(),
            permanent: error.is_permanent(),
            retry_after: error.retry_after(),
            credentials_problem: refused.then(|| Some(secret_version.to_owned())),
        }
    }
}

/// Reconciles one watch. Never calls upstream unless the schedule says a poll is due.
pub async fn reconcile(
    watch: Arc<PoolStatisticsWatch>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = watch
        .namespace()
        .ok_or_else(|| Error::NoNamespace(watch.name_any()))?;
    let span = tracing::info_span!("reconcile", namespace = %namespace, name = %watch.name_any());
    let result =
        tracing::Instrument::instrument(reconcile_watch(&watch, &namespace, &ctx), span).await;
    ctx.metrics.observe_reconcile(started.elapsed());
    result
}

async fn reconcile_watch(
    watch: &PoolStatisticsWatch,
    namespace: &str,
    ctx: &Context,
) -> Result<Action, Error> {
    let object: WatchKey = (namespace.to_owned(), watch.name_any());
    let now = Instant::now();
    let mut previous = watch.status.clone().unwrap_or_default();
    let generation = watch.meta().generation;
    let refresh_token = watch.annotations().get(REFRESH_ANNOTATION).cloned();
    let request = schedule::Request {
        generation,
        refresh_token: refresh_token.as_deref(),
        suspended: watch.spec.suspend,
    };
    let interval = parse_interval(&watch.spec.interval)
        .or_else(|_| parse_interval(DEFAULT_INTERVAL))
        .unwrap_or(Duration::from_secs(300));
    let mut memory = ctx
        .memories()
        .get(&object)
        .cloned()
        .unwrap_or_else(|| remembered_from_status(&previous, &request, interval, now));

    if let Some(unwritten) = memory.unwritten.clone() {
        write_status(
            ctx,
            watch,
            namespace,
            &previous,
            &unwritten,
            &mut memory,
            &object,
        )
        .await?;
        previous = unwritten;
    }

    let decision = memory.schedule.decide(&request, now);
    let reason = match decision {
        Decision::Suspended => {
            apply_outcome(
                ctx,
                watch,
                namespace,
                &previous,
                &Outcome::Suspended,
                &mut memory,
                &object,
            )
            .await?;
            ctx.memories().insert(object, memory);
            return Ok(Action::await_change());
        }
        Decision::PollNow(reason) => reason,
        Decision::WaitUntil(due) => {
            match secret_changed(ctx, watch, namespace, &mut memory, now).await {
                Some(true) => PollReason::Due,
                Some(false) | None => {
                    let wake = memory
                        .stalled_on_secret
                        .as_ref()
                        .map_or(due, |stalled| stalled.next_check.min(due));
                    ctx.memories().insert(object, memory);
                    return Ok(Action::requeue(wake.saturating_duration_since(now)));
                }
            }
        }
    };
    debug!(?reason, "polling");

    // A new generation is shown as Reconciling before its poll, so that kstatus readers (Flux,
    // `kubectl wait`) never take the old status for the new spec's.
    let previous = if previous.observed_generation != generation {
        apply_outcome(
            ctx,
            watch,
            namespace,
            &previous,
            &Outcome::Progressing,
            &mut memory,
            &object,
        )
        .await?
    } else {
        previous
    };

    // A first poll may reuse an answer another watch of the same target just got; a new spec,
    // a refresh request or new keys want a new answer.
    let forced = !matches!(reason, PollReason::Due | PollReason::FirstPoll);
    let poll = poll(
        ctx,
        watch,
        namespace,
        interval,
        forced || memory.stalled_on_secret.is_some(),
        &mut memory.reservation,
    )
    .await;
    let now = Instant::now();
    let outcome = match poll {
        Poll::Deferred(wait) => {
            ctx.metrics.count_rate_limit_wait();
            debug!(
                wait_ms = wait.as_millis() as u64,
                "upstream budget spent; polling later"
            );
            ctx.memories().insert(object, memory);
            return Ok(Action::requeue(wait.max(Duration::from_millis(50))));
        }
        Poll::Polled {
            statistics,
            project_id,
        } => {
            ctx.metrics.count_poll("success");
            memory
                .schedule
                .record_success(&request, interval, Jitter::random(), now);
            memory.stalled_on_secret = None;
            let labels = watch_labels(watch, namespace);
            ctx.metrics
                .set_last_success(&labels, Timestamp::now().as_millisecond() as f64 / 1000.0);
            Outcome::Polled {
                pools: counts_of(&statistics),
                operation_time: statistics.operation_time.clone(),
                project_id,
            }
        }
        Poll::Failed(failure) => {
            ctx.metrics.count_poll(failure.reason);
            let kind = if failure.permanent {
                FailureKind::Permanent
            } else {
                FailureKind::Transient {
                    retry_after: failure.retry_after,
                }
            };
            let counts_fresh = memory.schedule.counts_fresh(interval, now);
            let delay =
                memory
                    .schedule
                    .record_failure(&request, kind, interval, Jitter::random(), now);
            memory.stalled_on_secret =
                failure
                    .credentials_problem
                    .clone()
                    .map(|version| StalledOnSecret {
                        version,
                        next_check: now + SECRET_RECHECK,
                    });
            warn!(
                reason = failure.reason,
                retry_in_s = delay.as_secs(),
                "poll failed: {}",
                failure.message
            );
            Outcome::Failed(Failure {
                reason: failure.reason,
                message: shorten(&failure.message),
                permanent: failure.permanent,
                counts_fresh,
            })
        }
    };
    apply_outcome(
        ctx,
        watch,
        namespace,
        &previous,
        &outcome,
        &mut memory,
        &object,
    )
    .await?;
    let due = memory.schedule.next_due.unwrap_or(now + interval);
    let wake = memory
        .stalled_on_secret
        .as_ref()
        .map_or(due, |s| s.next_check.min(due));
    ctx.memories().insert(object, memory);
    Ok(Action::requeue(
        wake.saturating_duration_since(Instant::now()),
    ))
}

/// After a restart the memory is empty. A watch whose status is already current for its
/// generation is not new: its next poll is placed at random within one interval (so a restart
/// does not poll everything at once), and its counts count as fresh from now.
fn remembered_from_status(
    previous: &PoolStatisticsWatchStatus,
    request: &schedule::Request<'_>,
    interval: Duration,
    now: Instant,
) -> WatchMemory {
    let current = previous.observed_generation.is_some()
        && previous.observed_generation == request.generation
        && status::is_true(previous, READY);
    if !current {
        return WatchMemory::default();
    }
    WatchMemory {
        schedule: schedule::Memory {
            polled_generation: request.generation,
            polled_refresh_token: request.refresh_token.map(str::to_owned),
            next_due: Some(now + interval.mul_f64(fastrand::f64())),
            consecutive_failures: 0,
            last_success: Some(now),
        },
        ..WatchMemory::default()
    }
}

/// For a watch stalled on its credentials and due for a check: `Some(true)` if its Secret
/// changed since the failure (poll now), `Some(false)` if not, `None` if no check is due.
async fn secret_changed(
    ctx: &Context,
    watch: &PoolStatisticsWatch,
    namespace: &str,
    memory: &mut WatchMemory,
    now: Instant,
) -> Option<bool> {
    let stalled = memory.stalled_on_secret.as_mut()?;
    if stalled.next_check > now {
        return Some(false);
    }
    stalled.next_check = now + SECRET_RECHECK;
    let name = &watch.spec.credentials_secret_ref.name;
    let current = ctx
        .secrets
        .credentials(namespace, name, true)
        .await
        .ok()
        .map(|loaded| loaded.version);
    let changed = current.is_some() && current != stalled.version;
    if changed {
        info!(secret = %name, "credentials Secret changed; polling at once");
    }
    Some(changed)
}

/// One poll: resolve the spec, read the keys, find the project id, fetch the statistics.
async fn poll(
    ctx: &Context,
    watch: &PoolStatisticsWatch,
    namespace: &str,
    interval: Duration,
    forced: bool,
    reservation: &mut Option<Reservation>,
) -> Poll {
    let target = match WatchTarget::from_spec(&watch.spec, ctx.settings.allow_http_endpoints) {
        Ok(target) => target,
        Err(error) => return Poll::Failed(PollFailure::from_spec(&error)),
    };
    let secret = &watch.spec.credentials_secret_ref.name;
    let loaded = match ctx.secrets.credentials(namespace, secret, forced).await {
        Ok(loaded) => loaded,
        Err(error) => return Poll::Failed(PollFailure::from_credentials(&error)),
    };
    let credentials = &loaded.credentials;
    let project_id = match resolve_project(ctx, &target, credentials, reservation).await {
        Ok(project_id) => project_id,
        Err(ProjectFailure::Deferred(wait)) => return Poll::Deferred(wait),
        Err(ProjectFailure::Failed(error)) => {
            return Poll::Failed(PollFailure::from_upstream(&error, &loaded.version));
        }
    };
    let key = CallKey {
        endpoint: target.endpoint.to_string(),
        project_id: project_id.clone(),
        workspace_id: target.workspace_id.clone(),
        credentials: credentials.fingerprint(),
    };
    let budget_key = BudgetKey {
        endpoint: target.endpoint.authority(),
        access_key_id: credentials.key_id().to_owned(),
    };
    // A forced poll (new spec, refresh, new keys) wants a new answer; a scheduled one may take
    // an answer another watch of the same target got within half an interval.
    let fresh_within = if forced { Duration::ZERO } else { interval / 2 };
    let client = ctx.modelarts.clone();
    let (endpoint, call_credentials) = (target.endpoint.clone(), credentials.clone());
    let (call_project, workspace) = (project_id.clone(), target.workspace_id.clone());
    let answer = ctx
        .statistics
        .get(
            key,
            fresh_within,
            Result::is_err,
            || {
                ctx.budget
                    .try_admit(&budget_key, reservation, Instant::now())
            },
            async move {
                client
                    .pool_statistics(&endpoint, &call_credentials, &call_project, &workspace)
                    .await
            },
        )
        .await;
    match answer {
        SharedOutcome::Answer {
            value: Ok(statistics),
            ..
        } => Poll::Polled {
            statistics,
            project_id,
        },
        SharedOutcome::Answer {
            value: Err(error), ..
        } => {
            if error.class() == ErrorClass::AuthenticationFailed {
                // Rotated keys are read again at once for the next poll.
                ctx.secrets.forget(namespace, secret);
            }
            Poll::Failed(PollFailure::from_upstream(&error, &loaded.version))
        }
        SharedOutcome::Deferred(wait) => Poll::Deferred(wait),
        SharedOutcome::Lost => Poll::Failed(PollFailure {
            reason: ErrorClass::Network.reason(),
            message: "the upstream call was interrupted".to_owned(),
            permanent: false,
            retry_after: None,
            credentials_problem: None,
        }),
    }
}

enum ProjectFailure {
    Deferred(Duration),
    Failed(ModelArtsError),
}

async fn resolve_project(
    ctx: &Context,
    target: &WatchTarget,
    credentials: &Credentials,
    reservation: &mut Option<Reservation>,
) -> Result<String, ProjectFailure> {
    let (iam_endpoint, region) = match &target.project {
        ProjectSource::Given(project_id) => return Ok(project_id.clone()),
        ProjectSource::Lookup {
            iam_endpoint,
            region,
        } => (iam_endpoint, region),
    };
    let key = ProjectKey {
        iam_endpoint: iam_endpoint.to_string(),
        region: region.clone(),
        credentials: credentials.fingerprint(),
    };
    let budget_key = BudgetKey {
        endpoint: iam_endpoint.authority(),
        access_key_id: credentials.key_id().to_owned(),
    };
    let client = ctx.modelarts.clone();
    let (iam, call_credentials, call_region) =
        (iam_endpoint.clone(), credentials.clone(), region.clone());
    let answer = ctx
        .projects
        .get(
            key,
            PROJECT_ID_REUSE,
            Result::is_err,
            || {
                ctx.budget
                    .try_admit(&budget_key, reservation, Instant::now())
            },
            async move {
                client
                    .resolve_project_id(&iam, &call_credentials, &call_region)
                    .await
            },
        )
        .await;
    match answer {
        SharedOutcome::Answer { value, .. } => value.map_err(ProjectFailure::Failed),
        SharedOutcome::Deferred(wait) => Err(ProjectFailure::Deferred(wait)),
        SharedOutcome::Lost => Err(ProjectFailure::Deferred(Duration::from_secs(1))),
    }
}

/// Computes the status after `outcome`, writes it if it changed, publishes the events its
/// transitions deserve and updates the watch's metrics.
async fn apply_outcome(
    ctx: &Context,
    watch: &PoolStatisticsWatch,
    namespace: &str,
    previous: &PoolStatisticsWatchStatus,
    outcome: &Outcome,
    memory: &mut WatchMemory,
    object: &WatchKey,
) -> Result<PoolStatisticsWatchStatus, Error> {
    let next = status::next_status(previous, watch.meta().generation, outcome, Timestamp::now());
    let labels = watch_labels(watch, namespace);
    if let Some(pools) = &next.pools {
        ctx.metrics.set_pools(&labels, pools);
    }
    for condition in &next.conditions {
        ctx.metrics
            .set_condition(&labels, &condition.type_, &condition.status);
    }
    if next == *previous {
        return Ok(next);
    }
    write_status(ctx, watch, namespace, previous, &next, memory, object).await?;
    for notice in status::transition_notices(previous, &next) {
        publish(ctx, watch, notice).await;
    }
    Ok(next)
}

async fn write_status(
    ctx: &Context,
    watch: &PoolStatisticsWatch,
    namespace: &str,
    previous: &PoolStatisticsWatchStatus,
    next: &PoolStatisticsWatchStatus,
    memory: &mut WatchMemory,
    object: &WatchKey,
) -> Result<(), Error> {
    if next == previous {
        memory.unwritten = None;
        return Ok(());
    }
    let api: Api<PoolStatisticsWatch> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = serde_json::json!({
        "apiVersion": PoolStatisticsWatch::api_version(&()),
        "kind": PoolStatisticsWatch::kind(&()),
        "status": next,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api
        .patch_status(&watch.name_any(), &params, &Patch::Apply(&patch))
        .await
    {
        Ok(_) => {
            ctx.metrics.count_status_write("success");
            memory.unwritten = None;
            memory.kubernetes_failures = 0;
            Ok(())
        }
        Err(source) => {
            let result = match &source {
                kube::Error::Api(status) if status.code == 409 => "conflict",
                _ => "error",
            };
            ctx.metrics.count_status_write(result);
            memory.unwritten = Some(next.clone());
            memory.kubernetes_failures = memory.kubernetes_failures.saturating_add(1);
            ctx.memories().insert(object.clone(), memory.clone());
            Err(Error::StatusWrite {
                object: format!("{namespace}/{}", watch.name_any()),
                source,
            })
        }
    }
}

async fn publish(ctx: &Context, watch: &PoolStatisticsWatch, notice: Notice) {
    let event = Event {
        type_: match notice.severity {
            Severity::Normal => EventType::Normal,
            Severity::Warning => EventType::Warning,
        },
        reason: notice.reason,
        note: Some(shorten(&notice.note)),
        action: "Poll".to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &watch.object_ref(&())).await {
        // Events are a courtesy: a failure to publish one must not fail the reconcile.
        warn!(%error, "could not publish an event");
    }
}

/// How long to wait after a failed reconcile (a Kubernetes call failed): exponential per watch,
/// from 1 s to 1 min.
pub fn error_policy(watch: Arc<PoolStatisticsWatch>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = ctx
        .memories()
        .get(&(watch.namespace().unwrap_or_default(), watch.name_any()))
        .map_or(1, |memory| memory.kubernetes_failures.max(1));
    let delay =
        Duration::from_secs(1 << failures.saturating_sub(1).min(6)).min(Duration::from_secs(60));
    warn!(namespace = watch.namespace().unwrap_or_default(), name = %watch.name_any(), %error, retry_in_s = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}

fn counts_of(statistics: &PoolStatistics) -> PoolCounts {
    PoolCounts {
        creating: statistics.creating,
        created: statistics.created,
        failed: statistics.failed,
        pending: statistics.pending,
        deleting: statistics.deleting,
    }
}

fn watch_labels(watch: &PoolStatisticsWatch, namespace: &str) -> WatchLabels {
    WatchLabels {
        namespace: namespace.to_owned(),
        name: watch.name_any(),
    }
}

fn shorten(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_owned(),
    }
}
